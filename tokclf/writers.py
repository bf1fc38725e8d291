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
  labelstudio  one JSON array of Label Studio tasks, one task a line, so that the file imports as it is
         (Label Studio reads a .json file as a list of tasks, not as JSON Lines): {"data": {TEXT: text},
         "predictions": [{"model_version", "score", "result": [regions]}]}, each region with from_name,
         to_name, type "labels", value {start, end, text, labels} and its score (span_formats.labelstudio_task).
  doccano  doccano's sequence labeling JSONL: {"text", "label": [[start, end, "X"], ...]} per record.
The text is the record's own (the input line, the span file's text untouched, or the joined words).
Output is UTF-8, lines end in \n.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from tokclf.inputs import Input, Record
from tokclf.span_formats import doccano_record, labelstudio_task

FORMATS = ("conll", "jsonl", "spans", "labelstudio", "doccano")
DEFAULT_FOR_INPUT = {"conll": "conll", "text": "spans", "jsonl": "jsonl", "labelstudio": "labelstudio",
                     "doccano": "doccano", "prodigy": "spans"}
FORMAT_OF_SUFFIX = {".conll": "conll", ".jsonl": "jsonl", ".json": "jsonl"}


def output_format_for(output_path, input_format: str) -> str:
    """Without --output_format: the output file's suffix decides (.conll, .jsonl), else the input's kind.
    A .jsonl file for text or span-file input gets that input's own JSON form (spans for text)."""
    by_suffix = FORMAT_OF_SUFFIX.get(Path(output_path).suffix)
    if by_suffix == "jsonl" and input_format not in ("conll", "jsonl"):
        return DEFAULT_FOR_INPUT[input_format]
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


@dataclass(frozen=True)
class ToolOptions:
    """What the annotation tools' outputs need beyond the tags: the names of the labeling config."""

    from_name: str = "label"  # the <Labels name=...> of the Label Studio config
    to_name: str = "text"  # the <Text name=...> it labels
    model_version: str = "tokclf"
    text_column: str = "text"  # the key of the text in a task's data ($text in the config)


def tool_lines(inp: Input, tags, probs, output_format: str, iob: bool, tool: ToolOptions) -> Iterator[str]:
    """labelstudio: `[`, one task a line (comma-separated), `]`; doccano: one row a line."""
    rows = [(r.text, r.words, r.offsets, t, p) for r, t, p in zip(inp.records, tags, probs)]
    if output_format == "doccano":
        yield from (json.dumps(doccano_record(*row, iob=iob), ensure_ascii=False) for row in rows)
        return
    yield "["
    for i, row in enumerate(rows):
        task = labelstudio_task(*row, text_column=tool.text_column, from_name=tool.from_name, to_name=tool.to_name,
                                model_version=tool.model_version, iob=iob)
        yield json.dumps(task, ensure_ascii=False) + ("," if i + 1 < len(rows) else "")
    yield "]"


def output_lines(inp: Input, tags, probs, output_format: str, conll_mode: str, iob: bool,
                 tool: ToolOptions = ToolOptions()) -> Iterator[str]:
    """The output file's lines, without line breaks."""
    if output_format in ("labelstudio", "doccano"):
        yield from tool_lines(inp, tags, probs, output_format, iob, tool)
    elif output_format == "conll" and inp.format == "conll":
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
