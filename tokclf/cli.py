"""Command-line entry points of `tokclf train|evaluate|predict|tune` and train_token_classification.py:
errors of the project's own types become one line and an exit status."""

from __future__ import annotations

import os
import sys

from tokclf.errors import LaunchError, Preempted, TokclfError, TrainingError

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
        if not isinstance(err, LaunchError) or os.environ.get("RANK", "0") == "0":
            print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def train_main(argv=None):
    from tokclf.config import parse_config
    from tokclf.training.recipe import train

    return run_guarded(lambda: train(parse_config(argv)))


TUNE_NEEDS = "error: tokclf tune needs optuna: pip install 'tokclf[tune]'"


def tune_main(argv=None):
    # optuna is an optional dependency (the tune extra): without it, one line and the bad-input status.
    try:
        import optuna  # noqa: F401
    except ImportError:
        print(TUNE_NEEDS, file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    from tokclf.tuning.command import tune_command

    return run_guarded(lambda: tune_command(argv or []))


def evaluate_parser():
    from tokclf.config import command_parser
    from tokclf.evaluate import EvaluateConfig

    return command_parser([EvaluateConfig], "tokclf evaluate", description="Score a saved model on a labelled split.")


def predict_parser():
    from tokclf.config import command_parser
    from tokclf.predict import PredictConfig
    from tokclf.formats.words import WORD_RULE

    return command_parser([PredictConfig], "tokclf predict", description="Tag a file with a saved model.",
                          epilog=f"Text input: {WORD_RULE}")


def evaluate_main(argv=None):
    from tokclf.config import parse_command
    from tokclf.evaluate import evaluate_saved_model

    hint = "See tokclf evaluate --help."
    return run_guarded(lambda: evaluate_saved_model(*parse_command(evaluate_parser(), argv, hint)))


def predict_main(argv=None):
    from tokclf.config import parse_command
    from tokclf.predict import predict

    return run_guarded(lambda: predict(*parse_command(predict_parser(), argv, "See tokclf predict --help.")))
