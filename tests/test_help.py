"""`--help` of every command renders: groups, every option, one default each, no raw argparse dicts."""

import re
import subprocess
import sys

import pytest

from helpers import ROOT
from tokclf.cli import evaluate_parser, predict_parser
from tokclf.config import GROUPS, build_parser, field_types
from tokclf.tuning.options import tune_parser

# `paths`: run again from a checkout under an awkward path (tests/test_checkout_path.py)
pytestmark = pytest.mark.paths

PARSERS = {"train": build_parser, "evaluate": evaluate_parser, "predict": predict_parser, "tune": tune_parser}


def option_entries(text: str) -> dict[str, str]:
    """--flag → its help text, from argparse's rendering (entries start with two spaces and a dash)."""
    entries, current = {}, None
    for line in text.splitlines():
        match = re.match(r"^  (-\S+)", line)
        if match:
            current = match.group(1).rstrip(",")
            entries[current] = line
        elif current and line.startswith(" " * 6):
            entries[current] += " " + line.strip()
        else:
            current = None
    return entries


@pytest.mark.parametrize("command", PARSERS)
def test_help_renders_every_option_once_with_at_most_one_default(command):
    text = PARSERS[command]().format_help()
    assert "{'option_strings'" not in text and "%(" not in text
    for flag, entry in option_entries(text).items():
        assert len(re.findall(r"\(default: ", entry)) <= 1, entry
        assert len(entry.split(None, 1)) == 2 or flag == "-h", f"{flag} has no help: {entry}"


def test_train_help_prints_the_groups_and_every_option():
    text = build_parser().format_help()
    for group in GROUPS.values():
        assert f"\n{group._argument_group_name}:\n" in text
    entries = option_entries(text)
    assert all(f"--{name}" in entries for name in field_types())
    assert "about 10% slower than eager" in entries["--torch_compile"]
    assert entries["--no_return_entity_level_metrics"].endswith("Turn off --return_entity_level_metrics.")


def test_the_entry_points_print_help_and_exit_0():
    for argv in ([str(ROOT / "train_token_classification.py"), "--help"], ["-m", "tokclf", "predict", "--help"]):
        done = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120,
                              env={"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
        assert done.returncode == 0 and "usage:" in done.stdout and "Traceback" not in done.stderr, done.stderr
