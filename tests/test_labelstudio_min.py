"""Label Studio JSON-MIN (tokclf/formats/labelstudio_min.py) against label-studio-sdk's converter: the
JSON-MIN it makes from a JSON export reads as that export does and trains as the CoNLL form does to the
digit; predict's JSON-MIN has the converter's shape and reads back to predict's spans."""

import json

import pytest

from helpers import assert_same_scores, train_each
from test_span_training import SPLIT_FILES, span_dir
from test_spans import iob2_sentences
from tokclf.cli import predict_main
from tokclf.errors import DataError
from tokclf.formats.labelstudio import labelstudio_task
from tokclf.formats.registry import detect, read_file, read_span_file
from tokclf.formats.words import split

converter = pytest.importorskip("label_studio_sdk.converter", reason="label-studio-sdk (requirements-test.txt)")
LABEL_CONFIG = """<View>
  <Labels name="label" toName="text">
    <Label value="PER"/><Label value="LOC"/><Label value="ORG"/><Label value="MISC"/>
  </Labels>
  <Text name="text" value="$text"/>
</View>"""


def json_min_of(export, folder):
    """The real converter's JSON-MIN of a Label Studio JSON export."""
    converter.Converter(LABEL_CONFIG, str(folder)).convert_to_json_min(str(export), str(folder), is_dir=False)
    return folder / "result.json"


def json_min_dir(conll_dir, folder):
    """train/validation/test JSON-MIN files made by the converter from the JSON exports of conll_dir."""
    exports = span_dir(conll_dir, folder / "json", "labelstudio")
    for split_name in SPLIT_FILES:
        out = json_min_of(exports / f"{split_name}.json", folder / split_name)
        out.rename(folder / f"{split_name}.json")
    return folder


def test_the_converters_json_min_reads_as_the_json_export(conll_dir, tmp_path):
    folder = json_min_dir(conll_dir, tmp_path / "min")
    for split_name in SPLIT_FILES:
        path = folder / f"{split_name}.json"
        assert detect(path).name == "labelstudio-min"
        ours, report = read_span_file(path, word_split="whitespace")
        export, _ = read_span_file(tmp_path / "min" / "json" / f"{split_name}.json", word_split="whitespace")
        assert [(r.words, r.tags, r.text) for r in ours] == [(r.words, r.tags, r.text) for r in export]
        assert not report.counts and len(ours) > 40


def test_several_cancelled_and_missing_annotations_as_the_json_export(tmp_path):
    """The converter writes one record per annotation: the latest is used, as in the JSON export."""
    text = "John met Mary"
    words, offsets = split(text, "whitespace")
    old = labelstudio_task(text, words, offsets, ["B-PER", "O", "O"], as_annotation=True)["annotations"][0]
    new = labelstudio_task(text, words, offsets, ["B-PER", "O", "B-PER"], as_annotation=True)["annotations"][0]
    tasks = [{"id": 1, "data": {"text": text}, "annotations": [
        {**old, "id": 10, "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z"},
        {**new, "id": 11, "created_at": "2024-02-01T00:00:00Z", "updated_at": "2024-02-01T00:00:00Z"},
        {**old, "id": 12, "was_cancelled": True}]},
        {"id": 2, "data": {"text": "no one"}, "annotations": []}]
    (tmp_path / "export.json").write_text(json.dumps(tasks), encoding="utf-8")
    path = json_min_of(tmp_path / "export.json", tmp_path)
    assert len(json.loads(path.read_text())) == 3  # two annotations of task 1, task 2 without one
    for source in (path, tmp_path / "export.json"):
        records, report = read_span_file(source, word_split="whitespace")
        assert [r.tags for r in records] == [["B-PER", "O", "B-PER"]]
        assert report.counts["older_annotation"] == 1 and report.counts["unannotated"] == 1


def test_a_record_with_a_broken_region_names_it(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"id": 7, "text": "EU", "label": [{"start": "0", "end": 2, "labels": ["ORG"]}],
                                 "annotation_id": 1}]), encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.json: record 1 \(task 7\): span start and end must be whole numbers"):
        read_file(path, "ner")


@pytest.fixture(scope="module")
def trained(tiny_model, conll_dir, tmp_path_factory):
    """(JSON-MIN folder, model trained on it, model trained on the CoNLL form): same options, fp32."""
    folder = json_min_dir(conll_dir, tmp_path_factory.mktemp("min-data"))
    return folder, *train_each(tiny_model, [folder, conll_dir], tmp_path_factory)


def test_json_min_trains_as_the_conll_form_to_the_digit(trained):
    _, ours, theirs = trained
    assert_same_scores(ours, theirs)


def test_predicted_json_min_has_the_converters_shape_and_reads_back(trained, conll_dir, tmp_path):
    _, model, _ = trained
    lines = [" ".join(s.words) for s in iob2_sentences(conll_dir / "eng.testb")]
    (tmp_path / "in.txt").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    for fmt, out in (("labelstudio-min", "out.json"), ("spans", "spans.jsonl"), ("labelstudio", "tasks.json")):
        predict_main(["--model", str(model), "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / out),
                      "--output_format", fmt])
    written = json.loads((tmp_path / "out.json").read_text())
    spans = [json.loads(line) for line in (tmp_path / "spans.jsonl").read_text().splitlines()]
    assert [r["text"] for r in written] == lines
    assert [[(e["start"], e["end"], e["text"], [e["label"]]) for e in s["entities"]] for s in spans] == [
        [(r["start"], r["end"], r["text"], r["labels"]) for r in record["label"]] for record in written]
    assert sum(len(r["label"]) for r in written) > 10
    # The converter's JSON-MIN of the same predictions as annotations: the same regions under the same key.
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    for i, task in enumerate(tasks):
        task.update(id=i + 1, annotations=[{**task.pop("predictions")[0], "id": 100 + i}])
    (tmp_path / "as_annotations.json").write_text(json.dumps(tasks), encoding="utf-8")
    theirs = json.loads(json_min_of(tmp_path / "as_annotations.json", tmp_path / "conv").read_text())
    strip = lambda regions: [{k: r[k] for k in ("start", "end", "text", "labels")} for r in regions]
    assert [strip(r.get("label", [])) for r in theirs] == [r["label"] for r in written]
    records, _ = read_span_file(tmp_path / "out.json", word_split="whitespace")
    assert len(records) == len(lines) and any(not r["label"] for r in written)  # texts without entities too
    assert [r.tags for r in records] == [r.tags for r in read_span_file(tmp_path / "conv" / "result.json",
                                                                         word_split="whitespace")[0]]
