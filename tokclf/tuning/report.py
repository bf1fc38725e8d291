"""What `tokclf tune` leaves at the end: the best trial's model in OUTPUT_DIR/best_model, a summary
(tune_summary.json and a table, printed and in tune_summary.md) and Optuna's plots in OUTPUT_DIR/plots."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from tokclf.tuning.trials import trial_dir

BEST_MODEL = "best_model"
# What a trial folder holds besides its final model: checkpoints, the best evaluation's copy, trackers.
NOT_MODEL = shutil.ignore_patterns("step_*", "epoch_*", "best", "tokclf")
PLOTS = {"history": "plot_optimization_history", "importances": "plot_param_importances",
         "parallel_coordinate": "plot_parallel_coordinate"}


def best_trial(study):
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None


def copy_best_model(study, output_dir: str) -> Path | None:
    """Copy (not link: the folder then moves to another machine whole) the best trial's final model.
    Written beside and renamed into place, so that a worker finishing at the same moment never leaves
    a half-copied folder."""
    best = best_trial(study)
    if best is None:
        return None
    target = Path(output_dir) / BEST_MODEL
    staging = target.with_name(f".{BEST_MODEL}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(trial_dir(output_dir, best.number), staging, ignore=NOT_MODEL)
    (staging / "tune_trial.json").write_text(json.dumps({"trial": best.number, "value": best.value,
                                                         "params": best.params}, indent=2) + "\n")
    old = target.with_name(f".{BEST_MODEL}.old.{os.getpid()}")
    if target.exists():
        target.replace(old)
    staging.replace(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def summary(study, n_trials: int) -> dict:
    trials = study.get_trials(deepcopy=False)
    states = {state.name: sum(t.state == state for t in trials) for state in TrialState}
    finished = states["COMPLETE"] + states["PRUNED"]
    best = best_trial(study)
    return {"study_name": study.study_name, "n_trials": n_trials, "trials": len(trials), "states": states,
            "pruned_share": states["PRUNED"] / finished if finished else 0.0,
            "best_trial": best.number if best else None, "best_value": best.value if best else None,
            "best_params": best.params if best else None}


def table(study) -> str:
    trials = study.get_trials(deepcopy=False)
    names = sorted({name for t in trials for name in t.params})
    rows = ["| trial | state | score | epochs evaluated | " + " | ".join(names) + " |",
            "| --- " * (4 + len(names)) + "|"]
    for t in trials:
        value = f"{t.value:.4f}" if t.value is not None else "-"
        params = [_short(t.params.get(name, "-")) for name in names]
        rows.append(f"| {t.number} | {t.state.name} | {value} | {len(t.intermediate_values)} | "
                    + " | ".join(params) + " |")
    return "\n".join(rows)


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def write_summary(study, output_dir: str, n_trials: int) -> dict:
    values = summary(study, n_trials)
    out = Path(output_dir)
    (out / "tune_summary.json").write_text(json.dumps(values, indent=2) + "\n")
    (out / "tune_summary.md").write_text(f"# tokclf tune: study {study.study_name}\n\n{table(study)}\n")
    return values


def write_plots(study, output_dir: str) -> list[str]:
    """HTML through plotly (interactive, plotly.js written once beside them) and PNG through Optuna's
    matplotlib plots (plotly's PNG export needs kaleido and a browser). A plot that cannot be drawn
    yet (importances need two complete trials) or a missing package is reported, not fatal."""
    folder = Path(output_dir) / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    notes = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the matplotlib plots are "experimental"
        for name, function in PLOTS.items():
            notes += _html(study, folder, name, function) + _png(study, folder, name, function)
    return notes


def _html(study, folder: Path, name: str, function: str) -> list[str]:
    try:
        figure = getattr(optuna.visualization, function)(study)
        figure.write_html(folder / f"{name}.html", include_plotlyjs="directory")
    except (ImportError, ValueError, RuntimeError) as err:
        return [f"{name}.html not written: {err}"]
    return []


def _png(study, folder: Path, name: str, function: str) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        axes = getattr(optuna.visualization.matplotlib, function)(study)
        figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
        figure.savefig(folder / f"{name}.png", dpi=100, bbox_inches="tight")
        plt.close(figure)
    except (ImportError, ValueError, RuntimeError) as err:
        return [f"{name}.png not written: {err}"]
    return []
