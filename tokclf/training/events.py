"""What the recipe does at the loop's events, one job per handler: evaluate the epoch, keep the best
model, decide early stopping, upload, checkpoint, log."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from tokclf.training.checkpoints import prune_checkpoints, save_best, save_checkpoint
from tokclf.components import Parts
from tokclf.config import TrainConfig
from tokclf.errors import TrainingError
from tokclf.inference.scoring import evaluate_split, format_table
from tokclf.runtime.accel import model_for_scoring
from tokclf.training.loop import LoopState
from tokclf.runtime.outdir import OutputDir, append_jsonl


@dataclass
class Run:
    """What the handlers of one training run share."""

    cfg: TrainConfig
    parts: Parts
    out: OutputDir
    signature: dict = field(default_factory=dict)
    uploader: object = None
    eval_seconds: float = 0.0  # the last evaluation's duration
    fit_seconds: float = 0.0  # training, with its per-epoch evaluations, in this process's lifetime
    # Called on every process after each validation evaluation with its results.jsonl record; True stops
    # training as early stopping does (a caller such as `tokclf tune` prunes with it). Every process must
    # return the same answer: the caller decides on one process and shares the decision.
    on_evaluated: Optional[Callable[[dict], bool]] = None
    stopped_by_caller: bool = False
    keep_process_group: bool = False  # cleanup leaves the process group for the runs that follow

    @property
    def accelerator(self):
        return self.parts.accelerator

    @property
    def is_main(self) -> bool:
        return self.parts.accelerator.is_main_process

    def scoring_model(self):
        """What this run's evaluations score with, by its evaluation options (accel.model_for_scoring)."""
        options = self.cfg.evaluation
        return model_for_scoring(self.parts.model, self.parts.accelerator, options.eval_bf16_weights,
                                 options.eval_int8_weights)


def run_evaluation(run: Run, split_name: str, prefix: str) -> dict:
    """Score one split, print its table and return its metrics under `prefix_`."""
    split, parts = run.parts.splits[split_name], run.parts
    started = time.perf_counter()
    model = run.scoring_model()
    metrics, _ = evaluate_split(model, split.loader, parts.accelerator, split.encoded, split.tags,
                                parts.labels, run.cfg.evaluation.eval_decoding)
    run.eval_seconds = time.perf_counter() - started
    title = f"{prefix} results ({len(split.tags)} sentences in {run.eval_seconds:.1f} s)"
    parts.accelerator.print(format_table(metrics, title))
    return {f"{prefix}_{k}": v for k, v in metrics.items()}


def evaluate_epoch(run: Run, state: LoopState) -> dict:
    """Evaluate the validation split after an epoch; log the line of results.jsonl and the trackers."""
    state.last_eval = run_evaluation(run, "validation", "eval")
    state.evaluations += 1
    record = {"epoch": state.epoch - 1, "step": state.global_step, "train_loss": state.train_loss,
              **state.last_eval, "evaluation_seconds": run.eval_seconds}
    if run.is_main:
        append_jsonl(run.out.results_log, record)
    if run.cfg.output.with_tracking:
        run.accelerator.log({**state.last_eval, "train/epoch_loss": state.train_loss}, step=state.global_step)
    return record


def improved(greater_is_better: bool, best, value: float) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value > best if greater_is_better else value < best


def keep_best(run: Run, state: LoopState, record: dict) -> None:
    """Save the model when the chosen metric improved; count the evaluations since it last did."""
    evaluation = run.cfg.evaluation
    value = record[evaluation.metric_for_best_model]  # checked against the data in setup
    if improved(evaluation.greater_is_better, state.best_metric, value):
        state.best_metric, state.best_step, state.best_eval = value, state.global_step, dict(record)
        state.bad_evaluations = 0
        save_best(run.accelerator, run.parts.model, run.parts.tokenizer, run.out)
    else:
        state.bad_evaluations += 1


def decide_early_stop(run: Run, state: LoopState) -> bool:
    patience = run.cfg.evaluation.early_stopping_patience
    if patience and state.bad_evaluations >= patience:
        state.stopped_early = True
        run.accelerator.print(f"early stopping: {run.cfg.evaluation.metric_for_best_model} did not improve for "
                              f"{state.bad_evaluations} evaluation(s); best {state.best_metric:.4f} at step "
                              f"{state.best_step}.")
    return state.stopped_early


def upload(run: Run, event: str, message: str) -> None:
    """Queue a Hub push when --hub_strategy pushes at this event (main process only has an uploader)."""
    if run.uploader and run.uploader.wants(event):
        run.uploader.push(message, include_checkpoints=event == "checkpoint")


def on_epoch_end(run: Run, state: LoopState) -> bool:
    """True when early stopping ends training."""
    if "validation" not in run.parts.splits:
        return False
    record = evaluate_epoch(run, state)
    keep_best(run, state, record)
    stop = decide_early_stop(run, state)
    upload(run, "epoch", f"epoch {state.epoch - 1}")
    if run.on_evaluated is not None and run.on_evaluated(record):
        run.stopped_by_caller = True
        stop = True
    return stop


def on_checkpoint(run: Run, state: LoopState, at_epoch_end: bool) -> None:
    name = (OutputDir.epoch_checkpoint_name(state.epoch - 1) if at_epoch_end
            else OutputDir.step_checkpoint_name(state.global_step))
    output = run.cfg.output
    try:
        save_checkpoint(run.accelerator, run.out, name, state, run.cfg, run.signature)
    except OSError as err:
        message = f"could not write checkpoint {name} in {run.out.root}: {err.strerror or err}"
        if output.on_save_error == "stop":
            raise TrainingError(f"{message}. Earlier checkpoints are intact; free space or fix permissions, "
                                f"then resume with --resume_from_checkpoint latest.") from None
        run.accelerator.print(f"warning: {message}; training goes on (--on_save_error continue).")
        return
    if output.checkpoints_total_limit and run.is_main:
        prune_checkpoints(run.out, output.checkpoints_total_limit, state.best_step)
    upload(run, "checkpoint", f"checkpoint {name}")


def on_log(run: Run, values: dict, step: int) -> None:
    if run.is_main:
        append_jsonl(run.out.train_log, {"step": step, **values})
    if run.cfg.output.with_tracking:
        run.accelerator.log(values, step=step)
