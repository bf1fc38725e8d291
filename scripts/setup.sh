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
# The browser test of the report (tests/test_report.py) opens the page in Debian's chromium. Installed here
# only as root with apt-get and no chromium yet; never fails the set-up (the test then skips, saying why).
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; } >/dev/null 2>&1 \
            || echo "setup: could not install chromium; the report's browser test will be skipped."
    else
        echo "setup: no chromium (not root, or no apt-get); the report's browser test will be skipped."
    fi
fi
