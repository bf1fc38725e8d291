"""The one Accelerator factory, for training and inference alike, and the device facts that follow from
it (TF32, SDPA precision, CPU memory reuse, padding multiple, data-loader options)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, Optional

import torch

from tokclf.errors import ConfigError, LaunchError
from tokclf.runtime.allocator import set_cpu_memory_reuse

DEVICES = ("cpu", "cuda", "mps", "xpu")


@dataclass(frozen=True)
class AcceleratorOptions:
    """What a command asks of its Accelerator. Inference needs only `device`."""

    device: Optional[str] = None  # None: what Accelerate picks; "cpu" forces the CPU
    gradient_accumulation_steps: int = 1
    log_with: Optional[str] = None  # trackers (training with --with_tracking)
    project_dir: Optional[str] = None  # where trackers write
    torch_compile: bool = False
    tf32: Optional[bool] = None
    mixed_precision: Optional[str] = None  # auto | no | bf16 | fp16 | fp8; None: the launch config's, else auto
    sdp_reduced_precision: Optional[bool] = None  # None: on under bf16/fp16 (set_sdp_reduced_precision)
    reuse_cpu_memory: Optional[bool] = None  # None: on for a CPU run (allocator.set_cpu_memory_reuse)


def _has_accelerator_device() -> bool:
    if hasattr(torch, "accelerator"):
        return torch.accelerator.is_available()
    return torch.cuda.is_available()


def make_cpu_group_if_needed() -> bool:
    """True for a multi-process launch on a machine without an accelerator device: then the processes
    must form one gloo (MULTI_CPU) group, which Accelerate does only when told `cpu=True`; otherwise
    each process would train alone on all the data."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not _has_accelerator_device()


# What `accelerate launch` sets for a launch config whose distributed type needs GPUs (accelerate's
# utils/launch.py): none of them runs on CPU processes.
GPU_ONLY_LAUNCHES = {"ACCELERATE_USE_FSDP": "FSDP", "ACCELERATE_USE_DEEPSPEED": "DEEPSPEED",
                     "ACCELERATE_USE_MEGATRON_LM": "MEGATRON_LM"}


def check_launch_fits_the_machine() -> None:
    """Refuse, before anything is loaded, a launch config that needs GPUs on a machine without an
    accelerator device: FSDP would fail deep in torch ("Cannot copy out of meta tensor"), DeepSpeed and
    Megatron-LM need CUDA. Plain multi-GPU (DDP) launches stay allowed: their processes form one gloo
    group here (make_cpu_group_if_needed)."""
    if _has_accelerator_device():
        return
    asked = [kind for variable, kind in GPU_ONLY_LAUNCHES.items()
             if os.environ.get(variable, "false").strip().lower() in ("true", "1", "yes")]
    if asked:
        raise LaunchError(
            f"the launch config's distributed_type is {asked[0]}, which needs GPUs, and this machine has none. "
            "On CPUs use `accelerate launch --config_file launch/multi-cpu.yaml` (processes in one gloo group) "
            "or launch/cpu.yaml (one process).")


def check_one_group(accelerator) -> None:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if accelerator.num_processes != world:
        raise ConfigError(
            f"launched {world} processes but they formed a group of {accelerator.num_processes} "
            f"({accelerator.distributed_type}); each would train alone. Check the accelerate launch config."
        )


def make_accelerator(options: AcceleratorOptions = AcceleratorOptions()):
    """An Accelerator for this launch, refusing a launch whose processes do not form one group, and a
    named device that is not there."""
    from accelerate import Accelerator, DataLoaderConfiguration
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedDataParallelKwargs, GradientAccumulationPlugin, TorchDynamoPlugin

    # Only when asked: otherwise a launch config's own dynamo settings stay in force.
    compile_kwargs = {"dynamo_plugin": TorchDynamoPlugin(backend="inductor", dynamic=True)} if options.torch_compile else {}
    # AcceleratorState is a process-wide singleton: a second run in one process (a notebook, the tests)
    # would otherwise keep the first run's mixed precision and compile settings. The process group stays.
    AcceleratorState._reset_state()
    check_launch_fits_the_machine()
    device_type = expected_device_type(options.device)
    if options.torch_compile and device_type == "cpu":
        check_cpu_compile_can_link()
    precision, message = resolve_precision(options.mixed_precision, device_type)
    accelerator = Accelerator(
        **compile_kwargs,
        mixed_precision=precision,
        cpu=options.device == "cpu" or make_cpu_group_if_needed(),
        # The loop decides where a window ends (see steps.train_window), not the end of the data loader.
        gradient_accumulation_plugin=GradientAccumulationPlugin(
            num_steps=options.gradient_accumulation_steps, sync_with_dataloader=False),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        # gradients as views into DDP's all-reduce buckets: one copy of the gradients per process, not two
        kwargs_handlers=[DistributedDataParallelKwargs(gradient_as_bucket_view=True)],
        log_with=options.log_with,
        project_dir=options.project_dir,
    )
    check_one_group(accelerator)
    if options.device not in (None, "cpu") and accelerator.device.type != options.device:
        raise ConfigError(f"--device {options.device}: no such device here (Accelerate would use "
                          f"{accelerator.device.type}). Leave --device out to use what there is.")
    set_tf32(options.tf32, accelerator.device)
    set_sdp_reduced_precision(options.sdp_reduced_precision, accelerator.mixed_precision)
    set_cpu_memory_reuse(options.reuse_cpu_memory, accelerator.device)
    accelerator.print(message)
    return accelerator


def resolve_precision(requested: Optional[str], device_type: str) -> tuple[str, str]:
    """(precision, the line saying why). A tokclf flag other than auto wins; else a launch config's or
    `accelerate launch --mixed_precision` reduced precision (ACCELERATE_MIXED_PRECISION; its `no` is
    also what accelerate launch sets when nothing was asked, so it does not stop auto); else auto:
    bf16 on a CPU with bf16 units (tokclf.runtime.precision), fp32 on other CPUs and, as before, on GPUs."""
    from tokclf.runtime.precision import choose_mixed_precision

    launched = os.environ.get("ACCELERATE_MIXED_PRECISION", "no").lower()
    if requested in (None, "auto") and launched not in ("no", ""):
        requested = launched
    if requested in (None, "auto") and device_type != "cpu":
        return "no", f"mixed precision: no (auto keeps fp32 on {device_type}; ask for bf16 with --mixed_precision bf16)"
    precision, message = choose_mixed_precision(requested, device_type)
    if requested in (None, "auto") and precision == "bf16" and "ACCELERATE_MIXED_PRECISION" in os.environ:
        # accelerate launch sets `no` both when asked for it and when asked nothing, so its flag cannot
        # force fp32 here; say which flag can.
        message += ("; accelerate launch's mixed precision `no` does not force fp32 (it is also its default): "
                    "for fp32 pass tokclf's own --mixed_precision no")
    return precision, message


INFERENCE_DTYPES = ("auto", "fp32", "bf16")


def inference_precision(dtype: str, trained_precision: Optional[str], device: Optional[str] = None) -> str:
    """The mixed precision evaluate and predict ask the Accelerator for. auto: on a CPU, bf16 where it has
    bf16 units (resolve_precision asks tokclf.runtime.precision); on a GPU, bf16 where training used it; fp32
    otherwise. Scores are accumulated and decoded in fp32 either way (evaluate.predict_word_scores)."""
    if dtype != "auto":
        return "no" if dtype in ("fp32", "int8") else dtype  # int8 layers take and give fp32
    if expected_device_type(device) == "cpu":
        return "auto"
    return "bf16" if trained_precision == "bf16" else "no"


def cpu_compile_link_dirs() -> list[str]:
    """The library folders inductor's C++ kernels link against on a CPU: torch's own and Python's."""
    import sysconfig

    from torch.utils.cpp_extension import TORCH_LIB_PATH

    return [TORCH_LIB_PATH, sysconfig.get_config_var("LIBDIR") or ""]


def check_cpu_compile_can_link() -> None:
    """torch's inductor puts `-L<folder>` unquoted on its C++ command line (torch <= 2.13; pytorch PR 191010),
    so a folder with white space splits it and the first compiled step fails deep in the linker: say so now."""
    spaced = [folder for folder in cpu_compile_link_dirs() if any(c.isspace() for c in folder)]
    if spaced:
        raise ConfigError(f"--torch_compile on a CPU cannot link its kernels: torch passes the library folder "
                          f"{spaced[0]!r} to the linker unquoted and the white space splits it. Install the "
                          f"virtual environment under a path without spaces, or drop --torch_compile.")


def expected_device_type(device: Optional[str]) -> str:
    """The device type the Accelerator will use, known before it exists (its precision is a constructor
    argument)."""
    if device == "cpu" or make_cpu_group_if_needed() or not _has_accelerator_device():
        return "cpu"
    if hasattr(torch, "accelerator") and torch.accelerator.current_accelerator() is not None:
        return torch.accelerator.current_accelerator().type
    return "cuda"


def precision_record(accelerator) -> dict:
    """What all_results.json says about precision: the one used and what the CPU offers."""
    from tokclf.runtime.precision import cpu_bf16_support, record

    return record(accelerator.mixed_precision, cpu_bf16_support())


def set_tf32(requested: Optional[bool], device) -> None:
    """TF32 matmuls on Ampere+ GPUs unless --tf32 false: about 8x the fp32 rate, with a 10-bit mantissa
    that fine-tuning does not notice."""
    if device.type != "cuda":
        return
    enable = torch.cuda.get_device_capability(device)[0] >= 8 and requested is not False
    torch.backends.cuda.matmul.allow_tf32 = enable
    torch.backends.cudnn.allow_tf32 = enable


def set_sdp_reduced_precision(requested: Optional[bool], precision: str) -> bool:
    """Let SDPA's math kernel compute bf16/fp16 attention in that precision (torch's own flag; despite its
    `cuda` namespace it governs the math kernel on every device). By default the kernel upcasts q, k and
    v to fp32, so under autocast the scores, softmax and dropout mask run in fp32 with casts around them.
    Training with attention dropout runs that kernel on a CPU (its flash kernel refuses dropout); on a GPU
    the flash and memory-efficient kernels run and the flag changes nothing. Default: on under bf16 and
    fp16, off in fp32 (set every time: the flag is process-wide and a second run must not inherit it)."""
    enable = precision in ("bf16", "fp16") if requested is None else requested
    torch.backends.cuda.allow_fp16_bf16_reduction_math_sdp(enable)
    return enable


InferenceDtype = Literal["auto", "fp32", "bf16", "int8"]
INFERENCE_DTYPE_HELP = ("auto: bf16 autocast on a CPU with bf16 units (detected) or on a GPU when training used bf16, "
                        "else fp32. int8 (a CPU only): the Linear layers that keep or widen their width run as int8 "
                        "GEMMs (torch's dynamic quantization; a trained MiniLM on an AVX2 CPU: 1.3-1.4x faster, F1 "
                        "-0.07 to -0.18 points; check F1 on your model). Scores are kept in fp32.")
BF16_WEIGHTS_HELP = ("Score on bf16 weights instead of fp32 weights under autocast, where the precision is bf16. "
                     "Default: on a CPU (a forward takes about 0.7x the time), not on a GPU.")


def wants_bf16_weights(requested: Optional[bool], accelerator) -> bool:
    """Whether scoring runs on bf16 weights rather than fp32 weights under autocast. Default: where the
    run's precision is bf16 on a CPU; there a forward on bf16 weights takes 0.7x the time (no casts of
    activations, LayerNorm and softmax in bf16), with the F1 checked in bench/RESULTS.md. On a GPU
    autocast is kept: its casts cost little there."""
    if requested is not None:
        return requested and accelerator.mixed_precision == "bf16"
    return accelerator.mixed_precision == "bf16" and accelerator.device.type == "cpu"


def model_for_scoring(model, accelerator, bf16_weights: Optional[bool], int8_weights: bool = False):
    """What an evaluation during training scores with: the model, or a copy on int8 weights (runtime.int8,
    opt-in) or on bf16 weights (wants_bf16_weights)."""
    from tokclf.runtime.int8 import int8_applies, int8_weights as on_int8_weights

    if int8_applies(int8_weights, accelerator):
        return on_int8_weights(eager_copy(model, accelerator))
    if wants_bf16_weights(bf16_weights, accelerator):
        return bf16_scoring_copy(model, accelerator)
    return model


def bf16_scoring_copy(model, accelerator):
    """A bf16 copy of a model being trained, for one evaluation (eager_copy)."""
    return eager_copy(model, accelerator).to(torch.bfloat16).eval()


def eager_copy(model, accelerator):
    """A copy of a model being trained, for one evaluation on other weights: the fp32 master weights stay as
    they are. The copy drops Accelerate's autocast wrapper of `forward` (an attribute of the instance, which
    deepcopy rebinds to the copy): on bf16 weights autocast would only cast LayerNorm's input to fp32, and
    int8 layers take fp32. Under --torch_compile the copy is the eager module inside the compile wrapper: a
    deepcopy of the wrapper without its `forward` would have none, and compiling a throwaway copy costs more
    than it saves."""
    import copy

    scoring = copy.deepcopy(accelerator.unwrap_model(model, keep_torch_compile=False))
    for wrapper in ("forward", "_original_forward"):
        scoring.__dict__.pop(wrapper, None)
    return scoring


def loader_options(workers: int, device) -> dict:
    """DataLoader workers and pinned memory. No workers by default, also on a GPU: collating a batch of
    token ids is cheap, and on an H200 two workers gave a 500-step MiniLM run no gain, only start-up
    time (bench/RESULTS.md). On a GPU batches come from pinned memory."""
    return {"num_workers": workers, "pin_memory": device.type == "cuda", "persistent_workers": workers > 0}


def pad_multiple(accelerator) -> int | None:
    """Pad batches to a multiple of 8 for reduced precision on GPUs, whose tensor cores want it. Not on
    CPUs: oneDNN's AMX and AVX-512 bf16 kernels take any length, and rounding length-grouped batches up
    to 8 added 17% positions to the bench's bf16 training (real 17.8 tokens per row against 20.7)."""
    reduced = accelerator.mixed_precision in ("fp16", "bf16")
    return 8 if reduced and accelerator.device.type != "cpu" else None
