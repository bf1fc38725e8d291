"""Every writer predict has reads back with its own reader (the registry's formats, so a new writer is covered
without editing this file): for any words and labels, with spaces, tabs, non-ASCII letters and `#`, the
output reads back unchanged, or the writer refuses; never a line with an extra column.

- Token formats (a word per line, row or token) read back the same words and tags.
- Span formats (a text with character spans) read back the same text and the same entity spans: their
  words are the reader's split of the text, so a word with a space in it comes back as two words.
- A refusal is a ConfigError for a model's label the format cannot hold (raised before the file exists)
  or an OutputError for a word (predict then leaves no output: the last tests here); words and labels
  without whitespace and other than the reserved `-DOCSTART-` and `_` are never refused."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from helpers import random_head_model
from tokclf.cli import predict_main
from tokclf.errors import ConfigError, OutputError
from tokclf.formats.base import without_whitespace
from tokclf.formats.registry import FORMATS, SPAN_READERS, write_output
from tokclf.records import Input, joined

pytestmark = pytest.mark.paths  # writes files under the temp folder: run again under an awkward path

WRITERS = [fmt for fmt in FORMATS if fmt.write is not None]
RESERVED = ("-DOCSTART-", "_")  # CoNLL's document break, CoNLL-U's empty value
CHARS = st.sampled_from(list("abcXYZ019#-_|=;.") + [" ", "\t", "ü", "ß", "É", "ж", "中"])
TEXT = st.one_of(st.text(CHARS, min_size=1, max_size=6), st.sampled_from(RESERVED + ("#", "# x")))
# A word a text-based reader finds again in the text (a text has no empty or all-space words).
WORD = TEXT.filter(lambda w: w.strip())


def safe(text: str) -> bool:
    return without_whitespace(text) and text not in RESERVED


@st.composite
def tagged_records(draw, iob: bool):
    """(records' words, their tags, the model's labels): IOB2 tags of drawn entity types, or plain tags."""
    kinds = draw(st.lists(WORD, min_size=1, max_size=3, unique=True))
    labels = ["O", *(f"{p}-{k}" for k in kinds for p in "BI")] if iob else kinds
    records, tags = [], []
    for _ in range(draw(st.integers(1, 3))):
        words = draw(st.lists(WORD, min_size=1, max_size=5))
        row = []
        for _ in words:
            kind = draw(st.sampled_from(kinds))
            inside = row and row[-1].endswith("-" + kind) and draw(st.booleans())
            row.append(kind if not iob else draw(st.sampled_from(["O", ("I-" if inside else "B-") + kind])))
        records.append(words)
        tags.append(row)
    return records, tags, labels


def entity_spans(words: list[str], tags: list[str]) -> list[tuple[str, str]]:
    """(type, the entity's text with whitespace runs as one space) of IOB2 tags."""
    found = []
    for word, tag in zip(words, tags):
        if tag.startswith("I-") and found and found[-1][0] == tag[2:]:
            found[-1] = (found[-1][0], found[-1][1] + " " + word)
        elif tag != "O":
            found.append((tag[2:], word))
    return [(kind, " ".join(text.split())) for kind, text in found]


def expected_back(fmt, records, tags, iob: bool):
    """What fmt's reader gives back: a span format's words are the text's whitespace split, and it holds
    entities (plain tags come back as one-word entities, B-TAG)."""
    if fmt.name not in SPAN_READERS:
        return [(words, row) for words, row in zip(records, tags)]
    if not iob:
        tags = [[f"B-{t}" for t in row] for row in tags]
    return [(" ".join(words).split(), entity_spans(words, row)) for words, row in zip(records, tags)]


def read_back(fmt, path, writing):
    reading = dataclasses.replace(fmt.output_reading(writing), word_split="whitespace")
    back = list(fmt.sentences(path, reading))
    if fmt.name in SPAN_READERS:
        return [(s.words, entity_spans(s.words, s.tags)) for s in back]
    return [(s.words, s.tags) for s in back]


def output_path(fmt, folder):
    return folder / ("out" if fmt.folder else "out" + (fmt.output_suffixes or fmt.suffixes or (".txt",))[0])


def check_round_trip(fmt, case, iob: bool, folder) -> str:
    """Write the case in fmt and read it back; what happened (refusals are checked to be of what fmt cannot
    hold)."""
    from tokclf.formats.base import Writing

    records, tags, labels = case
    writing = Writing(iob=iob, labels=tuple(labels))
    chunk = Input([joined(words, doc=0) for words in records])
    path = output_path(fmt, folder)
    try:
        write_output(path, fmt, [(chunk, tags, [np.ones(len(t)) for t in tags])], writing)
    except ConfigError as err:
        assert not path.exists(), err  # refused before a byte was written
        assert not all(map(safe, labels)) and not all(map(fmt.holds_label, labels)), err
        return "refused: a label"
    except OutputError as err:
        assert not all(safe(w) for words in records for w in words), err
        return "refused: a word"
    assert read_back(fmt, path, writing) == expected_back(fmt, records, tags, iob)
    return "read back"


@pytest.mark.parametrize("fmt", WRITERS, ids=[fmt.name for fmt in WRITERS])
@pytest.mark.parametrize("iob", [True, False], ids=["entities", "plain-tags"])
def test_every_writer_reads_back_or_refuses(fmt, iob, tmp_path_factory):
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(tagged_records(iob))
    def round_trip(case):
        event(check_round_trip(fmt, case, iob, tmp_path_factory.mktemp(fmt.name)))

    round_trip()


def test_every_writer_holds_plain_words_and_labels(tmp_path):
    """The refusals are of what a format cannot hold, not of everything: a sentence of words and labels without
    whitespace is written by every writer and read back."""
    case = ([["EU", "rejects", "Zoë's", "#1", "call"]], [["B-ORG", "O", "B-P#R", "I-P#R", "O"]],
            ["O", "B-ORG", "I-ORG", "B-P#R", "I-P#R"])
    for fmt in WRITERS:
        folder = tmp_path / fmt.name
        folder.mkdir()
        assert check_round_trip(fmt, case, True, folder) == "read back", fmt.name


@pytest.fixture(scope="module")
def spaced_model(tiny_model, tmp_path_factory):
    """A model whose entity type has a space in it (Label Studio labels often do)."""
    return random_head_model(tiny_model, tmp_path_factory.mktemp("spaced"), ["O", "B-my loc", "I-my loc"])


def refused(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        predict_main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    ours = err[err.index("error: "):].strip() if "error: " in err else err  # after the progress bars
    assert "\n" not in ours, err
    return ours


def test_predict_refuses_a_label_the_output_format_cannot_hold_and_writes_nothing(spaced_model, tmp_path, capsys):
    text = tmp_path / "in.txt"
    text.write_text("Paris is big\n")
    err = refused(["--model", str(spaced_model), "--input", str(text), "--output", str(tmp_path / "out.conll")], capsys)
    assert "--output_format conll cannot hold the model's label(s) 'B-my loc', 'I-my loc'" in err, err
    assert "conllu or jsonl" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]  # no output, no partial file
    predict_main(["--model", str(spaced_model), "--input", str(text), "--output", str(tmp_path / "out.jsonl"),
                 "--output_format", "jsonl"])
    assert {t for row in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines()) for t in row["tags"]} <= {
        "O", "B-my loc", "I-my loc"}


def test_predict_refuses_a_word_the_output_format_cannot_hold_and_leaves_no_output(spaced_model, tiny_model, tmp_path,
                                                                                   capsys):
    model = random_head_model(tiny_model, tmp_path / "model", ["O", "B-LOC", "I-LOC"])
    rows = tmp_path / "in.jsonl"
    rows.write_text('{"tokens": ["Paris", "is"]}\n' * 300 + '{"tokens": ["New York", "is", "big"]}\n')
    err = refused(["--model", str(model), "--input", str(rows), "--output", str(tmp_path / "out.conll")], capsys)
    assert err.startswith(f"error: {rows}: the word 'New York' of the record 'New York is big' cannot be a CoNLL column")
    assert not (tmp_path / "out.conll").exists() and not list(tmp_path.glob(".out.conll*"))
