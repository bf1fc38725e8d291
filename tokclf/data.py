"""Read labelled sentences from CoNLL column files, JSON/JSONL, CSV, span files or a Hub dataset.

Every reader returns plain `Sentence` records (words, tag strings, document id). This module reads CoNLL
and picks the reader of each file (`read_file`, by --input_format): rows with word and tag lists are in
tokclf.records (also the Hub reader, which imports `datasets` only when it is used), span files of
annotation tools in tokclf.span_formats. Nothing here imports torch or transformers.
"""

from __future__ import annotations

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


def raw_lines(path: Path, what: str = "", allow_empty: bool = False) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes without the \\n) of a file, streamed. Unless `allow_empty`, a file of nothing
    but BOMs and whitespace is an error, raised at its end (such a file yields no sentence before it)."""
    if not path.is_file():
        raise DataError(f"{path}: no such file.{what}")
    content = False
    with path.open("rb") as f:
        for line_no, line in enumerate(f, start=1):
            line = line[:-1] if line.endswith(b"\n") else line
            content = content or bool(line.replace(BOM.encode(), b"").strip())
            yield line_no, line
    if not content and not allow_empty:
        raise DataError(f"{path}: the file is empty.")


def text_lines(path: Path, fix: str, what: str = "", allow_empty: bool = False) -> Iterator[str]:
    """raw_lines as text: without \\n or \\r\\n, a BOM at a line start dropped; a line that is not
    UTF-8 stops with its number and `fix`."""
    for line_no, line in raw_lines(path, what, allow_empty):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{path}:{line_no}: not UTF-8. {fix}") from None
        text = text[:-1] if text.endswith("\r") else text
        yield BOM_AT_LINE_START.sub("", text) if BOM in text else text


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise DataError(f"{path}: no such file.")
    raw = path.read_bytes()
    if not raw.replace(BOM.encode(), b"").strip():
        raise DataError(f"{path}: the file is empty.")
    return raw


# ----------------------------------------------------------------------------------------------------
# Choosing files


def read_file(path: str | Path, task: str, text_column=None, label_column=None, **reading) -> list[Sentence]:
    """The sentences of a file, as a list (see iter_file)."""
    return list(iter_file(path, task, text_column, label_column, **reading))


def iter_file(path: str | Path, task: str, text_column=None, label_column=None, *, input_format: str = "auto",
              word_split: str = "punct", span_alignment: str = "strict") -> Iterator[Sentence]:
    """The sentences of a file in input_format (auto: tokclf.span_reading.file_format decides), one at a
    time: CoNLL, JSONL and CSV files are read line by line."""
    # Imported here: both modules build on Sentence and the helpers above.
    from tokclf.records import iter_records
    from tokclf.span_reading import file_format, read_span_sentences

    path = Path(path)
    fmt = file_format(path, input_format, text_column)
    if fmt == "json":
        sentences = iter_records(path, task, text_column, label_column)
    elif fmt == "conll":
        sentences = iter_conll(path, task, label_column)
    else:
        sentences = iter(read_span_sentences(path, fmt, text_column, word_split, span_alignment))
    empty = True
    for sentence in sentences:
        empty = False
        yield sentence
    if empty:
        raise DataError(f"{path}: holds no sentences (only blank or -DOCSTART- lines).")


def reading_options(data) -> dict:
    """The data options that decide how a file becomes sentences, as iter_file's keywords."""
    return {"input_format": data.input_format, "word_split": data.word_split, "span_alignment": data.span_alignment}


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


def split_files(data) -> dict[str, Path]:
    """{split: file} of --data_dir and the --*_file options (files win over the folder); empty for a Hub
    dataset. The one choice of files (tokclf.arrow_data.split_datasets reads them)."""
    files: dict[str, Path] = {}
    if data.data_dir:
        files.update(find_split_files(data.data_dir))
    for split, path in (("train", data.train_file), ("validation", data.validation_file), ("test", data.test_file)):
        if path:
            files[split] = Path(path)
    return files
