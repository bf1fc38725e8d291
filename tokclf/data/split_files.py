"""Which files make the splits: --data_dir's files by name (DATA_DIR_NAMES, with the suffixes the formats
read) and the --*_file options, which win over the folder."""

from __future__ import annotations

from pathlib import Path

from tokclf.arguments import DataArguments
from tokclf.errors import DataError
from tokclf.formats.registry import DATA_DIR_SUFFIXES

# File names looked for in --data_dir, per split, in order.
DATA_DIR_NAMES = {
    "train": ("eng.train", "train"),
    "validation": ("eng.testa", "validation", "valid", "dev"),
    "test": ("eng.testb", "test"),
}


def find_split_files(data_dir: str | Path) -> dict[str, Path]:
    """{split: path} for the files --data_dir holds; it must hold a training file."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"--data_dir {data_dir}: no such folder.")
    found = {}
    for split, names in DATA_DIR_NAMES.items():
        for name in names:
            hits = [data_dir / (name + suffix) for suffix in DATA_DIR_SUFFIXES if (data_dir / (name + suffix)).is_file()]
            if hits:
                found[split] = hits[0]
                break
    if "train" not in found:
        shown = "|".join(s for s in DATA_DIR_SUFFIXES if s)
        raise DataError(f"--data_dir {data_dir}: no training file. Expected eng.train or train[{shown}].")
    return found


def split_files(data: DataArguments) -> dict[str, Path]:
    """{split: file} of --data_dir and the --*_file options of `data` (DataArguments; files win over the
    folder); empty for a Hub dataset. The one choice of files (tokclf.data.arrow_data.split_datasets reads them)."""
    files: dict[str, Path] = {}
    if data.data_dir:
        files.update(find_split_files(data.data_dir))
    for split, path in (("train", data.train_file), ("validation", data.validation_file), ("test", data.test_file)):
        if path:
            files[split] = Path(path)
    return files
