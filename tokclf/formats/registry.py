"""The formats, in one table (as spaCy's CONVERTERS): detection, the commands' format choices, the
--data_dir suffixes, the docs table and the format tests all come from FORMATS.

Detection (--input_format auto) goes by suffix, then content: the formats that read the file for the
command's purpose (labelled sentences for train and evaluate, texts for predict) and claim its suffix
(the one before .gz/.bz2/.xz/.zst), else those that read any other file (`catch_all`); of several, the
first whose `sniff` accepts the file's first row or lines, else the first of them, whose reader then
says what is wrong; where none of several formats of the file's suffix accepted it, that error is a
refusal saying what the file looked like and which formats there are (`refusal`; `read_or_refuse`, for
train, evaluate and predict alike). So `.json`/`.jsonl` files go by their first row (a words list:
token rows; a Label Studio task or JSON-MIN record; a doccano, Prodigy or spans row), `.csv` files are
token rows, `.conllu` and `.spacy` files CoNLL-U and DocBin, and other files CoNLL (CoNLL-U by content)
for training, CoNLL, CoNLL-U or raw text (by content) for predict.

Nothing outside tokclf/formats/ branches on a format's name: commands ask this module.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, TypeVar

from tokclf.errors import ConfigError, DataError
from tokclf.formats import (brat, conll, conllu, docbin, doccano, labelstudio, labelstudio_min, plaintext, prodigy,
                            rows, spans_output)
from tokclf.formats.base import Format, Reading, Tagged, Writing
from tokclf.formats.span_files import SpanReader
from tokclf.formats.textfile import check_file, first_json_row, logical_suffix, text_lines
from tokclf.records import Input, Sentence
from tokclf.formats.spans import AlignmentReport, SpanSentence

T = TypeVar("T")

# The order is the order of detection among formats that claim the same files, and of the choices.
FORMATS: tuple[Format, ...] = (
    conll.FORMAT,
    conllu.FORMAT,
    rows.FORMAT,
    plaintext.FORMAT,
    labelstudio.FORMAT,
    labelstudio_min.FORMAT,
    doccano.FORMAT,
    prodigy.FORMAT,
    docbin.FORMAT,
    brat.FORMAT,
    spans_output.FORMAT,
)
# The span formats' readers (aligned records and their report, for read_span_file), found in the table.
SPAN_READERS = {fmt.name: fmt.sentences.__self__ for fmt in FORMATS
                if isinstance(getattr(fmt.sentences, "__self__", None), SpanReader)}
ROLES = {"sentences": "read as labelled data (train, evaluate)", "texts": "read by predict",
         "write": "written by predict"}


def names_for(role: str) -> tuple[str, ...]:
    """Every name (aliases included) of the formats that play role: sentences, texts or write."""
    return tuple(name for fmt in FORMATS if getattr(fmt, role) is not None for name in fmt.names)


SENTENCE_CHOICES = ("auto", *names_for("sentences"))  # --input_format of train and evaluate
TEXT_CHOICES = ("auto", *names_for("texts"))  # --input_format of predict
OUTPUT_CHOICES = names_for("write")  # --output_format of predict
# The suffixes looked for in --data_dir after each split's name, in order.
DATA_DIR_SUFFIXES = tuple(dict.fromkeys(s for fmt in FORMATS if fmt.sentences
                                        for s in fmt.data_dir_suffixes + fmt.suffixes))


def by_name(name: str, role: str = "sentences") -> Format:
    """The format called name (or an alias) that plays role; a ConfigError names the ones that do."""
    for fmt in FORMATS:
        if name in fmt.names and getattr(fmt, role) is not None:
            return fmt
    raise ConfigError(f"format {name!r} cannot be {ROLES[role]}; expected one of {', '.join(names_for(role))}.")


def detect(path: Path, reading: Reading = Reading(), input_format: str = "auto", role: str = "sentences",
           what: str = "") -> Format:
    """input_format's Format, or for auto the one the file's suffix and content show (module docstring).
    `what` is added to the message about a path that is not a file (e.g. ` Check --input.`)."""
    path = Path(path)
    if path.is_dir():
        return folder_format(path, reading, input_format, role, what)
    check_file(path, what)
    if input_format != "auto":
        return by_name(input_format, role)
    candidates = [fmt for fmt in FORMATS if getattr(fmt, role) is not None]
    suffix = logical_suffix(path)
    claimants = [f for f in candidates if suffix in f.suffixes] or [f for f in candidates if f.catch_all]
    if len(claimants) == 1:
        return claimants[0]
    return next((fmt for fmt in claimants if fmt.sniff(path, reading)), claimants[0])


def folder_format(path: Path, reading: Reading, input_format: str, role: str, what: str = "") -> Format:
    """The format of a folder: one of the formats that read folders (BRAT), by name or by its content;
    else the error of a folder given for a file."""
    folders = [fmt for fmt in FORMATS if fmt.folder and getattr(fmt, role) is not None]
    named = by_name(input_format, role) if input_format != "auto" else None
    for fmt in folders:
        if fmt is named or (named is None and fmt.sniff(path, reading)):
            return fmt
    whole = (f" Only {', '.join(f.name for f in folders)} folders (of "
             f"{', '.join(s for f in folders for s in f.folder_files)} files) are read whole." if folders else "")
    check_file(path, whole + what)
    raise AssertionError("check_file raises for a folder")


def reads_folder(path: Path) -> bool:
    """Does a format read this folder as labelled data (--data_dir's split folders)?"""
    return any(fmt.folder and fmt.sentences and fmt.sniff(Path(path), Reading()) for fmt in FORMATS)


def guessed(path: Path, fmt: Format, reading: Reading, role: str = "sentences") -> bool:
    """Did detection fall back to fmt: no format of the file's suffix accepted it by content? (Files of
    unclaimed suffixes go to their catch-all reader: no guess.)"""
    if Path(path).is_dir():
        return False  # a folder's format is chosen by its content (folder_format)
    suffix = logical_suffix(Path(path))
    claimants = [f for f in FORMATS if getattr(f, role) is not None and suffix in f.suffixes]
    return len(claimants) > 1 and not any(f.sniff(path, reading) for f in claimants)


def refusal(path: Path, fmt: Format, reading: Reading, role: str, err: DataError) -> DataError:
    """The error of a file no format accepted, whose fallback reader failed too: what it looked like, what
    the fallback said, and the formats there are."""
    said = str(err).removeprefix(str(path)).lstrip(": ")
    return DataError(f"{path}: not a format tokclf reads (looked like: {looked_like(path, reading)}); read as "
                     f"{fmt.name}: {said} Known: {known_formats(role)}. Pass --input_format, or convert the file.")


def looked_like(path: Path, reading: Reading = Reading()) -> str:
    """What a file none of its suffix's formats accepts starts with, in words, for the refusal."""
    row = first_json_row(path)
    if row is None:
        return "no JSON object at its start"
    first = next((line.lstrip() for line in text_lines(path, allow_empty=True) if line.strip()), "")
    shape = "JSON list of objects" if first.startswith("[") else "JSON Lines of objects"
    keys = sorted(row)
    missing = [f'"{key}"' for key in dict.fromkeys(("data", reading.text)) if key not in row]
    without = f" and without {' or '.join(missing)}" if missing else ""
    return f"{shape} with keys {', '.join(keys[:8])}{', ...' if len(keys) > 8 else ''}{without}"


def known_formats(role: str) -> str:
    """The formats that play role, each with the suffixes it claims."""
    return "; ".join(f"{fmt.name} ({', '.join(fmt.suffixes + ('other files',) * fmt.catch_all)})"
                     for fmt in FORMATS if getattr(fmt, role) is not None)


def reading_of(task: str, text_column: Optional[str] = None, label_column: Optional[str] = None,
               word_split: str = "punct", span_alignment: str = "strict") -> Reading:
    """The Reading of training's and evaluate's options: --text_column_name names the words of token rows
    and the text of span files alike."""
    return Reading(task=task, words_column=text_column, label_column=label_column, text_key=text_column,
                   word_split=word_split, span_alignment=span_alignment)


def read_or_refuse(read: Callable[[], Iterable[T]], path: Path, fmt: Format, reading: Reading, role: str,
                   input_format: str) -> Iterator[T]:
    """What read() yields (a reader's sentences, or predict's chunks), where a DataError before the first
    item becomes the `refusal` when auto detection only guessed fmt (`guessed`). A named --input_format
    keeps its reader's own error: the user chose that reader, no guess was made. read is called inside,
    so that a reader failing on its first call counts too."""
    empty = True
    try:
        for item in read():
            empty = False
            yield item
    except DataError as err:
        if input_format == "auto" and empty and guessed(path, fmt, reading, role):
            raise refusal(path, fmt, reading, role, err) from None
        raise


def iter_sentences(path: Path, reading: Reading, input_format: str = "auto") -> Iterator[Sentence]:
    """The labelled sentences of a file, one at a time (streamed where the format allows)."""
    path = Path(path)
    fmt = detect(path, reading, input_format)
    empty = True
    for sentence in read_or_refuse(lambda: fmt.sentences(path, reading), path, fmt, reading, "sentences",
                                   input_format):
        empty = False
        yield sentence
    if empty:
        raise DataError(f"{path}: holds no sentences (only blank or -DOCSTART- lines).")


def read_file(path: str | Path, task: str, text_column: Optional[str] = None, label_column: Optional[str] = None, *,
              input_format: str = "auto", word_split: str = "punct", span_alignment: str = "strict") -> list[Sentence]:
    """The labelled sentences of a file as a list, from the commands' option values."""
    reading = reading_of(task, text_column, label_column, word_split, span_alignment)
    return list(iter_sentences(Path(path), reading, input_format))


def input_files(path: Path, fmt: Format) -> list[Path]:
    """The files that make one input of fmt (the cache key hashes every one)."""
    return fmt.files(Path(path))


# ----------------------------------------------------------------------------------------------------
# Span files: the aligned records and their report


def detect_span_format(path: Path, reading: Reading = Reading()) -> str:
    """The span format of a file by its first row (as `detect`, among the span formats only)."""
    path = Path(path)
    if path.is_dir():
        return folder_format(path, reading, "auto", "sentences").name
    check_file(path)
    for fmt in FORMATS:
        if fmt.name in SPAN_READERS and logical_suffix(path) in fmt.suffixes and fmt.sniff(path, reading):
            return fmt.name
    row = first_json_row(path)
    if row is None:
        raise DataError(f"{path}: the file is empty.")
    raise DataError(f"{path}:1: cannot tell the span format (keys {sorted(row)}). Pass the format: "
                    f"{', '.join(SPAN_READERS)}.")


def read_span_file(path: str | Path, span_format: str = "auto", *, word_split: str = "punct", alignment: str = "strict",
                   text_column: str = "text", labelstudio_source: str = "annotations"
                   ) -> tuple[list[SpanSentence], AlignmentReport]:
    """The records of a span file and what alignment did to them (report.summary(path) for the log).
    Under strict alignment every problem of the file is collected first, then one DataError lists them."""
    path = Path(path)
    reading = Reading(text_key=text_column, word_split=word_split, span_alignment=alignment,
                      labelstudio_source=labelstudio_source)
    name = detect_span_format(path, reading) if span_format == "auto" else span_format
    if name not in SPAN_READERS:
        raise ConfigError(f"span format {span_format!r}: expected auto or one of {', '.join(SPAN_READERS)}.")
    if alignment not in ("strict", "expand", "contract"):
        raise ConfigError(f"--span_alignment {alignment!r}: expected one of strict, expand, contract.")
    return SPAN_READERS[name].aligned(path, reading)


# ----------------------------------------------------------------------------------------------------
# Predict: texts in, tags out


def text_format(path: Path, input_format: str = "auto", reading: Reading = Reading()) -> Format:
    """The format predict reads path in."""
    return detect(path, reading, input_format, role="texts", what=" Check --input.")


def input_chunks(path: Path, fmt: Format, reading: Reading, size: int, whole_documents: bool = False,
                 input_format: str = "auto") -> Iterator[Input]:
    """The file's text records in consecutive chunks of about `size` (the first may be empty for an empty
    file); with `whole_documents` a chunk ends only where a document does (--context_sentences).
    input_format is the one fmt was chosen by: under auto, a reader failing before its first chunk on a file
    no format accepted gives the refusal (`read_or_refuse`: the readers hand records out by the chunk, and
    the refusal quotes the reader's error, which names the row)."""
    path = Path(path)
    return read_or_refuse(lambda: fmt.texts(path, reading, size, whole_documents), path, fmt, reading, "texts",
                          input_format)


def read_input(path: Path, input_format: str = "auto", reading: Reading = Reading()) -> Input:
    """All of a file's text records in one Input."""
    fmt = text_format(path, input_format, reading)
    return next(iter(input_chunks(path, fmt, reading, sys.maxsize, input_format=input_format)))


def output_format_for(output_path: Path, input_fmt: Format) -> Format:
    """Without --output_format: the output file's suffix decides (.conll, .jsonl, .json), else the input's
    own output format. A suffix that the input's own output format claims keeps it (so a .jsonl file gets
    the spans of text input, the doccano rows of doccano input)."""
    own = by_name(input_fmt.default_output or input_fmt.name, "write")
    suffix = logical_suffix(Path(output_path))
    if suffix in own.output_suffixes:
        return own
    return next((fmt for fmt in FORMATS if fmt.write and suffix in fmt.output_suffixes), own)


def output_lines(fmt: Format, tagged: Iterable[Tagged], writing: Writing) -> Iterator[str]:
    """The output file's lines, without line breaks, for the tagged chunks as they come."""
    return fmt.write(tagged, writing)


def check_labels(fmt: Format, writing: Writing) -> None:
    """A model's label that fmt cannot hold (`Format.holds_label`) is refused before anything is written or
    tagged, naming the output formats that hold every label of the model."""
    unheld = [label for label in writing.labels if not fmt.holds_label(label)]
    if unheld:
        able = [f.name for f in FORMATS if f.write and all(map(f.holds_label, writing.labels))]
        raise ConfigError(f"--output_format {fmt.name} cannot hold the model's label(s) "
                          f"{', '.join(map(repr, unheld))}: it holds {fmt.label_rule}. Choose "
                          f"--output_format {' or '.join(able)}.")


def write_output(path: Optional[Path], fmt: Format, tagged: Iterable[Tagged], writing: Writing) -> None:
    """Write the tagged chunks to path in fmt: its lines, or its bytes for a binary format (DocBin). With
    no path (a process that tags but does not write) the chunks are only consumed."""
    check_labels(fmt, writing)  # before the first chunk is tagged (tagged is lazy) and the file is opened
    if path is None:
        for _ in fmt.write(tagged, writing):
            pass
        return
    if fmt.folder:
        Path(path).mkdir(parents=True, exist_ok=True)
        for name, text in fmt.write(tagged, writing):
            target = Path(path, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("w", encoding="utf-8", newline="") as f:
                f.write(text)
        return
    with Path(path).open("wb") if fmt.binary else Path(path).open("w", encoding="utf-8") as f:
        for part in fmt.write(tagged, writing):
            f.write(part if fmt.binary else part + "\n")
