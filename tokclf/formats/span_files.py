"""What the span formats (exports of annotation tools: Label Studio, doccano, Prodigy) share: a text
with [start, end) character spans per task or row, aligned to words by tokclf.formats.spans.

A span format module gives a SpanReader its `items` (the texts with their spans and given tokens, in
order, counting what it skips in the AlignmentReport) and `texts` (every text, spans ignored: what
predict pre-annotates). The reader turns items into labelled sentences (strict alignment: every
problem of the file collected first, then one DataError lists them) and texts into predict's records.
Offsets are Python character (code point) offsets; the original text is never changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

import numpy as np

from tokclf.errors import DataError
from tokclf.formats.base import Reading, chunked
from tokclf.formats.textfile import document_id, json_rows
from tokclf.records import Input, Record
from tokclf.formats.spans import AlignmentReport, CharSpan, SpanSentence, align_record, entity_spans, make_span
from tokclf.formats.words import split


@dataclass
class Item:
    """One text of a span file before alignment."""

    where: str  # `path:LINE` or `path: task ID`
    text: str
    spans: list[CharSpan]
    tokens: Optional[list[tuple[int, int]]] = None
    doc_id: Optional[int] = None


Items = Callable[[Path, Reading, AlignmentReport], Iterable[Item]]
Texts = Callable[[Path, Reading], Iterable[tuple[str, Optional[int]]]]


def text_of(row: dict, key: str, where: str) -> str:
    text = row.get(key)
    if not isinstance(text, str):
        raise DataError(f"{where}: expected the text as a string in {key!r}; the keys are {sorted(row)}. "
                        f"Pass text_column (--text_column_name) to name another.")
    return text


def span_objects(row: dict, key: str, names: tuple[str, str], where: str) -> list[CharSpan]:
    """The spans of a list of objects holding the start under names[0], the end under names[1], a label."""
    entries = row.get(key) or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise DataError(f"{where}: {key!r} must be a list of objects with {names[0]!r}, {names[1]!r} and 'label'.")
    return [make_span(e.get(names[0]), e.get(names[1]), e.get("label"), e.get("text"), where) for e in entries]


def jsonl_texts(path: Path, reading: Reading) -> Iterator[tuple[str, Optional[int]]]:
    """(text, document) of every row of a JSON Lines span file."""
    for line_no, row in json_rows(path):
        where = f"{path}:{line_no}"
        yield text_of(row, reading.text, where), document_id(row, where)


@dataclass(frozen=True)
class SpanReader:
    """The labelled reader and the text reader of one span format."""

    name: str
    items: Items
    texts: Optional[Texts] = None  # None: the format gives predict's records itself

    def aligned(self, path: Path, reading: Reading) -> tuple[list[SpanSentence], AlignmentReport]:
        """The records of the file and what alignment did to them (report.summary(path) for the log)."""
        report = AlignmentReport(reading.span_alignment)
        records = [align_record(item.text, item.spans, tokens=item.tokens, word_split=reading.word_split,
                                mode=reading.span_alignment, where=item.where, doc_id=item.doc_id, report=report)
                   for item in self.items(Path(path), reading, report)]
        report.check(str(path))
        return records, report

    def sentences(self, path: Path, reading: Reading) -> list[SpanSentence]:
        """The labelled sentences for training; what alignment did is printed on one line."""
        records, report = self.aligned(path, reading)
        if report.counts:
            print(report.brief(str(path)))
        if not records:
            raise DataError(f"{path}: no annotated {self.name} records to train on "
                            f"({report.brief('counts') or 'empty'}). Annotate some, or check --input_format.")
        return records

    def chunks(self, path: Path, reading: Reading, size: int, whole_documents: bool) -> Iterator[Input]:
        """Predict's records: every text, split by --word_split, its spans ignored."""
        def records() -> Iterator[Record]:
            for text, doc in self.texts(Path(path), reading):
                words, offsets = split(text, reading.word_split)
                yield Record(words, text, offsets, doc=doc)
        return chunked(records(), size, whole_documents)


def record_entities(record: Record, tags: list[str], probs: Optional[Sequence[float]], iob: bool) -> list[dict]:
    """The entities of a record's tags, each with its score (1.0 per word without probabilities)."""
    probs = np.ones(len(tags)) if probs is None else np.asarray(probs, dtype=float)
    return entity_spans(record.text, record.offsets, tags, probs, iob)
