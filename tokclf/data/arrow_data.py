"""Sentences in Arrow: each split a `datasets.Dataset` in the datasets cache, memory-mapped, so every
process of a machine shares one copy through the page cache and nothing holds a split as Python objects.

    file_split(path, reading, ...) a file's sentences, streamed by its format's reader (tokclf.formats)
                                  into the cache, keyed by a hash of the bytes of every file of the input
                                  and the reading options: a second run reads the files once (to hash
                                  them) and parses nothing
    hub_splits(name, ...)         a Hub dataset, Arrow end to end (ClassLabel ids become names in a map)
    sentences_split(sentences)    sentences held in Python, in memory (predict's records, tests)
    split_datasets(data)          {split: SentenceSplit} for the data options

Columns: words, tags (lists of strings), doc_id, line (CoNLL: the first word's line), row (JSON/CSV/Hub:
where the row was), n_words. No torch, no transformers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional, Sequence

if TYPE_CHECKING:
    import datasets
    import numpy as np

from tokclf.arguments import DataArguments
from tokclf.errors import DataError
from tokclf.formats.base import Reading
from tokclf.formats.registry import detect, input_files, iter_sentences, reading_of
from tokclf.formats.rows import pick_column, pick_tags_column
from tokclf.formats.textfile import check_file
from tokclf.records import Sentence
from tokclf.data.split_files import split_files

READER_VERSION = 2  # bump when a reader changes what it yields for the same file
CHUNK = 8192  # rows read at a time when a column is walked in Python


def sentence_features() -> "datasets.Features":
    from datasets import Features, List, Value

    return Features({"words": List(Value("string")), "tags": List(Value("string")), "doc_id": Value("int64"),
                     "line": Value("int64"), "row": Value("string"), "n_words": Value("int32")})


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """No progress bar per split and map: they would bury tokclf's own output."""
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    were_off = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not were_off:
            enable_progress_bars()


@dataclass
class SentenceSplit:
    """One split's sentences in Arrow and where they were read (for error messages)."""

    dataset: object  # datasets.Dataset with the columns above
    source: str

    def __len__(self) -> int:
        return self.dataset.num_rows

    def head(self, limit: Optional[int]) -> "SentenceSplit":
        if not limit or limit >= len(self):
            return self
        return SentenceSplit(self.dataset.select(range(limit)), self.source)  # contiguous: a slice, no copy

    @property
    def tags(self) -> "ColumnRows":
        return ColumnRows(self.dataset, "tags")

    @property
    def words(self) -> "ColumnRows":
        return ColumnRows(self.dataset, "words")

    @property
    def sentences(self) -> "SentenceRows":
        return SentenceRows(self)

    def distinct_tags(self) -> list[str]:
        """Every tag that occurs, sorted, computed in Arrow."""
        import pyarrow.compute as pc

        return sorted(pc.unique(pc.list_flatten(self.dataset.data.column("tags"))).to_pylist())

    def words_per_sentence(self) -> "np.ndarray":
        import numpy as np

        return np.asarray(self.dataset.data.column("n_words"), dtype=np.int64)


class ColumnRows(Sequence):
    """One column as a read-only sequence of Python values, walked CHUNK rows at a time."""

    def __init__(self, dataset, column: str):
        self.rows, self.column = dataset.select_columns([column]), column

    def __len__(self) -> int:
        return self.rows.num_rows

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.rows[i][self.column]
        return self.rows[int(i)][self.column]

    def __iter__(self) -> Iterator:
        for batch in self.rows.iter(batch_size=CHUNK):
            yield from batch[self.column]


class SentenceRows(Sequence):
    """Sentence i as a tokclf.records.Sentence, so that errors about a tag name `file:line`."""

    def __init__(self, split: SentenceSplit):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i):
        row = self.split.dataset[int(i)]
        return Sentence(row["words"], row["tags"], row["doc_id"], self.split.source, row["line"], row["row"])


def cache_folder() -> Path:
    import datasets

    return Path(datasets.config.HF_DATASETS_CACHE) / "tokclf"


def _write_sentences(sentences, target: Path) -> None:
    """Sentences → an Arrow file, CHUNK rows at a time (pyarrow converts each batch of lists in C).
    Written under a temporary name and renamed, so a kill mid-write or a concurrent run leaves no half file."""
    import pyarrow as pa
    from datasets.arrow_writer import ArrowWriter

    features = sentence_features()
    tmp = target.with_name(f".tmp-{target.name}-{uuid.uuid4().hex[:8]}")
    columns = {name: [] for name in features}

    def flush():
        writer.write_table(pa.Table.from_pydict(columns, schema=features.arrow_schema))
        for values in columns.values():
            values.clear()

    try:
        with ArrowWriter(features=features, path=str(tmp)) as writer:
            for s in sentences:
                for name, value in zip(columns, (s.words, s.tags, s.doc_id, s.line, s.row, len(s.words))):
                    columns[name].append(value)
                if len(columns["words"]) >= CHUNK:
                    flush()
            flush()
            writer.finalize()
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def file_key(paths: list[Path], options: list) -> str:
    """xxhash of every file's name and bytes, read in 16 MiB blocks, and of the reading options."""
    import xxhash

    digest = xxhash.xxh64()
    for path in paths:
        check_file(path)
        digest.update(json.dumps([path.name, path.stat().st_size]).encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 24), b""):
                digest.update(block)
    digest.update(json.dumps([READER_VERSION, *options]).encode())
    return digest.hexdigest()


def file_split(path: str | Path, reading: Reading, input_format: str = "auto") -> SentenceSplit:
    """A file's sentences as a cached Arrow dataset (written on the first run, memory-mapped after)."""
    from datasets import Dataset

    path = Path(path)
    fmt = detect(path, reading, input_format)
    key = file_key(input_files(path, fmt), [fmt.name, sorted(dataclasses.asdict(reading).items())])
    target = cache_folder() / f"sentences-{key}.arrow"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_sentences(iter_sentences(path, reading, input_format), target)  # auto: a refusal can say so
    dataset = Dataset.from_file(str(target))
    dataset._fingerprint = f"tokclf-sentences-{key}"  # what later maps' fingerprints start from
    return SentenceSplit(dataset, str(path))


def _hub_columns(batch, indices, words_key: str, tags_key: str, names, where: str):
    words, tags = batch[words_key], batch[tags_key]
    if names:
        tags = [[names[t] for t in row] for row in tags]
    for i, w, t in zip(indices, words, tags):
        if len(w) != len(t):
            raise DataError(f"{where} row {i}: {len(w)} words but {len(t)} tags.")
    docs = batch.get("doc_id")
    return {"words": words, "tags": tags, "doc_id": docs if docs is not None else [None] * len(words),
            "line": [None] * len(words), "row": [f"row {i}" for i in indices], "n_words": [len(w) for w in words]}


def hub_splits(name: str, config: Optional[str], task: str, text_column: Optional[str],
               label_column: Optional[str], trust_remote_code: bool = False) -> dict[str, SentenceSplit]:
    """{split: SentenceSplit} of a Hub dataset, mapped to tokclf's columns inside Arrow (cached by datasets)."""
    import datasets

    try:
        dsets = datasets.load_dataset(name, config, trust_remote_code=trust_remote_code) \
            if trust_remote_code else datasets.load_dataset(name, config)
    except Exception as err:  # the library raises many types; say which dataset failed and why
        raise DataError(f"--dataset_name {name}: could not load it ({type(err).__name__}: {err}).") from None
    out = {}
    for split in ("train", "validation", "test"):
        if split not in dsets:
            continue
        ds, where = dsets[split], f"{name}[{split}]"
        words_key = pick_column(text_column, "tokens", ds.column_names, 0, where, "--text_column_name")
        tags_key = pick_tags_column(label_column, task, ds.column_names, where)
        names = getattr(getattr(ds.features[tags_key], "feature", None), "names", None)
        with quiet_datasets():
            mapped = ds.map(_hub_columns, batched=True, with_indices=True, remove_columns=ds.column_names,
                            features=sentence_features(),
                            fn_kwargs={"words_key": words_key, "tags_key": tags_key, "names": names, "where": where})
        out[split] = SentenceSplit(mapped, where)
    return out


def sentences_split(sentences: Sequence[Sentence], source: str = "input") -> SentenceSplit:
    """Sentences held in Python (predict's records, tests, the bench), as an in-memory split."""
    from datasets import Dataset

    rows = {"words": [s.words for s in sentences], "tags": [s.tags for s in sentences],
            "doc_id": [s.doc_id for s in sentences], "line": [s.line for s in sentences],
            "row": [s.row for s in sentences], "n_words": [len(s.words) for s in sentences]}
    return SentenceSplit(Dataset.from_dict(rows, features=sentence_features()), source)


def words_split(word_lists: Sequence[list[str]], doc_ids: Optional[Sequence[Optional[int]]] = None,
                source: str = "input") -> SentenceSplit:
    """Sentences given as lists of words (predict's records), as an in-memory split without tags."""
    doc_ids = doc_ids if doc_ids is not None else [None] * len(word_lists)
    return sentences_split([Sentence(list(words), [], doc) for words, doc in zip(word_lists, doc_ids)], source)


def split_datasets(data: DataArguments, trust_remote_code: bool = False) -> dict[str, SentenceSplit]:
    """{split: SentenceSplit} from --data_dir, --*_file or --dataset_name (files win over the folder),
    the files tokclf.data.split_files.split_files chooses."""
    files = split_files(data)
    if data.dataset_name and not files:
        splits = hub_splits(data.dataset_name, data.dataset_config_name, data.task_name, data.text_column_name,
                            data.label_column_name, trust_remote_code)
    else:
        reading = reading_of(data.task_name, data.text_column_name, data.label_column_name, data.word_split,
                             data.span_alignment)
        splits = {split: file_split(path, reading, data.input_format) for split, path in files.items()}
    for split, sentences in splits.items():
        empty = (sentences.words_per_sentence() == 0).nonzero()[0]
        if len(empty):
            raise DataError(f"{split} split, sentence {int(empty[0])}: has no words. Remove it from the data.")
    if "train" not in splits:
        raise DataError("No training split found. Give --train_file, --data_dir or a dataset with a train split.")
    return splits
