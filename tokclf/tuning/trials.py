"""One trial = one ordinary training run (`tokclf.training.recipe.train`) in OUTPUT_DIR/trials/NNN, in this
process: the recipe builds a fresh Accelerator for each run (accel.make_accelerator resets Accelerate's
process-wide state) and seeds it, so nothing of one trial leaks into the next.

Several processes (`accelerate launch ... tokclf tune`): rank 0 alone talks to Optuna. It asks for a
trial, sends the trial's number and parameters to the other ranks, and after each evaluation reports the
score and sends its prune decision; every rank trains the same trial and stops at the same epoch."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import optuna
from accelerate import PartialState
from accelerate.utils import broadcast_object_list

from tokclf.config import GROUPS, TrainConfig
from tokclf.errors import ConfigError, TrainingError
from tokclf.runtime.accel import make_cpu_group_if_needed
from tokclf.training.recipe import train
from tokclf.tuning.space import Param
from tokclf.tuning.study import fail_dead_workers_trials, heartbeat_enabled, mark_worker, trials_wanted

TRIALS_FOLDER = "trials"


def trial_dir(output_dir: str, number: int) -> Path:
    return Path(output_dir) / TRIALS_FOLDER / f"{number:03d}"


def flat_options(cfg: TrainConfig) -> dict:
    """The resolved training options, flat and unredacted (cfg.to_dict hides the Hub token)."""
    return {k: v for name in GROUPS for k, v in dataclasses.asdict(getattr(cfg, name)).items()}


def share(value):
    """Rank 0's value on every rank. A host-device sync point: every process waits here for rank 0
    (broadcast_object_list pickles through the process group; with one process it returns the value)."""
    box = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]


@dataclass
class TrialOutcome:
    best: Optional[float] = None  # the best validation score over the trial's evaluations
    pruned_at: Optional[int] = None  # the epoch whose evaluation pruned it


def run_trial(base: TrainConfig, number: int, params: dict, decide: Callable[[int, float], bool]) -> TrialOutcome:
    """Train with `params` over the base options; after each evaluation `decide(epoch, score)` (the
    same answer on every rank) may stop it. Raises what training raises."""
    values = {**flat_options(base), **params, "output_dir": str(trial_dir(base.output.output_dir, number))}
    cfg = TrainConfig.from_flat(values)  # checks the suggested values as a command line's
    metric = cfg.evaluation.metric_for_best_model
    outcome = TrialOutcome()

    def on_evaluated(record: dict) -> bool:
        score = record[metric]
        score = 0.0 if math.isnan(score) else float(score)
        outcome.best = score if outcome.best is None else max(outcome.best, score)
        if decide(record["epoch"], score):
            outcome.pruned_at = record["epoch"]
            return True
        return False

    train(cfg, on_evaluated=on_evaluated, keep_process_group=True)
    return outcome


def reporter(trial) -> Callable[[int, float], bool]:
    """Rank 0's decide: report the score at the epoch, ask the pruner, tell every rank."""
    def decide(epoch: int, score: float) -> bool:
        trial.report(score, step=epoch)
        return share(trial.should_prune())
    return decide


def follower(epoch: int, score: float) -> bool:
    """The other ranks' decide: rank 0's answer."""
    return share(None)


def objective_for(base: TrainConfig, space: list[Param], study) -> Callable:
    def objective(trial) -> float:
        mark_worker(study, trial)
        params = {param.name: param.suggest(trial) for param in space}
        share({"number": trial.number, "params": params})
        outcome = run_trial(base, trial.number, params, reporter(trial))
        if outcome.best is None:
            raise ConfigError("the trial made no validation evaluation: tokclf tune needs a validation "
                              "split (eng.testa/dev in --data_dir, or --validation_file).")
        if outcome.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned after epoch {outcome.pruned_at} (best score {outcome.best:.4f})")
        return outcome.best
    return objective


def start_processes() -> PartialState:
    """The process group, formed before the first trial so that rank 0 can send it its parameters (on a
    CPU machine a multi-process launch needs the gloo group that accel.make_accelerator also asks for)."""
    return PartialState(cpu=make_cpu_group_if_needed())


# Failed trials do not count toward --n_trials: without a limit, a search whose every trial diverges
# would never end.
MAX_FAILED_IN_ROW = 3


def lead(study, base: TrainConfig, space: list[Param], n_trials: int, say=print) -> bool:
    """Rank 0: run trials until the study has its n_trials finished or running, then release the others.
    False when it stopped because its trials kept failing."""
    objective = objective_for(base, space, study)
    states = []
    while not (failing := _failing(states)):
        if heartbeat_enabled(study):
            optuna.storages.fail_stale_trials(study)  # killed workers' trials: FAIL, then retried
        else:
            for number in fail_dead_workers_trials(study):
                say(f"trial {number}: its worker on this machine is gone; marked FAIL")
        if trials_wanted(study, n_trials) <= 0:
            break
        # One trial per call: optimize() gives it the heartbeat, the stale-trial check and the retry.
        study.optimize(objective, n_trials=1, catch=(TrainingError,), gc_after_trial=True,
                       callbacks=[lambda _, trial: states.append(trial.state)])
    share(None)
    return not failing


def _failing(states: list) -> bool:
    last = states[-MAX_FAILED_IN_ROW:]
    return len(last) == MAX_FAILED_IN_ROW and all(s == optuna.trial.TrialState.FAIL for s in last)


def follow(base: TrainConfig) -> None:
    """Ranks other than 0: train each trial rank 0 sends until it sends None."""
    while (message := share(None)) is not None:
        try:
            run_trial(base, message["number"], message["params"], follower)
        except TrainingError:
            continue  # rank 0 records the failure and goes on; so do we
