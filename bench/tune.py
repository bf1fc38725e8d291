"""Bench row of `tokclf tune`: N trials of a recipe (the offline quick start by default) against the recipe
as it is, on the same data: the best validation F1 found vs the recipe's, wall times, and the share of
trials pruned. Writes one JSON row (bench/tune.json).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/tune.py --n_trials 8 [--cut --max_train_samples 400 ...]

The full quick start trains about 10 minutes per run on 2 CPU cores; `--cut` trains every run (the
recipe's and each trial) on a slice of it (--max_train_samples, --max_eval_samples, --max_train_steps),
and the row says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICK_START = ROOT / "configs" / "minilm-ner-offline.yaml"
# The quick start trains by --max_train_steps: the number of epochs is not a lever there.
SPACE = ("learning_rate: {type: float, low: 3.0e-5, high: 3.0e-4, log: true}\n"
         "per_device_train_batch_size: {type: categorical, choices: [16, 32]}\n"
         "warmup_ratio: {type: float, low: 0.0, high: 0.2}\n"
         "weight_decay: {type: float, low: 0.0, high: 0.1}\n"
         "num_train_epochs: null\n")


def run(command: str, args: list[str]) -> float:
    """`python -m tokclf COMMAND ARGS`; its wall time in seconds."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tokclf", command, *args], cwd=ROOT, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if done.returncode:
        sys.exit(f"tokclf {command} failed:\n{done.stdout[-3000:]}")
    return time.perf_counter() - started


def cut_flags(args) -> list[str]:
    if not args.cut:
        return []
    return ["--max_train_samples", str(args.max_train_samples), "--max_eval_samples", str(args.max_eval_samples),
            "--max_train_steps", str(args.max_train_steps)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(QUICK_START))
    parser.add_argument("--n_trials", type=int, default=8)
    parser.add_argument("--cut", action="store_true", help="train every run on a slice of the recipe")
    parser.add_argument("--max_train_samples", type=int, default=400)
    parser.add_argument("--max_eval_samples", type=int, default=200)
    parser.add_argument("--max_train_steps", type=int, default=24)
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more tokclf flags for every run")
    parser.add_argument("--work_dir", default=None)
    parser.add_argument("--output", default=str(ROOT / "bench" / "tune.json"))
    args = parser.parse_args()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="tokclf-tune-bench-"))
    space = work / "space.yaml"
    work.mkdir(parents=True, exist_ok=True)
    space.write_text(SPACE)
    common = ["--config", args.config, *cut_flags(args), *args.extra]
    default_seconds = run("train", [*common, "--output_dir", str(work / "default")])
    default = json.loads((work / "default" / "all_results.json").read_text())
    tune_seconds = run("tune", [*common, "--output_dir", str(work / "tune"), "--n_trials", str(args.n_trials),
                                "--search_space", str(space), "--plots", "false"])
    summary = json.loads((work / "tune" / "tune_summary.json").read_text())
    row = {"recipe": Path(args.config).name, "cut": cut_flags(args) or None, "n_trials": args.n_trials,
           "default_eval_f1": default["eval_f1"], "best_eval_f1": summary["best_value"],
           "best_params": summary["best_params"], "default_wall_seconds": round(default_seconds, 1),
           "tune_wall_seconds": round(tune_seconds, 1), "pruned_share": summary["pruned_share"],
           "states": {k: v for k, v in summary["states"].items() if v}, "search_space": SPACE,
           "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s)"}
    Path(args.output).write_text(json.dumps(row, indent=2) + "\n")
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
