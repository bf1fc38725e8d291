"""The training recipe, top to bottom: setup → train (evaluating after every epoch) → test → save."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch

from tokclf import runs, tokenized_cache
from tokclf.batching import TokenClassificationCollator, eval_loader, train_loader
from tokclf.config import TrainConfig
from tokclf.data import load_splits
from tokclf.errors import ConfigError, TokclfError, TrainingError
from tokclf.evaluate import evaluate_split, format_table
from tokclf.features import EncodedSplit, encode
from tokclf.labels import LabelSet, prepare_tags
from tokclf.loop import Hooks, LoopState, StopRequest, fit, make_optimizer, make_scheduler, plan_schedule
from tokclf.model import load_model, load_tokenizer

DEBUG_SENTENCES = 100  # upstream's --debug subset


@dataclass
class Split:
    """One split, ready for the model: gold tags on words, encoded windows, its loader."""

    tags: list[list[str]]
    encoded: EncodedSplit
    loader: object = None


@dataclass
class Run:
    """What the event handlers of one training run share."""

    cfg: TrainConfig
    accelerator: object
    output_dir: Path
    tokenizer: object = None
    model: object = None
    splits: dict = field(default_factory=dict)
    labels: LabelSet = None
    signature: dict = field(default_factory=dict)
    uploader: object = None
    eval_seconds: float = 0.0  # the last evaluation's duration
    fit_seconds: float = 0.0  # training, with its per-epoch evaluations, in this process's lifetime


# ----------------------------------------------------------------------------------------------------
# Setup


def setup_data(cfg: TrainConfig, tokenizer, say=print) -> tuple[dict[str, Split], LabelSet]:
    sentences = load_splits(cfg)
    for split in sentences:
        limit = DEBUG_SENTENCES if cfg.debug else (cfg.max_train_samples if split == "train" else cfg.max_eval_samples)
        sentences[split] = sentences[split][:limit] if limit else sentences[split]
    tags, labels = prepare_tags({k: [s.tags for s in v] for k, v in sentences.items()}, cfg.tag_scheme, cfg.task_name,
                                cfg.unseen_eval_tags, sentences=sentences, say=say)
    # encode()'s options, which are also part of the cache key
    settings = {"label2id": labels.label2id, "max_length": cfg.max_length, "stride": cfg.stride,
                "label_all_tokens": cfg.label_all_tokens, "continuation_ids": labels.continuation_ids(),
                "context_sentences": cfg.context_sentences}
    splits = {}
    for name, split_sentences in sentences.items():
        words, doc_ids = [s.words for s in split_sentences], [s.doc_id for s in split_sentences]
        encode_split = partial(encode, tokenizer, words, tags[name], doc_ids=doc_ids, **settings)
        if cfg.cache_tokenized:
            key = tokenized_cache.fingerprint(tokenizer, settings, words, tags[name], doc_ids)
            encoded, hit = tokenized_cache.cached_encode(key, encode_split, cfg.overwrite_cache)
            say(f"{name}: tokenized split {'read from' if hit else 'written to'} the cache ({key})")
        else:
            encoded = encode_split()
        splits[name] = Split(tags[name], encoded)
    return splits, labels


def setup_loaders(cfg, accelerator, tokenizer, splits: dict[str, Split]) -> None:
    collator = TokenClassificationCollator(tokenizer, runs.pad_multiple(accelerator), cfg.pad_to_max_length, cfg.max_length)
    options = runs.loader_options(cfg, accelerator.device)
    for name, split in splits.items():
        loader = (train_loader(split.encoded, collator, cfg.per_device_train_batch_size, cfg.seed, cfg.train_sampling,
                               **options)
                  if name == "train"
                  else eval_loader(split.encoded, collator, cfg.per_device_eval_batch_size, **options))
        split.loader = accelerator.prepare(loader)


def resume_state(run: Run) -> LoopState:
    if not run.cfg.resume_from_checkpoint:
        return LoopState()
    checkpoint = runs.find_checkpoint(run.cfg.resume_from_checkpoint, run.cfg.output_dir)
    state = runs.load_checkpoint(run.accelerator, checkpoint, run.signature)
    if run.accelerator.is_main_process:
        runs.rewind_logs(run.output_dir, state)
    run.accelerator.print(f"resumed from {checkpoint}: step {state.global_step}, epoch {state.epoch}")
    return state


# ----------------------------------------------------------------------------------------------------
# Events of the loop


def run_evaluation(run: Run, split_name: str, prefix: str) -> dict:
    split = run.splits[split_name]
    started = time.perf_counter()
    metrics, _ = evaluate_split(run.model, split.loader, run.accelerator, split.encoded, split.tags, run.labels,
                                run.cfg.eval_decoding)
    seconds = time.perf_counter() - started
    run.accelerator.print(format_table(metrics, f"{prefix} results ({len(split.tags)} sentences in {seconds:.1f} s)"))
    run.eval_seconds = seconds
    return {f"{prefix}_{k}": v for k, v in metrics.items()}


def improved(cfg, state: LoopState, value: float) -> bool:
    if state.best_metric is None or math.isnan(state.best_metric):
        return not math.isnan(value)
    return value > state.best_metric if cfg.greater_is_better else value < state.best_metric


def on_epoch_end(run: Run, state: LoopState) -> bool:
    """Evaluate, keep the best model, log; True when early stopping ends training."""
    cfg, accelerator = run.cfg, run.accelerator
    if "validation" not in run.splits:
        return False
    state.last_eval = run_evaluation(run, "validation", "eval")
    state.evaluations += 1
    record = {"epoch": state.epoch - 1, "step": state.global_step, "train_loss": state.train_loss, **state.last_eval,
              "evaluation_seconds": run.eval_seconds}
    if accelerator.is_main_process:
        runs.append_jsonl(run.output_dir / "results.jsonl", record)
    if cfg.with_tracking:
        accelerator.log({**state.last_eval, "train/epoch_loss": state.train_loss}, step=state.global_step)
    value = state.last_eval.get(cfg.metric_for_best_model)
    if value is None:
        raise ConfigError(f"--metric_for_best_model {cfg.metric_for_best_model}: not among {sorted(state.last_eval)}.")
    if improved(cfg, state, value):
        state.best_metric, state.best_step, state.best_eval = value, state.global_step, dict(record)
        state.bad_evaluations = 0
        runs.save_best(accelerator, run.model, run.tokenizer, cfg.output_dir)
    else:
        state.bad_evaluations += 1
    if cfg.early_stopping_patience and state.bad_evaluations >= cfg.early_stopping_patience:
        state.stopped_early = True
        accelerator.print(f"early stopping: {cfg.metric_for_best_model} did not improve for {state.bad_evaluations} "
                          f"evaluation(s); best {state.best_metric:.4f} at step {state.best_step}.")
    if run.uploader and run.uploader.wants("epoch"):
        run.uploader.push(f"epoch {state.epoch - 1}")
    return state.stopped_early


def on_checkpoint(run: Run, state: LoopState, name: str) -> None:
    try:
        runs.save_checkpoint(run.accelerator, run.cfg.output_dir, name, state, run.cfg, run.signature)
    except OSError as err:
        message = f"could not write checkpoint {name} in {run.cfg.output_dir}: {err.strerror or err}"
        if run.cfg.on_save_error == "stop":
            raise TrainingError(f"{message}. Earlier checkpoints are intact; free space or fix permissions, "
                                f"then resume with --resume_from_checkpoint latest.") from None
        run.accelerator.print(f"warning: {message}; training goes on (--on_save_error continue).")
        return
    if run.cfg.checkpoints_total_limit and run.accelerator.is_main_process:
        runs.prune_checkpoints(run.cfg.output_dir, run.cfg.checkpoints_total_limit, state.best_step)
    if run.uploader and run.uploader.wants("checkpoint"):
        run.uploader.push(f"checkpoint {name}", include_checkpoints=True)


def on_log(run: Run, values: dict, step: int) -> None:
    if run.accelerator.is_main_process:
        runs.append_jsonl(run.output_dir / "train_log.jsonl", {"step": step, **values})
    if run.cfg.with_tracking:
        run.accelerator.log(values, step=step)


# ----------------------------------------------------------------------------------------------------
# The recipe


def train(cfg: TrainConfig) -> dict:
    """Fine-tune, evaluate and save; returns what all_results.json holds."""
    from accelerate.utils import set_seed

    run = Run(cfg, runs.make_accelerator(cfg), Path(cfg.output_dir))
    accelerator = run.accelerator
    set_seed(cfg.seed)
    if accelerator.is_main_process:
        run.output_dir.mkdir(parents=True, exist_ok=True)
        runs.write_config_files(run.output_dir, cfg)
    run.tokenizer = load_tokenizer(cfg)
    # With the tokenization cache the main process writes it first and the others read it.
    with accelerator.main_process_first() if cfg.cache_tokenized else contextlib.nullcontext():
        run.splits, run.labels = setup_data(cfg, run.tokenizer, accelerator.print)
    model = load_model(cfg, run.labels)
    setup_loaders(cfg, accelerator, run.tokenizer, run.splits)
    schedule = plan_schedule(cfg, len(run.splits["train"].loader))
    run.model, optimizer = accelerator.prepare(model, make_optimizer(model, cfg, accelerator.device))
    scheduler = make_scheduler(optimizer, cfg, schedule)
    accelerator.register_for_checkpointing(scheduler)  # stepped by the loop, once per optimizer step
    run.signature = runs.run_signature(cfg, accelerator, run.labels.names, len(run.splits["train"].encoded.features))
    state = resume_state(run)
    if cfg.with_tracking:
        accelerator.init_trackers("tokclf", config=_hparams(cfg))
    if cfg.push_to_hub and accelerator.is_main_process:
        run.uploader = runs.make_uploader(cfg)
    total_batch = cfg.per_device_train_batch_size * accelerator.num_processes * cfg.gradient_accumulation_steps
    accelerator.print(f"{len(run.splits['train'].tags)} training sentences, {schedule.total_steps} optimizer steps, "
                      f"{accelerator.num_processes} process(es), total batch {total_batch}, "
                      f"labels: {', '.join(run.labels.names)}")

    hooks = Hooks(partial(on_log, run), partial(on_checkpoint, run), partial(on_epoch_end, run))
    try:
        started = time.perf_counter()
        with StopRequest() as stop:
            state = fit(cfg, accelerator, run.model, optimizer, scheduler, run.splits["train"].loader, schedule,
                        state, hooks, stop)
        run.fit_seconds = time.perf_counter() - started
    except TokclfError:
        accelerator.end_training()  # flush the trackers' event files before exiting
        raise
    return finish(run, state, total_batch)


def finish(run: Run, state: LoopState, total_batch: int) -> dict:
    """Pick the final weights, evaluate the test split, save the model, results and card, upload."""
    cfg, accelerator = run.cfg, run.accelerator
    use_best = cfg.final_model == "best" and state.best_step is not None
    if use_best and not (run.output_dir / "best" / "model.safetensors").is_file():
        accelerator.print(f"warning: {run.output_dir}/best is missing (resumed into another folder?); "
                          f"keeping the last weights.")
        use_best = False
    if use_best:
        runs.load_best_weights(accelerator, run.model, cfg.output_dir)
    evaluation = state.best_eval if use_best else state.last_eval
    results = {**{k: v for k, v in evaluation.items() if k.startswith("eval_")},
               "train_loss": state.train_loss, "epoch": max(state.epoch - 1, 0), "step": state.global_step,
               "num_processes": accelerator.num_processes, "total_train_batch_size": total_batch,
               "best_step": state.best_step, "final_model": "best" if use_best else "last",
               "stopped_early": state.stopped_early, "skipped_steps": state.skipped_steps,
               "train_runtime": run.fit_seconds}
    if accelerator.device.type == "cuda":
        results["peak_gpu_memory_mib"] = torch.cuda.max_memory_allocated(accelerator.device) / 2 ** 20
    if "test" in run.splits:
        results.update(run_evaluation(run, "test", "test"))
    if not cfg.return_entity_level_metrics:
        results = {k: v for k, v in results.items() if not _is_per_type(k)}
    runs.save_model(accelerator, run.model, run.tokenizer, cfg.output_dir)
    if accelerator.is_main_process:
        runs.write_json(run.output_dir / "all_results.json", results)
        runs.write_card(cfg, run.output_dir, results, run.labels)
        if run.uploader:
            for error in run.uploader.finish("final model"):
                accelerator.print(f"warning: Hub upload failed: {error}")
    accelerator.end_training()
    return results


def _is_per_type(key: str) -> bool:
    parts = key.split("_")
    return len(parts) >= 3 and parts[0] in ("eval", "test") and parts[-1] in ("precision", "recall", "f1", "number")


def _hparams(cfg: TrainConfig) -> dict:
    """The scalar options, as TensorBoard's hparams view accepts them."""
    return {k: v for k, v in cfg.to_dict().items() if isinstance(v, (int, float, str, bool))}
