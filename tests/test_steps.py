"""The step protocol on its own: a tiny model, a real (CPU) Accelerator, windows submitted by hand."""

from types import SimpleNamespace

import pytest
import torch

from tokclf.runtime.accel import AcceleratorOptions, make_accelerator
from tokclf.errors import TrainingError
from tokclf.training.loop import LoopState, windows
from tokclf.training.steps import Cadence, StepProtocol


class TinyTagger(torch.nn.Module):
    """Token ids → 3 label logits; what token_losses needs of a model."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(10, 3)

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=self.embed(input_ids))


def batch(poison: bool = False) -> dict:
    ids = torch.tensor([[1, 2, 3, 4]])
    labels = torch.tensor([[0, 1, 2, -100]])
    out = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    if poison:  # an id whose embedding is NaN makes the loss and gradient non-finite
        out["input_ids"] = torch.tensor([[9, 9, 9, 9]])
    return out


class Bar:
    def __init__(self):
        self.n = 0

    def update(self, k):
        self.n += k


def protocol(state, total_steps=10, cadence=Cadence(log_every=100), max_bad_steps=3, nan_row=False):
    accelerator = make_accelerator(AcceleratorOptions(device="cpu", mixed_precision="no"))
    model = TinyTagger()
    if nan_row:
        with torch.no_grad():
            model.embed.weight[9] = float("nan")
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    stop = SimpleNamespace(requested=False, signal_name=None)
    return StepProtocol(accelerator, model, optimizer, scheduler, state, total_steps=total_steps, cadence=cadence,
                        max_grad_norm=1.0, max_bad_steps=max_bad_steps, stop=stop, bar=Bar())


def test_a_step_is_booked_one_window_late_unless_something_follows_it():
    state = LoopState()
    steps = protocol(state, cadence=Cadence(log_every=3))
    steps.start_epoch()
    booked = [steps.submit([batch()]) is not None for _ in range(4)]
    # step 1 and 2 wait for the next window; step 3 has a log line after it; step 4 waits again
    assert booked == [False, False, True, False]
    assert state.global_step == 3 and state.batches_in_epoch == 4
    steps.end_epoch()
    assert state.global_step == 4 and state.epoch == 1 and state.batches_in_epoch == 0
    assert state.train_loss == pytest.approx(state.train_loss) and state.train_loss > 0
    assert steps.bar.n == 4


def test_the_schedule_moves_once_per_counted_step_and_the_loss_falls():
    from tokclf.training.steps import token_losses

    state = LoopState()
    steps = protocol(state, total_steps=8)
    before = token_losses(steps.model, batch())[0].item()
    steps.start_epoch()
    for window in windows([batch()] * 16, 2):
        steps.submit(window)
    steps.end_epoch()
    assert token_losses(steps.model, batch())[0].item() < 0.5 * before
    assert state.global_step == 8 and steps.scheduler.last_epoch == 8
    assert steps.scheduler.get_last_lr()[0] == pytest.approx(0.0)


def test_a_non_finite_step_is_skipped_counted_and_too_many_stop_the_run():
    state = LoopState()
    steps = protocol(state, nan_row=True, max_bad_steps=2)
    steps.start_epoch()
    steps.submit([batch()])
    steps.submit([batch(poison=True)])  # books step 1 (finite)
    assert state.global_step == 1 and state.skipped_steps == 0
    with pytest.raises(TrainingError, match="2 optimizer steps in a row had a non-finite loss"):
        steps.submit([batch(poison=True)])  # books the first poisoned step: skipped
        steps.end_epoch()  # books the second: the run stops
    assert state.skipped_steps == 2 and state.global_step == 1
    weights = steps.model.embed.weight.detach()
    assert torch.isfinite(weights[:9]).all()  # the skipped updates never reached the weights


def test_a_resumed_epoch_continues_its_loss_sum():
    state = LoopState(epoch_loss_sum=5.0, batches_in_epoch=2)
    steps = protocol(state)
    steps.start_epoch()
    steps.keep_epoch_loss()
    assert state.epoch_loss_sum == pytest.approx(5.0)
