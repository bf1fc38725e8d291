"""Tag schemes other than IOB: IOE1/IOE2, IOBES (BIOES) and BILOU files are detected, converted to IOB2,
and trained and scored exactly like their IOB2 twin; tags of no scheme stop with file, line and a hint
that fits the command."""

import json
import random

import pytest
from hypothesis import given, settings, strategies as st

from conftest import FILLER, ORGS, PEOPLE, PLACES
from tokclf.errors import DataError
from helpers import prepared_tags
from tokclf.data.labels import LabelSet
from tokclf.data.schemes import SCHEMES, TO_IOB2, detect_scheme, is_iob, normalise_tags, resolve_scheme

KINDS = {"PER": PEOPLE, "LOC": PLACES, "ORG": ORGS}
TRAIN_HINT = ("Fix the tag, or for plain tags such as POS give --task_name pos "
              "(--tag_scheme takes auto, iob1, iob2, ioe1, ioe2, iobes, bilou).")
EVALUATE_HINT = ("Fix the tag in the file: evaluate converts its tags to IOB2 and scores them against the "
                 "model's labels.")
NO_SCHEME = ("is not IOB, IOE, IOBES or BILOU (expected O, or an upper-case B-, I-, E-, S-, L- or U- and a type, "
             "such as B-PER).")


def encode(segments, scheme: str) -> list[str]:
    """Tags in `scheme` of a sentence given as segments: None (a word outside spans) or (type, length)."""
    spans, position = [], 0
    for segment in segments:
        if segment is not None:
            spans.append((position, position + segment[1], segment[0]))
        position += 1 if segment is None else segment[1]
    tags = ["O"] * position
    for n, (start, end, kind) in enumerate(spans):
        after_same = n > 0 and spans[n - 1][1] == start and spans[n - 1][2] == kind
        before_same = n + 1 < len(spans) and spans[n + 1][0] == end and spans[n + 1][2] == kind
        for k in range(start, end):
            first, last = k == start, k == end - 1
            prefix = {
                "iob1": "B" if first and after_same else "I",
                "iob2": "B" if first else "I",
                "ioe1": "E" if last and before_same else "I",
                "ioe2": "E" if last else "I",
                "iobes": "S" if first and last else "B" if first else "E" if last else "I",
                "bilou": "U" if first and last else "B" if first else "L" if last else "I",
            }[scheme]
            tags[k] = f"{prefix}-{kind}"
    return tags


segment = st.one_of(st.none(), st.tuples(st.sampled_from(sorted(KINDS)), st.integers(1, 4)))


@settings(max_examples=300, deadline=None)
@given(st.lists(segment, max_size=12), st.sampled_from(SCHEMES))
def test_every_scheme_converts_back_to_the_iob2_of_the_same_spans(segments, scheme):
    assert TO_IOB2[scheme](encode(segments, scheme)) == encode(segments, "iob2")


# Adjacent spans of one type (which IOB1 and IOE1 mark), one-word and long spans, every type.
FIXED = [[("PER", 1), ("PER", 2), None, ("LOC", 1)], [None, ("ORG", 3), None], [("LOC", 2), ("ORG", 1)]]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_detection_names_each_scheme(scheme):
    assert detect_scheme([encode(s, scheme) for s in FIXED], "train split") == scheme
    assert resolve_scheme("auto", "ner", [encode(s, scheme) for s in FIXED]) == scheme


def test_bioes_is_an_alias_of_iobes(capsys):
    tags = [encode(s, "iobes") for s in FIXED]
    assert normalise_tags(tags, resolve_scheme("bioes", "ner", tags), "x") == [encode(s, "iob2") for s in FIXED]
    assert capsys.readouterr().out == "x: tags are IOBES; converted to IOB2\n"


# ----------------------------------------------------------------------------------------------------
# Files: twins written from the same spans read, convert and score alike


def corpus(seed: int, n: int) -> list[list]:
    rng = random.Random(seed)
    sentences = list(FIXED)
    while len(sentences) < n:
        sentences.append([rng.choice([None, None, (rng.choice(sorted(KINDS)), rng.randint(1, 3))])
                          for _ in range(rng.randint(2, 6))])
    return sentences


def write_twin(path, sentences, scheme, words_seed=0):
    rng = random.Random(words_seed)
    lines = []
    for i, segments in enumerate(sentences):
        if i % 5 == 0:
            lines += ["-DOCSTART- O", ""]
        for tag in encode(segments, scheme):
            lines.append(f"{rng.choice(KINDS[tag[2:]] if tag != 'O' else FILLER).capitalize()} {tag}")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """{scheme: folder with eng.train / eng.testb in that scheme}, all from the same spans and words."""
    out = {}
    for scheme in SCHEMES:
        folder = tmp_path_factory.mktemp(scheme)
        write_twin(folder / "eng.train", corpus(1, 40), scheme)
        write_twin(folder / "eng.testb", corpus(2, 25), scheme)
        out[scheme] = folder
    return out


@pytest.mark.parametrize("scheme", SCHEMES)
def test_twin_files_prepare_to_the_same_iob2_tags(twins, scheme, capsys):
    from tokclf.formats.registry import read_file

    def prepared(folder):
        sentences = {"train": read_file(folder / "eng.train", "ner"), "test": read_file(folder / "eng.testb", "ner")}
        return prepared_tags({k: [s.tags for s in v] for k, v in sentences.items()}, "auto", "ner",
                            sentences=sentences)

    expected_tags, expected_labels = prepared(twins["iob2"])
    capsys.readouterr()
    tags, labels = prepared(twins[scheme])
    assert tags == expected_tags and labels == expected_labels
    assert labels.names == ("O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER")
    notices = "" if scheme in ("iob1", "iob2") else "".join(
        f"{split} split: tags are {scheme.upper()}; converted to IOB2\n" for split in ("train", "test"))
    assert capsys.readouterr().out == notices


@pytest.mark.parametrize("scheme", ["iobes", "bilou", "ioe2"])
def test_training_setup_on_a_twin_equals_the_iob2_setup(twins, tiny_model, tmp_path, scheme):
    from tokclf.components import setup_training
    from tokclf.config import parse_config

    def setup(folder, say=print):
        cfg = parse_config(["--model_name_or_path", str(tiny_model), "--data_dir", str(folder),
                            "--output_dir", str(tmp_path / "out")])
        parts = setup_training(cfg, say)
        return parts.splits, parts.labels

    expected_splits, expected_labels = setup(twins["iob2"])
    said = []
    splits, labels = setup(twins[scheme], said.append)
    assert labels == expected_labels
    assert {k: s.tags for k, s in splits.items()} == {k: s.tags for k, s in expected_splits.items()}
    assert {k: s.encoded.features for k, s in splits.items()} == {k: s.encoded.features for k, s in expected_splits.items()}
    assert said == [f"{split} split: tags are {scheme.upper()}; converted to IOB2" for split in ("train", "test")]


@pytest.fixture(scope="module")
def ner_model(tiny_model, tmp_path_factory):
    """The tiny BERT with a random IOB2 head: its tags are noise, but the same noise for every twin."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    names = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    folder = tmp_path_factory.mktemp("ner-model")
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(
        tiny_model, id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    with torch.no_grad():
        model.classifier.weight.normal_(0, 0.5)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(folder)
    (folder / "args.json").write_text(json.dumps({"task_name": "ner", "max_length": 32, "stride": 8,
                                                  "tag_scheme": "auto"}))
    return folder


def test_evaluate_scores_every_twin_exactly_like_the_iob2_file(ner_model, twins):
    from tokclf.evaluate import EvaluateConfig, evaluate_saved_model

    scores = {scheme: evaluate_saved_model(EvaluateConfig(model=str(ner_model), test_file=str(folder / "eng.testb")))
              for scheme, folder in twins.items()}
    assert scores["iob2"]["PER_number"] > 0
    assert all(score == scores["iob2"] for score in scores.values())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(segment, min_size=1, max_size=8), min_size=1, max_size=5), st.sampled_from(SCHEMES))
def test_seqeval_scores_of_converted_twins_equal_the_iob2_scores(sentences, scheme):
    from tokclf.inference.scoring import score_tags

    gold = [encode(s, "iob2") for s in sentences]
    predicted = [g[1:] + g[:1] for g in gold]  # other spans, some cut or invalid, as argmax gives
    twin = normalise_tags([encode(s, scheme) for s in sentences], scheme, "x", say=lambda _: None)
    assert score_tags(twin, predicted, "iob") == score_tags(gold, predicted, "iob")


# ----------------------------------------------------------------------------------------------------
# Tags of no scheme: file, line, tag and a hint that fits the command


def prepare_file(path, text, requested="auto"):
    from tokclf.formats.registry import read_file

    path.write_text(text, encoding="utf-8")
    sentences = {"train": read_file(path, "ner")}
    return prepared_tags({"train": [s.tags for s in sentences["train"]]}, requested, "ner", sentences=sentences)


@pytest.mark.parametrize("tag", ["b-per", "X-LOC", "I-", "B_PER"])
def test_tag_of_no_scheme_names_file_line_and_tag(tmp_path, tag):
    path = tmp_path / "train.conll"
    with pytest.raises(DataError) as err:
        prepare_file(path, f"-DOCSTART- O\n\nEU B-ORG\nrejects O\n\nPeter {tag}\n")
    assert str(err.value) == f"{path}:6: tag {tag!r} {NO_SCHEME} {TRAIN_HINT}"


def test_tag_of_no_scheme_in_jsonl_names_line_and_word(tmp_path):
    from tokclf.formats.registry import read_file

    path = tmp_path / "train.jsonl"
    path.write_text('{"tokens": ["EU"], "ner_tags": ["B-ORG"]}\n\n{"tokens": ["a", "Peter"], "ner_tags": ["O", "b-per"]}\n')
    sentences = {"train": read_file(path, "ner")}
    with pytest.raises(DataError) as err:
        prepared_tags({"train": [s.tags for s in sentences["train"]]}, "auto", "ner", sentences=sentences)
    assert str(err.value) == f"{path}:3, word 2: tag 'b-per' {NO_SCHEME} {TRAIN_HINT}"


def test_mixed_iobes_and_bilou_tags_are_refused(tmp_path):
    path = tmp_path / "train.conll"
    with pytest.raises(DataError) as err:
        prepare_file(path, "EU S-ORG\nrejects O\n\nPeter B-PER\nSmith L-PER\n")
    assert str(err.value) == (f"{path}:5: tag 'L-PER' mixes tag schemes with 'S-ORG' at {path}:1: E- and S- are "
                              f"IOBES, L- and U- BILOU. Convert the file to one scheme.")


def test_a_tag_outside_the_requested_scheme_is_named(tmp_path):
    path = tmp_path / "train.conll"
    with pytest.raises(DataError) as err:
        prepare_file(path, "EU B-ORG\nrejects O\n\nPeter S-PER\n", requested="iob2")
    assert str(err.value) == (f"{path}:4: tag 'S-PER' is not IOB2 (expected O, or B-, I- and a type, such as "
                              f"B-PER). {TRAIN_HINT}")


def test_train_command_stops_with_the_train_hint(tiny_model, tmp_path, capsys):
    from tokclf.cli import train_main

    path = tmp_path / "train.conll"
    path.write_text("EU B-ORG\nrejects O\nPeter X-PER\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        train_main(["--model_name_or_path", str(tiny_model), "--train_file", str(path),
                    "--output_dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {path}:3: tag 'X-PER' {NO_SCHEME} {TRAIN_HINT}"


@pytest.mark.parametrize("line, message", [
    ("Peter X-PER", f"tag 'X-PER' {NO_SCHEME} {EVALUATE_HINT}"),
    ("Peter B-MISC", "tag 'B-MISC' never occurs in the training data, so the model cannot predict it. Fix the tag, "
                     "or evaluate a model trained on data that has it."),
])
def test_evaluate_command_stops_with_the_evaluate_hint(ner_model, tmp_path, capsys, line, message):
    from tokclf.cli import evaluate_main

    path = tmp_path / "test.conll"
    path.write_text(f"EU B-ORG\nrejects O\n{line}\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        evaluate_main(["--model", str(ner_model), "--test_file", str(path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == f"error: {path}:3: {message}"
    assert "--tag_scheme" not in err and "--unseen_eval_tags" not in err  # flags evaluate does not have


# ----------------------------------------------------------------------------------------------------
# One decision of IOB-ness


def test_labels_decoding_and_label_sets_decide_iob_alike():
    from tokclf.inference import decoding

    assert decoding.is_iob is is_iob
    for names in [("O", "B-PER", "I-PER"), ("NN", "VB"), ("O", "B-PER", "X"), ("O", "S-PER")]:
        assert LabelSet(names).scheme == ("iob" if is_iob(names) else "none")
        assert (decoding.allowed_starts(names).all() and decoding.allowed_transitions(names).all()) != (
            is_iob(names) and any(n.startswith("I-") for n in names))
    assert LabelSet.from_tags([["B-PER", "O"]], "none").scheme == "iob"  # tags decide, not the argument
