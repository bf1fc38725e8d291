"""Prodigy's JSON Lines, as Prodigy and spaCy write it: {"text", "spans": [{"start", "end", "label"}],
"tokens": [{"start", "end", "text"}]?, "answer"?}. Given tokens are the words (else --word_split);
rows whose answer is not "accept" are skipped and counted. Predict tags its texts (output: spans)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Optional

from tokclf.errors import DataError
from tokclf.formats.base import Format, Reading
from tokclf.formats.span_files import Item, SpanReader, jsonl_texts, span_objects, text_of
from tokclf.formats.textfile import document_id, first_json_row, json_rows
from tokclf.formats.spans import AlignmentReport, check_tokens


def _tokens(row: dict, text: str, where: str) -> Optional[list[tuple[int, int]]]:
    tokens = row.get("tokens")
    if tokens is None:
        return None
    if not isinstance(tokens, list) or not all(isinstance(t, dict) for t in tokens):
        raise DataError(f"{where}: 'tokens' must be a list of objects with 'start' and 'end'.")
    offsets = check_tokens(text, [(t.get("start"), t.get("end")) for t in tokens], where)
    for i, (token, (start, end)) in enumerate(zip(tokens, offsets)):
        if "text" in token and token["text"] != text[start:end]:
            raise DataError(f"{where}: token {i} has text {token['text']!r} but the text at its offsets is "
                            f"{text[start:end]!r}.")
    return offsets


def _items(path: Path, reading: Reading, report: AlignmentReport) -> Iterator[Item]:
    for line_no, row in json_rows(path):
        where = f"{path}:{line_no}"
        if row.get("answer", "accept") != "accept":
            report.add("rejected", f"{where}: answer {row['answer']!r}")
            continue
        text = text_of(row, reading.text, where)
        spans = span_objects(row, "spans", ("start", "end"), where)
        yield Item(where, text, spans, _tokens(row, text, where), document_id(row, where))


def _sniff(path: Path, reading: Reading) -> bool:
    """A text with token objects, spans holding `start`, or an empty `spans` list."""
    row = first_json_row(path)
    if row is None or not isinstance(row.get(reading.text), str):
        return False
    spans = row.get("spans") if isinstance(row.get("spans"), list) else []
    return "tokens" in row or any(isinstance(s, dict) and "start" in s for s in spans) or "spans" in row


READER = SpanReader("prodigy", _items, jsonl_texts)
FORMAT = Format(
    names=("prodigy",),
    summary="Prodigy / spaCy JSONL: a text, spans with start/end/label, optional tokens and answer",
    suffixes=(".jsonl", ".json"),
    sniff=_sniff,
    sentences=READER.sentences,
    texts=READER.chunks,
    default_output="spans",
    sample=json.dumps({"text": "EU rejects German call", "spans": [{"start": 0, "end": 2, "label": "ORG"}],
                       "answer": "accept"}) + "\n",
)
