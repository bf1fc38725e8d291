"""The suite passes wherever the project is checked out: tests tell tokclf's own code by module name, never by
a substring of a path (a checkout, a venv, a user or a temp folder can be named anything, `tokclf` included).

The path-sensitive tests (marked `paths`: they start processes, read their output, or read files by path) are
run again from a copy of this checkout under `my tokclf ü/tokclf`, with the temp folder inside it too."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tokclf
from helpers import OWN_MODULES, ROOT, tokclf_frames

AWKWARD = "my tokclf ü"  # a space, a non-ASCII letter and the project's own name
NESTED = "TOKCLF_PATH_CHECK"  # set in the copy's run: it does not copy itself again


@pytest.mark.paths
def test_the_package_under_test_is_this_checkouts():
    """Otherwise the copy's run would test the installed checkout's code, not its own."""
    assert Path(tokclf.__file__).resolve().is_relative_to(ROOT.resolve()), (tokclf.__file__, ROOT)


@pytest.mark.paths
def test_tokclf_frames_are_found_by_module_and_not_by_path(tmp_path):
    """A real traceback through tokclf/records.py is found; a frame of a venv under a folder called tokclf
    (`.../tokclf/.venv/...`) or of another package's module of the same name is not."""
    done = subprocess.run([sys.executable, "-c", "from tokclf.records import joined; joined(None)"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 1 and "TypeError" in done.stderr, done.stderr
    assert [Path(f).name for f in tokclf_frames(done.stderr)] == ["records.py"], done.stderr
    unrelated = ('  File "/home/u/tokclf/.venv/bin/python", line 8, in <module>\n'
                 '  File "/home/u/tokclf/.venv/lib/python3.11/site-packages/torch/records.py", line 3, in f\n'
                 '  File "/srv/tokclf/tokclf/notes.txt", line 1, in g\n')
    assert tokclf_frames(unrelated) == []
    assert "tokclf/runtime/accel.py" in OWN_MODULES


def checkout_files() -> list[str]:
    """The files a clone of this checkout holds: git's list (tracked, and untracked but not ignored)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, timeout=60)
    if listed.returncode != 0:
        pytest.skip(f"{ROOT} is not a git checkout: the copy takes git's list of its files")
    return [name for name in listed.stdout.decode().split("\0") if name and (ROOT / name).is_file()]


@pytest.mark.slow
@pytest.mark.skipif(bool(os.environ.get(NESTED)), reason="this is the copy's own run")
def test_path_sensitive_tests_pass_from_a_checkout_under_an_awkward_path(tmp_path):
    copy = tmp_path / AWKWARD / "tokclf"
    for name in checkout_files():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, copy / name)
    temp = tmp_path / AWKWARD / "tmp ü"
    temp.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "HF_DATASETS_CACHE"}  # its own cache
    env.update({NESTED: "1", "PYTHONPATH": str(copy), "TMPDIR": str(temp), "HF_HUB_OFFLINE": "1"})
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "paths", "-p", "no:cacheprovider"],
                          cwd=copy, env=env, capture_output=True, text=True, timeout=900)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:]
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    assert int(summary.split(" passed")[0].split()[-1]) >= 20, summary  # the marked tests did run there
