"""The Transport over the real /dev/daedalus-v4l2.

read() returns one whole message (EMSGSIZE: the buffer is too small, the
message stays queued), write() takes one whole message, and the CAPTURE
buffer of a job in flight is mapped with mmap at the DECODE message's
``capture_offset``: pixels never go through read()/write().
"""
from __future__ import annotations

import errno
import logging
import mmap
import os
import select

from daedalus_v4l2 import proto
from daedalus_v4l2.errors import DeviceError
from daedalus_v4l2.transport import Transport

log = logging.getLogger(__name__)

CHARDEV = "/dev/daedalus-v4l2"
_INITIAL_READ = 1 << 20
_MAX_MESSAGE = proto.HEADER_SIZE + proto.MAX_PAYLOAD


def open_chardev(path: str = CHARDEV) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise DeviceError(exc.errno, _explain_open_error(path, exc.errno)) from exc


def _explain_open_error(path: str, code: int | None) -> str:
    if code == errno.EBUSY:
        return f"{path} is already held by another daemon (one daemon at a time)"
    if code == errno.ENOENT:
        return f"{path} does not exist: is the daedalus_v4l2 module loaded? (modprobe daedalus_v4l2)"
    if code in (errno.EACCES, errno.EPERM):
        return f"{path}: permission denied (the daemon runs as root or in the device's group)"
    return f"{path}: {os.strerror(code or 0)}"


class HwTransport(Transport):
    def __init__(self, path: str = CHARDEV) -> None:
        super().__init__()
        self.path = path
        self.fd = open_chardev(path)
        self._buffer = bytearray(_INITIAL_READ)
        self._maps: dict[int, mmap.mmap] = {}

    def fileno(self) -> int:
        return self.fd

    def _recv_internal(self, timeout: float | None) -> bytes | None:
        if not self._wait_readable(timeout):
            return None
        while True:
            try:
                n = os.readv(self.fd, [self._buffer])
            except BlockingIOError:
                return None
            except InterruptedError:
                continue
            except OSError as exc:
                if exc.errno == errno.EMSGSIZE and len(self._buffer) < _MAX_MESSAGE:
                    self._buffer = bytearray(min(len(self._buffer) * 4, _MAX_MESSAGE))
                    continue
                raise DeviceError(exc.errno, f"read {self.path}: {exc.strerror}") from exc
            return bytes(memoryview(self._buffer)[:n])

    def _wait_readable(self, timeout: float | None) -> bool:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        ms = None if timeout is None else max(0, int(timeout * 1000))
        try:
            events = poller.poll(ms)
        except InterruptedError:
            return False
        for _, revents in events:
            if revents & (select.POLLERR | select.POLLHUP):
                raise DeviceError(errno.ENODEV, f"{self.path}: the module is going away")
        return bool(events)

    def _send_internal(self, data: bytes) -> None:
        try:
            written = os.write(self.fd, data)
        except OSError as exc:
            raise DeviceError(exc.errno, f"write {self.path}: {exc.strerror}") from exc
        if written != len(data):
            raise DeviceError(errno.EIO, f"write {self.path}: {written} of {len(data)} bytes")

    def _map_capture(self, request: proto.DecodeRequest) -> memoryview:
        mapping = self._maps.get(request.cookie)
        if mapping is None:
            try:
                mapping = mmap.mmap(self.fd, request.capture_size, mmap.MAP_SHARED,
                                    mmap.PROT_READ | mmap.PROT_WRITE, offset=request.capture_offset)
            except OSError as exc:
                raise DeviceError(exc.errno, f"mmap of CAPTURE buffer for cookie {request.cookie}: "
                                             f"{exc.strerror}") from exc
            self._maps[request.cookie] = mapping
        return memoryview(mapping)

    def release_capture(self, cookie: int) -> None:
        mapping = self._maps.pop(cookie, None)
        if mapping is not None:
            try:
                mapping.close()
            except BufferError:  # a view is still alive somewhere; the GC unmaps it
                log.debug("cookie %d: CAPTURE mapping still in use", cookie)

    def close(self) -> None:
        if self.fd < 0:
            return
        for cookie in list(self._maps):
            self.release_capture(cookie)
        os.close(self.fd)
        self.fd = -1
