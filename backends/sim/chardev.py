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

log = logging.getLogger("daedalus_v4l2.sim")

# Chardev mmap offsets name a CAPTURE buffer device-wide: the context id above
# bit 32, the buffer's (page-aligned) V4L2 mem_offset below.
_CTX_SHIFT = 32


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
        self.kernel.daemon_gone()

    def kill(self) -> None:
        self.kernel.detach_daemon()
        self.release()

    # ---- kernel -> daemon

    def queue(self, msg: proto.AnyMessage, cookie: int = 0) -> None:
        self.fifo.append((cookie, proto.encode(msg)))
        self.kernel.emit("send", cookie or None, self.kernel.context_by_id(msg.stream_id),
                         type(msg).__name__)

    def read(self) -> bytes | None:
        return self.fifo.popleft()[1] if self.fifo else None

    def purge(self, cookie: int) -> None:
        """A cancelled job's DECODE that the daemon has not read yet is withdrawn."""
        if any(c == cookie for c, _ in self.fifo):
            self.fifo = deque(item for item in self.fifo if item[0] != cookie)

    # ---- daemon -> kernel

    def write(self, data: bytes) -> None:
        """The write() handler: one whole message, checked, applied at once."""
        kernel = self.kernel
        try:
            msg = proto.parse(data)
            self._dispatch(msg)
        except ProtocolError as exc:
            kernel.stats.rejected_messages += 1
            kernel.emit("reject", None, None, str(exc))
            log.warning("rejected message from the daemon: %s", exc)
            raise OSError(errno.EINVAL, f"rejected by {kernel.chardev_path}: {exc}") from exc

    def _dispatch(self, msg: proto.AnyMessage) -> None:
        kernel = self.kernel
        if msg.type == proto.MSG_FRAME:
            if kernel.faults.drop_responses > 0:
                kernel.faults.drop_responses -= 1
                kernel.emit("dropped", msg.cookie, None, "fault: response lost")
                return
            kernel.handle_frame(msg)
        elif msg.type == proto.MSG_FLUSH_DONE:
            kernel.flush_done(msg.stream_id)
        elif msg.type == proto.MSG_PING:
            self.queue(proto.Message(proto.MSG_PONG, cookie=msg.cookie, stream_id=msg.stream_id))
        elif msg.type == proto.MSG_PONG:
            kernel.emit("pong", msg.cookie)
        else:
            raise ProtocolError(f"message type {msg.type} only goes from kernel to daemon")

    # ---- mmap

    def capture_offset(self, ctx, dst) -> int:
        return (ctx.id << _CTX_SHIFT) | dst.mem_offset

    def map_capture(self, req: proto.DecodeRequest) -> memoryview:
        """mmap at a DECODE's capture_offset: only the dst of a job still in flight."""
        kernel = self.kernel
        ctx = kernel.context_by_id(req.capture_offset >> _CTX_SHIFT)
        buf = ctx.cap_q.by_offset(req.capture_offset & 0xFFFFFFFF) if ctx else None
        entry = kernel.find_entry(req.cookie)
        if buf is None or entry is None or entry.dst is not buf:
            raise OSError(errno.EINVAL, f"mmap offset 0x{req.capture_offset:x} for cookie "
                          f"{req.cookie}: not the CAPTURE buffer of a job in flight")
        if req.capture_size > buf.length:
            raise OSError(errno.EINVAL, f"mmap of {req.capture_size} bytes, buffer has {buf.length}")
        return memoryview(buf.mem)


class SimTransport(Transport):
    """The daemon's end of the simulated chardev.  Never blocks: the simulation
    is single-threaded, and the kernel calls the daemon when there is work."""

    def __init__(self, kernel) -> None:
        super().__init__()
        self.kernel = kernel
        self.closed = False

    def _recv_internal(self, timeout: float | None) -> bytes | None:
        if self.closed:
            return None
        return self.kernel.chardev.read()

    def _send_internal(self, data: bytes) -> None:
        if self.closed:
            raise OSError(errno.EBADF, "the chardev is closed")
        self.kernel.chardev.write(data)

    def _map_capture(self, request: proto.DecodeRequest) -> memoryview:
        if self.closed:
            raise OSError(errno.EBADF, "the chardev is closed")
        return self.kernel.chardev.map_capture(request)

    def close(self) -> None:
        if not self.closed and self.kernel.chardev.transport is self:
            self.kernel.chardev.release()
        self.closed = True

    def pending(self) -> int:
        """Messages queued for the daemon (poll's POLLIN on the real chardev)."""
        return 0 if self.closed else len(self.kernel.chardev.fifo)
