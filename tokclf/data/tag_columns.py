"""The label preparation of training (and the bench): every split's tag scheme, the label set of the
training split, unseen validation/test tags, for splits held in Arrow (tokclf.data.arrow_data.SentenceSplit)
without turning a split's tags into Python lists: the scheme and the label set come from the distinct
tags (computed in Arrow); a pass over the sentences runs only where the decision depends on the order
of the tags (IOB1 against IOB2, IOE1 against IOE2: each stops at the first span that decides) or to name
where a bad tag is. Conversion to IOB2 happens per sentence where the tags are used (encoding, scoring)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

from tokclf.data.labels import LabelSet, refuse_single_label, split_name
from tokclf.data.schemes import (ALIASES, TO_IOB2, TRAIN_HINT, check_tags, detect_scheme, ends_with_i, is_iob1, parse_tag,
                            resolve_scheme)


def column_scheme(requested: str, task: str, split, where: str, hint: str = TRAIN_HINT) -> str:
    """resolve_scheme of a SentenceSplit, from its distinct tags where they decide."""
    distinct = split.distinct_tags()
    if requested != "auto" or task == "pos":
        return ALIASES.get(requested, requested) if requested != "auto" else resolve_scheme(
            requested, task, [distinct], where=where, hint=hint)
    try:
        prefixes = {parse_tag(t)[0] for t in distinct}
    except ValueError:
        prefixes = None
    if prefixes is None or (prefixes & set("ES") and prefixes & set("LU")):
        return detect_scheme(split.tags, where, split.sentences, hint)  # raises, naming file:line
    if prefixes & set("LU"):
        return "bilou"
    if "S" in prefixes or {"E", "B"} <= prefixes:
        return "iobes"
    if "E" in prefixes:
        return "ioe1" if ends_with_i(split.tags) else "ioe2"
    return "iob1" if is_iob1(split.tags) else "iob2"


def check_column(split, scheme: str, where: str, hint: str = TRAIN_HINT) -> None:
    """check_tags of a split: on its distinct tags, and only when one is bad over the sentences (to say where)."""
    if scheme == "none":
        return
    try:
        check_tags([split.distinct_tags()], scheme, where, hint=hint)
    except Exception:
        check_tags(split.tags, scheme, where, split.sentences, hint)
        raise


def to_iob2(tag: str, scheme: str) -> str:
    """The IOB2 tag of one tag on its own: its type survives any conversion (for label sets)."""
    return tag if scheme == "none" else TO_IOB2[scheme]([tag])[0]


@dataclass
class GoldTags(Sequence):
    """A split's tags as the model learns and scores them: IOB2 (or plain), per sentence when read;
    with `unknown_to_o`, tags that the labels lack become O."""

    split: object
    scheme: str
    known: Optional[frozenset] = None

    def convert(self, tags: list[str]) -> list[str]:
        tags = list(tags) if self.scheme == "none" else TO_IOB2[self.scheme](tags)
        return tags if self.known is None else [t if t in self.known else "O" for t in tags]

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i):
        return self.convert(self.split.tags[i])

    def __iter__(self) -> Iterator[list[str]]:
        return (self.convert(tags) for tags in self.split.tags)


def prepare_columns(splits: dict, requested_scheme: str, task: str, unseen: str = "error", *, say=print,
                    hint: str = TRAIN_HINT) -> tuple[dict[str, GoldTags], LabelSet]:
    """({split: GoldTags}, LabelSet): normalise every split's tags (with --tag_scheme auto each split's scheme
    is detected on its own) and build the label set from the training split. Validation/test tags never
    seen in training are an error, or with unseen="O" become O (the count is said), so that the
    evaluation can still run. Errors name `file:line` where the split's reader recorded it."""
    schemes = {}
    for name, split in splits.items():
        where = f"{name} split"
        scheme = column_scheme(requested_scheme, task, split, where, hint)
        check_column(split, scheme, where, hint)
        if scheme not in ("iob1", "iob2", "none"):
            say(f"{where}: tags are {scheme.upper()}; converted to IOB2")
        schemes[name] = scheme
    labels = LabelSet.from_tags([[to_iob2(t, schemes["train"]) for t in splits["train"].distinct_tags()]])
    refuse_single_label(labels, task, split_name("train", splits["train"].sentences))
    gold = {"train": GoldTags(splits["train"], schemes["train"])}
    known = frozenset(labels.names)
    for name, split in splits.items():
        if name == "train":
            continue
        gold[name] = GoldTags(split, schemes[name])
        if all(to_iob2(t, schemes[name]) in known for t in split.distinct_tags()):
            continue
        if unseen == "O":
            replaced = sum(t not in known for tags in gold[name] for t in tags)
            say(f"warning: {name} split: {replaced} tags never seen in training became O.")
            gold[name] = GoldTags(split, schemes[name], known)
        else:
            labels.check_known(gold[name], f"{name} split", sentences=split.sentences)
    return gold, labels
