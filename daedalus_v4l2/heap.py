"""Keeping freed picture memory in the heap (glibc's malloc).

A 1080p picture is 3 MB.  glibc serves an allocation that large with mmap
unless its dynamic threshold has grown past it, and gives the top of the heap
back to the kernel once 2x that threshold is free, so whether each picture's
buffer comes from memory already mapped or from fresh pages depends on the
process's history.  Fresh pages cost a page fault every 4 KiB: about 1,000
faults and 2-3 ms of system time a picture, which halved bare PyAV's fps in
some runs of the benchmark and not in others.  With both thresholds fixed,
freed pictures stay mapped and the next picture reuses them; the heap then
keeps up to ``TRIM_THRESHOLD`` of free memory instead of returning it.

And one arena for every thread: a thread's own arena is a heap of its own
that glibc shrinks by its own rules, and a decode in a thread (the TUI's
simulation) still faulted about 350 times a picture with the thresholds fixed.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1   # glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 32 << 20   # glibc's own ceiling for its dynamic threshold
TRIM_THRESHOLD = 128 << 20


def keep_freed_memory() -> bool:
    """Fix glibc's mmap and trim thresholds for this process and give it one
    arena (before its threads allocate); False where there is no glibc mallopt
    (musl, macOS), which changes nothing else."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = all([mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD), mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD),
              mallopt(M_ARENA_MAX, 1)])
    if not ok:
        log.debug("mallopt refused the thresholds")
    return ok
