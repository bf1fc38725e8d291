"""Batches: padding with DataCollatorForTokenClassification and the data loaders of each split."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from transformers import DataCollatorForTokenClassification

from tokclf.data.columns import EncodedColumns
from tokclf.data.features import IGNORE


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


class LengthGroupedSampler(Sampler):
    """Indices in an order whose consecutive `batch_size` runs have similar lengths, so batches carry
    little padding, while still shuffled: each epoch (seed + epoch) shuffles all indices, cuts them into
    mega-batches of MEGA batches, sorts each by length, cuts those into batches and shuffles the batches.
    The one short batch goes last, so a BatchSampler of the same size cuts exactly these batches."""

    MEGA = 50

    def __init__(self, lengths, batch_size: int, seed: int):
        # a list or the lengths column as a numpy array (never turned into Python ints: 28 bytes each)
        self.lengths, self.batch_size, self.seed, self.epoch = lengths, batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        # numpy throughout: an epoch's order of 10^7 windows as Python lists would cost ~1 GB per process
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        lengths = np.asarray(self.lengths)
        order = torch.randperm(len(lengths), generator=generator).numpy()
        mega = self.MEGA * self.batch_size
        for start in range(0, len(order), mega):  # longest first; stable, as sorted(reverse=True) is
            chunk = order[start:start + mega]
            order[start:start + mega] = chunk[np.argsort(-lengths[chunk], kind="stable")]
        # mega is a multiple of batch_size, so only the last mega-batch can end in a short batch
        n_full = len(order) // self.batch_size
        full = order[:n_full * self.batch_size].reshape(n_full, self.batch_size)
        shuffled = full[torch.randperm(n_full, generator=generator).numpy()]
        return map(int, np.concatenate([shuffled.reshape(-1), order[n_full * self.batch_size:]]))


class FeatureRows(Dataset):
    """The windows of an encoded split as the collator takes them, read from its Arrow columns a batch
    at a time (`__getitems__`: one Arrow take per batch); each row carries its index as feature_index."""

    def __init__(self, split: EncodedColumns):
        self.rows = split.dataset.select_columns(["input_ids", "labels"])

    def __len__(self) -> int:
        return self.rows.num_rows

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices) -> list[dict]:
        indices = [int(i) for i in indices]
        batch = self.rows[indices]
        return [{"input_ids": ids, "labels": labels, "feature_index": i}
                for ids, labels, i in zip(batch["input_ids"], batch["labels"], indices)]


class InOrder(Sampler):
    """The given indices, in the given order."""

    def __init__(self, order: np.ndarray):
        self.order = order

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self):
        return iter(self.order.tolist())


def train_loader(split: EncodedColumns, collator, batch_size: int, seed: int, sampling: str = "group_by_length",
                 **loader_options):
    """Shuffled training batches: length-grouped (little padding) or plain random.

    The loader gets its own generator: without one, every new iterator draws a seed from the global
    torch RNG, which would shift the dropout masks of a resumed run against an uninterrupted one."""
    generator = torch.Generator().manual_seed(seed)
    rows = FeatureRows(split)
    if sampling == "group_by_length":
        sampler = LengthGroupedSampler(split.lengths, batch_size, seed)
        return DataLoader(rows, batch_size=batch_size, sampler=sampler, collate_fn=collator,
                          generator=generator, **loader_options)
    return DataLoader(rows, batch_size=batch_size, shuffle=True, collate_fn=collator,
                      generator=generator, **loader_options)


def eval_loader(split: EncodedColumns, collator, batch_size: int, **loader_options) -> DataLoader:
    """Windows in order of length, so each batch holds similar lengths and little padding;
    the feature index in every row puts predictions back in place."""
    order = np.argsort(split.lengths, kind="stable")
    return DataLoader(FeatureRows(split), batch_size=batch_size, sampler=InOrder(order), shuffle=False,
                      collate_fn=collator, **loader_options)
