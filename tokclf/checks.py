"""The option checks every command shares (training, evaluate, predict), so that a bad number gets
the same message from each, before any expensive work."""

from __future__ import annotations

import math

from tokclf.errors import ConfigError


def at_least(owner, minimum: int, *names: str) -> None:
    """Options that must be integers >= minimum (None allowed: not set)."""
    for name in names:
        value = getattr(owner, name)
        if value is not None and value < minimum:
            raise ConfigError(f"--{name} must be at least {minimum}, got {value}.")


def check_windows(max_length: int, stride: int, context_sentences: int) -> None:
    """The window options, as every command checks them (training, evaluate and predict)."""
    if max_length < 1:
        raise ConfigError(f"--max_length must be at least 1, got {max_length}.")
    if not 0 <= stride <= max_length // 2:
        raise ConfigError(f"--stride must be between 0 and max_length/2 ({max_length // 2}), got {stride}.")
    if context_sentences < 0:
        raise ConfigError(f"--context_sentences must be 0 or more, got {context_sentences}.")


def fraction(owner, *names: str) -> None:
    """Options that must lie in [0, 1): a share of steps, a dropout probability."""
    for name in names:
        value = getattr(owner, name)
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"--{name} must be in [0, 1), got {value}.")


def finite(owner, *names: str) -> None:
    for name in names:
        value = getattr(owner, name)
        if value is not None and not math.isfinite(value):
            raise ConfigError(f"--{name} must be a finite number, got {value}.")
