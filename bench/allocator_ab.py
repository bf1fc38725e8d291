"""CPU memory reuse A/B (--reuse_cpu_memory): fresh processes that alternate between the arms, each building
the bench's run (a) in-process and timing validation passes and a block of training steps after a warm-up,
with their minor page faults:
- mapped: `--reuse_cpu_memory false`, glibc as it is (its thresholds adapt to the process; a setting made
  inside a process would end that adaptation, so each arm gets processes of its own);
- heap: tokclf's default on a CPU, large buffers kept in the heap for the next batch.
Prints each process's figures, then each arm's sums, its speed against mapped and its peak RSS.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/allocator_ab.py --rounds 3 --passes 3 --steps 20
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import time

from run import MINILM, ROOT

ARMS = {"mapped": "--reuse_cpu_memory false", "heap": ""}


def timed(work) -> tuple[float, int]:
    """Seconds and minor page faults of work()."""
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    started = time.perf_counter()
    work()
    return time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def measure(args) -> dict:
    """In the child: the passes and the steps, each after one warm-up (a pass; a block of the same steps)."""
    from profile_step import build_run

    # the run's schedule as the bench's (150 steps); how many are timed here is args.steps
    cfg, accelerator, model, optimizer, splits, labels = build_run(argparse.Namespace(**{**vars(args), "steps": 150}))
    from tokclf.inference.scoring import evaluate_split
    from tokclf.runtime.accel import model_for_scoring
    from tokclf.training.steps import train_window

    validation = splits["validation"]
    scored = model_for_scoring(model, accelerator, cfg.evaluation.eval_bf16_weights)
    evaluation = [timed(lambda: evaluate_split(scored, validation.loader, accelerator, validation.encoded,
                                               validation.tags, labels)) for _ in range(1 + args.passes)][1:]
    batches = list(itertools.islice(iter(splits["train"].loader), args.steps))
    model.train()
    training = [timed(lambda: [train_window(accelerator, model, optimizer, [batch], cfg.training.max_grad_norm)
                               for batch in batches]) for _ in range(2)][1:] if args.steps else []
    return {"evaluation": evaluation, "training": training,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child(args, arm: str) -> dict:
    command = [sys.executable, __file__, "--child", "--model", args.model, "--data_dir", args.data_dir,
               "--passes", str(args.passes), "--steps", str(args.steps), "--batch_size", str(args.batch_size),
               "--precision", args.precision, f"--tokclf_flags={ARMS[arm]}"]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode:
        sys.exit(f"{arm} process failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def report(results: dict) -> None:
    for part in ("evaluation", "training"):
        sums = {arm: sum(s for run in runs for s, _ in run[part]) for arm, runs in results.items()}
        if not sums["mapped"]:
            continue
        print(f"{part}: " + ", ".join(f"{arm} {sums[arm]:.1f} s ({sums['mapped'] / sums[arm]:.2f}x)" for arm in ARMS))
    print("peak RSS MiB: " + ", ".join(f"{arm} " + "/".join(f"{run['peak_rss_mib']:,.0f}" for run in runs)
                                       for arm, runs in results.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "conll2003"))
    parser.add_argument("--model", default=MINILM)
    parser.add_argument("--rounds", type=int, default=3, help="processes per arm, the order swapping each round")
    parser.add_argument("--passes", type=int, default=3, help="validation passes timed per process")
    parser.add_argument("--steps", type=int, default=20, help="training steps timed per process (0: none)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--tokclf_flags", default="", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    results = {arm: [] for arm in ARMS}
    for r in range(args.rounds):
        for arm in list(ARMS)[r % 2:] + list(ARMS)[:r % 2]:
            results[arm].append(child(args, arm))
            run = results[arm][-1]
            print(f"{arm}: " + "; ".join(f"{part} " + ", ".join(f"{s:.2f} s {f:,} faults" for s, f in run[part])
                                         for part in ("evaluation", "training") if run[part]), flush=True)
    report(results)


if __name__ == "__main__":
    main()
