"""`tokclf tune`: the search space and its checks, trials as training runs in their folders, pruning,
resume, the best model, and (slow) several workers on one study, a killed worker, several processes."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import ROOT, kill_everything, launch, two_processes
from tokclf.errors import ConfigError
from tokclf.tuning.space import default_space, load_space

optuna = pytest.importorskip("optuna")

from optuna.trial import TrialState  # noqa: E402

from tokclf.tuning.command import tune_command  # noqa: E402
from tokclf.tuning.study import make_storage  # noqa: E402

# Only the learning rate varies: the trials differ by the rate the test enqueues, nothing else.
LR_ONLY = ("learning_rate: {type: float, low: 1.0e-7, high: 0.1, log: true}\n"
           "per_device_train_batch_size: null\nnum_train_epochs: null\nwarmup_ratio: null\nweight_decay: null\n")
GOOD, BAD = 1e-2, 1e-7  # a rate that learns in an epoch on the fixture data, and one that learns nothing


@pytest.fixture
def space_file(tmp_path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(LR_ONLY)
    return path


def tune_args(base_args, space_file, *extra, seed=True) -> list[str]:
    return [*base_args, "--num_train_epochs", "3", "--search_space", str(space_file), "--pruner_startup_trials", "1",
            "--pruner_warmup_epochs", "0", *(["--sampler_seed", "0"] if seed else []), *extra]


def enqueue(storage: str, *rates: float, name: str = "tokclf") -> None:
    """The study made beforehand with fixed first trials, so that which trial is pruned is known."""
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True)
    for rate in rates:
        study.enqueue_trial({"learning_rate": rate})


def trials(storage: str, name: str = "tokclf"):
    return optuna.load_study(study_name=name, storage=make_storage(storage, 60)).trials


# ------------------------------------------------------------------------------------------------------
# The search space


def test_default_space_per_task_and_for_lora():
    ner, pos = default_space("ner", lora=False), default_space("pos", lora=False)
    assert set(ner) == {"learning_rate", "per_device_train_batch_size", "num_train_epochs", "warmup_ratio",
                        "weight_decay"}
    assert ner["learning_rate"]["log"] and pos["num_train_epochs"]["high"] < ner["num_train_epochs"]["high"]
    lora = {p.name: p for p in load_space(None, "ner", lora=True)}
    assert lora["lora_r"].choices and lora["learning_rate"].low > ner["learning_rate"]["low"]


def test_a_space_file_replaces_and_drops_defaults(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("learning_rate: {type: float, low: 1e-5, high: 3e-5}\nweight_decay: null\n"
                    "per_device_train_batch_size: {type: categorical, choices: [4]}\n")
    space = {p.name: p for p in load_space(str(path), "ner", lora=False)}
    assert "weight_decay" not in space and space["per_device_train_batch_size"].choices == (4,)
    assert (space["learning_rate"].low, space["learning_rate"].high) == (1e-5, 3e-5)  # 1e-5 is a string in YAML 1.1


@pytest.mark.parametrize("entry, says", [
    ("learnin_rate: {type: float, low: 0.1, high: 0.2}", "entry 'learnin_rate': not a training option"),
    ("output_dir: {type: categorical, choices: [a]}", "entry 'output_dir': not a training option"),
    ("lora_r: {type: categorical, choices: [4]}", "entry 'lora_r': LoRA options are tuned only with --peft lora"),
    ("learning_rate: {type: float, low: 0.2, high: 0.1}", "entry 'learning_rate': low 0.2 is above high 0.1"),
    ("learning_rate: {type: float, low: 0, high: 0.1, log: true}", "log: true needs low > 0"),
    ("learning_rate: {type: float, low: x, high: 0.1}", "low must be a finite number, got 'x'"),
    ("learning_rate: {type: float, high: 0.1}", "type float needs low"),
    ("learning_rate: {type: uniform, low: 0.1, high: 0.2}", "entry 'learning_rate': each entry is"),
    ("learning_rate: {type: float, low: 0.1, high: 0.2, lgo: true}", "unknown key(s) ['lgo']"),
    ("num_train_epochs: {type: float, low: 1, high: 2}", "the option is int, not float"),
    ("num_train_epochs: {type: int, low: 1, high: 2.5}", "whole numbers"),
    ("per_device_train_batch_size: {type: categorical, choices: [16, big]}", "choice 'big' is not a int"),
    ("per_device_train_batch_size: {type: categorical, choices: []}", "non-empty list"),
    ("lr_scheduler_type: {type: categorical, choices: [linear, cosine]}", None),
])
def test_a_bad_space_entry_is_named_with_its_file(tmp_path, entry, says):
    path = tmp_path / "space.yaml"
    path.write_text(entry + "\n")
    if says is None:
        load_space(str(path), "ner", lora=False)
        return
    with pytest.raises(ConfigError) as err:
        load_space(str(path), "ner", lora=False)
    assert str(path) in str(err.value) and says in str(err.value), str(err.value)


def test_the_storage_rule(tmp_path):
    from optuna.storages import JournalStorage, RDBStorage

    assert isinstance(make_storage(str(tmp_path / "s.journal"), 60), JournalStorage)
    assert isinstance(make_storage(f"sqlite:///{tmp_path / 's.db'}", 60), RDBStorage)
    with pytest.raises(ConfigError, match="neither a URL nor a journal file"):
        make_storage(str(tmp_path / "s.db"), 60)


def test_a_journal_trial_whose_local_worker_is_gone_is_marked_failed(tmp_path):
    """Journal storage has no heartbeat: a RUNNING trial of a dead process on this machine fails."""
    from tokclf.tuning.study import WORKER_ATTR, fail_dead_workers_trials, worker_id

    study = optuna.create_study(storage=make_storage(str(tmp_path / "s.journal"), 60), direction="maximize")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead, alive = study.ask(), study.ask()
    study._storage.set_trial_system_attr(dead._trial_id, WORKER_ATTR, worker_id().rsplit(":", 1)[0] + f":{gone.pid}")
    study._storage.set_trial_system_attr(alive._trial_id, WORKER_ATTR, worker_id())
    assert fail_dead_workers_trials(study) == [dead.number]
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.RUNNING]


def test_without_optuna_tune_stops_with_one_line(tmp_path):
    code = "import sys; sys.modules['optuna'] = None; from tokclf.__main__ import main; main(['tune', '--n_trials', '1'])"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2
    assert done.stderr.strip() == "error: tokclf tune needs optuna: pip install 'tokclf[tune]'", done.stderr


# ------------------------------------------------------------------------------------------------------
# Trials in this process


def test_trials_train_in_their_folders_prune_resume_and_leave_the_best_model(base_args, space_file, tmp_path):
    out = tmp_path / "out"
    storage = f"sqlite:///{out / 'optuna.db'}"  # the default storage
    out.mkdir()
    enqueue(storage, GOOD, BAD)
    summary = tune_command(tune_args(base_args, space_file, "--n_trials", "2"))
    done = trials(storage)
    assert [t.state for t in done] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert done[1].params == {"learning_rate": BAD} and list(done[1].intermediate_values) == [0]
    assert len(done[0].intermediate_values) == 3 and done[0].value == max(done[0].intermediate_values.values())
    for t in done:  # each trial an ordinary training run in its own folder
        assert json.loads((out / "trials" / f"{t.number:03d}" / "args.json").read_text())["learning_rate"] == \
            t.params["learning_rate"]
    assert summary["best_trial"] == 0 and summary["pruned_share"] == 0.5 and summary["states"]["PRUNED"] == 1
    assert json.loads((out / "tune_summary.json").read_text()) == summary
    assert "| 1 | PRUNED |" in (out / "tune_summary.md").read_text()
    for plot in ("history", "parallel_coordinate"):
        assert (out / "plots" / f"{plot}.html").stat().st_size and (out / "plots" / f"{plot}.png").stat().st_size

    from transformers import pipeline
    tagger = pipeline("token-classification", model=str(out / "best_model"), aggregation_strategy="simple")
    assert {e["entity_group"] for e in tagger("John Smith went to Paris")} <= {"PER", "LOC", "ORG"}
    assert json.loads((out / "best_model" / "tune_trial.json").read_text())["trial"] == 0

    tune_command(tune_args(base_args, space_file, "--n_trials", "2"))  # the same command again: nothing to do
    assert len(trials(storage)) == 2
    tune_command(tune_args(base_args, space_file, "--n_trials", "3"))  # a larger target: the missing one
    done = trials(storage)
    assert len(done) == 3 and done[2].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert (out / "trials" / "002" / "all_results.json").is_file()


def test_a_training_option_out_of_range_in_a_trial_is_a_config_error(base_args, tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("warmup_ratio: {type: float, low: 2.0, high: 3.0}\n")
    with pytest.raises(ConfigError, match="warmup_ratio"):
        tune_command([*base_args, "--n_trials", "1", "--search_space", str(path), "--plots", "false"])


def test_a_search_whose_trials_keep_failing_stops(base_args, space_file, tmp_path, monkeypatch):
    from tokclf.errors import TrainingError
    from tokclf.tuning import trials as trials_module

    def diverges(*args, **kwargs):
        raise TrainingError("5 non-finite steps in a row")

    monkeypatch.setattr(trials_module, "run_trial", diverges)
    with pytest.raises(TrainingError, match="the last 3 trials of this worker failed"):
        tune_command(tune_args(base_args, space_file, "--n_trials", "10", "--plots", "false"))
    done = trials(f"sqlite:///{tmp_path / 'out' / 'optuna.db'}")
    assert [t.state for t in done] == [TrialState.FAIL] * 3
    assert json.loads((tmp_path / "out" / "tune_summary.json").read_text())["states"]["FAIL"] == 3


# ------------------------------------------------------------------------------------------------------
# Real processes


def start_worker(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "tokclf", "tune", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ok(proc: subprocess.Popen, timeout=300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("storage_kind", ["journal", "sqlite"])
def test_two_workers_share_one_study_without_duplicates(base_args, space_file, tmp_path, storage_kind):
    out = tmp_path / "out"
    storage = str(tmp_path / "study.journal") if storage_kind == "journal" else f"sqlite:///{tmp_path / 'study.db'}"
    args = tune_args(base_args, space_file, "--n_trials", "4", "--storage", storage, "--num_train_epochs", "1",
                     "--pruner", "none", "--plots", "false", seed=False)  # two workers, two sequences of suggestions
    workers = [start_worker(args) for _ in range(2)]
    logs = [wait_ok(w) for w in workers]
    done = trials(storage)
    assert sorted(t.number for t in done) == [0, 1, 2, 3] and all(t.state == TrialState.COMPLETE for t in done)
    assert all((out / "trials" / f"{n:03d}" / "all_results.json").is_file() for n in range(4))
    assert all("trial" in log for log in logs) and (out / "best_model" / "config.json").is_file()


@pytest.mark.slow
def test_a_killed_worker_leaves_its_trial_failed_and_a_rerun_completes_the_study(base_args, space_file, tmp_path):
    out = tmp_path / "out"
    storage = f"sqlite:///{out / 'optuna.db'}"
    args = tune_args(base_args, space_file, "--n_trials", "2", "--heartbeat_interval", "1", "--pruner", "none",
                     "--plots", "false")
    worker = start_worker(args)
    deadline = time.time() + 300
    while not (out / "trials" / "000" / "results.jsonl").is_file():  # mid-trial: one evaluation done
        assert worker.poll() is None and time.time() < deadline, worker.stdout.read()[-3000:]
        time.sleep(0.05)
    kill_everything(worker)
    assert [t.state for t in trials(storage)] == [TrialState.RUNNING]  # as the kill left it
    time.sleep(2.5)  # past the grace period (2 heartbeats) of the killed trial
    wait_ok(start_worker(args))
    done = trials(storage)
    assert done[0].state == TrialState.FAIL
    finished = [t for t in done if t.state == TrialState.COMPLETE]
    assert len(finished) == 2
    retried = [t for t in finished if t.system_attrs.get("failed_trial") == done[0].number]
    assert len(retried) == 1 and retried[0].params == done[0].params  # retried once with its parameters


@pytest.mark.slow
def test_a_trial_of_two_processes_reports_from_rank_0_and_prunes_on_every_rank(base_args, space_file, tmp_path):
    out = tmp_path / "out"
    storage = f"sqlite:///{out / 'optuna.db'}"
    out.mkdir()
    enqueue(storage, GOOD, BAD)
    proc = launch(two_processes(), ["tune", *tune_args(base_args, space_file, "--n_trials", "2", "--plots", "false")],
                  script=("-m", "tokclf"))
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log[-3000:]
    done = trials(storage)
    assert [t.state for t in done] == [TrialState.COMPLETE, TrialState.PRUNED], log[-3000:]
    assert json.loads((out / "trials" / "000" / "all_results.json").read_text())["num_processes"] == 2
    pruned = json.loads((out / "trials" / "001" / "all_results.json").read_text())
    assert pruned["stopped_by_caller"] and pruned["epoch"] == 0  # both ranks stopped after epoch 0


def test_a_lora_search_tunes_the_rank(base_args, tmp_path):
    pytest.importorskip("peft")
    path = tmp_path / "space.yaml"
    path.write_text("lora_r: {type: categorical, choices: [2]}\nper_device_train_batch_size: null\n"
                    "num_train_epochs: null\nwarmup_ratio: null\nweight_decay: null\n")
    summary = tune_command([*base_args, "--num_train_epochs", "1", "--peft", "lora", "--n_trials", "1",
                            "--search_space", str(path), "--plots", "false"])
    out = tmp_path / "out"
    assert summary["best_params"]["lora_r"] == 2 and 1e-4 <= summary["best_params"]["learning_rate"] <= 5e-3
    assert json.loads((out / "trials" / "000" / "args.json").read_text())["lora_r"] == 2
    assert (out / "best_model" / "config.json").is_file()  # the merged model, as tokclf train leaves it


@pytest.mark.slow
def test_the_bench_row(tiny_model, conll_dir, tmp_path):
    config = tmp_path / "recipe.yaml"
    config.write_text(f"model_name_or_path: {tiny_model}\ndata_dir: {conll_dir}\nmax_length: 64\n"
                      "per_device_train_batch_size: 16\nlearning_rate: 1.0e-2\nseed: 7\n")
    output = tmp_path / "tune.json"
    done = subprocess.run([sys.executable, "bench/tune.py", "--config", str(config), "--n_trials", "2", "--cut",
                           "--max_train_samples", "64", "--max_eval_samples", "32", "--max_train_steps", "8",
                           "--work_dir", str(tmp_path / "work"), "--output", str(output)],
                          cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    row = json.loads(output.read_text())
    assert row["n_trials"] == 2 and sum(row["states"].values()) == 2 and 0 <= row["pruned_share"] <= 1
    assert 0 <= row["default_eval_f1"] <= 1 and 0 <= row["best_eval_f1"] <= 1 and row["tune_wall_seconds"] > 0
    assert row["cut"] == ["--max_train_samples", "64", "--max_eval_samples", "32", "--max_train_steps", "8"]
