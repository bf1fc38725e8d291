"""Rewrite the options table in README.md from TrainConfig (run after adding an option)."""

import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tokclf.config import TrainConfig  # noqa: E402

HEADER = "| option | default | meaning |"


def table() -> str:
    rows = [HEADER, "| --- | --- | --- |"]
    rows += [f"| `--{f.name}` | `{f.default}` | {f.metadata['help']} |" for f in dataclasses.fields(TrainConfig)]
    return "\n".join(rows)


if __name__ == "__main__":
    readme = (ROOT / "README.md").read_text()
    start = readme.index(HEADER)
    end = readme.index("\n\n", start)
    (ROOT / "README.md").write_text(readme[:start] + table() + readme[end:])
