"""Read labelled sentences from CoNLL column files, JSON/JSONL, CSV or a Hub dataset.

Every reader returns plain `Sentence` records (words, tag strings, document id). Nothing here imports
torch or transformers; the Hub reader imports `datasets` only when it is used.
"""

from __future__ import annotations

import ast
import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional

from tokclf.errors import DataError

SPLITS = ("train", "validation", "test")
# File names looked for in --data_dir, per split, in order.
DATA_DIR_NAMES = {
    "train": ("eng.train", "train"),
    "validation": ("eng.testa", "validation", "valid", "dev"),
    "test": ("eng.testb", "test"),
}
DATA_DIR_SUFFIXES = ("", ".txt", ".conll", ".jsonl", ".json", ".csv")
DOCSTART = "-DOCSTART-"
# A byte-order mark at the start of a line: Windows tools open files with one, and `cat a b` leaves one
# at each join. It is never part of a word, a tag, a column name or a sentence.
BOM = "\ufeff"
BOM_AT_LINE_START = re.compile("^" + BOM, re.MULTILINE)


@dataclass
class Sentence:
    words: list[str]
    tags: list[str]
    doc_id: Optional[int] = None
    # Where it was read, so that errors about a tag can name `file:line`:
    source: Optional[str] = None  # the file, or `dataset[split]` on the Hub
    line: Optional[int] = None  # CoNLL: the line of the first word; word j is on line + j
    row: Optional[str] = None  # JSON/JSONL/CSV and Hub: the row's line number, or `row N`

    def where(self, j: int) -> Optional[str]:
        """Where word j was read: `path:LINE` (CoNLL), `path:ROW, word J+1` (rows), or None if unknown."""
        if self.source is None:
            return None
        if self.line is not None:
            return f"{self.source}:{self.line + j}"
        return f"{self.source}:{self.row}, word {j + 1}" if self.row else f"{self.source}, word {j + 1}"


# ----------------------------------------------------------------------------------------------------
# CoNLL column files


def conll_tag_column(task: str, n_columns: int, override: Optional[str]) -> int:
    """Which 0-based column holds the task's tags: CoNLL-2003 is `word POS chunk NER`."""
    if override is not None:
        if not override.isdigit():
            raise DataError(f"--label_column_name must be a column number for CoNLL files, got {override!r}.")
        column = int(override)
    elif task == "ner" or n_columns == 2:
        column = n_columns - 1
    else:
        column = {"pos": 1, "chunk": 2}[task]
    if not 1 <= column < n_columns:
        raise DataError(
            f"task '{task}' needs tag column {column}, but the file has {n_columns} columns "
            f"(word + {n_columns - 1} tag columns). Pick another --task_name or --label_column_name."
        )
    return column


def conll_sentences(numbered_lines) -> Iterator[tuple[int, list[tuple[int, list[str]]]]]:
    """(document index, [(line number, columns), ...]) per sentence of a CoNLL column file: blank
    lines end sentences, a -DOCSTART- line ends one and opens the next document (one before any word
    opens document 0). The one CoNLL grouping, used by training's reader and predict's."""
    rows: list[tuple[int, list[str]]] = []
    doc, seen_word = 0, False
    for line_no, line in numbered_lines:
        columns = line.split()
        if columns and columns[0] != DOCSTART:
            rows.append((line_no, columns))
            seen_word = True
            continue
        if rows:
            yield doc, rows
            rows = []
        if columns and seen_word:  # -DOCSTART-
            doc += 1
    if rows:
        yield doc, rows


def read_conll(path: str | Path, task: str, label_column: Optional[str] = None) -> list[Sentence]:
    """Sentences of a whitespace-separated column file; blank lines end sentences, -DOCSTART- documents."""
    return list(iter_conll(path, task, label_column))


def iter_conll(path: str | Path, task: str, label_column: Optional[str] = None) -> Iterator[Sentence]:
    """read_conll's sentences one at a time: the file is read line by line, never held whole."""
    path = Path(path)
    n_columns, column, first_line = None, None, None
    for doc_id, rows in conll_sentences(_numbered_lines(path)):
        for line_no, parts in rows:
            if n_columns is None:
                n_columns, first_line = len(parts), line_no
                if n_columns < 2:
                    raise DataError(
                        f"{path}:{line_no}: expected a word and at least one tag column, found 1 column: "
                        f"{' '.join(parts)!r}. CoNLL files hold `word tag ...` separated by spaces or tabs."
                    )
                column = conll_tag_column(task, n_columns, label_column)
            elif len(parts) != n_columns:
                raise DataError(
                    f"{path}:{line_no}: expected {n_columns} columns (as on line {first_line}), found "
                    f"{len(parts)}: {' '.join(parts)!r}. Fix or remove this line."
                )
        words, tags = [r[1][0] for r in rows], [r[1][column] for r in rows]
        yield Sentence(words, tags, doc_id, str(path), rows[0][0])


def _numbered_lines(path: Path) -> Iterable[tuple[int, str]]:
    for line_no, line in raw_lines(path):
        try:
            text = line.decode("utf-8")
            yield line_no, BOM_AT_LINE_START.sub("", text) if BOM in text else text
        except UnicodeDecodeError as err:
            raise DataError(
                f"{path}:{line_no}: not UTF-8 (byte {line[err.start]:#x} at column {err.start + 1}). "
                f"Convert the file, e.g. `iconv -f latin1 -t utf-8`."
            ) from None


def raw_lines(path: Path, what: str = "") -> Iterator[tuple[int, bytes]]:
    """(line number, bytes without the \\n) of a file, streamed. A file of nothing but BOMs and
    whitespace is an error, raised at its end (such a file yields no sentence before it)."""
    if not path.is_file():
        raise DataError(f"{path}: no such file.{what}")
    content = False
    with path.open("rb") as f:
        for line_no, line in enumerate(f, start=1):
            line = line[:-1] if line.endswith(b"\n") else line
            content = content or bool(line.replace(BOM.encode(), b"").strip())
            yield line_no, line
    if not content:
        raise DataError(f"{path}: the file is empty.")


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise DataError(f"{path}: no such file.")
    raw = path.read_bytes()
    if not raw.replace(BOM.encode(), b"").strip():
        raise DataError(f"{path}: the file is empty.")
    return raw


# ----------------------------------------------------------------------------------------------------
# JSON / JSONL / CSV


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
            keys = (_pick_column(text_column, "tokens", columns, 0, path, "--text_column_name"),
                    _pick_column(label_column, f"{task}_tags", columns, 1, path, "--label_column_name"))
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


def _text_lines(path: Path) -> Iterator[str]:
    """The file's lines as text, streamed: without \\n or \\r\\n, a BOM at a line start dropped."""
    for line_no, line in raw_lines(path):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{path}:{line_no}: not UTF-8. Convert the file to UTF-8.") from None
        yield BOM_AT_LINE_START.sub("", text[:-1] if text.endswith("\r") else text)


def _rows(path: Path):
    """(location, row dict) pairs; the location is `line N` or `row N` for error messages."""
    if path.suffix == ".csv":
        # the BOM goes before the header is read, else it renames the first column
        for i, row in enumerate(csv.DictReader(_text_lines(path)), start=2):  # line 1 is the header
            yield f"{i}", row
        return
    if path.suffix == ".jsonl":
        for i, line in enumerate(_text_lines(path), start=1):
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


def _pick_column(wanted, default, columns, position, path, flag) -> str:
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


# ----------------------------------------------------------------------------------------------------
# Hub datasets


def read_hub(name: str, config: Optional[str], task: str, text_column, label_column, trust_remote_code=False):
    """{split: sentences} of a Hub dataset; ClassLabel tags become their names."""
    import datasets

    try:
        dsets = datasets.load_dataset(name, config, trust_remote_code=trust_remote_code) \
            if trust_remote_code else datasets.load_dataset(name, config)
    except Exception as err:  # the library raises many types; say which dataset failed and why
        raise DataError(f"--dataset_name {name}: could not load it ({type(err).__name__}: {err}).") from None
    out = {}
    for split, hub_split in (("train", "train"), ("validation", "validation"), ("test", "test")):
        if hub_split not in dsets:
            continue
        ds = dsets[hub_split]
        columns = ds.column_names
        where = f"{name}[{hub_split}]"
        words_key = _pick_column(text_column, "tokens", columns, 0, where, "--text_column_name")
        tags_key = _pick_column(label_column, f"{task}_tags", columns, 1, where, "--label_column_name")
        feature = ds.features[tags_key]
        names = getattr(getattr(feature, "feature", None), "names", None)
        sentences = []
        for i, row in enumerate(ds):
            tags = [names[t] for t in row[tags_key]] if names else list(row[tags_key])
            if len(tags) != len(row[words_key]):
                raise DataError(f"{where} row {i}: {len(row[words_key])} words but {len(tags)} tags.")
            sentences.append(Sentence(list(row[words_key]), tags, row.get("doc_id"), where, row=f"row {i}"))
        out[split] = sentences
    return out


# ----------------------------------------------------------------------------------------------------
# Choosing files


def read_file(path: str | Path, task: str, text_column=None, label_column=None) -> list[Sentence]:
    path = Path(path)
    if path.suffix in (".json", ".jsonl", ".csv"):
        sentences = read_records(path, task, text_column, label_column)
    else:
        sentences = read_conll(path, task, label_column)
    if not sentences:
        raise DataError(f"{path}: holds no sentences (only blank or -DOCSTART- lines).")
    return sentences


def iter_file(path: str | Path, task: str, text_column=None, label_column=None) -> Iterator[Sentence]:
    """read_file's sentences one at a time (CoNLL, JSONL and CSV files are read line by line).
    Keep its choice of reader the same as read_file's."""
    path = Path(path)
    if path.suffix in (".json", ".jsonl", ".csv"):
        sentences = iter_records(path, task, text_column, label_column)
    else:
        sentences = iter_conll(path, task, label_column)
    empty = True
    for sentence in sentences:
        empty = False
        yield sentence
    if empty:
        raise DataError(f"{path}: holds no sentences (only blank or -DOCSTART- lines).")


def find_split_files(data_dir: str | Path) -> dict[str, Path]:
    """{split: path} for the files --data_dir holds; it must hold a training file."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"--data_dir {data_dir}: no such folder.")
    found = {}
    for split, names in DATA_DIR_NAMES.items():
        for name in names:
            hits = [data_dir / (name + suffix) for suffix in DATA_DIR_SUFFIXES if (data_dir / (name + suffix)).is_file()]
            if hits:
                found[split] = hits[0]
                break
    if "train" not in found:
        raise DataError(
            f"--data_dir {data_dir}: no training file. Expected eng.train or train[.txt|.conll|.jsonl|.json|.csv]."
        )
    return found


def load_splits(data, trust_remote_code: bool = False) -> dict[str, list[Sentence]]:
    """{split: sentences} from --data_dir, --*_file or --dataset_name (files win over the folder)."""
    files: dict[str, Path] = {}
    if data.data_dir:
        files.update(find_split_files(data.data_dir))
    for split, path in (("train", data.train_file), ("validation", data.validation_file), ("test", data.test_file)):
        if path:
            files[split] = Path(path)
    if data.dataset_name and not files:
        splits = read_hub(data.dataset_name, data.dataset_config_name, data.task_name,
                          data.text_column_name, data.label_column_name, trust_remote_code)
    else:
        splits = {split: read_file(path, data.task_name, data.text_column_name, data.label_column_name)
                  for split, path in files.items()}
    for split, sentences in splits.items():
        for i, sentence in enumerate(sentences):
            if not sentence.words:
                raise DataError(f"{split} split, sentence {i}: has no words. Remove it from the data.")
    if "train" not in splits:
        raise DataError("No training split found. Give --train_file, --data_dir or a dataset with a train split.")
    return splits
