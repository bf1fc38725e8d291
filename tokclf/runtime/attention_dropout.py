"""Attention-probability dropout with cheap CPU masks (--fast_attention_dropout), through transformers' own
attention interface.

Why: transformers hands a layer's attention dropout to torch's SDPA. On a CPU, SDPA's fused kernel refuses
dropout, so training runs its math kernel, which draws the [batch, heads, L, L] mask one Mersenne-Twister
number an element (`bernoulli_`): the largest masks of a step, 3.1% of a MiniLM step's operator time at fp32
on the EPYC even after --fast_dropout took the other masks (bench/RESULTS.md). No flag of torch or
transformers draws it otherwise.

How: `attention_forward` is registered with transformers' AttentionInterface (and SDPA's mask builder under
the same name with AttentionMaskInterface), and the model is switched to it with `set_attn_implementation`,
so the model's own attention layers call it. In training on a CPU tensor with dropout > 0 it runs the steps
of torch's math kernel (aten::_scaled_dot_product_attention_math) with dropout.keep_mask's masks:
scores, scale, mask, softmax, dropout, times values. Everything else (evaluation,
dropout 0, GPU tensors, position biases, soft-capping) goes to transformers' `sdpa_attention_forward` as
before. Precision is the math kernel's: fp16/bf16 inputs are upcast to fp32 unless torch's flag
`allow_fp16_bf16_reduction_math_sdp` (tokclf's --sdp_reduced_precision) allows reduced precision.
The choice lives in the config's internal attention field, which transformers does not save: a saved model
loads with SDPA, and nothing outside training changes.

Opt-in, because it was not faster where measured: at fp32 on the 2-core AVX2 EPYC the mask's share of a step
fell from 4.1% to 1.7%, but the unfused steps cost what the mask saved (in-process A/B 47.8 s against
47.7 s; bench/RESULTS.md). A CPU with bf16 units, where masks were 17.7% of a step, has not measured it yet.
"""

from __future__ import annotations

from typing import Optional

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from tokclf.runtime.dropout import cheap_dropout

NAME = "tokclf_sdpa"  # SDPA, but for training-time dropout on a CPU


def attention_forward(module, query, key, value, attention_mask: Optional[torch.Tensor], dropout: float = 0.0,
                      scaling: Optional[float] = None, is_causal: Optional[bool] = None, **kwargs):
    """transformers' attention-function signature: (output [batch, L, heads, head_dim], no weights)."""
    library_only = kwargs.get("position_bias") is not None or kwargs.get("softcap") is not None
    # cheap_dropout takes 0 < p < 1 (as FastCpuDropout hands it); the edge rates are SDPA's
    if not 0.0 < dropout < 1.0 or query.device.type != "cpu" or library_only:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    # SDPA's rule (sdpa_attention_forward): causal only without a mask; its causal mask is aligned top-left.
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    if causal and attention_mask is None and query.shape[2] > 1:
        attention_mask = torch.ones(query.shape[2], key.shape[2], dtype=torch.bool, device=query.device).tril()
    output = math_attention(query, key, value, attention_mask, dropout, scaling)
    return output.transpose(1, 2).contiguous(), None


def math_attention(query, key, value, mask: Optional[torch.Tensor], dropout: float,
                   scaling: Optional[float]) -> torch.Tensor:
    """torch's SDPA math kernel step by step, its dropout mask drawn by keep_mask. `mask`: bool (True attends)
    or additive float, broadcast over [batch, heads, L_query, L_key]."""
    out_dtype = query.dtype
    reduced = out_dtype in (torch.float16, torch.bfloat16)
    compute_dtype = out_dtype if not reduced or torch.backends.cuda.fp16_bf16_reduction_math_sdp_allowed() \
        else torch.float32
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    # The kernel runs below autocast, in the dtype chosen above: so does this.
    with torch.autocast(query.device.type, enabled=False):
        query, key, value = (t.to(compute_dtype) for t in (query, key, value))
        # Scaled and masked in place: matmul's backward needs its inputs, not its output. (The kernel scales q
        # and k by sqrt(scale) each instead: the same up to rounding, two more passes.)
        scores = torch.matmul(query, key.transpose(-2, -1)).mul_(scale)
        if mask is not None and mask.dtype == torch.bool:
            # the dtype's lowest value, not -inf: a row with no key to attend (padding) stays finite
            scores.masked_fill_(~mask, torch.finfo(compute_dtype).min)
        elif mask is not None:
            scores.add_(mask.to(compute_dtype))
        probs = cheap_dropout(scores.softmax(-1), dropout)
        return torch.matmul(probs, value).to(out_dtype)


def use_fast_attention_dropout(model) -> bool:
    """Route the model's attention through attention_forward where it runs transformers' SDPA; whether it now
    does (a model on eager attention, or one that cannot switch, keeps its own)."""
    AttentionInterface.register(NAME, attention_forward)
    AttentionMaskInterface.register(NAME, sdpa_mask)  # the masks SDPA gets: bool, True where a key is attended
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # under a PEFT wrapper
    if base.config._attn_implementation != "sdpa" or not type(base).is_backend_compatible():
        return False
    base.set_attn_implementation(NAME)
    return base.config._attn_implementation == NAME
