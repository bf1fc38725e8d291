"""Which files make the splits: --data_dir's files by name (DATA_DIR_NAMES, with the suffixes the formats
read; DATA_DIR_PATTERNS for the names of Universal Dependencies treebanks), its folders that a format reads
(a BRAT folder `train/`), and the --*_file options, which win over the folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from tokclf.arguments import DataArguments
from tokclf.errors import DataError
from tokclf.formats.registry import DATA_DIR_SUFFIXES, reads_folder

# File (or folder) names looked for in --data_dir, per split, in order; `devel`: the BioNLP shared tasks'.
DATA_DIR_NAMES = {
    "train": ("eng.train", "train"),
    "validation": ("eng.testa", "validation", "valid", "dev", "devel"),
    "test": ("eng.testb", "test"),
}
# Then the names UD treebanks have (`en_ewt-ud-train.conllu`): one match each, or the choice is the user's.
DATA_DIR_PATTERNS = {"train": "*-ud-train", "validation": "*-ud-dev", "test": "*-ud-test"}


def _named(data_dir: Path, name: str) -> Optional[Path]:
    """NAME with the first suffix a format reads, else a folder NAME that a format reads."""
    for suffix in DATA_DIR_SUFFIXES:
        if (data_dir / (name + suffix)).is_file():
            return data_dir / (name + suffix)
    folder = data_dir / name
    return folder if folder.is_dir() and reads_folder(folder) else None


def _matching(data_dir: Path, pattern: str) -> Optional[Path]:
    hits = sorted({p for suffix in DATA_DIR_SUFFIXES if suffix for p in data_dir.glob(pattern + suffix) if p.is_file()})
    if len(hits) > 1:
        raise DataError(f"--data_dir {data_dir}: {len(hits)} files match {pattern}: "
                        f"{', '.join(p.name for p in hits)}. Name them with --train_file, --validation_file, --test_file.")
    return hits[0] if hits else None


def find_split_files(data_dir: str | Path) -> dict[str, Path]:
    """{split: path} for the files (or folders) --data_dir holds; it must hold training data."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"--data_dir {data_dir}: no such folder.")
    found = {}
    for split, names in DATA_DIR_NAMES.items():
        hit = next((p for p in map(lambda name: _named(data_dir, name), names) if p), None)
        hit = hit or _matching(data_dir, DATA_DIR_PATTERNS[split])
        if hit:
            found[split] = hit
    if "train" not in found:
        shown = "|".join(s for s in DATA_DIR_SUFFIXES if s)
        raise DataError(f"--data_dir {data_dir}: no training file. Expected eng.train, train[{shown}], "
                        f"a folder train/ of BRAT files, or a UD treebank's *-ud-train.conllu.")
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
