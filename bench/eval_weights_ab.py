"""Evaluation on int8 weights (torch's dynamic quantization: int8 GEMMs through fbgemm, activations quantized
per batch) against fp32, on a trained model: the one lever for #27's evaluation goal (1.25x) left on a CPU
without bf16 units, where fp32 evaluation is bound by its matmuls. The last arm is tokclf's own rule
(tokclf.runtime.int8), the others show why it is that rule. Each arm is a copy of the saved model;
the passes rotate between the arms, so a shared machine's drift hits all alike. Prints each arm's seconds per
pass, sentences/s, speed against fp32 and F1 (the issue allows 0.3 points of F1).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/eval_weights_ab.py --model OUTPUT_DIR [--split validation] [--rounds 3]

OUTPUT_DIR: a training run's folder, such as the quick start's (configs/minilm-ner-offline.yaml).
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tokclf.runtime.int8 import int8_weights, quantize_layers  # noqa: E402


def linear_names(model: torch.nn.Module, pattern: str = ".") -> list[str]:
    return [name for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and re.search(pattern, name)]


def quantized(model: torch.nn.Module, names: list[str], per_channel: bool) -> torch.nn.Module:
    """A copy of `model` with the named Linear layers dynamically quantized to int8."""
    return quantize_layers(copy.deepcopy(model), names, per_channel)


# arm -> the model it scores with, from the fp32 model (left as it is)
ARMS = {
    "fp32": lambda model: model,
    "int8, every Linear, one scale a tensor": lambda model: quantized(model, linear_names(model), False),
    "int8, every Linear, per channel": lambda model: quantized(model, linear_names(model), True),
    "int8, FFN input only, per channel": lambda model: quantized(
        model, linear_names(model, r"\.intermediate\.dense$"), True),
    "int8 where width is kept or widened (tokclf's --inference_dtype int8)": lambda model: int8_weights(
        copy.deepcopy(model)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a training run's output folder")
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "conll2003"))
    parser.add_argument("--split", default="validation")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3, help="passes per arm, the order rotating")
    args = parser.parse_args()
    from tokclf.evaluate import EvaluateConfig, load_saved_model, prepare_evaluation
    from tokclf.inference.scoring import evaluate_split

    cfg = EvaluateConfig(model=args.model, data_dir=args.data_dir, split=args.split, inference_dtype="fp32",
                         per_device_eval_batch_size=args.batch_size)
    saved, options = load_saved_model(cfg)
    run = prepare_evaluation(cfg, saved, options)
    fp32 = run.parts.accelerator.unwrap_model(run.parts.model)
    models = {arm: make(fp32) for arm, make in ARMS.items()}
    seconds, f1 = {arm: [] for arm in ARMS}, {}
    for round_ in range(args.rounds):
        for arm in list(ARMS)[round_ % len(ARMS):] + list(ARMS)[:round_ % len(ARMS)]:
            started = time.perf_counter()
            metrics, _ = evaluate_split(models[arm], run.split.loader, run.parts.accelerator, run.split.encoded,
                                        run.gold, saved.labels, options.decoding)
            seconds[arm].append(time.perf_counter() - started)
            f1[arm] = metrics["f1"]
    print(f"{len(run.sentences)} sentences of {run.path}, {args.rounds} passes per arm, batch {args.batch_size}")
    print("| arm | seconds per pass | sentences/s | speed | F1 | F1 - fp32 (points) |")
    print("| --- | --- | --- | --- | --- | --- |")
    base = sum(seconds["fp32"])
    for arm in ARMS:
        mean = sum(seconds[arm]) / args.rounds
        print(f"| {arm} | {', '.join(f'{s:.2f}' for s in seconds[arm])} | {len(run.sentences) / mean:.0f} | "
              f"{base / sum(seconds[arm]):.2f}x | {f1[arm]:.4f} | {100 * (f1[arm] - f1['fp32']):+.2f} |")


if __name__ == "__main__":
    main()
