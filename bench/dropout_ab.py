"""Dropout masks A/B/C in one process: the bench's run (a) built in-process, the same training batches timed
in blocks that rotate between three arms, so that a shared machine's drift hits all alike:
- torch: torch's masks everywhere (--fast_dropout false);
- hidden: tokclf's cheap masks in the dropout modules, SDPA's own for the attention probabilities
  (--fast_dropout true, tokclf's default on a CPU);
- all: cheap masks in both (--fast_dropout true --fast_attention_dropout true).
Prints each arm's block seconds, then each arm's sum and its speed against torch's.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/dropout_ab.py --steps 20 --rounds 3 [--precision bf16]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time

import torch

from profile_step import build_run
from run import MINILM, ROOT

ARMS = ("torch", "hidden", "all")


def set_arm(arm: str, model, fast_forward) -> None:
    """Switch the built model between the arms: the swapped modules run torch's dropout or tokclf's masks;
    attention runs transformers' SDPA or tokclf's attention function."""
    from tokclf.runtime.attention_dropout import NAME
    from tokclf.runtime.dropout import FastCpuDropout

    FastCpuDropout.forward = torch.nn.Dropout.forward if arm == "torch" else fast_forward
    model.set_attn_implementation(NAME if arm == "all" else "sdpa")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "conll2003"))
    parser.add_argument("--model", default=MINILM)
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed block")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of one block per arm, the order rotating")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()
    args.tokclf_flags = "--fast_dropout true --fast_attention_dropout true"
    cfg, accelerator, model, optimizer, splits, _ = build_run(args)
    sys.path.insert(0, str(ROOT))
    from tokclf.runtime.dropout import FastCpuDropout
    from tokclf.training.steps import train_window

    fast_forward, unwrapped = FastCpuDropout.forward, accelerator.unwrap_model(model)
    batches = list(itertools.islice(iter(splits["train"].loader), 3 + args.steps))
    model.train()
    seconds = {arm: [] for arm in ARMS}
    for r in range(args.rounds):
        for arm in ARMS[r % 3:] + ARMS[:r % 3]:
            set_arm(arm, unwrapped, fast_forward)
            for batch in batches[:3] if r == 0 else ():  # warm-up of each arm's kernels
                train_window(accelerator, model, optimizer, [batch], cfg.training.max_grad_norm)
            started = time.perf_counter()
            for batch in batches[3:]:
                train_window(accelerator, model, optimizer, [batch], cfg.training.max_grad_norm)
            seconds[arm].append(time.perf_counter() - started)
    print({arm: [round(s, 2) for s in values] for arm, values in seconds.items()})
    print(", ".join(f"{arm} {sum(seconds[arm]):.1f} s ({sum(seconds['torch']) / sum(seconds[arm]):.2f}x)"
                    for arm in ARMS))


if __name__ == "__main__":
    main()
