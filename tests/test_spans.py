"""Span files ↔ words and IOB2 tags (tokclf.formats.spans, tokclf.formats, tokclf.formats.words).

CoNLL sentences joined by single spaces give texts with known word offsets; their entities written in
each tool's format must read back (word split `whitespace`) as exactly the CoNLL words and IOB2 tags.
"""

import json
import random
from itertools import accumulate, islice

import pytest

from conftest import SHARED_CONLL, needs_conll, write_conll
from tokclf.records import Sentence
from tokclf.formats.conll import read_conll
from tokclf.errors import ConfigError, DataError
from tokclf.data.schemes import iob1_to_iob2
from tokclf.formats.registry import detect_span_format, read_span_file
from tokclf.formats.doccano import doccano_record
from tokclf.formats.labelstudio import labelstudio_task
from tokclf.formats.spans import AlignmentReport, CharSpan, align_record, record_spans
from tokclf.formats.words import split

FOOTER = ("Fix them in the annotation tool, or pass --span_alignment expand or contract to snap boundaries to "
          "whole words (spans that cannot be fixed are then dropped and counted).")


def detokenised(sentence: Sentence) -> tuple[str, list[tuple[int, int, str]]]:
    """The words joined by single spaces, and the (start, end, label) of each IOB2 entity in that text."""
    starts = accumulate((len(w) + 1 for w in sentence.words[:-1]), initial=0)
    spans = []
    for start, word, tag in zip(starts, sentence.words, sentence.tags):
        end = start + len(word)
        if tag.startswith("I-"):
            spans[-1][1] = end
        elif tag.startswith("B-"):
            spans.append([start, end, tag[2:]])
    return " ".join(sentence.words), [tuple(s) for s in spans]


def as_labelstudio(i, text, spans):
    result = [{"id": f"r{j}", "from_name": "label", "to_name": "text", "type": "labels",
               "value": {"start": s, "end": e, "text": text[s:e], "labels": [label]}} for j, (s, e, label) in enumerate(spans)]
    return {"id": i, "data": {"text": text}, "annotations": [{"id": i, "result": result, "was_cancelled": False,
                                                             "created_at": "2024-01-01T00:00:00Z"}]}


def as_doccano(text, spans):
    return {"text": text, "label": [[s, e, label] for s, e, label in spans]}


def as_doccano_entities(text, spans):
    return {"text": text, "entities": [{"id": j, "start_offset": s, "end_offset": e, "label": label}
                                       for j, (s, e, label) in enumerate(spans)], "relations": []}


def as_prodigy(text, spans, tokens=True):
    row = {"text": text, "spans": [{"start": s, "end": e, "label": label} for s, e, label in spans], "answer": "accept"}
    if tokens:
        row["tokens"] = [{"text": text[s:e], "start": s, "end": e, "id": j, "ws": True}
                         for j, (s, e) in enumerate(split(text, "whitespace")[1])]
    return row


WRITERS = {"labelstudio": as_labelstudio, "doccano": as_doccano, "doccano-entities": as_doccano_entities,
           "prodigy": as_prodigy, "prodigy-no-tokens": lambda text, spans: as_prodigy(text, spans, tokens=False)}


def write_rows(path, rows, as_list=False):
    text = json.dumps(rows) if as_list else "".join(json.dumps(r) + "\n" for r in rows)
    path.write_text(text, encoding="utf-8")
    return path


def write_format(path, name, sentences):
    rows = [WRITERS[name](i, *detokenised(s)) if name == "labelstudio" else WRITERS[name](*detokenised(s))
            for i, s in enumerate(sentences)]
    write_rows(path, rows, as_list=name == "labelstudio")


def iob2_sentences(path, limit=None):
    return [Sentence(s.words, iob1_to_iob2(s.tags), s.doc_id) for s in islice(read_conll(path, "ner"), limit)]


def assert_reads_back(tmp_path, name, sentences):
    path = tmp_path / ("spans.json" if name == "labelstudio" else "spans.jsonl")
    write_format(path, name, sentences)
    assert detect_span_format(path) == name.split("-")[0]
    records, report = read_span_file(path, word_split="whitespace")
    assert [(r.words, r.tags) for r in records] == [(s.words, s.tags) for s in sentences]
    assert not report.counts, report.summary(str(path))
    assert all(r.text[s:e] == w for r in records for w, (s, e) in zip(r.words, r.offsets))


@pytest.mark.parametrize("name", list(WRITERS))
def test_synthetic_conll_reads_back_exactly(tmp_path, name):
    write_conll(tmp_path / "eng.train", 240, seed=1)
    assert_reads_back(tmp_path, name, iob2_sentences(tmp_path / "eng.train"))


@needs_conll
@pytest.mark.parametrize("name", ["labelstudio", "doccano", "prodigy-no-tokens"])
def test_real_conll_reads_back_exactly(tmp_path, name):
    assert_reads_back(tmp_path, name, iob2_sentences(SHARED_CONLL / "eng.train", limit=2000))


# Writers → readers


@pytest.fixture
def tagged(tmp_path):
    """(text, words, offsets, IOB2 tags, probabilities) of synthetic CoNLL sentences joined by spaces."""
    write_conll(tmp_path / "eng.train", 60, seed=4)
    rng = random.Random(4)
    out = []
    for sentence in iob2_sentences(tmp_path / "eng.train"):
        text = " ".join(sentence.words)
        out.append((text, *split(text, "whitespace"), sentence.tags, [rng.uniform(0.3, 1) for _ in sentence.words]))
    return out


@pytest.mark.parametrize("as_annotation", [False, True])
def test_labelstudio_writer_reads_back_the_same_spans(tmp_path, tagged, as_annotation):
    tasks = [labelstudio_task(*row, as_annotation=as_annotation, model_version="m1") for row in tagged]
    path = write_rows(tmp_path / "tasks.json", tasks, as_list=True)
    source = "annotations" if as_annotation else "predictions"
    records, report = read_span_file(path, word_split="whitespace", labelstudio_source=source)
    assert not report.counts
    for (text, words, offsets, tags, probs), task, record in zip(tagged, tasks, records):
        assert task["data"]["text"] == text and record.tags == tags and record.words == words
        written = task[source][0]["result"]
        assert [CharSpan(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0], r["value"]["text"])
                for r in written] == record_spans(record)
        if not as_annotation:
            assert task["predictions"][0]["model_version"] == "m1"
            assert all(0 < r["score"] <= 1 and r["type"] == "labels" for r in written)


def test_doccano_writer_reads_back_the_same_spans(tmp_path, tagged):
    rows = [doccano_record(*row) for row in tagged]
    records, _ = read_span_file(write_rows(tmp_path / "d.jsonl", rows), "doccano", word_split="whitespace")
    assert [r.tags for r in records] == [row[3] for row in tagged]
    assert [[[s.start, s.end, s.label] for s in record_spans(r)] for r in records] == [r["label"] for r in rows]


def test_punct_split_round_trip_keeps_the_text_untouched(tmp_path):
    text = "Dr. Smith's e-mail:  3.5€!\tJohn  Lee"
    words, offsets = split(text, "punct")
    assert words == ["Dr", ".", "Smith's", "e-mail", ":", "3", ".", "5", "€", "!", "John", "Lee"]
    tags = ["O", "O", "B-PER", "O", "O", "O", "O", "O", "O", "O", "B-PER", "I-PER"]
    row = doccano_record(text, words, offsets, tags)
    assert row == {"text": text, "label": [[4, 11, "PER"], [27, 36, "PER"]]}
    records, _ = read_span_file(write_rows(tmp_path / "d.jsonl", [row]), word_split="punct")
    assert records[0].words == words and records[0].tags == tags and records[0].text == text


def test_chinese_under_char_split(tmp_path):
    text = "李明在北京大学工作。"
    spans = [(0, 2, "PER"), (3, 7, "ORG")]
    path = write_rows(tmp_path / "zh.jsonl", [as_doccano(text, spans)])
    records, _ = read_span_file(path, word_split="char")
    assert records[0].words == list(text)
    assert records[0].tags == ["B-PER", "I-PER", "O", "B-ORG", "I-ORG", "I-ORG", "I-ORG", "O", "O", "O"]
    assert record_spans(records[0]) == [CharSpan(0, 2, "PER", "李明"), CharSpan(3, 7, "ORG", "北京大学")]
    with pytest.raises(DataError, match=r"inside_word: 2 .*\n.*zh.jsonl:1: span \[0, 2\) PER has a boundary"):
        read_span_file(path, word_split="punct")  # the whole line is one punct word


# Alignment problems: the exact messages

TEXT = "John Smith's car went to Paris."  # whitespace words: John Smith's car went to Paris.


def strict_error(spans) -> str:
    with pytest.raises(DataError) as caught:
        align_record(TEXT, spans, word_split="whitespace", where="f.jsonl:3")
    return str(caught.value)


@pytest.mark.parametrize("spans, kind, example", [
    ([(0, 10, "PER")], "inside_word: 1 (a span boundary falls inside a word)",
     '''f.jsonl:3: span [0, 10) PER has a boundary inside a word: "[John Smith]'s car went to Paris…"'''),
    ([(4, 5, "PER")], "no_words: 1 (a span covers no whole word)",
     '''f.jsonl:3: span [4, 5) PER covers no whole word: "John[ ]Smith's car went to …"'''),
    ([(0, 12, "PER"), (5, 16, "ORG")], "overlap: 1 (spans overlap, and IOB tags hold one label per word)",
     '''f.jsonl:3: span [5, 16) ORG overlaps span [0, 12) PER: "John [Smith's car] went to Paris."'''),
    ([(16, 13, "ORG")], "empty: 1 (an empty or reversed span: start >= end)",
     "f.jsonl:3: span [16, 13) ORG is empty or reversed (start >= end)"),
    ([(25, 40, "LOC")], "out_of_range: 1 (an offset beyond the text)",
     '''f.jsonl:3: span [25, 40) LOC lies beyond the text (31 characters): "…Smith's car went to [Paris.]"'''),
    ([(13, 16, "ORG", "cat")], "text_mismatch: 1 (a span's text differs from the text at its offsets)",
     "f.jsonl:3: span [13, 16) ORG has text 'cat' but the text there is 'car' (offsets counted on another "
     '''text, e.g. in UTF-16 units after an emoji?): "John Smith's [car] went to Paris."'''),
])
def test_each_problem_kind_has_an_exact_message(spans, kind, example):
    assert strict_error(spans) == "\n".join(
        ["f.jsonl:3: 1 span problem(s) under --span_alignment strict:", f"  {kind}, e.g.", f"    {example}", FOOTER])


def test_strict_lists_every_kind_at_once_with_counts():
    message = strict_error([(0, 10, "PER"), (13, 16, "ORG", "cat"), (16, 13, "X"), (17, 19, "A"), (22, 23, "B")])
    assert message.startswith("f.jsonl:3: 5 span problem(s) under --span_alignment strict:\n  inside_word: 3 ")
    assert "\n  empty: 1 " in message and "\n  text_mismatch: 1 " in message and message.endswith(FOOTER)


def test_expand_and_contract_snap_and_count():
    spans = [(0, 10, "PER"), (17, 19, "X"), (25, 30, "LOC")]
    expand = AlignmentReport("expand")
    record = align_record(TEXT, spans, word_split="whitespace", mode="expand", where="w", report=expand)
    assert record.tags == ["B-PER", "I-PER", "O", "B-X", "O", "B-LOC"]
    assert expand.counts == {"inside_word": 3}
    assert expand.summary("f").splitlines()[1] == (
        "  inside_word: 3 (a span boundary falls inside a word; snapped to word boundaries), e.g.")
    contract = AlignmentReport("contract")
    record = align_record(TEXT, spans, word_split="whitespace", mode="contract", where="w", report=contract)
    assert record.tags == ["B-PER", "O", "O", "O", "O", "O"]
    assert contract.counts == {"inside_word": 1, "no_words": 2}
    assert "no_words: 2 (a span covers no whole word; dropped, its words are O)" in contract.summary("f")


def test_unfixable_spans_are_dropped_and_counted_outside_strict():
    report = AlignmentReport("expand")
    spans = [(0, 4, "PER"), (0, 4, "PER"), (5, 10, "PER"), (10, 12, "ORG"), (25, 40, "LOC"), (3, 3, "X")]
    record = align_record(TEXT, spans, word_split="whitespace", mode="expand", where="w", report=report)
    assert record.tags == ["B-PER", "B-PER", "O", "O", "O", "O"]
    assert report.counts == {"duplicate": 1, "inside_word": 1, "overlap": 1, "out_of_range": 1, "empty": 1}
    assert report.examples["overlap"] == [
        "w: span [10, 12) ORG shares the word \"Smith's\" with another span after snapping (expand): "
        "\"John Smith['s] car went to Paris.\""]
    # A duplicate is only a notice: strict (no report given: raise at once) takes it.
    assert align_record(TEXT, [(0, 4, "PER")] * 2, word_split="whitespace").tags[0] == "B-PER"


def test_bad_mode_and_bad_values():
    with pytest.raises(ConfigError, match="--span_alignment 'loose': expected one of strict, expand, contract"):
        align_record(TEXT, [], mode="loose")
    with pytest.raises(DataError, match=r"^w: span start and end must be whole numbers, got '0' and 4\.$"):
        align_record(TEXT, [("0", 4, "PER")], where="w")
    with pytest.raises(ConfigError, match="--word_split 'bpe'"):
        split(TEXT, "bpe")


# Format details


def test_labelstudio_latest_annotation_cancelled_and_unannotated(tmp_path):
    text = "Anna met Tom in Rome"
    old = {"id": 1, "updated_at": "2024-01-01T10:00:00Z", "result": [
        {"type": "labels", "value": {"start": 0, "end": 4, "text": "Anna", "labels": ["LOC"]}}]}
    new = {"id": 2, "updated_at": "2024-02-01T10:00:00Z", "result": [
        {"type": "labels", "value": {"start": 0, "end": 4, "text": "Anna", "labels": ["PER"]}},
        {"type": "choices", "value": {"choices": ["good"]}}]}
    cancelled = {"id": 3, "updated_at": "2025-01-01T10:00:00Z", "was_cancelled": True, "result": []}
    tasks = [{"id": 7, "data": {"body": text}, "annotations": [old, cancelled, new]},
             {"id": 8, "data": {"body": text}, "annotations": [], "predictions": []}]
    records, report = read_span_file(write_rows(tmp_path / "ls.json", tasks, as_list=True), text_column="body")
    assert len(records) == 1 and records[0].tags == ["B-PER", "O", "O", "O", "O"]
    assert records[0].source == f"{tmp_path / 'ls.json'}: task 7"
    assert report.counts == {"older_annotation": 1, "cancelled_annotation": 1, "unannotated": 1}
    assert report.examples["older_annotation"] == [f"{tmp_path / 'ls.json'}: task 7: used annotation 2 of 2"]
    with pytest.raises(DataError, match=r"ls.json: task 7: expected the text as a string in 'text'; the keys are "
                                         r"\['body'\]\. Pass text_column"):
        read_span_file(tmp_path / "ls.json")


def test_labelstudio_emoji_offsets_in_utf16_are_caught(tmp_path):
    text = "😀 Paris"  # a browser counting UTF-16 units puts Paris at [3, 8); Python at [2, 7)
    task = {"id": 1, "data": {"text": text}, "annotations": [{"result": [
        {"type": "labels", "value": {"start": 3, "end": 8, "text": "Paris", "labels": ["LOC"]}}]}]}
    with pytest.raises(DataError, match=r"task 1: span \[3, 8\) LOC lies beyond the text \(7 characters\)"):
        read_span_file(write_rows(tmp_path / "ls.json", [task], as_list=True))


def test_prodigy_rejected_answers_and_given_tokens(tmp_path):
    rows = [{"text": "New York", "tokens": [{"text": "New", "start": 0, "end": 3}, {"text": "York", "start": 4, "end": 8}],
             "spans": [{"start": 0, "end": 8, "label": "LOC"}], "answer": "accept"},
            {"text": "Paris", "spans": [{"start": 0, "end": 5, "label": "LOC"}], "answer": "reject"}]
    records, report = read_span_file(write_rows(tmp_path / "p.jsonl", rows))
    assert [(r.words, r.tags) for r in records] == [(["New", "York"], ["B-LOC", "I-LOC"])]
    assert report.counts == {"rejected": 1}
    rows[0]["tokens"][1]["text"] = "Yorx"
    with pytest.raises(DataError, match=r"p.jsonl:1: token 1 has text 'Yorx' but the text at its offsets is 'York'"):
        read_span_file(write_rows(tmp_path / "p.jsonl", rows))


def test_doccano_text_classification_export_is_refused(tmp_path):
    path = write_rows(tmp_path / "d.jsonl", [{"text": "good film", "label": ["positive"]}])
    with pytest.raises(DataError, match=r"d.jsonl:1: 'label' must hold \[start, end, \"TYPE\"\] lists"):
        read_span_file(path, "doccano")


def test_undetectable_format_names_the_keys(tmp_path):
    path = write_rows(tmp_path / "x.jsonl", [{"sentence": "hi"}])
    with pytest.raises(DataError, match=r"x.jsonl:1: cannot tell the span format \(keys \['sentence'\]\)"):
        detect_span_format(path)


def test_word_splits():
    assert split("a  b\tc", "whitespace") == (["a", "b", "c"], [(0, 1), (3, 4), (5, 6)])
    assert split("東京 タワー", "char")[0] == ["東", "京", "タ", "ワ", "ー"]
    words = ["EU", "rejects", "German", "call", "'s", "U.S.", "1996-08-22", "."]
    assert split(" ".join(words), "whitespace")[0] == words
