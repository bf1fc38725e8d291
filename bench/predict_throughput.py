"""`tokclf predict` against transformers' pipeline("token-classification", batch_size=32) on eng.testb as
raw text (one sentence a line), and predict's peak RSS on eng.testb x1 against x32 (memory must not grow
with the input: predict streams it in chunks). Whole process timed with /usr/bin/time -v.

    flock /tmp/tokclf-bench.lock .venv/bin/python bench/predict_throughput.py --model OUTPUT_DIR
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PIPELINE = """
import sys, time
from transformers import pipeline
lines = open(sys.argv[2], encoding="utf-8").read().splitlines()
tagger = pipeline("token-classification", model=sys.argv[1], aggregation_strategy="simple", device="cpu")
started = time.perf_counter()
out = tagger(lines, batch_size=32)
print("TAGGING_SECONDS", time.perf_counter() - started, len(out))
"""


def text_of(data_dir: Path, work: Path, times: int) -> Path:
    """eng.testb's sentences as lines of words joined by spaces, the file repeated `times` times."""
    path = work / f"testb.x{times}.txt"
    if not path.is_file():
        sys.path.insert(0, str(ROOT))
        from tokclf.formats.registry import read_file

        lines = [" ".join(s.words) for s in read_file(data_dir / "eng.testb", "ner")]
        path.write_text("\n".join(lines * times) + "\n", encoding="utf-8")
    return path


def timed(cmd: list[str]) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=ROOT, env=env, text=True, capture_output=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    tagging = re.search(r"TAGGING_SECONDS ([\d.]+)", proc.stdout)
    return {"process_s": wall, "peak_rss_mib": rss_kib / 1024, "tagging_s": float(tagging.group(1)) if tagging else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a folder written by tokclf training")
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "conll2003"))
    parser.add_argument("--work_dir", default="/tmp/tokclf-predict-bench")
    parser.add_argument("--output", default=str(ROOT / "bench" / "predict_throughput.json"))
    args = parser.parse_args()
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    rows = {}
    for times in (1, 32):
        text = text_of(Path(args.data_dir), work, times)
        n = sum(1 for _ in text.open(encoding="utf-8"))
        rows[f"predict_x{times}"] = {"sentences": n, **timed(
            [sys.executable, "-m", "tokclf", "predict", "--model", args.model, "--input", str(text),
             "--output", str(work / f"out.x{times}.jsonl")])}
        print(rows[f"predict_x{times}"], flush=True)
    text = text_of(Path(args.data_dir), work, 1)
    rows["pipeline_x1"] = {"sentences": rows["predict_x1"]["sentences"],
                           **timed([sys.executable, "-c", PIPELINE, args.model, str(text)])}
    print(rows["pipeline_x1"], flush=True)
    Path(args.output).write_text(json.dumps(rows, indent=2) + "\n")
    print("| run | sentences | whole process s | tagging s | sentences/s (whole process) | peak RSS MiB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        tagging = f"{r['tagging_s']:.1f}" if r["tagging_s"] else "-"
        print(f"| {name} | {r['sentences']:,} | {r['process_s']:.1f} | {tagging} | "
              f"{r['sentences'] / r['process_s']:.0f} | {r['peak_rss_mib']:.0f} |")


if __name__ == "__main__":
    main()
