"""What a format provides (Format, one per module, listed in tokclf.formats.registry) and what its
readers and writers are given (Reading, Writing). Pure: no torch, no transformers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from tokclf.records import Input, Record, Sentence


@dataclass(frozen=True)
class Reading:
    """How a file becomes records: the options of the commands that decide it."""

    task: str = "ner"
    words_column: Optional[str] = None  # token rows: the words list (default `tokens`, else the first column)
    label_column: Optional[str] = None  # token rows: the tags (default `<task>_tags`); CoNLL: a column number
    text_key: Optional[str] = None  # span files: the key of the text (default `text`; Label Studio: in `data`)
    word_split: str = "punct"  # texts without given tokens: tokclf.formats.words
    span_alignment: str = "strict"  # spans that do not match whole words: tokclf.formats.spans
    labelstudio_source: str = "annotations"  # Label Studio: train on annotations or predictions

    @property
    def text(self) -> str:
        return self.text_key or "text"


@dataclass(frozen=True)
class Writing:
    """What writers need besides the tags: the tag scheme and the options of the output formats."""

    iob: bool = True  # entity tags (IOB2) rather than plain tags (POS)
    conll_mode: str = "replace"  # CoNLL in and out: replace the last column, or append one
    from_name: str = "label"  # Label Studio: the <Labels name=...> of the labeling config
    to_name: str = "text"  # the <Text name=...> it labels
    model_version: str = "tokclf"
    text_key: str = "text"  # the key of the text in a task's data ($text in the config)
    # What the model was trained on: the tags' column (--label_column_name) and its labels, so that a
    # writer with columns (CoNLL-U) fills the column they belong in
    label_column: Optional[str] = None
    labels: tuple[str, ...] = ()


# A tagged chunk: the Input, per record its tags and each tag's probability.
Tagged = tuple[Input, list[list[str]], list]


@dataclass(frozen=True)
class Format:
    """Everything about one format. A format is one module defining FORMAT, plus its line in the registry.

    names      the --input_format/--output_format values, the first is its name (the others: aliases)
    suffixes   file suffixes it claims (detection by suffix first); `catch_all`: it also reads files of
               suffixes no format claims (detection among those by content)
    sniff      (path, Reading) → does this file look like the format? Reads only the first row or bytes
               (CoNLL's table shape: one streamed pass). Asked only when several formats claim the file.
    sentences  (path, Reading) → labelled Sentences, streamed where the format allows (train, evaluate)
    texts      (path, Reading, chunk size, whole documents) → Input chunks of text records (predict)
    write      (tagged chunks, Writing) → output lines without line breaks (predict's output); an output
               file of one of its `output_suffixes` gets it without --output_format
    files      path → the files that make one input (the cache key hashes every one)
    sample     one sentence (`EU rejects German call`) in the format, for the docs and the tests
    binary     the file is bytes, not lines (DocBin): `write` yields bytes, `sample_bytes()` makes the
               sample file and `sample` describes it
    folder_files  the suffixes of the files of a format that is a folder of files (BRAT: .txt and .ann):
               it reads a folder (its `sniff` tells one of its own), `write` yields (path below the output
               folder, text) and predict writes a folder; `sample_files` {name: text} make its sample
    holds_label  label → can `write` put it in a file that reads back to the same label? (a column format
               cannot hold its column separator); `label_rule` says which labels, in words. Predict refuses
               a model with a label the output format cannot hold before it tags anything.
    output_reading  Writing → the Reading that reads `write`'s output back (the column it filled, the
               Label Studio predictions): every writer's output reads back with its own reader.
    """

    names: tuple[str, ...]
    summary: str  # what it is, for the docs table
    suffixes: tuple[str, ...] = ()
    data_dir_suffixes: tuple[str, ...] = ()  # looked for in --data_dir besides `suffixes`
    catch_all: bool = False
    sniff: Optional[Callable[[Path, Reading], bool]] = None
    sentences: Optional[Callable[[Path, Reading], Iterable[Sentence]]] = None
    texts: Optional[Callable[[Path, Reading, int, bool], Iterator[Input]]] = None
    write: Optional[Callable[[Iterable[Tagged], Writing], Iterator[str]]] = None
    output_suffixes: tuple[str, ...] = ()  # output file suffixes that choose this writer
    default_output: Optional[str] = None  # predict's output format for this input (default: this one)
    files: Callable[[Path], list[Path]] = field(default=lambda path: [Path(path)])
    sample: str = ""
    binary: bool = False
    sample_bytes: Optional[Callable[[], bytes]] = None
    folder_files: tuple[str, ...] = ()
    sample_files: Optional[dict[str, str]] = None
    holds_label: Callable[[str], bool] = field(default=lambda label: True)
    label_rule: str = "any label"
    output_reading: Callable[[Writing], Reading] = field(default=lambda writing: own_output_reading(writing))

    @property
    def folder(self) -> bool:
        return bool(self.folder_files)

    @property
    def name(self) -> str:
        return self.names[0]


def own_output_reading(writing: Writing, **options) -> Reading:
    """The Reading of a writer's output: the tags as written (entity tags for an entity model)."""
    return Reading(task="ner" if writing.iob else "pos", text_key=writing.text_key, **options)


def without_whitespace(text: str) -> bool:
    """A label or word a whitespace-separated column holds: non-empty and free of spaces, tabs and breaks."""
    return bool(text) and not any(c.isspace() for c in text)


# (index of a sentence's first line, indexes of its words' lines, its Record) of numbered lines
LineSentences = Callable[[Iterator[tuple[int, str]]], Iterable[tuple[int, list[int], Record]]]


def line_chunks(lines: Iterable[str], sentences: LineSentences, size: int, whole_documents: bool) -> Iterator[Input]:
    """Predict's chunks of a format whose output keeps every input line (CoNLL, CoNLL-U): each holds its
    records, its lines and per line the (record, word) on it. `sentences` turns the (0-based index, line)
    pairs it is given into (index of the sentence's first line, indexes of its words' lines, Record); a
    chunk ends before a sentence's first line (with `whole_documents`, before a new document's)."""
    held: list[str] = []  # the lines read and not yet handed out
    start = 0  # the index of held[0]

    def numbered() -> Iterator[tuple[int, str]]:
        for index, line in enumerate(lines):
            held.append(line)
            yield index, line

    records: list[Record] = []
    at: dict[int, tuple[int, int]] = {}
    for first, word_lines, record in sentences(numbered()):
        if len(records) >= size and (not whole_documents or record.doc != records[-1].doc):
            cut = first - start
            yield Input(records, held[:cut], [at.get(start + i) for i in range(cut)])
            del held[:cut]
            start, records, at = start + cut, [], {}
        at.update({index: (len(records), j) for j, index in enumerate(word_lines)})
        records.append(record)
    yield Input(records, list(held), [at.get(start + i) for i in range(len(held))])


def chunked(records: Iterable[Record], size: int, whole_documents: bool) -> Iterator[Input]:
    """Records in consecutive Inputs of about `size` (one, maybe empty, for an empty file). With
    `whole_documents` a chunk ends only between records of different or unknown documents, so that
    --context_sentences sees every neighbour."""
    batch: list[Record] = []
    for record in records:
        if len(batch) >= size and (not whole_documents or batch[-1].doc is None or batch[-1].doc != record.doc):
            yield Input(batch)
            batch = []
        batch.append(record)
    yield Input(batch)
