"""The output folder of a training run, as a type: every file and folder tokclf writes there has its
name here and nowhere else.

    OUTPUT_DIR/
      model.safetensors, config.json, tokenizer files   the final model (save_pretrained); after --peft lora,
                                   the model with the adapter merged in (--merge_adapter, the default)
      adapter/                     --peft lora: the adapter (adapter_config.json, adapter_model.safetensors,
                                   config.json, tokenizer): see tokclf.runtime.adapters
      args.json, config.yaml       the resolved options (config.yaml is a valid --config)
      all_results.json             the final scores and run facts
      results.jsonl                one line per validation evaluation
      train_log.jsonl              one line per --logging_steps optimizer steps
      README.md                    the model card
      report/                      the error-analysis report of the final model (index.html, figures/,
                                   report.json); not with --no_report
      best/                        the best evaluation's model (an adapter run's: its adapter)
      step_N/, epoch_N/            checkpoints (accelerator.save_state + loop_state.json)
      tokclf/                      TensorBoard event files (Accelerate's project dir + project name)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

CHECKPOINT_NAME = re.compile(r"^(step|epoch)_(\d+)$")
TRACKER_PROJECT = "tokclf"  # accelerator.init_trackers' project name: its event files go in OUTPUT_DIR/tokclf


class _File:
    """A path of the output folder: `OutputDir(root).args` is root / "args.json"."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, out, owner=None):
        return self if out is None else out.root / self.name


@dataclass(frozen=True)
class OutputDir:
    root: Path

    def __init__(self, root):
        object.__setattr__(self, "root", Path(root))

    weights_name = "model.safetensors"
    # the model
    weights = _File(weights_name)
    best = _File("best")
    adapter = _File("adapter")
    card = _File("README.md")
    report = _File("report")
    # options and results
    args = _File("args.json")
    config_yaml = _File("config.yaml")
    all_results = _File("all_results.json")
    results_log = _File("results.jsonl")
    train_log = _File("train_log.jsonl")
    tracker_dir = _File(TRACKER_PROJECT)

    # --- checkpoints -----------------------------------------------------------------------------
    @staticmethod
    def step_checkpoint_name(step: int) -> str:
        return f"step_{step}"

    @staticmethod
    def epoch_checkpoint_name(epoch: int) -> str:
        return f"epoch_{epoch}"

    def checkpoint(self, name: str) -> Path:
        return self.root / name

    def checkpoint_folders(self) -> list[Path]:
        """step_N and epoch_N folders, complete or not, in no particular order."""
        if not self.root.is_dir():
            return []
        return [path for path in self.root.iterdir() if CHECKPOINT_NAME.match(path.name)]

    def read_args(self) -> dict:
        """The options of the run that wrote this folder; empty for a folder not written by tokclf."""
        return json.loads(self.args.read_text(encoding="utf-8")) if self.args.is_file() else {}

    def read_results_log(self) -> list[dict]:
        return read_jsonl(self.results_log)

    def read_train_log(self) -> list[dict]:
        return read_jsonl(self.train_log)


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def write_json(path: Path, values: dict) -> None:
    path.write_text(json.dumps(values, indent=2) + "\n", encoding="utf-8")


def keep_first_lines(path: Path, keep: Optional[callable]) -> None:
    """Rewrite a JSONL file with only the records `keep(index, record)` accepts (a resumed run writes
    the dropped ones again)."""
    if path.is_file():
        kept = [r for i, r in enumerate(read_jsonl(path)) if keep(i, r)]
        path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")


def prepare_output_dir(path: str, flag: str = "--output_dir") -> OutputDir:
    """Make the output folder (every process may: exist_ok) and check it can be written, before any work."""
    import os

    from tokclf.errors import ConfigError

    root = Path(path)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{flag} {path}: is a file; give a folder.")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{flag} {path}: cannot create it ({err.strerror or err}).") from None
    if not os.access(root, os.W_OK):
        raise ConfigError(f"{flag} {path}: not writable; give a folder you can write to.")
    return OutputDir(root)


def prepare_output_file(path: str, flag: str) -> Path:
    """Make the folder of an output file and check that the file can be written there, before any
    long work: a bad path fails at once, not after the evaluation."""
    import os

    from tokclf.errors import ConfigError

    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{flag} {path}: is a folder; give a file name.")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{flag} {path}: cannot create its folder ({err.strerror or err}).") from None
    if not os.access(target.parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise ConfigError(f"{flag} {path}: not writable; give a path you can write to.")
    return target


def prepare_output_folder(path: str, flag: str, input_path: Path, own_suffixes: tuple[str, ...]) -> Path:
    """Check the folder an output of several files (BRAT) goes to, before any long work: not the input,
    not inside it or around it, and new or holding only files of own_suffixes (a previous output, which
    put_in_place replaces)."""
    import os

    from tokclf.errors import ConfigError

    target, source = Path(path), Path(input_path).resolve()
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{flag} {path}: is a file, and this output format writes a folder; give a folder name.")
    resolved = target.resolve()
    if resolved == source or resolved in source.parents or (source.is_dir() and source in resolved.parents):
        raise ConfigError(f"{flag} {path}: holds or lies inside the input {input_path}; give a folder apart.")
    others = sorted(p for p in target.rglob("*") if p.is_file() and p.suffix not in own_suffixes) \
        if target.is_dir() else []
    if others:
        raise ConfigError(f"{flag} {path}: holds files this output does not write (e.g. {others[0]}), which "
                          f"replacing it would delete; give a new folder.")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{flag} {path}: cannot create its folder ({err.strerror or err}).") from None
    if not os.access(target.parent, os.W_OK):
        raise ConfigError(f"{flag} {path}: not writable; give a path you can write to.")
    return target


def discard(path: Path) -> None:
    """Remove a half-written output: a file or a folder."""
    import shutil

    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def put_in_place(written: Path, target: Path) -> None:
    """Move a finished output (file or folder) to its place, replacing what was there."""
    if written.is_dir() and target.is_dir():
        discard(target)  # prepare_output_folder checked it holds only a previous output
    written.replace(target)
