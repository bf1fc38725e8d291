"""Span files wired into the commands: training on each span format sees exactly what training on the
CoNLL form sees, evaluate reads them, predict writes Label Studio and doccano files that read back as its
spans output, and bad span data stops `tokclf train` with one error and exit 2.

The span files are built from the synthetic CoNLL sentences, words joined by single spaces (as in
test_spans), and read with --word_split whitespace.
"""

import json

import pytest

from test_spans import FOOTER, iob2_sentences, write_format, write_rows
from tokclf.cli import evaluate_main, predict_main, train_main
from tokclf.components import setup_training
from tokclf.config import parse_config
from tokclf.formats.registry import read_file
from tokclf.formats.registry import read_span_file
from tokclf.formats.registry import detect
from tokclf.formats.spans import record_spans

SPLIT_FILES = {"train": "eng.train", "validation": "eng.testa", "test": "eng.testb"}
FORMATS = ["labelstudio", "doccano", "doccano-entities", "prodigy", "prodigy-no-tokens"]


def span_dir(conll_dir, folder, name):
    """train/validation/test files of one span format holding conll_dir's sentences."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".json" if name == "labelstudio" else ".jsonl"
    for split, conll_name in SPLIT_FILES.items():
        write_format(folder / (split + suffix), name, iob2_sentences(conll_dir / conll_name))
    return folder


def args_for(base_args, data_dir, *extra):
    args = list(base_args)
    args[args.index("--data_dir") + 1] = str(data_dir)
    return args + list(extra)


@pytest.fixture(scope="module")
def conll_parts(tiny_model, conll_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("conll-run")
    return setup_training(parse_config(["--model_name_or_path", str(tiny_model), "--data_dir", str(conll_dir),
                                        "--output_dir", str(out), "--max_length", "64", "--stride", "16"]))


@pytest.mark.parametrize("name", FORMATS)
def test_training_on_span_files_sees_the_conll_words_and_tags(name, conll_parts, conll_dir, tiny_model, tmp_path):
    folder = span_dir(conll_dir, tmp_path / name, name)
    parts = setup_training(parse_config(["--model_name_or_path", str(tiny_model), "--data_dir", str(folder),
                                         "--output_dir", str(tmp_path / "out"), "--max_length", "64",
                                         "--stride", "16", "--word_split", "whitespace"]))
    assert parts.labels.names == conll_parts.labels.names
    for split, expected in conll_parts.splits.items():
        got = parts.splits[split]
        assert len(got.tags) == len(expected.tags) > 0
        for i, (tags, gold) in enumerate(zip(got.tags, expected.tags)):
            assert tags == gold, (split, i)
        assert got.encoded.features == expected.encoded.features
        assert got.encoded.scored_positions == expected.encoded.scored_positions
        assert list(got.encoded.words_per_sentence) == list(expected.encoded.words_per_sentence)


@pytest.mark.parametrize("suffix, row, expected", [
    (".jsonl", {"tokens": ["EU"], "ner_tags": ["B-ORG"]}, "jsonl"),
    (".json", {"tokens": ["EU"], "ner_tags": ["B-ORG"]}, "jsonl"),
    (".jsonl", {"words": ["EU"], "label": ["B-ORG"]}, "jsonl"),  # a records file whose tags column is `label`
    (".json", {"data": {"text": "EU"}, "annotations": []}, "labelstudio"),
    (".jsonl", {"text": "EU", "label": [[0, 2, "ORG"]]}, "doccano"),
    (".jsonl", {"text": "EU", "entities": []}, "doccano"),
    (".jsonl", {"text": "EU", "spans": [{"start": 0, "end": 2, "label": "ORG"}]}, "prodigy"),
    (".jsonl", {"text": "EU", "tokens": [{"start": 0, "end": 2}], "spans": []}, "prodigy"),
    (".jsonl", {"sentence": "EU"}, "jsonl"),  # the token rows reader explains what is missing, as before
])
def test_auto_detection_keeps_todays_json_files(tmp_path, suffix, row, expected):
    path = write_rows(tmp_path / ("d" + suffix), [row], as_list=suffix == ".json")
    assert detect(path).name == expected
    (tmp_path / "eng.train").write_text("EU B-ORG\n")
    (tmp_path / "x.csv").write_text("tokens,ner_tags\n")
    assert detect(tmp_path / "eng.train").name == "conll" and detect(tmp_path / "x.csv").name == "jsonl"


def test_alignment_counts_are_one_line_in_the_log(tmp_path, capsys):
    path = write_rows(tmp_path / "d.jsonl", [{"text": "John Smith's car", "label": [[0, 10, "PER"], [0, 4, "PER"]]},
                                             {"text": "Rome", "label": [[0, 4, "LOC"], [0, 4, "LOC"]]}])
    sentences = read_file(path, "ner", span_alignment="expand", word_split="whitespace")
    assert [s.tags for s in sentences] == [["B-PER", "I-PER", "O"], ["B-LOC"]]
    assert capsys.readouterr().out == (f"{path}: --span_alignment expand: inside_word 1 (snapped to word boundaries), "
                                       f"overlap 1 (dropped, its words are O), duplicate 1\n")


def train_error(base_args, tmp_path, capsys, rows, *extra) -> str:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "train.jsonl").write_text(rows, encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        train_main(args_for(base_args, folder, *extra))
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_strict_alignment_problems_stop_train_with_exit_2(base_args, tmp_path, capsys):
    rows = json.dumps({"text": "John Smith's car", "label": [[0, 10, "PER"]]}) + "\n"
    err = train_error(base_args, tmp_path, capsys, rows, "--word_split", "whitespace")
    path = tmp_path / "bad" / "train.jsonl"
    assert err == "\n".join([
        f"error: {path}: 1 span problem(s) under --span_alignment strict:",
        "  inside_word: 1 (a span boundary falls inside a word), e.g.",
        f'''    {path}:1: span [0, 10) PER has a boundary inside a word: "[John Smith]'s car"''', FOOTER]) + "\n"


@pytest.mark.parametrize("rows, extra, message", [
    ('{"text": "EU", "label": [[0, 2, "ORG"]]}\n{"text": \n', [],
     "train.jsonl:2: not valid JSON (Expecting value at column 10). A JSON Lines file holds one JSON object per "
     "line."),
    ('{"text": "EU", "label": [[0, "2", "ORG"]]}\n', [],
     "train.jsonl:1: span start and end must be whole numbers, got 0 and '2'."),
    ('{"body": "EU", "label": [[0, 2, "ORG"]]}\n', ["--input_format", "doccano"],
     "train.jsonl:1: expected the text as a string in 'text'; the keys are ['body', 'label']. Pass text_column "
     "(--text_column_name) to name another."),
    ('{"text": "EU", "answer": "reject", "spans": []}\n', [],
     "train.jsonl: no annotated prodigy records to train on (counts: --span_alignment strict: rejected 1). "
     "Annotate some, or check --input_format."),
])
def test_bad_span_files_stop_train_with_one_line(base_args, tmp_path, capsys, rows, extra, message):
    err = train_error(base_args, tmp_path, capsys, rows, *extra)
    assert err == f"error: {tmp_path / 'bad' / message}\n"


# A tiny model trained on a Label Studio export with --word_split whitespace: evaluate and predict


@pytest.fixture(scope="module")
def studio_model(tiny_model, conll_dir, tmp_path_factory):
    """(model folder, the export's folder) of one quick run on the Label Studio form of conll_dir."""
    folder = span_dir(conll_dir, tmp_path_factory.mktemp("studio-data"), "labelstudio")
    out = tmp_path_factory.mktemp("studio-model")
    train_main(["--model_name_or_path", str(tiny_model), "--data_dir", str(folder), "--output_dir", str(out),
                "--word_split", "whitespace", "--per_device_train_batch_size", "16", "--learning_rate", "1e-2",
                "--num_train_epochs", "2", "--seed", "7", "--max_length", "64", "--stride", "16"])
    return out, folder


def test_evaluate_reads_the_export_as_it_reads_conll(studio_model, conll_dir, tmp_path):
    model, folder = studio_model
    scores = []
    for test_file in (folder / "validation.json", conll_dir / "eng.testa"):
        evaluate_main(["--model", str(model), "--test_file", str(test_file), "--output_file", str(tmp_path / "m.json")])
        scores.append(json.loads((tmp_path / "m.json").read_text()))
    assert scores[0] == scores[1] and scores[0]["f1"] > 0


@pytest.fixture(scope="module")
def predicted(studio_model, conll_dir, tmp_path_factory):
    """predict on text lines (words joined by spaces, one line with attached punctuation, an empty line)
    in four output formats; {format: the output's text}."""
    model, _ = studio_model
    folder = tmp_path_factory.mktemp("predict")
    lines = [" ".join(s.words) for s in iob2_sentences(conll_dir / "eng.testb")] + ["", "John, in Paris."]
    (folder / "in.txt").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    out = {"lines": lines, "folder": folder}
    for fmt in ("labelstudio", "spans", "doccano", "jsonl"):
        predict_main(["--model", str(model), "--input", str(folder / "in.txt"), "--output", str(folder / fmt),
                      "--output_format", fmt, "--from_name", "ner", "--to_name", "body"])
        out[fmt] = (folder / fmt).read_text(encoding="utf-8")
    return out


def test_labelstudio_predictions_equal_the_spans_output(predicted, studio_model):
    tasks, lines = json.loads(predicted["labelstudio"]), predicted["lines"]
    written = predicted["labelstudio"].splitlines()
    assert written[0] == "[" and written[-1] == "]" and len(written) == len(lines) + 2  # one task a line
    spans = [json.loads(line) for line in predicted["spans"].splitlines()]
    assert [t["data"]["text"] for t in tasks] == lines == [s["text"] for s in spans]
    for task, row in zip(tasks, spans):
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == studio_model[0].name
        result = prediction["result"]
        assert [(r["value"]["start"], r["value"]["end"], r["value"]["labels"], r["value"]["text"], r["score"])
                for r in result] == [(e["start"], e["end"], [e["label"]], e["text"], e["score"])
                                     for e in row["entities"]]
        assert all(r["value"]["text"] == row["text"][r["value"]["start"]:r["value"]["end"]] for r in result)
        assert all((r["from_name"], r["to_name"], r["type"]) == ("ner", "body", "labels") for r in result)
    assert sum(len(s["entities"]) for s in spans) > 10


def test_predictions_read_back_by_our_reader_as_the_same_spans(predicted):
    spans = [json.loads(line) for line in predicted["spans"].splitlines()]
    expected = [[(e["start"], e["end"], e["label"]) for e in s["entities"]] for s in spans]
    (predicted["folder"] / "tasks.json").write_text(predicted["labelstudio"], encoding="utf-8")
    records, _ = read_span_file(predicted["folder"] / "tasks.json", word_split="whitespace",
                                labelstudio_source="predictions")
    assert [[(s.start, s.end, s.label) for s in record_spans(r)] for r in records] == expected
    rows = [json.loads(line) for line in predicted["doccano"].splitlines()]
    assert [row["text"] for row in rows] == predicted["lines"]
    assert [[tuple(x) for x in row["label"]] for row in rows] == expected


def test_word_split_of_training_is_predicts_default(predicted):
    rows = [json.loads(line) for line in predicted["jsonl"].splitlines()]
    assert rows[-1]["tokens"] == ["John,", "in", "Paris."]  # whitespace, as trained; punct would split "," off
    assert rows[-2]["tokens"] == []


def test_predict_pre_annotates_a_labelstudio_export(studio_model, tmp_path):
    model, folder = studio_model
    tasks = json.loads((folder / "validation.json").read_text())
    tasks[1]["annotations"] = []  # a task nobody annotated yet is pre-annotated too
    write_rows(tmp_path / "export.json", tasks, as_list=True)
    predict_main(["--model", str(model), "--input", str(tmp_path / "export.json"),
                  "--output", str(tmp_path / "pre.json")])
    written = json.loads((tmp_path / "pre.json").read_text())
    assert [t["data"]["text"] for t in written] == [t["data"]["text"] for t in tasks]
    assert all("annotations" not in t and len(t["predictions"]) == 1 for t in written)
