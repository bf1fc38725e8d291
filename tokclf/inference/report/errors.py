"""Error analysis on entity spans, pure Python (no torch): the SemEval-2013 error categories of each
predicted and gold span, counted per type, and per sentence for the report's list of mistakes.

Spans come from seqeval's `get_entities`, the same parse as the scores and the confusion table, so the
report's numbers and `tokclf evaluate`'s agree. The matching is nervaluate's (1.x): predictions in
order, each against the first gold span not yet matched that it overlaps (the only one when the
boundaries are equal, since the spans of one tag sequence never overlap); gold spans left unmatched
are missed. Its strict, exact and partial schemes are sums of the six categories here (see `schemes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from seqeval.metrics.sequence_labeling import get_entities

EXACT, BOUNDARY, TYPE, BOUNDARY_TYPE, MISSED, SPURIOUS = (
    "exact", "boundary", "type", "boundary+type", "missed", "spurious")
CATEGORIES = (EXACT, BOUNDARY, TYPE, BOUNDARY_TYPE, MISSED, SPURIOUS)
ERRORS = CATEGORIES[1:]


@dataclass(frozen=True)
class Span:
    """Words start..end (end exclusive) of one entity of type `kind`."""

    kind: str
    start: int
    end: int

    def overlaps(self, other: "Span") -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class Mark:
    """One category decision: a gold span, a predicted span or both, and what kind of match it is."""

    category: str
    gold: Optional[Span]
    predicted: Optional[Span]

    @property
    def kind(self) -> str:
        """The type a mark counts under: the gold type, or the predicted type of a spurious span."""
        return (self.gold or self.predicted).kind


def spans(tags: Sequence[str]) -> list[Span]:
    return [Span(kind, start, end + 1) for kind, start, end in get_entities(list(tags))]


def categorize(gold: Sequence[Span], predicted: Sequence[Span]) -> list[Mark]:
    """The marks of one sentence: one per predicted span, plus one per gold span no prediction touched."""
    marks, matched = [], set()
    for pred in predicted:
        hit = next((i for i, g in enumerate(gold) if i not in matched and pred.overlaps(g)), None)
        if hit is None:
            marks.append(Mark(SPURIOUS, None, pred))
            continue
        matched.add(hit)
        marks.append(Mark(_category(gold[hit], pred), gold[hit], pred))
    marks += [Mark(MISSED, g, None) for i, g in enumerate(gold) if i not in matched]
    return marks


def _category(gold: Span, pred: Span) -> str:
    same_bounds, same_type = (gold.start, gold.end) == (pred.start, pred.end), gold.kind == pred.kind
    if same_bounds:
        return EXACT if same_type else TYPE
    return BOUNDARY if same_type else BOUNDARY_TYPE


def count(marks: Iterable[Mark]) -> dict[str, dict[str, int]]:
    """type → category → count (every category present, zeros included), and the overall row "ALL"."""
    table: dict[str, dict[str, int]] = {}
    for mark in marks:
        for row in (mark.kind, "ALL"):
            table.setdefault(row, dict.fromkeys(CATEGORIES, 0))[mark.category] += 1
    table.setdefault("ALL", dict.fromkeys(CATEGORIES, 0))
    return dict(sorted(table.items(), key=lambda item: (item[0] == "ALL", item[0])))


def schemes(counts: dict[str, int]) -> dict[str, dict[str, int]]:
    """nervaluate's four counts per scheme from the six categories (ent_type matches differently where a
    prediction overlaps several gold spans: it prefers the closest one of its own type)."""
    c = counts
    wrong_bounds = c[BOUNDARY] + c[BOUNDARY_TYPE]
    return {
        "strict": {"correct": c[EXACT], "incorrect": c[TYPE] + wrong_bounds, "partial": 0,
                   "missed": c[MISSED], "spurious": c[SPURIOUS]},
        "exact": {"correct": c[EXACT] + c[TYPE], "incorrect": wrong_bounds, "partial": 0,
                  "missed": c[MISSED], "spurious": c[SPURIOUS]},
        "partial": {"correct": c[EXACT] + c[TYPE], "incorrect": 0, "partial": wrong_bounds,
                    "missed": c[MISSED], "spurious": c[SPURIOUS]},
        "ent_type": {"correct": c[EXACT] + c[BOUNDARY], "incorrect": c[TYPE] + c[BOUNDARY_TYPE], "partial": 0,
                     "missed": c[MISSED], "spurious": c[SPURIOUS]},
    }


def sentence_marks(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> list[list[Mark]]:
    """Per sentence, its marks."""
    return [categorize(spans(g), spans(p)) for g, p in zip(gold, predicted)]


def token_confusion(gold: Iterable[Sequence[str]], predicted: Iterable[Sequence[str]],
                    words: Iterable[Sequence[str]]) -> tuple[dict[str, dict[str, int]], dict[tuple, int]]:
    """For plain tags (POS, chunk tags without spans): gold tag → predicted tag → words, and
    (word, gold, predicted) → count of the wrongly tagged words."""
    table: dict[str, dict[str, int]] = {}
    confused: dict[tuple, int] = {}
    for g_tags, p_tags, sentence in zip(gold, predicted, words):
        for g, p, word in zip(g_tags, p_tags, sentence):
            row = table.setdefault(g, {})
            row[p] = row.get(p, 0) + 1
            if g != p:
                confused[(word, g, p)] = confused.get((word, g, p), 0) + 1
    return table, confused
