"""tokclf's entity spans, JSON Lines: {"text", "entities": [{"text", "label", "start", "end", "score"}]}
per record. Predict writes it (the default for text and Prodigy input): for text input `text` is the
line, for span files their text untouched, otherwise the words joined by single spaces; text[start:end]
is the entity's text; score is the mean probability of its words' tags (4 decimals). An entity is a
B-X I-X* run (tokclf.formats.spans.entity_spans); with plain tags (POS) every word is a span of its tag.
Read back like the span files (training on predict's output, --word_split for the words), so that a
run's output can be reviewed and trained on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator

from tokclf.formats.base import Format, Reading, Tagged, Writing
from tokclf.formats.span_files import Item, SpanReader, jsonl_texts, record_entities, span_objects, text_of
from tokclf.formats.textfile import document_id, first_json_row, json_rows
from tokclf.formats.spans import AlignmentReport


def _items(path: Path, reading: Reading, report: AlignmentReport) -> Iterator[Item]:
    for line_no, row in json_rows(path):
        where = f"{path}:{line_no}"
        spans = span_objects(row, "entities", ("start", "end"), where)
        yield Item(where, text_of(row, reading.text, where), spans, doc_id=document_id(row, where))


def write_spans(chunks: Iterable[Tagged], writing: Writing) -> Iterator[str]:
    for inp, tags, probs in chunks:
        for record, record_tags, record_probs in zip(inp.records, tags, probs):
            entities = record_entities(record, record_tags, record_probs, writing.iob)
            yield json.dumps({"text": record.text, "entities": entities}, ensure_ascii=False)


def _sniff(path: Path, reading: Reading) -> bool:
    row = first_json_row(path)
    if row is None:
        return False
    entities = row.get("entities")
    return (isinstance(row.get(reading.text), str) and isinstance(entities, list)
            and all(isinstance(e, dict) and "start" in e for e in entities))


READER = SpanReader("spans", _items, jsonl_texts)
FORMAT = Format(
    names=("spans",),
    summary="tokclf's entity spans (JSONL): a text and its entities with start, end, label and score",
    suffixes=(".jsonl", ".json"),
    sniff=_sniff,
    sentences=READER.sentences,
    texts=READER.chunks,
    write=write_spans,
    output_suffixes=(".jsonl", ".json"),
    sample=json.dumps({"text": "EU rejects German call", "entities": [
        {"text": "EU", "label": "ORG", "start": 0, "end": 2, "score": 0.98}]}) + "\n",
)
