"""One setup for every command: the configuration in, what the command needs out (the Accelerator from
the one factory, tokenizer, model, labels, encoded splits and their loaders).

    setup_training(cfg)            train and the bench: a pretrained model, labels from the data
    setup_inference(saved, ...)    evaluate and predict: a model folder written by training
    add_split(parts, name, ...)    encode a split's sentences and attach their loader (evaluate, predict)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Optional, Sequence

import torch

from tokclf.runtime.adapters import add_lora, base_model_name, require_peft
from tokclf.runtime.accel import (AcceleratorOptions, inference_precision, loader_options, make_accelerator,
                                  pad_multiple, wants_bf16_weights)
from tokclf.data.batching import TokenClassificationCollator, eval_loader, train_loader
from tokclf.arguments import TrainingArguments
from tokclf.config import TrainConfig
from tokclf.data.arrow_data import split_datasets
from tokclf.data.columns import EncodedColumns, encode_split
from tokclf.errors import ConfigError
from tokclf.data.labels import LabelSet
from tokclf.data.tag_columns import prepare_columns
from tokclf.runtime.dropout import fast_dropout_wanted, use_fast_dropout
from tokclf.runtime.int8 import int8_applies
from tokclf.runtime.model import check_max_length, load_model, load_tokenizer, model_config

DEBUG_SENTENCES = 100  # upstream's --debug subset


@dataclass
class Split:
    """One split, ready for the model: gold tags on words (None when predicting), windows, loader."""

    gold: Optional[Sequence[list[str]]]  # tokclf.data.tag_columns.GoldTags (read per sentence) or a list
    encoded: EncodedColumns
    loader: object = None
    words: Optional[Sequence[list[str]]] = None  # training's evaluation splits: the words, for the report

    @cached_property
    def tags(self) -> Optional[list[list[str]]]:
        """The gold tags as lists, made when first asked for (evaluation scores them with seqeval)."""
        return None if self.gold is None else list(self.gold)

    @property
    def n_sentences(self) -> int:
        return len(self.encoded.words_per_sentence)


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
        torch_compile=training.torch_compile, tf32=training.tf32, mixed_precision=training.mixed_precision,
        sdp_reduced_precision=training.sdp_reduced_precision, reuse_cpu_memory=training.reuse_cpu_memory))


def setup_training(cfg: TrainConfig, say: Callable[[str], None] = print) -> Parts:
    """Accelerator, tokenizer, data (read, tags normalised, encoded), model and loaders of a training run.
    The model (not yet prepared) comes last, once the data has shown which labels it needs."""
    from accelerate.utils import set_seed

    check_max_length(cfg.data.max_length, model_config(cfg.model))  # before reading any data
    if cfg.adapter.enabled:
        require_peft()
    accelerator = training_accelerator(cfg)
    if cfg.evaluation.eval_int8_weights and not int8_applies(True, accelerator):
        accelerator.print(f"note: --eval_int8_weights changes nothing here: int8 scoring runs on a CPU in fp32 "
                          f"(this run: {accelerator.device.type}, mixed precision {accelerator.mixed_precision}).")
    set_seed(cfg.training.seed)
    tokenizer = load_tokenizer(cfg.model, say=accelerator.print)
    # Each machine's main process reads and encodes into the datasets cache; the others then open its files.
    with accelerator.local_main_process_first():
        gold, labels, encoded, words = prepare_data(cfg, tokenizer, accelerator.is_local_main_process, say)
    check_best_metric(cfg.evaluation.metric_for_best_model, labels, "validation" in gold)
    collator = TokenClassificationCollator(tokenizer, pad_multiple(accelerator), cfg.data.pad_to_max_length,
                                           cfg.data.max_length)
    model = training_model(cfg, labels, tokenizer, accelerator.print)
    use_cheap_dropout_masks(model, cfg.training, accelerator.device, accelerator.print)
    parts = Parts(accelerator, tokenizer, model, labels, collator)
    for name, split in encoded.items():
        attach_loader(parts, name, Split(gold[name], split, words=words[name]), batch_size_for(cfg, name),
                      train_seed=cfg.training.seed if name == "train" else None,
                      train_sampling=cfg.training.train_sampling, workers=cfg.training.dataloader_num_workers)
    return parts


def training_model(cfg: TrainConfig, labels: LabelSet, tokenizer, say: Callable[[str], None]):
    """The pretrained model with a new head; with --peft lora, wrapped with its adapters."""
    model = load_model(cfg.model, labels, cfg.data.max_length, tokenizer.pad_token_id)
    if cfg.adapter.enabled:
        model = add_lora(model, cfg.adapter, base_model_name(cfg.model.model_name_or_path), say)
    elif cfg.training.freeze_word_embeddings:
        # LoRA freezes them already. The optimizer takes only parameters that require a gradient.
        model.get_input_embeddings().weight.requires_grad_(False)
    return model


def use_cheap_dropout_masks(model, training: TrainingArguments, device, say: Callable[[str], None] = print) -> None:
    """--fast_dropout (default: on a CPU) and the opt-in --fast_attention_dropout."""
    if fast_dropout_wanted(training.fast_dropout, device):
        use_fast_dropout(model)
    if training.fast_attention_dropout:
        # here, not at the top: it imports transformers' modeling code (seconds), which only training needs
        from tokclf.runtime.attention_dropout import use_fast_attention_dropout

        if not use_fast_attention_dropout(model):
            say(f"note: --fast_attention_dropout left the attention as it was: this model does not run "
                f"transformers' SDPA through its attention interface ({model.config._attn_implementation!r} "
                f"attention).")


def read_labelled_splits(cfg: TrainConfig, say: Callable[[str], None] = print):
    """({split: GoldTags}, the label set, {split: SentenceSplit}), each split cut to its limit."""
    data = cfg.data
    splits = split_datasets(data, cfg.model.trust_remote_code)
    for split in splits:
        limit = DEBUG_SENTENCES if data.debug else (data.max_train_samples if split == "train" else data.max_eval_samples)
        splits[split] = splits[split].head(limit)
    gold, labels = prepare_columns(splits, data.tag_scheme, data.task_name, data.unseen_eval_tags, say=say)
    return gold, labels, splits


def prepare_data(cfg: TrainConfig, tokenizer, writer: bool, say: Callable[[str], None] = print):
    """({split: GoldTags}, labels, {split: EncodedColumns}, {split: words}); only the `writer` process redoes a cached
    encoding for --overwrite_cache (the others then read what it wrote)."""
    gold, labels, splits = read_labelled_splits(cfg, say)
    encoded = {}
    for name, split in splits.items():
        settings = encoding_settings(labels, cfg.data.encoding, labelled=name == "train")
        encoded[name] = encode_split(split, tokenizer, settings, gold[name] if name == "train" else None,
                                     num_proc=cfg.data.preprocessing_num_workers,
                                     overwrite_cache=cfg.data.overwrite_cache and writer)
        if writer:
            print(f"{name}: {len(split)} sentences, {len(encoded[name])} windows "
                  f"({'from the datasets cache' if encoded[name].from_cache else 'encoded'})")
    return gold, labels, encoded, {name: split.words for name, split in splits.items()}


def encoding_settings(labels: LabelSet, encoding: dict, labelled: bool) -> dict:
    """encode()'s options: labels only where the split trains (evaluation and predict score words)."""
    return {"label2id": labels.label2id, **encoding,
            "continuation_ids": labels.continuation_ids() if labelled else None}


def batch_size_for(cfg: TrainConfig, split: str) -> int:
    return cfg.training.per_device_train_batch_size if split == "train" else cfg.evaluation.per_device_eval_batch_size


def check_best_metric(metric: str, labels: LabelSet, has_validation: bool) -> None:
    """A per-type --metric_for_best_model (eval_PER_f1) must name a type of the data."""
    kind = metric[len("eval_"):].rsplit("_", 1)[0]
    if has_validation and "_" in metric[len("eval_"):] and kind not in labels.entity_types():
        raise ConfigError(f"--metric_for_best_model {metric}: the data has no entity type {kind!r} "
                          f"(types: {', '.join(labels.entity_types()) or 'none'}).")


def add_split(parts: Parts, name: str, sentences, gold, encoding: dict, batch_size: int, *,
              in_memory: bool = False, workers: int = 0) -> Split:
    """Encode a SentenceSplit (unlabelled windows: evaluation and predict) and attach its loader."""
    settings = encoding_settings(parts.labels, encoding, labelled=False)
    encoded = encode_split(sentences, parts.tokenizer, settings, in_memory=in_memory)
    return attach_loader(parts, name, Split(gold, encoded), batch_size, workers=workers)


def attach_loader(parts: Parts, name: str, split: Split, batch_size: int, *, train_seed: Optional[int] = None,
                  train_sampling: str = "group_by_length", workers: int = 0) -> Split:
    """The split's loader: shuffled training batches when `train_seed` is given, windows in length
    order otherwise."""
    options = loader_options(workers, parts.accelerator.device)
    loader = (train_loader(split.encoded, parts.collator, batch_size, train_seed, train_sampling, **options)
              if train_seed is not None else eval_loader(split.encoded, parts.collator, batch_size, **options))
    split.loader = parts.accelerator.prepare(loader)
    parts.splits[name] = split
    return split


def drop_split(parts: Parts, name: str) -> None:
    """Forget a split and its loader (the Accelerator keeps every loader it prepared): predict's chunks."""
    split = parts.splits.pop(name, None)
    loaders = getattr(parts.accelerator, "_dataloaders", [])
    if split is not None and split.loader in loaders:
        loaders.remove(split.loader)


def setup_inference(saved, device: Optional[str] = None, inference_dtype: str = "auto",
                    bf16_weights: Optional[bool] = None, reuse_cpu_memory: Optional[bool] = None) -> Parts:
    """The Accelerator and a saved model on its device, for evaluate and predict (no splits yet); on int8
    weights when asked (a CPU only), in bf16 where accel.wants_bf16_weights says so, without Accelerate's
    autocast wrapper."""
    precision = inference_precision(inference_dtype, saved.trained_precision, device)
    accelerator = make_accelerator(AcceleratorOptions(device=device, mixed_precision=precision,
                                                      reuse_cpu_memory=reuse_cpu_memory))
    on_int8 = inference_dtype == "int8"
    if on_int8:
        refuse_int8_off_cpu(accelerator)  # before the model is moved anywhere
    model = accelerator.prepare(saved.model)
    if on_int8:
        from tokclf.runtime.int8 import int8_weights

        model = int8_weights(accelerator.unwrap_model(model))
    elif wants_bf16_weights(bf16_weights, accelerator):
        model = accelerator.unwrap_model(model, keep_fp32_wrapper=False).to(torch.bfloat16)
    return Parts(accelerator, saved.tokenizer, model, saved.labels, TokenClassificationCollator(saved.tokenizer))


def refuse_int8_off_cpu(accelerator) -> None:
    """--inference_dtype int8 (runtime.int8) runs on a CPU only: a clear error elsewhere."""
    if accelerator.device.type != "cpu":
        raise ConfigError(f"--inference_dtype int8 runs on a CPU only (torch's dynamic quantization has no "
                          f"{accelerator.device.type} kernels); this run is on {accelerator.device}. Use "
                          f"--inference_dtype auto, or run on the CPU (predict: --device cpu).")
