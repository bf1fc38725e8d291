"""Faults a long job meets: NaNs, a disk that refuses a checkpoint, SIGTERM from a scheduler."""

import errno
import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch

import tokclf.training.steps
from helpers import ROOT, max_weight_diff, run_to_end, start
from tokclf.config import parse_config
from tokclf.errors import TrainingError
from tokclf.training.recipe import train


def nan_on_calls(monkeypatch, calls: set[int]):
    """Make the loss of the given micro-batch calls (1-based) NaN, as a numeric blow-up would."""
    real, counter = tokclf.training.steps.token_losses, {"n": 0}

    def poisoned(model, batch):
        counter["n"] += 1
        loss_sum, tokens = real(model, batch)
        return (loss_sum * float("nan"), tokens) if counter["n"] in calls else (loss_sum, tokens)

    monkeypatch.setattr(tokclf.training.steps, "token_losses", poisoned)


@pytest.mark.parametrize("optim", ["adamw_torch_fused", "adamw_torch"])  # skipped on the device / by the loop
def test_a_nan_step_is_skipped_and_counted(base_args, monkeypatch, optim):
    nan_on_calls(monkeypatch, {5})
    results = train(parse_config(base_args + ["--num_train_epochs", "1", "--optim", optim]))
    assert results["skipped_steps"] == 1 and results["step"] == 15 - 1
    from safetensors.torch import load_file
    saved = load_file(Path(parse_config(base_args).output.output_dir) / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in saved.values())


def test_repeated_nan_steps_stop_with_the_last_checkpoint_intact(base_args, monkeypatch):
    nan_on_calls(monkeypatch, set(range(7, 1000)))
    out = Path(parse_config(base_args).output.output_dir)
    with pytest.raises(TrainingError, match=r"3 optimizer steps in a row had a non-finite loss"):
        train(parse_config(base_args + ["--max_bad_steps", "3", "--checkpointing_steps", "2"]))
    state = json.loads((out / "step_6" / "loop_state.json").read_text())
    assert state["global_step"] == 6 and not (out / "step_8").exists()
    monkeypatch.undo()
    resumed = train(parse_config(base_args + ["--checkpointing_steps", "2", "--resume_from_checkpoint", "latest"]))
    assert resumed["step"] == 30 and resumed["skipped_steps"] == 0


def refuse_saves(monkeypatch, from_call: int):
    import accelerate

    real, counter = accelerate.Accelerator.save_state, {"n": 0}

    def save_state(self, output_dir=None, **kwargs):
        counter["n"] += 1
        if counter["n"] >= from_call:
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            (Path(output_dir) / "partial.bin").write_bytes(b"x")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, output_dir, **kwargs)

    monkeypatch.setattr(accelerate.Accelerator, "save_state", save_state)


def test_failed_save_continues_when_asked_and_keeps_the_older_checkpoint(base_args, monkeypatch, capsys):
    refuse_saves(monkeypatch, from_call=2)
    results = train(parse_config(base_args + ["--checkpointing_steps", "10", "--on_save_error", "continue"]))
    out = Path(parse_config(base_args).output.output_dir)
    assert results["step"] == 30
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(("step_", ".tmp-"))) == ["step_10"]
    assert "could not write checkpoint step_20" in capsys.readouterr().out


def test_failed_save_stops_by_default_and_the_run_resumes(base_args, monkeypatch):
    refuse_saves(monkeypatch, from_call=2)
    with pytest.raises(TrainingError, match=r"could not write checkpoint step_20 .*No space left on device"):
        train(parse_config(base_args + ["--checkpointing_steps", "10"]))
    monkeypatch.undo()
    resumed = train(parse_config(base_args + ["--checkpointing_steps", "10", "--resume_from_checkpoint", "latest"]))
    assert resumed["step"] == 30


@pytest.mark.paths
def test_sigterm_to_a_plain_python_run_exits_with_status_75(base_args):
    import subprocess
    import sys

    out = Path(parse_config(base_args).output.output_dir)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(ROOT / "train_token_classification.py"), *base_args,
                             "--num_train_epochs", "50", "--logging_steps", "1"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not ((out / "train_log.jsonl").is_file() and (out / "train_log.jsonl").read_text().count("\n") >= 3):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 75, output[-2000:]
    assert len(list(out.glob("step_*/loop_state.json"))) == 1


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_sigterm_checkpoints_exits_75_and_resumes_exactly(resume_args, tmp_path, processes):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    args = resume_args + ["--checkpointing_steps", "1000"]  # no scheduled checkpoint: the signal makes one
    run_to_end(args + ["--output_dir", str(straight)], processes)
    # Log every 2nd step: the steps between are booked a step late, so a stop can come between too.
    proc = start(args + ["--output_dir", str(stopped), "--logging_steps", "2"], processes)
    log = stopped / "train_log.jsonl"
    deadline = time.time() + 300
    while not (log.is_file() and log.read_text().count("\n") >= 3):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert "preempted: stopped on SIGTERM" in output, output[-2000:]
    # A plain `python train_token_classification.py` exits 75; `accelerate launch` reports its own status.
    assert proc.returncode != 0
    assert not (stopped / "all_results.json").exists()
    assert [p.name for p in stopped.glob("step_*")]
    run_to_end(args + ["--output_dir", str(stopped), "--resume_from_checkpoint", "latest"], processes)
    assert max_weight_diff(straight, stopped) <= 1e-5


def test_a_step_is_booked_after_the_next_windows_work_unless_something_follows_it(base_args, monkeypatch):
    """Reading whether a step's gradient was finite waits for the step to finish on the device, so the
    loop reads it only once the next window's forward and backward are queued; at once only where a
    log line, a checkpoint or the end follows."""
    events, real_losses, real_read = [], tokclf.training.steps.token_losses, tokclf.training.steps.WindowResult.read

    def losses(model, batch):
        events.append("window")
        return real_losses(model, batch)

    def read(self):
        events.append("read")
        return real_read(self)

    monkeypatch.setattr(tokclf.training.steps, "token_losses", losses)
    monkeypatch.setattr(tokclf.training.steps.WindowResult, "read", read)
    train(parse_config(base_args + ["--max_train_steps", "7", "--logging_steps", "3"]))
    # steps 1, 2, 4, 5 are read during the next window; 3 and 6 (log lines) and 7 (the last) at once
    assert "".join("w" if e == "window" else "r" for e in events) == "wwrwrrwwrwrrwr"
