"""--fast_dropout against torch's dropout masks in one process: the bench's run (a) built in-process, the same
training batches timed in blocks that alternate between the two (torch first, then fast, then the other way
round), so that a shared machine's drift hits both alike. Prints each block's seconds and the ratio of sums.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/dropout_ab.py --steps 20 --rounds 4 [--precision bf16]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time

import torch

from profile_step import build_run
from run import MINILM, ROOT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "conll2003"))
    parser.add_argument("--model", default=MINILM)
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed block")
    parser.add_argument("--rounds", type=int, default=4, help="pairs of blocks (torch, fast), order alternating")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()
    args.tokclf_flags = "--fast_dropout true"
    cfg, accelerator, model, optimizer, splits, _ = build_run(args)
    sys.path.insert(0, str(ROOT))
    from tokclf.runtime.dropout import FastCpuDropout
    from tokclf.training.steps import train_window

    fast_forward = FastCpuDropout.forward
    batches = list(itertools.islice(iter(splits["train"].loader), 3 + args.steps))
    model.train()
    for batch in batches[:3]:  # warm-up
        train_window(accelerator, model, optimizer, [batch], cfg.training.max_grad_norm)
    seconds = {"torch": [], "fast": []}
    for r in range(args.rounds):
        for kind in ("torch", "fast") if r % 2 == 0 else ("fast", "torch"):
            # the swapped modules, running torch's own dropout or tokclf's masks
            FastCpuDropout.forward = fast_forward if kind == "fast" else torch.nn.Dropout.forward
            started = time.perf_counter()
            for batch in batches[3:]:
                train_window(accelerator, model, optimizer, [batch], cfg.training.max_grad_norm)
            seconds[kind].append(time.perf_counter() - started)
    print({kind: [round(s, 2) for s in values] for kind, values in seconds.items()})
    print(f"torch {sum(seconds['torch']):.1f} s, fast {sum(seconds['fast']):.1f} s: "
          f"{sum(seconds['torch']) / sum(seconds['fast']):.2f}x faster steps")


if __name__ == "__main__":
    main()
