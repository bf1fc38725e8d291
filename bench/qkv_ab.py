"""Q, K and V projections as three GEMMs (as BERT computes them) against one GEMM over the three weights
concatenated at each forward (the form that keeps the saved layout and the adapters' `query`/`value` names),
for one layer of MiniLM's size, forward + backward and forward alone, alternating. Under bf16 the GEMMs run
in autocast, as a bf16 run's do: three projections cast their input three times, one cast it once but cast
the concatenated weight each forward.

    .venv/bin/python bench/qkv_ab.py [--precision bf16] [--tokens 896] [--rounds 30]
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F


def projections(hidden: int) -> list[torch.nn.Linear]:
    torch.manual_seed(0)
    return [torch.nn.Linear(hidden, hidden) for _ in range(3)]


def three_gemms(x, layers):
    return [layer(x) for layer in layers]


def one_gemm(x, layers):
    weight = torch.cat([layer.weight for layer in layers])
    bias = torch.cat([layer.bias for layer in layers])
    return F.linear(x, weight, bias).split(layers[0].out_features, dim=-1)


VARIANTS = {"three GEMMs": three_gemms, "one GEMM": one_gemm}


def timed(variant, x, layers, precision: str, backward: bool) -> float:
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    started = time.perf_counter()
    with autocast, nullcontext() if backward else torch.no_grad():
        q, k, v = variant(x, layers)
    if backward:
        (q.float().sum() + 2 * k.float().sum() + 3 * v.float().sum()).backward()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=32 * 28, help="tokens of a batch (default: 32 x 28)")
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()
    layers, x = projections(args.hidden), torch.randn(args.tokens, args.hidden, requires_grad=True)
    q, k, v = (out.detach() for out in three_gemms(x, layers))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip((q, k, v), one_gemm(x, layers)))  # same math
    arms = [(name, backward) for name in VARIANTS for backward in (True, False)]
    seconds = dict.fromkeys(arms, 0.0)
    for round_ in range(1 + args.rounds):  # round 0 warms up
        for name, backward in arms:
            x.grad = None
            for layer in layers:
                layer.zero_grad(set_to_none=True)
            spent = timed(VARIANTS[name], x, layers, args.precision, backward)
            seconds[name, backward] += spent if round_ else 0.0
    for name in VARIANTS:
        print(f"{name} ({args.precision}): forward + backward {seconds[name, True] / args.rounds * 1e3:.2f} ms, "
              f"forward {seconds[name, False] / args.rounds * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
