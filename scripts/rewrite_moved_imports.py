"""Rewrite imports of modules that moved into tokclf's stage folders (formats/, data/, training/,
inference/, runtime/), for merging a branch that started before the move: run it on the merged tree,
then the tests. Idempotent; it edits tokclf/, tests/, bench/, scripts/ and the top-level scripts.

    .venv/bin/python scripts/rewrite_moved_imports.py

Delete it once no branch from before the move is left.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MOVED = {
    "formats": ["words", "spans"],
    "data": ["split_files", "arrow_data", "schemes", "labels", "tag_columns", "features", "columns", "batching"],
    "training": ["recipe", "loop", "steps", "events", "checkpoints", "optim", "card", "hub"],
    "inference": ["saved_model", "scoring", "decoding"],
    "runtime": ["accel", "precision", "model", "outdir", "adapters"],
}
NEW_NAME = {module: f"{folder}.{module}" for folder, modules in MOVED.items() for module in modules}
NAMES = "|".join(sorted(NEW_NAME, key=len, reverse=True))
DOTTED = re.compile(rf"(?<![\w.])tokclf\.({NAMES})\b")  # tokclf.steps, "tokclf.steps.x" in monkeypatch
FROM_PACKAGE = re.compile(rf"^(\s*)from tokclf import ({NAMES})\b(.*)$", re.M)  # from tokclf import columns


def rewrite(text: str) -> str:
    text = DOTTED.sub(lambda m: f"tokclf.{NEW_NAME[m.group(1)]}", text)
    return FROM_PACKAGE.sub(lambda m: f"{m.group(1)}from tokclf.{NEW_NAME[m.group(2)].split('.')[0]} import "
                                      f"{m.group(2)}{m.group(3)}", text)


if __name__ == "__main__":
    for pattern in ("tokclf/**/*.py", "tests/*.py", "bench/*.py", "scripts/*.py", "*.py"):
        for path in ROOT.glob(pattern):
            if path.name == Path(__file__).name:
                continue
            text = path.read_text()
            if rewrite(text) != text:
                path.write_text(rewrite(text))
                print(f"rewrote {path.relative_to(ROOT)}")
