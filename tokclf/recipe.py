"""The training recipe, top to bottom: setup → train (evaluating after every epoch) → test → save."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tokclf import runs
from tokclf.batching import TokenClassificationCollator, eval_loader, train_loader
from tokclf.config import TrainConfig
from tokclf.data import load_splits
from tokclf.evaluate import evaluate_split, format_table
from tokclf.features import EncodedSplit, encode
from tokclf.labels import LabelSet, prepare_tags
from tokclf.loop import LoopState, elapsed_epochs, fit, make_optimizer, make_scheduler, plan_schedule
from tokclf.model import load_model, load_tokenizer

DEBUG_SENTENCES = 100  # upstream's --debug subset


@dataclass
class Split:
    """One split, ready for the model: gold tags on words, encoded windows, its loader."""

    tags: list[list[str]]
    encoded: EncodedSplit
    loader: object = None


def setup_data(cfg: TrainConfig, tokenizer) -> tuple[dict[str, Split], LabelSet]:
    sentences = load_splits(cfg)
    for split in sentences:
        limit = DEBUG_SENTENCES if cfg.debug else (cfg.max_train_samples if split == "train" else cfg.max_eval_samples)
        sentences[split] = sentences[split][:limit] if limit else sentences[split]
    tags, labels = prepare_tags({k: [s.tags for s in v] for k, v in sentences.items()}, cfg.tag_scheme, cfg.task_name)
    continuation = labels.continuation_ids()
    splits = {}
    for name, split_sentences in sentences.items():
        encoded = encode(tokenizer, [s.words for s in split_sentences], tags[name], labels.label2id,
                         cfg.max_length, cfg.stride, cfg.label_all_tokens, continuation)
        splits[name] = Split(tags[name], encoded)
    return splits, labels


def setup_loaders(cfg, accelerator, tokenizer, splits: dict[str, Split]) -> None:
    collator = TokenClassificationCollator(tokenizer, runs.pad_multiple(accelerator), cfg.pad_to_max_length, cfg.max_length)
    for name, split in splits.items():
        loader = (train_loader(split.encoded, collator, cfg.per_device_train_batch_size, cfg.seed) if name == "train"
                  else eval_loader(split.encoded, collator, cfg.per_device_eval_batch_size))
        split.loader = accelerator.prepare(loader)


def run_evaluation(cfg, accelerator, model, split: Split, labels, prefix: str) -> dict:
    metrics, _ = evaluate_split(model, split.loader, accelerator, split.encoded, split.tags, labels)
    accelerator.print(format_table(metrics, f"{prefix} results"))
    return {f"{prefix}_{k}": v for k, v in metrics.items()}


def train(cfg: TrainConfig) -> dict:
    """Fine-tune, evaluate and save; returns what all_results.json holds."""
    from accelerate.utils import set_seed

    # --- setup -------------------------------------------------------------------------------------
    accelerator = runs.make_accelerator(cfg)
    set_seed(cfg.seed)
    output_dir = Path(cfg.output_dir)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        runs.write_json(output_dir / "args.json", cfg.to_dict())
    tokenizer = load_tokenizer(cfg)
    splits, labels = setup_data(cfg, tokenizer)
    model = load_model(cfg, labels)
    setup_loaders(cfg, accelerator, tokenizer, splits)
    schedule = plan_schedule(cfg, len(splits["train"].loader))
    model, optimizer = accelerator.prepare(model, make_optimizer(model, cfg))
    scheduler = make_scheduler(optimizer, cfg, schedule)
    accelerator.register_for_checkpointing(scheduler)  # stepped by the loop, once per optimizer step
    state = LoopState()
    if cfg.resume_from_checkpoint:
        checkpoint = runs.find_checkpoint(cfg.resume_from_checkpoint, cfg.output_dir)
        state = runs.load_checkpoint(accelerator, checkpoint)
        accelerator.print(f"resumed from {checkpoint} at step {state.global_step}")
    if cfg.with_tracking:
        accelerator.init_trackers("tokclf", config=_hparams(cfg))
    total_batch = cfg.per_device_train_batch_size * accelerator.num_processes * cfg.gradient_accumulation_steps
    accelerator.print(f"{len(splits['train'].tags)} training sentences, {schedule.total_steps} optimizer steps, "
                      f"{accelerator.num_processes} process(es), total batch {total_batch}, "
                      f"labels: {', '.join(labels.names)}")

    # --- train, evaluating after every epoch ------------------------------------------------------
    last_eval: dict = {}

    def on_epoch_end(state: LoopState) -> bool:
        if "validation" in splits:
            last_eval.clear()
            last_eval.update(run_evaluation(cfg, accelerator, model, splits["validation"], labels, "eval"))
            record = {"epoch": elapsed_epochs(state), "step": state.global_step, "train_loss": state.train_loss, **last_eval}
            if accelerator.is_main_process:
                runs.append_jsonl(output_dir / "results.jsonl", record)
            if cfg.with_tracking:
                accelerator.log(last_eval, step=state.global_step)
        if cfg.checkpointing_steps == "epoch":
            runs.save_checkpoint(accelerator, cfg.output_dir, f"epoch_{elapsed_epochs(state)}", state, cfg)
        return False

    def on_step_end(state: LoopState) -> None:
        every = cfg.checkpointing_steps
        if every and every.isdigit() and state.global_step % int(every) == 0:
            runs.save_checkpoint(accelerator, cfg.output_dir, f"step_{state.global_step}", state, cfg)

    def on_log(values: dict, step: int) -> None:
        if accelerator.is_main_process:
            runs.append_jsonl(output_dir / "train_log.jsonl", {"step": step, **values})
        if cfg.with_tracking:
            accelerator.log(values, step=step)

    state = fit(cfg, accelerator, model, optimizer, scheduler, splits["train"].loader, schedule, state,
                on_epoch_end, on_step_end, on_log)

    # --- test and save ----------------------------------------------------------------------------
    results = {**last_eval, "train_loss": state.train_loss, "epoch": elapsed_epochs(state), "step": state.global_step,
               "num_processes": accelerator.num_processes, "total_train_batch_size": total_batch}
    if "test" in splits:
        results.update(run_evaluation(cfg, accelerator, model, splits["test"], labels, "test"))
    if not cfg.return_entity_level_metrics:
        results = {k: v for k, v in results.items() if not _is_per_type(k)}
    runs.save_model(accelerator, model, tokenizer, cfg.output_dir)
    if accelerator.is_main_process:
        runs.write_json(output_dir / "all_results.json", results)
        if cfg.push_to_hub:
            accelerator.print(f"pushed to {runs.push_to_hub(cfg, cfg.output_dir)}")
    accelerator.end_training()
    return results


def _is_per_type(key: str) -> bool:
    parts = key.split("_")
    return len(parts) >= 3 and parts[0] in ("eval", "test") and parts[-1] in ("precision", "recall", "f1", "number")


def _hparams(cfg: TrainConfig) -> dict:
    """The scalar options, as TensorBoard's hparams view accepts them."""
    return {k: v for k, v in cfg.to_dict().items() if isinstance(v, (int, float, str, bool))}
