"""The search space of `tokclf tune`: defaults per task (and for LoRA), a YAML file's entries over them,
each entry checked against the training options before any trial starts.

    learning_rate: {type: float, low: 1.0e-5, high: 1.0e-4, log: true}
    num_train_epochs: {type: int, low: 2, high: 4}
    per_device_train_batch_size: {type: categorical, choices: [16, 32]}
    weight_decay: null            # drop a default entry: the option keeps its configured value

This module imports no optuna: `suggest` only calls the trial it is given.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tokclf.config import field_types, read_yaml_mapping
from tokclf.errors import ConfigError

TYPES = ("float", "int", "categorical")
KEYS = {"float": {"type", "low", "high", "log", "step"}, "int": {"type", "low", "high", "log", "step"},
        "categorical": {"type", "choices"}}
# Options a trial may not vary: where it writes, what it resumes, where it uploads.
NOT_TUNABLE = {"output_dir", "resume_from_checkpoint", "push_to_hub", "hub_model_id", "hub_token", "config"}
FORMAT_HINT = ("each entry is `option: {type: float|int, low: L, high: H[, log: true][, step: S]}`, "
               "`option: {type: categorical, choices: [...]}` or `option: null` (not tuned)")


@dataclass(frozen=True)
class Param:
    """One tuned option: a float or int range, or a list of choices."""

    name: str
    type: str
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    step: Optional[float] = None
    choices: tuple = ()

    def suggest(self, trial):
        if self.type == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)


def default_space(task: str, lora: bool) -> dict[str, dict]:
    """Ranges that suit fine-tuning a BERT-sized encoder; LoRA trains with larger rates and tunes its rank.
    POS and chunking converge in fewer epochs than NER (every word carries a label)."""
    space = {
        "learning_rate": {"type": "float", "low": 1e-4 if lora else 1e-5, "high": 5e-3 if lora else 1e-4,
                          "log": True},
        "per_device_train_batch_size": {"type": "categorical", "choices": [8, 16, 32]},
        "num_train_epochs": {"type": "int", "low": 2, "high": 5 if task == "ner" else 4},
        "warmup_ratio": {"type": "float", "low": 0.0, "high": 0.1},
        "weight_decay": {"type": "float", "low": 0.0, "high": 0.1},
    }
    if lora:
        space["lora_r"] = {"type": "categorical", "choices": [4, 8, 16, 32]}
    return space


def load_space(path: Optional[str], task: str, lora: bool) -> list[Param]:
    """The defaults with the file's entries over them (an entry of null drops a default), checked."""
    entries = default_space(task, lora)
    source = "default search space"
    if path:
        entries.update(read_space_file(Path(path)))
        source = str(path)
    params = [check_entry(name, entry, source, lora) for name, entry in entries.items() if entry is not None]
    if not params:
        raise ConfigError(f"{source}: the search space is empty; tune at least one option.")
    return params


def read_space_file(path: Path) -> dict:
    return read_yaml_mapping(path, "--search_space", f"option: entry; {FORMAT_HINT}")


def check_entry(name, entry, source: str, lora: bool) -> Param:
    """A Param from one entry, or a ConfigError naming the file, the entry and the fix."""
    where = f"{source}: entry '{name}'"
    hints = field_types()
    if name not in hints or name in NOT_TUNABLE:
        raise ConfigError(f"{where}: not a training option that a trial may vary (see `tokclf train --help`).")
    if name.startswith("lora_") and not lora:
        raise ConfigError(f"{where}: LoRA options are tuned only with --peft lora.")
    if not isinstance(entry, dict) or entry.get("type") not in TYPES:
        raise ConfigError(f"{where}: {FORMAT_HINT}.")
    kind = entry["type"]
    extra = set(entry) - KEYS[kind]
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {sorted(extra)} for type {kind}; allowed: {sorted(KEYS[kind])}.")
    option_types = _option_types(hints[name])
    if kind == "categorical":
        return _categorical(name, entry, where, option_types)
    return _range(name, entry, where, option_types)


def _option_types(hint) -> tuple[type, ...]:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Literal:
        return tuple({type(a) for a in args})
    return tuple(a for a in args if a is not type(None)) if args else (hint,)


def _categorical(name, entry, where, option_types) -> Param:
    choices = entry.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ConfigError(f"{where}: choices must be a non-empty list, e.g. choices: [16, 32].")
    for value in choices:
        fits = isinstance(value, option_types) and not (isinstance(value, bool) and bool not in option_types)
        if not (fits or float in option_types and isinstance(value, int) and not isinstance(value, bool)):
            names = " or ".join(sorted(t.__name__ for t in option_types))
            raise ConfigError(f"{where}: choice {value!r} is not a {names} (the option's type).")
    return Param(name, "categorical", choices=tuple(choices))


def _number(value, key: str, where: str) -> float:
    """YAML 1.1 reads 1e-5 (no dot) as a string: accept it as the number it means."""
    try:
        number = float(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or not math.isfinite(number):
        raise ConfigError(f"{where}: {key} must be a finite number, got {value!r}.")
    return number


def _range(name, entry, where, option_types) -> Param:
    kind = entry["type"]
    if kind == "float" and float not in option_types or kind == "int" and int not in option_types:
        raise ConfigError(f"{where}: the option is {'/'.join(t.__name__ for t in option_types)}, not {kind}; "
                          f"use type: categorical with choices.")
    missing = {"low", "high"} - set(entry)
    if missing:
        raise ConfigError(f"{where}: type {kind} needs {' and '.join(sorted(missing))}.")
    low, high = _number(entry["low"], "low", where), _number(entry["high"], "high", where)
    step = _number(entry["step"], "step", where) if entry.get("step") is not None else None
    log = entry.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false, got {log!r}.")
    if kind == "int" and not all(float(v).is_integer() for v in (low, high, step or 1)):
        raise ConfigError(f"{where}: type int needs whole numbers for low, high and step.")
    if low > high:
        raise ConfigError(f"{where}: low {low:g} is above high {high:g}.")
    if log and (low <= 0 or step is not None):
        raise ConfigError(f"{where}: log: true needs low > 0 and no step.")
    return Param(name, kind, low=low, high=high, log=log, step=step)
