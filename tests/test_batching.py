"""Batches: the collator, the length-grouped sampler and the evaluation order."""

import random

import numpy as np
import pytest
import torch

from tokclf.data.batching import LengthGroupedSampler, TokenClassificationCollator, eval_loader
from tokclf.data.columns import EncodedColumns
from tokclf.data.features import IGNORE


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def features(lengths):
    return [{"input_ids": [2] + [7] * (n - 2) + [3], "labels": [IGNORE] + [1] * (n - 2) + [IGNORE],
             "feature_index": i} for i, n in enumerate(lengths)]


def test_the_collator_pads_ids_and_labels_and_keeps_each_rows_feature_index(tokenizer):
    batch = TokenClassificationCollator(tokenizer)(features([5, 3]))
    assert batch["input_ids"].shape == (2, 5) and batch["labels"].shape == (2, 5)
    assert batch["input_ids"][1].tolist()[3:] == [tokenizer.pad_token_id] * 2
    assert batch["labels"][1].tolist() == [IGNORE, 1, IGNORE, IGNORE, IGNORE]
    assert batch["attention_mask"][1].tolist() == [1, 1, 1, 0, 0]
    assert batch["feature_index"].tolist() == [0, 1] and batch["feature_index"].dtype == torch.long


def test_padding_to_a_multiple_and_to_max_length(tokenizer):
    assert TokenClassificationCollator(tokenizer, pad_to_multiple_of=8)(features([5, 3]))["input_ids"].shape == (2, 8)
    padded = TokenClassificationCollator(tokenizer, pad_to_max_length=True, max_length=12)(features([5, 3]))
    assert padded["labels"].shape == (2, 12)


def test_evaluation_batches_come_in_length_order_and_cover_every_window_once(tokenizer):
    from datasets import Dataset

    lengths = [9, 3, 7, 3, 12, 5]
    rows = features(lengths)
    columns = Dataset.from_dict({"input_ids": [r["input_ids"] for r in rows], "labels": [r["labels"] for r in rows],
                                 "length": lengths, "sentence": list(range(6))})
    split = EncodedColumns(columns, np.ones(6, dtype=np.int64))
    batches = list(eval_loader(split, TokenClassificationCollator(tokenizer), 4))
    order = [i for b in batches for i in b["feature_index"].tolist()]
    assert sorted(order) == list(range(6)) and [lengths[i] for i in order] == sorted(lengths)
    assert [b["input_ids"].shape[1] for b in batches] == [7, 12]  # each batch padded to its own longest


def test_length_grouped_batches_shuffle_reproducibly_with_little_padding():
    lengths = [random.Random(i).randint(5, 120) for i in range(1000)]
    sampler = LengthGroupedSampler(lengths, 32, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(1000)) and first == list(LengthGroupedSampler(lengths, 32, seed=3))
    sampler.set_epoch(1)
    assert list(sampler) != first

    def padding(order):
        batches = [order[i:i + 32] for i in range(0, len(order), 32)]
        return 1 - sum(lengths[i] for i in order) / sum(len(b) * max(lengths[i] for i in b) for b in batches)

    shuffled = random.Random(0).sample(range(1000), 1000)
    assert padding(first) < 0.1 < padding(shuffled)
    assert len([b for b in range(0, 1000, 32) if len(first[b:b + 32]) < 32]) == 1 and len(first[992:]) == 8


@pytest.mark.parametrize("precision", ["no", "bf16"])
def test_batches_are_padded_to_multiples_of_8_only_for_reduced_precision_on_a_gpu(precision):
    from types import SimpleNamespace

    import torch

    from tokclf.runtime.accel import pad_multiple

    on = lambda device: SimpleNamespace(mixed_precision=precision, device=torch.device(device))  # noqa: E731
    assert pad_multiple(on("cpu")) is None  # CPU bf16 kernels take any length
    assert pad_multiple(on("cuda")) == (8 if precision == "bf16" else None)
