"""Span files of annotation tools → SpanSentence records (words, IOB2 tags, doc_id, offsets, text).

Formats (SPAN_FORMATS; `detect_span_format` tells them apart by content):
  labelstudio  Label Studio's JSON export: a list of tasks {"id", "data": {TEXT: ...}, "annotations":
               [{"result": [{"type": "labels", "value": {"start", "end", "text", "labels": [X]}}], ...}]}.
               Cancelled or skipped annotations are not used; of several, the latest (updated_at, else
               created_at, then id) is, and the others are counted. Label Studio's own converter instead
               writes every annotation as its own sentence, which trains on the same text twice.
               A task without a usable annotation is skipped (an empty result is a text without entities).
               Results of other types (choices, relations) are ignored.
  doccano      JSONL: {"text", "label": [[start, end, "X"], ...]} (sequence labeling export), or
               "entities"/"spans": [{"start_offset", "end_offset", "label"}] (newer exports).
  prodigy      JSONL as Prodigy and spaCy write it: {"text", "spans": [{"start", "end", "label"}],
               "tokens": [{"start", "end", "text"}]?, "answer"?}. Given tokens are the words; rows whose
               answer is not "accept" are skipped and counted.
Without tokens the words come from `--word_split` (tokclf.words). Spans become tags by tokclf.spans.
Writers: `labelstudio_task` (a task with model predictions, or annotations) and `doccano_record`.
Offsets are Python character (code point) offsets; the original text is never changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from tokclf.errors import ConfigError, DataError
from tokclf.spans import (DEFAULT_ALIGNMENT, AlignmentReport, CharSpan, SpanSentence, align_record, check_tokens,
                          make_span)

SPAN_FORMATS = ("labelstudio", "doccano", "prodigy")
LABELSTUDIO_SOURCES = ("annotations", "predictions")


@dataclass
class _Item:
    """One text of a span file before alignment."""

    where: str
    text: str
    spans: list[CharSpan]
    tokens: Optional[list[tuple[int, int]]] = None
    doc_id: Optional[int] = None


def file_text(path: Path) -> str:
    if not path.is_file():
        raise DataError(f"{path}: no such file.")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line_no = raw[: err.start].count(b"\n") + 1
        raise DataError(f"{path}:{line_no}: not UTF-8. Convert the file to UTF-8.") from None


def jsonl_rows(path: Path, content: str) -> Iterator[tuple[int, dict]]:
    for line_no, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{line_no}: not valid JSON ({err.msg}). Span files hold one object per "
                            f"line (JSONL), or are a Label Studio JSON export.") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{line_no}: expected a JSON object, got {type(row).__name__}.")
        yield line_no, row


def text_of(row: dict, key: str, where: str) -> str:
    text = row.get(key)
    if not isinstance(text, str):
        raise DataError(f"{where}: expected the text as a string in {key!r}; the keys are {sorted(row)}. "
                        f"Pass text_column (--text_column_name) to name another.")
    return text


def doc_id_of(row: dict) -> Optional[int]:
    doc = row.get("doc_id", row.get("document_id"))
    return doc if isinstance(doc, int) and not isinstance(doc, bool) else None


# ----------------------------------------------------------------------------------------------------
# Label Studio


def _recency(annotation: dict) -> tuple:
    """Sort key: the most recently changed annotation last (ISO timestamps sort as strings)."""
    stamp = annotation.get("updated_at") or annotation.get("created_at") or ""
    number = annotation.get("id")
    return str(stamp), number if isinstance(number, int) else 0


def _labelstudio_spans(annotation: dict, where: str) -> list[CharSpan]:
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


def labelstudio_tasks(path: Path, content: str) -> Iterator[tuple[str, dict]]:
    """(where: `path: task ID`, task) of each task of a Label Studio JSON export, in order."""
    try:
        tasks = json.loads(content)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: not valid JSON ({err.msg}). Export the project as JSON.") from None
    tasks = [tasks] if isinstance(tasks, dict) else tasks
    if not isinstance(tasks, list):
        raise DataError(f"{path}: expected a Label Studio JSON export (a list of tasks).")
    for number, task in enumerate(tasks):
        task_id = task.get("id", f"#{number}") if isinstance(task, dict) else f"#{number}"
        where = f"{path}: task {task_id}"
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise DataError(f"{where}: expected a task object with a \"data\" object.")
        yield where, task


def _labelstudio_items(path: Path, content: str, text_column: str, source: str,
                       report: AlignmentReport) -> Iterator[_Item]:
    for where, task in labelstudio_tasks(path, content):
        text = text_of(task["data"], text_column, where)
        given = [a for a in task.get(source) or [] if isinstance(a, dict)]
        usable = [a for a in given if not (a.get("was_cancelled") or a.get("skipped"))]
        if len(given) > len(usable):
            report.add("cancelled_annotation", f"{where}: {len(given) - len(usable)} cancelled", len(given) - len(usable))
        if not usable:
            report.add("unannotated", f"{where}: no {source} to use")
            continue
        latest = max(usable, key=_recency)
        if len(usable) > 1:
            report.add("older_annotation", f"{where}: used {source[:-1]} {latest.get('id')!r} of "
                                           f"{len(usable)}", len(usable) - 1)
        yield _Item(where, text, _labelstudio_spans(latest, where), doc_id=doc_id_of(task["data"]))


# ----------------------------------------------------------------------------------------------------
# doccano and Prodigy


def _span_objects(row: dict, key: str, names: tuple[str, str], where: str) -> list[CharSpan]:
    entries = row.get(key) or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise DataError(f"{where}: {key!r} must be a list of objects with {names[0]!r}, {names[1]!r} and 'label'.")
    return [make_span(e.get(names[0]), e.get(names[1]), e.get("label"), e.get("text"), where) for e in entries]


def _doccano_spans(row: dict, where: str) -> list[CharSpan]:
    if "label" in row:
        entries = row["label"] or []
        if not isinstance(entries, list) or not all(isinstance(e, list) and len(e) == 3 for e in entries):
            raise DataError(f"{where}: 'label' must hold [start, end, \"TYPE\"] lists (a sequence labeling "
                            f"export), got {str(row['label'])[:60]}.")
        return [make_span(*entry, where=where) for entry in entries]
    for key in ("entities", "spans"):
        if key in row:
            return _span_objects(row, key, ("start_offset", "end_offset"), where)
    raise DataError(f"{where}: no 'label', 'entities' or 'spans' field; the keys are {sorted(row)}.")


def _doccano_items(path: Path, content: str, text_column: str, report: AlignmentReport) -> Iterator[_Item]:
    for line_no, row in jsonl_rows(path, content):
        where = f"{path}:{line_no}"
        yield _Item(where, text_of(row, text_column, where), _doccano_spans(row, where), doc_id=doc_id_of(row))


def _prodigy_tokens(row: dict, text: str, where: str) -> Optional[list[tuple[int, int]]]:
    tokens = row.get("tokens")
    if tokens is None:
        return None
    if not isinstance(tokens, list) or not all(isinstance(t, dict) for t in tokens):
        raise DataError(f"{where}: 'tokens' must be a list of objects with 'start' and 'end'.")
    offsets = check_tokens(text, [(t.get("start"), t.get("end")) for t in tokens], where)
    for i, (token, (start, end)) in enumerate(zip(tokens, offsets)):
        if "text" in token and token["text"] != text[start:end]:
            raise DataError(f"{where}: token {i} has text {token['text']!r} but the text at its offsets is "
                            f"{text[start:end]!r}.")
    return offsets


def _prodigy_items(path: Path, content: str, text_column: str, report: AlignmentReport) -> Iterator[_Item]:
    for line_no, row in jsonl_rows(path, content):
        where = f"{path}:{line_no}"
        if row.get("answer", "accept") != "accept":
            report.add("rejected", f"{where}: answer {row['answer']!r}")
            continue
        text = text_of(row, text_column, where)
        spans = _span_objects(row, "spans", ("start", "end"), where)
        yield _Item(where, text, spans, _prodigy_tokens(row, text, where), doc_id_of(row))


# ----------------------------------------------------------------------------------------------------
# Detection and reading


def detect_span_format(path: str | Path) -> str:
    """labelstudio for a JSON list (or object) of tasks with "data"; for JSONL, by the first row: prodigy
    with "tokens" or spans holding "start", doccano with "label", "entities" or spans holding "start_offset"."""
    path = Path(path)
    content = file_text(path).lstrip()
    if content.startswith("["):
        return "labelstudio"
    line_no, row = next(jsonl_rows(path, content), (1, None))
    if row is None:
        raise DataError(f"{path}: the file is empty.")
    if "data" in row and ("annotations" in row or "predictions" in row):
        return "labelstudio"
    spans = row.get("spans") if isinstance(row.get("spans"), list) else []
    if "tokens" in row or any(isinstance(s, dict) and "start" in s for s in spans):
        return "prodigy"
    if "label" in row or "entities" in row or spans:
        return "doccano"
    if "spans" in row:
        return "prodigy"
    raise DataError(f"{path}:{line_no}: cannot tell the span format (keys {sorted(row)}). Pass the format: "
                    f"{', '.join(SPAN_FORMATS)}.")


def read_span_file(path: str | Path, span_format: str = "auto", *, word_split: str = "punct",
                   alignment: str = DEFAULT_ALIGNMENT, text_column: str = "text",
                   labelstudio_source: str = "annotations") -> tuple[list[SpanSentence], AlignmentReport]:
    """The records of a span file and what alignment did to them (report.summary(path) for the log).
    Under strict alignment every problem of the file is collected first, then one DataError lists them."""
    path = Path(path)
    fmt = detect_span_format(path) if span_format == "auto" else span_format
    if fmt not in SPAN_FORMATS:
        raise ConfigError(f"span format {span_format!r}: expected auto or one of {', '.join(SPAN_FORMATS)}.")
    if labelstudio_source not in LABELSTUDIO_SOURCES:
        raise ConfigError(f"labelstudio_source {labelstudio_source!r}: expected annotations or predictions.")
    content = file_text(path)
    report = AlignmentReport(alignment)
    if fmt == "labelstudio":
        items = _labelstudio_items(path, content, text_column, labelstudio_source, report)
    else:
        items = (_doccano_items if fmt == "doccano" else _prodigy_items)(path, content, text_column, report)
    records = [align_record(item.text, item.spans, tokens=item.tokens, word_split=word_split, mode=alignment,
                            where=item.where, doc_id=item.doc_id, report=report) for item in items]
    report.check(str(path))
    return records, report


# ----------------------------------------------------------------------------------------------------
# Writers


def _entities(text, words, offsets, tags, probs, iob: bool) -> list[dict]:
    from tokclf.writers import entity_spans  # here, not on top: writers may come to import this module

    probs = np.ones(len(tags)) if probs is None else np.asarray(probs, dtype=float)
    return entity_spans(SpanSentence(list(words), list(tags), offsets=list(offsets), text=text), tags, probs, iob)


def labelstudio_task(text: str, words, offsets, tags, probs=None, *, text_column: str = "text",
                     from_name: str = "label", to_name: str = "text", model_version: str = "tokclf",
                     as_annotation: bool = False, iob: bool = True) -> dict:
    """A Label Studio task for import: the text and the entities as one prediction (pre-annotation),
    each region with its score (the mean probability of its words' tags); the prediction's score is the
    mean over all words. as_annotation: an annotation instead (e.g. gold data to review), without scores."""
    entities = _entities(text, words, offsets, tags, probs, iob)
    result = [{"id": f"tokclf-{i}", "from_name": from_name, "to_name": to_name, "type": "labels",
               "value": {"start": e["start"], "end": e["end"], "text": e["text"], "labels": [e["label"]]},
               **({} if as_annotation else {"score": e["score"]})} for i, e in enumerate(entities)]
    if as_annotation:
        return {"data": {text_column: text}, "annotations": [{"result": result}]}
    score = round(float(np.mean(probs)), 4) if probs is not None and len(probs) else None
    prediction = {"model_version": model_version, "score": score, "result": result}
    return {"data": {text_column: text}, "predictions": [prediction]}


def doccano_record(text: str, words, offsets, tags, probs=None, *, iob: bool = True) -> dict:
    """A doccano sequence labeling JSONL row: {"text", "label": [[start, end, "X"], ...]}."""
    return {"text": text, "label": [[e["start"], e["end"], e["label"]]
                                    for e in _entities(text, words, offsets, tags, probs, iob)]}
