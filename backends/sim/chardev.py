"""/dev/daedalus-v4l2 in the simulation: the message FIFO, the write handler, mmap.

The kernel side queues whole messages (as bytes, the way the module's read()
hands them out); the daemon's writes are parsed and applied synchronously,
with the module's checks.  SimTransport is the daemon's end of it.
"""
from __future__ import annotations

import errno
import logging
from collections import deque

from ... import proto
from ...errors import ProtocolError
from ...transport import Transport
from .entry import kernel_entry

log = logging.getLogger("daedalus_v4l2.sim")

# A DECODE's capture_offset is its cookie in pages, as in the module: the mmap
# offset names the job, and through it the CAPTURE buffer.
PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
# Messages the kernel keeps for a daemon that is not reading (DV_OUTQ_MAX); a job
# that does not fit fails at once.
OUTQ_MAX = 64
_FRAME_FLAGS = proto.FRAME_SRC_CONSUMED | proto.FRAME_HAS_PIXELS | proto.FRAME_ERROR
MAX_ERRNO = 4095


class Chardev:
    def __init__(self, kernel) -> None:
        self.kernel = kernel
        self.transport: SimTransport | None = None
        self.fifo: deque[tuple[int, bytes]] = deque()   # (cookie or 0, message bytes)

    @property
    def is_open(self) -> bool:
        return self.transport is not None

    # ---- open / release

    def open(self) -> "SimTransport":
        if self.transport is not None:
            raise OSError(errno.EBUSY, f"{self.kernel.chardev_path}: already open by a daemon")
        self.transport = SimTransport(self.kernel)
        self.kernel.emit("daemon_open")
        return self.transport

    def release(self) -> None:
        """The daemon closed its fd: queued messages are dropped, jobs fail."""
        if self.transport is None:
            return
        self.transport.closed = True
        self.transport = None
        self.fifo.clear()
        self.kernel.wake_daemon()       # its read() ends: the chardev is closed
        self.kernel.daemon_gone()

    def kill(self) -> None:
        self.kernel.detach_daemon()
        self.release()

    # ---- kernel -> daemon

    def room(self) -> int:
        return OUTQ_MAX - len(self.fifo)

    def queue(self, msg: proto.AnyMessage, cookie: int = 0) -> bool:
        """Queue one message for the daemon; False (and a log line) when the queue is full."""
        ctx = self.kernel.context_by_id(msg.stream_id)
        if self.room() <= 0:
            log.warning("stream %d: %s lost (daemon not reading)", msg.stream_id,
                        type(msg).__name__)
            return False
        self.fifo.append((cookie, proto.encode(msg)))
        self.kernel.emit("send", cookie or None, ctx, lambda: _msg_name(msg))
        if self.kernel.threaded:
            self.kernel.daemon_readable.notify_all()    # the daemon's read() waits for it
        return True

    def read(self) -> bytes | None:
        if not self.fifo:
            return None
        data = self.fifo.popleft()[1]
        kernel = self.kernel
        if kernel.threaded and not self.fifo and kernel.next_deadline() is None:
            # a client waiting with nothing else in flight may now wait in vain: let it look
            kernel.changed.notify_all()
        return data

    # ---- daemon -> kernel

    def write(self, data: bytes) -> None:
        """The write() handler: one whole message, checked, applied at once; errors
        as the module's write() returns them (OSError with that errno)."""
        kernel = self.kernel
        try:
            msg = proto.parse(data, check_frame=_check_frame)
        except ProtocolError as exc:
            self.reject(str(exc))
        ret = self._dispatch(msg)
        if ret:
            raise OSError(-ret, f"{kernel.chardev_path}: {msg.type} cookie {msg.cookie}: "
                          f"{errno.errorcode.get(-ret, ret)}")

    def reject(self, why: str):
        """dv_reject: counted, logged, EINVAL to the writer."""
        self.kernel.stats.rejected_messages += 1
        self.kernel.emit("reject", None, None, why)
        log.warning("rejected message from the daemon: %s", why)
        raise OSError(errno.EINVAL, f"rejected by {self.kernel.chardev_path}: {why}")

    def _dispatch(self, msg: proto.AnyMessage) -> int:
        kernel = self.kernel
        if msg.type == proto.MSG_FRAME:
            if kernel.faults.drop_responses > 0:
                kernel.faults.drop_responses -= 1
                kernel.emit("dropped", msg.cookie, None, "fault: response lost")
                return 0
            return kernel.handle_frame(msg)
        if msg.type == proto.MSG_FLUSH_DONE:
            kernel.flush_done(msg.stream_id)
            return 0
        if msg.type == proto.MSG_PING:
            pong = proto.Message(proto.MSG_PONG, cookie=msg.cookie, stream_id=msg.stream_id)
            return 0 if self.queue(pong) else -errno.ENOSPC
        if msg.type == proto.MSG_PONG:
            kernel.emit("pong", msg.cookie)
            return 0
        self.reject(f"type {msg.type} is not a daemon-to-kernel message")

    # ---- mmap

    @staticmethod
    def capture_offset(cookie: int) -> int:
        return cookie << PAGE_SHIFT

    def map_capture(self, req: proto.DecodeRequest) -> memoryview:
        """mmap at a DECODE's capture_offset: the dst of that job, while it is in flight."""
        cookie = req.capture_offset >> PAGE_SHIFT
        if req.capture_offset % PAGE_SIZE:
            self.reject(f"mmap at offset 0x{req.capture_offset:x}: not a page boundary")
        entry = self.kernel.find_entry(cookie)
        if entry is None or entry.dst is None:
            # as a FRAME for a finished cookie: a picture out after STREAMOFF cancelled its job
            ret = self.kernel.unknown_cookie(cookie, "mmap")
            raise OSError(-ret, f"{self.kernel.chardev_path}: mmap at cookie {cookie}: "
                                "no such job in flight")
        length = entry.dst.length
        if req.capture_size > -(-length // PAGE_SIZE) * PAGE_SIZE:
            self.reject(f"cookie {cookie}: mmap of {req.capture_size} bytes, buffer has {length}")
        return memoryview(entry.dst.mem)


def _msg_name(msg) -> str:
    return {proto.MSG_STREAM_OPEN: "STREAM_OPEN", proto.MSG_STREAM_CLOSE: "STREAM_CLOSE",
            proto.MSG_DECODE: "DECODE", proto.MSG_FLUSH: "FLUSH",
            proto.MSG_PONG: "PONG"}.get(msg.type, str(msg.type))


def _check_frame(r: proto.FrameRecord) -> None:
    """dv_check_frame: what proto.parse does not look at."""
    if not r.flags or r.flags & ~_FRAME_FLAGS:
        raise ProtocolError(f"FRAME flags 0x{r.flags:x}")
    if r.status > 0 or r.status < -MAX_ERRNO:
        raise ProtocolError(f"FRAME status {r.status}")
    if r.num_planes > proto.MAX_PLANES or r.reserved:
        raise ProtocolError(f"FRAME num_planes {r.num_planes} reserved 0x{r.reserved:x}")
    if r.flags & proto.FRAME_HAS_PIXELS and r.num_planes < 1:
        raise ProtocolError("FRAME with pixels but no plane")
    if any(r.plane_bytes[r.num_planes:]):
        raise ProtocolError("FRAME plane_bytes past num_planes")
    if b"\0" not in r.reason:
        raise ProtocolError("FRAME reason not NUL-terminated")


class SimTransport(Transport):
    """The daemon's end of the simulated chardev.  Inline, it never blocks: the
    kernel calls the daemon when there is work.  With the daemon in its own
    thread, receive() waits for a message as read() on the module's chardev does."""

    def __init__(self, kernel) -> None:
        super().__init__()
        self.kernel = kernel
        self.closed = False
        self.woken = False

    @kernel_entry
    def _recv_internal(self, timeout: float | None) -> bytes | None:
        kernel = self.kernel
        if kernel.threaded and timeout != 0:
            kernel.daemon_readable.wait_for(self._readable, timeout)
        if self.closed or (kernel.threaded and kernel.faults.stall_daemon):
            return None
        return kernel.chardev.read()

    def _readable(self) -> bool:
        return self.closed or self.woken or self.kernel.daemon_will_read()

    def wake(self) -> None:
        """End a receive() that waits (the daemon thread is stopping)."""
        with self.kernel.lock:
            self.woken = True
            self.kernel.daemon_readable.notify_all()

    @kernel_entry
    def _send_internal(self, data: bytes) -> None:
        if self.closed:
            raise OSError(errno.EBADF, "the chardev is closed")
        self.kernel.chardev.write(data)

    @kernel_entry
    def _map_capture(self, request: proto.DecodeRequest) -> memoryview:
        if self.closed:
            raise OSError(errno.EBADF, "the chardev is closed")
        return self.kernel.chardev.map_capture(request)

    @kernel_entry
    def close(self) -> None:
        if not self.closed and self.kernel.chardev.transport is self:
            self.kernel.chardev.release()
        self.closed = True

    @kernel_entry
    def pending(self) -> int:
        """Messages queued for the daemon (poll's POLLIN on the real chardev)."""
        return 0 if self.closed else len(self.kernel.chardev.fifo)

    @kernel_entry
    def next_size(self) -> int:
        """FIONREAD: the size of the next message, 0 if none."""
        fifo = self.kernel.chardev.fifo
        return len(fifo[0][1]) if fifo and not self.closed else 0
