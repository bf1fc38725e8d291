"""The training loop: optimizer, schedule, gradient accumulation windows, logging.

Two faults of the upstream example are avoided here, on purpose:
- The loss of an accumulation window is the sum of token losses divided by the labelled-token count of
  the whole window on all processes, so a short micro-batch weighs what its tokens weigh, and batch
  8 x 4 accumulation steps equals batch 32.
- The scheduler is not passed through `accelerator.prepare` (which steps it once per process), so the
  learning rate at optimizer step N is the same with 1 or N processes.

And the host does not wait for the device every step: a step with a non-finite gradient is skipped on
the device, and the loop reads that verdict a step late (StepLedger).
"""

from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import get_scheduler

from tokclf.errors import Preempted, TrainingError
from tokclf.features import IGNORE


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
    """What the recipe does at the loop's events; the loop itself knows no files or metrics."""

    on_log: Callable[[dict, int], None]
    on_checkpoint: Callable[[LoopState, str], None]
    on_epoch_end: Callable[[LoopState], bool]  # evaluates; True stops training (early stopping)


@dataclass
class Schedule:
    steps_per_epoch: int  # optimizer steps in one epoch
    total_steps: int
    num_epochs: int
    warmup_steps: int


def plan_schedule(cfg, batches_per_epoch: int) -> Schedule:
    steps_per_epoch = math.ceil(batches_per_epoch / cfg.gradient_accumulation_steps)
    total = cfg.max_train_steps or cfg.num_train_epochs * steps_per_epoch
    warmup = cfg.num_warmup_steps or math.ceil(cfg.warmup_ratio * total)
    return Schedule(steps_per_epoch, total, math.ceil(total / steps_per_epoch), warmup)


def fused_adamw_supported(device: torch.device) -> bool:
    """Where torch has a fused AdamW kernel: CUDA, and CPU from torch 2.4 on."""
    return device.type == "cuda" or (device.type == "cpu" and torch.__version__ >= "2.4")  # TorchVersion compares


def make_optimizer(model, cfg, device: torch.device) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and normalisation weights. The fused kernel makes one pass over
    all parameters instead of several: on the MiniLM on CPU its step takes 13 ms instead of 90 ms."""
    norm_params = {id(p) for m in model.modules() if "norm" in type(m).__name__.lower() for p in m.parameters()}
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if name.endswith("bias") or id(param) in norm_params else decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = cfg.optim == "adamw_torch_fused" and fused_adamw_supported(device)
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, fused=fused or None)  # None: torch's default kernel


def make_scheduler(optimizer, cfg, schedule: Schedule):
    return get_scheduler(cfg.lr_scheduler_type, optimizer, num_warmup_steps=schedule.warmup_steps,
                         num_training_steps=schedule.total_steps)


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


def token_losses(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of the cross-entropy over labelled tokens, and their number."""
    labels = batch["labels"]
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "feature_index")}
    logits = model(**inputs).logits
    loss_sum = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction="sum")
    return loss_sum, (labels != IGNORE).sum()


@dataclass
class WindowResult:
    """One optimizer step. Its flags may still be device tensors: reading them waits for the step to
    finish on the device, so the loop reads them one step late where it can (see StepLedger)."""

    loss_sums: torch.Tensor  # per micro-batch, on the device
    tokens: torch.Tensor  # labelled tokens per micro-batch (this process)
    grad_norm: Optional[torch.Tensor]
    counted: torch.Tensor | bool  # False when a non-finite gradient made the update be skipped
    advance_schedule: torch.Tensor | bool  # the learning rate moves on (not after a skipped update)
    stop_votes: torch.Tensor | float  # processes asked to stop (SIGTERM, Ctrl-C) before this window

    def read(self) -> tuple[bool, bool, bool]:
        """(counted, advance_schedule, stop asked), in one transfer from the device."""
        flags = [self.counted, self.advance_schedule, self.stop_votes]
        on_device = [i for i, flag in enumerate(flags) if isinstance(flag, torch.Tensor)]
        if on_device:
            for i, value in zip(on_device, torch.stack([flags[i].float() for i in on_device]).tolist()):
                flags[i] = value
        return bool(flags[0]), bool(flags[1]), flags[2] > 0


def update(accelerator, optimizer, grad_norm) -> tuple[torch.Tensor | bool, torch.Tensor | bool]:
    """Make the update unless the gradient is not finite, so that a NaN never reaches the weights.
    Returns (counted, advance_schedule), left on the device where the device decides."""
    if accelerator.scaler is not None:
        # Under fp16 the grad scaler skips such updates itself (and lowers its scale); accelerate reads it.
        optimizer.step()
        return True, not accelerator.optimizer_step_was_skipped
    finite = torch.isfinite(grad_norm)
    inner = getattr(optimizer, "optimizer", optimizer)  # under accelerate's wrapper
    if getattr(inner, "defaults", {}).get("fused"):
        # Fused AdamW skips the whole update on the device when told `found_inf`, as it does for a grad
        # scaler (its step counts are put back too): no waiting for the gradient norm here.
        inner.found_inf = (~finite).float()
        try:
            optimizer.step()
        finally:
            del inner.found_inf
        return finite, finite
    if bool(finite):  # any other optimizer: wait for the gradient norm
        optimizer.step()
        return True, True
    return False, False


def train_window(accelerator, model, optimizer, window, max_grad_norm, stop_asked: bool = False,
                 before_update: Callable[[], None] = lambda: None) -> WindowResult:
    """One optimizer step over a window of micro-batches. `before_update` runs after the backward passes,
    just before the update (the loop reads the previous step's verdict there and steps the schedule)."""
    local_tokens = torch.stack([(b["labels"] != IGNORE).sum() for b in window])
    window_tokens, stop_votes = local_tokens.sum(), float(stop_asked)
    if accelerator.num_processes > 1:
        # One all-reduce sums the window's labelled tokens and the processes' stop requests; torch.full
        # fills on the device, where torch.tensor would copy from the host and wait.
        asked = torch.full((1,), float(stop_asked), device=accelerator.device)
        window_tokens, stop_votes = accelerator.reduce(torch.cat([window_tokens.float().view(1), asked]),
                                                       reduction="sum")
    # accelerator.backward divides by gradient_accumulation_steps and DDP averages over processes:
    # undo both so the gradient is d(sum of token losses)/d(theta) / (labelled tokens in the window).
    scale = accelerator.num_processes * accelerator.gradient_accumulation_steps / window_tokens.clamp(min=1)
    # Sync (and step) exactly on this window's last micro-batch, also for a short last window.
    accelerator.step = accelerator.gradient_accumulation_steps - len(window)
    loss_sums, grad_norm, counted, advance = [], None, False, False
    for batch in window:
        with accelerator.accumulate(model):
            loss_sum, _ = token_losses(model, batch)
            accelerator.backward(loss_sum * scale)
            loss_sums.append(loss_sum.detach())
            if accelerator.sync_gradients:
                grad_norm = accelerator.clip_grad_norm_(model.parameters(), max_grad_norm or math.inf)
                before_update()
                counted, advance = update(accelerator, optimizer, grad_norm)
                optimizer.zero_grad(set_to_none=True)
    return WindowResult(torch.stack(loss_sums), local_tokens, grad_norm, counted, advance, stop_votes)


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


class IntervalLog:
    """Train loss (token-weighted over the interval, all processes), learning rate, grad norm, speed."""

    def __init__(self, accelerator):
        self.accelerator = accelerator
        self.reset()

    def reset(self):
        self.loss_sum = torch.zeros((), device=self.accelerator.device)
        self.tokens = torch.zeros((), device=self.accelerator.device, dtype=torch.long)
        self.positions = 0  # padded sequence positions fed to the model
        self.real_positions = torch.zeros((), device=self.accelerator.device, dtype=torch.long)
        self.samples = 0
        self.started = time.perf_counter()

    def add(self, loss_sums, tokens, window):
        self.loss_sum += loss_sums.sum()
        self.tokens += tokens.sum()
        self.samples += sum(len(b["input_ids"]) for b in window)
        self.positions += sum(b["input_ids"].numel() for b in window)
        self.real_positions += sum(b["attention_mask"].sum() for b in window)

    def flush(self, scheduler, grad_norm) -> dict:
        device = self.accelerator.device
        counts = torch.stack([self.loss_sum, self.tokens.float(), self.real_positions.float(),
                              torch.tensor(float(self.positions), device=device),
                              torch.tensor(float(self.samples), device=device)])
        loss, tokens, real, positions, samples = self.accelerator.reduce(counts, reduction="sum").tolist()
        seconds = max(time.perf_counter() - self.started, 1e-9)
        # tokens per second counts real (non-pad) sub-tokens, the measure that padding cannot inflate
        out = {"train/loss": loss / max(tokens, 1), "train/learning_rate": scheduler.get_last_lr()[0],
               "train/tokens_per_second": real / seconds, "train/samples_per_second": samples / seconds,
               "train/padding_fraction": 1 - real / max(positions, 1)}
        if grad_norm is not None:
            out["train/grad_norm"] = float(grad_norm)
        self.reset()
        return out


def checkpoint_name(cfg, state: LoopState, epoch_finished: bool) -> Optional[str]:
    """`step_N` every --checkpointing_steps optimizer steps, or `epoch_N` after epoch N's evaluation."""
    if cfg.checkpointing_steps == "epoch":
        return f"epoch_{state.epoch - 1}" if epoch_finished else None
    if not epoch_finished and step_checkpoint_due(cfg, state.global_step):
        return f"step_{state.global_step}"
    return None


def step_checkpoint_due(cfg, step: int) -> bool:
    every = cfg.checkpointing_steps
    return bool(every) and every != "epoch" and step % int(every) == 0


def skip_bad_step(cfg, accelerator, state: LoopState) -> None:
    state.skipped_steps += 1
    state.bad_steps_in_row += 1
    accelerator.print(f"warning: non-finite loss or gradient after step {state.global_step}: update skipped "
                      f"({state.bad_steps_in_row} in a row, {state.skipped_steps} in all).")
    if state.bad_steps_in_row >= cfg.max_bad_steps:
        raise TrainingError(
            f"{state.bad_steps_in_row} optimizer steps in a row had a non-finite loss or gradient "
            f"(--max_bad_steps {cfg.max_bad_steps}); stopped with the last checkpoint intact. Lower the "
            f"learning rate, check the data, or use fp32.")


class StepLedger:
    """Books each optimizer step once its verdict is read: steps the learning-rate schedule, counts a
    skipped update, adds the loss to the epoch's and the log interval's, and counts the step.

    Reading a verdict waits until the step has finished on the device. So the loop books a step one
    step late, just before the next update (the backward passes of the next window are queued by then),
    unless something happens right after it: a log line, a checkpoint, the last step, a stop."""

    def __init__(self, cfg, accelerator, scheduler, state: LoopState, stop: StopRequest, bar):
        self.cfg, self.accelerator, self.scheduler, self.state, self.stop, self.bar = (
            cfg, accelerator, scheduler, state, stop, bar)
        self.log = IntervalLog(accelerator)
        self.pending: Optional[tuple[WindowResult, list]] = None
        self.epoch_loss = torch.zeros((), device=accelerator.device)
        self.stop_agreed = False  # a process asked to stop: all stop after the same step

    def book(self) -> bool:
        """Book the pending step, if any; whether it counted."""
        if self.pending is None:
            return False
        (result, window), self.pending = self.pending, None
        counted, advance_schedule, stop = result.read()
        self.stop_agreed |= stop
        if advance_schedule:
            self.scheduler.step()
        if not counted:
            skip_bad_step(self.cfg, self.accelerator, self.state)
            return False
        self.state.bad_steps_in_row = 0
        self.epoch_loss += (result.loss_sums / result.tokens.clamp(min=1)).sum()
        self.log.add(result.loss_sums, result.tokens, window)
        self.state.global_step += 1
        self.bar.update(1)
        return True

    def stopping(self) -> bool:
        # One process reads its own signal; several learn of it through the votes (train_window).
        alone = self.accelerator.num_processes == 1
        return self.stop_agreed or (alone and self.stop.requested)

    def due_now(self, schedule: Schedule) -> bool:
        """Whether the step just queued must be booked at once: something happens after it."""
        step = self.state.global_step + 1  # its number, if it counts
        return (step >= schedule.total_steps or step % self.cfg.logging_steps == 0
                or step_checkpoint_due(self.cfg, step) or self.stopping())


def fit(cfg, accelerator, model, optimizer, scheduler, loader, schedule: Schedule, state: LoopState,
        hooks: Hooks, stop: Optional[StopRequest] = None) -> LoopState:
    """Train from `state` to the end of the schedule, evaluating after every epoch.

    A resumed state may stand inside an epoch (its first batches are skipped, in the same shuffled
    order) or at the end of one whose evaluation is still due."""
    bar = tqdm(total=schedule.total_steps, initial=state.global_step, desc="training",
               disable=not accelerator.is_local_main_process)
    stop = stop or StopRequest()
    ledger = StepLedger(cfg, accelerator, scheduler, state, stop, bar)
    while (state.epoch < schedule.num_epochs and not state.stopped_early
           and (state.global_step < schedule.total_steps or state.batches_in_epoch)):
        loader.set_epoch(state.epoch)  # also fixes the order that skip_first_batches replays
        batches = accelerator.skip_first_batches(loader, state.batches_in_epoch) if state.batches_in_epoch else loader
        model.train()
        ledger.epoch_loss = torch.tensor(state.epoch_loss_sum, device=accelerator.device)
        for window in windows(batches, cfg.gradient_accumulation_steps):
            if state.global_step >= schedule.total_steps:
                break
            result = train_window(accelerator, model, optimizer, window, cfg.max_grad_norm, stop.requested,
                                  ledger.book)
            state.batches_in_epoch += len(window)
            ledger.pending = (result, window)
            if ledger.due_now(schedule) and ledger.book():
                after_step(ledger, hooks, result.grad_norm)
        ledger.book()
        batches_done = max(state.batches_in_epoch, 1)
        state.train_loss = accelerator.reduce(ledger.epoch_loss / batches_done, reduction="mean").item()
        state.batches_in_epoch, state.epoch_loss_sum = 0, 0.0
        state.epoch += 1
        stop_early = hooks.on_epoch_end(state)
        name = checkpoint_name(cfg, state, epoch_finished=True)
        if name:
            hooks.on_checkpoint(state, name)
        if stop_early:
            break
    bar.close()
    return state


def after_step(ledger: StepLedger, hooks: Hooks, grad_norm) -> None:
    """What follows a booked step: the log line, a checkpoint, and a stop when one was asked for."""
    cfg, state, stop = ledger.cfg, ledger.state, ledger.stop
    if state.global_step % cfg.logging_steps == 0:
        hooks.on_log(ledger.log.flush(ledger.scheduler, grad_norm), state.global_step)
    name = checkpoint_name(cfg, state, epoch_finished=False)
    stopping = ledger.stopping()
    if name or stopping:
        state.epoch_loss_sum = ledger.epoch_loss.item()
        hooks.on_checkpoint(state, name or f"step_{state.global_step}")
    if stopping:
        raise Preempted(f"stopped on {stop.signal_name or 'a signal to another process'} after step "
                        f"{state.global_step}, checkpoint saved; rerun with --resume_from_checkpoint latest.")


def elapsed_epochs(state: LoopState) -> int:
    """The last trained epoch's 0-based index, as upstream's `epoch` key."""
    return max(state.epoch - 1, 0)
