"""CPU memory reuse A/B in one process (--reuse_cpu_memory): the bench's run (a) built in-process, its
validation passes and training steps timed in blocks that alternate between the arms, so that a shared
machine's drift hits both alike:
- mapped: glibc maps each large buffer afresh and unmaps it when freed (its own behaviour; the mmap limit
  and the trim threshold its adaptation reaches, set back with allocator.keep_large_buffers_in_heap(False));
- heap: large buffers stay in the heap for the next batch (tokclf's default on a CPU).
Prints each block's seconds and minor page faults, each arm's sum and its speed against mapped, and the
process's peak RSS.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/allocator_ab.py --rounds 4 --steps 20
"""

from __future__ import annotations

import argparse
import itertools
import resource
import sys
import time

from profile_step import build_run
from run import MINILM, ROOT

ARMS = ("mapped", "heap")


def timed(work) -> tuple[float, int]:
    """Seconds and minor page faults of work()."""
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    started = time.perf_counter()
    work()
    return time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def alternate(name: str, work, rounds: int) -> None:
    """`rounds` blocks of work() per arm, the order swapping each round, after one warm-up block."""
    from tokclf.runtime.allocator import keep_large_buffers_in_heap

    work()
    seconds = {arm: [] for arm in ARMS}
    for r in range(rounds):
        for arm in ARMS[r % 2:] + ARMS[:r % 2]:
            if not keep_large_buffers_in_heap(arm == "heap"):
                sys.exit("this C library is not glibc: nothing to compare")
            spent, faults = timed(work)
            seconds[arm].append(spent)
            print(f"{name} {arm}: {spent:.2f} s, {faults:,} page faults", flush=True)
    mapped = sum(seconds["mapped"])
    print(f"{name}: " + ", ".join(f"{arm} {sum(seconds[arm]):.1f} s ({mapped / sum(seconds[arm]):.2f}x)"
                                  for arm in ARMS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "conll2003"))
    parser.add_argument("--model", default=MINILM)
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed block (0: none)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds of one block per arm")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()
    args.tokclf_flags = ""
    cfg, accelerator, model, optimizer, splits, labels = build_run(args)
    from tokclf.inference.scoring import evaluate_split
    from tokclf.runtime.accel import model_for_scoring
    from tokclf.training.steps import train_window

    validation = splits["validation"]
    scored = model_for_scoring(model, accelerator, cfg.evaluation.eval_bf16_weights)
    alternate("evaluation", lambda: evaluate_split(scored, validation.loader, accelerator, validation.encoded,
                                                   validation.tags, labels), args.rounds)
    if args.steps:
        batches = list(itertools.islice(iter(splits["train"].loader), args.steps))
        model.train()
        alternate("training", lambda: [train_window(accelerator, model, optimizer, [batch],
                                                    cfg.training.max_grad_norm) for batch in batches], args.rounds)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")


if __name__ == "__main__":
    main()
