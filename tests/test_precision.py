"""tokclf.runtime.precision: bf16 detection on fake CPU descriptions, the precision decision, the record."""

import json
import platform
from pathlib import Path

import pytest

from tokclf.errors import ConfigError
from tokclf.runtime.precision import (OVERRIDE_ENV, Bf16Support, choose_mixed_precision, cpu_bf16_support, parse_cpuinfo,
                              record)

BASE_X86 = "fpu vme de pse tsc msr pae sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2"
# Flags as the kernel lists them, shortened to what matters.
SAPPHIRE_RAPIDS = (BASE_X86 + " avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_bf16 avx512_fp16"
                   " amx_bf16 amx_tile amx_int8")
EPYC_GENOA = BASE_X86 + " avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_bf16"
OLD_XEON = BASE_X86 + " avx512f avx512dq avx512bw avx512vl avx512cd"  # Skylake-SP: emulated bf16 only
NEOVERSE_V1 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm sve i8mm bf16 svebf16"
NEOVERSE_N1 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"


def x86_cpuinfo(model: str, flags: str, processors: int = 2) -> str:
    block = f"processor\t: {{i}}\nvendor_id\t: x\nmodel name\t: {model}\nflags\t\t: {flags}\n\n"
    return "".join(block.format(i=i) for i in range(processors))


def arm_cpuinfo(features: str) -> str:
    return (f"processor\t: 0\nBogoMIPS\t: 2100.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
            "CPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd40\nCPU revision\t: 1\n\n")


@pytest.mark.parametrize("model, flags, native, flag_in_reason", [
    ("Intel(R) Xeon(R) Platinum 8480+", SAPPHIRE_RAPIDS, True, "amx_bf16"),
    ("AMD EPYC 9654 96-Core Processor", EPYC_GENOA, True, "avx512_bf16"),
    ("Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz", OLD_XEON, False, "avx512f"),
    ("AMD EPYC 7B12", BASE_X86, False, "avx2"),
])
def test_x86_flag_sets(model, flags, native, flag_in_reason):
    support = cpu_bf16_support(x86_cpuinfo(model, flags), "x86_64")
    assert support.native is native
    assert support.cpu_model == model and support.source == "/proc/cpuinfo"
    assert flag_in_reason in support.reason
    # The record keeps the flags that explain the verdict, not the whole list.
    assert set(support.flags) <= {"avx2", "avx512f", "avx512bw", "amx_tile", "avx512_bf16", "amx_bf16"}
    assert ("avx512_bf16" in support.flags) == ("avx512_bf16" in flags.split())


def test_avx512f_alone_is_not_native_and_says_what_it_has():
    support = cpu_bf16_support(x86_cpuinfo("Old Xeon", OLD_XEON), "x86_64")
    assert not support.native
    assert support.reason.startswith("no avx512_bf16/amx_bf16 in /proc/cpuinfo") and "avx512bw" in support.reason


def test_arm_features():
    with_bf16 = cpu_bf16_support(arm_cpuinfo(NEOVERSE_V1), "aarch64")
    without = cpu_bf16_support(arm_cpuinfo(NEOVERSE_N1), "aarch64")
    assert with_bf16.native and "bf16" in with_bf16.flags and "bf16 in /proc/cpuinfo" in with_bf16.reason
    assert not without.native and "no bf16" in without.reason
    # Arm kernels give no model name: the implementer/part codes stand in.
    assert with_bf16.cpu_model == "Arm implementer 0x41 part 0xd40"


def test_arm_flag_names_do_not_count_on_x86_and_back():
    # "bf16" is an Arm feature name; an x86 listing with it (never real) must not pass as native.
    assert not cpu_bf16_support(x86_cpuinfo("x", BASE_X86 + " bf16"), "x86_64").native
    assert not cpu_bf16_support(arm_cpuinfo(NEOVERSE_N1 + " avx512_bf16"), "aarch64").native


@pytest.mark.parametrize("text", ["", "   \n", "processor\t: 0\nmodel name\t: Mystery\n", "garbage without colons"])
def test_empty_or_unknown_cpuinfo_is_not_assumed_native(text):
    support = cpu_bf16_support(text, "x86_64")
    assert not support.native and support.source == "none" and "not assumed" in support.reason
    assert support.flags == ()


def test_unknown_architecture_is_not_native():
    support = cpu_bf16_support(x86_cpuinfo("z", SAPPHIRE_RAPIDS), "riscv64")
    assert not support.native


def test_torch_as_second_opinion():
    caps_yes = {"architecture": "x86_64", "avx512_bf16": True, "amx_bf16": False, "cpu_name": "Caps CPU"}
    caps_no = {"architecture": "x86_64", "avx512_bf16": False, "amx_bf16": False}
    agree = cpu_bf16_support(x86_cpuinfo("m", EPYC_GENOA), "x86_64", torch_caps=caps_yes)
    assert agree.native and "torch agrees" in agree.reason
    # Disagreement either way: not native, and the reason says both views.
    os_only = cpu_bf16_support(x86_cpuinfo("m", EPYC_GENOA), "x86_64", torch_caps=caps_no)
    torch_only = cpu_bf16_support(x86_cpuinfo("m", OLD_XEON), "x86_64", torch_caps=caps_yes)
    for support in (os_only, torch_only):
        assert not support.native and "torch.cpu.get_capabilities()" in support.reason
    # No OS listing (Windows, a sandbox hiding /proc/cpuinfo): torch decides, and names the CPU.
    windows = cpu_bf16_support(None, "AMD64", system="Windows", torch_caps=caps_yes)
    assert windows.native and windows.source == "torch" and windows.cpu_model == "Caps CPU"
    assert not cpu_bf16_support(None, "AMD64", system="Windows", torch_caps=caps_no).native
    arm_caps = {"architecture": "aarch64", "bf16": True}
    assert cpu_bf16_support("", "aarch64", torch_caps=arm_caps).native


def test_macos_sysctl():
    def sysctl_for(values):
        return lambda name: values.get(name)

    m2 = cpu_bf16_support(None, "arm64", system="Darwin", sysctl=sysctl_for(
        {"hw.optional.arm.FEAT_BF16": "1", "machdep.cpu.brand_string": "Apple M2"}))
    m1 = cpu_bf16_support(None, "arm64", system="Darwin", sysctl=sysctl_for(
        {"hw.optional.arm.FEAT_BF16": "0", "machdep.cpu.brand_string": "Apple M1"}))
    assert m2.native and m2.cpu_model == "Apple M2" and m2.source == "sysctl"
    assert not m1.native and m1.cpu_model == "Apple M1"
    # An old macOS without the key: no answer, so not native.
    assert not cpu_bf16_support(None, "arm64", system="Darwin", sysctl=sysctl_for({})).native


def test_parse_cpuinfo_takes_the_first_block():
    model, flags = parse_cpuinfo(x86_cpuinfo("First", "avx2") + "model name\t: Second\nflags\t: avx512_bf16\n")
    assert model == "First" and flags == {"avx2"}


# ---------------------------------------------------------------------------------------------------
# The decision

NATIVE = Bf16Support(True, "avx512_bf16 in /proc/cpuinfo", "EPYC 9654", ("avx512_bf16",), "/proc/cpuinfo")
EMULATED = Bf16Support(False, "no avx512_bf16/amx_bf16 in /proc/cpuinfo, only avx2", "EPYC 7B12", ("avx2",),
                       "/proc/cpuinfo")


@pytest.mark.parametrize("requested", ["auto", None, "", "AUTO", " auto "])
def test_auto_on_cpu_follows_the_units(requested):
    assert choose_mixed_precision(requested, "cpu", NATIVE)[0] == "bf16"
    precision, message = choose_mixed_precision(requested, "cpu", EMULATED)
    assert precision == "no" and "only avx2" in message and "EPYC 7B12" in message


def test_explicit_bf16_on_cpu_without_units_is_honoured_with_a_warning():
    precision, message = choose_mixed_precision("bf16", "cpu", EMULATED)
    assert precision == "bf16"
    assert message.startswith("warning:") and "SLOWER" in message and EMULATED.reason in message
    precision, message = choose_mixed_precision("bf16", "cpu", NATIVE)
    assert precision == "bf16" and not message.startswith("warning")


def test_explicit_no_and_fp16_on_cpu():
    assert choose_mixed_precision("no", "cpu", EMULATED)[0] == "no"
    precision, message = choose_mixed_precision("no", "cpu", NATIVE)
    assert precision == "no" and "native bf16" in message  # says what was left unused
    precision, message = choose_mixed_precision("fp16", "cpu", EMULATED)
    assert precision == "fp16" and message.startswith("warning:")


def test_fp8_on_cpu_and_unknown_modes_are_refused():
    with pytest.raises(ConfigError, match="fp8"):
        choose_mixed_precision("fp8", "cpu", NATIVE)
    with pytest.raises(ConfigError, match="expected one of"):
        choose_mixed_precision("bfloat16", "cpu", NATIVE)


@pytest.mark.parametrize("requested", ["no", "bf16", "fp16", "fp8"])
def test_an_accelerator_device_keeps_what_is_requested(requested):
    # The CPU's units are irrelevant there: even an emulating host CPU keeps the GPU's bf16.
    assert choose_mixed_precision(requested, "cuda", EMULATED)[0] == requested


def test_auto_on_an_accelerator_device():
    assert choose_mixed_precision("auto", "cuda", EMULATED, device_bf16=True)[0] == "bf16"
    assert choose_mixed_precision("auto", "cuda", NATIVE, device_bf16=False)[0] == "no"
    precision, message = choose_mixed_precision("auto", "cuda", NATIVE)
    assert precision == "no" and "may not support" in message  # unknown is not assumed


def test_record_is_json_ready():
    keys = record("bf16", NATIVE)
    assert json.loads(json.dumps(keys)) == {
        "mixed_precision": "bf16", "cpu_bf16_native": True, "cpu_bf16_reason": NATIVE.reason,
        "cpu_model": "EPYC 9654", "cpu_bf16_flags": ["avx512_bf16"]}


# ---------------------------------------------------------------------------------------------------
# This machine

@pytest.mark.skipif(platform.system() != "Linux" or not Path("/proc/cpuinfo").is_file(),
                    reason="reads the real /proc/cpuinfo")
def test_this_machine_agrees_with_proc_cpuinfo(monkeypatch):
    monkeypatch.delenv(OVERRIDE_ENV, raising=False)
    support = cpu_bf16_support()
    print(support.summary())  # the real answer, in the test log (pytest -s)
    assert cpu_bf16_support() is support  # cached: decided once per process
    text = Path("/proc/cpuinfo").read_text(errors="replace")
    _, flags = parse_cpuinfo(text)
    arm = platform.machine().lower().startswith(("aarch64", "arm"))
    listed = bool(flags & ({"bf16"} if arm else {"avx512_bf16", "amx_bf16"}))
    if support.native:
        assert listed  # never native without the OS listing a unit
    elif listed:
        assert "torch.cpu.get_capabilities()" in support.reason  # only torch's disagreement can veto
    assert support.source in ("/proc/cpuinfo", "none")


def test_the_warning_names_the_expected_slowdown_for_what_the_cpu_has():
    old_xeon = cpu_bf16_support(x86_cpuinfo("Old Xeon", OLD_XEON), "x86_64")
    avx2_only = cpu_bf16_support(x86_cpuinfo("Zen 1", BASE_X86), "x86_64")
    assert "oneDNN emulates" in choose_mixed_precision("bf16", "cpu", old_xeon)[1]
    assert "generic bf16 kernels" in choose_mixed_precision("bf16", "cpu", avx2_only)[1]
    unknown = cpu_bf16_support("", "x86_64")
    assert "several times SLOWER" in choose_mixed_precision("bf16", "cpu", unknown)[1]


def test_the_override_makes_this_machine_either_kind_and_says_so(cpu_kind, monkeypatch):
    forced = cpu_bf16_support()
    assert forced.native is (cpu_kind == "native")
    assert choose_mixed_precision("auto", "cpu")[0] == ("bf16" if forced.native else "no")
    monkeypatch.delenv(OVERRIDE_ENV)
    real = cpu_bf16_support()
    # the real CPU's model and flags stay in the record; a forced verdict says it was forced
    assert (forced.cpu_model, forced.flags) == (real.cpu_model, real.flags)
    if forced.native != real.native:
        assert forced.reason.startswith(f"{OVERRIDE_ENV}={cpu_kind} forces") and real.reason in forced.reason
    # pure calls describe what they are given, never the override
    monkeypatch.setenv(OVERRIDE_ENV, "native")
    assert not cpu_bf16_support(x86_cpuinfo("Zen 1", BASE_X86), "x86_64").native


def test_a_bad_override_is_refused_in_one_line(monkeypatch):
    monkeypatch.setenv(OVERRIDE_ENV, "yes")
    with pytest.raises(ConfigError, match=f"{OVERRIDE_ENV}='yes': expected one of native, none"):
        cpu_bf16_support()


def test_under_accelerate_launch_the_start_line_says_how_to_force_fp32(cpu_kind, monkeypatch):
    """accelerate launch sets ACCELERATE_MIXED_PRECISION=no when asked nothing, so `no` there cannot mean
    fp32 to auto; where auto then picks bf16 the line names the flag that forces fp32."""
    from tokclf.runtime.accel import resolve_precision

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    precision, message = resolve_precision(None, "cpu")
    assert precision == ("bf16" if cpu_kind == "native" else "no")
    assert ("for fp32 pass tokclf's own --mixed_precision no" in message) is (precision == "bf16")
    assert resolve_precision("no", "cpu")[0] == "no"  # which it does
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION")
    assert "--mixed_precision no" not in resolve_precision(None, "cpu")[1]  # not launched: nothing to explain
