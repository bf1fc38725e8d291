"""One setup for every command: the configuration in, what the command needs out (the Accelerator from
the one factory, tokenizer, model, labels, encoded splits and their loaders).

    setup_training(cfg)            train and the bench: a pretrained model, labels from the data
    setup_inference(saved, ...)    evaluate and predict: a model folder written by training
    add_split(parts, name, ...)    encode sentences and attach their loader, for either
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Optional

from tokclf import tokenized_cache
from tokclf.accel import AcceleratorOptions, inference_precision, loader_options, make_accelerator, pad_multiple
from tokclf.batching import TokenClassificationCollator, eval_loader, train_loader
from tokclf.config import TrainConfig
from tokclf.data import load_splits
from tokclf.errors import ConfigError
from tokclf.features import EncodedSplit, encode
from tokclf.labels import LabelSet, prepare_tags
from tokclf.model import check_max_length, load_model, load_tokenizer, model_config

DEBUG_SENTENCES = 100  # upstream's --debug subset


@dataclass
class Split:
    """One split, ready for the model: gold tags on words (None when predicting), windows, loader."""

    tags: Optional[list[list[str]]]
    encoded: EncodedSplit
    loader: object = None


@dataclass
class Parts:
    """What a command works with, all on the Accelerator's device and processes."""

    accelerator: object
    tokenizer: object
    model: object
    labels: LabelSet
    collator: TokenClassificationCollator
    splits: dict[str, Split] = field(default_factory=dict)


def training_accelerator(cfg: TrainConfig):
    training, output = cfg.training, cfg.output
    return make_accelerator(AcceleratorOptions(
        gradient_accumulation_steps=training.gradient_accumulation_steps,
        log_with=output.report_to if output.with_tracking else None, project_dir=output.output_dir,
        torch_compile=training.torch_compile, tf32=training.tf32, mixed_precision=training.mixed_precision))


def setup_training(cfg: TrainConfig, say: Callable[[str], None] = print) -> Parts:
    """Accelerator, tokenizer, data (read, tags normalised, encoded), model and loaders of a training run.
    The model (not yet prepared) comes last, once the data has shown which labels it needs."""
    from accelerate.utils import set_seed

    check_max_length(cfg.data.max_length, model_config(cfg.model))  # before reading any data
    accelerator = training_accelerator(cfg)
    set_seed(cfg.training.seed)
    tokenizer = load_tokenizer(cfg.model)
    # With the tokenization cache the main process writes it first and the others read it.
    with accelerator.main_process_first() if cfg.data.cache_tokenized else contextlib.nullcontext():
        tags, labels, sentences = read_labelled_splits(cfg, say)
        check_best_metric(cfg.evaluation.metric_for_best_model, labels, "validation" in tags)
        collator = TokenClassificationCollator(tokenizer, pad_multiple(accelerator), cfg.data.pad_to_max_length,
                                               cfg.data.max_length)
        parts = Parts(accelerator, tokenizer, load_model(cfg.model, labels, cfg.data.max_length), labels, collator)
        for name in sentences:
            words, doc_ids = [s.words for s in sentences[name]], [s.doc_id for s in sentences[name]]
            add_split(parts, name, words, tags[name], doc_ids, cfg.data.encoding, batch_size_for(cfg, name),
                      cache=cfg.data.cache_tokenized, overwrite_cache=cfg.data.overwrite_cache, say=say,
                      train_seed=cfg.training.seed if name == "train" else None,
                      train_sampling=cfg.training.train_sampling, workers=cfg.training.dataloader_num_workers)
    return parts


def read_labelled_splits(cfg: TrainConfig, say: Callable[[str], None] = print):
    """({split: IOB2 or plain tags}, the label set, {split: sentences}), each split cut to its limit."""
    data = cfg.data
    sentences = load_splits(data, cfg.model.trust_remote_code)
    for split in sentences:
        limit = DEBUG_SENTENCES if data.debug else (data.max_train_samples if split == "train" else data.max_eval_samples)
        sentences[split] = sentences[split][:limit] if limit else sentences[split]
    tags, labels = prepare_tags({k: [s.tags for s in v] for k, v in sentences.items()}, data.tag_scheme,
                                data.task_name, data.unseen_eval_tags, sentences=sentences, say=say)
    return tags, labels, sentences


def batch_size_for(cfg: TrainConfig, split: str) -> int:
    return cfg.training.per_device_train_batch_size if split == "train" else cfg.evaluation.per_device_eval_batch_size


def check_best_metric(metric: str, labels: LabelSet, has_validation: bool) -> None:
    """A per-type --metric_for_best_model (eval_PER_f1) must name a type of the data."""
    kind = metric[len("eval_"):].rsplit("_", 1)[0]
    if has_validation and "_" in metric[len("eval_"):] and kind not in labels.entity_types():
        raise ConfigError(f"--metric_for_best_model {metric}: the data has no entity type {kind!r} "
                          f"(types: {', '.join(labels.entity_types()) or 'none'}).")


def add_split(parts: Parts, name: str, words, tags, doc_ids, encoding: dict, batch_size: int, *,
              cache: bool = False, overwrite_cache: bool = False, say: Callable[[str], None] = print,
              train_seed: Optional[int] = None, train_sampling: str = "group_by_length", workers: int = 0) -> Split:
    """Encode a split's sentences and attach its loader: shuffled training batches when `train_seed` is
    given, windows in length order otherwise."""
    labels = parts.labels
    settings = {"label2id": labels.label2id, **encoding,
                "continuation_ids": labels.continuation_ids() if tags is not None else None}
    encode_split = partial(encode, parts.tokenizer, words, tags, doc_ids=doc_ids, **settings)
    if cache:
        key = tokenized_cache.fingerprint(parts.tokenizer, settings, words, tags, doc_ids)
        encoded, hit = tokenized_cache.cached_encode(key, encode_split, overwrite_cache)
        say(f"{name}: tokenized split {'read from' if hit else 'written to'} the cache ({key})")
    else:
        encoded = encode_split()
    options = loader_options(workers, parts.accelerator.device)
    loader = (train_loader(encoded, parts.collator, batch_size, train_seed, train_sampling, **options)
              if train_seed is not None else eval_loader(encoded, parts.collator, batch_size, **options))
    split = Split(tags, encoded, parts.accelerator.prepare(loader))
    parts.splits[name] = split
    return split


def setup_inference(saved, device: Optional[str] = None, inference_dtype: str = "auto") -> Parts:
    """The Accelerator and a saved model on its device, for evaluate and predict (no splits yet)."""
    precision = inference_precision(inference_dtype, saved.trained_precision, device)
    accelerator = make_accelerator(AcceleratorOptions(device=device, mixed_precision=precision))
    model = accelerator.prepare(saved.model)
    return Parts(accelerator, saved.tokenizer, model, saved.labels, TokenClassificationCollator(saved.tokenizer))
