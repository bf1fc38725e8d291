"""Tag schemes and label maps: pure functions, no torch.

IOB1 (the original CoNLL files): a span starts with I- unless it directly follows a span of the same
type, which then starts with B-. IOB2 (what models and seqeval expect): every span starts with B-.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from tokclf.errors import DataError


def split_tag(tag: str) -> tuple[str, str]:
    """('B', 'PER') for 'B-PER', ('O', '') for 'O'. Raises ValueError outside IOB."""
    if tag == "O":
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    if sep != "-" or prefix not in ("B", "I") or not kind:
        raise ValueError(tag)
    return prefix, kind


def check_iob(tag_sequences: Sequence[Sequence[str]], where: str) -> None:
    for i, tags in enumerate(tag_sequences):
        for j, tag in enumerate(tags):
            try:
                split_tag(tag)
            except ValueError:
                raise DataError(
                    f"{where}, sentence {i}, word {j}: tag {tag!r} is not IOB (expected O, B-TYPE or "
                    f"I-TYPE). For plain tags such as POS use --tag_scheme none."
                ) from None


def is_iob1(tag_sequences: Sequence[Sequence[str]]) -> bool:
    """True when some span starts with I- (impossible in IOB2, the norm in IOB1)."""
    for tags in tag_sequences:
        previous = "O"
        for tag in tags:
            prefix, kind = split_tag(tag)
            if prefix == "I" and (previous == "O" or split_tag(previous)[1] != kind):
                return True
            previous = tag
    return False


def iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    out, previous = [], "O"
    for tag in tags:
        prefix, kind = split_tag(tag)
        if prefix == "I" and (previous == "O" or split_tag(previous)[1] != kind):
            tag = "B-" + kind
        out.append(tag)
        previous = tag
    return out


def resolve_scheme(requested: str, task: str, train_tags: Sequence[Sequence[str]]) -> str:
    """The scheme of the input tags: iob1, iob2 or none (plain tags, e.g. POS)."""
    if requested != "auto":
        return requested
    if task == "pos":
        if all(t == "O" or t[:2] in ("B-", "I-") for tags in train_tags for t in tags):
            raise DataError(
                "--task_name pos, but the tags are IOB entity or chunk tags (O, B-X, I-X): the data has no "
                "POS column. Use a file with a POS column, --label_column_name, or --task_name ner/chunk."
            )
        return "none"
    check_iob(train_tags, "training data")
    return "iob1" if is_iob1(train_tags) else "iob2"


def normalise_tags(tag_sequences, scheme: str, where: str) -> list[list[str]]:
    """Tags in the form the model learns: IOB2 for IOB input, unchanged for plain tags."""
    if scheme == "none":
        return [list(t) for t in tag_sequences]
    check_iob(tag_sequences, where)
    if scheme == "iob1":
        return [iob1_to_iob2(t) for t in tag_sequences]
    return [list(t) for t in tag_sequences]


@dataclass(frozen=True)
class LabelSet:
    """The model's labels: names in id order, and for IOB the B-→I- id map of continuation pieces."""

    names: tuple[str, ...]
    scheme: str  # "iob" or "none"

    @classmethod
    def from_tags(cls, tag_sequences, scheme: str) -> "LabelSet":
        seen = {t for tags in tag_sequences for t in tags}
        if scheme == "none":
            return cls(tuple(sorted(seen)), "none")
        kinds = sorted({split_tag(t)[1] for t in seen if t != "O"})
        # Both B- and I- of every type, so B-→I- always has a target.
        return cls(("O",) + tuple(f"{p}-{k}" for k in kinds for p in ("B", "I")), "iob")

    @classmethod
    def from_names(cls, names) -> "LabelSet":
        """The label set of a trained model, from its label names in id order."""
        try:
            for name in names:
                split_tag(name)
        except ValueError:
            return cls(tuple(names), "none")
        return cls(tuple(names), "iob")

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

    def check_known(self, tag_sequences, where: str) -> None:
        known = set(self.names)
        for i, tags in enumerate(tag_sequences):
            for j, tag in enumerate(tags):
                if tag not in known:
                    raise DataError(
                        f"{where}, sentence {i}, word {j}: tag {tag!r} never occurs in the training "
                        f"data, so the model cannot predict it. Add examples of it to the training data, "
                        f"fix the tag, or pass --unseen_eval_tags O to score it as O."
                    )


def prepare_tags(split_tags: dict[str, list[list[str]]], requested_scheme: str, task: str, unseen: str = "error"):
    """Normalise every split's tags and build the label set from the training split.

    Returns ({split: tags}, LabelSet). Validation/test tags never seen in training are an error, or
    with unseen="O" become O (the count is printed), so that the evaluation can still run.
    """
    scheme = resolve_scheme(requested_scheme, task, split_tags["train"])
    tags = {split: normalise_tags(t, scheme, f"{split} split") for split, t in split_tags.items()}
    labels = LabelSet.from_tags(tags["train"], "none" if scheme == "none" else "iob")
    for split, split_tags_ in tags.items():
        if split == "train":
            continue
        if unseen == "O":
            tags[split], replaced = labels.map_unknown_to_o(split_tags_)
            if replaced:
                print(f"warning: {split} split: {replaced} tags never seen in training became O.")
        else:
            labels.check_known(split_tags_, f"{split} split")
    return tags, labels
