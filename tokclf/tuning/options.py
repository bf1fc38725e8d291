"""The options of `tokclf tune` (besides every training option) and its parser. No optuna here: `--help`
and the options page work without the optional dependency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from tokclf.arguments import help_field
from tokclf.checks import at_least
from tokclf.config import GROUPS, command_parser, parse_flat, TrainConfig
from tokclf.errors import ConfigError

STORAGE_RULE = ("A URL with :// is an Optuna RDB storage (sqlite:///path.db, postgresql://..., mysql://...); a "
                "path ending .log or .journal is an Optuna JournalStorage file (several workers on one file "
                "system, no database)")


@dataclass
class TuneArguments:
    """Hyperparameter search (tokclf tune): every trial is a training run of these options."""

    _argument_group_name = "Hyperparameter search (tokclf tune)"

    n_trials: int = help_field(
        "The study's target of finished (complete or pruned) trials, over all workers and reruns: a rerun "
        "of the same command resumes the study and runs only the missing ones; failed trials do not count.",
        default=10,
    )
    study_name: str = help_field("The Optuna study's name in the storage.", default="tokclf")
    storage: Optional[str] = help_field(
        f"Where the study lives; default: sqlite:///OUTPUT_DIR/optuna.db (embedded, nothing to start). "
        f"{STORAGE_RULE}.",
        default=None,
    )
    search_space: Optional[str] = help_field(
        "YAML file of option: {type: float|int, low, high[, log][, step]} or {type: categorical, choices}; its "
        "entries replace the defaults (learning_rate, per_device_train_batch_size, num_train_epochs, "
        "warmup_ratio, weight_decay; lora_r with --peft lora) and `option: null` drops one. See docs/tune.md.",
        default=None,
    )
    pruner: Literal["median", "percentile", "successive_halving", "hyperband", "none"] = help_field(
        "Optuna's pruner over the validation score reported after each epoch's evaluation: MedianPruner, "
        "PercentilePruner (25th percentile), SuccessiveHalvingPruner, HyperbandPruner, or none (NopPruner).",
        default="median",
    )
    pruner_startup_trials: int = help_field(
        "Trials that are never pruned, so that the pruner has scores to compare with (median, percentile).",
        default=2,
    )
    pruner_warmup_epochs: int = help_field(
        "Evaluations (epochs) of each trial before it may be pruned (median, percentile).", default=1)
    heartbeat_interval: int = help_field(
        "Seconds between a running trial's heartbeats in an RDB storage; a trial silent for twice as long "
        "(a killed worker) is marked FAIL and retried once with the same parameters by the next worker.",
        default=60,
    )
    sampler_seed: Optional[int] = help_field(
        "Seed of the TPE sampler (reproducible suggestions in one worker; leave it out with several workers, "
        "or they suggest the same parameters).",
        default=None,
    )
    plots: bool = help_field(
        "At the end, write Optuna's plots (history, parameter importances, parallel coordinate) as HTML "
        "(plotly) and PNG (matplotlib) in OUTPUT_DIR/plots; a missing plotting package skips its format.",
        default=True,
    )

    def __post_init__(self):
        at_least(self, 1, "n_trials", "heartbeat_interval")
        at_least(self, 0, "pruner_startup_trials", "pruner_warmup_epochs")


def tune_parser():
    parser = command_parser([*GROUPS.values(), TuneArguments], "tokclf tune",
                            description="Search training options with Optuna: each trial is a training run.",
                            epilog=f"--storage: {STORAGE_RULE}.")
    parser.add_argument("--config", default=None, help="YAML file of training option: value pairs.")
    return parser


def parse_tune(argv: list[str]) -> tuple[TrainConfig, TuneArguments]:
    """The training options (as `tokclf train` reads them, --config included) and the search's."""
    values = parse_flat(tune_parser(), argv, "See tokclf tune --help.")
    tune = TuneArguments(**{name: values.pop(name) for name in TuneArguments.__dataclass_fields__})
    cfg = TrainConfig.from_flat(values)
    if cfg.output.push_to_hub or cfg.output.resume_from_checkpoint:
        raise ConfigError("tokclf tune: --push_to_hub and --resume_from_checkpoint do not apply to trials; "
                          "push or resume the best model with tokclf train.")
    return cfg, tune
