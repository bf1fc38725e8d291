"""--reuse_cpu_memory (tokclf/runtime/allocator.py): glibc keeps large freed buffers in the heap for the next
batch instead of unmapping them, so they are not faulted in again page by page. Measured in fresh processes,
since the setting is process-wide."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest
import torch

from conftest import ROOT
from tokclf.runtime.allocator import reuse_cpu_memory_wanted

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's (mallopt)")

# Build the Accelerator (the factory every command uses) with each --reuse_cpu_memory of the list in turn; after
# each, a 64 MiB buffer (above the 32 MiB that glibc's mmap threshold can reach) is asked for and freed 20 times.
# Printed per run: the minor page faults of the last 4 requests, and whether a 256 MiB buffer (larger than any the
# heap has freed) was mapped (glibc's mallinfo2: bytes in mapped blocks).
PER_RUN = """
import ctypes, json, resource, sys, torch
from tokclf.runtime.accel import AcceleratorOptions, make_accelerator

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2

def faults_of_the_last_requests():
    for _ in range(16):  # the heap settles: glibc coalesces freed buffers until one fits the next request
        buffer = torch.zeros(16 << 20)
        del buffer
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        buffer = torch.zeros(16 << 20)
        del buffer
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

def large_one_mapped():
    buffer = torch.empty(64 << 20)
    return libc.mallinfo2().hblkhd >= buffer.nbytes

runs = []
for requested in json.loads(sys.argv[1]):
    make_accelerator(AcceleratorOptions(device="cpu", mixed_precision="no", reuse_cpu_memory=requested))
    runs.append({"faults": faults_of_the_last_requests(), "mapped": large_one_mapped()})
print(json.dumps(runs))
"""


def per_run(*requested) -> list[dict]:
    done = subprocess.run([sys.executable, "-c", PER_RUN, json.dumps(requested)], cwd=ROOT,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_the_default_is_on_for_a_cpu_and_off_for_a_gpu():
    assert reuse_cpu_memory_wanted(None, torch.device("cpu"))
    assert not reuse_cpu_memory_wanted(None, torch.device("cuda", 0))
    assert not reuse_cpu_memory_wanted(False, torch.device("cpu"))
    assert reuse_cpu_memory_wanted(True, torch.device("cuda", 0))


@glibc_only
def test_a_cpu_run_reuses_freed_buffers_where_glibc_would_map_them_afresh():
    [mapped] = per_run(False)  # a process that never asked for it: glibc as it is
    [reused] = per_run(None)  # the default on a CPU
    # Mapped afresh, each 64 MiB buffer is faulted in again: 16,384 faults of 4 KiB pages each time (fewer,
    # but still some, where the kernel backs it with 2 MiB huge pages).
    assert mapped["faults"] >= 4 * 32 and mapped["mapped"]
    assert reused["faults"] * 8 < mapped["faults"] and not reused["mapped"]


@glibc_only
def test_a_run_that_says_false_after_one_that_reused_memory_in_the_same_process_maps_again():
    reused, mapped, default_again = per_run(None, False, None)
    assert not reused["mapped"] and mapped["mapped"] and not default_again["mapped"]
