"""Python's garbage collector over a tokclf process (tokclf/runtime/collector.py): the process entry points
pause it through startup and freeze what startup built; callers inside another program are left alone."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys

import pytest

from helpers import ENTRY, ROOT
from tokclf.runtime.collector import FREEZE_STARTUP_ENV

# Runs a command through its real entry point in a fresh process, with the functions that start the command's
# work wrapped to record the collector's state there (after setup), then prints those records.
DRIVER = """
import gc, importlib, json, runpy, sys
seen = {{}}
def record(module, function):
    target = importlib.import_module(module)
    real = getattr(target, function)
    def wrapped(*args, **kwargs):
        seen[function] = {{"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}}
        return real(*args, **kwargs)
    setattr(target, function, wrapped)
for module, function in {targets!r}:
    record(module, function)
sys.argv = {argv!r}
try:
    {run}
finally:
    print("COLLECTOR " + json.dumps(seen))
"""
# command -> the functions that do its work, once startup is done: (module, function)
WORK = {"train": [("tokclf.training.recipe", "fit_run")], "evaluate": [("tokclf.evaluate", "evaluate_split")],
        "predict": [("tokclf.predict", "_tag_file")],
        # tune: the search starts, then each trial trains (its setup must freeze nothing: trials come and go)
        "tune": [("tokclf.tuning.command", "lead"), ("tokclf.training.recipe", "fit_run")]}


def run_entry(command: str, args: list[str], env_value: str | None) -> dict:
    if command == "train":  # the script a user gives `accelerate launch`
        argv, run = [ENTRY, *args], f"runpy.run_path({ENTRY!r}, run_name='__main__')"
    else:  # `tokclf evaluate|predict|tune`, the console script's module
        argv, run = ["tokclf", command, *args], "runpy.run_module('tokclf', run_name='__main__', alter_sys=True)"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env.pop(FREEZE_STARTUP_ENV, None)
    if env_value is not None:
        env[FREEZE_STARTUP_ENV] = env_value
    code = DRIVER.format(targets=WORK[command], argv=argv, run=run)
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.rsplit("COLLECTOR ", 1)[1])


@pytest.fixture(scope="module")
def saved_model(tiny_model, conll_dir, tmp_path_factory):
    from tokclf.cli import train_main

    out = tmp_path_factory.mktemp("collector-model")
    train_main(["--model_name_or_path", str(tiny_model), "--data_dir", str(conll_dir), "--output_dir", str(out),
                "--max_train_steps", "2", "--max_length", "64", "--stride", "16", "--no_report"])
    return out


def command_args(command: str, saved_model, tiny_model, conll_dir, out) -> list[str]:
    if command == "train":
        return ["--model_name_or_path", str(tiny_model), "--data_dir", str(conll_dir), "--output_dir", str(out),
                "--max_train_steps", "2", "--max_length", "64", "--stride", "16", "--no_report"]
    if command == "evaluate":
        return ["--model", str(saved_model), "--data_dir", str(conll_dir), "--split", "validation"]
    if command == "tune":
        return ["--model_name_or_path", str(tiny_model), "--data_dir", str(conll_dir), "--output_dir", str(out),
                "--num_train_epochs", "1", "--n_trials", "1", "--max_length", "64", "--stride", "16", "--no_report",
                "--plots", "false"]
    return ["--model", str(saved_model), "--input", str(conll_dir / "eng.testb"), "--output", str(out)]


@pytest.mark.parametrize("command, env_value", [("train", None), ("train", "0"), ("evaluate", None), ("predict", None),
                                               ("tune", None)])
def test_entry_points_freeze_startup_then_collect(command, env_value, saved_model, tiny_model, conll_dir, tmp_path):
    if command == "tune":
        pytest.importorskip("optuna", reason="tokclf tune needs the tune extra (optuna)")
    seen = run_entry(command, command_args(command, saved_model, tiny_model, conll_dir, tmp_path / "out"), env_value)
    assert set(seen) == {function for _, function in WORK[command]}, seen
    first = seen[WORK[command][0][1]]
    if env_value == "0":  # Python's collection as usual: nothing frozen, never paused
        assert first == {"enabled": True, "frozen": 0}, seen
    else:  # the modules, classes and model that startup built are in the permanent generation; collection is on
        assert first["enabled"] and first["frozen"] > 50_000, seen
    if command == "tune":  # the trial's setup froze nothing more (frozen objects freed meanwhile leave the count)
        assert seen["fit_run"]["enabled"] and seen["fit_run"]["frozen"] <= first["frozen"], seen


def test_callers_inside_a_program_are_left_alone(base_args):
    """tokclf.cli's functions are called in-process (by tests, notebooks): no pause, nothing frozen."""
    from tokclf.cli import train_main

    before = gc.get_freeze_count()
    train_main(base_args + ["--max_train_steps", "2"])
    assert gc.isenabled() and gc.get_freeze_count() == before


def test_a_command_that_fails_at_startup_turns_the_collector_back_on():
    """The console entry pauses the collector; bad options end the command before its setup is done."""
    from tokclf.__main__ import main

    before = gc.get_freeze_count()
    with pytest.raises(SystemExit) as stopped:
        main(["train", "--model_name_or_path", "x", "--no_such_option", "1"])
    assert stopped.value.code == 2
    assert gc.isenabled() and gc.get_freeze_count() == before
