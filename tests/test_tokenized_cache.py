"""--cache_tokenized: a split is encoded once, read back identical, and re-encoded when anything
that shapes the encoding changes."""

import datasets
import pytest

from tokclf.config import parse_config
from tokclf.components import setup_training
from tokclf.recipe import train


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "datasets-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", folder)
    return folder / "tokclf"


def encoded_splits(args, said):
    parts = setup_training(parse_config(args), said.append)
    return {name: split.encoded for name, split in parts.splits.items()}


def test_cached_splits_read_back_identical(base_args, cache_dir):
    # max_length 16 splits long sentences into windows, context adds unlabelled neighbours: all must survive
    args = base_args + ["--cache_tokenized", "--max_length", "16", "--stride", "4", "--context_sentences", "1"]
    first_said, second_said = [], []
    fresh = encoded_splits(args, first_said)
    again = encoded_splits(args, second_said)
    assert all("written to the cache" in line for line in first_said) and len(first_said) == 3
    assert all("read from the cache" in line for line in second_said) and len(second_said) == 3
    assert any(len(s) > 1 for s in _windows_per_sentence(fresh["train"]))
    assert again == fresh
    uncached = encoded_splits(base_args + ["--max_length", "16", "--stride", "4", "--context_sentences", "1"], [])
    assert uncached == fresh
    assert not list(cache_dir.glob(".tmp-*"))


def _windows_per_sentence(encoded):
    counts = {}
    for s in encoded.sentence_of_feature:
        counts[s] = counts.get(s, 0) + 1
    return [[None] * n for n in counts.values()]


def test_changed_options_or_data_miss_the_cache(base_args, cache_dir, conll_dir, tmp_path):
    said = []
    encoded_splits(base_args + ["--cache_tokenized"], said)
    encoded_splits(base_args + ["--cache_tokenized", "--max_length", "40"], said)
    encoded_splits(base_args + ["--cache_tokenized", "--label_all_tokens"], said)
    edited = tmp_path / "edited"
    edited.mkdir()
    for path in conll_dir.iterdir():
        text = path.read_text()
        (edited / path.name).write_text(text.replace("Paris", "Lyon", 1) if path.name == "eng.train" else text)
    assert (edited / "eng.train").read_text() != (conll_dir / "eng.train").read_text()
    encoded_splits(base_args + ["--cache_tokenized", "--data_dir", str(edited)], said)
    train_lines = [line for line in said if line.startswith("train:")]
    assert len(train_lines) == 4 and all("written to" in line for line in train_lines)
    # every option changes all three splits; the edited training file changes only the train split
    assert len(list(cache_dir.iterdir())) == 3 + 3 + 3 + 1
    encoded_splits(base_args + ["--cache_tokenized", "--overwrite_cache"], said)
    assert all("written to" in line for line in said[-3:])


def test_training_from_the_cache_gives_the_same_run(base_args, cache_dir):
    args = base_args + ["--cache_tokenized", "--max_train_steps", "6"]
    first = train(parse_config(args + ["--output_dir", str(cache_dir.parent / "a")]))
    second = train(parse_config(args + ["--output_dir", str(cache_dir.parent / "b")]))
    assert first["eval_f1"] == second["eval_f1"] and first["train_loss"] == second["train_loss"]
