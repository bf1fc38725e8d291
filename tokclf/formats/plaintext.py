"""Raw text, for predict: one sentence or paragraph per line; an empty line is an empty record, never
dropped, and ends a document (for --context_sentences). Words follow --word_split (tokclf.formats.words: the
training's, else punct: WORD_RULE), each with its character offsets in its line. Any file that no other
format claims and that does not look like CoNLL columns reads as text."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from tokclf.formats.base import Format, Reading, chunked
from tokclf.formats.textfile import text_lines
from tokclf.records import Input, Record
from tokclf.formats.words import split


def text_records(lines: Iterable[str], word_split: str = "punct") -> Iterator[Record]:
    """A record per line; blank lines end documents."""
    doc = 0
    for line in lines:
        words, offsets = split(line, word_split)
        yield Record(words, line, offsets, doc=doc)
        doc += not words


def _texts(path: Path, reading: Reading, size: int, whole_documents: bool) -> Iterator[Input]:
    lines = text_lines(path, " Check --input.", allow_empty=True)
    return chunked(text_records(lines, reading.word_split), size, whole_documents)


FORMAT = Format(
    names=("text",),
    summary="raw text (predict only): a sentence or paragraph per line, split into words by --word_split",
    catch_all=True,
    sniff=lambda path, reading: True,
    texts=_texts,
    default_output="spans",
    sample="EU rejects German call\n",
)
