"""Batches: padding with DataCollatorForTokenClassification and the data loaders of each split."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from transformers import DataCollatorForTokenClassification

from tokclf.features import IGNORE, EncodedSplit


class TokenClassificationCollator:
    """Pads input ids and labels (labels with -100) and carries each row's feature index along,
    so that predictions can be mapped back to words after `gather_for_metrics`."""

    def __init__(self, tokenizer, pad_to_multiple_of=None, pad_to_max_length=False, max_length=None):
        self.pad = DataCollatorForTokenClassification(
            tokenizer,
            padding="max_length" if pad_to_max_length else True,
            max_length=max_length if pad_to_max_length else None,
            pad_to_multiple_of=pad_to_multiple_of,
            label_pad_token_id=IGNORE,
            return_tensors="pt",
        )

    def __call__(self, features: list[dict]) -> dict:
        index = torch.tensor([f["feature_index"] for f in features], dtype=torch.long)
        batch = self.pad([{"input_ids": f["input_ids"], "labels": f["labels"]} for f in features])
        batch["feature_index"] = index
        return batch


def train_loader(split: EncodedSplit, collator, batch_size: int, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(split.features, batch_size=batch_size, shuffle=True, collate_fn=collator,
                      generator=generator)


def eval_loader(split: EncodedSplit, collator, batch_size: int) -> DataLoader:
    """Windows in order of length, so each batch holds similar lengths and little padding;
    the feature index in every row puts predictions back in place."""
    order = sorted(range(len(split.features)), key=lambda i: split.lengths[i])
    return DataLoader([split.features[i] for i in order], batch_size=batch_size, shuffle=False,
                      collate_fn=collator)
