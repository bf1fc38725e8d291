"""What predict reads: raw text, CoNLL, JSONL or span files, as records of words with character offsets.

  text   one sentence or paragraph per line; an empty line is an empty record, never dropped.
         Words follow --word_split (tokclf.words; the training's, else punct: WORD_RULE), and each keeps
         its character offsets in its line.
  conll  words in the first column; blank lines end sentences; -DOCSTART- lines end sentences too.
  jsonl  one object per non-blank line with a "tokens" list.
  labelstudio, doccano, prodigy  the text of every task or row (tokclf.span_reading.span_texts), split
         as text is; the spans they already hold are ignored: predict pre-annotates the texts.
A record is a text line, a CoNLL sentence, a JSONL row, or a task or row of a span file. Input is UTF-8;
a BOM is dropped (at any line start: `cat a b` leaves one inside), lines end in \\n or \\r\\n.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from tokclf.data import DOCSTART, conll_sentences, text_lines
from tokclf.errors import DataError
from tokclf.span_reading import SPAN_FORMATS, file_format, span_texts
from tokclf.words import split


@dataclass
class Record:
    """What one output record describes: a text line, a CoNLL sentence or a JSONL row."""

    words: list[str]
    text: str  # the line, or the words joined by single spaces
    offsets: list[tuple[int, int]]  # each word's [start, end) in text
    row: Optional[dict] = None  # the JSONL object, whose other fields jsonl output keeps
    doc: Optional[int] = None  # document: -DOCSTART- blocks (CoNLL), blank-line paragraphs (text), doc_id (JSONL)


@dataclass
class Input:
    """A read input file: its records and, for CoNLL, its lines."""

    format: str
    records: list[Record]
    lines: list[str] = field(default_factory=list)  # conll: every line, so that output can reproduce them
    # conll: per line the (record, word) it holds; None on blank and -DOCSTART- lines
    line_words: list[Optional[tuple[int, int]]] = field(default_factory=list)


def iter_lines(path: Path) -> Iterator[str]:
    """The file's lines without their \\n or \\r\\n, streamed; a final line break ends the last line."""
    return text_lines(path, "Convert the file, e.g. `iconv -f latin1 -t utf-8`.", " Check --input.",
                      allow_empty=True)


def read_lines(path: Path) -> list[str]:
    """iter_lines as a list."""
    return list(iter_lines(path))


def detect_format(path: Path, lines) -> str:
    """conll for .conll, for a file with a -DOCSTART- line, or for blank-line sentence breaks plus the same
    number (≥2) of columns on every non-blank line; text otherwise. Prose lines vary in length, column
    files do not. A words-only CoNLL file reads as text: pass --input_format conll. `lines` may stream."""
    if path.suffix == ".conll":
        return "conll"
    widths, n_lines, n_filled = set(), 0, 0
    for line in lines:
        n_lines += 1
        columns = line.split()
        if columns:
            if columns[0] == DOCSTART:
                return "conll"
            n_filled += 1
            widths.add(len(columns))
    has_breaks = n_filled < n_lines
    return "conll" if has_breaks and len(widths) == 1 and min(widths) >= 2 else "text"


def joined(words: list[str], row: Optional[dict] = None, doc: Optional[int] = None) -> Record:
    """A record of given words: its text is the words joined by single spaces."""
    offsets, start = [], 0
    for word in words:
        offsets.append((start, start + len(word)))
        start += len(word) + 1
    return Record(words, " ".join(words), offsets, row, doc)


def read_text(lines: list[str], word_split: str = "punct") -> Input:
    records, doc = [], 0
    for line in lines:
        words, offsets = split(line, word_split)
        records.append(Record(words, line, offsets, doc=doc))
        doc += not words  # a blank line ends a document (for --context_sentences)
    return Input("text", records)


def read_conll(lines: list[str]) -> Input:
    """Sentences of the first column; every line is kept with the (sentence, word) it holds."""
    records, line_words = [], [None] * len(lines)
    for doc, rows in conll_sentences(enumerate(lines)):
        for j, (index, _) in enumerate(rows):
            line_words[index] = (len(records), j)
        records.append(joined([columns[0] for _, columns in rows], doc=doc))
    return Input("conll", records, lines, line_words)


def read_jsonl(path: Path, lines: list[str], offset: int = 0) -> Input:
    records = []
    for line_no, line in enumerate(lines, start=1 + offset):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{line_no}: not valid JSON ({err.msg}). Write one object per line.") from None
        tokens = row.get("tokens") if isinstance(row, dict) else None
        if not isinstance(tokens, list):
            raise DataError(f"{path}:{line_no}: expected an object with a \"tokens\" list, such as "
                            f"{{\"tokens\": [\"EU\", \"rejects\"]}}; got {line[:60]!r}.")
        doc = row.get("doc_id")
        records.append(joined([str(t) for t in tokens], row, doc if isinstance(doc, int) else None))
    return Input("jsonl", records)


def read_span_texts(path: Path, span_format: str, word_split: str, text_column: str) -> Input:
    records = []
    for text, doc in span_texts(path, span_format, text_column):
        words, offsets = split(text, word_split)
        records.append(Record(words, text, offsets, doc=doc))
    return Input(span_format, records)


def read_input(path: Path, input_format: str, word_split: str = "punct", text_column: str = "text") -> Input:
    """The records of a file in the given format; for auto, .jsonl/.json files by their first row (a tokens
    list: jsonl, else a span format, as training detects them), other files as `detect_format` says."""
    lines = read_lines(path)  # first: its messages about a missing or non-UTF-8 file name --input
    if input_format == "auto" and path.suffix in (".jsonl", ".json"):
        found = file_format(path, "auto", "tokens")
        input_format = found if found in SPAN_FORMATS else "jsonl"
    if input_format in SPAN_FORMATS:
        return read_span_texts(path, input_format, word_split, text_column)
    if input_format == "auto":
        input_format = detect_format(path, lines)
    if input_format == "jsonl":
        return read_jsonl(path, lines)
    return read_conll(lines) if input_format == "conll" else read_text(lines, word_split)


# ----------------------------------------------------------------------------------------------------
# Streaming: the same records, a chunk at a time


def input_format_of(path: Path, input_format: str) -> str:
    """The format read_input would use, found in one streamed pass."""
    if input_format == "auto" and path.suffix in (".jsonl", ".json"):
        next(iter_lines(path), None)  # its messages about a missing or non-UTF-8 file name --input
        found = file_format(path, "auto", "tokens")
        return found if found in SPAN_FORMATS else "jsonl"
    return detect_format(path, iter_lines(path)) if input_format == "auto" else input_format


def input_chunks(path: Path, input_format: str, size: int, whole_documents: bool = False, word_split: str = "punct",
                 text_column: str = "text") -> Iterator[Input]:
    """read_input's Input cut into consecutive chunks of about `size` records (the first chunk may be empty
    for an empty file); joined, they are read_input's. With `whole_documents` a chunk ends only where a
    document does, so that --context_sentences sees every neighbour. Span files (exports of annotation
    tools, one JSON document) come as one chunk."""
    if input_format in SPAN_FORMATS:
        yield read_span_texts(path, input_format, word_split, text_column)
        return
    lines = iter_lines(path)
    if input_format == "conll":
        yield from _conll_chunks(lines, size, whole_documents)
        return
    offset, batch, doc = 0, [], 0
    for line in lines:
        if len(batch) >= size and (not whole_documents or _document_ends(input_format, batch[-1], line, word_split)):
            inp = _chunk(path, input_format, batch, offset, doc, word_split)
            yield inp
            doc = inp.records[-1].doc + (not inp.records[-1].words) if inp.records else doc
            offset, batch = offset + len(batch), []
        batch.append(line)
    yield _chunk(path, input_format, batch, offset, doc, word_split)


def _chunk(path: Path, input_format: str, batch: list[str], offset: int, doc: int, word_split: str) -> Input:
    if input_format == "jsonl":
        return read_jsonl(path, batch, offset)
    inp = read_text(batch, word_split)
    for record in inp.records:  # text documents are counted from the start of the file
        record.doc += doc
    return inp


def _document_ends(input_format: str, last: str, line: str, word_split: str) -> bool:
    """Whether a document ends between two consecutive lines: after a blank text line; between JSONL
    rows of different (or no) doc_id."""
    if input_format != "jsonl":
        return not split(last, word_split)[0]
    return _doc_id(last) is None or _doc_id(last) != _doc_id(line)


def _doc_id(line: str) -> Optional[int]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None  # read_jsonl says what is wrong with the line
    doc = row.get("doc_id") if isinstance(row, dict) else None
    return doc if isinstance(doc, int) else None


def _conll_chunks(lines: Iterator[str], size: int, whole_documents: bool) -> Iterator[Input]:
    """CoNLL chunks: each holds its lines and sentences; a chunk ends before the first line of a sentence."""
    held: list[str] = []  # the lines read and not yet handed out
    start = 0  # the line number of held[0]

    def numbered():
        for index, line in enumerate(lines):
            held.append(line)
            yield index, line

    records, at = [], {}
    for doc, rows in conll_sentences(numbered()):
        if len(records) >= size and (not whole_documents or doc != records[-1].doc):
            cut = rows[0][0] - start
            yield Input("conll", records, held[:cut], [at.get(start + i) for i in range(cut)])
            del held[:cut]
            start, records, at = start + cut, [], {}
        for j, (index, _) in enumerate(rows):
            at[index] = (len(records), j)
        records.append(joined([columns[0] for _, columns in rows], doc=doc))
    yield Input("conll", records, list(held), [at.get(start + i) for i in range(len(held))])
