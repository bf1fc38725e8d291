"""Mixed precision: does this CPU run bf16 matmuls natively, and which precision a run uses.

`cpu_bf16_support()` says whether the CPU has bf16 arithmetic units, from what the OS lists (Linux
/proc/cpuinfo flags or Features, macOS sysctl) with torch's own CPU capability query
(`torch.cpu.get_capabilities()`, present in torch 2.13, skipped where a torch lacks it) as a
second opinion. No timed probe: the flags answer the question without one (bench/bf16_probe.py
measures what the units are worth).

`choose_mixed_precision()` is the one place that turns a request (`auto`, `no`, `bf16`, ...) into
the precision used, and `record()` the keys that all_results.json carries about it.

What counts as native bf16 matmul units:
  x86    avx512_bf16 (VDPBF16PS: Cooper Lake, Sapphire Rapids+, AMD Zen 4+) or amx_bf16 (AMX tiles,
         Sapphire Rapids+). avx512f/avx512bw alone is NOT native: oneDNN then runs bf16 by converting
         to fp32 (this is all `torch.ops.mkldnn._is_mkldnn_bf16_supported()` checks, so it is not used).
  Arm    `bf16` in /proc/cpuinfo Features (BFDOT/BFMMLA: Neoverse V1/N2/V2, Graviton 3+), or on
         macOS sysctl hw.optional.arm.FEAT_BF16 = 1 (Apple M2 and later).
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional

from tokclf.errors import ConfigError

# The OS's flag names that mean native bf16 units, per architecture family.
X86_NATIVE = ("avx512_bf16", "amx_bf16")
ARM_NATIVE = ("bf16",)
# Flags kept in the record besides those: they explain a "no" (avx512f without avx512_bf16 = emulated).
X86_CONTEXT = ("avx2", "avx512f", "avx512bw", "amx_tile")
ARM_CONTEXT = ("asimd", "sve", "svebf16", "i8mm")
# torch.cpu.get_capabilities() keys for the same features (its names differ from the kernel's).
TORCH_NATIVE = {"x86": ("avx512_bf16", "amx_bf16"), "arm": ("bf16", "sve_bf16")}
DARWIN_BF16_SYSCTL = "hw.optional.arm.FEAT_BF16"
MODES = ("auto", "no", "bf16", "fp16", "fp8")
# Overrides the detection of this machine (and only that: pure calls with arguments ignore it), so that
# the tests of both kinds of CPU run on either kind. `native`: act as a CPU with bf16 units; `none`: as
# one without. Read here and nowhere else; subprocesses inherit it.
OVERRIDE_ENV = "TOKCLF_CPU_BF16"
OVERRIDES = ("native", "none")


@dataclass(frozen=True)
class Bf16Support:
    """Whether the CPU has native bf16 matmul units, why we think so, and what we looked at."""

    native: bool
    reason: str
    cpu_model: str
    flags: tuple[str, ...]  # the bf16-relevant flags found (sorted), for the record
    source: str  # where the flags came from: "/proc/cpuinfo", "sysctl", "torch", "none"

    def summary(self) -> str:
        verdict = "native" if self.native else "not native"
        return f"CPU bf16: {verdict} ({self.reason}); CPU: {self.cpu_model}"


def _arch(machine: str) -> str:
    m = machine.lower()
    if m in ("x86_64", "amd64", "i386", "i686", "x86"):
        return "x86"
    if m.startswith(("aarch64", "arm")):
        return "arm"
    return "other"


def parse_cpuinfo(text: str) -> tuple[str, set[str]]:
    """(CPU model, flags) from /proc/cpuinfo text: x86 lists `flags`, Arm `Features`; the first
    processor block suffices (the kernel lists the features all cores share)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key not in fields:
            fields[key] = value.strip()
    flags = set((fields.get("flags") or fields.get("features") or "").split())
    model = fields.get("model name") or fields.get("hardware") or ""
    if not model and "cpu part" in fields:
        # Arm kernels give no model name, only implementer/part codes (0x41/0xd40 = Arm Neoverse V1).
        model = f"Arm implementer {fields.get('cpu implementer', '?')} part {fields['cpu part']}"
    return model or "unknown", flags


def _torch_capabilities() -> Optional[Mapping]:
    """torch's own CPU feature query (cpuinfo library, CPUID/HWCAP), None where this torch lacks it."""
    try:
        import torch
    except ImportError:
        return None
    query = getattr(torch.cpu, "get_capabilities", None)
    try:
        return dict(query()) if query is not None else None
    except RuntimeError:
        return None


def _sysctl(name: str) -> Optional[str]:
    try:
        done = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=2)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _os_view(arch: str, system: str, cpuinfo_text: Optional[str], sysctl: Optional[Callable]):
    """(native, flags, model, source) from what the OS lists; native None when it lists nothing."""
    if cpuinfo_text and cpuinfo_text.strip():
        model, flags = parse_cpuinfo(cpuinfo_text)
        if flags:
            native_names = X86_NATIVE if arch == "x86" else ARM_NATIVE if arch == "arm" else ()
            found = flags & set(native_names + X86_CONTEXT + ARM_CONTEXT)
            return bool(flags & set(native_names)), tuple(sorted(found)), model, "/proc/cpuinfo"
    if system == "Darwin" and arch == "arm" and sysctl is not None:
        value = sysctl(DARWIN_BF16_SYSCTL)
        if value is not None:
            model = sysctl("machdep.cpu.brand_string") or "Apple silicon"
            native = value.strip() == "1"
            return native, (("FEAT_BF16",) if native else ()), model, "sysctl"
    return None, (), "unknown", "none"


def _torch_view(arch: str, caps: Optional[Mapping]) -> tuple[Optional[bool], tuple[str, ...]]:
    if not caps or arch not in TORCH_NATIVE:
        return None, ()
    found = tuple(k for k in TORCH_NATIVE[arch] if caps.get(k))
    return bool(found), found


def decide_support(machine: str, system: str, cpuinfo_text: Optional[str] = None,
                   sysctl: Optional[Callable[[str], Optional[str]]] = None,
                   torch_caps: Optional[Mapping] = None) -> Bf16Support:
    """Pure: the verdict from the given descriptions only. Native needs a positive source and no
    disagreeing one: if the OS lists a unit torch does not see, torch's kernels will not use it, and
    if torch sees one the OS does not list, the OS may not have enabled it (AMX needs kernel support)."""
    arch = _arch(machine)
    os_native, flags, model, source = _os_view(arch, system, cpuinfo_text, sysctl)
    torch_native, torch_found = _torch_view(arch, torch_caps)
    if model == "unknown" and torch_caps and torch_caps.get("cpu_name"):
        model = str(torch_caps["cpu_name"])
    units = "/".join(X86_NATIVE if arch == "x86" else ARM_NATIVE)
    if os_native is None and torch_native is None:
        return Bf16Support(False, f"no CPU feature list found for {machine or 'unknown'} "
                                  f"({system or 'unknown OS'}); not assumed native", model, (), "none")
    if os_native is None:
        reason = (f"torch.cpu.get_capabilities() reports {', '.join(torch_found)}" if torch_native else
                  f"torch.cpu.get_capabilities() reports no {units}")
        return Bf16Support(bool(torch_native), reason, model, torch_found, "torch")
    listed = [f for f in flags if f in X86_NATIVE + ARM_NATIVE + ("FEAT_BF16",)]
    if os_native:
        reason = f"{', '.join(listed)} in {source}"
    else:
        others = [f for f in flags if f not in listed]
        reason = f"no {units} in {source}" + (f", only {', '.join(others)}" if others else "")
    if torch_native is not None and torch_native != os_native:
        seen = ", ".join(torch_found) if torch_native else f"no {units}"
        return Bf16Support(False, f"{reason}, but torch.cpu.get_capabilities() reports {seen}; "
                                  "not counted native", model, flags, source)
    agrees = "; torch agrees" if torch_native is not None else ""
    return Bf16Support(bool(os_native), reason + agrees, model, flags, source)


@functools.lru_cache(maxsize=1)
def _this_machine() -> Bf16Support:
    system, machine = platform.system(), platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    text = None
    if system == "Linux" and cpuinfo.is_file():
        try:
            text = cpuinfo.read_text(errors="replace")
        except OSError:
            text = None  # some sandboxes hide it; torch's view still answers
    sysctl = _sysctl if system == "Darwin" else None
    return decide_support(machine, system, text, sysctl, _torch_capabilities())


def cpu_bf16_support(cpuinfo_text: Optional[str] = None, machine: Optional[str] = None, *,
                     system: Optional[str] = None, sysctl: Optional[Callable[[str], Optional[str]]] = None,
                     torch_caps: Optional[Mapping] = None) -> Bf16Support:
    """Whether this CPU runs bf16 matmuls natively.

    With no arguments it describes this machine (cached for the process): /proc/cpuinfo on Linux,
    sysctl on macOS, and torch.cpu.get_capabilities() as a second opinion. Given any argument it is
    pure over what is given: sources not given count as absent, so a test's fake cpuinfo is never
    mixed with the real machine's torch view. `machine` defaults to x86_64, `system` to Linux then."""
    if cpuinfo_text is None and machine is None and system is None and sysctl is None and torch_caps is None:
        return _overridden(_this_machine(), os.environ.get(OVERRIDE_ENV, ""))
    return decide_support(machine or "x86_64", system or "Linux", cpuinfo_text, sysctl, torch_caps)


def _overridden(detected: Bf16Support, override: str) -> Bf16Support:
    """The detected support, or the one TOKCLF_CPU_BF16 forces; the record keeps the real CPU's model
    and flags, and the reason says it was forced, so no result passes for this machine's own."""
    value = override.strip().lower()
    if not value:
        return detected
    if value not in OVERRIDES:
        raise ConfigError(f"{OVERRIDE_ENV}={override!r}: expected one of {', '.join(OVERRIDES)} "
                          f"(or unset it to detect the CPU).")
    native = value == "native"
    if native == detected.native:
        return detected
    forced = "bf16 units" if native else "no bf16 units"
    return Bf16Support(native, f"{OVERRIDE_ENV}={value} forces {forced}; detected: {detected.reason}",
                       detected.cpu_model, detected.flags, f"{OVERRIDE_ENV}")


def choose_mixed_precision(requested: Optional[str], device_type: str, support: Optional[Bf16Support] = None,
                           *, device_bf16: Optional[bool] = None) -> tuple[str, str]:
    """(precision, message): the precision a run uses, and the line to print at start.

    requested: `auto` (also None or ""), `no`, `bf16`, `fp16` or `fp8`, e.g. from --mixed_precision
    or the launch config's ACCELERATE_MIXED_PRECISION.
    On an accelerator device (cuda, xpu, mps, ...) an explicit request is kept as it is: the launch
    config knows its GPUs. `auto` there becomes bf16 when `device_bf16` is True (say
    torch.cuda.is_bf16_supported()), else `no`: fp16 needs loss scaling and is never picked unasked.
    On a CPU `auto` becomes bf16 when the CPU has native units, else `no` with the reason.
    An explicit bf16 on a CPU without units is honoured after a warning, not refused: it is a
    deliberate choice (checking a GPU recipe's numerics, testing the bf16 path in CPU-only CI), the
    result is correct, only slower, and a silent override would make the run differ from its config.
    `fp8` on a CPU is refused: there are no fp8 CPU kernels to honour it with.
    """
    mode = (requested or "auto").strip().lower()
    if mode not in MODES:
        raise ConfigError(f"mixed precision '{requested}': expected one of {', '.join(MODES)}.")
    if device_type != "cpu":
        if mode != "auto":
            return mode, f"mixed precision: {mode} on {device_type} (as requested)"
        chosen = "bf16" if device_bf16 else "no"
        why = "supports" if device_bf16 else ("does not support" if device_bf16 is False else "may not support")
        return chosen, f"mixed precision: {chosen} (auto: the {device_type} device {why} bf16)"
    return _choose_on_cpu(mode, support if support is not None else cpu_bf16_support())


def _choose_on_cpu(mode: str, support: Bf16Support) -> tuple[str, str]:
    if mode == "fp8":
        raise ConfigError("mixed precision fp8 needs a GPU with fp8 units (Hopper or newer); this run is on a CPU.")
    if mode == "auto":
        chosen = "bf16" if support.native else "no"
        return chosen, f"mixed precision: {chosen} (auto: {support.summary()})"
    if mode == "bf16" and not support.native:
        return "bf16", (f"warning: mixed precision bf16 on a CPU without bf16 units ({support.reason}): "
                        f"{expected_slowdown(support)} Use --mixed_precision no or auto; honoured as requested.")
    if mode == "fp16":
        return "fp16", (f"warning: mixed precision fp16 on a CPU: honoured, but fp16 units (avx512_fp16, "
                        f"amx_fp16) are not checked and fp16 is usually slower than fp32 on CPUs. {support.summary()}")
    if mode == "no" and support.native:
        return "no", f"mixed precision: no (as requested; this CPU has native bf16: {support.reason})"
    return mode, f"mixed precision: {mode} (as requested; {support.summary()})"


def expected_slowdown(support: Bf16Support) -> str:
    """What bf16 without units costs. With avx512bw oneDNN emulates bf16 through fp32 (ONNX Runtime
    quotes 3-4x slower; not measured here). With AVX2 only, oneDNN's bf16 path is off and torch's
    generic kernels run: bench/bf16_probe.py on a 2-core AMD EPYC (Zen 1, under load) measured a
    MiniLM training step 13x slower, evaluation 6.5x and a 1024^3 matmul 90x."""
    if "avx512bw" in support.flags:
        return "oneDNN emulates bf16 through fp32 here, expect roughly 2-4x SLOWER than fp32."
    if support.source == "/proc/cpuinfo" and "avx2" in support.flags:
        return ("without avx512 torch falls back to generic bf16 kernels: expect training 5-15x SLOWER than "
                "fp32 and plain matmuls far worse (measure with bench/bf16_probe.py).")
    return "expect it to be several times SLOWER than fp32 (measure with bench/bf16_probe.py)."


def record(precision: str, support: Bf16Support) -> dict:
    """The keys about precision that all_results.json carries (JSON types only)."""
    return {"mixed_precision": precision, "cpu_bf16_native": support.native,
            "cpu_bf16_reason": support.reason, "cpu_model": support.cpu_model,
            "cpu_bf16_flags": list(support.flags)}
