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


def test_training_on_a_cpu_uses_it_and_learns_and_false_keeps_torchs(base_args, tiny_model_with_dropout, tmp_path,
                                                                      monkeypatch):
    from tokclf.runtime import attention_dropout

    seen, attention_calls, math_attention = set(), [], attention_dropout.math_attention

    def note(module, inputs, output):
        if isinstance(module, nn.Dropout) and module.training:
            seen.add(type(module))

    def counted(*args):
        attention_calls.append(args[0].shape)
        return math_attention(*args)

    monkeypatch.setattr(attention_dropout, "math_attention", counted)

    args = base_args + ["--model_name_or_path", str(tiny_model_with_dropout), "--mixed_precision", "no",
                        "--num_train_epochs", "3"]
    hook = nn.modules.module.register_module_forward_hook(note)
    try:
        train_main(args + ["--fast_attention_dropout"])
        fast_seen, seen, fast_attention_calls, attention_calls[:] = seen, set(), len(attention_calls), []
        train_main(args + ["--fast_dropout", "false", "--output_dir", str(tmp_path / "torch")])
    finally:
        hook.remove()
    assert fast_seen == {FastCpuDropout} and seen == {nn.Dropout}
    assert fast_attention_calls > 0 and not attention_calls  # the opt-in attention masks, when asked
    fast, plain = all_results(tmp_path / "out"), all_results(tmp_path / "torch")
    assert fast["train_loss"] != plain["train_loss"]  # other masks, so another run ...
    assert fast["eval_f1"] > 0.3 and abs(fast["eval_f1"] - plain["eval_f1"]) < 0.25  # ... that learns as well


# --fast_attention_dropout (tokclf/runtime/attention_dropout.py): torch's SDPA math kernel, step by step, with
# the mask given. The private op takes a dropout mask "for testing purposes" (its own words), which is this.
def sdpa_math_with_mask(q, k, v, mask, keep, rate, is_causal=False):
    additive = None if mask is None else torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))
    return torch.ops.aten._scaled_dot_product_attention_math(q, k, v, additive, rate, is_causal, dropout_mask=keep)[0]


def drawn_with_the_same_state(run, shape, rate):
    """run()'s result and the keep mask it drew (the same RNG state drawn again)."""
    state = torch.get_rng_state()
    out = run()
    torch.set_rng_state(state)
    return out, keep_mask(torch.Size(shape), round(rate * 65536))


def leaves(*shapes, dtype=torch.float32):
    return [torch.randn(s).to(dtype).requires_grad_() for s in shapes]


def test_attention_output_and_gradients_are_sdpas_math_kernel_for_the_drawn_mask():
    from tokclf.runtime.attention_dropout import math_attention

    torch.manual_seed(0)
    q, k, v = leaves(*[(3, 4, 9, 8)] * 3)
    mask = torch.ones(3, 1, 9, 9, dtype=torch.bool)
    mask[1, :, :, 6:] = False  # the second sentence is padded after 6 tokens
    out, keep = drawn_with_the_same_state(lambda: math_attention(q, k, v, mask, 0.2, None), (3, 4, 9, 9), 0.2)
    q2, k2, v2 = (t.detach().clone().requires_grad_() for t in (q, k, v))
    expected = sdpa_math_with_mask(q2, k2, v2, mask, keep, round(0.2 * 65536) / 65536)
    torch.testing.assert_close(out, expected)
    assert 0.15 < 1 - keep.float().mean().item() < 0.25
    grad = torch.randn_like(out)
    out.backward(grad)
    expected.backward(grad)
    for ours, torchs in zip((q, k, v), (q2, k2, v2)):
        torch.testing.assert_close(ours.grad, torchs.grad)


def test_bf16_attention_follows_torchs_reduced_precision_flag(monkeypatch):
    """Flag off: bf16 inputs are upcast, as SDPA's math kernel does, so the probabilities are fp32; on: they stay
    bf16. Either way the result is that kernel's under the same flag, to bf16's precision."""
    from tokclf.runtime import attention_dropout

    probability_dtypes, cheap_dropout = [], attention_dropout.cheap_dropout
    monkeypatch.setattr(attention_dropout, "cheap_dropout",
                        lambda probs, p: probability_dtypes.append(probs.dtype) or cheap_dropout(probs, p))
    torch.manual_seed(1)
    q, k, v = leaves(*[(2, 4, 12, 16)] * 3, dtype=torch.bfloat16)
    before = torch.backends.cuda.fp16_bf16_reduction_math_sdp_allowed()
    try:
        for reduced in (False, True):
            torch.backends.cuda.allow_fp16_bf16_reduction_math_sdp(reduced)
            with torch.autocast("cpu", dtype=torch.bfloat16):  # as in training: turned off inside, as SDPA does
                out, keep = drawn_with_the_same_state(
                    lambda: attention_dropout.math_attention(q, k, v, None, 0.1, None), (2, 4, 12, 12), 0.1)
            assert out.dtype == torch.bfloat16
            torch.testing.assert_close(out, sdpa_math_with_mask(q, k, v, None, keep, round(0.1 * 65536) / 65536),
                                       atol=2e-2, rtol=2e-2)
    finally:
        torch.backends.cuda.allow_fp16_bf16_reduction_math_sdp(before)
    assert probability_dtypes == [torch.float32, torch.bfloat16]


def test_a_causal_grouped_query_layer_gets_sdpas_causal_mask_and_shared_heads():
    from transformers.integrations.sdpa_attention import repeat_kv

    from tokclf.runtime.attention_dropout import attention_forward

    torch.manual_seed(2)
    layer = nn.Module()
    layer.num_key_value_groups, layer.is_causal = 2, True
    q, k, v = leaves((2, 4, 7, 8), (2, 2, 7, 8), (2, 2, 7, 8))
    (out, _), keep = drawn_with_the_same_state(lambda: attention_forward(layer, q, k, v, None, dropout=0.3),
                                               (2, 4, 7, 7), 0.3)
    expected = sdpa_math_with_mask(q, repeat_kv(k, 2), repeat_kv(v, 2), None, keep, round(0.3 * 65536) / 65536,
                                   is_causal=True)
    torch.testing.assert_close(out, expected.transpose(1, 2))


def test_without_dropout_or_off_the_cpu_rules_it_is_transformers_sdpa():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from tokclf.runtime.attention_dropout import attention_forward

    layer = nn.Module()
    q, k, v = leaves(*[(2, 3, 5, 4)] * 3)
    mask = torch.ones(2, 1, 5, 5, dtype=torch.bool)
    mask[0, :, :, 3:] = False
    ours, _ = attention_forward(layer, q, k, v, mask, dropout=0.0, scaling=0.5, is_causal=False)
    assert torch.equal(ours, sdpa_attention_forward(layer, q, k, v, mask, dropout=0.0, scaling=0.5, is_causal=False)[0])


def test_a_bert_switches_scores_as_before_and_saves_as_sdpa(tiny_model_with_dropout, tmp_path):
    from transformers import AutoModelForTokenClassification

    from tokclf.arguments import TrainingArguments
    from tokclf.components import use_cheap_dropout_masks
    from tokclf.runtime.attention_dropout import NAME, use_fast_attention_dropout

    model = AutoModelForTokenClassification.from_pretrained(tiny_model_with_dropout, num_labels=5).eval()
    ids = torch.randint(5, 90, (2, 6))
    padding = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    before = model(input_ids=ids, attention_mask=padding).logits
    assert use_fast_attention_dropout(model) and model.config._attn_implementation == NAME
    torch.testing.assert_close(model(input_ids=ids, attention_mask=padding).logits, before)
    model.save_pretrained(tmp_path)
    assert AutoModelForTokenClassification.from_pretrained(tmp_path).config._attn_implementation == "sdpa"
    model.set_attn_implementation("eager")
    assert not use_fast_attention_dropout(model)  # a model on eager attention keeps it ...
    said = []
    use_cheap_dropout_masks(model, TrainingArguments(fast_attention_dropout=True), torch.device("cpu"), said.append)
    assert model.config._attn_implementation == "eager" and "('eager' attention)" in said[0]  # ... and is told so


@pytest.mark.parametrize("hidden, attention, expected", [
    (None, False, (True, False)), (False, False, (False, False)), (None, True, (True, True)),
    (False, True, (False, True))])
def test_the_attention_masks_are_opt_in_and_apart_from_the_dropout_modules(tiny_model_with_dropout, hidden, attention, expected):
    from transformers import AutoModelForTokenClassification

    from tokclf.arguments import TrainingArguments
    from tokclf.components import use_cheap_dropout_masks
    from tokclf.runtime.attention_dropout import NAME

    model = AutoModelForTokenClassification.from_pretrained(tiny_model_with_dropout, num_labels=3)
    use_cheap_dropout_masks(model, TrainingArguments(fast_dropout=hidden, fast_attention_dropout=attention),
                            torch.device("cpu"))
    swapped = any(isinstance(m, FastCpuDropout) for m in model.modules())
    assert (swapped, model.config._attn_implementation == NAME) == expected
