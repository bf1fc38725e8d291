"""The datasets cache: every split is read and encoded once (Dataset.map, fingerprinted), read back
identical, and encoded again when anything that shapes the encoding changes; the Arrow columns are
exactly what tokclf.data.features.encode gives for the whole split, whatever the map's batches."""

import datasets
import pytest

from tokclf.data import columns
from tokclf.data.arrow_data import file_split
from tokclf.formats.base import Reading
from tokclf.components import encoding_settings, setup_training
from tokclf.config import parse_config
from tokclf.data.features import encode
from tokclf.training.recipe import train
from tokclf.data.tag_columns import prepare_columns


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "datasets-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", folder)
    return folder / "tokclf"


def encoded_splits(args):
    parts = setup_training(parse_config(args), lambda _: None)
    return {name: split.encoded for name, split in parts.splits.items()}


WINDOWS = ["--max_length", "16", "--stride", "4", "--context_sentences", "1"]


def test_cached_splits_read_back_identical(base_args, cache_dir):
    # max_length 16 splits long sentences into windows, context adds unlabelled neighbours: all must survive
    fresh = encoded_splits(base_args + WINDOWS)
    again = encoded_splits(base_args + WINDOWS)
    assert not any(e.from_cache for e in fresh.values()) and all(e.from_cache for e in again.values())
    assert any(n > 1 for n in _windows_per_sentence(fresh["train"]))
    assert again == fresh
    redone = encoded_splits(base_args + WINDOWS + ["--overwrite_cache"])
    assert not any(e.from_cache for e in redone.values()) and redone == fresh
    assert not list(cache_dir.glob(".tmp-*"))


def _windows_per_sentence(encoded):
    counts = {}
    for s in encoded.sentence_of_feature.tolist():
        counts[s] = counts.get(s, 0) + 1
    return list(counts.values())


def test_changed_options_or_data_miss_the_cache(base_args, cache_dir, conll_dir, tmp_path):
    encoded_splits(base_args)
    hits = lambda args: {k: e.from_cache for k, e in encoded_splits(base_args + args).items()}
    assert hits([]) == {"train": True, "validation": True, "test": True}
    assert hits(["--max_length", "40"]) == {"train": False, "validation": False, "test": False}
    assert hits(["--label_all_tokens"])["train"] is False
    edited = tmp_path / "edited"
    edited.mkdir()
    for path in conll_dir.iterdir():
        text = path.read_text()
        (edited / path.name).write_text(text.replace("Paris", "Lyon", 1) if path.name == "eng.train" else text)
    assert (edited / "eng.train").read_text() != (conll_dir / "eng.train").read_text()
    # the edited training file is read and encoded again; the other two files are the same bytes
    assert hits(["--data_dir", str(edited)]) == {"train": False, "validation": True, "test": True}
    assert len(list(cache_dir.glob("sentences-*.arrow"))) == 4


@pytest.mark.parametrize("batch, num_proc", [(7, None), (1000, 2)])
def test_columns_equal_encode_of_the_whole_split(conll_dir, tiny_model, cache_dir, monkeypatch, batch, num_proc):
    """Map batches (7 sentences: windows and document context cross every edge) and worker processes
    change nothing: the columns are encode()'s output for the whole split at once."""
    from transformers import AutoTokenizer

    monkeypatch.setattr(columns, "BATCH", batch)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    split = file_split(conll_dir / "eng.train", Reading(task="ner"))
    gold, labels = prepare_columns({"train": split}, "auto", "ner")
    encoding = {"max_length": 16, "stride": 4, "label_all_tokens": True, "context_sentences": 2}
    settings = encoding_settings(labels, encoding, labelled=True)
    arrow = columns.encode_split(split, tokenizer, settings, gold["train"], num_proc=num_proc)
    rows = [split.sentences[i] for i in range(len(split))]
    lists = encode(tokenizer, [s.words for s in rows], list(gold["train"]), doc_ids=[s.doc_id for s in rows],
                   **settings)
    assert arrow.features == lists.features
    assert arrow.scored_positions == lists.scored_positions
    assert arrow.sentence_of_feature.tolist() == lists.sentence_of_feature
    assert arrow.lengths.tolist() == lists.lengths and arrow.words_per_sentence.tolist() == lists.words_per_sentence


def test_training_from_the_cache_gives_the_same_run(base_args, cache_dir):
    args = base_args + ["--max_train_steps", "6"]
    first = train(parse_config(args + ["--output_dir", str(cache_dir.parent / "a")]))
    second = train(parse_config(args + ["--output_dir", str(cache_dir.parent / "b"), "--cache_tokenized"]))
    assert first["eval_f1"] == second["eval_f1"] and first["train_loss"] == second["train_loss"]


def test_automatic_workers_follow_the_split_size(monkeypatch):
    """Without --preprocessing_num_workers a split gets a process per 50,000 sentences, at most one per
    usable core; a flag of 1 (or a small split) keeps the work in this process."""
    monkeypatch.setattr(columns.os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    assert columns.map_workers(None, 49_999) is None
    assert columns.map_workers(None, 100_000) == 2
    assert columns.map_workers(None, 10 ** 7) == 4
    assert columns.map_workers(3, 10) == 3 and columns.map_workers(1, 10 ** 7) is None


def test_a_tokenizer_is_hashed_once_and_another_misses_the_cache(conll_dir, tiny_model, cache_dir, monkeypatch):
    """The cache key holds datasets' hash of the tokenizer, computed once per opened tokenizer (it pickles the
    whole object); a tokenizer that splits words otherwise gets another key, so its windows are encoded anew."""
    from datasets.fingerprint import Hasher
    from transformers import AutoTokenizer

    split = file_split(conll_dir / "eng.train", Reading(task="ner"))
    gold, labels = prepare_columns({"train": split}, "auto", "ner")
    settings = encoding_settings(labels, {"max_length": 32, "stride": 8}, labelled=True)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    hashed = []
    real_hash = Hasher.hash
    monkeypatch.setattr(Hasher, "hash", classmethod(lambda cls, value: hashed.append(value) or real_hash(value)))
    first = columns.encode_split(split, tokenizer, settings, gold["train"])
    again = columns.encode_split(split, tokenizer, settings, gold["train"])
    assert not first.from_cache and again.from_cache
    assert sum(value is tokenizer for value in hashed) == 1
    other = AutoTokenizer.from_pretrained(tiny_model)
    other.add_tokens(["paris"])  # one more word in its vocabulary: other ids for it
    key = lambda tok: columns.encoding_key(split, tok, settings, gold["train"])
    assert key(other) != key(tokenizer)
    assert not columns.encode_split(split, other, settings, gold["train"]).from_cache
