"""Real multi-process runs: two CPU processes launched as for GPUs form ONE gloo group; evaluation and
the learning-rate schedule do not depend on the number of processes; two 'machines' train together."""

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from conftest import PRECISIONS
from helpers import all_results as results, finish, free_port, launch, one_process, tokclf_frames, two_processes

pytestmark = pytest.mark.slow


def learning_rates(out_dir: Path) -> list[float]:
    return [json.loads(line)["train/learning_rate"] for line in (out_dir / "train_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module", params=PRECISIONS)
def runs(request, tiny_model, conll_dir, tmp_path_factory):
    """One 1-process and one 2-process training with the same seed and number of optimizer steps, in
    fp32 and under bf16 autocast: every property below holds in both."""
    base = tmp_path_factory.mktemp(f"dist-{request.param}")
    args = ["--model_name_or_path", str(tiny_model), "--data_dir", str(conll_dir), "--max_train_steps", "12",
            "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8", "--learning_rate", "5e-3",
            "--num_warmup_steps", "3", "--logging_steps", "1", "--max_length", "64", "--seed", "3",
            "--mixed_precision", request.param]
    single = launch(one_process(), args + ["--output_dir", str(base / "one")])
    finish(single)
    double = launch(two_processes(), args + ["--output_dir", str(base / "two")])
    finish(double)
    return {"one": base / "one", "two": base / "two", "args": args, "base": base}


def test_two_cpu_processes_train_one_model(runs):
    two = results(runs["two"])
    assert two["num_processes"] == 2 and two["total_train_batch_size"] == 16
    assert results(runs["one"])["num_processes"] == 1
    assert two["step"] == 12
    assert two["mixed_precision"] == results(runs["one"])["mixed_precision"] == runs["args"][-1]


def test_learning_rate_per_step_is_the_same_with_one_and_two_processes(runs):
    one, two = learning_rates(runs["one"]), learning_rates(runs["two"])
    assert len(one) == len(two) == 12
    assert one == pytest.approx(two, abs=0, rel=1e-12)
    assert one[2] == pytest.approx(5e-3) and one[-1] == 0.0  # warmup of 3 steps, then linear decay to 0


def test_evaluation_is_identical_with_one_and_two_processes(runs, conll_dir):
    """61 validation sentences, batch 8: the last batch is ragged and padded by even batching."""
    metrics = {}
    for name, launch_args in (("one", one_process()), ("two", two_processes())):
        target = runs["base"] / f"eval-{name}.json"
        proc = launch(launch_args, ["evaluate", "--model", str(runs["two"]), "--data_dir", str(conll_dir),
                                    "--split", "validation", "--per_device_eval_batch_size", "8",
                                    "--output_file", str(target)], script=("-m", "tokclf"))
        finish(proc)
        metrics[name] = json.loads(target.read_text())
    assert metrics["one"] == metrics["two"]
    assert sum(v for k, v in metrics["one"].items() if k.endswith("_number")) == results(runs["two"])["eval_LOC_number"] \
        + results(runs["two"])["eval_ORG_number"] + results(runs["two"])["eval_PER_number"]


def test_two_machines_train_together_like_two_local_processes(runs):
    port = str(free_port())
    out = runs["base"] / "nodes"
    procs = [launch(["--multi_gpu", "--num_machines", "2", "--num_processes", "2", "--machine_rank", str(rank),
                     "--main_process_ip", "127.0.0.1", "--main_process_port", port],
                    runs["args"] + ["--output_dir", str(out)]) for rank in (0, 1)]
    for proc in procs:
        finish(proc)
    nodes, local = results(out), results(runs["two"])
    assert nodes["num_processes"] == 2
    assert {k: v for k, v in nodes.items() if k.startswith("eval_")} == {k: v for k, v in local.items() if k.startswith("eval_")}
    a, b = load_file(out / "model.safetensors"), load_file(runs["two"] / "model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6


def test_a_rank_that_fails_brings_the_whole_launch_down_promptly(tmp_path, tiny_model, conll_dir):
    """One training sentence holds a token id the model's embedding table lacks, so only the process
    whose batch holds it raises; the other must not hang in its next collective."""
    import shutil
    import time as clock

    broken = tmp_path / "model"
    shutil.copytree(tiny_model, broken)
    config = json.loads((broken / "config.json").read_text())
    vocab = json.loads((broken / "tokenizer.json").read_text())["model"]["vocab"]
    config["vocab_size"] = vocab["##0"]  # pieces from "##0" on (digits, never in the data) lose their rows
    (broken / "config.json").write_text(json.dumps(config))
    data = tmp_path / "data"
    data.mkdir()
    lines = (conll_dir / "eng.train").read_text().splitlines()
    lines += ["", "x9 NN I-NP O", ""]  # "x" "##9": the one sentence with such a piece
    (data / "eng.train").write_text("\n".join(lines) + "\n")
    shutil.copy(conll_dir / "eng.testa", data / "eng.testa")
    started = clock.time()
    proc = launch(two_processes(), ["--model_name_or_path", str(broken), "--data_dir", str(data), "--output_dir",
                                    str(tmp_path / "out"), "--per_device_train_batch_size", "8", "--max_length", "64",
                                    "--ignore_mismatched_sizes", "--num_train_epochs", "1"])
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode != 0
    assert "IndexError" in out or "index out of range" in out
    assert clock.time() - started < 150


def test_the_multi_cpu_launch_config_starts_two_processes_in_one_group(tiny_model, conll_dir, tmp_path):
    """launch/multi-cpu.yaml as the README gives it: accelerate's own MULTI_CPU type would start one."""
    out = tmp_path / "out"
    proc = launch(["--config_file", "launch/multi-cpu.yaml", "--main_process_port", str(free_port())],
                  ["--model_name_or_path", str(tiny_model), "--data_dir", str(conll_dir), "--output_dir", str(out),
                   "--max_train_steps", "2", "--per_device_train_batch_size", "8", "--max_length", "64"])
    finish(proc)
    assert results(out)["num_processes"] == 2 and results(out)["total_train_batch_size"] == 16


FSDP_ON_TWO_CPUS = """compute_environment: LOCAL_MACHINE
distributed_type: FSDP
fsdp_config:
  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
  fsdp_sharding_strategy: FULL_SHARD
  fsdp_version: 1
num_processes: 2
num_machines: 1
machine_rank: 0
mixed_precision: 'no'
main_training_function: main
"""


@pytest.mark.paths
def test_an_fsdp_launch_on_a_cpu_machine_is_refused_in_one_line(tiny_model, conll_dir, tmp_path):
    """Before the model loads; tokclf's processes exit 2 and say it once. The torchrun launcher under
    `accelerate launch` then prints its own ChildFailedError report and exits 1: that process is torch's,
    and no training script can change what it prints or returns."""
    config = tmp_path / "fsdp.yaml"
    config.write_text(FSDP_ON_TWO_CPUS)
    proc = launch(["--config_file", str(config), "--main_process_port", str(free_port())],
                  ["--model_name_or_path", str(tiny_model), "--data_dir", str(conll_dir), "--output_dir",
                   str(tmp_path / "out"), "--max_train_steps", "2"])
    out, _ = proc.communicate(timeout=240)
    ours = [line for line in out.splitlines() if line.startswith("error:")]
    assert ours == ["error: the launch config's distributed_type is FSDP, which needs GPUs, and this machine "
                    "has none. On CPUs use `accelerate launch --config_file launch/multi-cpu.yaml` (processes in "
                    "one gloo group) or launch/cpu.yaml (one process)."], out[-3000:]
    assert proc.returncode != 0 and "exitcode  : 2" in out  # the worker's status, as torch's report gives it
    assert not tokclf_frames(out) and "meta tensor" not in out, out[-3000:]  # no traceback through tokclf, nothing loaded
