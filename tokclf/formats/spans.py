"""Character spans → words and IOB2 tags, with every alignment problem counted and shown.

Annotation tools (Label Studio, doccano, Prodigy) store entities as [start, end) character offsets in a
text; the model learns one tag per word. `align_record` splits the text into words (tokclf.formats.words, or the
tokens the file gives) and tags the words each span covers: B-X on the first, I-X on the rest.

What can go wrong, by kind (PROBLEM_KINDS), and what each --span_alignment mode (ALIGNMENTS) does:
  inside_word    a boundary falls inside a word ("Smith" of "Smith's"). strict: error; expand: the span
                 grows to the whole words it touches; contract: it shrinks to the whole words inside it.
  no_words       the span covers no whole word: only spaces, or under contract a part of one word.
  overlap        two spans share characters, or after snapping share a word: IOB holds one label per
                 word. The span that starts later (or is shorter, or sorts later by label) is dropped.
  empty          start >= end (empty or reversed).
  out_of_range   an offset below 0 or beyond the end of the text.
  text_mismatch  the span's own `text` differs from text[start:end]: the offsets were counted on another
                 text (UTF-16 units after an emoji in a browser tool, \\r\\n turned into \\n, an edited
                 text), so they would label the wrong characters.
  discontinuous  (BRAT) an entity of several fragments. expand: its covering span; contract: its first.
  crosses_line   (BRAT) an entity across a line break (each line is a record). expand, contract: cut there.
strict stops with one DataError that counts every kind over the whole file and shows the first
MAX_EXAMPLES of each (file and line or task id, and the text around the span in [brackets]). expand and
contract snap inside_word spans and drop the spans of the other kinds (their words become O); nothing
else can be fixed without guessing. Either way the counts are in the AlignmentReport, never silent.
Notices (NOTICE_KINDS: a duplicate span, skipped annotations) are counted and shown but never an error.

The default is strict: a span that does not match the words means the annotation and the word split
disagree, and guessing quietly changes the training labels (expanding "Smith" to "Smith's" may be right;
expanding "New" inside "Newcastle" is not). Clean data passes strict unchanged; for the rest the error
shows how many spans are affected and where, so that the user picks expand or contract knowingly (or
another --word_split). spaCy's Doc.char_span makes the same choice (alignment_mode="strict").
Pure Python: no torch, no transformers.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np

from tokclf.errors import ConfigError, DataError
from tokclf.records import Sentence
from tokclf.formats.words import Offsets, split

ALIGNMENTS = ("strict", "expand", "contract")
DEFAULT_ALIGNMENT = "strict"
MAX_EXAMPLES = 3
CONTEXT_CHARS = 20  # characters shown on each side of a span in a message
PROBLEM_KINDS = {
    "inside_word": "a span boundary falls inside a word",
    "no_words": "a span covers no whole word",
    "overlap": "spans overlap, and IOB tags hold one label per word",
    "empty": "an empty or reversed span: start >= end",
    "out_of_range": "an offset beyond the text",
    "text_mismatch": "a span's text differs from the text at its offsets",
    "discontinuous": "an entity of several fragments (BRAT), and IOB tags hold contiguous spans",
    "crosses_line": "an entity across a line break (BRAT), and each line is a record",
}
# What expand and contract do with a problem of these kinds (the others: dropped, their words O).
ACTIONS = {
    "inside_word": {"expand": "snapped to word boundaries", "contract": "snapped to word boundaries"},
    "discontinuous": {"expand": "its covering span used", "contract": "its first fragment used"},
    "crosses_line": {"expand": "cut at the line's end", "contract": "cut at the line's end"},
}
NOTICE_KINDS = {
    "duplicate": "the same span twice: kept once",
    "cancelled_annotation": "cancelled or skipped annotations: not used",
    "older_annotation": "older annotations of a task with several: not used (the latest is)",
    "unannotated": "tasks without a usable annotation: skipped",
    "rejected": "Prodigy answers other than accept: skipped",
    "nested": "nested or overlapping entities (BRAT): the outermost kept",
    "not_entities": "relations, events, attributes, normalizations, notes (BRAT R E A M N * # lines): not used",
}


@dataclass(frozen=True)
class CharSpan:
    start: int
    end: int
    label: str
    text: Optional[str] = None  # the span's own copy of its text, when the file has one
    where: Optional[str] = field(default=None, compare=False)  # its own `file:line` (BRAT's .ann line)


@dataclass
class SpanSentence(Sentence):
    """A Sentence (words, IOB2 tags, doc_id) that also knows where its words are in the original text."""

    offsets: Offsets = field(default_factory=list)  # each word's [start, end) in text
    text: str = ""  # the original text, untouched
    # Sentence.source holds the file and line or task id, so errors about its tags can say where


@dataclass
class AlignmentReport:
    """Counts per problem or notice kind, and the first MAX_EXAMPLES messages of each."""

    mode: str = DEFAULT_ALIGNMENT
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, message: str, count: int = 1) -> None:
        self.counts[kind] += count
        shown = self.examples.setdefault(kind, [])
        if len(shown) < MAX_EXAMPLES:
            shown.append(message)

    def problems(self) -> int:
        return sum(n for kind, n in self.counts.items() if kind in PROBLEM_KINDS)

    def lines(self) -> list[str]:
        """One line per kind (in PROBLEM_KINDS, then NOTICE_KINDS order), each followed by its examples."""
        out = []
        for kind, meaning in {**PROBLEM_KINDS, **NOTICE_KINDS}.items():
            if self.counts[kind]:
                out.append(f"  {kind}: {self.counts[kind]} ({meaning}{self._action(kind)}), e.g.")
                out += [f"    {example}" for example in self.examples[kind]]
        return out

    def _action(self, kind: str) -> str:
        if kind not in PROBLEM_KINDS or self.mode == "strict":
            return ""
        return "; " + ACTIONS.get(kind, {}).get(self.mode, "dropped, its words are O")

    def summary(self, source: str) -> str:
        """What happened, for the log: empty when there was nothing to say."""
        return "\n".join([f"{source}: --span_alignment {self.mode}:"] + self.lines()) if self.counts else ""

    def brief(self, source: str) -> str:
        """The counts on one line, for the log of a run that read the file: empty when nothing happened."""
        counts = [f"{kind} {self.counts[kind]}" + (f" ({self._action(kind)[2:]})" if self._action(kind) else "")
                  for kind in {**PROBLEM_KINDS, **NOTICE_KINDS} if self.counts[kind]]
        return f"{source}: --span_alignment {self.mode}: {', '.join(counts)}" if counts else ""

    def check(self, source: str) -> None:
        """Under strict, one DataError for all the problems found in source."""
        if self.mode != "strict" or not self.problems():
            return
        raise DataError("\n".join(
            [f"{source}: {self.problems()} span problem(s) under --span_alignment strict:"] + self.lines()
            + ["Fix them in the annotation tool, or pass --span_alignment expand or contract to snap boundaries "
               "to whole words (spans that cannot be fixed are then dropped and counted)."]))


def make_span(start, end, label, text=None, where: str = "") -> CharSpan:
    """A CharSpan of a file's values; wrong types are a DataError (a broken file, not an alignment issue)."""
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
        raise DataError(f"{where}: span start and end must be whole numbers, got {start!r} and {end!r}.")
    if not isinstance(label, str) or not label.strip():
        raise DataError(f"{where}: span [{start}, {end}) needs a label (a non-empty string), got {label!r}.")
    if text is not None and not isinstance(text, str):
        raise DataError(f"{where}: span [{start}, {end}) {label}: its text must be a string, got {text!r}.")
    return CharSpan(start, end, label, text)


def context(text: str, start: int, end: int) -> str:
    """The text around [start, end), with the span in brackets: '…went to [Paris] today…'."""
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    left, right = max(0, start - CONTEXT_CHARS), min(len(text), end + CONTEXT_CHARS)
    shown = f"{text[left:start]}[{text[start:end]}]{text[end:right]}"
    return repr(("…" if left else "") + shown + ("…" if right < len(text) else ""))


def _valid(text: str, span: CharSpan, where: str, report: AlignmentReport) -> bool:
    """False (and reported) for a span that no mode can use: out of range, empty, or with the wrong text."""
    name = f"{where}: span [{span.start}, {span.end}) {span.label}"
    if span.start < 0 or span.end > len(text):
        report.add("out_of_range", f"{name} lies beyond the text ({len(text)} characters): "
                                   f"{context(text, span.start, span.end)}")
    elif span.start >= span.end:
        report.add("empty", f"{name} is empty or reversed (start >= end)")
    elif span.text is not None and span.text != text[span.start:span.end]:
        report.add("text_mismatch", f"{name} has text {span.text!r} but the text there is "
                                    f"{text[span.start:span.end]!r} (offsets counted on another text, "
                                    f"e.g. in UTF-16 units after an emoji?): {context(text, span.start, span.end)}")
    else:
        return True
    return False


def without_overlaps(text: str, spans: list[CharSpan], where: str, report: AlignmentReport,
                     kind: str = "overlap") -> list[CharSpan]:
    """The spans in text order, each once; of two that share characters the later one (of two that start
    together, the shorter) is dropped and counted as `kind`: the outermost of nested spans is kept."""
    kept: list[CharSpan] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end, s.label, s.text or "")):
        # Sorted and kept apart, so the last kept span is the one ending last: the only one to test.
        last = kept[-1] if kept else None
        at = span.where or where
        if last is not None and (last.start, last.end, last.label) == (span.start, span.end, span.label):
            report.add("duplicate", f"{at}: span [{span.start}, {span.end}) {span.label} given twice")
        elif last is not None and span.start < last.end:
            report.add(kind, f"{at}: span [{span.start}, {span.end}) {span.label} overlaps span "
                                  f"[{last.start}, {last.end}) {last.label}: {context(text, span.start, span.end)}")
        else:
            kept.append(span)
    return kept


def _word_range(span: CharSpan, starts: list[int], ends: list[int], mode: str) -> tuple[int, int, bool]:
    """(first word, last word, a boundary inside a word?) covered under mode; first > last: no word."""
    touched_first = bisect.bisect_right(ends, span.start)  # first word ending after the start
    touched_last = bisect.bisect_left(starts, span.end) - 1  # last word starting before the end
    if touched_first > touched_last:
        return touched_first, touched_last, False
    inside = starts[touched_first] < span.start or ends[touched_last] > span.end
    if mode != "contract":
        return touched_first, touched_last, inside
    return bisect.bisect_left(starts, span.start), bisect.bisect_right(ends, span.end) - 1, inside


def _word_spans(text, spans, offsets, mode, where, report) -> list[tuple[int, int, str]]:
    """(first word, last word, label) of each usable span, after snapping under mode."""
    starts, ends = [s for s, _ in offsets], [e for _, e in offsets]
    out: list[tuple[int, int, str]] = []
    for span in spans:
        first, last, inside = _word_range(span, starts, ends, mode)
        name = f"{where}: span [{span.start}, {span.end}) {span.label}"
        shown = context(text, span.start, span.end)
        if first > last:
            report.add("no_words", f"{name} covers no whole word: {shown}")
        elif inside and mode == "strict":
            report.add("inside_word", f"{name} has a boundary inside a word: {shown}")
        elif out and first <= out[-1][1]:
            report.add("overlap", f"{name} shares the word {text[slice(*offsets[first])]!r} with another "
                                  f"span after snapping ({mode}): {shown}")
        else:
            if inside:
                report.add("inside_word", f"{name} has a boundary inside a word ({mode}ed to "
                                          f"[{starts[first]}, {ends[last]})): {shown}")
            out.append((first, last, span.label))
    return out


def check_tokens(text: str, tokens: Sequence[tuple[int, int]], where: str) -> Offsets:
    """Given tokens (Prodigy) as offsets: inside the text, non-empty, in order, not overlapping."""
    previous_end = 0
    for i, (start, end) in enumerate(tokens):
        if not (isinstance(start, int) and isinstance(end, int) and previous_end <= start < end <= len(text)):
            raise DataError(f"{where}: token {i} [{start}, {end}) is not a non-empty range of the text after "
                            f"the previous token (text length {len(text)}). Fix or drop the tokens list.")
        previous_end = end
    return [(start, end) for start, end in tokens]


def align_record(text: str, spans: Iterable, *, tokens: Optional[Sequence[tuple[int, int]]] = None,
                 word_split: str = "punct", mode: str = DEFAULT_ALIGNMENT, where: str = "",
                 doc_id: Optional[int] = None, report: Optional[AlignmentReport] = None) -> SpanSentence:
    """Words (the given tokens, or text split by word_split) and the IOB2 tags of spans, given as CharSpan
    or (start, end, label[, text]) tuples. Problems go to report; without one, strict raises at once."""
    if mode not in ALIGNMENTS:
        raise ConfigError(f"--span_alignment {mode!r}: expected one of {', '.join(ALIGNMENTS)}.")
    own_report = report is None
    report = AlignmentReport(mode) if own_report else report
    offsets = check_tokens(text, tokens, where) if tokens is not None else split(text, word_split)[1]
    spans = [s if isinstance(s, CharSpan) else make_span(*s, where=where) for s in spans]
    usable = without_overlaps(text, [s for s in spans if _valid(text, s, where, report)], where, report)
    tags = ["O"] * len(offsets)
    for first, last, label in _word_spans(text, usable, offsets, mode, where, report):
        tags[first:last + 1] = ["B-" + label] + ["I-" + label] * (last - first)
    if own_report:
        report.check(where)
    return SpanSentence([text[s:e] for s, e in offsets], tags, doc_id, source=where or None, offsets=offsets, text=text)


def entity_spans(text: str, offsets: Sequence[tuple[int, int]], tags: Sequence[str], probs: np.ndarray,
                 iob: bool) -> list[dict]:
    """{"text", "label", "start", "end", "score"} of each entity of the tags, in order. Entities as seqeval
    and conlleval read IOB2: B-X, or an I-X that does not continue an X (only argmax emits those), starts
    a span that the following I-X extend. With plain tags (POS) every word is a span of its tag. The
    score is the mean probability of its words' tags (4 decimals)."""
    spans = []  # [first word, last word, label]
    for i, tag in enumerate(tags):
        label = tag[2:] if iob else tag
        if iob and tag == "O":
            continue
        if iob and tag.startswith("I-") and spans and spans[-1][1] == i - 1 and spans[-1][2] == label:
            spans[-1][1] = i
            continue
        spans.append([i, i, label])
    out = []
    for first, last, label in spans:
        start, end = offsets[first][0], offsets[last][1]
        out.append({"text": text[start:end], "label": label, "start": start, "end": end,
                    "score": round(float(np.mean(probs[first:last + 1])), 4)})
    return out


def record_spans(record: SpanSentence) -> list[CharSpan]:
    """The entity spans of a record's IOB2 tags, as predict's spans output finds them."""
    found = entity_spans(record.text, record.offsets, record.tags, np.ones(len(record.tags)), iob=True)
    return [CharSpan(e["start"], e["end"], e["label"], e["text"]) for e in found]
