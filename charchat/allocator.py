"""Keeping freed memory in the process, so that tensors do not page-fault on every step.

Why: torch allocates CPU tensors with plain malloc. glibc hands memory that is freed at the top
of the heap back to the kernel once more than a trim threshold is free (128 KiB, raised only
slowly by its dynamic rule), and serves big blocks with fresh mmaps. A training step frees and
reallocates megabytes of activations, so the kernel had to map and zero those pages again on every
step: ~700 page faults per step of the 4-layer CPU model, and 4,000 to 15,000 for one 192-token
prefill of a 6-layer, 384-wide model. In the virtual machines charchat is measured on, a fault
costs microseconds: keeping the memory made a training step 2-8% faster and that prefill ~20%
faster (42 -> 34 ms; figures in benchmarks/README.md).

keep_freed_memory() raises glibc's thresholds once per process: blocks up to 32 MiB come from the
heap (the most glibc accepts on 64-bit machines), and up to 1 GiB of freed heap stays mapped for
reuse. The cost is that the process's resident size stays near its peak, as with the caching
allocators of CUDA and of jemalloc-style mallocs. Elsewhere (macOS, Windows, musl) it does
nothing. Set CHARCHAT_MALLOC=system to leave the C library's settings alone; settings of your
own through glibc's MALLOC_TRIM_THRESHOLD_ or MALLOC_MMAP_THRESHOLD_ are left alone too. With
another malloc preloaded (LD_PRELOAD of jemalloc or tcmalloc) the calls succeed and change
nothing, which is harmless.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 1 << 30

_state: bool | None = None


def keep_freed_memory() -> bool:
    """Tune glibc's malloc as above (once; later calls return the first answer).

    Returns True when the settings were applied."""
    global _state
    if _state is None:
        _state = _apply()
    return _state


def _apply() -> bool:
    if os.environ.get("CHARCHAT_MALLOC", "").strip().lower() == "system":
        return False
    if any(os.environ.get(v) for v in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")):
        return False  # the user tuned glibc already
    if not sys.platform.startswith("linux") or not _is_glibc():
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 when it refuses a value. The mmap threshold first: it is
    # the one a 32-bit glibc refuses (its maximum is 512 KiB there), and then neither is set.
    if not mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD):
        return False
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def _is_glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):
        return False
