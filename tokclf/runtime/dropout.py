"""Dropout masks a CPU draws cheaply (--fast_dropout): tokclf swaps the model's dropout modules for these.

Why: on a CPU torch's dropout draws one Mersenne-Twister number per element (`bernoulli_`, no fused
kernel: pytorch issue 138199), about 11 ns each on a 2-core EPYC: 4.2 ms for one [32, 31, 384] mask
against 0.07 ms for a multiply of the same tensor. A MiniLM step has 14 such masks (embeddings, after
each layer's attention and feed-forward outputs, and the classifier's input); they were 9% of a training step's operator time at fp32
(17.7% under bf16). Here one 64-bit draw of the same generator makes the masks of four elements, 16 bits
each: 0.64 ms for that mask. No library offers this: torch has no other CPU generator and no fused CPU
dropout.

What stays the same: the draws come from torch's default CPU generator, so seeding, the RNG state that
`save_state` keeps and exact resume work as before; a dropout rate p becomes round(p * 65536) / 65536 (p 0.1:
0.1000061), and kept values are scaled by 1 / (1 - that rate), so each output's expectation is its input,
as in torch. What differs: which elements are dropped (the masks come from other draws), hence training is
not bit-for-bit the run of torch's dropout, only equal in distribution (bench/RESULTS.md has the F1).
The attention-probability dropout happens inside SDPA's kernel: attention_dropout.py gives it these masks
(--fast_attention_dropout). On a GPU nothing is swapped (its fused dropout kernel is fast), and a swapped
module on a non-CPU tensor uses torch's.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

LANES = 4  # 16-bit masks per 64-bit draw
LANE_VALUES = 1 << 16


def keep_mask(shape: torch.Size, drop_count: int) -> torch.Tensor:
    """Bool mask: False where the element is dropped, with probability drop_count / 65536 each. One
    full-range int64 draw per four elements, read as four uniform int16 lanes."""
    numel = shape.numel()
    draws = torch.empty((numel + LANES - 1) // LANES, dtype=torch.int64).random_(-(1 << 63), None)
    lanes = draws.view(torch.int16)[:numel]
    return (lanes >= drop_count - LANE_VALUES // 2).view(shape)


# torch's own kernel for "masked and scaled": dropout's backward, x * mask * scale in one pass over a bool mask.
_mask_and_scale = torch.ops.aten.native_dropout_backward


class _DropWithMask(torch.autograd.Function):
    """out = x * keep * scale; the gradient is masked and scaled alike (the bool mask is what is saved:
    one byte an element)."""

    @staticmethod
    def forward(ctx, x, keep, scale: float):
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return _mask_and_scale(x, keep, scale)

    @staticmethod
    def backward(ctx, grad):
        (keep,) = ctx.saved_tensors
        return _mask_and_scale(grad, keep, ctx.scale), None, None


def cheap_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Training-time dropout of a CPU tensor at rate p (0 < p < 1) with keep_mask's masks."""
    drop_count = round(p * LANE_VALUES)
    scale = LANE_VALUES / (LANE_VALUES - drop_count)
    return _DropWithMask.apply(x, keep_mask(x.shape, drop_count), scale)


class FastCpuDropout(nn.Dropout):
    """nn.Dropout whose mask is drawn by keep_mask on a CPU tensor in training; torch's own otherwise.
    It keeps `p`: transformers reads a module's `p` for the attention dropout it hands to SDPA."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or self.p == 1 or x.device.type != "cpu":
            return super().forward(x)
        return cheap_dropout(x, self.p)


def fast_dropout_wanted(requested: Optional[bool], device: torch.device) -> bool:
    """Default: on where training runs on the CPU; on a GPU torch's fused kernel is kept."""
    return device.type == "cpu" if requested is None else requested


def use_fast_dropout(model: nn.Module) -> int:
    """Swap every plain nn.Dropout of the model for FastCpuDropout with the same p; returns how many.
    Dropout holds no weights, so saved models and checkpoints are unchanged."""
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, FastCpuDropout(child.p))
                swapped += 1
    return swapped
