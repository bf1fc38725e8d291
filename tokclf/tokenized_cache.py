"""A cache of encoded splits, so a split is tokenized once across runs.

The key is a datasets fingerprint (`datasets.fingerprint.Hasher`) of the tokenizer and the encoding
options plus an xxhash of the sentences' words, tags and document ids, serialised as JSON (hashing
those through the Hasher's pickling took as long as tokenizing them). The encoded split is stored as
an Arrow dataset, so reading it back unpickles nothing.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Callable

from tokclf.features import EncodedSplit

FORMAT_VERSION = 1  # bump when encode() changes what it produces


def cache_root() -> Path:
    import datasets

    return Path(datasets.config.HF_DATASETS_CACHE) / "tokclf"


def fingerprint(tokenizer, options: dict, words, tags, doc_ids) -> str:
    import xxhash
    from datasets.fingerprint import Hasher

    content = xxhash.xxh64(json.dumps([words, tags, doc_ids], ensure_ascii=False).encode("utf-8")).hexdigest()
    return Hasher.hash([FORMAT_VERSION, tokenizer, sorted(options.items()), content])


def save(encoded: EncodedSplit, folder: Path) -> None:
    """Write atomically: concurrent runs and a kill mid-write never leave a half-written entry."""
    from datasets import Dataset
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    tmp = folder.with_name(f".tmp-{folder.name}-{uuid.uuid4().hex[:8]}")
    bars_were_off = are_progress_bars_disabled()
    disable_progress_bars()  # a bar per split would bury tokclf's own output
    try:
        Dataset.from_dict({
            "input_ids": [f["input_ids"] for f in encoded.features],
            "labels": [f["labels"] for f in encoded.features],
            "scored_positions": [[list(pair) for pair in s] for s in encoded.scored_positions],
            "sentence_of_feature": encoded.sentence_of_feature,
        }).save_to_disk(str(tmp / "features"))
    finally:
        if not bars_were_off:
            enable_progress_bars()
    (tmp / "words_per_sentence.json").write_text(json.dumps(encoded.words_per_sentence))
    try:
        tmp.rename(folder)
    except OSError:  # another process got there first with the same content
        shutil.rmtree(tmp, ignore_errors=True)


def load(folder: Path) -> EncodedSplit:
    from datasets import load_from_disk

    columns = load_from_disk(str(folder / "features")).to_dict()
    features = [{"input_ids": ids, "labels": labels, "feature_index": i}
                for i, (ids, labels) in enumerate(zip(columns["input_ids"], columns["labels"]))]
    return EncodedSplit(features, [[tuple(pair) for pair in s] for s in columns["scored_positions"]],
                        columns["sentence_of_feature"], json.loads((folder / "words_per_sentence.json").read_text()),
                        [len(f["input_ids"]) for f in features])


def cached_encode(key: str, encode_split: Callable[[], EncodedSplit], overwrite: bool = False) -> tuple[EncodedSplit, bool]:
    """(the encoded split, whether it came from the cache)."""
    folder = cache_root() / key
    if folder.is_dir() and not overwrite:
        return load(folder), True
    encoded = encode_split()
    folder.parent.mkdir(parents=True, exist_ok=True)
    if overwrite and folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)
    save(encoded, folder)
    return encoded, False
