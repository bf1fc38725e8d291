"""doccano's sequence labeling export, JSON Lines: {"text", "label": [[start, end, "X"], ...]}, or in
newer exports "entities"/"spans": [{"start_offset", "end_offset", "label"}]. Without tokens the words
come from --word_split. Written by predict in the `label` form, one row a line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

from tokclf.errors import DataError
from tokclf.formats.base import Format, Reading, Tagged, Writing
from tokclf.formats.span_files import Item, SpanReader, jsonl_texts, record_entities, span_objects, text_of
from tokclf.formats.textfile import document_id, first_json_row, json_rows
from tokclf.records import Record
from tokclf.formats.spans import AlignmentReport, CharSpan, make_span

OFFSET_NAMES = ("start_offset", "end_offset")


def _spans(row: dict, where: str) -> list[CharSpan]:
    if "label" in row:
        entries = row["label"] or []
        if not isinstance(entries, list) or not all(isinstance(e, list) and len(e) == 3 for e in entries):
            raise DataError(f"{where}: 'label' must hold [start, end, \"TYPE\"] lists (a sequence labeling "
                            f"export), got {str(row['label'])[:60]}.")
        return [make_span(*entry, where=where) for entry in entries]
    for key in ("entities", "spans"):
        if key in row:
            return span_objects(row, key, OFFSET_NAMES, where)
    raise DataError(f"{where}: no 'label', 'entities' or 'spans' field; the keys are {sorted(row)}.")


def _items(path: Path, reading: Reading, report: AlignmentReport) -> Iterator[Item]:
    for line_no, row in json_rows(path):
        where = f"{path}:{line_no}"
        yield Item(where, text_of(row, reading.text, where), _spans(row, where), doc_id=document_id(row, where))


def doccano_record(text: str, words: Sequence[str], offsets: Sequence[tuple[int, int]], tags: Sequence[str],
                   probs: Optional[Sequence[float]] = None, *, iob: bool = True) -> dict:
    """A doccano sequence labeling JSONL row: {"text", "label": [[start, end, "X"], ...]}."""
    entities = record_entities(Record(list(words), text, list(offsets)), list(tags), probs, iob)
    return {"text": text, "label": [[e["start"], e["end"], e["label"]] for e in entities]}


def write_doccano(chunks: Iterable[Tagged], writing: Writing) -> Iterator[str]:
    for inp, tags, probs in chunks:
        for record, record_tags, record_probs in zip(inp.records, tags, probs):
            row = doccano_record(record.text, record.words, record.offsets, record_tags, record_probs, iob=writing.iob)
            yield json.dumps(row, ensure_ascii=False)


def _sniff(path: Path, reading: Reading) -> bool:
    """A text and its spans as `label` lists, or `entities`/`spans` objects with `start_offset` (Prodigy's
    and the spans output's hold `start`; Prodigy rows may hold tokens)."""
    row = first_json_row(path)
    if row is None or not isinstance(row.get(reading.text), str) or "tokens" in row:
        return False
    spans = row.get("spans") if isinstance(row.get("spans"), list) else []
    entities = row.get("entities") if isinstance(row.get("entities"), list) else []
    if any(isinstance(s, dict) and "start" in s for s in spans + entities):
        return False  # Prodigy's spans, or tokclf's own spans output
    return "label" in row or "entities" in row or bool(spans)


READER = SpanReader("doccano", _items, jsonl_texts)
FORMAT = Format(
    names=("doccano",),
    summary="doccano sequence labeling export (JSONL): a text and [start, end, label] spans",
    suffixes=(".jsonl", ".json"),
    sniff=_sniff,
    sentences=READER.sentences,
    texts=READER.chunks,
    write=write_doccano,
    output_suffixes=(".jsonl", ".json"),
    sample=json.dumps({"text": "EU rejects German call", "label": [[0, 2, "ORG"], [11, 17, "MISC"]]}) + "\n",
)
