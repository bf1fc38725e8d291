#!/usr/bin/env bash
# Create .venv with the CPU build of torch, then tokclf itself (editable, with requirements.txt as its
# dependencies and the `tokclf` command) and the test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# The CPU build first: a plain `torch` requirement would otherwise pull a multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
# pyproject.toml reads its dependencies from requirements.txt.
.venv/bin/python -m pip install -q -e . -r requirements-test.txt
