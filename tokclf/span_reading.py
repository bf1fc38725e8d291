"""Which reader a data file needs (--input_format auto), and span files read for the commands: training
and evaluate get labelled sentences, predict the texts alone.

Detection looks at the first row only, so that today's files read as before: a `.json`/`.jsonl` row with
a words list (`tokens`, or --text_column_name) is the `json` format of tokclf.records, a Label Studio task
(a "data" object) or a doccano/Prodigy row (a text string and spans) is that tool's format
(tokclf.span_formats.detect_span_format tells the JSONL ones apart), anything else stays `json` so that
its reader explains what is wrong. `.csv` is `json`; every other file is CoNLL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from tokclf.errors import DataError
from tokclf.span_formats import (SPAN_FORMATS, detect_span_format, doc_id_of, file_text, jsonl_rows,
                                 labelstudio_tasks, read_span_file, text_of)

FILE_FORMATS = ("auto", "conll", "json", *SPAN_FORMATS)
JSON_SUFFIXES = (".json", ".jsonl")
SPAN_KEYS = ("spans", "label", "entities")  # where doccano and Prodigy rows keep their spans


def first_row(path: Path) -> Optional[dict]:
    """The first object of a JSON list or JSON Lines file, without parsing the rest (a Label Studio export
    of eng.train is 20 MB); None when the file does not start with one."""
    content = file_text(path).lstrip()
    content = content[1:].lstrip() if content.startswith("[") else content
    try:
        row, _ = json.JSONDecoder().raw_decode(content)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) else None


def file_format(path: Path, input_format: str = "auto", text_column: Optional[str] = None) -> str:
    """input_format, or the format the file's suffix and first row show (see the module's docstring)."""
    if input_format != "auto":
        return input_format
    if path.suffix == ".csv":
        return "json"
    if path.suffix not in JSON_SUFFIXES:
        return "conll"
    row = first_row(path)
    if row is None:
        return "json"
    words = row.get(text_column or "tokens")
    if isinstance(words, list) and not any(isinstance(w, dict) for w in words):
        return "json"  # Prodigy's tokens are objects; a words list is the json format's
    if isinstance(row.get("data"), dict):
        return "labelstudio"
    if isinstance(row.get(text_column or "text"), str) and any(key in row for key in SPAN_KEYS + ("tokens",)):
        return detect_span_format(path)
    return "json"


def read_span_sentences(path: Path, fmt: str, text_column: Optional[str], word_split: str,
                        alignment: str) -> list:
    """The labelled sentences of a span file; what alignment did is printed on one line."""
    records, report = read_span_file(path, fmt, word_split=word_split, alignment=alignment,
                                     text_column=text_column or "text")
    if report.counts:
        print(report.brief(str(path)))
    if not records:
        raise DataError(f"{path}: no annotated {fmt} records to train on ({report.brief('counts') or 'empty'}). "
                        f"Annotate some, or check --input_format.")
    return records


def span_texts(path: Path, fmt: str, text_column: str = "text") -> list[tuple[str, Optional[int]]]:
    """(text, doc_id) of every task or row of a span file, in order, its spans ignored: what predict
    pre-annotates (a task without annotations too)."""
    content = file_text(path)
    if fmt == "labelstudio":
        return [(text_of(task["data"], text_column, where), doc_id_of(task["data"]))
                for where, task in labelstudio_tasks(path, content)]
    return [(text_of(row, text_column, f"{path}:{line_no}"), doc_id_of(row))
            for line_no, row in jsonl_rows(path, content)]
