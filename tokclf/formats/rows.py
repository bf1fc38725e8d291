"""Token rows: objects with a list of words and a list of tags, one per sentence, as JSON (a list of
objects, or {"data": [...]}; a `.json` file that is JSON Lines is read as such, as `datasets` does),
JSON Lines, or CSV (cells holding JSON lists such as ["EU", "rejects"]; the first line names the
columns). JSONL and CSV are read line by line.

The words come from --text_column_name (default `tokens`, else the first column), the tags from
--label_column_name (default `<task>_tags`, else the second column; a file with another task's
`<task>_tags` column but not this task's is refused, so that --task_name chunk never trains NER tags).
Predict reads the `tokens` of each row and its jsonl output keeps the row's other fields.
"""

from __future__ import annotations

import ast
import csv
import json
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

from tokclf.errors import DataError
from tokclf.formats.base import Format, Reading, Tagged, Writing, chunked
from tokclf.formats.textfile import (document_id, first_json_row, json_object, json_rows, logical_suffix,
                                     numbered_lines, whole_text)
from tokclf.records import Input, Record, Sentence, joined

TASKS = ("ner", "pos", "chunk")  # the tasks whose tags a row may hold as `<task>_tags`
PREDICT_WORDS = "tokens"  # the words list predict reads


def read_records(path: str | Path, task: str, text_column: Optional[str], label_column: Optional[str]
                 ) -> list[Sentence]:
    """Sentences of a .json (list of objects, or {"data": [...]}), .jsonl or .csv file."""
    return list(iter_records(path, Reading(task=task, words_column=text_column, label_column=label_column)))


def iter_records(path: str | Path, reading: Reading) -> Iterator[Sentence]:
    """The labelled sentences one at a time; .jsonl and .csv files are read line by line."""
    path = Path(path)
    keys = None
    for where, row in rows_of(path):
        if keys is None:
            columns = list(row.keys())
            keys = (pick_column(reading.words_column, "tokens", columns, 0, path, "--text_column_name"),
                    pick_tags_column(reading.label_column, reading.task, columns, path))
        yield _row_sentence(row, *keys, path, where)
    if keys is None:
        raise DataError(f"{path}: holds no rows.")


def _row_sentence(row: dict, words_key: str, tags_key: str, path: Path, where: str) -> Sentence:
    words, tags = _list_cell(row, words_key, path, where), _list_cell(row, tags_key, path, where)
    if len(words) != len(tags):
        raise DataError(
            f"{path}:{where}: '{words_key}' has {len(words)} items but '{tags_key}' has {len(tags)}. "
            f"Each word needs exactly one tag."
        )
    if not words:
        raise DataError(f"{path}:{where}: a sentence with no words. Remove the row.")
    if any(not isinstance(t, str) for t in tags):
        raise DataError(
            f"{path}:{where}: tags in '{tags_key}' must be strings such as 'B-PER', got {tags[:3]!r}."
        )
    doc = document_id(row, f"{path}:{where}")
    return Sentence([str(w) for w in words], list(tags), doc, str(path), row=where)


def _csv_value(cell):
    """A CSV cell as the JSON (or Python literal) value it holds, else the text itself."""
    if not isinstance(cell, str):
        return cell
    try:
        return json.loads(cell)
    except json.JSONDecodeError:
        try:
            return ast.literal_eval(cell)
        except (ValueError, SyntaxError):
            return cell


def rows_of(path: Path) -> Iterator[tuple[str, dict]]:
    """(location, row dict) pairs; the location is the line number (`N`) or `row N` for error messages."""
    suffix = logical_suffix(path)
    if suffix == ".csv":
        lines = (text for _, text in numbered_lines(path))  # BOMs go before the header names the columns
        for i, row in enumerate(csv.DictReader(lines), start=2):  # line 1 is the header
            yield f"{i}", {key: _csv_value(value) for key, value in row.items()}
        return
    if suffix == ".jsonl":
        yield from ((f"{i}", row) for i, row in json_rows(path))
        return
    text = whole_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        # Many ".json" files are really JSON Lines, as `datasets` also accepts.
        yield from ((f"{i}", json_object(line, path, i)) for i, line in enumerate(text.split("\n"), start=1)
                    if line.strip())
        return
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a list of objects (or JSON Lines), got {type(data).__name__}.")
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise DataError(f"{path}: row {i}: expected an object, got {type(row).__name__}.")
        yield f"row {i}", row


def pick_column(wanted: Optional[str], default: str, columns: Sequence[str], position: int, path: str | Path,
                flag: str) -> str:
    """The column named by the option, else `default`, else the column at `position`."""
    if wanted is not None:
        if wanted not in columns:
            raise DataError(f"{path}: no column '{wanted}' (columns: {list(columns)}). Fix {flag}.")
        return wanted
    if default in columns:
        return default
    if len(columns) <= position:
        raise DataError(f"{path}: needs a words column and a tags column, found {list(columns)}.")
    return columns[position]


def pick_tags_column(wanted: Optional[str], task: str, columns: Sequence[str], path: str | Path) -> str:
    """pick_column for the tags: `<task>_tags` by default; when it is missing but another task's tags
    column is there, the file holds other tags than the task's: refused, never trained on them."""
    default = f"{task}_tags"
    others = [c for c in columns if c != default and c in {f"{t}_tags" for t in TASKS}]
    if wanted is None and default not in columns and others:
        raise DataError(f"{path}: no '{default}' column for --task_name {task} (columns: {list(columns)}). "
                        f"Pass --task_name {others[0][:-len('_tags')]}, or --label_column_name to use another "
                        f"column.")
    return pick_column(wanted, default, columns, 1, path, "--label_column_name")


def _list_cell(row: dict, key: str, path: Path, where: str) -> list:
    if key not in row:
        raise DataError(f"{path}:{where}: no '{key}' field.")
    value = row[key]
    if not isinstance(value, list):
        raise DataError(
            f"{path}:{where}: '{key}' must be a list such as [\"EU\", \"rejects\"], got "
            f"{type(value).__name__} {str(value)[:40]!r}."
        )
    return value


def _sniff(path: Path, reading: Reading) -> bool:
    """A first row with a list of words (not Prodigy's token objects), or no JSON row at all: then the
    reader says what is wrong."""
    if logical_suffix(path) == ".csv":
        return True
    row = first_json_row(path)
    if row is None:
        return True
    words = row.get(reading.words_column or PREDICT_WORDS)
    return isinstance(words, list) and not any(isinstance(w, dict) for w in words)


def row_records(path: Path) -> Iterator[Record]:
    """Predict's records: the `tokens` of each row, the row kept for the output."""
    for where, row in rows_of(path):
        tokens = row.get(PREDICT_WORDS)
        if not isinstance(tokens, list):
            raise DataError(f"{path}:{where}: expected an object with a \"tokens\" list, such as "
                            f"{{\"tokens\": [\"EU\", \"rejects\"]}}; got {json.dumps(row, ensure_ascii=False)[:60]!r}.")
        yield joined([str(t) for t in tokens], row, document_id(row, f"{path}:{where}"))


def _texts(path: Path, reading: Reading, size: int, whole_documents: bool) -> Iterator[Input]:
    return chunked(row_records(path), size, whole_documents)


def write_rows(chunks: Iterable[Tagged], writing: Writing) -> Iterator[str]:
    """{"tokens", "tags"} per record, JSON Lines; a row read keeps its other fields ("tags" is overwritten)."""
    for inp, tags, _ in chunks:
        for record, record_tags in zip(inp.records, tags):
            yield json.dumps({"tokens": record.words, **(record.row or {}), "tags": record_tags}, ensure_ascii=False)


FORMAT = Format(
    names=("jsonl", "json"),
    summary="token rows: a words list and a tags list per sentence, in JSON Lines, a JSON list, or CSV",
    suffixes=(".jsonl", ".json", ".csv"),
    sniff=_sniff,
    sentences=iter_records,
    texts=_texts,
    write=write_rows,
    output_suffixes=(".jsonl", ".json"),
    sample='{"tokens": ["EU", "rejects", "German", "call"], "ner_tags": ["B-ORG", "O", "B-MISC", "O"]}\n',
)
