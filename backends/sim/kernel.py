"""SimKernel: the device of the kernel module, its m2m job logic and its virtual clock.

Names follow docs/driver-model.md and v4l2-mem2mem: job_ready, device_run,
job_finish, buf_done, stop_streaming, watchdog.  Everything runs in the
caller's thread; time only moves when step() fires a timer (or advance() is
called), so a run is a deterministic function of the calls made.
"""
from __future__ import annotations

import enum
import errno
import itertools
import logging
import random
from dataclasses import dataclass, field
from typing import Callable

from ... import proto
from ...errors import DeviceError, InvariantError, ProtocolError
from . import formats
from .chardev import Chardev, SimTransport
from .context import SimContext
from .request import release_request
from .vb2 import BufState, Ledger, Vb2Buffer

log = logging.getLogger("daedalus_v4l2.sim")

CLAIM_POLICIES = ("device_run", "buf_done")


class SimDeadlock(DeviceError):
    """A blocking call would wait forever: nothing queued can ever complete it."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EDEADLK, message)


class EntryState(enum.Enum):
    SENT = "sent"        # DECODE queued for the daemon, no answer yet
    PARKED = "parked"    # src consumed, picture not ready; dst stays on the entry
    HELD = "held"        # src consumed, dst held for the next slice of its picture
    READY = "ready"      # dst may complete once every earlier entry of its context has
    DONE = "done"
    ERROR = "error"


@dataclass(eq=False)
class InflightEntry:
    cookie: int
    ctx: SimContext
    src: Vb2Buffer | None          # None once the OUTPUT buffer has been returned
    dst: Vb2Buffer
    state: EntryState
    sent_at: int                   # virtual ms
    frame: int
    hold: bool = False             # src had V4L2_BUF_FLAG_M2M_HOLD_CAPTURE_BUF
    first_slice: bool = True
    consumed: bool = False
    pixels: bool = False           # HAS_PIXELS or ERROR seen
    error: bool = False
    bytesused: int = 0

    @property
    def ctx_id(self) -> int:
        return self.ctx.id

    def __repr__(self) -> str:
        return (f"<InflightEntry cookie={self.cookie} ctx={self.ctx.id} {self.state.value} "
                f"src={self.src!r} dst={self.dst!r} frame={self.frame}>")


@dataclass
class SimStats:
    jobs: int = 0
    done: int = 0
    errors: int = 0
    watchdog_expiries: int = 0
    unknown_cookie: int = 0
    duplicate_response: int = 0
    rejected_messages: int = 0
    parked_now: int = 0
    parked_max: int = 0


@dataclass
class SimEvent:
    kind: str
    cookie: int | None
    ctx_id: int | None
    detail: str
    clock: int                     # virtual ms


@dataclass
class Faults:
    """Knobs for tests and the TUI: make the daemon side misbehave on purpose."""
    drop_responses: int = 0        # the next N FRAME messages written are lost
    stall_daemon: bool = False     # the daemon gets no messages (stuck); timers still fire
    corrupt_bitstreams: int = 0    # the next N DECODE bitstreams get bytes flipped
    _kernel: "SimKernel" = field(default=None, repr=False)

    def kill_daemon(self) -> None:
        """Close the chardev as if the daemon process died."""
        self._kernel.chardev.kill()


class SimKernel:
    video_path = "/dev/video0"
    media_path = "/dev/media0"
    chardev_path = "/dev/daedalus-v4l2"

    def __init__(self, seed: int = 0, watchdog_ms: int = 2000,
                 claim_policy: str = "device_run") -> None:
        if claim_policy not in CLAIM_POLICIES:
            raise ValueError(f"claim_policy must be one of {CLAIM_POLICIES}")
        self.rng = random.Random(seed)
        self.watchdog_ms = watchdog_ms
        self.claim_policy = claim_policy
        self.clock = 0                       # virtual ms
        self.stats = SimStats()
        self.faults = Faults(_kernel=self)
        self.ledger = Ledger()
        self.chardev = Chardev(self)
        self.contexts: list[SimContext] = []
        self.inflight: list[InflightEntry] = []
        self.running: InflightEntry | None = None   # the one m2m job of the device
        self.job_queue: list[SimContext] = []
        self.daemon_step: Callable[[], bool] | None = None
        self._cookies = itertools.count(1)
        self._ctx_ids = itertools.count(1)
        self._subscribers: list[Callable[[SimEvent], None]] = []
        self._in_run = False

    # ------------------------------------------------------------------ public API

    def syscalls(self):
        from .syscalls import SimSyscalls
        return SimSyscalls(self)

    def open_chardev(self) -> SimTransport:
        return self.chardev.open()

    def attach_daemon(self, step: Callable[[], bool]) -> None:
        self.daemon_step = step

    def detach_daemon(self) -> None:
        self.daemon_step = None

    def subscribe(self, callback: Callable[[SimEvent], None]) -> None:
        self._subscribers.append(callback)

    def step(self, until: int | None = None) -> bool:
        """Run one event: let the daemon handle a message, else fire the earliest
        watchdog (not later than ``until``, virtual ms).  False if nothing can happen."""
        if self._daemon_can_run() and self.daemon_step():
            return True
        deadline = self.next_deadline()
        if deadline is None or (until is not None and deadline > until):
            return False
        self.clock = max(self.clock, deadline)
        self.watchdog()
        return True

    def run_until(self, predicate: Callable[[], bool], max_steps: int = 1_000_000) -> bool:
        for _ in range(max_steps):
            if predicate():
                return True
            if not self.step():
                return predicate()
        raise InvariantError(f"run_until: no result after {max_steps} steps (livelock?)")

    def advance(self, ms: int) -> None:
        """Move the virtual clock forward, firing the watchdog if it expires on the way."""
        self.clock += ms
        self.watchdog()

    def next_deadline(self) -> int | None:
        deadlines = [e.sent_at + self.watchdog_ms for e in self.inflight
                     if e.state in (EntryState.SENT, EntryState.PARKED)]
        return min(deadlines, default=None)

    # ------------------------------------------------------------------ plumbing

    def emit(self, kind: str, cookie: int | None = None, ctx: SimContext | None = None,
             detail: str = "") -> None:
        if not self._subscribers:
            return
        event = SimEvent(kind, cookie, ctx.id if ctx is not None else None, detail, self.clock)
        for callback in list(self._subscribers):
            callback(event)

    def _daemon_can_run(self) -> bool:
        return (self.chardev.is_open and self.daemon_step is not None
                and not self.faults.stall_daemon)

    def new_context(self) -> SimContext:
        ctx = SimContext(self, next(self._ctx_ids))
        self.contexts.append(ctx)
        self.emit("ctx_open", ctx=ctx)
        return ctx

    def context_by_id(self, ctx_id: int) -> SimContext | None:
        return next((c for c in self.contexts if c.id == ctx_id), None)

    def find_entry(self, cookie: int) -> InflightEntry | None:
        return next((e for e in self.inflight if e.cookie == cookie), None)

    def _update_parked(self) -> None:
        self.stats.parked_now = sum(e.state is EntryState.PARKED for e in self.inflight)
        self.stats.parked_max = max(self.stats.parked_max, self.stats.parked_now)

    # ------------------------------------------------------------------ scheduling

    def _has_buffers(self, ctx: SimContext) -> bool:
        """The per-context part of job_ready: streaming, a src, and a dst for it."""
        if ctx.closed or not (ctx.out_q.streaming and ctx.cap_q.streaming):
            return False
        src = ctx.out_q.ready.first()
        if src is None:
            return False
        if ctx.held is not None and ctx.held.dst.timestamp_ns == src.timestamp_ns:
            return True
        return len(ctx.cap_q.ready) > 0

    def job_ready(self, ctx: SimContext) -> bool:
        """One job per device at a time, as in v4l2-mem2mem."""
        return self.running is None and self._has_buffers(ctx)

    def try_schedule(self, ctx: SimContext) -> None:
        """v4l2_m2m_try_schedule: queue the context if it has work, run the next job."""
        self._release_stale_hold(ctx)
        running_here = self.running is not None and self.running.ctx is ctx
        # Like TRANS_QUEUED|TRANS_RUNNING: a context is queued once, and not while its
        # job runs; job_finish queues it again behind the contexts that waited.
        if not running_here and self._has_buffers(ctx) and ctx not in self.job_queue:
            self.job_queue.append(ctx)
        self._try_run()

    def _try_run(self) -> None:
        # A job can finish inside device_run (no daemon): job_finish then calls
        # try_schedule again.  The guard turns that recursion into this loop.
        if self._in_run:
            return
        self._in_run = True
        try:
            while self.running is None and self.job_queue:
                ctx = self.job_queue.pop(0)
                if self.job_ready(ctx):
                    self.device_run(ctx)
        finally:
            self._in_run = False

    def _release_stale_hold(self, ctx: SimContext) -> None:
        """A src with another timestamp means the held picture is complete."""
        src = ctx.out_q.ready.first()
        if ctx.held is not None and src is not None and \
                src.timestamp_ns != ctx.held.dst.timestamp_ns:
            self.release_held(ctx, "next picture")

    def release_held(self, ctx: SimContext, why: str) -> None:
        entry, ctx.held = ctx.held, None
        if entry is None:
            return
        entry.state = EntryState.READY
        self.emit("release_held", entry.cookie, ctx, why)
        self.complete_in_order(ctx)

    # ------------------------------------------------------------------ device_run

    def _claim_dst(self, ctx: SimContext) -> Vb2Buffer:
        dst = ctx.cap_q.ready.first()
        if self.claim_policy == "device_run":
            # Off the ready queue before anything else: a parked dst can never be
            # picked again by the next device_run.
            ctx.cap_q.ready.del_(dst)
            dst.set_state(BufState.ACTIVE)
        # claim_policy "buf_done": only peek (the order that crashed a Pi kernel);
        # the dst leaves the ready queue in complete_dst.
        return dst

    def device_run(self, ctx: SimContext) -> None:
        src = ctx.out_q.ready.first()
        ctx.out_q.ready.del_(src)
        src.set_state(BufState.ACTIVE)
        held = ctx.held
        if held is not None and held.dst.timestamp_ns == src.timestamp_ns:
            dst, first = self._retire_held(held), False
        else:
            self.release_held(ctx, "new picture")
            dst, first = self._claim_dst(ctx), True
            dst.timestamp_ns, dst.error = src.timestamp_ns, False
            ctx.frame += 1
        hold = bool(src.flags & formats.uapi.V4L2_BUF_FLAG_M2M_HOLD_CAPTURE_BUF)
        entry = InflightEntry(next(self._cookies), ctx, src, dst, EntryState.SENT, self.clock,
                              ctx.frame, hold=hold, first_slice=first)
        self.inflight.append(entry)
        self.running = entry
        self.stats.jobs += 1
        self.emit("device_run", entry.cookie, ctx,
                  f"src {src.index} dst {dst.index} frame {entry.frame}")
        if not self.chardev.is_open:
            log.error("ctx %d cookie %d: no daemon attached, failing the job", ctx.id, entry.cookie)
            self.fail_entry(entry, "no daemon")
            self.complete_in_order(ctx)
            return
        self._send_decode(entry)

    def _retire_held(self, held: InflightEntry) -> Vb2Buffer:
        """The held entry's slice is done; its dst goes on with the next slice's job."""
        held.ctx.held = None
        self.inflight.remove(held)
        held.state = EntryState.DONE
        self.stats.done += 1
        dst = held.dst
        dst.error = dst.error or held.error
        if self.claim_policy == "device_run":
            dst.set_state(BufState.ACTIVE)
        return dst

    def _send_decode(self, entry: InflightEntry) -> None:
        ctx, src, dst = entry.ctx, entry.src, entry.dst
        if not ctx.session_open:
            self.chardev.queue(ctx.stream_open())
            ctx.session_open = True
        flags = (proto.DECODE_HOLD_CAPTURE if entry.hold else 0) | \
                (proto.DECODE_FIRST_SLICE if entry.first_slice else 0)
        req = proto.DecodeRequest(
            stream_id=ctx.id, cookie=entry.cookie, timestamp=src.timestamp_ns, codec=ctx.codec,
            coded_width=ctx.out_fmt.width, coded_height=ctx.out_fmt.height,
            capture_fourcc=ctx.cap_fmt.pixelformat, capture_index=dst.index,
            capture_size=dst.length, output_index=src.index,
            planes=formats.capture_planes(ctx.cap_fmt),
            controls=ctx.decode_controls(src.request), bitstream=self._bitstream(src),
            capture_offset=self.chardev.capture_offset(ctx, dst), flags=flags)
        self.chardev.queue(req, entry.cookie)

    def _bitstream(self, src: Vb2Buffer) -> bytes:
        data = bytes(src.mem[:src.bytesused])
        if self.faults.corrupt_bitstreams > 0 and data:
            self.faults.corrupt_bitstreams -= 1
            data = bytearray(data)
            for i in self.rng.sample(range(len(data)), min(8, len(data))):
                data[i] ^= 0xFF
            data = bytes(data)
        return data

    # ------------------------------------------------------------------ completion

    def buf_done(self, buf: Vb2Buffer, error: bool) -> None:
        """vb2_buffer_done: the driver gives the buffer back (onto the done list)."""
        buf.set_state(BufState.ERROR if error else BufState.DONE)
        q = buf.queue
        buf.sequence, q.sequence = q.sequence, q.sequence + 1
        q.done.add_tail(buf)
        if q.is_output and buf.request is not None:
            buf.request.complete()
        self.emit("buf_done", None, q.ctx, f"{buf.name} {'ERROR' if error else 'DONE'}")

    def _return_src(self, entry: InflightEntry, error: bool) -> None:
        src, entry.src = entry.src, None
        entry.consumed = True
        if src is not None:
            self.buf_done(src, error)

    def job_finish(self, entry: InflightEntry) -> None:
        """v4l2_m2m_job_finish: the device is free; the next job may run."""
        if self.running is not entry:
            return
        self.running = None
        self.emit("job_finish", entry.cookie, entry.ctx)
        self.try_schedule(entry.ctx)
        self._try_run()

    def complete_in_order(self, ctx: SimContext) -> None:
        """dst buffers complete strictly in cookie order within a context."""
        for entry in [e for e in self.inflight if e.ctx is ctx]:
            if entry.state is not EntryState.READY:
                continue
            self._complete_entry(entry)

    def _complete_entry(self, entry: InflightEntry) -> None:
        if entry.state in (EntryState.DONE, EntryState.ERROR):
            raise InvariantError(f"cookie {entry.cookie} completed twice")
        self.inflight.remove(entry)
        error = self.complete_dst(entry)
        entry.state = EntryState.ERROR if error else EntryState.DONE
        if error:
            self.stats.errors += 1
        else:
            self.stats.done += 1
        self._update_parked()
        self.emit("complete", entry.cookie, entry.ctx, entry.state.value)

    def complete_dst(self, entry: InflightEntry) -> bool:
        dst = entry.dst
        error = entry.error or dst.error
        if not error and entry.bytesused > dst.length:
            log.error("ctx %d cookie %d: daemon wrote %d bytes into a %d-byte buffer",
                      entry.ctx.id, entry.cookie, entry.bytesused, dst.length)
            error = True
        dst.bytesused = 0 if error else entry.bytesused
        if self.claim_policy == "buf_done":
            dst.queue.ready.del_(dst)   # the late claim: a parked dst was still on the queue
        self.buf_done(dst, error)
        return error

    def fail_entry(self, entry: InflightEntry, why: str) -> None:
        """ERROR for whatever the entry still holds; the caller runs complete_in_order."""
        self.chardev.purge(entry.cookie)
        entry.error = True
        entry.pixels = True     # a late FRAME for it adds nothing: counted as a duplicate
        if entry.src is not None:
            self._return_src(entry, True)
        if entry.ctx.held is entry:
            entry.ctx.held = None
        entry.state = EntryState.READY
        self.emit("fail", entry.cookie, entry.ctx, why)
        self.job_finish(entry)

    # ------------------------------------------------------------------ daemon responses

    def handle_frame(self, resp: proto.FrameResponse) -> None:
        """A FRAME message from the daemon (the chardev write handler calls this)."""
        entry = self.find_entry(resp.cookie)
        if entry is None or entry.state in (EntryState.DONE, EntryState.ERROR):
            self.stats.unknown_cookie += 1
            self.emit("unknown_cookie", resp.cookie, None, f"flags 0x{resp.flags:x}")
            log.warning("FRAME for unknown cookie %d dropped", resp.cookie)
            return
        if resp.stream_id != entry.ctx.id:
            raise ProtocolError(f"FRAME for cookie {resp.cookie} names stream {resp.stream_id},"
                                f" the job belongs to stream {entry.ctx.id}")
        known = proto.FRAME_SRC_CONSUMED | proto.FRAME_HAS_PIXELS | proto.FRAME_ERROR
        error = bool(resp.flags & proto.FRAME_ERROR) or resp.status < 0
        new_consume = bool(resp.flags & known) and not entry.consumed
        new_pixels = bool(resp.flags & (proto.FRAME_HAS_PIXELS | proto.FRAME_ERROR)) or error
        new_pixels = new_pixels and not entry.pixels
        if not (new_consume or new_pixels):
            self.stats.duplicate_response += 1
            self.emit("duplicate_response", resp.cookie, entry.ctx, f"flags 0x{resp.flags:x}")
            return
        self.emit("frame", resp.cookie, entry.ctx, f"flags 0x{resp.flags:x}")
        if new_pixels:
            entry.pixels = True
            entry.error = entry.error or error
            entry.bytesused = resp.plane_bytes[0] if resp.plane_bytes else entry.dst.length
        if new_consume:
            self._consume(entry, error)
        elif entry.state is EntryState.PARKED:
            self._set_entry(entry, EntryState.READY)
        self._update_parked()
        self.complete_in_order(entry.ctx)

    def _consume(self, entry: InflightEntry, error: bool) -> None:
        ctx = entry.ctx
        self._return_src(entry, error)
        if entry.hold and not ctx.flush_pending:
            self._set_entry(entry, EntryState.HELD)
            ctx.held = entry
        else:
            ctx.flush_pending = False
            self._set_entry(entry, EntryState.READY if entry.pixels else EntryState.PARKED)
        self.job_finish(entry)

    def _set_entry(self, entry: InflightEntry, state: EntryState) -> None:
        """Entry state, mirrored on the dst buffer's vb2 state."""
        entry.state = state
        if self.claim_policy != "device_run":
            return
        if state is EntryState.PARKED:
            entry.dst.set_state(BufState.PARKED)
        elif state is EntryState.HELD:
            entry.dst.set_state(BufState.HELD)

    def flush_done(self, stream_id: int) -> None:
        ctx = self.context_by_id(stream_id)
        self.emit("flush_done", None, ctx, "")

    # ------------------------------------------------------------------ stop, watchdog, daemon gone

    def cancel_context(self, ctx: SimContext, why: str) -> None:
        """Every in-flight entry of the context ends with ERROR, now."""
        for entry in [e for e in self.inflight if e.ctx is ctx]:
            if entry.state is not EntryState.READY:
                self.fail_entry(entry, why)
        self.complete_in_order(ctx)

    def stop_streaming(self, ctx: SimContext, q, how: str = "streamoff") -> None:
        """STREAMOFF: cancel the context's jobs, give back every buffer of the queue.
        Nothing here waits on the daemon, so it returns in bounded time."""
        q.streaming = False
        self.cancel_context(ctx, how)
        for buf in q.ready:
            q.ready.del_(buf)
            self.buf_done(buf, True)
        self.queue_cancel(q, how)
        if ctx in self.job_queue and not self._has_buffers(ctx):
            self.job_queue.remove(ctx)
        self.emit(how, None, ctx, "OUTPUT" if q.is_output else "CAPTURE")

    def queue_cancel(self, q, how: str) -> None:
        """__vb2_queue_cancel: every buffer goes back to userspace, done or not."""
        for buf in q.buffers:
            if buf.list is q.done:
                q.done.del_(buf)
            if buf.request is not None:
                release_request(buf)
            if buf.state in (BufState.QUEUED, BufState.ACTIVE, BufState.PARKED, BufState.HELD):
                raise InvariantError(f"{buf.name} still {buf.state.value} after stop_streaming")
            if buf.state is not BufState.DEQUEUED:
                buf.set_state(BufState.DEQUEUED)
                self.ledger.returned(buf, how)

    def watchdog(self) -> None:
        """Entries older than watchdog_ms end with ERROR: a stuck daemon costs one period."""
        expired = [e for e in self.inflight if e.state in (EntryState.SENT, EntryState.PARKED)
                   and e.sent_at + self.watchdog_ms <= self.clock]
        for entry in expired:
            if entry.state in (EntryState.SENT, EntryState.PARKED):
                self.stats.watchdog_expiries += 1
                log.error("ctx %d cookie %d: no answer from the daemon in %d ms",
                          entry.ctx.id, entry.cookie, self.watchdog_ms)
                self.fail_entry(entry, "watchdog")
        for ctx in {e.ctx for e in expired}:
            self.complete_in_order(ctx)
        self._update_parked()

    def daemon_gone(self) -> None:
        """The chardev was closed: fail all in-flight work at once."""
        for ctx in self.contexts:
            ctx.session_open = False
        for entry in list(self.inflight):
            if entry.state is not EntryState.READY:
                self.fail_entry(entry, "daemon closed the chardev")
        for ctx in list(self.contexts):
            self.complete_in_order(ctx)
        self._update_parked()
        self.emit("daemon_gone")

    def close_context(self, ctx: SimContext) -> None:
        """Release of the video fd: both queues stop, buffers freed, STREAM_CLOSE sent."""
        self.stop_streaming(ctx, ctx.out_q, "close")
        self.stop_streaming(ctx, ctx.cap_q, "close")
        if ctx.session_open and self.chardev.is_open:
            self.chardev.queue(proto.Message(proto.MSG_STREAM_CLOSE, stream_id=ctx.id))
        ctx.session_open = False
        ctx.closed = True
        ctx.out_q.buffers, ctx.cap_q.buffers = [], []
        self.contexts.remove(ctx)
        if ctx in self.job_queue:
            self.job_queue.remove(ctx)
        self.emit("ctx_close", ctx=ctx)

    def decoder_flush(self, ctx: SimContext) -> None:
        """V4L2_DEC_CMD_FLUSH: release a held dst and ask the daemon to drain."""
        running = self.running
        if running is not None and running.ctx is ctx and running.hold:
            ctx.flush_pending = True      # its dst will not be held when the src is consumed
        self.release_held(ctx, "flush")
        if ctx.session_open and self.chardev.is_open:
            self.chardev.queue(proto.Message(proto.MSG_FLUSH, stream_id=ctx.id))
        self.emit("flush", None, ctx)

    def describe_wait(self, ctx: SimContext, q) -> str:
        """Why a blocking DQBUF cannot complete: for SimDeadlock's message."""
        kind = "OUTPUT" if q.is_output else "CAPTURE"
        mine = [e for e in self.inflight if e.ctx is ctx]
        return (f"DQBUF on {kind} of context {ctx.id} would block forever: "
                f"{len(ctx.out_q.ready)} OUTPUT and {len(ctx.cap_q.ready)} CAPTURE buffers ready, "
                f"{len(mine)} in flight ({', '.join(e.state.value for e in mine) or 'none'}), "
                f"OUTPUT {'on' if ctx.out_q.streaming else 'off'}, "
                f"CAPTURE {'on' if ctx.cap_q.streaming else 'off'}, "
                f"daemon {'attached' if self._daemon_can_run() else 'not attached or stalled'}")
