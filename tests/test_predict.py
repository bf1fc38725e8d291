"""`python -m tokclf predict` on a random tiny model: formats, offsets, line counts and alignment.

The model is untrained, so its tags are noise; what is checked is what must hold for any model: one
record per input line or sentence, one tag per word, exact character offsets, valid Viterbi output.
"""

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from conftest import FILLER, LONG_WORDS, ORGS, PEOPLE, PLACES
from helpers import random_head_model
from tokclf.cli import predict_main
from tokclf.formats.conll import looks_like_conll
from tokclf.formats.registry import text_format
from tokclf.formats.textfile import text_lines
from tokclf.formats.words import split_words

NAMES = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
EXOTIC = ["Zoë", "Ångström", "café", "naïve", "東京", "タワー", "北京大学", "😀", "👍🏽", "🇫🇷", "—", "«", "»", "l’homme",
          "e-mail", "don't", "3.5", "$", "हिन्दी", "\u200b", "x\u0301"]


@pytest.fixture(scope="module")
def model_dir(tiny_model, tmp_path_factory):
    """The tiny BERT with a random IOB2 NER head; short windows so long lines span many of them."""
    return random_head_model(tiny_model, tmp_path_factory.mktemp("ner-model"), NAMES, max_length=32, stride=8)


def run(model_dir, path, out, *extra) -> list[str]:
    predict_main(["--model", str(model_dir), "--input", str(path), "--output", str(out), *extra])
    return out.read_text(encoding="utf-8").split("\n")[:-1]


def is_valid_iob2(tags) -> bool:
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True


def expected_entities(line, tags) -> list[tuple[int, int, str]]:
    """Maximal B-X I-X* runs (after Viterbi there is no stray I-) as character spans of the line."""
    _, offsets = split_words(line)
    spans = []
    for (start, end), tag in zip(offsets, tags):
        if tag.startswith("I-") and spans:
            spans[-1][1] = end
        elif tag.startswith("B-"):
            spans.append([start, end, tag[2:]])
    return [tuple(s) for s in spans]


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    """1,000 lines: mixed lengths, an empty line, a blank line, a 2,000-word line and non-ASCII words."""
    rng = random.Random(5)
    vocab = PEOPLE + PLACES + ORGS + FILLER + LONG_WORDS + EXOTIC + [",", "!", "(", ")", "\"", "?"]
    lines = []
    for i in range(1000):
        n_words = 0 if i == 10 else rng.randint(1, 30)
        words = [rng.choice(vocab).capitalize() if rng.random() < 0.3 else rng.choice(vocab) for _ in range(n_words)]
        lines.append("".join(w + rng.choice([" ", " ", "  ", "\t", ""]) for w in words).strip(" "))
    lines[11] = " ".join(rng.choice(PEOPLE + PLACES + FILLER + ["Zoë", "東京", "😀", "l’homme", "e-mail"])
                         for _ in range(2000))
    lines[12] = "   "
    path = tmp_path_factory.mktemp("text") / "notes.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, lines


@pytest.fixture(scope="module")
def text_tags(model_dir, text_file, tmp_path_factory):
    """The text file tagged as jsonl with Viterbi (the default decoding)."""
    out = tmp_path_factory.mktemp("tags") / "tags.jsonl"
    return [json.loads(r) for r in run(model_dir, text_file[0], out, "--output_format", "jsonl")]


def test_text_to_spans_one_record_per_line_with_exact_offsets(model_dir, text_file, text_tags, tmp_path):
    path, lines = text_file
    records = [json.loads(r) for r in run(model_dir, path, tmp_path / "spans.jsonl")]
    assert len(records) == len(lines) == 1000
    assert records[10] == {"text": "", "entities": []} and records[12] == {"text": "   ", "entities": []}
    assert any(set(r["text"]) & set("東😀हि") and r["entities"] for r in records)
    n_entities = 0
    for line, record, row in zip(lines, records, text_tags):
        assert record["text"] == line
        for e in record["entities"]:
            assert line[e["start"]:e["end"]] == e["text"] and e["start"] < e["end"]
            assert e["label"] in {"LOC", "ORG", "PER"} and 0 < e["score"] <= 1
            n_entities += 1
        assert [(e["start"], e["end"], e["label"]) for e in record["entities"]] == expected_entities(line, row["tags"])
    assert n_entities > 1000


def test_text_gets_one_tag_per_word_even_on_a_2000_word_line(text_file, text_tags):
    _, lines = text_file
    assert len(text_tags) == 1000 and len(text_tags[11]["tags"]) == 2000
    for line, row in zip(lines, text_tags):
        assert row["tokens"] == split_words(line)[0] and len(row["tags"]) == len(row["tokens"])


def test_viterbi_output_is_valid_where_argmax_is_not(model_dir, text_tags, tmp_path):
    assert all(is_valid_iob2(row["tags"]) for row in text_tags)
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in text_tags[:100]) + "\n")
    tagged = [json.loads(r)["tags"] for r in run(model_dir, path, tmp_path / "argmax.jsonl", "--decoding", "argmax")]
    assert sum(not is_valid_iob2(tags) for tags in tagged) > 20  # so the model does need repairs
    assert [len(t) for t in tagged] == [len(row["tags"]) for row in text_tags[:100]]


@pytest.mark.parametrize("mode", ["replace", "append"])
@pytest.mark.paths
def test_conll_round_trip_keeps_every_line(model_dir, conll_dir, tmp_path, mode):
    path = conll_dir / "eng.testb"  # no suffix: -DOCSTART- lines make auto pick conll
    before = list(text_lines(path))
    after = run(model_dir, path, tmp_path / "out.conll", "--conll_mode", mode)
    assert len(after) == len(before)
    sentence = []
    for old, new in zip(before + [""], after + [""]):
        old_columns, new_columns = old.split(), new.split()
        kept = len(old_columns) - (mode == "replace")
        if old.strip() and not old.startswith("-DOCSTART-"):
            assert new_columns[:kept] == old_columns[:kept] and len(new_columns) == kept + 1
            sentence.append(new_columns[-1])
            continue
        assert new == old if not old.strip() else new_columns == old_columns[:kept] + ["O"]
        assert sentence == [] or is_valid_iob2(sentence) and set(sentence) <= set(NAMES)
        sentence = []
    assert sum(1 for line in after if line.startswith("-DOCSTART-")) == 10


def test_tab_separated_crlf_conll_is_detected_and_keeps_tabs(model_dir, tmp_path):
    path = tmp_path / "words.tsv"
    path.write_bytes("John\tNNP\r\nsaw\tVBD\r\nParis\tNNP\r\n\r\nTokyo\tNNP\r\n".encode())
    assert text_format(path).name == "conll"
    after = run(model_dir, path, tmp_path / "out.tsv", "--conll_mode", "append")
    assert [line.split("\t")[:2] for line in after] == [["John", "NNP"], ["saw", "VBD"], ["Paris", "NNP"], [""],
                                                         ["Tokyo", "NNP"]]
    assert all(len(line.split("\t")) == 3 for line in after if line)


def test_jsonl_in_jsonl_out_one_tag_per_token(model_dir, tmp_path):
    rows = [{"id": 1, "tokens": ["John", "went", "to", "Paris", "."]}, {"id": 2, "tokens": []},
            {"id": 3, "tokens": ["Zoë", "東京", "😀"] * 300, "tags": ["gold"]}]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows[:2]) + "\n\n"
                    + json.dumps(rows[2], ensure_ascii=False) + "\n", encoding="utf-8")
    out = [json.loads(r) for r in run(model_dir, path, tmp_path / "out.jsonl")]
    assert [r["id"] for r in out] == [1, 2, 3]  # the blank line is not a record
    for row, tagged in zip(rows, out):
        assert tagged["tokens"] == row["tokens"] and len(tagged["tags"]) == len(row["tokens"])
        assert set(tagged["tags"]) <= set(NAMES)
    spans = [json.loads(r) for r in run(model_dir, path, tmp_path / "spans.jsonl", "--output_format", "spans")]
    assert [r["text"] for r in spans] == [" ".join(row["tokens"]) for row in rows]
    assert all(r["text"][e["start"]:e["end"]] == e["text"] for r in spans for e in r["entities"])


def test_text_to_conll_ends_each_record_with_a_blank_line(model_dir, tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("John went to Paris.\n\nAcme, Reuters!\n", encoding="utf-8")
    after = run(model_dir, path, tmp_path / "out.conll", "--output_format", "conll")
    assert [line.split(" ")[0] for line in after] == ["John", "went", "to", "Paris", ".", "", "", "Acme", ",",
                                                      "Reuters", "!", ""]


def test_empty_input_gives_empty_output(model_dir, tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("")
    assert run(model_dir, path, tmp_path / "out.jsonl") == []


def detect_format_of(text):
    return "conll" if looks_like_conll(text.split("\n")[:-1]) else "text"


def test_detect_format(tmp_path):
    assert detect_format_of("The cat sat .\n\nA dog ran far away .\n") == "text"
    assert detect_format_of("EU B-ORG\nrejects O\n\nGerman B-MISC\n") == "conll"
    assert detect_format_of("EU B-ORG\nrejects O\nGerman B-MISC\n") == "text"  # no sentence breaks
    assert detect_format_of("-DOCSTART-\nEU\nrejects\n") == "conll"
    (tmp_path / "words.conll").write_text("EU\nrejects\n")
    assert text_format(tmp_path / "words.conll").name == "conll"  # by its suffix
    (tmp_path / "words.txt").write_text("EU\nrejects\n")
    assert text_format(tmp_path / "words.txt").name == "text"


@pytest.mark.parametrize("args, content, message", [
    ([], None, "no such file"),
    (["--output", "SAME"], "a b\n", "is the input file"),
    ([], '{"tokens": ["a"]}\n{"words": ["b"]}\n', "in.jsonl:2: expected an object with a \"tokens\" list"),
    ([], b"ok\n\xff\n", "in.jsonl:2: not UTF-8"),
    (["--model", "MISSING"], '{"tokens": ["a"]}\n', "--model"),
])
@pytest.mark.paths
def test_errors_are_one_line_and_exit_2(model_dir, tmp_path, capsys, args, content, message):
    path = tmp_path / "in.jsonl"
    if content is not None:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    argv = {"--model": str(model_dir), "--input": str(path), "--output": str(tmp_path / "out.jsonl")}
    for flag, value in zip(args[::2], args[1::2]):
        argv[flag] = str(path) if value == "SAME" else str(tmp_path / value)
    with pytest.raises(SystemExit) as exit_info:
        predict_main([x for pair in argv.items() for x in pair])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_split_words_offsets_are_exact_and_cover_every_non_space(line):
    words, offsets = split_words(line)
    covered = set()
    for word, (start, end) in zip(words, offsets):
        assert line[start:end] == word and word and not any(c.isspace() for c in word)
        covered.update(range(start, end))
    assert [s for s, _ in offsets] == sorted(s for s, _ in offsets)
    assert all(line[i].isspace() for i in range(len(line)) if i not in covered)


def test_predicted_conll_scores_like_the_evaluate_command(base_args, conll_dir, tmp_path):
    """Scoring predict's CoNLL output against the gold column gives the F1 that `evaluate` reports."""
    from seqeval.metrics import f1_score

    from tokclf.config import parse_config
    from tokclf.data.schemes import iob1_to_iob2
    from tokclf.predict import PredictConfig, predict
    from tokclf.training.recipe import train
    from tokclf.evaluate import EvaluateConfig, evaluate_saved_model

    out = tmp_path / "model"
    train(parse_config(base_args + ["--output_dir", str(out), "--context_sentences", "1"]))
    predicted_file = tmp_path / "testb.conll"
    predict(PredictConfig(model=str(out), input=str(conll_dir / "eng.testb"), output=str(predicted_file),
                          conll_mode="append"))
    source = (conll_dir / "eng.testb").read_text().splitlines()
    produced = predicted_file.read_text().splitlines()
    assert len(produced) == len(source)
    gold, guess, sentence_gold, sentence_guess = [], [], [], []
    for line, tagged in zip(source + [""], produced + [""]):
        if not line.strip() or line.startswith("-DOCSTART-"):
            if sentence_gold:
                gold.append(iob1_to_iob2(sentence_gold))
                guess.append(sentence_guess)
                sentence_gold, sentence_guess = [], []
            continue
        assert tagged.split()[:4] == line.split()
        sentence_gold.append(line.split()[3])
        sentence_guess.append(tagged.split()[4])
    metrics = evaluate_saved_model(EvaluateConfig(model=str(out), data_dir=str(conll_dir), split="test"))
    assert f1_score(gold, guess) == pytest.approx(metrics["f1"], abs=1e-12)
