"""Large CPU buffers kept in the process's heap for the next batch (--reuse_cpu_memory), on glibc.

glibc serves a request above its mmap threshold (adaptive, at most 32 MiB) with a fresh anonymous mapping, unless
a free block of its heap fits, and unmaps it on free. An evaluation batch of 128 sentences has activations above
32 MiB, so each batch's were faulted in again, 4 KiB at a time: on the 2-core EPYC 300,000-560,000 page faults a
validation pass of CoNLL-2003 with the MiniLM. Training steps of batch 32 fault little (their largest buffer, the
47 MB embedding gradient, mostly finds a free block).

With mmap turned off (M_MMAP_MAX = 0) and a trim threshold of 1 GiB, freed buffers stay in the heap and the next
batch reuses them: 1,000-13,000 faults a pass, evaluation 1.04x faster there and training unchanged (processes
alternating, bench/allocator_ab.py). Nothing about the computation changes. The price: what the run held stays
resident until the process ends, as a GPU's caching allocator keeps it, and the heap's fragmentation added 4.5%
to the peak of the 150-step bench's runs. glibc still maps what its heap cannot serve (another thread's arena, a
heap that cannot grow), so no request fails for this. Where the C library is not glibc (macOS, musl, Windows)
nothing is done.

torch's own switch THP_MEM_ALLOC_ENABLE=1 (huge pages for buffers of 2 MiB or more) made whole runs slower on
that machine, and tcmalloc, jemalloc or mimalloc must be preloaded before the process starts (none was faster
there), so tokclf uses glibc's own knob, mallopt(3).
"""

from __future__ import annotations

import ctypes
import platform
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    import torch

# No torch at run time: the training options (arguments.py, read before torch loads) share REUSE_CPU_MEMORY_HELP.

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4  # <malloc.h>
# While reusing: freed memory at the top of the heap is given back only beyond this much.
HEAP_TRIM_BYTES = 1 << 30
# Mapping as glibc does it in a torch process once its thresholds have adapted: its default mmap limit (65536),
# buffers of more than 32 MiB mapped (the adaptive threshold's ceiling, which a run's freed buffers reach), and
# trimming beyond twice that. Setting any of them ends the adaptation, so all three are set.
GLIBC_MMAP_MAX, GLIBC_MMAP_BYTES, GLIBC_TRIM_BYTES = 65536, 32 << 20, 64 << 20

REUSE_CPU_MEMORY_HELP = (
    "Keep large CPU buffers (an evaluation batch's activations) in the heap for the next batch instead of "
    "unmapping them and faulting them in again page by page (glibc's mallopt: no mmap, 1 GiB trim threshold; "
    "tokclf/runtime/allocator.py). Same results; what the run held stays held until it ends. Default: on for a "
    "run on a CPU with glibc (evaluation 1.04x faster on a 2-core EPYC, training unchanged, 4.5% more peak "
    "memory in a training run), off on a GPU.")


def reuse_cpu_memory_wanted(requested: Optional[bool], device: torch.device) -> bool:
    """Default: on where the run computes on the CPU; on a GPU the large buffers are the GPU's."""
    return device.type == "cpu" if requested is None else requested


def _glibc():
    """The C library's functions, where it is glibc (the process's own symbols: no library search)."""
    return ctypes.CDLL(None) if platform.libc_ver()[0] == "glibc" else None


_kept_in_heap = False  # whether this process set the heap mode (then only it is undone)


def keep_large_buffers_in_heap(keep: bool = True) -> bool:
    """Serve large requests from the heap and keep what is freed there (keep=True), or map them again as glibc
    does once adapted and give the heap's free memory back to the system (keep=False). Process-wide. Returns
    whether glibc took the setting (False where the C library is not glibc)."""
    global _kept_in_heap
    libc = _glibc()
    if libc is None:
        return False
    settings = ({M_TRIM_THRESHOLD: HEAP_TRIM_BYTES, M_MMAP_MAX: 0} if keep else
                {M_TRIM_THRESHOLD: GLIBC_TRIM_BYTES, M_MMAP_THRESHOLD: GLIBC_MMAP_BYTES, M_MMAP_MAX: GLIBC_MMAP_MAX})
    # mallopt returns 1 on success; the mmap limit last, so a refusal leaves mapping on
    took = all(libc.mallopt(option, value) == 1 for option, value in settings.items())
    if took and not keep:
        libc.malloc_trim(0)  # what the heap kept free while reusing goes back to the system
    _kept_in_heap = keep and took
    return took


def set_cpu_memory_reuse(requested: Optional[bool], device: torch.device) -> bool:
    """--reuse_cpu_memory for this run's device; True when large buffers now stay in the heap. A run that
    does not want it undoes it only where an earlier run in this process (the tests, a notebook, a search)
    set it: glibc's own adaptive settings are otherwise left untouched."""
    if reuse_cpu_memory_wanted(requested, device):
        return keep_large_buffers_in_heap(True)
    if _kept_in_heap:
        keep_large_buffers_in_heap(False)
    return False
