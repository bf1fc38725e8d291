"""The training recipe, a table of contents: setup → fit → finish → cleanup. Each stage calls the
modules that do the work; the handlers of the loop's events are in tokclf.training.events."""

from __future__ import annotations

import time
from functools import partial

import torch

from tokclf.runtime.adapters import adapter_record, checkpoint_trainable_weights_only
from tokclf.training.checkpoints import (find_checkpoint, load_best_weights, load_checkpoint, rewind_logs, run_signature,
                                save_final_model, weights_file, write_config_files)
from tokclf.runtime.accel import precision_record
from tokclf.runtime.collector import startup_done
from tokclf.training.analysis import write_run_report
from tokclf.training.card import write_run_card
from tokclf.components import setup_training
from tokclf.config import TrainConfig
from tokclf.errors import TokclfError
from tokclf.training.events import Run, on_checkpoint, on_epoch_end, on_log, run_evaluation
from tokclf.training.loop import Hooks, LoopSettings, LoopState, StopRequest, fit
from tokclf.training.optim import make_optimizer, make_scheduler, plan_schedule
from tokclf.runtime.outdir import TRACKER_PROJECT, prepare_output_dir, write_json
from tokclf.training.steps import Cadence


def train(cfg: TrainConfig, on_evaluated=None, keep_process_group: bool = False) -> dict:
    """Fine-tune, evaluate and save; returns what all_results.json holds. `on_evaluated(record) -> bool`,
    if given, is called after each validation evaluation and stops training when it returns True.
    keep_process_group: more runs follow in this process (tokclf tune's trials), so the processes'
    group must outlive this one."""
    run, trainer = setup(cfg)
    startup_done()  # what setup built lives to the end: the garbage collector skips it from here on
    run.on_evaluated, run.keep_process_group = on_evaluated, keep_process_group
    try:
        state = fit_run(run, *trainer)
    except TokclfError:
        cleanup(run)  # flush the trackers' event files before exiting
        raise
    results = finish(run, state)
    cleanup(run)
    return results


def setup(cfg: TrainConfig):
    """The run's parts, the output folder, optimizer and schedule, and the state to start from."""
    out = prepare_output_dir(cfg.output.output_dir)  # a bad folder fails now, not after reading the data
    parts = setup_training(cfg, say=print)
    accelerator = parts.accelerator
    if accelerator.is_main_process:
        write_config_files(out, cfg)
    train_loader = parts.splits["train"].loader
    schedule = plan_schedule(cfg.training, len(train_loader))
    model = parts.model
    parts.model, optimizer = accelerator.prepare(model, make_optimizer(model, cfg.training, accelerator.device))
    scheduler = make_scheduler(optimizer, cfg.training, schedule)
    accelerator.register_for_checkpointing(scheduler)  # stepped by the loop, once per optimizer step
    if cfg.adapter.enabled:
        checkpoint_trainable_weights_only(accelerator)
    signature = run_signature(cfg, accelerator.num_processes, parts.labels.names,
                              len(parts.splits["train"].encoded))
    run = Run(cfg, parts, out, signature)
    state = resume_state(run)
    start_reporting(run, schedule)
    return run, (optimizer, scheduler, schedule, state)


def resume_state(run: Run) -> LoopState:
    spec = run.cfg.output.resume_from_checkpoint
    if not spec:
        return LoopState()
    checkpoint = find_checkpoint(spec, run.out)
    state = load_checkpoint(run.accelerator, checkpoint, run.signature, run.parts.model)
    if run.is_main:
        rewind_logs(run.out, state)
    run.accelerator.print(f"resumed from {checkpoint}: step {state.global_step}, epoch {state.epoch}")
    return state


def start_reporting(run: Run, schedule) -> None:
    """Trackers, the Hub uploader and the run's one-line summary."""
    cfg, accelerator = run.cfg, run.accelerator
    if cfg.output.with_tracking:
        accelerator.init_trackers(TRACKER_PROJECT, config=_hparams(cfg))
    if cfg.output.push_to_hub and run.is_main:
        from tokclf.training.hub import uploader_for

        run.uploader = uploader_for(cfg.output)
    accelerator.print(f"{run.parts.splits['train'].n_sentences} training sentences, {schedule.total_steps} optimizer "
                      f"steps, {accelerator.num_processes} process(es), total batch {total_batch(run)}, "
                      f"labels: {', '.join(run.parts.labels.names)}")


def fit_run(run: Run, optimizer, scheduler, schedule, state: LoopState) -> LoopState:
    training, output = run.cfg.training, run.cfg.output
    settings = LoopSettings(training.gradient_accumulation_steps, training.max_grad_norm, training.max_bad_steps,
                            Cadence(training.logging_steps, output.checkpoint_every, output.checkpoint_each_epoch))
    hooks = Hooks(partial(on_log, run), partial(on_checkpoint, run), partial(on_epoch_end, run))
    started = time.perf_counter()
    with StopRequest() as stop:
        state = fit(settings, run.accelerator, run.parts.model, optimizer, scheduler, run.parts.splits["train"].loader,
                    schedule, state, hooks, stop)
    run.fit_seconds = time.perf_counter() - started
    return state


def finish(run: Run, state: LoopState) -> dict:
    """Pick the final weights, evaluate the test split, save the model, the report, results and card, upload."""
    use_best = use_best_weights(run, state)
    results = run_results(run, state, use_best)
    if "test" in run.parts.splits:
        results.update(run_evaluation(run, "test", "test"))
    if not run.cfg.evaluation.return_entity_level_metrics:
        results = {k: v for k, v in results.items() if not _is_per_type(k)}
    save_final_model(run.accelerator, run.parts.model, run.parts.tokenizer, run.out, run.cfg.adapter.merge_adapter)
    write_run_report(run, "best" if use_best else "last")  # before the card, which shows its curves
    if run.is_main:
        write_json(run.out.all_results, results)
        write_run_card(run.cfg, run.out, results, run.parts.labels)
        if run.uploader:
            for error in run.uploader.finish("final model"):
                run.accelerator.print(f"warning: Hub upload failed: {error}")
    return results


def use_best_weights(run: Run, state: LoopState) -> bool:
    """Load the best evaluation's weights when --final_model best and they are there."""
    if run.cfg.evaluation.final_model != "best" or state.best_step is None:
        return False
    if not weights_file(run.accelerator, run.parts.model, run.out.best).is_file():
        run.accelerator.print(f"warning: {run.out.best} is missing (resumed into another folder?); "
                              f"keeping the last weights.")
        return False
    load_best_weights(run.accelerator, run.parts.model, run.out)
    return True


def run_results(run: Run, state: LoopState, use_best: bool) -> dict:
    """all_results.json: the chosen evaluation's scores and the facts of the run."""
    accelerator = run.accelerator
    evaluation = state.best_eval if use_best else state.last_eval
    results = {**{k: v for k, v in evaluation.items() if k.startswith("eval_")},
               "train_loss": state.train_loss, "epoch": max(state.epoch - 1, 0), "step": state.global_step,
               "num_processes": accelerator.num_processes, "total_train_batch_size": total_batch(run),
               "best_step": state.best_step, "final_model": "best" if use_best else "last",
               "stopped_early": state.stopped_early, "stopped_by_caller": run.stopped_by_caller,
               "skipped_steps": state.skipped_steps,
               "train_runtime": run.fit_seconds}
    results.update(precision_record(accelerator))
    results.update(adapter_record(accelerator.unwrap_model(run.parts.model)))
    if accelerator.device.type == "cuda":
        results["peak_gpu_memory_mib"] = torch.cuda.max_memory_allocated(accelerator.device) / 2 ** 20
    return results


def cleanup(run: Run) -> None:
    if not run.keep_process_group:
        run.accelerator.end_training()  # trackers' files flushed, the process group destroyed
        return
    for tracker in run.accelerator.trackers:
        tracker.finish()


def total_batch(run: Run) -> int:
    training = run.cfg.training
    return training.per_device_train_batch_size * run.accelerator.num_processes * training.gradient_accumulation_steps


def _is_per_type(key: str) -> bool:
    parts = key.split("_")
    return len(parts) >= 3 and parts[0] in ("eval", "test") and parts[-1] in ("precision", "recall", "f1", "number")


def _hparams(cfg: TrainConfig) -> dict:
    """The scalar options, as TensorBoard's hparams view accepts them."""
    return {k: v for k, v in cfg.to_dict().items() if isinstance(v, (int, float, str, bool))}
