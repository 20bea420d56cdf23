"""The daemon's libavcodec thread settings (``daemon --threads``, ``decode --threads``).

A module of its own, with no imports of the package's heavy parts, so that the
command line can name them without loading libavcodec.
"""
from __future__ import annotations

import os

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
