"""Runs that survive: SIGKILL and resume gives the same weights and metrics; incomplete checkpoints
are never picked; resuming a different run is refused; best model, early stopping, checkpoint limits."""

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from helpers import all_results, kill_after, kill_everything, max_weight_diff, run_to_end, start
from tokclf.config import parse_config
from tokclf.errors import ConfigError
from tokclf.training.recipe import train

def eval_metrics(out: Path) -> dict:
    return {k: v for k, v in json.loads((out / "all_results.json").read_text()).items()
            if k.startswith(("eval_", "test_")) or k in ("step", "epoch", "train_loss")}


@pytest.mark.slow
# bf16 with 1 process: exactness does not depend on the precision, and 2 bf16 processes cost CI most.
@pytest.mark.parametrize("processes, precision", [(1, "no"), (2, "no"), (1, "bf16")])
def test_sigkill_and_resume_ends_like_an_uninterrupted_run(resume_args, tmp_path, processes, precision):
    """Exact in bf16 as in fp32: the resumed run does the same operations in the same order."""
    resume_args = resume_args + ["--mixed_precision", precision]
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    run_to_end(resume_args + ["--output_dir", str(straight)], processes)
    # 240 sentences in batches of 8 per process, 2 batches a step: killed in epoch 1 (1 process) or 2.
    kill_after(resume_args + ["--output_dir", str(broken)], processes, broken / "step_20")
    assert not (broken / "all_results.json").exists()
    # A save cut short leaves only a temporary folder, and a folder without its loop state is not complete.
    (broken / ".tmp-step_90").mkdir()
    (broken / "step_90").mkdir(exist_ok=True)
    run_to_end(resume_args + ["--output_dir", str(broken), "--resume_from_checkpoint", "latest"], processes)
    assert max_weight_diff(straight, broken) == 0.0
    assert eval_metrics(straight) == eval_metrics(broken)
    assert all_results(broken)["mixed_precision"] == precision
    assert (broken / "results.jsonl").read_text().count("\n") == 4


def kill_during_a_save(args, processes, out: Path) -> str:
    """Start a run and SIGKILL its process group while a checkpoint is being written, i.e. while its
    temporary folder exists. Returns the name of the checkpoint cut short. A save of the tiny model
    lasts milliseconds, so if the rename wins the race (the folder is complete after the kill) the
    attempt is repeated from scratch."""
    for _ in range(5):
        shutil.rmtree(out, ignore_errors=True)
        proc = start(args + ["--output_dir", str(out)], processes)
        deadline, caught = time.time() + 300, None
        while caught is None:
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            assert time.time() < deadline
            names = os.listdir(out) if out.is_dir() else []
            caught = next((n for n in names if n.startswith(".tmp-step_") and n != ".tmp-step_10"), None)
            if caught is None:
                time.sleep(0.0005)
        kill_everything(proc)
        name = caught[len(".tmp-"):]
        if (out / caught).is_dir() and not (out / name).exists():
            return name
    pytest.fail("five runs finished every save before the kill landed")


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_sigkill_during_a_save_resumes_from_the_checkpoint_before(resume_args, tmp_path, processes):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    run_to_end(resume_args + ["--output_dir", str(straight)], processes)
    cut = kill_during_a_save(resume_args, processes, broken)
    steps_done = sorted(int(p.name.split("_")[1]) for p in broken.glob("step_*"))
    assert steps_done and steps_done[-1] < int(cut.split("_")[1])
    out = run_to_end(resume_args + ["--output_dir", str(broken), "--resume_from_checkpoint", "latest"], processes)
    resumed = [line for line in out.splitlines() if "resumed from" in line]
    assert resumed and f"step_{steps_done[-1]}: step {steps_done[-1]}" in resumed[0], (cut, steps_done, resumed, out[:3000])
    assert max_weight_diff(straight, broken) <= 1e-5
    assert eval_metrics(straight) == pytest.approx(eval_metrics(broken), rel=1e-6)
    assert not list(broken.glob(".tmp-*"))


def test_in_process_resume_from_every_kind_of_checkpoint(resume_args, tmp_path):
    """Mid-epoch (step_N), at an epoch end before its evaluation, after it (epoch_N), and at the end."""
    resume_args = resume_args + ["--final_model", "last"]
    straight = tmp_path / "straight"
    train(parse_config(resume_args + ["--output_dir", str(straight)]))
    # 15 steps an epoch: mid-epoch 0, epoch 1 done but not yet evaluated, the final step.
    for checkpoint in ("step_10", "step_30", "step_60"):
        assert (straight / checkpoint / "loop_state.json").is_file()
        resumed = tmp_path / f"from-{checkpoint}"
        train(parse_config(resume_args + ["--output_dir", str(resumed), "--resume_from_checkpoint",
                                          str(straight / checkpoint)]))
        assert max_weight_diff(straight, resumed) <= 1e-5, checkpoint
        assert eval_metrics(straight)["eval_f1"] == eval_metrics(resumed)["eval_f1"]


def test_resuming_a_finished_run_ends_cleanly(resume_args, tmp_path):
    out = tmp_path / "run"
    first = train(parse_config(resume_args + ["--output_dir", str(out), "--checkpointing_steps", "epoch"]))
    again = train(parse_config(resume_args + ["--output_dir", str(out), "--checkpointing_steps", "epoch",
                                              "--resume_from_checkpoint", "latest"]))
    assert again["step"] == first["step"] and again["eval_f1"] == first["eval_f1"]
    assert (out / "results.jsonl").read_text().count("\n") == 4


def test_resume_with_other_geometry_or_missing_checkpoint_is_refused(resume_args, tmp_path):
    out = tmp_path / "run"
    train(parse_config(resume_args + ["--output_dir", str(out), "--num_train_epochs", "1"]))
    with pytest.raises(ConfigError, match=r"per_device_train_batch_size: checkpoint 8, now 4"):
        train(parse_config(resume_args + ["--output_dir", str(out), "--num_train_epochs", "1",
                                          "--resume_from_checkpoint", "latest", "--per_device_train_batch_size", "4"]))
    with pytest.raises(ConfigError, match="no such folder"):
        train(parse_config(resume_args + ["--output_dir", str(out), "--resume_from_checkpoint", str(tmp_path / "nope")]))
    (out / "step_99").mkdir()
    with pytest.raises(ConfigError, match="incomplete checkpoint"):
        train(parse_config(resume_args + ["--output_dir", str(out), "--resume_from_checkpoint", str(out / "step_99")]))


def test_best_model_early_stopping_and_checkpoint_limit(base_args, tmp_path):
    out = tmp_path / "run"
    # A learning rate this small changes nothing the metric can see: no evaluation improves on the first.
    results = train(parse_config(base_args + ["--output_dir", str(out), "--num_train_epochs", "5",
                                              "--learning_rate", "1e-12", "--early_stopping_patience", "1",
                                              "--checkpointing_steps", "epoch", "--checkpoints_total_limit", "1"]))
    assert results["stopped_early"] and results["step"] == 2 * 15 and results["best_step"] == 15
    # Limit 1 keeps the newest checkpoint and the best evaluation's (epoch 0), deleting none here.
    assert sorted(p.name for p in out.glob("epoch_*")) == ["epoch_0", "epoch_1"]
    best = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    assert results["eval_f1"] == best["eval_f1"] and results["final_model"] == "best"
    assert max_weight_diff(out / "best", out) == 0.0
    from huggingface_hub import ModelCard
    card = ModelCard.load(out / "README.md")
    values = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert values[("validation", "f1")] == pytest.approx(results["eval_f1"])
    assert values[("test", "precision")] == pytest.approx(results["test_precision"])


def test_checkpoint_limit_keeps_newest(base_args, tmp_path):
    out = tmp_path / "run"
    train(parse_config(base_args + ["--output_dir", str(out), "--num_train_epochs", "3", "--checkpointing_steps", "10",
                                    "--checkpoints_total_limit", "2", "--final_model", "last"]))
    names = sorted(p.name for p in out.iterdir() if p.name.startswith("step_"))
    # 45 steps, checkpoints at 10, 20, 30, 40: the newest two. The best evaluation's step (15, 30 or
    # 45, at an epoch's end) is protected, but no older checkpoint was taken at 15.
    assert names == ["step_30", "step_40"]
    for name in names:
        assert (out / name / "args.json").is_file() and (out / name / "config.yaml").is_file()
    assert not list(out.glob(".tmp-*"))
