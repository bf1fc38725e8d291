"""What predict writes: CoNLL, JSONL or entity spans, one output record per input record, in order.

  conll  for conll input, every input line in order: a word line gets its tag, a -DOCSTART- line O,
         blank lines stay blank (--conll_mode replace: the tag replaces the last column, or is added
         when the line holds only the word; append: it is always added as a new column). For other
         input: `word tag` lines, and one blank line after each record (also after an empty one).
  jsonl  {"tokens", "tags"} per record; a JSONL row keeps its other fields ("tags" is overwritten).
  spans  {"text", "entities": [{"text", "label", "start", "end", "score"}]} per record: for text
         input `text` is the line, otherwise the words joined by single spaces; text[start:end] is the
         entity's text; score is the mean probability of its words' tags (4 decimals). An entity is
         a B-X I-X* run (see `entity_spans`); with plain tags (POS) every word is a span of its tag.
Output is UTF-8, lines end in \n.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np

from tokclf.inputs import Input, Record

FORMATS = ("conll", "jsonl", "spans")
DEFAULT_FOR_INPUT = {"conll": "conll", "text": "spans", "jsonl": "jsonl"}
FORMAT_OF_SUFFIX = {".conll": "conll", ".jsonl": "jsonl", ".json": "jsonl"}


def output_format_for(output_path, input_format: str) -> str:
    """Without --output_format: the output file's suffix decides (.conll, .jsonl), else the input's kind.
    A .jsonl file for text input gets spans (the JSONL form of raw text)."""
    by_suffix = FORMAT_OF_SUFFIX.get(Path(output_path).suffix)
    if by_suffix == "jsonl" and input_format == "text":
        return "spans"
    return by_suffix or DEFAULT_FOR_INPUT[input_format]


def entity_spans(record: Record, tags: list[str], probs: np.ndarray, iob: bool) -> list[dict]:
    """Entities as seqeval and conlleval read IOB2: B-X, or an I-X that does not continue an X (only
    argmax emits those), starts a span that the following I-X extend. With plain tags (POS) every word
    is a span of its tag."""
    spans = []  # [first word, last word, label]
    for i, tag in enumerate(tags):
        label = tag[2:] if iob else tag
        if iob and tag == "O":
            continue
        if iob and tag.startswith("I-") and spans and spans[-1][1] == i - 1 and spans[-1][2] == label:
            spans[-1][1] = i
            continue
        spans.append([i, i, label])
    out = []
    for first, last, label in spans:
        start, end = record.offsets[first][0], record.offsets[last][1]
        out.append({"text": record.text[start:end], "label": label, "start": start, "end": end,
                    "score": round(float(np.mean(probs[first:last + 1])), 4)})
    return out


def with_tag(line: str, tag: str, mode: str) -> str:
    """A CoNLL line with the tag replacing its last column (replace, when it has two or more) or added
    as a new one, separated by a tab if the line uses tabs. Trailing whitespace is dropped."""
    body = line.rstrip()
    columns = body.split()
    if mode == "replace" and len(columns) > 1:
        return body[: len(body) - len(columns[-1])] + tag
    return body + ("\t" if "\t" in body else " ") + tag


def output_lines(inp: Input, tags, probs, output_format: str, conll_mode: str, iob: bool) -> Iterator[str]:
    """The output file's lines, without line breaks."""
    if output_format == "conll" and inp.format == "conll":
        for line, at in zip(inp.lines, inp.line_words):
            yield line if not line.strip() else with_tag(line, "O" if at is None else tags[at[0]][at[1]], conll_mode)
    elif output_format == "conll":
        for record, record_tags in zip(inp.records, tags):
            yield from (f"{word} {tag}" for word, tag in zip(record.words, record_tags))
            yield ""
    elif output_format == "jsonl":
        for record, record_tags in zip(inp.records, tags):
            yield json.dumps({"tokens": record.words, **(record.row or {}), "tags": record_tags}, ensure_ascii=False)
    else:
        for record, record_tags, record_probs in zip(inp.records, tags, probs):
            entities = entity_spans(record, record_tags, record_probs, iob)
            yield json.dumps({"text": record.text, "entities": entities}, ensure_ascii=False)
