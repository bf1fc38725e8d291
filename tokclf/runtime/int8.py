"""Scoring on int8 weights, opt-in, for a CPU run in fp32 (a CPU without bf16 units, where auto precision is fp32).

There evaluation is bound by its fp32 matmuls (bench/RESULTS.md). torch's dynamic quantization runs a Linear
layer as an int8 GEMM (fbgemm/oneDNN: AVX2's 8-bit multiply-adds, AVX-512 VNNI where there is one), its
weights quantized once per output channel and its input once per batch, then gives fp32 back. Measured on a
quick-start MiniLM (`bench/eval_weights_ab.py`, AMD EPYC with AVX2): every Linear in int8 scored 1.43x faster
but lost 0.5 points of validation F1 (0.9 with one scale per tensor). The layers that cost it are the
contracting ones: the FFN's output layer, whose input is the GELU's heavy-tailed activations, and the
classifier. So only the layers that keep or widen their width (out_features >= in_features: Q, K, V, the
attention output, the FFN input; gate/up projections in decoders) become int8: 1.41x faster, -0.07 points
(test split: 1.34x, -0.18). A model far from trained sits closer to ties and loses more: the bench's 150-step
model (F1 0.47) lost 1.04 points. So check F1 on your own model before relying on it.

A rule on shapes, not names, so it holds for every model family. Numbers change (the F1 check is above), so
it is never a default; on a GPU (no dynamic-quantization kernels) and in a bf16/fp16 run (whose activations
these fp32-in, fp32-out layers would not take) it is not done.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: arguments.py takes INT8_HELP without loading torch
    import torch

INT8_HELP = ("Score on int8 weights where evaluation runs on a CPU in fp32: torch's dynamic quantization of the "
             "Linear layers that keep or widen their width (the FFN's output layer and the classifier stay fp32). "
             "MiniLM on an AVX2 CPU: evaluation 1.3-1.4x faster; F1 -0.07 (validation) and -0.18 points (test) for "
             "a trained model, -1.04 for one trained only 150 steps. Changes the scores, so off by default; on a "
             "GPU or in a bf16 run it changes nothing.")


def int8_applies(requested: bool, accelerator) -> bool:
    """Whether scoring uses int8 weights: asked for, on a CPU, in fp32."""
    return bool(requested) and accelerator.device.type == "cpu" and accelerator.mixed_precision == "no"


def int8_layer_names(model: torch.nn.Module) -> list[str]:
    """The Linear layers that become int8: those that keep or widen their width (see the module's docstring)."""
    import torch

    return [name for name, module in model.named_modules()
            if type(module) is torch.nn.Linear and module.out_features >= module.in_features]


def int8_weights(model: torch.nn.Module) -> torch.nn.Module:
    """`model` in eval mode with its int8_layer_names swapped for dynamically quantized int8 layers, in place.
    LoRA adapters are merged first: the merged layer is what gets quantized."""
    if hasattr(model, "merge_and_unload"):  # a PeftModel
        model = model.merge_and_unload()
    return quantize_layers(model, int8_layer_names(model)).eval()


def quantize_layers(model: torch.nn.Module, names: list[str], per_channel: bool = True) -> torch.nn.Module:
    """`model` with the named Linear layers swapped for torch's dynamically quantized int8 ones, in place
    (bench/eval_weights_ab.py also quantizes other sets of layers with it)."""
    import torch
    import torch.ao.quantization as quantization

    qconfig = quantization.per_channel_dynamic_qconfig if per_channel else quantization.default_dynamic_qconfig
    with warnings.catch_warnings():  # torch points eager-mode quantization's users to torchao on every call
        warnings.simplefilter("ignore")
        return quantization.quantize_dynamic(model, {name: qconfig for name in names}, dtype=torch.qint8,
                                             inplace=True)
