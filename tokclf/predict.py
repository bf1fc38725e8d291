"""`python -m tokclf predict`: tag raw text, CoNLL or JSONL files with a model saved by training.

    python -m tokclf predict --model OUTPUT_DIR --input notes.txt --output notes.spans.jsonl

Inputs (--input_format; `auto` picks by the rule in `detect_format`):
  text   one sentence or paragraph per line; an empty line is an empty record, never dropped.
         Words follow WORD_RULE (tokclf.words), and each keeps its character offsets in its line.
  conll  words in the first column; blank lines end sentences; -DOCSTART- lines end sentences too.
  jsonl  one object per non-blank line with a "tokens" list.
Outputs (--output_format; default conll for conll input, spans for text, jsonl for jsonl):
  conll  for conll input, every input line in order: a word line gets its tag, a -DOCSTART- line O,
         blank lines stay blank (--conll_mode replace: the tag replaces the last column, or is added
         when the line holds only the word; append: it is always added as a new column). For other
         input: `word tag` lines, and one blank line after each record (also after an empty one).
  jsonl  {"tokens", "tags"} per record; a JSONL row keeps its other fields ("tags" is overwritten).
  spans  {"text", "entities": [{"text", "label", "start", "end", "score"}]} per record: for text
         input `text` is the line, otherwise the words joined by single spaces; text[start:end] is the
         entity's text; score is the mean probability of its words' tags (4 decimals). An entity is
         a B-X I-X* run (see `entity_spans`); with plain tags (POS) every word is a span of its tag.
A record is a text line, a CoNLL sentence or a JSONL row. Input and output are UTF-8; a BOM is dropped,
lines end in \\n or \\r\\n and are written with \\n.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal, Optional

import numpy as np

from tokclf.errors import ConfigError, DataError, ModelError
from tokclf.words import WORD_RULE, split_words

DOCSTART = "-DOCSTART-"
DEFAULT_OUTPUT = {"conll": "conll", "text": "spans", "jsonl": "jsonl"}


@dataclass
class PredictConfig:
    model: str = field(metadata={"help": "A folder written by training (model, tokenizer, args.json)."})
    input: str = field(metadata={"help": "The file to tag."})
    output: str = field(metadata={"help": "Where to write the tags."})
    input_format: Literal["auto", "text", "conll", "jsonl"] = field(
        default="auto", metadata={"help": "auto: .jsonl/.json → jsonl; .conll, a -DOCSTART- line, or blank-line "
                                          "breaks with the same number (≥2) of columns on every other line → "
                                          "conll; else text (one sentence per line)."})
    output_format: Optional[Literal["conll", "jsonl", "spans"]] = field(
        default=None, metadata={"help": "Default: conll for conll input, spans for text, jsonl for jsonl."})
    decoding: Literal["argmax", "viterbi"] = field(
        default="viterbi", metadata={"help": "viterbi: the best valid IOB2 sequence; argmax: each word alone."})
    per_device_batch_size: int = field(default=64, metadata={"help": "Windows per device per batch."})
    max_length: Optional[int] = field(default=None, metadata={"help": "Default: as in training."})
    stride: Optional[int] = field(default=None, metadata={"help": "Default: as in training."})
    context_sentences: Optional[int] = field(default=None, metadata={"help": "Default: as in training."})
    device: Optional[Literal["cpu", "cuda", "mps", "xpu"]] = field(
        default=None, metadata={"help": "Default: what Accelerate picks. Choose a GPU with CUDA_VISIBLE_DEVICES."})
    conll_mode: Literal["replace", "append"] = field(
        default="replace", metadata={"help": "CoNLL in and out: replace the last column, or append a column."})

    def __post_init__(self):
        if self.per_device_batch_size < 1:
            raise ConfigError(f"--per_device_batch_size must be at least 1, got {self.per_device_batch_size}.")
        if Path(self.input).resolve() == Path(self.output).resolve():
            raise ConfigError(f"--output {self.output} is the input file; give another path.")


@dataclass
class Record:
    """What one output record describes: a text line, a CoNLL sentence or a JSONL row."""

    words: list[str]
    text: str  # the line, or the words joined by single spaces
    offsets: list[tuple[int, int]]  # each word's [start, end) in text
    row: Optional[dict] = None  # the JSONL object, whose other fields jsonl output keeps
    doc: Optional[int] = None  # document: -DOCSTART- blocks (CoNLL), blank-line paragraphs (text), doc_id (JSONL)


@dataclass
class Input:
    """A read input file: its records and, for CoNLL, its lines."""

    format: str
    records: list[Record]
    lines: list[str] = field(default_factory=list)  # conll: every line, so that output can reproduce them
    # conll: per line the (record, word) it holds; None on blank and -DOCSTART- lines
    line_words: list[Optional[tuple[int, int]]] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------------
# Reading


def read_lines(path: Path) -> list[str]:
    """The file's lines without their \\n or \\r\\n; a final line break ends the last line."""
    if not path.is_file():
        raise DataError(f"{path}: no such file. Check --input.")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line_no = raw[: err.start].count(b"\n") + 1
        raise DataError(f"{path}:{line_no}: not UTF-8. Convert the file, e.g. `iconv -f latin1 -t utf-8`.") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def detect_format(path: Path, lines: list[str]) -> str:
    """conll for .conll, for a file with a -DOCSTART- line, or for blank-line sentence breaks plus the same
    number (≥2) of columns on every non-blank line; text otherwise. Prose lines vary in length, column
    files do not. A words-only CoNLL file reads as text: pass --input_format conll."""
    if path.suffix == ".conll":
        return "conll"
    filled = [line.split() for line in lines if line.strip()]
    if any(columns[0] == DOCSTART for columns in filled):
        return "conll"
    widths = {len(columns) for columns in filled}
    has_breaks = len(filled) < len(lines)
    return "conll" if has_breaks and len(widths) == 1 and min(widths) >= 2 else "text"


def joined(words: list[str], row: Optional[dict] = None, doc: Optional[int] = None) -> Record:
    """A record of given words: its text is the words joined by single spaces."""
    offsets, start = [], 0
    for word in words:
        offsets.append((start, start + len(word)))
        start += len(word) + 1
    return Record(words, " ".join(words), offsets, row, doc)


def read_text(lines: list[str]) -> Input:
    records, doc = [], 0
    for line in lines:
        words, offsets = split_words(line)
        records.append(Record(words, line, offsets, doc=doc))
        doc += not words  # a blank line ends a document (for --context_sentences)
    return Input("text", records)


def read_conll(lines: list[str]) -> Input:
    """Sentences of the first column; every line is kept with the (sentence, word) it holds."""
    records, line_words, words, doc = [], [], [], 0
    for line in lines:
        columns = line.split()
        if columns and columns[0] != DOCSTART:
            line_words.append((len(records), len(words)))
            words.append(columns[0])
            continue
        line_words.append(None)
        if words:
            records.append(joined(words, doc=doc))
            words = []
        if columns:  # -DOCSTART-
            doc += 1
    if words:
        records.append(joined(words, doc=doc))
    return Input("conll", records, lines, line_words)


def read_jsonl(path: Path, lines: list[str]) -> Input:
    records = []
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{line_no}: not valid JSON ({err.msg}). Write one object per line.") from None
        tokens = row.get("tokens") if isinstance(row, dict) else None
        if not isinstance(tokens, list):
            raise DataError(f"{path}:{line_no}: expected an object with a \"tokens\" list, such as "
                            f"{{\"tokens\": [\"EU\", \"rejects\"]}}; got {line[:60]!r}.")
        doc = row.get("doc_id")
        records.append(joined([str(t) for t in tokens], row, doc if isinstance(doc, int) else None))
    return Input("jsonl", records)


def read_input(path: Path, input_format: str) -> Input:
    """The records of a file in the given format, or in the one `detect_format` picks for auto."""
    if input_format == "auto" and path.suffix in (".jsonl", ".json"):
        input_format = "jsonl"
    lines = read_lines(path)
    if input_format == "auto":
        input_format = detect_format(path, lines)
    if input_format == "jsonl":
        return read_jsonl(path, lines)
    return read_conll(lines) if input_format == "conll" else read_text(lines)


# ----------------------------------------------------------------------------------------------------
# Tagging


def accelerator_on(device: Optional[str]):
    """Accelerate's device, or the CPU when asked; a named device that is not there is an error."""
    from accelerate import Accelerator

    from tokclf.runs import check_one_group, make_cpu_group_if_needed

    accelerator = Accelerator(cpu=device == "cpu" or make_cpu_group_if_needed())
    check_one_group(accelerator)
    if device not in (None, "cpu") and accelerator.device.type != device:
        raise ConfigError(f"--device {device}: no such device here (Accelerate would use "
                          f"{accelerator.device.type}). Leave --device out to use what there is.")
    return accelerator


def load_model(model_dir: str):
    """(tokenizer, model, label names in id order) of a saved model folder."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from tokclf.features import require_fast

    if not Path(model_dir).is_dir():
        raise ModelError(f"--model {model_dir}: no such folder. Give the --output_dir of a training run.")
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForTokenClassification.from_pretrained(model_dir)
    except OSError as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"--model {model_dir}: cannot load a model and tokenizer ({first_line}). "
                         f"Give a folder written by training.") from None
    require_fast(tokenizer, model_dir)
    return tokenizer, model, tuple(model.config.id2label[i] for i in range(model.config.num_labels))


def tag_words(model, tokenizer, accelerator, names, word_lists, max_length, stride, batch_size, decoding,
              doc_ids=None, context_sentences=0):
    """Per sentence, the decoded tags and each tag's probability. Long sentences go through the same
    windows as training, so every word gets exactly one tag."""
    from tokclf.batching import TokenClassificationCollator, eval_loader
    from tokclf.decoding import decode
    from tokclf.evaluate import predict_word_scores
    from tokclf.features import encode

    label2id = {name: i for i, name in enumerate(names)}
    encoded = encode(tokenizer, word_lists, None, label2id, max_length, stride, doc_ids=doc_ids,
                     context_sentences=context_sentences)
    loader = accelerator.prepare(eval_loader(encoded, TokenClassificationCollator(tokenizer), batch_size))
    scores = predict_word_scores(model, loader, accelerator, encoded, len(names), desc="predicting")
    tags = decode(scores, names, decoding)
    probs = [np.exp(s[np.arange(len(t)), [label2id[x] for x in t]]) for s, t in zip(scores, tags)]
    return tags, probs


# ----------------------------------------------------------------------------------------------------
# Writing


def entity_spans(record: Record, tags: list[str], probs: np.ndarray, iob: bool) -> list[dict]:
    """Entities as seqeval and conlleval read IOB2: B-X, or an I-X that does not continue an X (only
    argmax emits those), starts a span that the following I-X extend. With plain tags (POS) every word
    is a span of its tag."""
    spans = []  # [first word, last word, label]
    for i, tag in enumerate(tags):
        label = tag[2:] if iob else tag
        if iob and tag == "O":
            continue
        if iob and tag.startswith("I-") and spans and spans[-1][1] == i - 1 and spans[-1][2] == label:
            spans[-1][1] = i
            continue
        spans.append([i, i, label])
    out = []
    for first, last, label in spans:
        start, end = record.offsets[first][0], record.offsets[last][1]
        out.append({"text": record.text[start:end], "label": label, "start": start, "end": end,
                    "score": round(float(np.mean(probs[first:last + 1])), 4)})
    return out


def with_tag(line: str, tag: str, mode: str) -> str:
    """A CoNLL line with the tag replacing its last column (replace, when it has two or more) or added
    as a new one, separated by a tab if the line uses tabs. Trailing whitespace is dropped."""
    body = line.rstrip()
    columns = body.split()
    if mode == "replace" and len(columns) > 1:
        return body[: len(body) - len(columns[-1])] + tag
    return body + ("\t" if "\t" in body else " ") + tag


def output_lines(inp: Input, tags, probs, output_format: str, conll_mode: str, iob: bool) -> Iterator[str]:
    """The output file's lines, without line breaks."""
    if output_format == "conll" and inp.format == "conll":
        for line, at in zip(inp.lines, inp.line_words):
            yield line if not line.strip() else with_tag(line, "O" if at is None else tags[at[0]][at[1]], conll_mode)
    elif output_format == "conll":
        for record, record_tags in zip(inp.records, tags):
            yield from (f"{word} {tag}" for word, tag in zip(record.words, record_tags))
            yield ""
    elif output_format == "jsonl":
        for record, record_tags in zip(inp.records, tags):
            yield json.dumps({"tokens": record.words, **(record.row or {}), "tags": record_tags}, ensure_ascii=False)
    else:
        for record, record_tags, record_probs in zip(inp.records, tags, probs):
            entities = entity_spans(record, record_tags, record_probs, iob)
            yield json.dumps({"text": record.text, "entities": entities}, ensure_ascii=False)


def predict(cfg: PredictConfig) -> int:
    """Tag cfg.input into cfg.output; returns the number of records (lines, sentences or rows) tagged."""
    from tokclf.decoding import is_iob
    from tokclf.score import training_args

    trained = training_args(cfg.model)
    max_length = cfg.max_length or trained.get("max_length", 128)
    stride = cfg.stride if cfg.stride is not None else trained.get("stride", 32)
    context = cfg.context_sentences if cfg.context_sentences is not None else trained.get("context_sentences", 0)
    inp = read_input(Path(cfg.input), cfg.input_format)
    output_format = cfg.output_format or DEFAULT_OUTPUT[inp.format]

    accelerator = accelerator_on(cfg.device)
    tokenizer, model, names = load_model(cfg.model)
    model = accelerator.prepare(model)
    tags, probs = tag_words(model, tokenizer, accelerator, names, [r.words for r in inp.records], max_length,
                            stride, cfg.per_device_batch_size, cfg.decoding, [r.doc for r in inp.records], context)
    if accelerator.is_main_process:
        output = Path(cfg.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("w", encoding="utf-8") as f:
            for line in output_lines(inp, tags, probs, output_format, cfg.conll_mode, is_iob(names)):
                f.write(line + "\n")
    accelerator.print(f"{cfg.input} ({inp.format}, {len(inp.records)} records) → {cfg.output} ({output_format})")
    return len(inp.records)


def predict_main(argv=None):
    """`python -m tokclf predict ...`: errors of the project's own types become one line and exit 2."""
    from transformers import HfArgumentParser

    from tokclf.cli import run_guarded

    def _run():
        parser = HfArgumentParser(PredictConfig, prog="python -m tokclf predict", epilog=f"Text input: {WORD_RULE}")
        (cfg,) = parser.parse_args_into_dataclasses(argv)
        return predict(cfg)

    return run_guarded(_run)
