"""Encoded splits as Arrow columns: tokclf.data.features.encode run batch by batch inside Dataset.map.

One row per window: input_ids, labels, scored_position and scored_word (the word each scored position
predicts, as two parallel lists), sentence (its index in the split) and length. Dataset.map writes the
columns to the datasets cache next to the sentences, under a fingerprint of the sentences, the tokenizer
and the encoding options: a later run with the same ones maps the cache file and encodes nothing.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass, field
from functools import cached_property
from typing import Optional

import numpy as np

from tokclf.data.arrow_data import quiet_datasets
from tokclf.data.features import EncodedSplit, encode

ENCODING_VERSION = 1  # bump when encode() changes what it produces for the same input
BATCH = 1000  # sentences per Dataset.map batch
ROWS_PER_WORKER = 50_000  # the automatic worker count: a process pool pays off from about this many sentences
MAX_WORKERS = 8
# tokenizer -> datasets' hash of it. Hashing pickles the whole tokenizer (0.27 s for MiniLM's), and predict
# encodes a chunk at a time; tokclf changes a tokenizer only while opening it (runtime/model.py), so one hash holds.
_TOKENIZER_HASHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def encoded_features():
    from datasets import Features, List, Value

    return Features({"input_ids": List(Value("int32")), "labels": List(Value("int32")),
                     "scored_position": List(Value("int32")), "scored_word": List(Value("int32")),
                     "sentence": Value("int64"), "length": Value("int32")})


def encode_batch(batch, indices, *, tokenizer, settings: dict, convert=None, source=None):
    """Dataset.map's function: the windows of a batch of consecutive sentences. With document context
    the sentences just outside the batch (from `source`) are encoded alongside and their windows dropped,
    so a batch edge never changes a window."""
    words, docs = list(batch["words"]), list(batch["doc_id"])
    tags = [convert(t) for t in batch["tags"]] if convert is not None else None
    n, k, first = len(words), settings.get("context_sentences", 0), indices[0]
    left = 0
    if k and source is not None:
        before = source[max(0, first - k):first]
        after = source[first + n:min(len(source), first + n + k)]
        left = len(before["words"])
        words = before["words"] + words + after["words"]
        docs = before["doc_id"] + docs + after["doc_id"]
        if tags is not None:  # any valid label: these windows are dropped
            filler = next(iter(settings["label2id"]))
            tags = [[filler] * len(w) for w in before["words"]] + tags + [[filler] * len(w) for w in after["words"]]
    enc = encode(tokenizer, words, tags, doc_ids=docs, **settings)
    keep = [f for f, s in enumerate(enc.sentence_of_feature) if left <= s < left + n]
    return {"input_ids": [enc.features[f]["input_ids"] for f in keep],
            "labels": [enc.features[f]["labels"] for f in keep],
            "scored_position": [[p for p, _ in enc.scored_positions[f]] for f in keep],
            "scored_word": [[w for _, w in enc.scored_positions[f]] for f in keep],
            "sentence": [first + enc.sentence_of_feature[f] - left for f in keep],
            "length": [enc.lengths[f] for f in keep]}


@dataclass
class EncodedColumns:
    """A split's windows (a datasets.Dataset of the columns above) and its sentences' word counts."""

    dataset: object
    words_per_sentence: np.ndarray
    from_cache: bool = field(default=False, compare=False)

    def __len__(self) -> int:
        return self.dataset.num_rows

    def column(self, name: str) -> np.ndarray:
        return np.asarray(self.dataset.data.column(name))

    @cached_property
    def lengths(self) -> np.ndarray:
        return self.column("length")

    @cached_property
    def sentence_of_feature(self) -> np.ndarray:
        return self.column("sentence")

    @cached_property
    def scored(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(offsets, positions, words): window f scores positions[offsets[f]:offsets[f + 1]]."""
        positions = self.dataset.data.column("scored_position").combine_chunks()
        words = self.dataset.data.column("scored_word").combine_chunks()
        offsets = np.asarray(positions.offsets, dtype=np.int64)
        return offsets - offsets[0], np.asarray(positions.flatten()), np.asarray(words.flatten())

    @property
    def features(self) -> list[dict]:
        """Every window as a dict, in Python (tests and small tools; never used by training)."""
        rows = self.dataset.select_columns(["input_ids", "labels"]).to_dict()
        return [{"input_ids": ids, "labels": labels, "feature_index": i}
                for i, (ids, labels) in enumerate(zip(rows["input_ids"], rows["labels"]))]

    @property
    def scored_positions(self) -> list[list[tuple[int, int]]]:
        offsets, positions, words = self.scored
        return [list(zip(positions[a:b].tolist(), words[a:b].tolist())) for a, b in zip(offsets, offsets[1:])]

    def __eq__(self, other) -> bool:
        return (isinstance(other, EncodedColumns) and self.dataset.to_dict() == other.dataset.to_dict()
                and np.array_equal(self.words_per_sentence, other.words_per_sentence))

    @classmethod
    def from_encoded(cls, encoded: EncodedSplit) -> "EncodedColumns":
        """An in-memory copy of encode()'s lists, for tools that call encode() directly."""
        from datasets import Dataset

        rows = {"input_ids": [f["input_ids"] for f in encoded.features],
                "labels": [f["labels"] for f in encoded.features],
                "scored_position": [[p for p, _ in s] for s in encoded.scored_positions],
                "scored_word": [[w for _, w in s] for s in encoded.scored_positions],
                "sentence": encoded.sentence_of_feature, "length": encoded.lengths}
        return cls(Dataset.from_dict(rows, features=encoded_features()), np.asarray(encoded.words_per_sentence))


def encoding_key(split, tokenizer, settings: dict, gold) -> str:
    from datasets.fingerprint import Hasher

    rule = (gold.scheme, sorted(gold.known) if gold.known else None) if gold is not None else None
    return "tokclf-windows-" + Hasher.hash([ENCODING_VERSION, split.dataset._fingerprint, tokenizer_hash(tokenizer),
                                            sorted(settings.items()), rule])


def tokenizer_hash(tokenizer) -> str:
    """datasets' hash of an opened tokenizer, computed once per tokenizer object."""
    from datasets.fingerprint import Hasher

    if tokenizer not in _TOKENIZER_HASHES:
        _TOKENIZER_HASHES[tokenizer] = Hasher.hash(tokenizer)
    return _TOKENIZER_HASHES[tokenizer]


def map_workers(requested: Optional[int], rows: int) -> Optional[int]:
    """Dataset.map's num_proc: --preprocessing_num_workers, or by default one process per ROWS_PER_WORKER
    sentences, at most one per usable core (and MAX_WORKERS); None where one process does it all."""
    workers = requested or min(len(os.sched_getaffinity(0)), MAX_WORKERS, rows // ROWS_PER_WORKER)
    return workers if workers > 1 else None


def encode_split(split, tokenizer, settings: dict, gold=None, *, num_proc: Optional[int] = None,
                 overwrite_cache: bool = False, in_memory: bool = False) -> EncodedColumns:
    """The windows of a SentenceSplit. `gold` (tokclf.data.tag_columns.GoldTags) gives the labels; without
    it every label is -100 (evaluation and prediction score words, they need no labels).
    `in_memory`: nothing is written to the cache (predict's chunks)."""
    dataset = split.dataset
    if not len(dataset):  # map would hand back the sentence columns
        from datasets import Dataset

        empty = Dataset.from_dict({name: [] for name in encoded_features()}, features=encoded_features())
        return EncodedColumns(empty, split.words_per_sentence())
    fn_kwargs = {"tokenizer": tokenizer, "settings": settings, "convert": gold.convert if gold else None,
                 "source": dataset.select_columns(["words", "doc_id"]) if settings.get("context_sentences") else None}
    key = encoding_key(split, tokenizer, settings, gold)
    cached = not in_memory and not overwrite_cache and _is_cached(dataset, key)
    with quiet_datasets():
        encoded = dataset.map(encode_batch, batched=True, batch_size=BATCH, with_indices=True, fn_kwargs=fn_kwargs,
                              remove_columns=dataset.column_names, features=encoded_features(),
                              num_proc=None if in_memory else map_workers(num_proc, len(dataset)),
                              new_fingerprint=key, load_from_cache_file=not overwrite_cache,
                              keep_in_memory=in_memory)
    return EncodedColumns(encoded, split.words_per_sentence(), cached)


def _is_cached(dataset, key: str) -> bool:
    if not dataset.cache_files:
        return False
    from pathlib import Path

    path = Path(dataset._get_cache_file_path(key))
    return path.is_file() or any(path.parent.glob(path.stem + "_*_of_*" + path.suffix))
