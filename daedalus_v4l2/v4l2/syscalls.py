"""The system calls the stateless client uses, behind one small interface.

The client (``client.py``) is written once against ``Syscalls``.  ``OsSyscalls``
is the real thing (os, fcntl, mmap, select) for /dev/videoN and /dev/mediaN;
the simulated kernel (``daedalus_v4l2.backends.sim``) implements the same
calls on its own file table, so the same client code runs on both.

Conventions, as in C:
- ``ioctl(fd, request, arg)``: ``arg`` is a cffi pointer to the ioctl's
  struct (``uapi.ffi.new("struct v4l2_buffer *")``), an ``int *`` for
  STREAMON/REQUEST_ALLOC, or None for argument-less ioctls.  The call fills
  the struct in place.  Failure raises ``OSError`` with the errno.
- ``poll(fds, timeout)``: ``fds`` is ``[(fd, events)]`` with ``select.POLL*``
  bits; returns ``[(fd, revents)]`` for the ready ones; ``timeout`` in seconds
  (None = wait forever).
"""
from __future__ import annotations

import errno
import fcntl
import mmap
import os
import select
from abc import ABC, abstractmethod

from .uapi import ffi


class Syscalls(ABC):
    @abstractmethod
    def open(self, path: str, flags: int = os.O_RDWR) -> int: ...

    @abstractmethod
    def close(self, fd: int) -> None: ...

    @abstractmethod
    def ioctl(self, fd: int, request: int, arg=None) -> int: ...

    @abstractmethod
    def mmap(self, fd: int, length: int, offset: int) -> memoryview:
        """A writable mapping; release it with ``munmap``."""

    @abstractmethod
    def munmap(self, mapping: memoryview) -> None: ...

    @abstractmethod
    def poll(self, fds: list[tuple[int, int]], timeout: float | None) -> list[tuple[int, int]]: ...


class OsSyscalls(Syscalls):
    """The real kernel."""

    def __init__(self) -> None:
        self._maps: dict[int, mmap.mmap] = {}

    def open(self, path, flags=os.O_RDWR):
        return os.open(path, flags | os.O_CLOEXEC)

    def close(self, fd):
        os.close(fd)

    def ioctl(self, fd, request, arg=None):
        while True:
            try:
                if arg is None:
                    return fcntl.ioctl(fd, request, 0)
                return fcntl.ioctl(fd, request, ffi.buffer(arg), True)
            except InterruptedError:
                continue

    def mmap(self, fd, length, offset):
        mapping = mmap.mmap(fd, length, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                            offset=offset)
        view = memoryview(mapping)
        self._maps[id(view)] = mapping
        return view

    def munmap(self, mapping):
        backing = self._maps.pop(id(mapping), None)
        mapping.release()
        if backing is not None:
            try:
                backing.close()
            except BufferError:
                # a caller still holds a view of a borrowed picture (numpy, say): the
                # mapping goes when that view does, as munmap with a live reference would
                pass

    def poll(self, fds, timeout):
        poller = select.poll()
        for fd, events in fds:
            poller.register(fd, events)
        ms = None if timeout is None else max(0, int(timeout * 1000))
        try:
            return poller.poll(ms)
        except InterruptedError:
            return []


def raise_errno(code: int, what: str):
    """Raise OSError the way a failing ioctl does, with a message that says what."""
    raise OSError(code, f"{what}: {os.strerror(code)}")


__all__ = ["Syscalls", "OsSyscalls", "raise_errno", "errno"]
