"""Calls into the simulated kernel: under its lock, as the module's ioctls and
chardev handlers run under its mutex."""
from __future__ import annotations

import functools


def kernel_entry(method):
    """A call into the kernel (a syscall of the client's, or the daemon's on the
    chardev) runs under the kernel's lock; with the daemon in its own thread the
    clock first catches up with real time."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        kernel = self.kernel
        with kernel.lock:
            if kernel.threaded:
                kernel.follow_real_time()
            return method(self, *args, **kwargs)
    return locked
