"""The C allocator, tuned once per process for CPU inference (Linux with glibc only).

glibc hands every allocation above its mmap threshold (at most 32 MiB by default; 128 KiB in a dask worker,
whose nanny sets ``MALLOC_TRIM_THRESHOLD_``) to a fresh ``mmap`` and returns it on ``free``, so the large
activation buffers of each tile are page-faulted in anew every time. Raising the thresholds lets the heap keep
and reuse them. Measured on 2 cores (1024² image, prompt attention): 1.47 s → 0.79 s with 2 threads, peak RSS
0.68 → 0.69 GB; in a dask worker 3.4 s → 1.7 s on one thread. Set ``FEWCELL_NO_MALLOPT=1`` to leave glibc as it is.
"""
from __future__ import annotations

import os
import platform

MMAP_THRESHOLD = 256 << 20  #: allocations below this come from the heap and are reused
TRIM_THRESHOLD = 512 << 20  #: free heap memory kept for reuse before it is given back to the system
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)

state = {"done": False, "tuned": False}


def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds, once per process; returns whether they were set."""
    if state["done"]:
        return state["tuned"]
    state["done"] = True
    if os.environ.get("FEWCELL_NO_MALLOPT") or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        state["tuned"] = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError):
        state["tuned"] = False
    return state["tuned"]
