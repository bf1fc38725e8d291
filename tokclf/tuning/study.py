"""The Optuna study of `tokclf tune`: its storage (SQLite in the output folder by default, any RDB URL, or
a journal file), its pruner and sampler, and what a worker needs to share it with others: how many
trials are still wanted, and marking the trials of killed workers as failed."""

from __future__ import annotations

import inspect
import os
import socket
import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from tokclf.errors import ConfigError
from tokclf.tuning.options import STORAGE_RULE, TuneArguments

JOURNAL_SUFFIXES = (".log", ".journal")
WORKER_ATTR = "tokclf_worker"  # host:pid of the worker running a trial (journal storage has no heartbeat)
# A killed worker's trial comes back once with the same parameters; a second failure stays failed.
MAX_RETRY = 1
# Optuna 4.9 renamed RetryFailedTrialCallback (now a deprecated alias) and RDBStorage's failed_trial_callback.
RetryCallback = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
STALE_CALLBACK = ("heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in
                  inspect.signature(RDBStorage.__init__).parameters else "failed_trial_callback")
# SQLite lets one writer in at a time: workers and their heartbeats wait for the lock rather than fail.
SQLITE_WAIT = {"connect_args": {"timeout": 60}}


def storage_url(tune: TuneArguments, output_dir: str) -> str:
    return tune.storage or f"sqlite:///{Path(output_dir).resolve() / 'optuna.db'}"


def make_storage(url: str, heartbeat_interval: int):
    """RDB storage with a heartbeat (killed workers' trials fail and are retried), or a journal file."""
    if "://" in url:
        return rdb_storage(url, heartbeat_interval)
    if url.endswith(JOURNAL_SUFFIXES):
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(url))
    raise ConfigError(f"--storage {url}: neither a URL nor a journal file. {STORAGE_RULE}.")


def rdb_storage(url: str, heartbeat_interval: int, attempts: int = 5):
    """Workers started together on a new database race to create its tables (the loser gets an
    IntegrityError from alembic's version table): once the winner is done, opening it again works."""
    for attempt in range(attempts):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                return RDBStorage(url, engine_kwargs=SQLITE_WAIT if url.startswith("sqlite") else None,
                                  heartbeat_interval=heartbeat_interval, grace_period=2 * heartbeat_interval,
                                  **{STALE_CALLBACK: RetryCallback(max_retry=MAX_RETRY)})
            except Exception as err:  # sqlalchemy's errors: a bad URL, a server down, the race above
                if attempt == attempts - 1:
                    raise ConfigError(f"--storage {url}: Optuna cannot open it: {err}") from None
                time.sleep(0.5 * (attempt + 1))


def make_pruner(tune: TuneArguments):
    startup, warmup = tune.pruner_startup_trials, tune.pruner_warmup_epochs
    return {
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup),
        "percentile": lambda: optuna.pruners.PercentilePruner(25.0, n_startup_trials=startup, n_warmup_steps=warmup),
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "none": optuna.pruners.NopPruner,
    }[tune.pruner]()


def open_study(tune: TuneArguments, output_dir: str):
    """Create the study or load it (a rerun or another worker): every score is maximized."""
    storage = make_storage(storage_url(tune, output_dir), tune.heartbeat_interval)
    sampler = optuna.samplers.TPESampler(seed=tune.sampler_seed)
    try:
        return optuna.create_study(storage=storage, study_name=tune.study_name, direction="maximize",
                                   sampler=sampler, pruner=make_pruner(tune), load_if_exists=True)
    except ValueError as err:  # an existing study with another direction, several objectives
        raise ConfigError(f"--study_name {tune.study_name}: {err}") from None


def heartbeat_enabled(study) -> bool:
    # Optuna keeps no public accessor; its own optimize() reads study._storage (an RDBStorage wrapped in
    # a _CachedStorage, which passes the heartbeat calls on).
    interval = getattr(study._storage, "get_heartbeat_interval", None)
    return interval is not None and interval() is not None


def trials_wanted(study, n_trials: int) -> int:
    """How many more trials this worker may start: the target less the finished and the running ones
    (other workers'), so that workers together stop at the target."""
    counted = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return n_trials - len(study.get_trials(deepcopy=False, states=counted))


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def fail_dead_workers_trials(study) -> list[int]:
    """Journal storage has no heartbeat: a RUNNING trial whose worker was on this machine and is gone
    (killed) is marked FAIL. A worker on another machine cannot be checked from here."""
    failed = []
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.system_attrs.get(WORKER_ATTR, "")
        owner_host, _, pid = owner.rpartition(":")
        if owner_host == host and pid.isdigit() and not _alive(int(pid)):
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            failed.append(trial.number)
    return failed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_worker(study, trial) -> None:
    study._storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, worker_id())
