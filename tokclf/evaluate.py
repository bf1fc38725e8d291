"""`tokclf evaluate`: score a saved model on a labelled split, exactly as training evaluates.

    tokclf evaluate --model OUTPUT_DIR --data_dir ../shared/data/conll2003 --split test
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from tokclf.checks import at_least, check_windows
from tokclf.components import Parts, Split, add_split, setup_inference
from tokclf.runtime.accel import BF16_WEIGHTS_HELP, INFERENCE_DTYPE_HELP, InferenceDtype
from tokclf.runtime.allocator import REUSE_CPU_MEMORY_HELP
from tokclf.runtime.collector import startup_done
from tokclf.data.arrow_data import SentenceSplit, file_split
from tokclf.errors import ConfigError, DataError
from tokclf.formats.registry import SENTENCE_CHOICES, reading_of
from tokclf.data.split_files import find_split_files
from tokclf.inference.scoring import entity_confusion, evaluate_split, format_confusion, format_table
from tokclf.data.labels import prepare_eval_tags
from tokclf.inference.report.build import ReportInput, write_report
from tokclf.runtime.outdir import OutputDir, prepare_output_dir, prepare_output_file
from tokclf.inference.saved_model import SavedModel, TrainedOptions


@dataclass
class EvaluateConfig:
    _argument_group_name = "Evaluate"

    model: str = field(metadata={"help": "A folder written by training (model, tokenizer, args.json)."})
    data_dir: Optional[str] = field(default=None, metadata={"help": "Folder of split files, as in training."})
    test_file: Optional[str] = field(default=None, metadata={"help": "A labelled file to score (wins over --data_dir)."})
    split: Literal["train", "validation", "test"] = field(default="test", metadata={"help": "Split of --data_dir."})
    task_name: Optional[str] = field(default=None, metadata={"help": "Default: the task the model was trained on."})
    max_length: Optional[int] = field(default=None, metadata={"help": "Default: as in training."})
    stride: Optional[int] = field(default=None, metadata={"help": "Default: as in training."})
    decoding: Optional[Literal["argmax", "viterbi"]] = field(
        default=None, metadata={"help": "Default: the training run's --eval_decoding."})
    context_sentences: Optional[int] = field(default=None, metadata={"help": "Default: as in training."})
    input_format: Literal[SENTENCE_CHOICES] = field(
        default="auto", metadata={"help": "Format of the file, as training's --input_format."})
    word_split: Optional[Literal["punct", "whitespace", "char"]] = field(
        default=None, metadata={"help": "Span files: how texts become words. Default: as in training."})
    span_alignment: Optional[Literal["strict", "expand", "contract"]] = field(
        default=None, metadata={"help": "Span files: spans that do not match whole words. Default: as in training."})
    text_column_name: Optional[str] = field(default=None, metadata={"help": "Default: as in training."})
    label_column_name: Optional[str] = field(
        default=None, metadata={"help": "The gold tags' column (CoNLL: a number; CoNLL-U: a name such as xpos). "
                                        "Default: as in training."})
    per_device_eval_batch_size: int = field(default=64, metadata={"help": "Windows per device per batch."})
    output_file: Optional[str] = field(
        default=None, metadata={"help": "Write the metrics and the entity-type confusion table as JSON here."})
    report: Optional[str] = field(
        default=None, metadata={"help": "Write an error-analysis report into this folder: index.html (open it in a "
                                        "browser, no network needed), its figures and report.json."})

    inference_dtype: InferenceDtype = field(default="auto", metadata={"help": INFERENCE_DTYPE_HELP})
    bf16_weights: Optional[bool] = field(default=None, metadata={"help": BF16_WEIGHTS_HELP})
    reuse_cpu_memory: Optional[bool] = field(default=None, metadata={"help": REUSE_CPU_MEMORY_HELP})

    def __post_init__(self):
        if not (self.data_dir or self.test_file):
            raise ConfigError("give --data_dir (with --split) or --test_file.")
        at_least(self, 1, "per_device_eval_batch_size", "max_length")
        at_least(self, 0, "stride", "context_sentences")


def labelled_file(cfg: EvaluateConfig) -> Path:
    path = Path(cfg.test_file) if cfg.test_file else find_split_files(cfg.data_dir).get(cfg.split)
    if path is None:
        raise DataError(f"--data_dir {cfg.data_dir}: no {cfg.split} file.")
    return path


@dataclass
class PreparedEvaluation:
    """A saved model on its device (parts) and a labelled split encoded for it, ready to score."""

    path: Path  # the labelled file
    sentences: SentenceSplit
    gold: list[list[str]]  # gold tags in the model's scheme
    parts: Parts
    split: Split


def load_saved_model(cfg: EvaluateConfig) -> tuple[SavedModel, TrainedOptions]:
    """The saved model and its training options with the command's overrides, checked against each other."""
    saved = SavedModel.load(cfg.model)
    options = saved.trained.overridden(max_length=cfg.max_length, stride=cfg.stride,
                                       context_sentences=cfg.context_sentences, decoding=cfg.decoding,
                                       task_name=cfg.task_name, word_split=cfg.word_split,
                                       span_alignment=cfg.span_alignment, text_column_name=cfg.text_column_name,
                                       label_column_name=cfg.label_column_name)
    check_windows(options.max_length, options.stride, options.context_sentences)
    saved.check(options)
    return saved, options


def prepare_evaluation(cfg: EvaluateConfig, saved: SavedModel, options: TrainedOptions) -> PreparedEvaluation:
    """Everything `tokclf evaluate` does after loading and before scoring (bench/eval_weights_ab.py too)."""
    path = labelled_file(cfg)
    reading = reading_of(options.task_name, options.text_column_name, options.label_column_name, options.word_split,
                         options.span_alignment)
    sentences = file_split(path, reading, cfg.input_format)
    gold = prepare_eval_tags(saved.labels, sentences.tags, saved.trained.tag_scheme, options.task_name,
                             str(path), sentences=sentences.sentences)
    parts = setup_inference(saved, inference_dtype=cfg.inference_dtype, bf16_weights=cfg.bf16_weights,
                            reuse_cpu_memory=cfg.reuse_cpu_memory)
    encoding = {"max_length": options.max_length, "stride": options.stride,
                "context_sentences": options.context_sentences}
    split = add_split(parts, "test", sentences, gold, encoding, cfg.per_device_eval_batch_size)
    return PreparedEvaluation(path, sentences, gold, parts, split)


def evaluate_saved_model(cfg: EvaluateConfig) -> dict:
    saved, options = load_saved_model(cfg)
    output_file = prepare_output_file(cfg.output_file, "--output_file") if cfg.output_file else None
    report_dir = prepare_output_dir(cfg.report, "--report") if cfg.report else None  # fails before the work
    run = prepare_evaluation(cfg, saved, options)
    startup_done()  # the model and the split live to the end: the garbage collector skips them from here on
    path, sentences, gold, parts = run.path, run.sentences, run.gold, run.parts
    metrics, predicted = evaluate_split(parts.model, run.split.loader, parts.accelerator, run.split.encoded, gold,
                                        saved.labels, options.decoding)
    parts.accelerator.print(format_table(metrics, f"{path} ({len(sentences)} sentences, {options.decoding} decoding)"))
    confusion = entity_confusion(gold, predicted) if saved.labels.scheme == "iob" else {}
    if confusion:
        parts.accelerator.print(format_confusion(confusion))
    if output_file and parts.accelerator.is_main_process:
        report = {**metrics, "decoding": options.decoding, "context_sentences": options.context_sentences,
                  "confusion": confusion}
        output_file.write_text(json.dumps(report, indent=2) + "\n")
    if report_dir and parts.accelerator.is_main_process:
        index = write_report(report_dir.root, ReportInput(
            sentences.words, gold, predicted, metrics, saved.labels.scheme, str(path),
            title=f"{Path(cfg.model).name}: errors on {path.name}", decoding=options.decoding,
            run_dir=Path(cfg.model) if OutputDir(cfg.model).args.is_file() else None,
            extra={"decoding": options.decoding, "context_sentences": options.context_sentences}))
        parts.accelerator.print(f"report: {index}")
    return metrics
