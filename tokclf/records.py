"""Rows with a words list and a tags list: JSON (a list of objects, or {"data": [...]}), JSON Lines, CSV
(cells holding JSON lists), read into tokclf.data.Sentence records, JSONL and CSV line by line. The
`json` input format of tokclf.data.iter_file (Hub datasets are read in tokclf.arrow_data)."""

from __future__ import annotations

import ast
import csv
import json
from pathlib import Path
from typing import Optional

from tokclf.data import BOM_AT_LINE_START, Sentence, _read_bytes, text_lines
from tokclf.errors import DataError


def read_records(path: str | Path, task: str, text_column: Optional[str], label_column: Optional[str]):
    """Sentences of a .json (list of objects, or {"data": [...]}), .jsonl or .csv file."""
    return list(iter_records(path, task, text_column, label_column))


def iter_records(path: str | Path, task: str, text_column: Optional[str], label_column: Optional[str]):
    """read_records' sentences one at a time; .jsonl and .csv files are read line by line."""
    path = Path(path)
    keys = None
    for where, row in _rows(path):
        if keys is None:
            columns = list(row.keys())
            keys = (pick_column(text_column, "tokens", columns, 0, path, "--text_column_name"),
                    pick_column(label_column, f"{task}_tags", columns, 1, path, "--label_column_name"))
        yield _row_sentence(row, *keys, path, where)
    if keys is None:
        raise DataError(f"{path}: holds no rows.")


def _row_sentence(row: dict, words_key: str, tags_key: str, path: Path, where: str) -> Sentence:
    words = _list_cell(row, words_key, path, where, parse_text=path.suffix == ".csv")
    tags = _list_cell(row, tags_key, path, where, parse_text=path.suffix == ".csv")
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
    doc = row.get("doc_id", row.get("document_id"))
    return Sentence([str(w) for w in words], list(tags), doc if isinstance(doc, int) else None, str(path), row=where)


def _rows(path: Path):
    """(location, row dict) pairs; the location is `line N` or `row N` for error messages."""
    if path.suffix == ".csv":
        # the BOM goes before the header is read, else it renames the first column
        for i, row in enumerate(csv.DictReader(text_lines(path, "Convert the file to UTF-8.")), start=2):  # line 1 is the header
            yield f"{i}", row
        return
    if path.suffix == ".jsonl":
        for i, line in enumerate(text_lines(path, "Convert the file to UTF-8."), start=1):
            if line.strip():
                yield f"{i}", _json_object(line, path, i)
        return
    raw = _read_bytes(path)
    try:
        text = BOM_AT_LINE_START.sub("", raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        line_no = raw[: err.start].count(b"\n") + 1
        raise DataError(f"{path}:{line_no}: not UTF-8. Convert the file to UTF-8.") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        # Many ".json" files are really JSON Lines, as `datasets` also accepts.
        yield from ((f"{i}", _json_object(line, path, i))
                    for i, line in enumerate(text.splitlines(), start=1) if line.strip())
        return
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a list of objects (or JSON Lines), got {type(data).__name__}.")
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise DataError(f"{path}: row {i}: expected an object, got {type(row).__name__}.")
        yield f"row {i}", row


def _json_object(line: str, path: Path, line_no: int) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{line_no}: not valid JSON ({err.msg}).") from None
    if not isinstance(row, dict):
        raise DataError(f"{path}:{line_no}: expected a JSON object, got {type(row).__name__}.")
    return row


def pick_column(wanted, default, columns, position, path, flag) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise DataError(f"{path}: no column '{wanted}' (columns: {columns}). Fix {flag}.")
        return wanted
    if default in columns:
        return default
    if len(columns) <= position:
        raise DataError(f"{path}: needs a words column and a tags column, found {columns}.")
    return columns[position]


def _list_cell(row: dict, key: str, path: Path, where: str, parse_text: bool) -> list:
    if key not in row:
        raise DataError(f"{path}:{where}: no '{key}' field.")
    value = row[key]
    if parse_text and isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                pass
    if not isinstance(value, list):
        raise DataError(
            f"{path}:{where}: '{key}' must be a list such as [\"EU\", \"rejects\"], got "
            f"{type(value).__name__} {str(value)[:40]!r}."
        )
    return value
