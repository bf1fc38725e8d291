"""SavedModel.load: the one way evaluate and predict open a model folder."""

import json
import shutil

import pytest

from tokclf.errors import ModelError
from tokclf.inference.saved_model import TRAINED_DEFAULTS, SavedModel, TrainedOptions

NAMES = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


@pytest.fixture(scope="module")
def saved_folder(tiny_model, tmp_path_factory):
    """The tiny BERT with a token-classification head and the args.json a training run writes."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    folder = tmp_path_factory.mktemp("saved")
    model = AutoModelForTokenClassification.from_pretrained(
        tiny_model, id2label=dict(enumerate(NAMES)), label2id={n: i for i, n in enumerate(NAMES)})
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(folder)
    (folder / "args.json").write_text(json.dumps({"max_length": 48, "stride": 8, "context_sentences": 1,
                                                  "tag_scheme": "iob1", "eval_decoding": "argmax",
                                                  "task_name": "ner", "learning_rate": 0.01}))
    return folder


def test_a_saved_model_opens_with_its_labels_and_training_options(saved_folder):
    saved = SavedModel.load(str(saved_folder))
    assert saved.labels.names == tuple(NAMES) and saved.labels.scheme == "iob"
    assert saved.trained == TrainedOptions(48, 8, 1, "iob1", "argmax", "ner")
    assert saved.tokenizer.is_fast and saved.model.config.num_labels == len(NAMES)
    assert saved.name == saved_folder.name


def test_command_line_options_override_the_trained_ones_and_none_keeps_them(saved_folder):
    trained = SavedModel.load(str(saved_folder)).trained
    chosen = trained.overridden(max_length=64, stride=None, context_sentences=0, decoding=None)
    assert (chosen.max_length, chosen.stride, chosen.context_sentences, chosen.decoding) == (64, 8, 0, "argmax")


def test_a_folder_without_args_json_gets_tokclf_defaults(saved_folder, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(saved_folder, bare)
    (bare / "args.json").unlink()
    trained = SavedModel.load(str(bare)).trained
    assert trained == TrainedOptions.from_args({}) and trained.max_length == TRAINED_DEFAULTS["max_length"]


def test_windows_longer_than_the_model_are_refused_before_any_work(saved_folder):
    saved = SavedModel.load(str(saved_folder))
    with pytest.raises(ModelError, match="--max_length 1000 exceeds the model's 512 positions"):
        saved.check(saved.trained.overridden(max_length=1000))


def test_a_missing_folder_and_a_base_model_are_refused(tiny_model, tmp_path):
    with pytest.raises(ModelError, match="no such folder. Give the --output_dir of a training run"):
        SavedModel.load(str(tmp_path / "nothing"))
    with pytest.raises(ModelError, match="only transformers' placeholder labels"):
        SavedModel.load(str(tiny_model))
