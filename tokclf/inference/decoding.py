"""Per-word label scores → tag sequences: argmax, or Viterbi restricted to valid IOB2 sequences.

Argmax picks each word's label on its own and may emit `O I-PER` or `B-LOC I-PER`, which span scorers
then repair by guessing. Viterbi instead returns the sequence with the highest total log-probability
among those where every I-X continues a B-X or I-X, so spans are exactly what the model scored best.
Pure numpy: usable on scores from any process, no torch.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from tokclf.data.schemes import is_iob, split_tag  # is_iob is re-exported: schemes.py alone decides IOB-ness

METHODS = ("argmax", "viterbi")


def _iob_parts(names: Sequence[str]) -> Optional[list[tuple[str, str]]]:
    """(prefix, type) per label, or None when some label is not IOB (plain tags such as POS)."""
    return [split_tag(name) for name in names] if is_iob(names) else None


def allowed_transitions(names: Sequence[str]) -> np.ndarray:
    """[from, to] booleans: I-X may only follow B-X or I-X. Everything is allowed for plain tags."""
    parts = _iob_parts(names)
    if parts is None:
        return np.ones((len(names), len(names)), dtype=bool)
    prefix = np.array([p for p, _ in parts])
    kind = np.array([k for _, k in parts])
    # O has type "", so O → I-X fails the same-type test like B-Y → I-X does.
    return (prefix[None, :] != "I") | (kind[:, None] == kind[None, :])


def allowed_starts(names: Sequence[str]) -> np.ndarray:
    """Labels a sentence may start with: anything but I-X (everything for plain tags)."""
    parts = _iob_parts(names)
    if parts is None:
        return np.ones(len(names), dtype=bool)
    return np.array([p != "I" for p, _ in parts], dtype=bool)


def viterbi(log_probs: np.ndarray, allowed: np.ndarray, allowed_start: np.ndarray) -> list[int]:
    """Label ids of the valid sequence with the highest sum of per-word log-probabilities.

    Ties go to the lower label id. Raises ValueError when the constraints admit no sequence at all
    (a label set made only of I- labels).
    """
    n_words, n_labels = log_probs.shape
    if n_words == 0:
        return []
    if allowed.all() and allowed_start.all():  # unconstrained: the best sequence is the per-word best
        return log_probs.argmax(-1).tolist()
    # -inf log-probs (underflow) become a finite floor, so a valid path always beats an invalid one.
    scores = np.maximum(log_probs.astype(np.float64), -1e30)
    transition = np.where(allowed, 0.0, -np.inf)
    best = np.where(allowed_start, scores[0], -np.inf)
    back = np.zeros((n_words, n_labels), dtype=np.int64)
    to = np.arange(n_labels)
    for t in range(1, n_words):
        candidates = best[:, None] + transition  # [from, to]
        back[t] = candidates.argmax(0)
        best = candidates[back[t], to] + scores[t]
    last = int(best.argmax())
    if best[last] == -np.inf:
        raise ValueError("no label sequence satisfies the IOB2 constraints of this label set")
    path = [last]
    for t in range(n_words - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return path[::-1]


def decode(scores: list[np.ndarray], names: Sequence[str], method: str = "viterbi") -> list[list[str]]:
    """Tag names per sentence from [words, labels] log-probability arrays."""
    if method == "argmax":
        return [[names[i] for i in s.argmax(-1)] for s in scores]
    if method != "viterbi":
        raise ValueError(f"decoding method must be one of {METHODS}, got {method!r}")
    allowed, start = allowed_transitions(names), allowed_starts(names)
    return [[names[i] for i in viterbi(s, allowed, start)] for s in scores]
