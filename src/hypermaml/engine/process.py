"""Process-wide settings for fast CPU work (Linux, glibc), applied by the command line and bench.

glibc's malloc serves every allocation above its mmap threshold (128 KB, rising to at most
32 MB as such blocks are freed) with a fresh ``mmap`` and returns it to the system when freed.
Few-shot training allocates and frees tensors of 1-70 MB at every step (activations, their
gradients, the zero-filled gradient of max-pooling), so each step faults in and zeroes tens of
thousands of fresh pages: about 15% of a Conv4 training step on the machine of
docs/performance.md. ``keep_freed_memory`` makes malloc reuse freed memory instead, as the
jemalloc or tcmalloc that PyTorch's CPU performance guide suggests preloading would. The
process keeps its peak memory until it exits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds to 1 GB; True when both took effect.
    Elsewhere (macOS, Windows, musl) it does nothing and returns False."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, 1 << 30)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))
