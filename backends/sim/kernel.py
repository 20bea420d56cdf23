"""SimKernel: the device of the kernel module, its m2m job logic and its virtual clock.

Names follow docs/driver-model.md and v4l2-mem2mem: job_ready, device_run,
job_finish, buf_done, stop_streaming, watchdog.

Two ways to run the daemon:

* inline (the default): everything runs in the caller's thread; a blocking
  call lets the daemon handle one message at a time (step()), and time only
  moves when step() fires a timer (or advance() is called), so a run is a
  deterministic function of the calls made.  The tests of the kernel's rules,
  the TUI and `decode --sim-daemon inline` use this.
* in a thread of its own (:class:`~.daemon_thread.DaemonThread`, what
  ``open_decoder`` and so ``decode`` start), as on a Pi where the daemon is a
  process of its own: libavcodec decodes one request
  while the client prepares the next.  Every call into the kernel, from the
  client or the daemon, holds ``lock`` (the module's mutex); a client's blocking
  calls wait on ``changed`` for a buffer to be done, the daemon's read on
  ``daemon_readable`` for a message, and the clock follows real time
  so the watchdog still ends what a stuck daemon never answers.
"""
from __future__ import annotations

import errno
import itertools
import logging
import random
import threading
import time
from typing import Callable

from ... import proto
from ...errors import DeviceError, InvariantError
from ...v4l2 import uapi
from . import formats
from .chardev import Chardev, SimTransport
from .context import SimContext
from .inflight import EntryState, InflightEntry
from .request import release_request
from .stats import Faults, SimEvent, SimStats
from .vb2 import BufState, Ledger, Vb2Buffer

log = logging.getLogger("daedalus_v4l2.sim")

CLAIM_POLICIES = ("device_run", "buf_done")
# With the daemon in its own thread, the longest a blocking call sleeps before it looks again.
MAX_WAIT = 0.1


class SimDeadlock(DeviceError):
    """A blocking call would wait forever: nothing queued can ever complete it."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EDEADLK, message)


class SimKernel:
    video_path = "/dev/video0"
    media_path = "/dev/media0"
    chardev_path = "/dev/daedalus-v4l2"

    def __init__(self, seed: int = 0, watchdog_ms: int = 2000,
                 claim_policy: str = "device_run", digest: bool = True) -> None:
        if claim_policy not in CLAIM_POLICIES:
            raise ValueError(f"claim_policy must be one of {CLAIM_POLICIES}")
        self.rng = random.Random(seed)
        self.watchdog_ms = watchdog_ms
        self.claim_policy = claim_policy
        # The module's ``digest`` parameter (off there): False sets DECODE_NO_DIGEST.
        # On by default here, so tests see every DECODE as before; the decode path turns it off.
        self.digest = digest
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
        self._request_ids = itertools.count(1)
        self._subscribers: list[Callable[[SimEvent], None]] = []
        self._in_run = False
        self.retired_held = 0       # held entries whose dst the next slice took over
        # Only contended with the daemon in its own thread (see the module's docstring).
        self.lock = threading.RLock()
        # Two conditions on it, so that each event wakes only the thread it is for:
        # a client's blocking call waits on ``changed`` (a buffer done, the daemon
        # thread started or gone, nothing left for it to read), the daemon thread's
        # read on ``daemon_readable`` (a message queued, its chardev closed, a stall
        # lifted).  One condition woke both at every step of every picture.
        self.changed = threading.Condition(self.lock)
        self.daemon_readable = threading.Condition(self.lock)
        self.threaded = False
        self.daemon_thread_running = False  # DaemonThread's loop, while it reads
        self._epoch = 0.0

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

    def run_daemon_in_thread(self) -> None:
        """From now on the daemon reads the chardev in a thread of its own
        (DaemonThread): blocking calls wait for it instead of stepping it, and
        the clock follows real time."""
        with self.lock:
            self.detach_daemon()
            self.threaded = True
            self._epoch = time.monotonic() - self.clock / 1000

    def wake_daemon(self) -> None:
        """Let the daemon thread's read look again (what it waits for may have changed)."""
        if self.threaded:
            with self.lock:
                self.daemon_readable.notify_all()

    def follow_real_time(self) -> None:
        self.clock = max(self.clock, int((time.monotonic() - self._epoch) * 1000))

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

    def progress(self, until: int | None = None) -> bool:
        """What a blocking call does while it waits: let something happen, not
        later than ``until`` (ms of the kernel's clock).  False if nothing can.

        Inline, that is one step().  With the daemon in its own thread, wait
        until it changes something or the next watchdog deadline passes; with
        no job out to the daemon and no message it will read, nothing can."""
        if not self.threaded:
            return self.step(until)
        self.follow_real_time()
        deadline = self.next_deadline()
        if deadline is None and not self.daemon_will_read():
            return False
        if until is not None and self.clock >= until:
            return False
        wakes = [(d - self.clock) / 1000 for d in (deadline, until) if d is not None]
        # bounded: a fault set or a daemon thread gone without a notify is seen anyway
        self.changed.wait(max(0.0, min(wakes + [MAX_WAIT])))
        self.follow_real_time()
        self.watchdog()
        return True

    def daemon_will_read(self) -> bool:
        """A message is queued that the daemon's thread will read (it runs, is not
        stalled, and its chardev is open)."""
        return bool(self.chardev.fifo) and self.daemon_thread_running and \
            self.chardev.is_open and not self.faults.stall_daemon

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
             detail: str | Callable[[], str] = "") -> None:
        """An event for the subscribers (the TUI); ``detail`` may be a function that
        formats it, so that the events of every picture cost nothing unobserved."""
        if not self._subscribers:
            return
        if callable(detail):
            detail = detail()
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
        self._set_entry(entry, EntryState.READY)
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
        held, error = ctx.held, False
        if held is not None and held.dst.timestamp_ns == src.timestamp_ns:
            dst, first, error = self._retire_held(held), False, held.error
        else:
            self.release_held(ctx, "new picture")
            dst, first = self._claim_dst(ctx), True
            dst.timestamp_ns = src.timestamp_ns     # v4l2_m2m_buf_copy_metadata
            ctx.frame += 1
        hold = bool(src.flags & uapi.V4L2_BUF_FLAG_M2M_HOLD_CAPTURE_BUF)
        entry = InflightEntry(next(self._cookies), ctx, src, dst, EntryState.SENT, self.clock,
                              ctx.frame, hold=hold, first_slice=first, error=error,
                              bytesused=dst.length)
        if not hold and src.request is not None:
            # dv_bind_picture: the request completes with the picture, not with its src
            # (returned at SRC_CONSUMED, contract 2), so that a client that takes a
            # completed request for a decoded picture (GStreamer's v4l2codecs) finds it
            entry.request = src.request
            entry.request.bind_picture()
        self.inflight.append(entry)
        self.running = entry
        self.stats.jobs += 1
        self.emit("device_run", entry.cookie, ctx,
                  lambda: f"src {src.index} dst {dst.index} frame {entry.frame}")
        # v4l2_ctrl_request_setup: the request's controls become the context's current ones
        ctx.apply_request(src.request)
        if not self._send_decode(entry):
            why = "no daemon" if not self.chardev.is_open else "daemon not reading"
            self.fail_entry(entry, why)
            self.complete_in_order(ctx)

    def _retire_held(self, held: InflightEntry) -> Vb2Buffer:
        """The held entry only carried the dst; the next slice's job takes it over."""
        held.ctx.held = None
        self.inflight.remove(held)
        self.retired_held += 1
        dst = held.dst
        if self.claim_policy == "device_run":
            dst.set_state(BufState.ACTIVE)
        return dst

    def _send_decode(self, entry: InflightEntry) -> bool:
        """Queue STREAM_OPEN (first job of a session), DECODE, and a FLUSH that waited
        for this src: all or nothing.  False when there is no daemon or no room."""
        ctx, src, dst = entry.ctx, entry.src, entry.dst
        need = 1 + (not ctx.session_open)
        if not self.chardev.is_open or self.chardev.room() < need:
            log.error("ctx %d cookie %d: %s, failing the job", ctx.id, entry.cookie,
                      "no daemon attached" if not self.chardev.is_open else
                      f"daemon not reading ({len(self.chardev.fifo)} messages queued)")
            return False
        if not ctx.session_open:
            self.chardev.queue(ctx.stream_open())
            ctx.session_open = True
        flags = (proto.DECODE_HOLD_CAPTURE if entry.hold else 0) | \
                (proto.DECODE_FIRST_SLICE if entry.first_slice else 0) | \
                (0 if self.digest else proto.DECODE_NO_DIGEST) | \
                (proto.DECODE_MORE_QUEUED if self._another_job_ready(entry) else 0)
        req = proto.DecodeRequest(
            stream_id=ctx.id, cookie=entry.cookie, timestamp=src.timestamp_ns, codec=ctx.codec,
            coded_width=ctx.out_fmt.width, coded_height=ctx.out_fmt.height,
            capture_fourcc=ctx.cap_fmt.pixelformat, capture_index=dst.index,
            capture_size=dst.length, output_index=src.index,
            planes=formats.capture_planes(ctx.cap_fmt),
            controls=ctx.decode_controls(), bitstream=self._bitstream(src),
            capture_offset=self.chardev.capture_offset(entry.cookie), flags=flags)
        self.chardev.queue(req, entry.cookie)
        if ctx.flush_pending and not len(ctx.out_q.ready):
            # DECODER_CMD(FLUSH) came with srcs queued: it follows the last one's DECODE
            ctx.flush_pending = False
            self.chardev.queue(proto.Message(proto.MSG_FLUSH, stream_id=ctx.id))
        return True

    def _another_job_ready(self, entry: InflightEntry) -> bool:
        """What the module's dv_claim says in DECODE_MORE_QUEUED: with this job's src and
        dst claimed, the queues still hold another job, which will be sent without the
        client doing anything (a held dst continues into the next src: never)."""
        ctx = entry.ctx
        if entry.hold or not len(ctx.out_q.ready):
            return False
        # claim_policy "buf_done" leaves the claimed dst on the ready queue
        return len(ctx.cap_q.ready) - (entry.dst in ctx.cap_q.ready) > 0

    def _bitstream(self, src: Vb2Buffer) -> bytes:
        data = bytes(memoryview(src.mem)[:src.bytesused])   # one copy (a bytearray slice is a second)
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
            buf.request.complete_buffer()
        if self.threaded:
            self.changed.notify_all()
        self.emit("buf_done", None, q.ctx, lambda: f"{buf.name} {'ERROR' if error else 'DONE'}")

    def src_done(self, entry: InflightEntry, src: Vb2Buffer, error: bool) -> None:
        """The job ends with its src (dv_src_done): returned, then the device is free."""
        self.buf_done(src, error)
        self.job_finish(entry)

    def job_finish(self, entry: InflightEntry) -> None:
        """v4l2_m2m_job_finish: the device is free; the next job may run."""
        if self.running is not entry:
            return
        self.running = None
        self.emit("job_finish", entry.cookie, entry.ctx)
        self.try_schedule(entry.ctx)

    def complete_in_order(self, ctx: SimContext) -> None:
        """dst buffers complete strictly in cookie order within a context."""
        for entry in [e for e in self.inflight if e.ctx is ctx]:
            if entry.state is not EntryState.READY:
                break
            self._complete_entry(entry)

    def _complete_entry(self, entry: InflightEntry) -> None:
        if entry.state in (EntryState.DONE, EntryState.ERROR):
            raise InvariantError(f"cookie {entry.cookie} completed twice")
        if entry.src is not None:
            raise InvariantError(f"cookie {entry.cookie} completing with its src still claimed")
        self.inflight.remove(entry)
        self.complete_dst(entry)
        request, entry.request = entry.request, None
        if request is not None:     # dst first: the request says the picture is there
            request.complete_picture()
        entry.state = EntryState.ERROR if entry.error else EntryState.DONE
        if entry.error:
            self.stats.errors += 1
        else:
            self.stats.done += 1
        self.emit("complete", entry.cookie, entry.ctx, entry.state.value)

    def complete_dst(self, entry: InflightEntry) -> None:
        """dv_dst_done: OUTPUT timestamp already copied; bytesused, field, sequence."""
        dst = entry.dst
        dst.bytesused = 0 if entry.error else entry.bytesused
        if self.claim_policy == "buf_done":
            dst.queue.ready.del_(dst)   # the late claim: a parked dst was still on the queue
        self.buf_done(dst, entry.error)

    def fail_entry(self, entry: InflightEntry, why: str) -> None:
        """dv_fail_entry: ERROR; the src now, the dst in order (the caller runs
        complete_in_order)."""
        ctx = entry.ctx
        if ctx.held is entry:
            ctx.held = None
        entry.error = True
        self._set_entry(entry, EntryState.READY)
        self.emit("fail", entry.cookie, ctx, why)
        src, entry.src = entry.src, None
        if src is not None:
            self.src_done(entry, src, True)

    # ------------------------------------------------------------------ daemon responses

    def unknown_cookie(self, cookie: int, what: str, detail: str = "") -> int:
        """A FRAME or an mmap for a job not in flight (finished, or cancelled by
        STREAMOFF while the daemon held it): counted, logged, -ENOENT."""
        self.stats.unknown_cookie += 1
        self.emit("unknown_cookie", cookie, None, detail or what)
        log.info("%s for unknown or finished cookie %d dropped", what, cookie)
        return -errno.ENOENT

    def handle_frame(self, resp: proto.FrameResponse) -> int:
        """A FRAME from the daemon (dv_handle_frame): 0, or the -errno write() returns."""
        entry = self.find_entry(resp.cookie)
        if entry is None:
            return self.unknown_cookie(resp.cookie, "FRAME", f"flags 0x{resp.flags:x}")
        ctx = entry.ctx
        if resp.stream_id != ctx.id:
            self.stats.rejected_messages += 1
            log.warning("cookie %d: FRAME names stream %d, the job is on stream %d",
                        resp.cookie, resp.stream_id, ctx.id)
            return -errno.EINVAL
        src = entry.src
        ret = self._apply_frame(entry, resp)
        if ret == -errno.EALREADY:
            self.stats.duplicate_response += 1
            self.emit("duplicate_response", resp.cookie, ctx, f"flags 0x{resp.flags:x}")
            return ret
        if ret:
            self.stats.rejected_messages += 1
        self.emit("frame", resp.cookie, ctx, lambda: f"flags 0x{resp.flags:x} -> {entry.state.value}")
        entry.src = None
        # dst first: completing the src signals the request to the client
        self.complete_in_order(ctx)
        if src is not None:
            self.src_done(entry, src, bool(resp.flags & proto.FRAME_ERROR) or resp.status != 0)
        return ret

    def _apply_frame(self, entry: InflightEntry, resp: proto.FrameResponse) -> int:
        """HAS_PIXELS and ERROR imply SRC_CONSUMED.  Without pixels or error the dst is
        parked, or held if the src asked for it; an error on a held picture is sticky
        and the dst stays held (as v4l2_m2m_buf_done_and_job_finish does)."""
        pixels = bool(resp.flags & proto.FRAME_HAS_PIXELS)
        error = bool(resp.flags & proto.FRAME_ERROR) or resp.status != 0
        consumes = entry.src is not None
        if entry.state is EntryState.READY or not (consumes or pixels or error):
            return -errno.EALREADY       # reported already, or a second SRC_CONSUMED
        ret = 0
        if pixels:
            if resp.plane_bytes[0] > entry.dst.length:
                log.warning("ctx %d cookie %d: %d bytes do not fit CAPTURE buffer %d (%d bytes)",
                            entry.ctx.id, entry.cookie, resp.plane_bytes[0], entry.dst.index,
                            entry.dst.length)
                error, ret = True, -errno.EOVERFLOW
            else:
                entry.bytesused = resp.plane_bytes[0]
        entry.error = entry.error or error
        if pixels or (error and not entry.hold):
            if entry.ctx.held is entry:
                entry.ctx.held = None
            self._set_entry(entry, EntryState.READY)
        elif consumes and entry.hold:
            self._set_entry(entry, EntryState.HELD)
            entry.ctx.held = entry
        elif consumes:
            self._set_entry(entry, EntryState.PARKED)
        return ret

    def _set_entry(self, entry: InflightEntry, state: EntryState) -> None:
        """Entry state, mirrored on the dst buffer's vb2 state, parked counters kept."""
        entry.state = state
        self._update_parked()
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
        """Every in-flight entry of the context ends with ERROR, now (dv_cancel_ctx):
        also the ones whose pictures were ready but waited behind an earlier one."""
        for entry in [e for e in self.inflight if e.ctx is ctx]:
            self.fail_entry(entry, why)
        ctx.held = None
        ctx.flush_pending = False
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

    def daemon_gone(self) -> None:
        """The chardev was closed (dv_fail_all): every in-flight job fails at once."""
        for ctx in self.contexts:
            ctx.session_open = False
            ctx.flush_pending = False
        for entry in list(self.inflight):
            if entry in self.inflight:
                self.fail_entry(entry, "daemon closed the chardev")
        for ctx in list(self.contexts):
            self.complete_in_order(ctx)
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
        """V4L2_DEC_CMD_FLUSH (dv_flush).  With srcs queued, the last one loses its HOLD
        flag (so it releases the held dst) and FLUSH follows its DECODE; else a running
        job of the context will not hold its dst, the held dst is released and FLUSH
        goes now."""
        last = ctx.out_q.ready.last()
        if last is not None:
            last.flags &= ~uapi.V4L2_BUF_FLAG_M2M_HOLD_CAPTURE_BUF
            ctx.flush_pending = True
        else:
            for entry in self.inflight:
                if entry.ctx is ctx and entry.state is EntryState.SENT:
                    entry.hold = False
            self.release_held(ctx, "flush")
            if ctx.session_open and self.chardev.is_open and self.chardev.room():
                self.chardev.queue(proto.Message(proto.MSG_FLUSH, stream_id=ctx.id))
        self.emit("flush", None, ctx, "deferred" if last is not None else "now")

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
