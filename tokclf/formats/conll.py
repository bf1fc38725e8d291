"""CoNLL column files: one word per line with its tags in whitespace-separated columns (CoNLL-2003:
`word POS chunk NER`), a blank line after each sentence, a -DOCSTART- line between documents.

Read for training by the task's column (`conll_tag_column`), for predict by the first column with every
line kept, so that the output reproduces the input with the predicted tag in its last column (or an
added one). Detected by the `.conll` suffix, or among files of other suffixes by content: a -DOCSTART-
line, or blank-line sentence breaks with the same number (≥2) of columns on every other line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Optional

from tokclf.errors import DataError, OutputError
from tokclf.formats.base import Format, Reading, Tagged, Writing, line_chunks, without_whitespace
from tokclf.formats.textfile import numbered_lines, text_lines
from tokclf.records import Input, Record, Sentence, joined

DOCSTART = "-DOCSTART-"


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


def conll_sentences(numbered_lines_: Iterable[tuple[int, str]]) -> Iterator[tuple[int, list[tuple[int, list[str]]]]]:
    """(document index, [(line number, columns), ...]) per sentence of a CoNLL column file: blank
    lines end sentences, a -DOCSTART- line ends one and opens the next document (one before any word
    opens document 0). The one CoNLL grouping, used by training's reader and predict's."""
    rows: list[tuple[int, list[str]]] = []
    doc, seen_word = 0, False
    for line_no, line in numbered_lines_:
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
    return list(iter_conll(path, Reading(task=task, label_column=label_column)))


def iter_conll(path: str | Path, reading: Reading) -> Iterator[Sentence]:
    """The labelled sentences one at a time: the file is read line by line, never held whole."""
    path = Path(path)
    n_columns, column, first_line = None, None, None
    for doc_id, rows in conll_sentences(numbered_lines(path)):
        for line_no, parts in rows:
            if n_columns is None:
                n_columns, first_line = len(parts), line_no
                if n_columns < 2:
                    raise DataError(
                        f"{path}:{line_no}: expected a word and at least one tag column, found 1 column: "
                        f"{' '.join(parts)!r}. CoNLL files hold `word tag ...` separated by spaces or tabs."
                    )
                column = conll_tag_column(reading.task, n_columns, reading.label_column)
            elif len(parts) != n_columns:
                raise DataError(
                    f"{path}:{line_no}: expected {n_columns} columns (as on line {first_line}), found "
                    f"{len(parts)}: {' '.join(parts)!r}. Fix or remove this line."
                )
        words, tags = [r[1][0] for r in rows], [r[1][column] for r in rows]
        yield Sentence(words, tags, doc_id, str(path), rows[0][0])


def looks_like_conll(lines: Iterable[str]) -> bool:
    """A -DOCSTART- line, or blank-line sentence breaks plus the same number (≥2) of columns on every
    non-blank line. Prose lines vary in length, column files do not. A words-only CoNLL file reads as
    text: pass --input_format conll. `lines` may stream."""
    widths, n_lines, n_filled = set(), 0, 0
    for line in lines:
        n_lines += 1
        columns = line.split()
        if columns:
            if columns[0] == DOCSTART:
                return True
            n_filled += 1
            widths.add(len(columns))
    has_breaks = n_filled < n_lines
    return has_breaks and len(widths) == 1 and min(widths) >= 2


def _sniff(path: Path, reading: Reading) -> bool:
    return looks_like_conll(text_lines(path, allow_empty=True))


def conll_chunks(lines: Iterable[str], size: int, whole_documents: bool) -> Iterator[Input]:
    """Predict's records: each chunk holds its lines and sentences (base.line_chunks)."""
    def sentences(numbered):
        for doc, rows in conll_sentences(numbered):
            yield rows[0][0], [index for index, _ in rows], joined([columns[0] for _, columns in rows], doc=doc)
    return line_chunks(lines, sentences, size, whole_documents)


def _texts(path: Path, reading: Reading, size: int, whole_documents: bool) -> Iterator[Input]:
    return conll_chunks(text_lines(path, " Check --input.", allow_empty=True), size, whole_documents)


def with_tag(line: str, tag: str, mode: str) -> str:
    """A CoNLL line with the tag replacing its last column (replace, when it has two or more) or added
    as a new one, separated by a tab if the line uses tabs. Trailing whitespace is dropped."""
    body = line.rstrip()
    columns = body.split()
    if mode == "replace" and len(columns) > 1:
        return body[: len(body) - len(columns[-1])] + tag
    return body + ("\t" if "\t" in body else " ") + tag


def write_conll(chunks: Iterable[Tagged], writing: Writing) -> Iterator[str]:
    """For CoNLL input every input line in order: a word line gets its tag, a -DOCSTART- line O, blank
    lines stay blank (--conll_mode). For other input `word tag` lines and a blank line after each record
    (also after an empty one)."""
    for inp, tags, _ in chunks:
        if inp.lines is not None:
            for line, at in zip(inp.lines, inp.line_words):
                yield line if not line.strip() else with_tag(line, "O" if at is None else tags[at[0]][at[1]],
                                                             writing.conll_mode)
            continue
        for record, record_tags in zip(inp.records, tags):
            yield from (f"{_column_word(word, record)} {tag}" for word, tag in zip(record.words, record_tags))
            yield ""


def _column_word(word: str, record: Record) -> str:
    """A word of other input (token rows, text) as CoNLL's first column: one that would read back as two
    columns or as a document break is refused (the output is discarded), never written."""
    if not without_whitespace(word) or word == DOCSTART:
        raise OutputError(f"the word {word!r} of the record {record.text[:60]!r} cannot be a CoNLL column (CoNLL "
                        f"separates columns by whitespace and reads {DOCSTART} as a document break). Write "
                        f"--output_format conllu or jsonl, which hold it.")
    return word


FORMAT = Format(
    names=("conll",),
    summary="column file: a word per line, its tags in columns; blank lines end sentences, -DOCSTART- documents",
    suffixes=(".conll",),
    data_dir_suffixes=("", ".txt"),
    catch_all=True,
    sniff=_sniff,
    sentences=iter_conll,
    texts=_texts,
    write=write_conll,
    output_suffixes=(".conll",),
    holds_label=without_whitespace,
    label_rule="labels without whitespace (CoNLL separates its columns by whitespace)",
    sample="EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\ncall NN I-NP O\n",
)
