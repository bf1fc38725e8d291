"""--fast_dropout (tokclf/runtime/dropout.py): masks at the asked rate from torch's generator, the output and
gradient torch's dropout gives for that mask, swapped in where training runs on a CPU and nowhere else. Exact
resume and 1 = 2 processes with it on are checked where they always were (test_resume, test_distributed: the
tiny BERT with dropout trains on a CPU, so with these masks). Its speed is measured in bench/, never here."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers import all_results
from tokclf.cli import train_main
from tokclf.runtime.dropout import FastCpuDropout, fast_dropout_wanted, keep_mask, use_fast_dropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.03])
def test_masks_drop_at_the_asked_rate_in_every_lane(p):
    torch.manual_seed(0)
    drop_count = round(p * 65536)
    kept = keep_mask(torch.Size([1000, 1000]), drop_count).flatten()
    # Each element's lane within its 64-bit draw: a lane that drew badly would show here.
    for lane in range(4):
        rate = 1 - kept[lane::4].float().mean().item()
        assert abs(rate - p) < 5 * (p * (1 - p) / 250_000) ** 0.5, (lane, rate)
    # Neighbours (same draw) are independent: P(both dropped) = p^2.
    pairs = (~kept[0::4] & ~kept[1::4]).float().mean().item()
    assert abs(pairs - p * p) < 5 * (p * p / 250_000) ** 0.5 + 1e-4


def test_the_masks_come_from_torchs_generator_so_a_restored_state_repeats_them():
    torch.manual_seed(3)
    state = torch.get_rng_state()
    first = keep_mask(torch.Size([7, 33]), 6554)
    second = keep_mask(torch.Size([7, 33]), 6554)
    torch.set_rng_state(state)
    assert torch.equal(keep_mask(torch.Size([7, 33]), 6554), first)
    assert not torch.equal(first, second)


def test_output_and_gradient_are_torchs_for_the_drawn_mask():
    torch.manual_seed(1)
    layer = FastCpuDropout(0.25).train()
    x = torch.randn(64, 50, 16, requires_grad=True)
    out = layer(x)
    kept = out != 0
    scale = 65536 / (65536 - round(0.25 * 65536))
    torch.testing.assert_close(out, torch.where(kept, x * scale, 0.0))
    out.backward(torch.ones_like(out))
    torch.testing.assert_close(x.grad, kept.float() * scale)
    assert abs(1 - kept.float().mean().item() - 0.25) < 0.01
    assert abs(out.mean().item() - x.mean().item()) < 0.02  # expectation kept: kept values are scaled up


def test_bf16_input_stays_bf16():
    out = FastCpuDropout(0.1).train()(torch.randn(8, 9, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16


def test_evaluation_and_the_edge_rates_are_torchs():
    x = torch.randn(5, 6)
    assert torch.equal(FastCpuDropout(0.5).eval()(x), x)
    assert torch.equal(FastCpuDropout(0.0).train()(x), x)
    assert torch.equal(FastCpuDropout(1.0).train()(x), torch.zeros_like(x))


def test_the_default_is_on_for_a_cpu_and_off_for_a_gpu():
    assert fast_dropout_wanted(None, torch.device("cpu"))
    assert not fast_dropout_wanted(None, torch.device("cuda", 0))
    assert not fast_dropout_wanted(False, torch.device("cpu"))


def test_every_plain_dropout_of_a_bert_is_swapped_with_its_rate(tiny_model_with_dropout):
    from transformers import AutoModelForTokenClassification

    model = AutoModelForTokenClassification.from_pretrained(tiny_model_with_dropout, num_labels=5)
    rates = sorted(m.p for m in model.modules() if type(m) is nn.Dropout)
    assert use_fast_dropout(model) == len(rates) > 0
    assert not any(type(m) is nn.Dropout for m in model.modules())
    assert sorted(m.p for m in model.modules() if isinstance(m, FastCpuDropout)) == rates
    # The attention dropout transformers hands to SDPA is read from the module's p, which stays.
    assert model.bert.encoder.layer[0].attention.self.dropout.p == model.config.attention_probs_dropout_prob


def test_training_on_a_cpu_uses_it_and_learns_and_false_keeps_torchs(base_args, tiny_model_with_dropout, tmp_path):
    seen = set()

    def note(module, inputs, output):
        if isinstance(module, nn.Dropout) and module.training:
            seen.add(type(module))

    args = base_args + ["--model_name_or_path", str(tiny_model_with_dropout), "--mixed_precision", "no",
                        "--num_train_epochs", "3"]
    hook = nn.modules.module.register_module_forward_hook(note)
    try:
        train_main(args)
        fast_seen, seen = seen, set()
        train_main(args + ["--fast_dropout", "false", "--output_dir", str(tmp_path / "torch")])
    finally:
        hook.remove()
    assert fast_seen == {FastCpuDropout} and seen == {nn.Dropout}
    fast, plain = all_results(tmp_path / "out"), all_results(tmp_path / "torch")
    assert fast["train_loss"] != plain["train_loss"]  # other masks, so another run ...
    assert fast["eval_f1"] > 0.3 and abs(fast["eval_f1"] - plain["eval_f1"]) < 0.25  # ... that learns as well
