"""A model folder written by training, opened in one place for evaluate and predict: its tokenizer, its
model, its label set, and the options it was trained with that inference must reuse."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tokclf.runtime.adapters import adapter_folder, open_adapter
from tokclf.errors import ModelError
from tokclf.data.labels import LabelSet
from tokclf.runtime.model import check_max_length, load_or_explain, open_tokenizer
from tokclf.runtime.outdir import OutputDir

# Defaults for a folder without args.json (a model trained elsewhere): tokclf's own defaults.
TRAINED_DEFAULTS = {"max_length": 128, "stride": 32, "context_sentences": 0, "tag_scheme": "auto",
                    "eval_decoding": "viterbi", "task_name": "ner", "word_split": "punct",
                    "span_alignment": "strict", "text_column_name": None, "label_column_name": None}


@dataclass(frozen=True)
class TrainedOptions:
    """What inference reuses from training (args.json), each overridable on the command line."""

    max_length: int
    stride: int
    context_sentences: int
    tag_scheme: str
    decoding: str
    task_name: str
    # How span files and raw text became words: evaluate reads span files, and predict splits text, the same way.
    word_split: str = "punct"
    span_alignment: str = "strict"
    text_column_name: Optional[str] = None
    # The tags' column in training (predict's CoNLL-U output fills the column of that name)
    label_column_name: Optional[str] = None

    @classmethod
    def from_args(cls, args: dict) -> "TrainedOptions":
        values = {**TRAINED_DEFAULTS, **{k: v for k, v in args.items() if k in TRAINED_DEFAULTS and v is not None}}
        values["decoding"] = values.pop("eval_decoding")
        return cls(**values)

    def overridden(self, **given) -> "TrainedOptions":
        """These options with the ones given on the command line (None: keep the trained value)."""
        chosen = {k: v for k, v in given.items() if v is not None}
        return TrainedOptions(**{**self.__dict__, **chosen})


def run_folder(folder: Path) -> Path:
    """The training run's folder (args.json, all_results.json) of a model folder: itself, or for
    OUTPUT_DIR/adapter and OUTPUT_DIR/best the OUTPUT_DIR above."""
    parent = folder.resolve().parent
    if not OutputDir(folder).args.is_file() and OutputDir(parent).args.is_file() and \
            folder.resolve() in (OutputDir(parent).adapter.resolve(), OutputDir(parent).best.resolve()):
        return parent
    return folder


@dataclass
class SavedModel:
    folder: Path
    tokenizer: object
    model: object
    labels: LabelSet
    trained: TrainedOptions
    trained_precision: Optional[str] = None  # the mixed precision training ran with (all_results.json)

    @classmethod
    def load(cls, folder: str, flag: str = "--model") -> "SavedModel":
        """A model folder written by training: OUTPUT_DIR (a plain or merged model), or an adapter
        folder (OUTPUT_DIR/adapter, best/ of an adapter run, OUTPUT_DIR saved without --merge_adapter),
        whose base model is loaded and the adapter merged in (tokclf.runtime.adapters)."""
        from transformers import AutoConfig, AutoModelForTokenClassification

        path = Path(folder)
        if not path.is_dir():
            raise ModelError(f"{flag} {folder}: no such folder. Give the --output_dir of a training run.")
        adapter = adapter_folder(path)
        model_folder = str(adapter or path)
        config = load_or_explain("config", AutoConfig.from_pretrained, model_folder)
        tokenizer = open_tokenizer(model_folder, config.model_type)
        if all(name == f"LABEL_{i}" for i, name in config.id2label.items()):
            raise ModelError(f"{flag} {folder}: its config.json has only transformers' placeholder labels "
                             f"({', '.join(config.id2label.values())}), so it is not a fine-tuned tagger. Give a "
                             f"folder written by training.")
        model = (open_adapter(adapter, config, flag) if adapter else
                 load_or_explain("model", AutoModelForTokenClassification.from_pretrained, model_folder))
        names = tuple(model.config.id2label[i] for i in range(model.config.num_labels))
        out = OutputDir(run_folder(path))
        results = json.loads(out.all_results.read_text()) if out.all_results.is_file() else {}
        return cls(path, tokenizer, model, LabelSet(names), TrainedOptions.from_args(out.read_args()),
                   results.get("mixed_precision"))

    def check(self, options: TrainedOptions) -> None:
        """Refuse options this model cannot run with, before reading any data."""
        check_max_length(options.max_length, self.model.config)

    @property
    def name(self) -> str:
        return self.folder.resolve().name

