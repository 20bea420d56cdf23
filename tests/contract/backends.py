"""The two backends the contract suite runs against, and the client-side ledger.

``sim``: a fresh in-process SimKernel with the daemon attached (default tier).
``hw``:  the daedalus_v4l2 module's /dev/videoN and /dev/mediaN (found with
         ``backends.hw.find_nodes()``) and the daemon the VM rig started
         (marker ``vm``; runs in the rig's guest).

Both hand out ``LedgerDecoder``s: the client's ``StatelessDecoder`` with a
ledger of every QBUF, DQBUF and STREAMOFF, so the tests check the contracts
from the client's side only, the same way on both backends.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from daedalus_v4l2.v4l2 import uapi
from daedalus_v4l2.v4l2.client import (CAPTURE, OUTPUT, QUEUE_NAMES, Dequeued, Request,
                                       StatelessDecoder)
from daedalus_v4l2.v4l2.syscalls import OsSyscalls
from daedalus_v4l2.synth import VP9_GOOD, VP9_REALTIME

DEBUGFS = Path("/sys/kernel/debug/daedalus_v4l2")

# name -> make_clip parameters. Realtime: no hidden frames; good: hidden alt-refs
# in superframes (libvpx's one-pass alt-ref path, see daedalus_v4l2.synth).
VP9_CLIPS = {
    "realtime-352x288": dict(codec="vp9", width=352, height=288, frames=20, options=VP9_REALTIME),
    "good-352x288": dict(codec="vp9", width=352, height=288, frames=30, options=VP9_GOOD),
    "realtime-322x182": dict(codec="vp9", width=322, height=182, frames=20, options=VP9_REALTIME),
    "good-322x182": dict(codec="vp9", width=322, height=182, frames=30, options=VP9_GOOD),
}

# B-pyramid H.264 (for the hw tier's `decode` and v4l2slh264dec tests).
H264_CLIP = dict(codec="h264", width=176, height=144, frames=24,
                 options={"bf": "3", "b-pyramid": "normal", "profile": "main"})


class LedgerError(AssertionError):
    """The device broke a contract the ledger checks (a buffer returned twice, ...)."""


@dataclass
class Event:
    op: str            # "qbuf", "dqbuf", "streamoff"
    buf_type: int
    index: int
    timestamp: int = 0
    flags: int = 0
    hold: bool = False


@dataclass
class Ledger:
    """Who owns each buffer, from the client's side: it or the driver."""
    events: list[Event] = field(default_factory=list)
    with_driver: dict[int, set[int]] = field(default_factory=lambda: {OUTPUT: set(), CAPTURE: set()})
    queued: dict[int, int] = field(default_factory=lambda: {OUTPUT: 0, CAPTURE: 0})
    dequeued: dict[int, int] = field(default_factory=lambda: {OUTPUT: 0, CAPTURE: 0})
    returned_by_streamoff: dict[int, int] = field(default_factory=lambda: {OUTPUT: 0, CAPTURE: 0})

    def qbuf(self, buf_type: int, index: int, timestamp: int = 0, hold: bool = False) -> None:
        if index in self.with_driver[buf_type]:
            raise LedgerError(f"QBUF {QUEUE_NAMES[buf_type]} {index}: the driver still has it")
        self.with_driver[buf_type].add(index)
        self.queued[buf_type] += 1
        self.events.append(Event("qbuf", buf_type, index, timestamp, hold=hold))

    def dqbuf(self, done: Dequeued) -> None:
        owned = self.with_driver[done.buf_type]
        if done.index not in owned:
            raise LedgerError(f"DQBUF {QUEUE_NAMES[done.buf_type]} {done.index}: returned twice "
                              f"(the client already had it)")
        owned.remove(done.index)
        self.dequeued[done.buf_type] += 1
        self.events.append(Event("dqbuf", done.buf_type, done.index, done.timestamp, done.flags))

    def streamoff(self, buf_type: int, flags_after: dict[int, int]) -> None:
        """After STREAMOFF every buffer is the client's: QUERYBUF shows none queued or done."""
        busy = uapi.V4L2_BUF_FLAG_QUEUED | uapi.V4L2_BUF_FLAG_DONE
        still = {i: f for i, f in flags_after.items() if f & busy}
        if still:
            raise LedgerError(f"after STREAMOFF {QUEUE_NAMES[buf_type]} the driver still has "
                              f"buffers (index: flags) {still}")
        returned = self.with_driver[buf_type]
        self.returned_by_streamoff[buf_type] += len(returned)
        for index in sorted(returned):
            self.events.append(Event("streamoff", buf_type, index))
        returned.clear()

    # ------------------------------------------------------------------ views
    def of(self, op: str, buf_type: int) -> list[Event]:
        return [e for e in self.events if e.op == op and e.buf_type == buf_type]

    def request_timestamps(self) -> list[int]:
        """OUTPUT timestamps of the requests that complete a picture, in queue order."""
        return [e.timestamp for e in self.of("qbuf", OUTPUT) if not e.hold]

    def check_nothing_lost(self) -> None:
        for t in (OUTPUT, CAPTURE):
            name = QUEUE_NAMES[t]
            assert not self.with_driver[t], f"{name} buffers never came back: {self.with_driver[t]}"
            assert self.queued[t] == self.dequeued[t] + self.returned_by_streamoff[t], (
                f"{name}: {self.queued[t]} queued, {self.dequeued[t]} dequeued, "
                f"{self.returned_by_streamoff[t]} returned by STREAMOFF")


class CheckedRequest(Request):
    """A request that, once complete, checks its picture is done (unless its CAPTURE
    buffer was held: a slice's request completes with the slice)."""

    def __init__(self, decoder: "LedgerDecoder", sys, fd: int) -> None:
        super().__init__(sys, fd)
        self.decoder = decoder
        self.queued: tuple[int, bool] | None = None     # (timestamp, hold) when queued

    def wait(self, timeout: float | None = None) -> bool:
        complete = super().wait(timeout)
        if complete and self.queued is not None and not self.queued[1]:
            self.decoder.check_picture_done(self.queued[0])
        return complete

    def reinit(self) -> None:
        self.wait(0)     # a request the client reuses completed: check it
        super().reinit()
        self.queued = None


class LedgerDecoder(StatelessDecoder):
    """A ``StatelessDecoder`` that keeps a ``Ledger`` of its buffers."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ledger = Ledger()

    def queue_output(self, index, data, timestamp, request, hold_capture=False) -> None:
        super().queue_output(index, data, timestamp, request, hold_capture)
        self.ledger.qbuf(OUTPUT, index, timestamp, hold_capture)
        request.queued = (timestamp, hold_capture)

    def queue_capture(self, index: int) -> None:
        super().queue_capture(index)
        self.ledger.qbuf(CAPTURE, index)

    def dequeue(self, buf_type: int, timeout: float | None = None, **options) -> Dequeued | None:
        done = super().dequeue(buf_type, timeout, **options)
        if done is not None:
            self.ledger.dqbuf(done)
        return done

    def alloc_request(self) -> "CheckedRequest":
        request = super().alloc_request()
        return CheckedRequest(self, request.sys, request.fd)

    def check_picture_done(self, timestamp: int) -> None:
        """A completed request's picture is done: GStreamer's v4l2codecs take a
        completed request for a decoded picture and DQBUF it at once."""
        if any(e.timestamp == timestamp for e in self.ledger.of("dqbuf", CAPTURE)):
            return
        for index in self.ledger.with_driver[CAPTURE]:
            flags, done_at = self.querybuf(CAPTURE, index)
            if done_at == timestamp and flags & uapi.V4L2_BUF_FLAG_DONE:
                return
        raise LedgerError(f"the request of timestamp {timestamp} completed before its "
                          f"CAPTURE buffer was done")

    def streamoff(self, buf_type: int) -> None:
        super().streamoff(buf_type)
        self.ledger.streamoff(buf_type, {m.index: self.querybuf_flags(buf_type, m.index)
                                         for m in self.buffers[buf_type]})

    def querybuf_flags(self, buf_type: int, index: int) -> int:
        return self.querybuf(buf_type, index)[0]

    def querybuf(self, buf_type: int, index: int) -> tuple[int, int]:
        """(flags, timestamp in ns) of a buffer, from VIDIOC_QUERYBUF."""
        buf, _ = self._new_buffer(buf_type, index)
        self._ioctl(uapi.VIDIOC_QUERYBUF, buf, f"VIDIOC_QUERYBUF {QUEUE_NAMES[buf_type]} {index}")
        return buf.flags, buf.timestamp.tv_sec * 1_000_000_000 + buf.timestamp.tv_usec * 1000


# --------------------------------------------------------------------------- backends

class SimBackend:
    """The simulated kernel with the daemon stepped inline (deterministic), or with
    ``write_behind`` in a thread of its own, writing pictures behind as
    ``decode --backend sim`` runs it: its jobs park until their pictures are written."""
    streamoff_bound = 1.0  # s; the sim never waits on anything

    def __init__(self, write_behind: bool = False) -> None:
        self.name = "sim-behind" if write_behind else "sim"
        self.write_behind = write_behind
        self.kernel = None

    @contextlib.contextmanager
    def open(self) -> Iterator[LedgerDecoder]:
        from daedalus_v4l2.backends.sim import DaemonThread, SimKernel
        from daedalus_v4l2.daemon import Daemon
        kernel = self.kernel = SimKernel(seed=1)
        daemon = Daemon(kernel.open_chardev(), write_behind=self.write_behind)
        thread = DaemonThread(kernel, daemon).start() if self.write_behind else None
        if thread is None:
            kernel.attach_daemon(daemon.step)
        decoder = LedgerDecoder(kernel.syscalls(), kernel.video_path, kernel.media_path)
        try:
            yield decoder
        finally:
            if thread is not None:
                thread.stop()
            decoder.close()
            while thread is None and kernel.step():  # let the daemon read STREAM_CLOSE
                pass
            daemon.transport.close()
            daemon.close()

    def counters(self) -> dict[str, int]:
        s = self.kernel.stats
        return {"jobs": s.jobs, "done": s.done, "errors": s.errors}


class HwBackend:
    name = "hw"
    # STREAMOFF never waits on the daemon (driver-model.md); generous for TCG.
    streamoff_bound = 5.0

    def __init__(self) -> None:
        from daedalus_v4l2.backends.hw import find_nodes
        self.nodes = find_nodes()

    @contextlib.contextmanager
    def open(self) -> Iterator[LedgerDecoder]:
        decoder = LedgerDecoder(OsSyscalls(), self.nodes.video, self.nodes.media)
        try:
            yield decoder
        finally:
            decoder.close()

    def counters(self) -> dict[str, int]:
        return debugfs_counters()


def debugfs_counters() -> dict[str, int]:
    """The module's debugfs counters (jobs, done, errors, watchdog_expiries, ...)."""
    out = {}
    for line in (DEBUGFS / "counters").read_text().splitlines():
        name, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[name] = int(value)
    return out


def daemon_attached(chardev: str = "/dev/daedalus-v4l2") -> bool:
    """Some process (the rig's daemon) holds the module's chardev open."""
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            for fd in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == chardev:
                        return True
        except OSError:
            continue
    return False
