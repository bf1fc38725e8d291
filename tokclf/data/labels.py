"""The model's label set, the checks on it (single label, unseen tags), and a labelled file's tags for
scoring a saved model (prepare_eval_tags). Training's label preparation over Arrow splits is
tokclf.data.tag_columns.prepare_columns. Pure: no torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tokclf.errors import DataError
from tokclf.data.schemes import (EVALUATE_HINT, UNSEEN_EVALUATE_FIX, UNSEEN_TRAIN_FIX, is_iob, label_scheme,
                            normalise_tags, resolve_scheme, split_tag, where_of)


@dataclass(frozen=True)
class LabelSet:
    """The model's labels: names in id order, and for IOB the B-→I- id map of continuation pieces."""

    names: tuple[str, ...]
    scheme: Optional[str] = None  # "iob" or "none"; left out, `label_scheme(names)` decides

    def __post_init__(self):
        if self.scheme is None:
            object.__setattr__(self, "scheme", label_scheme(self.names))

    @classmethod
    def from_tags(cls, tag_sequences, scheme: Optional[str] = None) -> "LabelSet":
        """The labels of normalised training tags. Whether they are IOB is read from the tags (is_iob),
        never from `scheme`, which is kept for old callers."""
        seen = {t for tags in tag_sequences for t in tags}
        if not is_iob(seen):
            return cls(tuple(sorted(seen)))
        kinds = sorted({split_tag(t)[1] for t in seen if t != "O"})
        # Both B- and I- of every type, so B-→I- always has a target.
        return cls(("O",) + tuple(f"{p}-{k}" for k in kinds for p in ("B", "I")))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    def continuation_ids(self) -> list[int]:
        """id → id of the label for a word's second and later sub-tokens (B-X → I-X)."""
        ids = self.label2id
        return [ids["I-" + n[2:]] if n.startswith("B-") else i for i, n in enumerate(self.names)]

    def entity_types(self) -> list[str]:
        return sorted({n[2:] for n in self.names if n != "O"}) if self.scheme == "iob" else []

    def map_unknown_to_o(self, tag_sequences) -> tuple[list[list[str]], int]:
        known = set(self.names)
        mapped = [[t if t in known else "O" for t in tags] for tags in tag_sequences]
        return mapped, sum(t not in known for tags in tag_sequences for t in tags)

    def check_known(self, tag_sequences, where: str, *, sentences=None, fix: str = UNSEEN_TRAIN_FIX) -> None:
        known = set(self.names)
        for i, tags in enumerate(tag_sequences):
            for j, tag in enumerate(tags):
                if tag not in known:
                    raise DataError(
                        f"{where_of(where, sentences, i, j)}: tag {tag!r} never occurs in the training "
                        f"data, so the model cannot predict it. {fix}"
                    )


def refuse_single_label(labels: LabelSet, task: str, where: str) -> None:
    """A training split with one tag (all O, as when the column read holds no tags of the task) would
    train a model that predicts nothing else: stop, naming the split and where the tags come from."""
    if len(labels.names) > 1:
        return
    raise DataError(
        f"{where}: every tag is {labels.names[0]!r}, so the model would learn a single label. Check that "
        f"the tags come from the right column (--label_column_name; in CoNLL files a 0-based column number) "
        f"and that --task_name {task} is the task of this file."
    )


def split_name(split: str, sentences) -> str:
    """`train split (path)` when the reader recorded the file, else `train split`."""
    source = getattr(sentences[0], "source", None) if sentences else None
    return f"{split} split ({source})" if source else f"{split} split"


def prepare_eval_tags(labels: LabelSet, raw_tags, requested_scheme: str, task: str, where: str, *, sentences=None,
                      say=print) -> list[list[str]]:
    """A labelled file's tags for scoring a saved model: in IOB2 like training tags, each one a label of
    the model; errors give the hints of `evaluate`, which cannot change the model's labels."""
    scheme = "none"
    if labels.scheme == "iob":
        scheme = resolve_scheme(requested_scheme, task, raw_tags, where=where, sentences=sentences, hint=EVALUATE_HINT)
    gold = normalise_tags(raw_tags, scheme, where, sentences=sentences, hint=EVALUATE_HINT, say=say)
    labels.check_known(gold, where, sentences=sentences, fix=UNSEEN_EVALUATE_FIX)
    return gold
