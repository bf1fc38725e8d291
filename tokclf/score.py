"""`python -m tokclf evaluate`: score a saved model on a labelled split, exactly as training evaluates.

    python -m tokclf evaluate --model OUTPUT_DIR --data_dir ../shared/data/conll2003 --split test
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from tokclf.errors import ConfigError, DataError


@dataclass
class EvaluateConfig:
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
    per_device_eval_batch_size: int = field(default=64, metadata={"help": "Windows per device per batch."})
    output_file: Optional[str] = field(
        default=None, metadata={"help": "Write the metrics and the entity-type confusion table as JSON here."})

    def __post_init__(self):
        if not (self.data_dir or self.test_file):
            raise ConfigError("give --data_dir (with --split) or --test_file.")


def training_args(model_dir: str) -> dict:
    path = Path(model_dir) / "args.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def evaluate_saved_model(cfg: EvaluateConfig) -> dict:
    from accelerate import Accelerator
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from tokclf.batching import TokenClassificationCollator, eval_loader
    from tokclf.data import find_split_files, read_file
    from tokclf.evaluate import entity_confusion, evaluate_split, format_confusion, format_table
    from tokclf.features import encode, require_fast, require_usable_vocabulary
    from tokclf.labels import LabelSet, prepare_eval_tags
    from tokclf.runs import check_one_group, make_cpu_group_if_needed

    trained = training_args(cfg.model)
    task = cfg.task_name or trained.get("task_name", "ner")
    max_length = cfg.max_length or trained.get("max_length", 128)
    stride = cfg.stride if cfg.stride is not None else trained.get("stride", 32)
    decoding = cfg.decoding or trained.get("eval_decoding", "viterbi")
    context = cfg.context_sentences if cfg.context_sentences is not None else trained.get("context_sentences", 0)
    path = Path(cfg.test_file) if cfg.test_file else find_split_files(cfg.data_dir).get(cfg.split)
    if path is None:
        raise DataError(f"--data_dir {cfg.data_dir}: no {cfg.split} file.")

    accelerator = Accelerator(cpu=make_cpu_group_if_needed())
    check_one_group(accelerator)
    tokenizer = AutoTokenizer.from_pretrained(cfg.model)
    require_fast(tokenizer, cfg.model)
    require_usable_vocabulary(tokenizer, cfg.model)
    model = AutoModelForTokenClassification.from_pretrained(cfg.model)
    names = tuple(model.config.id2label[i] for i in range(model.config.num_labels))
    labels = LabelSet(names)  # labels.is_iob decides the scheme, as in training and predict

    sentences = read_file(path, task)
    gold = prepare_eval_tags(labels, [s.tags for s in sentences], trained.get("tag_scheme", "auto"), task, str(path),
                             sentences=sentences, say=accelerator.print)
    encoded = encode(tokenizer, [s.words for s in sentences], None, labels.label2id, max_length, stride,
                     doc_ids=[s.doc_id for s in sentences], context_sentences=context)
    loader = eval_loader(encoded, TokenClassificationCollator(tokenizer), cfg.per_device_eval_batch_size)
    model, loader = accelerator.prepare(model, loader)
    metrics, predicted = evaluate_split(model, loader, accelerator, encoded, gold, labels, decoding)
    accelerator.print(format_table(metrics, f"{path} ({len(sentences)} sentences, {decoding} decoding)"))
    confusion = entity_confusion(gold, predicted) if labels.scheme == "iob" else {}
    if confusion:
        accelerator.print(format_confusion(confusion))
    if cfg.output_file and accelerator.is_main_process:
        report = {**metrics, "decoding": decoding, "context_sentences": context, "confusion": confusion}
        Path(cfg.output_file).write_text(json.dumps(report, indent=2) + "\n")
    return metrics
