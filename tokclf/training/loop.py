"""The training loop: epochs of windows, each submitted to the step protocol (tokclf.training.steps), and the
events the recipe handles (log lines, checkpoints, the end of an epoch). The loop knows no files,
metrics or option groups: it gets its numbers and the recipe's handlers."""

from __future__ import annotations

import signal
import threading
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

from tqdm.auto import tqdm

from tokclf.errors import Preempted
from tokclf.training.optim import Schedule
from tokclf.training.steps import Cadence, StepProtocol


@dataclass
class LoopState:
    """Where the run stands; saved in every checkpoint so that a resumed run continues exactly."""

    global_step: int = 0  # optimizer steps taken
    epoch: int = 0  # the epoch being trained (0-based)
    batches_in_epoch: int = 0  # micro-batches of this epoch already consumed (per process)
    epoch_loss_sum: float = 0.0  # sum of this epoch's micro-batch mean losses (this process)
    train_loss: float = float("nan")  # mean micro-batch loss of the last finished epoch
    evaluations: int = 0  # validation evaluations done (lines in results.jsonl)
    last_eval: dict = field(default_factory=dict)
    best_metric: Optional[float] = None
    best_step: Optional[int] = None
    best_eval: dict = field(default_factory=dict)
    bad_evaluations: int = 0  # evaluations in a row without improvement (early stopping)
    stopped_early: bool = False
    skipped_steps: int = 0  # windows whose gradient was not finite, so no update was made
    bad_steps_in_row: int = 0

    def to_dict(self):
        return asdict(self)


@dataclass
class Hooks:
    """What the recipe does at the loop's events."""

    on_log: Callable[[dict, int], None]  # (values, step)
    on_checkpoint: Callable[[LoopState, bool], None]  # (state, at the end of an epoch)
    on_epoch_end: Callable[[LoopState], bool]  # evaluates; True stops training (early stopping)


@dataclass(frozen=True)
class LoopSettings:
    """The numbers the loop needs from the training options."""

    gradient_accumulation_steps: int
    max_grad_norm: float
    max_bad_steps: int
    cadence: Cadence


class StopRequest:
    """SIGTERM/SIGINT (a scheduler's preemption, Ctrl-C) ask the loop to stop after the current
    optimizer step, checkpoint and exit; a second SIGINT interrupts at once."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signal_name: Optional[str] = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        if self.signal_name and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    @property
    def requested(self) -> bool:
        return self.signal_name is not None


def windows(batches, size: int):
    """Consecutive lists of `size` micro-batches (the last one may be shorter): one optimizer step each."""
    window = []
    for batch in batches:
        window.append(batch)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window


def fit(settings: LoopSettings, accelerator, model, optimizer, scheduler, loader, schedule: Schedule,
        state: LoopState, hooks: Hooks, stop: Optional[StopRequest] = None) -> LoopState:
    """Train from `state` to the end of the schedule, evaluating after every epoch.

    A resumed state may stand inside an epoch (its first batches are skipped, in the same shuffled
    order) or at the end of one whose evaluation is still due."""
    bar = tqdm(total=schedule.total_steps, initial=state.global_step, desc="training",
               disable=not accelerator.is_local_main_process)
    protocol = StepProtocol(accelerator, model, optimizer, scheduler, state, total_steps=schedule.total_steps,
                            cadence=settings.cadence, max_grad_norm=settings.max_grad_norm,
                            max_bad_steps=settings.max_bad_steps, stop=stop or StopRequest(), bar=bar)
    while (state.epoch < schedule.num_epochs and not state.stopped_early
           and (state.global_step < schedule.total_steps or state.batches_in_epoch)):
        loader.set_epoch(state.epoch)  # also fixes the order that skip_first_batches replays
        batches = accelerator.skip_first_batches(loader, state.batches_in_epoch) if state.batches_in_epoch else loader
        model.train()
        protocol.start_epoch()
        for window in windows(batches, settings.gradient_accumulation_steps):
            if state.global_step >= schedule.total_steps:
                break
            booked = protocol.submit(window)
            if booked is not None:
                after_step(protocol, hooks, booked.grad_norm)
        protocol.end_epoch()
        stop_early = hooks.on_epoch_end(state)
        if settings.cadence.checkpoint_each_epoch:
            hooks.on_checkpoint(state, True)
        if stop_early:
            break
    bar.close()
    return state


def after_step(protocol: StepProtocol, hooks: Hooks, grad_norm) -> None:
    """What follows a booked step: the log line, a checkpoint, and a stop when one was asked for."""
    state, cadence = protocol.state, protocol.cadence
    if cadence.logs_at(state.global_step):
        hooks.on_log(protocol.log.flush(protocol.scheduler, grad_norm), state.global_step)
    stopping = protocol.stopping
    if cadence.checkpoints_at(state.global_step) or stopping:
        protocol.keep_epoch_loss()
        hooks.on_checkpoint(state, False)
    if stopping:
        raise Preempted(f"stopped on {protocol.stop.signal_name or 'a signal to another process'} after step "
                        f"{state.global_step}, checkpoint saved; rerun with --resume_from_checkpoint latest.")
