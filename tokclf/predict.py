"""`tokclf predict`: tag raw text, CoNLL or JSONL files with a model saved by training.

    tokclf predict --model OUTPUT_DIR --input notes.txt --output notes.spans.jsonl

Input and output formats are those of tokclf.formats.registry that read texts and write tags. Long
sentences go through the same windows as training, so every word gets exactly one tag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import numpy as np

from tokclf.runtime.accel import BF16_WEIGHTS_HELP, INFERENCE_DTYPE_HELP, InferenceDtype, DEVICES
from tokclf.runtime.allocator import REUSE_CPU_MEMORY_HELP
from tokclf.runtime.collector import startup_done
from tokclf.data.arrow_data import words_split
from tokclf.checks import at_least, check_windows
from tokclf.components import Parts, add_split, drop_split, setup_inference
from tokclf.inference.decoding import decode
from tokclf.errors import ConfigError, OutputError
from tokclf.inference.scoring import predict_word_scores
from tokclf.formats.base import Format, Reading, Writing
from tokclf.formats.registry import (OUTPUT_CHOICES, TEXT_CHOICES, by_name, input_chunks, output_format_for,
                                     text_format, write_output)
from tokclf.runtime.outdir import (OutputDir, discard, prepare_output_file, prepare_output_folder,
                                  put_in_place)
from tokclf.inference.saved_model import SavedModel, TrainedOptions

CHUNK_RECORDS = 4096  # records read, tagged and written at a time


@dataclass
class PredictConfig:
    _argument_group_name = "Predict"

    model: str = field(metadata={"help": "A folder written by training (model, tokenizer, args.json)."})
    input: str = field(metadata={"help": "The file to tag (a BRAT folder: its .txt files)."})
    output: str = field(metadata={"help": "Where to write the tags."})
    input_format: Literal[TEXT_CHOICES] = field(
        default="auto", metadata={"help": "auto: .jsonl/.json → jsonl with a tokens list, else the span format "
                                          "training detects (their texts are tagged, their spans ignored); .csv → "
                                          "token rows; .conll, a -DOCSTART- line, or blank-line breaks with the same "
                                          "number (≥2) of columns on every other line → conll; a folder of .txt "
                                          "(+ .ann) files, or an .ann file → brat; else text (one "
                                          "sentence per line). .gz, .bz2, .xz, .zst: by the suffix before."})
    output_format: Optional[Literal[OUTPUT_CHOICES]] = field(
        default=None, metadata={"help": "Default: from the --output suffix (.conll, .conllu, .spacy, "
                                        ".jsonl), else conll for conll input, spans for text and prodigy, jsonl for "
                                        "jsonl, conllu, docbin, labelstudio, labelstudio-min, doccano and brat for "
                                        "their own input. labelstudio: one JSON list of tasks with predictions; "
                                        "labelstudio-min: one JSON list of JSON-MIN records; brat: --output is a "
                                        "folder of NAME.txt copies and NAME.ann files."})
    word_split: Optional[Literal["punct", "whitespace", "char"]] = field(
        default=None, metadata={"help": "How text and span-file texts become words. Default: as in training."})
    text_column_name: str = field(
        default="text", metadata={"help": "Span files in and labelstudio out: the key of the text (Label Studio: "
                                          "in each task's data, the $text of the labeling config)."})
    from_name: str = field(default="label", metadata={"help": "labelstudio: the <Labels name> of the labeling config."})
    to_name: str = field(default="text", metadata={"help": "labelstudio: the <Text name> the labels apply to."})
    model_version: Optional[str] = field(
        default=None, metadata={"help": "labelstudio: the predictions' model_version. Default: --model's folder name."})
    decoding: Literal["argmax", "viterbi"] = field(
        default="viterbi", metadata={"help": "viterbi: the best valid IOB2 sequence; argmax: each word alone."})
    per_device_batch_size: int = field(default=64, metadata={"help": "Windows per device per batch."})
    max_length: Optional[int] = field(default=None, metadata={"help": "Default: as in training."})
    stride: Optional[int] = field(default=None, metadata={"help": "Default: as in training."})
    context_sentences: Optional[int] = field(default=None, metadata={"help": "Default: as in training."})
    device: Optional[Literal[DEVICES]] = field(
        default=None, metadata={"help": "Default: what Accelerate picks. Choose a GPU with CUDA_VISIBLE_DEVICES."})
    conll_mode: Literal["replace", "append"] = field(
        default="replace", metadata={"help": "CoNLL in and out: replace the last column, or append a column."})

    inference_dtype: InferenceDtype = field(default="auto", metadata={"help": INFERENCE_DTYPE_HELP})
    bf16_weights: Optional[bool] = field(default=None, metadata={"help": BF16_WEIGHTS_HELP})
    reuse_cpu_memory: Optional[bool] = field(default=None, metadata={"help": REUSE_CPU_MEMORY_HELP})

    def __post_init__(self):
        at_least(self, 1, "per_device_batch_size", "max_length")
        at_least(self, 0, "stride", "context_sentences")
        if Path(self.input).resolve() == Path(self.output).resolve():
            raise ConfigError(f"--output {self.output} is the input file; give another path.")
        if self.word_split is None:  # the split training saw (args.json), before the input is read
            self.word_split = TrainedOptions.from_args(OutputDir(Path(self.model)).read_args()).word_split

    def reading(self) -> Reading:
        """How the input becomes records: predict's token rows always hold `tokens`; span files their text
        under --text_column_name."""
        return Reading(text_key=self.text_column_name, word_split=self.word_split)

    def writing(self, saved: SavedModel, iob: bool) -> Writing:
        """The writers' options, and what the model was trained on (its saved --label_column_name and its
        labels: CoNLL-U output fills the column they belong in)."""
        return Writing(iob=iob, conll_mode=self.conll_mode, from_name=self.from_name, to_name=self.to_name,
                       model_version=self.model_version or saved.name, text_key=self.text_column_name,
                       label_column=saved.trained.label_column_name, labels=tuple(saved.labels.names))


def tag_words(parts: Parts, word_lists, options, batch_size: int, decoding: str, doc_ids=None):
    """Per sentence, the decoded tags and each tag's probability."""
    encoding = {"max_length": options.max_length, "stride": options.stride,
                "context_sentences": options.context_sentences}
    split = add_split(parts, "predict", words_split(word_lists, doc_ids), None, encoding, batch_size, in_memory=True)
    names = parts.labels.names
    try:
        scores = predict_word_scores(parts.model, split.loader, parts.accelerator, split.encoded, len(names),
                                     desc="predicting")
    finally:
        drop_split(parts, "predict")  # predict calls this once per chunk: nothing may pile up
    tags = decode(scores, names, decoding)
    label2id = parts.labels.label2id
    probs = [np.exp(s[np.arange(len(t)), [label2id[x] for x in t]]) for s, t in zip(scores, tags)]
    return tags, probs


def predict(cfg: PredictConfig) -> int:
    """Tag cfg.input into cfg.output; returns the number of records (lines, sentences or rows) tagged.
    The input is read, tagged and written CHUNK_RECORDS records at a time, so memory does not grow with it."""
    input_fmt = text_format(Path(cfg.input), cfg.input_format, cfg.reading())
    saved = SavedModel.load(cfg.model)
    options = saved.trained.overridden(max_length=cfg.max_length, stride=cfg.stride,
                                       context_sentences=cfg.context_sentences)
    check_windows(options.max_length, options.stride, options.context_sentences)
    saved.check(options)
    output_fmt = (by_name(cfg.output_format, "write") if cfg.output_format
                  else output_format_for(Path(cfg.output), input_fmt))
    output = (prepare_output_folder(cfg.output, "--output", Path(cfg.input), output_fmt.folder_files)
              if output_fmt.folder else prepare_output_file(cfg.output, "--output"))

    parts = setup_inference(saved, cfg.device, cfg.inference_dtype, cfg.bf16_weights, cfg.reuse_cpu_memory)
    startup_done()  # the model lives to the end: the garbage collector skips it from here on
    writer = parts.accelerator.is_main_process
    tmp = output.with_name(f".{output.name}.partial")
    if writer:
        discard(tmp)  # what a killed run left: a folder output must not keep its files
    try:
        records = _tag_file(cfg, parts, options, input_fmt, output_fmt, tmp if writer else None, saved)
    except BaseException:
        discard(tmp)
        raise
    if writer:
        put_in_place(tmp, output)  # a run that fails half-way leaves no half-written output
    parts.accelerator.print(f"{cfg.input} ({input_fmt.name}, {records} records) → {cfg.output} ({output_fmt.name})")
    return records


def _tag_file(cfg: PredictConfig, parts: Parts, options, input_fmt: Format, output_fmt: Format, path,
              saved: SavedModel) -> int:
    """Read, tag and write chunk by chunk; every process tags, the main process writes (to `path`)."""
    count = 0

    def tagged():
        nonlocal count
        for inp in input_chunks(Path(cfg.input), input_fmt, cfg.reading(), CHUNK_RECORDS,
                                options.context_sentences > 0, cfg.input_format):
            tags, probs = tag_words(parts, [r.words for r in inp.records], options, cfg.per_device_batch_size,
                                    cfg.decoding, [r.doc for r in inp.records])
            count += len(inp.records)
            yield inp, tags, probs

    writing = cfg.writing(saved, parts.labels.scheme == "iob")
    try:
        write_output(path, output_fmt, tagged(), writing)
    except OutputError as err:
        raise OutputError(f"{cfg.input}: {err}") from None
    return count
