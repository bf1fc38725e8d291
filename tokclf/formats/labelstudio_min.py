"""Label Studio's JSON-MIN export: a list of records, one per annotation, each the task's data fields at
the top level with the regions of each labeling control under its name: `[{"id", "text", "label":
[{"start", "end", "text", "labels": [X]}], "annotator", "annotation_id", "created_at", ...}]`.

Read as the JSON export is (tokclf/formats/labelstudio.py), with the same alignment and word split: of
several records of one task (one per annotation), the latest (updated_at, else created_at, then
annotation_id) is used and the others are counted; a record without an annotation (`annotation_id` and
`annotator` null, no regions: the converter's record of a task nobody annotated) is skipped and
counted. The regions are those of every key whose value is a list
of objects with `start`, `end` and `labels` (the control's name: `label` by default). Written by
predict as one JSON list, one record a line, the regions under --from_name and the model as annotator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator, Optional

from tokclf.errors import DataError
from tokclf.formats.base import Format, Reading, Tagged, Writing
from tokclf.formats.labelstudio import recency
from tokclf.formats.span_files import Item, SpanReader, record_entities, text_of
from tokclf.formats.spans import AlignmentReport, CharSpan, make_span
from tokclf.formats.textfile import document_id, first_json_row, json_value, whole_text

ANNOTATION_KEYS = ("annotator", "annotation_id")


def _is_regions(value) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(v, dict) and {"start", "end", "labels"} <= v.keys() for v in value))


def records(path: Path) -> Iterator[tuple[str, dict]]:
    """(where: `path: record N (task ID)`, record) of each record of a JSON-MIN export, in order."""
    value = json_value(whole_text(path), path, fix="Export the project as JSON-MIN.")
    if not isinstance(value, list):
        raise DataError(f"{path}: expected a Label Studio JSON-MIN export (a list of records).")
    for number, record in enumerate(value, start=1):
        if not isinstance(record, dict):
            raise DataError(f"{path}: record {number}: expected an object, got {json.dumps(record)[:60]}.")
        yield f"{path}: record {number} (task {record.get('id', '?')})", record


def _spans(record: dict, where: str) -> list[CharSpan]:
    return [make_span(region.get("start"), region.get("end"), label, region.get("text"), where)
            for value in record.values() if _is_regions(value) for region in value
            for label in (region["labels"] if isinstance(region["labels"], list) else [region["labels"]])]


def _latest_per_task(path: Path, report: AlignmentReport) -> list[tuple[str, dict]]:
    """The records to train on in file order: per task the latest annotation's; unannotated ones counted."""
    chosen: dict = {}
    for where, record in records(path):
        if all(record.get(key) is None for key in ANNOTATION_KEYS) and not any(map(_is_regions, record.values())):
            report.add("unannotated", f"{where}: no annotation to use")
            continue
        task = record.get("id", where)
        held = chosen.get(task)
        stamp = {"updated_at": record.get("updated_at"), "created_at": record.get("created_at"),
                 "id": record.get("annotation_id")}
        if held is not None:
            report.add("older_annotation", f"{where}: task {task!r} has several annotations; the latest is used")
            if recency(stamp) < held[0]:
                continue
        chosen[task] = (recency(stamp), where, record)
    return [(where, record) for _, where, record in chosen.values()]


def _items(path: Path, reading: Reading, report: AlignmentReport) -> Iterator[Item]:
    for where, record in _latest_per_task(path, report):
        yield Item(where, text_of(record, reading.text, where), _spans(record, where),
                   doc_id=document_id(record, where))


def _texts(path: Path, reading: Reading) -> Iterator[tuple[str, Optional[int]]]:
    seen = set()
    for where, record in records(path):
        if record.get("id") is not None and record["id"] in seen:
            continue  # another annotation of a task already read: one text per task
        seen.add(record.get("id"))
        yield text_of(record, reading.text, where), document_id(record, where)


def write_records(chunks: Iterable[Tagged], writing: Writing) -> Iterator[str]:
    """`[`, one record a line (comma-separated), `]`: one JSON list however many chunks come."""
    yield "["
    held, number = None, 0  # the previous record's line: its comma waits for the next one
    for inp, tags, probs in chunks:
        for record, record_tags, record_probs in zip(inp.records, tags, probs):
            if held is not None:
                yield held + ","
            number += 1
            regions = [{"start": e["start"], "end": e["end"], "text": e["text"], "labels": [e["label"]]}
                       for e in record_entities(record, record_tags, record_probs, writing.iob)]
            held = json.dumps({"id": number, writing.text_key: record.text, writing.from_name: regions,
                               "annotator": writing.model_version}, ensure_ascii=False)
    if held is not None:
        yield held
    yield "]"


def _sniff(path: Path, reading: Reading) -> bool:
    row = first_json_row(path)
    return (row is not None and not isinstance(row.get("data"), dict)
            and (any(key in row for key in ANNOTATION_KEYS) or any(_is_regions(v) for v in row.values())))


READER = SpanReader("labelstudio-min", _items, _texts)
FORMAT = Format(
    names=("labelstudio-min",),
    summary="Label Studio JSON-MIN export: a record per annotation, the text and each control's regions at the top",
    suffixes=(".json",),
    sniff=_sniff,
    sentences=READER.sentences,
    texts=READER.chunks,
    write=write_records,
    output_suffixes=(),  # a .json output stays Label Studio's JSON export: pass --output_format labelstudio-min
    sample=json.dumps([{"id": 1, "text": "EU rejects German call", "label": [
        {"start": 0, "end": 2, "text": "EU", "labels": ["ORG"]}], "annotator": 1, "annotation_id": 1}]) + "\n",
)
