"""The benchmark harness runs all three contenders end to end (tiny model, synthetic CoNLL files) and
reports what it measured: a harness that rots (a renamed option, a changed Trainer API) fails here,
not in the next benchmark session."""

from __future__ import annotations

import ast
import json
import os
import platform
import re
import subprocess
import sys

import pytest

from conftest import ROOT


def test_the_bench_runs_every_contender_and_writes_its_table(tiny_model, conll_dir, tmp_path):
    output = tmp_path / "results.json"
    cmd = [sys.executable, "bench/run.py", "--model", str(tiny_model), "--data_dir", str(conll_dir), "--steps", "6",
           "--batch_size", "8", "--repeats", "1", "--ablations", "first_subtoken", "--work_dir", str(tmp_path / "work"),
           "--output", str(output)]
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(output.read_text())
    summary = results["summary"]
    assert set(summary) == {"tokclf", "trainer", "trainer_grouped", "first_subtoken"}
    for name, row in summary.items():
        assert row["process_seconds"] > 0 and row["train_tokens_per_second"] > 0, name
        assert 0 <= row["validation_f1_words"] <= 1, name
        assert (row["cpu_model"], row["cpu_bf16_native"]) == (results["cpu_model"], results["cpu_bf16_native"])
        assert row["flops_fraction_of_matmul"] == 6 * results["non_embedding_parameters"] * row[
            "train_tokens_per_second"] / results["machine_matmul_flops"]["fp32"]
    assert summary["trainer"]["speedup_tokens_vs_b"] == 1
    # Random batches of these sentences pad; length-grouped ones (tokclf, Trainer's grouping) pad less.
    assert summary["tokclf"]["padding_fraction"] < summary["trainer"]["padding_fraction"]
    assert summary["trainer_grouped"]["padding_fraction"] < summary["trainer"]["padding_fraction"]
    assert "| (b) Trainer (seed notebook) |" in done.stdout
    assert output.with_suffix(".png").stat().st_size > 0


def test_an_ablation_runs_only_in_the_precisions_it_changes_something_in():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    bench_run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_run)
    ablation_rows = bench_run.ablation_rows

    assert ablation_rows(["sdp_fp32_math", "freeze_embeddings"], ["fp32", "bf16"]) == [
        "freeze_embeddings", "sdp_fp32_math@bf16", "freeze_embeddings@bf16"]
    assert ablation_rows(["sdp_fp32_math", "eval_autocast"], ["fp32"]) == []


def test_the_profiler_splits_tokclf_step_time_and_bounds_it_by_the_matmul_rate(tiny_model_with_dropout, conll_dir,
                                                                                tmp_path):
    output = tmp_path / "profile.json"
    cmd = [sys.executable, "bench/profile_step.py", "--model", str(tiny_model_with_dropout), "--data_dir",
           str(conll_dir), "--steps", "4", "--warmup", "1", "--batch_size", "8", "--output", str(output)]
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(output.read_text())
    training, evaluation = results["training"], results["evaluation"]
    assert training["steps"] == 4 and 0 < training["real_tokens"] <= training["positions"]
    assert evaluation["sentences"] == 61
    for part in (training, evaluation):
        assert abs(sum(part["share"].values()) - 1) < 1e-9
        assert part["share"]["matmul"] > 0 and part["matmul_flops"] > 0
    # Dropout masks are drawn in training only, and the optimizer steps only there.
    assert training["share"]["dropout masks"] > 0 and training["share"]["optimizer"] > 0
    # (evaluation's one `random_`: the DataLoader drawing its base seed, a 0-d tensor; a mask would be far above 2%)
    assert evaluation["share"]["dropout masks"] < 0.02 and evaluation["share"]["optimizer"] == 0
    # Every training matmul runs forward and twice backward, 6 FLOPs per weight and token; the weights are over
    # 90% of the non-embedding parameters (the rest: biases and norms), and padding only adds.
    assert training["matmul_flops"] >= 0.9 * 6 * results["non_embedding_parameters"] * training["real_tokens"]
    # The ceiling removes all non-matmul time, so it lies above what the tiny model achieves.
    assert training["ceiling_tokens_per_second"] > training["tokens_per_second"]
    assert "| training |" in done.stdout and "| evaluation |" in done.stdout


def test_the_dropout_ab_times_rotating_blocks_of_the_three_arms(tiny_model_with_dropout, conll_dir):
    cmd = [sys.executable, "bench/dropout_ab.py", "--model", str(tiny_model_with_dropout), "--data_dir",
           str(conll_dir), "--steps", "2", "--rounds", "3", "--batch_size", "8"]
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    blocks = ast.literal_eval(done.stdout.splitlines()[-2])
    assert set(blocks) == {"torch", "hidden", "all"} and all(len(b) == 3 and min(b) > 0 for b in blocks.values())
    assert re.fullmatch(r"torch [0-9.]+ s \(1\.00x\), hidden [0-9.]+ s \([0-9.]+x\), all [0-9.]+ s \([0-9.]+x\)",
                        done.stdout.splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="--reuse_cpu_memory is glibc's mallopt")
def test_the_allocator_ab_alternates_processes_of_both_arms_and_counts_their_page_faults(tiny_model, conll_dir):
    cmd = [sys.executable, "bench/allocator_ab.py", "--model", str(tiny_model), "--data_dir", str(conll_dir),
           "--rounds", "2", "--passes", "2", "--steps", "2", "--batch_size", "8"]
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    timing = r"[0-9]+\.[0-9]{2} s [0-9,]+ faults"
    process = rf"(mapped|heap): evaluation {timing}, {timing}; training {timing}"
    assert [re.fullmatch(process, line).group(1) for line in lines[:4]] == ["mapped", "heap", "heap", "mapped"]
    for part, line in zip(("evaluation", "training"), lines[4:6]):
        assert re.fullmatch(part + r": mapped [0-9.]+ s \(1\.00x\), heap [0-9.]+ s \([0-9.]+x\)", line)
    assert re.fullmatch(r"peak RSS MiB: mapped [0-9,]+/[0-9,]+, heap [0-9,]+/[0-9,]+", lines[6])


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_qkv_ab_times_both_forms_after_checking_they_compute_the_same(precision):
    cmd = [sys.executable, "bench/qkv_ab.py", "--tokens", "16", "--hidden", "32", "--rounds", "2",
           "--precision", precision]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    number = r"[0-9]+\.[0-9]{2} ms"
    assert [re.sub(number, "T", line) for line in done.stdout.splitlines()] == [
        f"{name} ({precision}): forward + backward T, forward T" for name in ("three GEMMs", "one GEMM")]


def test_the_eval_weights_ab_scores_every_arm_on_the_same_split(tiny_model, conll_dir, tmp_path):
    from helpers import random_head_model

    model = random_head_model(tiny_model, tmp_path / "model", ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"])
    cmd = [sys.executable, "bench/eval_weights_ab.py", "--model", str(model), "--data_dir", str(conll_dir),
           "--rounds", "2", "--batch_size", "8"]
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    lines = lines[next(i for i, line in enumerate(lines) if " sentences of " in line):]  # after the precision line
    assert lines[0].startswith("61 sentences of ") and lines[0].endswith("2 passes per arm, batch 8")
    rows = [line.removeprefix("| ").removesuffix(" |").split(" | ") for line in lines[3:]]
    assert [row[0] for row in rows] == [
        "fp32", "int8, every Linear, one scale a tensor", "int8, every Linear, per channel",
        "int8, FFN input only, per channel", "int8 where width is kept or widened (tokclf's --inference_dtype int8)"]
    assert rows[0][3] == "1.00x" and rows[0][5] == "+0.00"
    for row in rows:
        assert re.fullmatch(r"[0-9]+\.[0-9]{2}, [0-9]+\.[0-9]{2}", row[1]) and re.fullmatch(r"[0-9.]+x", row[3])
        assert 0.0 <= float(row[4]) <= 1.0


MEMORY_HOG = """
import pathlib, sys, time
held = b"\\x01" * (200 * 2 ** 20)  # touched pages: 200 MiB of RSS, private to this process
print("1 training sentences, 3 optimizer steps", flush=True)
time.sleep(0.6)
pathlib.Path(sys.argv[1], "train_log.jsonl").write_text("{}")
time.sleep(0.4)
"""


@pytest.mark.skipif(not os.path.exists("/usr/bin/time"), reason="bench/data_scaling.py runs under /usr/bin/time")
def test_the_scaling_bench_measures_what_a_process_holds(tmp_path):
    """bench/data_scaling.py's probe on a process of known size: the memory when tokclf's run line
    appears, the peak (polled RSS and PSS, and /usr/bin/time's), the time to the first step."""
    sys.path.insert(0, str(ROOT / "bench"))
    import data_scaling

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    row = data_scaling.timed([sys.executable, "-c", MEMORY_HOG, str(tmp_path)], env, tmp_path)
    for key in ("ready_rss_mib", "ready_pss_mib", "peak_rss_mib", "peak_pss_mib", "time_v_max_rss_mib"):
        assert 200 <= row[key] < 400, (key, row)
    assert 0.5 < row["first_step_s"] < row["process_s"]


# Nine training processes and a tokenizer trained from scratch: about 5 minutes, so outside CI (`-m benchscript`).
# What its rows measure is tested in tests/test_lora.py; this checks that the script still runs.
@pytest.mark.slow
@pytest.mark.benchscript
@pytest.mark.skipif(not os.path.exists("/usr/bin/time"), reason="bench/lora.py measures under /usr/bin/time")
def test_the_lora_bench_runs_every_row_and_measures_what_trains(tiny_model, conll_dir, tmp_path):
    pytest.importorskip("peft")
    output = tmp_path / "lora.json"
    cmd = [sys.executable, "bench/lora.py", "--model", str(tiny_model), "--data_dir", str(conll_dir), "--steps", "4",
           "--memory_steps", "2", "--decoder_steps", "4", "--batch_size", "8", "--eval_sentences", "20",
           "--work_dir", str(tmp_path / "work"), "--output", str(output)]
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(output.read_text())["rows"]
    assert rows["lora_r32_2x"]["steps"] == 2 * rows["lora_r32"]["steps"] == 8
    assert rows["full"]["trainable_parameters"] is None
    assert rows["lora_r8"]["trainable_parameters"] < rows["lora_r32"]["trainable_parameters"]
    # AdamW keeps two fp32 moments per trained weight: the adapter's state is a fraction of the full model's.
    assert rows["lora_r8"]["optimizer_state_mib"] < rows["full"]["optimizer_state_mib"] / 2
    assert rows["lora_r32_memory_2proc"]["peak_pss_mib"] > rows["lora_r32_memory_1proc"]["peak_pss_mib"]
    assert {"decoder_causal", "decoder_bidirectional", "decoder_lora_r8_causal"} <= set(rows)
    assert "| decoder_bidirectional |" in done.stdout


def test_the_startup_ab_alternates_whole_processes_of_each_command(tiny_model, conll_dir, tmp_path):
    from tokclf.cli import train_main

    model = tmp_path / "model"
    train_main(["--model_name_or_path", str(tiny_model), "--data_dir", str(conll_dir), "--output_dir", str(model),
                "--max_train_steps", "2", "--max_length", "64", "--no_report"])
    cmd = [sys.executable, "bench/startup_ab.py", "--model", str(model), "--base_model", str(tiny_model),
           "--data_dir", str(conll_dir), "--rounds", "1", "--commands", "train", "predict"]  # evaluate: as predict
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert [line.rsplit(":", 1)[0] for line in lines[:4]] == [
        f"round 1 {command} {arm}" for command in ("train", "predict") for arm in ("as_usual", "frozen")]
    assert len(lines) == 6
    for command, line in zip(("train", "predict"), lines[4:]):
        assert re.fullmatch(rf"{command}: as_usual [0-9.]+ s, frozen [0-9.]+ s \([0-9.]+x\)", line), line
