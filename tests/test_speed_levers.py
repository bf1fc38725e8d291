"""The speed levers of docs/performance.md, each doing what it says: attention kept in bf16 by torch's
own flag, evaluation on a bf16 copy of the weights, frozen word embeddings. Their speed is measured in
bench/ (bench/run.py --ablations), never here."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from helpers import all_results, read_jsonl
from tokclf.cli import train_main
from tokclf.runtime.accel import AcceleratorOptions, bf16_scoring_copy, make_accelerator, set_sdp_reduced_precision

SDP_ALLOWED = torch.backends.cuda.fp16_bf16_reduction_math_sdp_allowed


@pytest.fixture
def restore_sdp_flag():
    before = SDP_ALLOWED()
    yield
    torch.backends.cuda.allow_fp16_bf16_reduction_math_sdp(before)


@pytest.mark.parametrize("requested, precision, expected", [
    (None, "bf16", True), (None, "fp16", True), (None, "no", False), (False, "bf16", False), (True, "no", True)])
def test_sdp_reduced_precision_follows_the_run_unless_asked(restore_sdp_flag, requested, precision, expected):
    torch.backends.cuda.allow_fp16_bf16_reduction_math_sdp(not expected)  # what an earlier run left
    assert set_sdp_reduced_precision(requested, precision) is expected
    assert SDP_ALLOWED() is expected


def test_the_flag_reaches_the_cpu_math_kernel(restore_sdp_flag):
    """Not a CUDA-only switch despite its namespace: on a CPU the math kernel's bf16 result changes with it
    (scores and softmax in bf16 rather than fp32), and stays within bf16 rounding of fp32 either way."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 33, 16) for _ in range(3))
    reference = F.scaled_dot_product_attention(q, k, v)
    results = {}
    for allowed in (False, True):
        torch.backends.cuda.allow_fp16_bf16_reduction_math_sdp(allowed)
        with sdpa_kernel(SDPBackend.MATH):
            results[allowed] = F.scaled_dot_product_attention(q.bfloat16(), k.bfloat16(), v.bfloat16()).float()
    assert not torch.equal(results[False], results[True])
    for result in results.values():
        assert (result - reference).abs().max().item() < 0.05


def test_a_bf16_scoring_copy_leaves_the_trained_model_alone(tiny_model):
    from transformers import AutoModelForTokenClassification

    accelerator = make_accelerator(AcceleratorOptions(device="cpu", mixed_precision="bf16"))
    model = accelerator.prepare(AutoModelForTokenClassification.from_pretrained(tiny_model, num_labels=5))
    before = {name: value.clone() for name, value in model.state_dict().items()}
    scoring = bf16_scoring_copy(model, accelerator)
    assert {p.dtype for p in scoring.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert "forward" not in scoring.__dict__ and "forward" in model.__dict__  # the autocast wrapper stays on the model
    ids = torch.randint(5, 60, (4, 12))
    with torch.no_grad():
        with accelerator.autocast():
            expected = model(input_ids=ids).logits.float()
        got = scoring(input_ids=ids).logits
        scoring.classifier.weight.add_(1.0)  # the copy owns its weights
    assert got.dtype == torch.bfloat16
    assert (got.float() - expected).abs().max().item() <= 0.05 * expected.abs().max().item()
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())


def test_bf16_training_evaluates_on_bf16_weights_and_learns(base_args, tmp_path):
    """Validation in a bf16 run on a CPU runs on bf16 weights (a Linear in eval mode sees bf16 weights) and
    scores what fp32-weight evaluation scores, within bf16 rounding."""
    eval_weight_dtypes = set()

    def note(module, inputs, output):
        if isinstance(module, torch.nn.Linear) and not module.training:
            eval_weight_dtypes.add(module.weight.dtype)

    hook = torch.nn.modules.module.register_module_forward_hook(note)
    try:
        train_main(base_args + ["--mixed_precision", "bf16", "--num_train_epochs", "3"])
    finally:
        hook.remove()
    assert eval_weight_dtypes == {torch.bfloat16}
    with_bf16 = all_results(tmp_path / "out")
    train_main(base_args + ["--mixed_precision", "bf16", "--num_train_epochs", "3", "--eval_bf16_weights", "false",
                            "--output_dir", str(tmp_path / "autocast")])
    with_autocast = all_results(tmp_path / "autocast")
    assert with_bf16["train_loss"] == with_autocast["train_loss"]  # evaluation never touches training
    assert with_bf16["eval_f1"] > 0.3 and abs(with_bf16["eval_f1"] - with_autocast["eval_f1"]) <= 0.02


def test_frozen_word_embeddings_stay_pretrained_while_the_rest_learns(base_args, tiny_model, tmp_path):
    train_main(base_args + ["--freeze_word_embeddings", "--num_train_epochs", "3", "--mixed_precision", "no",
                            "--logging_steps", "5"])
    out = tmp_path / "out"
    trained, pretrained = load_file(out / "model.safetensors"), load_file(tiny_model / "model.safetensors")
    table = "embeddings.word_embeddings.weight"
    assert torch.equal(trained[f"bert.{table}"], pretrained[table])
    layer = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(trained[f"bert.{layer}"], pretrained[layer])
    losses = [row["train/loss"] for row in read_jsonl(out / "train_log.jsonl") if "train/loss" in row]
    assert all(math.isfinite(loss) for loss in losses) and losses[-1] < 0.8 * losses[0], losses  # it learns, more slowly: the tiny BERT's table is random
