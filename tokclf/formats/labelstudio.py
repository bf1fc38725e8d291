"""Label Studio's JSON export: a list of tasks {"id", "data": {TEXT: ...}, "annotations": [{"result":
[{"type": "labels", "value": {"start", "end", "text", "labels": [X]}}], ...}]}.

Cancelled or skipped annotations are not used; of several, the latest (updated_at, else created_at,
then id) is, and the others are counted. Label Studio's own converter instead writes every annotation
as its own sentence, which trains on the same text twice. A task without a usable annotation is skipped
(an empty result is a text without entities). Results of other types (choices, relations) are ignored.
Written by predict as one JSON array of tasks, one task a line, so that the file imports as it is
(Label Studio reads a .json file as a list of tasks, not as JSON Lines), each with its predictions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np

from tokclf.errors import ConfigError, DataError
from tokclf.formats.base import Format, Reading, Tagged, Writing, own_output_reading
from tokclf.formats.span_files import Item, SpanReader, record_entities, text_of
from tokclf.formats.textfile import document_id, first_json_row, json_value, whole_text
from tokclf.records import Record
from tokclf.formats.spans import AlignmentReport, CharSpan, make_span

SOURCES = ("annotations", "predictions")


def recency(annotation: dict) -> tuple:
    """Sort key: the most recently changed annotation last (ISO timestamps sort as strings)."""
    stamp = annotation.get("updated_at") or annotation.get("created_at") or ""
    number = annotation.get("id")
    return str(stamp), number if isinstance(number, int) else 0


def _spans(annotation: dict, where: str) -> list[CharSpan]:
    spans = []
    for result in annotation.get("result") or []:
        if not isinstance(result, dict) or result.get("type") != "labels":
            continue  # choices, relations, text areas: not entity spans
        value = result.get("value") or {}
        labels = value.get("labels")
        if not isinstance(labels, list) or not labels:
            raise DataError(f"{where}: result {result.get('id')!r} has no value.labels list.")
        # A region with two labels becomes two spans on the same characters: reported as an overlap.
        spans += [make_span(value.get("start"), value.get("end"), label, value.get("text"), where)
                  for label in labels]
    return spans


def labelstudio_tasks(path: Path) -> Iterator[tuple[str, dict]]:
    """(where: `path: task ID`, task) of each task of a Label Studio JSON export, in order."""
    tasks = json_value(whole_text(path), path, fix="Export the project as JSON.")
    tasks = [tasks] if isinstance(tasks, dict) else tasks
    if not isinstance(tasks, list):
        raise DataError(f"{path}: expected a Label Studio JSON export (a list of tasks).")
    for number, task in enumerate(tasks):
        task_id = task.get("id", f"#{number}") if isinstance(task, dict) else f"#{number}"
        where = f"{path}: task {task_id}"
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise DataError(f"{where}: expected a task object with a \"data\" object.")
        yield where, task


def _items(path: Path, reading: Reading, report: AlignmentReport) -> Iterator[Item]:
    source = reading.labelstudio_source
    if source not in SOURCES:
        raise ConfigError(f"labelstudio_source {source!r}: expected annotations or predictions.")
    for where, task in labelstudio_tasks(path):
        text = text_of(task["data"], reading.text, where)
        given = [a for a in task.get(source) or [] if isinstance(a, dict)]
        usable = [a for a in given if not (a.get("was_cancelled") or a.get("skipped"))]
        if len(given) > len(usable):
            report.add("cancelled_annotation", f"{where}: {len(given) - len(usable)} cancelled", len(given) - len(usable))
        if not usable:
            report.add("unannotated", f"{where}: no {source} to use")
            continue
        latest = max(usable, key=recency)
        if len(usable) > 1:
            report.add("older_annotation", f"{where}: used {source[:-1]} {latest.get('id')!r} of "
                                           f"{len(usable)}", len(usable) - 1)
        yield Item(where, text, _spans(latest, where), doc_id=document_id(task["data"], where))


def _texts(path: Path, reading: Reading) -> Iterator[tuple[str, Optional[int]]]:
    for where, task in labelstudio_tasks(path):
        yield text_of(task["data"], reading.text, where), document_id(task["data"], where)


def labelstudio_task(text: str, words: Sequence[str], offsets: Sequence[tuple[int, int]], tags: Sequence[str],
                     probs: Optional[Sequence[float]] = None, *, text_column: str = "text",
                     from_name: str = "label", to_name: str = "text", model_version: str = "tokclf",
                     as_annotation: bool = False, iob: bool = True) -> dict:
    """A Label Studio task for import: the text and the entities as one prediction (pre-annotation),
    each region with its score (the mean probability of its words' tags); the prediction's score is the
    mean over all words. as_annotation: an annotation instead (e.g. gold data to review), without scores."""
    entities = record_entities(Record(list(words), text, list(offsets)), list(tags), probs, iob)
    result = [{"id": f"tokclf-{i}", "from_name": from_name, "to_name": to_name, "type": "labels",
               "value": {"start": e["start"], "end": e["end"], "text": e["text"], "labels": [e["label"]]},
               **({} if as_annotation else {"score": e["score"]})} for i, e in enumerate(entities)]
    if as_annotation:
        return {"data": {text_column: text}, "annotations": [{"result": result}]}
    score = round(float(np.mean(probs)), 4) if probs is not None and len(probs) else None
    prediction = {"model_version": model_version, "score": score, "result": result}
    return {"data": {text_column: text}, "predictions": [prediction]}


def write_tasks(chunks: Iterable[Tagged], writing: Writing) -> Iterator[str]:
    """`[`, one task a line (comma-separated), `]`: one JSON list however many chunks come."""
    yield "["
    held = None  # the previous task's line: its comma waits for the next task
    for inp, tags, probs in chunks:
        for record, record_tags, record_probs in zip(inp.records, tags, probs):
            if held is not None:
                yield held + ","
            task = labelstudio_task(record.text, record.words, record.offsets, record_tags, record_probs,
                                    text_column=writing.text_key, from_name=writing.from_name,
                                    to_name=writing.to_name, model_version=writing.model_version, iob=writing.iob)
            held = json.dumps(task, ensure_ascii=False)
    if held is not None:
        yield held
    yield "]"


def _sniff(path: Path, reading: Reading) -> bool:
    row = first_json_row(path)
    return row is not None and isinstance(row.get("data"), dict)


READER = SpanReader("labelstudio", _items, _texts)
FORMAT = Format(
    names=("labelstudio",),
    summary="Label Studio JSON export: tasks with a text in `data` and character-span annotations",
    suffixes=(".json", ".jsonl"),
    sniff=_sniff,
    sentences=READER.sentences,
    texts=READER.chunks,
    write=write_tasks,
    output_suffixes=(".json", ".jsonl"),
    output_reading=lambda writing: own_output_reading(writing, labelstudio_source="predictions"),  # pre-annotations
    sample=json.dumps([{"id": 1, "data": {"text": "EU rejects German call"}, "annotations": [{"result": [
        {"type": "labels", "from_name": "label", "to_name": "text",
         "value": {"start": 0, "end": 2, "text": "EU", "labels": ["ORG"]}}]}]}]) + "\n",
)
