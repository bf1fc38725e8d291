"""bf16 autocast on a CPU with today's code: a launch config's `mixed_precision: bf16` reaches the
run (Accelerate reads ACCELERATE_MIXED_PRECISION when Accelerator() is given none), the loss falls,
and the saved weights stay fp32. Also: bench/bf16_probe.py runs and writes its table."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors import safe_open

from conftest import ROOT
from tokclf.cli import train_main


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_training_under_bf16_autocast_on_cpu_learns_and_saves_fp32(base_args, tmp_path, monkeypatch):
    # What `accelerate launch --config_file launch/cpu-bf16.yaml` sets for the process it starts.
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    out = tmp_path / "out"
    linear_outputs = set()

    def note_linear_dtype(module, inputs, output):
        # Autocast shows in what a Linear returns: bf16 under it, fp32 without.
        if isinstance(module, torch.nn.Linear) and module.training:
            linear_outputs.add(output.dtype)

    hook = torch.nn.modules.module.register_module_forward_hook(note_linear_dtype)
    try:
        train_main(base_args + ["--num_train_epochs", "3", "--logging_steps", "5", "--warmup_ratio", "0.1"])
    finally:
        hook.remove()
    assert linear_outputs == {torch.bfloat16}  # every training forward ran under bf16 autocast

    logged = read_jsonl(out / "train_log.jsonl")
    losses = [row["train/loss"] for row in logged if "train/loss" in row]
    assert losses and all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < 0.6 * losses[0], losses
    per_epoch = read_jsonl(out / "results.jsonl")
    assert per_epoch[-1]["train_loss"] < per_epoch[0]["train_loss"]

    # Autocast casts per operation; the parameters, and so the saved model, stay fp32.
    with safe_open(str(out / "model.safetensors"), framework="pt") as saved:
        dtypes = {saved.get_slice(name).get_dtype() for name in saved.keys()}
    assert dtypes == {"F32"}
    assert json.loads((out / "all_results.json").read_text())["eval_f1"] >= 0


def test_the_bf16_probe_runs_and_writes_its_table(tiny_model, tmp_path):
    output = tmp_path / "bf16_probe.json"
    cmd = [sys.executable, "bench/bf16_probe.py", "--model", str(tiny_model), "--repeats", "1", "--matmul_size",
           "64", "--train_batch", "4", "8", "--eval_batch", "4", "8", "--threads", "1", "--output", str(output)]
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(output.read_text())
    assert {"cpu_model", "cpu_bf16_native", "cpu_bf16_reason", "cpu_bf16_flags", "torch"} <= set(result)
    assert [row["workload"] for row in result["rows"]] == ["matmul 64^3", "train step 4x8", "eval forward 4x8"]
    for row in result["rows"]:
        assert row["fp32_seconds"] > 0 and row["bf16_seconds"] > 0
        assert math.isclose(row["bf16_speedup"], row["fp32_seconds"] / row["bf16_seconds"])
    assert "| matmul 64^3 |" in done.stdout and "CPU bf16:" in done.stdout


def test_the_precision_used_and_what_the_cpu_offers_are_recorded(base_args, tmp_path, cpu_kind):
    from tokclf.runtime.precision import cpu_bf16_support

    train_main(base_args + ["--max_train_steps", "3", "--mixed_precision", "bf16"])
    results = json.loads((tmp_path / "out" / "all_results.json").read_text())
    support = cpu_bf16_support()
    assert support.native is (cpu_kind == "native")
    assert results["mixed_precision"] == "bf16"
    assert results["cpu_bf16_native"] is support.native and results["cpu_bf16_reason"] == support.reason
    train_main(base_args + ["--max_train_steps", "3", "--output_dir", str(tmp_path / "auto")])
    auto = json.loads((tmp_path / "auto" / "all_results.json").read_text())
    assert auto["mixed_precision"] == ("bf16" if support.native else "no")  # auto follows the CPU's units


# bf16 scoring on a CPU runs on bf16 weights by default (tokclf.runtime.accel.wants_bf16_weights);
# `--bf16_weights false` keeps fp32 weights under autocast. Both must tag as fp32 does.
INFERENCE_VARIANTS = {"fp32": ["--inference_dtype", "fp32"],
                      "bf16 autocast": ["--inference_dtype", "bf16", "--bf16_weights", "false"],
                      "bf16 weights": ["--inference_dtype", "bf16"]}


def test_bf16_inference_tags_like_fp32(base_args, conll_dir, tmp_path):
    """evaluate and predict in bf16 (autocast, or bf16 weights) give the fp32 tags for at least 99% of the
    words."""
    from tokclf.cli import evaluate_main, predict_main

    model = tmp_path / "out"
    train_main(base_args + ["--num_train_epochs", "3"])
    tags = {}
    for name, flags in INFERENCE_VARIANTS.items():
        out = tmp_path / f"{name}.jsonl"
        predict_main(["--model", str(model), "--input", str(conll_dir / "eng.testb"), "--output", str(out),
                      "--output_format", "jsonl", *flags])
        tags[name] = [t for row in read_jsonl(out) for t in row["tags"]]
    for name in ("bf16 autocast", "bf16 weights"):
        same = sum(a == b for a, b in zip(tags["fp32"], tags[name])) / len(tags["fp32"])
        assert len(tags["fp32"]) == len(tags[name]) > 200 and same >= 0.99, (name, same)
    scores = {name: evaluate_main(["--model", str(model), "--data_dir", str(conll_dir), *flags])
              for name, flags in INFERENCE_VARIANTS.items()}
    assert all(abs(scores["fp32"]["f1"] - score["f1"]) <= 0.02 for score in scores.values()), scores
