"""The run configuration: the option groups of `tokclf.arguments`, loaded from YAML and overridden on
the command line, checked before anything expensive starts.

Precedence: dataclass default < `--config FILE` (YAML) < command-line flags. YAML keys and flags are
the flat option names (`learning_rate`, not `training.learning_rate`); each belongs to one group.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from tokclf.arguments import DataArguments, EvaluationArguments, ModelArguments, OutputArguments, TrainingArguments
from tokclf.errors import ConfigError
from tokclf.runtime.adapters import AdapterArguments

REDACTED = "***"
GROUPS = {"model": ModelArguments, "data": DataArguments, "training": TrainingArguments,
          "evaluation": EvaluationArguments, "output": OutputArguments, "adapter": AdapterArguments}
# What evaluation reports, per entity type too (eval_PER_f1): the metrics that can pick the best model.
EVALUATION_METRICS = ("f1", "precision", "recall", "accuracy")


@dataclass
class TrainConfig:
    """All options of a training run, one typed group per concern; read-only after validation."""

    model: ModelArguments
    data: DataArguments
    training: TrainingArguments
    evaluation: EvaluationArguments
    output: OutputArguments
    adapter: AdapterArguments = dataclasses.field(default_factory=AdapterArguments)

    def __post_init__(self):
        if self.model.model_name_or_path is None:
            raise ConfigError("--model_name_or_path is required (a Hub id or a local model folder).")
        data = self.data
        if not (data.dataset_name or data.train_file or data.data_dir):
            raise ConfigError("No training data: give --data_dir, --train_file or --dataset_name.")
        evaluation = self.evaluation
        if evaluation.metric_for_best_model is None:
            evaluation.metric_for_best_model = "eval_accuracy" if data.task_name == "pos" else "eval_f1"
        elif not evaluation.metric_for_best_model.startswith("eval_"):
            evaluation.metric_for_best_model = "eval_" + evaluation.metric_for_best_model
        check_metric_name(evaluation.metric_for_best_model)
        if evaluation.greater_is_better is None:
            evaluation.greater_is_better = True  # every metric evaluation reports is a score, none a loss

    @classmethod
    def from_flat(cls, values: dict) -> "TrainConfig":
        """From {option: value} (args.json, a parsed command line); missing options take their defaults."""
        return cls(**{name: group(**{f.name: values[f.name] for f in dataclasses.fields(group) if f.name in values})
                      for name, group in GROUPS.items()})

    def to_dict(self) -> dict:
        """The resolved options, flat, safe to write to disk: the Hub token is redacted."""
        values = {k: v for name in GROUPS for k, v in dataclasses.asdict(getattr(self, name)).items()}
        if values.get("hub_token"):
            values["hub_token"] = REDACTED
        return values


def check_metric_name(metric: str) -> None:
    """--metric_for_best_model must name a score that evaluation reports: eval_f1, eval_accuracy, ...
    or a per-type score like eval_PER_f1 (the types are checked against the data in setup)."""
    name = metric[len("eval_"):]
    if name.rsplit("_", 1)[-1] in EVALUATION_METRICS:
        return
    close = difflib.get_close_matches(metric, [f"eval_{m}" for m in EVALUATION_METRICS], n=1)
    hint = f" Did you mean {close[0]}?" if close else ""
    raise ConfigError(f"--metric_for_best_model {metric}: evaluation reports no such metric; it reports "
                      f"{', '.join('eval_' + m for m in EVALUATION_METRICS)} and eval_TYPE_f1 per entity type "
                      f"(no loss).{hint}")


def field_types() -> dict[str, object]:
    """Option name → its type hint, over all groups."""
    hints = {}
    for group in GROUPS.values():
        hints.update(typing.get_type_hints(group))
    return {name: hint for name, hint in hints.items() if not name.startswith("_")}


# ----------------------------------------------------------------------------------------------------
# YAML files


def _allowed_types(hint) -> tuple[type, ...]:
    """Python types a YAML value may have for a field annotated `hint`."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return tuple({type(a) for a in typing.get_args(hint)})
    if origin in (typing.Union, types.UnionType):
        out: tuple[type, ...] = ()
        for arg in typing.get_args(hint):
            out += (type(None),) if arg is type(None) else _allowed_types(arg)
        return out
    if hint is float:
        return (float, int)
    if hint is str:
        return (str, int)  # `checkpointing_steps: 500` is natural YAML for a str field
    return (hint,)


def _check_yaml_value(key: str, value, hints: dict, source: str):
    if key not in hints:
        close = difflib.get_close_matches(key, hints, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"{source}: unknown key '{key}'.{hint}")
    allowed = _allowed_types(hints[key])
    if isinstance(value, bool) and bool not in allowed or not isinstance(value, allowed):
        names = " or ".join(sorted(t.__name__ for t in allowed))
        raise ConfigError(f"{source}: key '{key}' must be {names}, got {type(value).__name__} {value!r}.")
    choices = typing.get_args(hints[key]) if typing.get_origin(hints[key]) is Literal else None
    if choices and value not in choices:
        raise ConfigError(f"{source}: key '{key}' must be one of {list(choices)}, got {value!r}.")
    return str(value) if key == "checkpointing_steps" and value is not None else value


def read_yaml_mapping(path: Path, flag: str, shape: str) -> dict:
    """A YAML file that must hold one mapping (a config, a search space), each fault named with the flag."""
    if not path.is_file():
        raise ConfigError(f"{flag} {path}: no such file.")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{flag} {path}: not valid YAML: {err}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{flag} {path}: expected a mapping of {shape}, got {type(values).__name__}.")
    return values


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    values = read_yaml_mapping(path, "--config", "option: value")
    hints = field_types()
    return {key: _check_yaml_value(key, value, hints, str(path)) for key, value in values.items()}


# ----------------------------------------------------------------------------------------------------
# The command line


def command_parser(dataclass_types, prog: str, description: str | None = None, epilog: str | None = None):
    """An HfArgumentParser over `dataclass_types` whose help renders: one section per group, `%` in help
    texts shown as written, one default per option, and `--no_X` flags described as such."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(dataclass_types, prog=prog, description=description, epilog=epilog,
                              formatter_class=argparse.HelpFormatter)
    for action in parser._actions:
        _tidy_help(action)
    return parser


def _tidy_help(action: argparse.Action) -> None:
    if action.help in (None, argparse.SUPPRESS) or action.dest == "help":
        return
    positive = next((s for s in action.option_strings if s.startswith("--")), "")
    if positive.startswith("--no_") and action.const is False:
        action.help = f"Turn off --{positive[len('--no_'):]}."
        return
    text = action.help.replace("%", "%%")  # argparse formats help with %-interpolation
    shows_default = "default" in text.lower() or action.default in (None, False, argparse.SUPPRESS)
    if not shows_default and action.nargs != 0:
        text += f" (default: {action.default})".replace("%", "%%")
    action.help = text


def build_parser(prog: str = "train_token_classification.py"):
    parser = command_parser(list(GROUPS.values()), prog, description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="YAML file of option: value pairs.")
    return parser


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """Parse `--config FILE` and the other flags into a validated TrainConfig."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return TrainConfig.from_flat(parse_flat(build_parser(), argv, "See --help for the options."))


def parse_flat(parser, argv: list[str], help_hint: str) -> dict:
    """option → value from `--config FILE` (the defaults) and the flags (over them); unknown flags refused."""
    argv = list(argv)
    config_path = _pop_config_flag(argv)
    if config_path:
        parser.set_defaults(**load_yaml(config_path))
    namespace, unknown = parser.parse_known_args(argv)
    refuse_unknown(unknown, help_hint)
    return vars(namespace)


def parse_command(parser, argv: list[str] | None, help_hint: str) -> list:
    """The dataclasses of a command without --config (evaluate, predict); unknown flags refused."""
    *configs, unknown = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True)
    refuse_unknown(unknown, help_hint)
    return configs


def refuse_unknown(unknown: list[str], help_hint: str) -> None:
    """One line naming what the parser did not take, rather than the parser's own traceback."""
    if unknown:
        flags = [a for a in unknown if a.startswith("-")] or unknown
        raise ConfigError(f"unknown option(s): {' '.join(flags)}. {help_hint}")


def _pop_config_flag(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--config":
            if i + 1 >= len(argv):
                raise ConfigError("--config needs a file name.")
            path = argv[i + 1]
            del argv[i: i + 2]
            return path
        if arg.startswith("--config="):
            del argv[i]
            return arg.split("=", 1)[1]
    return None
