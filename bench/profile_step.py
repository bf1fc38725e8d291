"""Where tokclf's time goes: profile its training steps and its validation evaluation (the bench's run
(a), built in-process from the same command line) with torch.profiler, and set each against the
machine's measured matmul rate.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/profile_step.py --steps 30 [--precision bf16] [--tokclf_flags "..."]

Prints, for training and for evaluation, the share of operator time in each kind of work (matmuls,
dropout's random masks, the optimizer, the rest), the rate the matmuls themselves reach, and the ceiling: the
tokens/s (sentences/s) if every matmul ran at the measured rate and all other work took no time.
Writes bench/profile.json.
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from run import MINILM, ROOT, matmul_rate, non_embedding_parameters, synchronize, tokclf_flags

# Operator names by kind of work; anything else is "other" (normalisation, activations, copies, masks,
# the loss, decoding).
KINDS = {
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"),
    "fused attention": ("aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_flash_attention_forward",
                        "aten::_efficient_attention_forward", "aten::_scaled_dot_product_cudnn_attention"),
    # torch's masks (bernoulli_), and --fast_dropout's (random_: its 64-bit draws; each pass over a DataLoader
    # also draws its base seed with one random_ on a 0-d tensor, a few microseconds)
    "dropout masks": ("aten::bernoulli_", "aten::native_dropout", "aten::random_"),
    # AdamW's kernels, and gradient clipping's scaling (_foreach_mul_), which non-fused AdamW also uses
    "optimizer": ("aten::_fused_adamw_", "aten::_foreach_addcdiv_", "aten::_foreach_lerp_", "aten::_foreach_mul_",
              "aten::_foreach_addcmul_", "aten::_foreach_sqrt", "aten::_foreach_add_", "aten::_foreach_div_"),
}


def kind_of(name: str) -> str:
    return next((kind for kind, names in KINDS.items() if name in names), "other")


def profiled(work, device: torch.device) -> dict:
    """Run `work()` twice: timed (wall seconds), then under torch.profiler (operator self time by kind,
    matmul FLOPs, the top operators). On a GPU an operator's time is that of its kernels; the kernels'
    own entries are left out so that nothing counts twice."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    synchronize(device)
    started = time.perf_counter()
    work()
    synchronize(device)
    wall = time.perf_counter() - started
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, with_flops=True) as prof:
        work()
        synchronize(device)
    on_device = device.type == "cuda"
    seconds, flops, top = defaultdict(float), 0, []
    for event in prof.key_averages():
        if event.device_type != DeviceType.CPU:
            continue
        spent = (event.self_device_time_total if on_device else event.self_cpu_time_total) / 1e6
        kind = kind_of(event.key)
        seconds[kind] += spent
        top.append((spent, event.key))
        if kind == "matmul":
            flops += event.flops
    total = sum(seconds.values())
    return {"wall_seconds": wall, "operator_seconds": total,
            "share": {kind: seconds[kind] / total for kind in [*KINDS, "other"]},
            "matmul_seconds": seconds["matmul"], "matmul_flops": flops,
            "top_operators": [{"name": name, "share": spent / total} for spent, name in sorted(top, reverse=True)[:8]]}


def build_run(args):
    """tokclf's own setup for the bench's run (a): accelerator, data, model, loaders, optimizer (the
    learning rate stays at its first value: it does not change the time a step takes)."""
    sys.path.insert(0, str(ROOT))
    from tokclf.components import setup_training
    from tokclf.config import parse_config
    from tokclf.runtime.model import resolve_model_path
    from tokclf.training.optim import make_optimizer

    precision = ["--mixed_precision", "bf16" if args.precision == "bf16" else "no"]
    cfg = parse_config(tokclf_flags(args, resolve_model_path(args.model), Path(tempfile.mkdtemp())) + precision
                       + shlex.split(args.tokclf_flags))
    parts = setup_training(cfg, say=lambda *_: None)
    accelerator = parts.accelerator
    model, optimizer = accelerator.prepare(parts.model, make_optimizer(parts.model, cfg.training, accelerator.device))
    return cfg, accelerator, model, optimizer, parts.splits, parts.labels


def profile_training(args, cfg, accelerator, model, optimizer, loader) -> dict:
    """The first warm-up + `steps` batches of epoch 0; the same `steps` batches are timed and profiled."""
    from tokclf.training.steps import train_window

    batches = list(itertools.islice(iter(loader), args.warmup + args.steps))
    warmup, measured = batches[:args.warmup], batches[args.warmup:]
    model.train()

    def steps(chosen):
        for batch in chosen:
            train_window(accelerator, model, optimizer, [batch], cfg.training.max_grad_norm)

    steps(warmup)
    result = profiled(lambda: steps(measured), accelerator.device)
    result["real_tokens"] = int(sum(b["attention_mask"].sum() for b in measured))
    result["positions"] = int(sum(b["attention_mask"].numel() for b in measured))
    result["steps"] = len(measured)
    return result


def profile_evaluation(cfg, accelerator, model, split, labels) -> dict:
    """One validation pass, scored with what training's evaluation scores with (model or bf16 copy)."""
    from tokclf.inference.scoring import evaluate_split
    from tokclf.runtime.accel import model_for_scoring

    model = model_for_scoring(model, accelerator, cfg.evaluation.eval_bf16_weights)
    result = profiled(lambda: evaluate_split(model, split.loader, accelerator, split.encoded, split.tags, labels),
                      accelerator.device)
    result["sentences"] = len(split.tags)
    result["real_tokens"] = int(sum(len(f["input_ids"]) for f in split.encoded.features))
    return result


def add_bounds(result: dict, rate: float, params: int, passes: int, unit: str, count: float) -> None:
    """The matmuls' own rate, the model-FLOP rate and the ceiling at the measured matmul rate."""
    result["matmul_rate_fraction"] = result["matmul_flops"] / result["matmul_seconds"] / rate
    result["model_flops_fraction"] = passes * params * result["real_tokens"] / result["wall_seconds"] / rate
    result[f"{unit}_per_second"] = count / result["wall_seconds"]
    result[f"ceiling_{unit}_per_second"] = count / (result["matmul_flops"] / rate)


def report(results: dict) -> str:
    lines = [f"matmul rate of this machine: {results['machine_matmul_flops'] / 1e9:.1f} GFLOP/s", "",
             "| | wall s | " + " | ".join(f"{k} share" for k in [*KINDS, "other"])
             + " | matmuls at | model FLOP/s of matmul | achieved | ceiling |",
             "| --- " * (len(KINDS) + 7) + "|"]
    for part, unit in (("training", "tokens"), ("evaluation", "sentences")):
        r = results[part]
        shares = " | ".join(f"{r['share'][k]:.1%}" for k in [*KINDS, "other"])
        lines.append(f"| {part} | {r['wall_seconds']:.1f} | {shares} | {r['matmul_rate_fraction']:.0%} of rate | "
                     f"{r['model_flops_fraction']:.1%} | {r[f'{unit}_per_second']:,.0f} {unit}/s | "
                     f"{r[f'ceiling_{unit}_per_second']:,.0f} {unit}/s |")
    for part in ("training", "evaluation"):
        tops = ", ".join(f"{t['name']} {t['share']:.1%}" for t in results[part]["top_operators"])
        lines.append(f"\n{part}, top operators: {tops}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "conll2003"))
    parser.add_argument("--model", default=MINILM)
    parser.add_argument("--steps", type=int, default=30, help="training steps timed and profiled")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16: autocast, as "
                        "--mixed_precision bf16; its matmuls are set against the bf16 matmul rate")
    parser.add_argument("--tokclf_flags", default="", help="more tokclf options, e.g. \"--sdp_reduced_precision "
                        "false --eval_bf16_weights false\" to profile with those levers undone")
    parser.add_argument("--output", default=str(ROOT / "bench" / "profile.json"))
    args = parser.parse_args()

    cfg, accelerator, model, optimizer, splits, labels = build_run(args)
    rate = matmul_rate(accelerator.mixed_precision == "bf16")
    params = non_embedding_parameters(cfg.model.model_name_or_path)
    training = profile_training(args, cfg, accelerator, model, optimizer, splits["train"].loader)
    evaluation = profile_evaluation(cfg, accelerator, model, splits["validation"], labels)
    add_bounds(training, rate, params, 6, "tokens", training["real_tokens"])
    add_bounds(evaluation, rate, params, 2, "sentences", evaluation["sentences"])
    results = {"machine_matmul_flops": rate, "device": str(accelerator.device), "non_embedding_parameters": params,
               "batch_size": args.batch_size, "training": training, "evaluation": evaluation}
    print(report(results))
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
