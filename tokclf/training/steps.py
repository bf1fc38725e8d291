"""The step protocol: one object, `StepProtocol`, owns what happens in an optimizer step and when.

The loop asks it to start an epoch, submit each window of micro-batches, and end the epoch; nothing
else writes its fields or the step counters of the loop state. Timeline of optimizer step k (one
window of micro-batches), host on the left, the device working through its queue behind it:

    submit(window k)
      ├─ all-reduce the window's labelled tokens (and the processes' stop votes)    no host wait
      ├─ queue forward + backward of every micro-batch of k                          no host wait
      ├─ clip the gradient (norm stays on the device)                                no host wait
      ├─ read the verdict of step k-1 ── book k-1 ──┐  host waits for step k-1 only, which the device
      │                                             │  finished while k's backward was queued
      ├─ update k (fused AdamW skips it on the device when the norm is not finite)
      └─ book k at once only when something follows it: a log line, a checkpoint, the last step,
         a stop; otherwise k is booked inside window k+1, at the arrow above.

    book(step)  one device→host transfer of (counted, advance schedule, stop asked), then:
                scheduler.step() if the schedule advances; a skipped update is counted (and too many
                in a row stop the run); else the loss joins the epoch's and the log interval's, and
                global_step += 1.

Two faults of the upstream example are avoided here, on purpose:
- The loss of a window is the sum of token losses divided by the labelled-token count of the whole
  window on all processes, so a short micro-batch weighs what its tokens weigh, and batch 8 x 4
  accumulation steps equals batch 32.
- The scheduler is not passed through `accelerator.prepare` (which steps it once per process), so the
  learning rate at optimizer step N is the same with 1 or N processes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from tokclf.errors import TrainingError
from tokclf.data.features import IGNORE


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
    finish on the device, so the protocol reads them one step late where it can."""

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
            # host-device sync: waits for this step's update to finish on the device
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
    if bool(finite):  # host-device sync: any other optimizer waits for the gradient norm
        optimizer.step()
        return True, True
    return False, False


def train_window(accelerator, model, optimizer, window, max_grad_norm, stop_asked: bool = False,
                 before_update: Callable[[], None] = lambda: None) -> WindowResult:
    """One optimizer step over a window of micro-batches. `before_update` runs after the backward passes,
    just before the update (the protocol books the previous step there)."""
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
        # host-device sync (once per log line): the interval's sums come to the host
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




@dataclass(frozen=True)
class Cadence:
    """When something follows a step: a log line every `log_every` steps, a checkpoint every
    `checkpoint_every` steps (None: not by step) or after each epoch's evaluation."""

    log_every: int
    checkpoint_every: Optional[int] = None
    checkpoint_each_epoch: bool = False

    def logs_at(self, step: int) -> bool:
        return step % self.log_every == 0

    def checkpoints_at(self, step: int) -> bool:
        return bool(self.checkpoint_every) and step % self.checkpoint_every == 0


class StepProtocol:
    """Submits windows and books their steps (see the module docstring for the timeline). It alone
    writes the step counters of `state`: global_step, batches_in_epoch, the epoch's loss, the skip counts."""

    def __init__(self, accelerator, model, optimizer, scheduler, state, *, total_steps: int, cadence: Cadence,
                 max_grad_norm: float, max_bad_steps: int, stop, bar):
        self.accelerator, self.model, self.optimizer, self.scheduler = accelerator, model, optimizer, scheduler
        self.state, self.total_steps, self.cadence, self.stop, self.bar = state, total_steps, cadence, stop, bar
        self.max_grad_norm, self.max_bad_steps = max_grad_norm, max_bad_steps
        self.log = IntervalLog(accelerator)
        self._pending: Optional[tuple[WindowResult, list]] = None
        self._epoch_loss = torch.zeros((), device=accelerator.device)
        self._stop_agreed = False  # a process asked to stop: all stop after the same step

    def start_epoch(self) -> None:
        """Continue the epoch's loss sum from the state (non-zero in a run resumed mid-epoch)."""
        self._epoch_loss = torch.tensor(self.state.epoch_loss_sum, device=self.accelerator.device)

    def submit(self, window: list) -> Optional[WindowResult]:
        """Train one window; returns its result when its step was booked at once and counted, so that
        what follows it (a log line, a checkpoint, a stop) can happen now."""
        result = train_window(self.accelerator, self.model, self.optimizer, window, self.max_grad_norm,
                              self.stop.requested, self._book)
        self.state.batches_in_epoch += len(window)
        self._pending = (result, window)
        return result if self._due_now() and self._book() else None

    def end_epoch(self) -> None:
        """Book the last step, then close the epoch: its mean micro-batch loss over all processes."""
        self._book()
        batches_done = max(self.state.batches_in_epoch, 1)
        # host-device sync (once per epoch): the epoch's loss comes to the host
        self.state.train_loss = self.accelerator.reduce(self._epoch_loss / batches_done, reduction="mean").item()
        self.state.batches_in_epoch, self.state.epoch_loss_sum = 0, 0.0
        self.state.epoch += 1

    def keep_epoch_loss(self) -> None:
        """Put the epoch's loss so far into the state, for a checkpoint taken mid-epoch."""
        self.state.epoch_loss_sum = self._epoch_loss.item()  # host-device sync: before a checkpoint only

    @property
    def stopping(self) -> bool:
        # One process reads its own signal; several learn of it through the votes (train_window).
        alone = self.accelerator.num_processes == 1
        return self._stop_agreed or (alone and self.stop.requested)

    def _due_now(self) -> bool:
        """Whether the step just queued must be booked at once: something happens after it."""
        step = self.state.global_step + 1  # its number, if it counts
        return (step >= self.total_steps or self.cadence.logs_at(step) or self.cadence.checkpoints_at(step)
                or self.stopping)

    def _book(self) -> bool:
        """Book the pending step, if any; whether it counted."""
        if self._pending is None:
            return False
        (result, window), self._pending = self._pending, None
        counted, advance_schedule, stop = result.read()
        self._stop_agreed |= stop
        if advance_schedule:
            self.scheduler.step()
        if not counted:
            self._skip_bad_step()
            return False
        self.state.bad_steps_in_row = 0
        self._epoch_loss += (result.loss_sums / result.tokens.clamp(min=1)).sum()
        self.log.add(result.loss_sums, result.tokens, window)
        self.state.global_step += 1
        self.bar.update(1)
        return True

    def _skip_bad_step(self) -> None:
        state = self.state
        state.skipped_steps += 1
        state.bad_steps_in_row += 1
        self.accelerator.print(f"warning: non-finite loss or gradient after step {state.global_step}: update "
                               f"skipped ({state.bad_steps_in_row} in a row, {state.skipped_steps} in all).")
        if state.bad_steps_in_row >= self.max_bad_steps:
            raise TrainingError(
                f"{state.bad_steps_in_row} optimizer steps in a row had a non-finite loss or gradient "
                f"(--max_bad_steps {self.max_bad_steps}); stopped with the last checkpoint intact. Lower the "
                f"learning rate, check the data, or use fp32.")
