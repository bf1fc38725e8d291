"""A model folder written by training, opened in one place for evaluate and predict: its tokenizer, its
model, its label set, and the options it was trained with that inference must reuse."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tokclf.errors import ModelError
from tokclf.data.labels import LabelSet
from tokclf.runtime.model import check_max_length, load_or_explain, open_tokenizer
from tokclf.runtime.outdir import OutputDir

# Defaults for a folder without args.json (a model trained elsewhere): tokclf's own defaults.
TRAINED_DEFAULTS = {"max_length": 128, "stride": 32, "context_sentences": 0, "tag_scheme": "auto",
                    "eval_decoding": "viterbi", "task_name": "ner", "word_split": "punct",
                    "span_alignment": "strict", "text_column_name": None}


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

    @classmethod
    def from_args(cls, args: dict) -> "TrainedOptions":
        values = {**TRAINED_DEFAULTS, **{k: v for k, v in args.items() if k in TRAINED_DEFAULTS and v is not None}}
        values["decoding"] = values.pop("eval_decoding")
        return cls(**values)

    def overridden(self, **given) -> "TrainedOptions":
        """These options with the ones given on the command line (None: keep the trained value)."""
        chosen = {k: v for k, v in given.items() if v is not None}
        return TrainedOptions(**{**self.__dict__, **chosen})


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
        from transformers import AutoConfig, AutoModelForTokenClassification

        path = Path(folder)
        if not path.is_dir():
            raise ModelError(f"{flag} {folder}: no such folder. Give the --output_dir of a training run.")
        config = load_or_explain("config", AutoConfig.from_pretrained, folder)
        tokenizer = open_tokenizer(folder, config.model_type)
        if all(name == f"LABEL_{i}" for i, name in config.id2label.items()):
            raise ModelError(f"{flag} {folder}: its config.json has only transformers' placeholder labels "
                             f"({', '.join(config.id2label.values())}), so it is not a fine-tuned tagger. Give a "
                             f"folder written by training.")
        model = load_or_explain("model", AutoModelForTokenClassification.from_pretrained, folder)
        names = tuple(model.config.id2label[i] for i in range(model.config.num_labels))
        out = OutputDir(path)
        results = json.loads(out.all_results.read_text()) if out.all_results.is_file() else {}
        return cls(path, tokenizer, model, LabelSet(names), TrainedOptions.from_args(out.read_args()),
                   results.get("mixed_precision"))

    def check(self, options: TrainedOptions) -> None:
        """Refuse options this model cannot run with, before reading any data."""
        check_max_length(options.max_length, self.model.config)

    @property
    def name(self) -> str:
        return self.folder.resolve().name

