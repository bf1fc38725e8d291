"""Scoring on int8 weights (tokclf.runtime.int8): which layers become int8, that scores stay close to fp32,
that training's evaluations use it only where asked and possible, and that evaluate takes it. Its speed and
its F1 on a real model are measured in bench/eval_weights_ab.py, never here."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from helpers import all_results, random_head_model
from tokclf.cli import evaluate_main, train_main
from tokclf.components import refuse_int8_off_cpu
from tokclf.errors import ConfigError
from tokclf.runtime.accel import AcceleratorOptions, make_accelerator
from tokclf.runtime.int8 import int8_applies, int8_layer_names, int8_weights

NAMES = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def is_int8(module) -> bool:
    return type(module).__module__.startswith("torch.ao.nn.quantized.dynamic")


def tagger(tiny_model):
    from transformers import AutoModelForTokenClassification

    torch.manual_seed(0)
    return AutoModelForTokenClassification.from_pretrained(tiny_model, num_labels=len(NAMES)).eval()


def test_the_layers_that_keep_or_widen_their_width_become_int8_and_the_rest_stay(tiny_model):
    model = tagger(tiny_model)
    names = int8_layer_names(model)
    per_layer = {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                 "intermediate.dense"}
    assert sorted(names) == sorted(f"bert.encoder.layer.{i}.{n}" for i in range(2) for n in per_layer)
    ids = torch.randint(5, 60, (4, 12))
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        quantized = int8_weights(model)
        got = quantized(input_ids=ids).logits
    modules = dict(quantized.named_modules())
    assert all(is_int8(modules[name]) for name in names)
    # the FFN's output layer (64 -> 32) and the classifier (32 -> 7) narrow: they stay fp32
    assert type(modules["bert.encoder.layer.0.output.dense"]) is torch.nn.Linear
    assert type(modules["classifier"]) is torch.nn.Linear
    assert got.dtype == torch.float32
    assert (got - expected).abs().max().item() <= 0.05 * expected.abs().max().item()
    assert (got.argmax(-1) == expected.argmax(-1)).float().mean().item() >= 0.9


def test_lora_adapters_are_merged_before_their_layers_become_int8(tiny_model):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tagger(tiny_model), LoraConfig(r=4, target_modules=["query", "value"], init_lora_weights=False))
    ids = torch.randint(5, 60, (4, 12))
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        quantized = int8_weights(model)
        got = quantized(input_ids=ids).logits
    assert not any("lora" in name for name, _ in quantized.named_modules())
    assert is_int8(dict(quantized.named_modules())["bert.encoder.layer.1.attention.self.value"])
    assert (got - expected).abs().max().item() <= 0.05 * expected.abs().max().item()


@pytest.mark.parametrize("device, precision, applies", [("cpu", "no", True), ("cpu", "bf16", False)])
def test_int8_scoring_applies_on_a_cpu_in_fp32_only(device, precision, applies):
    accelerator = make_accelerator(AcceleratorOptions(device=device, mixed_precision=precision))
    assert int8_applies(True, accelerator) is applies
    assert int8_applies(False, accelerator) is False


def test_asking_for_int8_off_a_cpu_says_how_to_run_it():
    gpu = SimpleNamespace(device=torch.device("cuda", 0))
    with pytest.raises(ConfigError, match=r"--inference_dtype int8 runs on a CPU only .*--device cpu"):
        refuse_int8_off_cpu(gpu)


def test_training_evaluates_on_int8_weights_when_asked_and_trains_the_same(base_args, tmp_path):
    """Validation and test run on int8 layers with --eval_int8_weights; training's numbers are untouched and
    F1 is that of fp32 scoring within int8 rounding."""
    int8_calls = []

    def note(module, inputs, output):
        if is_int8(module):
            int8_calls.append(inputs[0].dtype)

    hook = torch.nn.modules.module.register_module_forward_hook(note)
    try:
        train_main(base_args + ["--mixed_precision", "no", "--num_train_epochs", "3", "--eval_int8_weights", "true"])
    finally:
        hook.remove()
    assert int8_calls and set(int8_calls) == {torch.float32}
    with_int8 = all_results(tmp_path / "out")
    train_main(base_args + ["--mixed_precision", "no", "--num_train_epochs", "3", "--output_dir", str(tmp_path / "fp32")])
    with_fp32 = all_results(tmp_path / "fp32")
    assert with_int8["train_loss"] == with_fp32["train_loss"]  # evaluation never touches training
    assert with_fp32["eval_f1"] > 0.3 and abs(with_int8["eval_f1"] - with_fp32["eval_f1"]) <= 0.05


def test_a_bf16_run_says_int8_scoring_changes_nothing_there(base_args, capsys):
    train_main(base_args + ["--mixed_precision", "bf16", "--max_train_steps", "1", "--eval_int8_weights", "true"])
    assert ("note: --eval_int8_weights changes nothing here: int8 scoring runs on a CPU in fp32 "
            "(this run: cpu, mixed precision bf16).") in capsys.readouterr().out


def test_evaluate_scores_a_saved_model_on_int8_weights(tiny_model, conll_dir, tmp_path):
    model = random_head_model(tiny_model, tmp_path / "model", NAMES)
    scores = {}
    for dtype in ("fp32", "int8"):
        out = tmp_path / f"{dtype}.json"
        evaluate_main(["--model", str(model), "--data_dir", str(conll_dir), "--split", "validation",
                       "--inference_dtype", dtype, "--output_file", str(out)])
        scores[dtype] = json.loads(out.read_text())
    assert scores["fp32"]["accuracy"] > 0 and abs(scores["int8"]["accuracy"] - scores["fp32"]["accuracy"]) <= 0.05
