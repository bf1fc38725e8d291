"""`tokclf tune`: open (or resume) the study, run trials until it has its target, then leave the best
model, the summary and the plots. Started as several processes, rank 0 drives and the others follow
(tokclf.tuning.trials)."""

from __future__ import annotations

import warnings

import optuna

from tokclf.config import TrainConfig
from tokclf.runtime.collector import startup_done
from tokclf.runtime.outdir import prepare_output_dir
from tokclf.tuning.options import TuneArguments, parse_tune
from tokclf.tuning.report import copy_best_model, table, write_plots, write_summary
from tokclf.tuning.space import load_space
from tokclf.tuning.study import open_study, storage_url
from tokclf.errors import TrainingError
from tokclf.tuning.trials import MAX_FAILED_IN_ROW, follow, lead, start_processes


def tune(cfg: TrainConfig, options: TuneArguments) -> dict:
    """Run the search; returns the summary (tune_summary.json) on rank 0, {} on the other ranks."""
    space = load_space(options.search_space, cfg.data.task_name, cfg.adapter.enabled)  # bad entries fail now
    output_dir = cfg.output.output_dir
    prepare_output_dir(output_dir)
    state = start_processes()
    startup_done()  # before the first trial: each trial's model is collected as usual once the trial ends
    try:
        if not state.is_main_process:
            follow(cfg)
            return {}
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        study = open_study(options, output_dir)
        print(f"study {options.study_name} in {storage_url(options, output_dir)}: "
              f"{len(study.trials)} trial(s) so far, target {options.n_trials} finished")
        went_on = lead(study, cfg, space, options.n_trials)
    finally:
        state.destroy_process_group()  # the trials kept it (train(keep_process_group=True))
    values = finish(study, options, output_dir)
    if not went_on:
        raise TrainingError(f"the last {MAX_FAILED_IN_ROW} trials of this worker failed (see their output in "
                            f"{output_dir}/trials and above); the study is not complete.")
    return values


def finish(study, options: TuneArguments, output_dir: str) -> dict:
    values = write_summary(study, output_dir, options.n_trials)
    print(table(study))
    best = copy_best_model(study, output_dir)
    if best:
        print(f"best: trial {values['best_trial']}, score {values['best_value']:.4f}, {values['best_params']}; "
              f"its model is in {best}")
    else:
        print("no trial completed: no best model")
    if options.plots:
        for note in write_plots(study, output_dir):
            print(f"note: {note}")
    return values


def tune_command(argv: list[str]) -> dict:
    return tune(*parse_tune(argv))
