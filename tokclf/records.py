"""The plain records every reader yields: labelled sentences for training and evaluate, text records
for predict. Small shared types at the bottom of the import graph: no torch, no transformers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class Sentence:
    """A labelled sentence: words, one tag string per word, its document (None: none known)."""

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


@dataclass
class Record:
    """What predict tags and one output record describes: a text line, a CoNLL sentence, a token row, or a
    task or row of a span file."""

    words: list[str]
    text: str  # the line or the span file's text untouched, or the words joined by single spaces
    offsets: list[tuple[int, int]]  # each word's [start, end) in text
    row: Optional[dict] = None  # a token row's object, whose other fields jsonl output keeps
    doc: Optional[int] = None  # its document (for --context_sentences), None: none known


@dataclass
class Input:
    """A chunk of an input file: its records and, for formats whose output reproduces the input's lines
    (CoNLL), those lines."""

    records: list[Record]
    lines: Optional[list[str]] = None  # every line of the chunk, in order; None: the format keeps no lines
    # per line the (record, word) it holds; None on lines without a word (blank, -DOCSTART-)
    line_words: list[Optional[tuple[int, int]]] = field(default_factory=list)


def joined(words: list[str], row: Optional[dict] = None, doc: Optional[int] = None) -> Record:
    """A record of given words: its text is the words joined by single spaces."""
    offsets, start = [], 0
    for word in words:
        offsets.append((start, start + len(word)))
        start += len(word) + 1
    return Record(words, " ".join(words), offsets, row, doc)
