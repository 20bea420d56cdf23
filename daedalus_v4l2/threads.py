"""The daemon's libavcodec thread settings (``daemon --threads``, ``decode --threads``).

A module of its own, with no imports of the package's heavy parts, so that the
command line can name them without loading libavcodec.
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

log = logging.getLogger(__name__)

# ``--threads``: how libavcodec may use the CPUs.  Slice threads (VP9 tile columns,
# H.264 slices, dav1d tiles) hand every picture back from the call that fed it.
# Frame threads decode several pictures at once: more speed when the client keeps
# requests queued (the kernel's DECODE_MORE_QUEUED), the same when it waits for each
# picture (the session then pushes each one out; see session.py).  Frame threads:
# one more than the CPUs, as libavcodec's automatic count, but at least two (its
# automatic count is one on one CPU: no frame threads at all).
THREADS: dict[str, dict] = {
    "slice": {"thread_type": "SLICE"},
    "frame": {"thread_type": "FRAME", "thread_count": max(2, (os.cpu_count() or 1) + 1)},
}


# The decode's bookkeeping threads run as SCHED_BATCH: the client's, with the simulated
# kernel's calls in it, while ``decode --backend sim``, ``demo`` and ``bench`` decode, and
# the daemon's picture writer.  (Not a ``--backend hw`` client: thin, with the kernel and
# the daemon out of its process, and measured only on the emulator.)  Linux never lets a
# SCHED_BATCH thread preempt a running one when it wakes (its share of the CPU is
# unchanged), and these threads wake several times a picture: each wake-up took a core
# from one of libavcodec's workers in the middle of a picture, and the picture waited for
# that worker's tile or slice.  On the development VM
# (2 cores), interleaved rounds against bare PyAV: the sim path's CPU over bare fell by
# 0.3-0.5 ms a picture (README, Performance).  The daemon's own thread, which waits for
# libavcodec and feeds it the next request, keeps the normal policy.
_BATCH = getattr(os, "SCHED_BATCH", None)


def schedule_as_batch() -> bool:
    """The calling thread becomes SCHED_BATCH (for good); False where the OS has no
    such policy or refuses it (the thread then runs as before)."""
    if _BATCH is None:
        return False
    try:
        os.sched_setscheduler(0, _BATCH, os.sched_param(0))
    except OSError as exc:
        log.debug("SCHED_BATCH refused: %s", exc)
        return False
    return True


@contextlib.contextmanager
def batch_scheduling(apply: bool = True) -> Iterator[bool]:
    """The calling thread as SCHED_BATCH while the block runs, then as it was; yields
    whether the policy was set (never, unless ``apply``)."""
    if not apply:
        yield False
        return
    with scheduling_kept():
        yield schedule_as_batch()


@contextlib.contextmanager
def scheduling_kept() -> Iterator[None]:
    """The calling thread's scheduling policy as it was before the block, whatever the
    block did to it (libsvtav1's encoder makes its caller SCHED_FIFO where it may)."""
    if _BATCH is None:
        yield
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        if (os.sched_getscheduler(0), os.sched_getparam(0)) != (policy, param):
            try:
                os.sched_setscheduler(0, policy, param)
            except OSError as exc:
                log.warning("could not restore the thread's scheduling policy %d: %s",
                            policy, exc)
