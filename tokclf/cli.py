"""Command-line entry points: errors of the project's own types become one line and exit status 2."""

from __future__ import annotations

import sys

from tokclf.errors import Preempted, TokclfError, TrainingError

EXIT_BAD_INPUT = 2  # bad options or data, found before training
EXIT_TRAINING_FAILED = 3  # non-finite steps or a failed save stopped training
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped by SIGTERM/SIGINT after a checkpoint; resume with `latest`


def run_guarded(fn, *args):
    try:
        return fn(*args)
    except Preempted as err:
        print(f"preempted: {err}", file=sys.stderr)
        sys.exit(EXIT_PREEMPTED)
    except TrainingError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_TRAINING_FAILED)
    except TokclfError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def train_main(argv=None):
    from tokclf.config import parse_config
    from tokclf.recipe import train

    def _run():
        return train(parse_config(argv))

    return run_guarded(_run)


def evaluate_main(argv=None):
    from transformers import HfArgumentParser

    from tokclf.score import EvaluateConfig, evaluate_saved_model

    def _run():
        (cfg,) = HfArgumentParser(EvaluateConfig, prog="python -m tokclf evaluate").parse_args_into_dataclasses(argv)
        return evaluate_saved_model(cfg)

    return run_guarded(_run)
