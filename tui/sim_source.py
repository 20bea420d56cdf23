"""The simulated stack in a worker thread, driven for the TUI.

The simulation is single-threaded and not thread-safe, so everything that
touches it — the client's decode loop, the daemon, fault injection, reading
its state for a snapshot — runs in the one worker thread started here.  The
UI thread only sets flags and queues commands (under a condition variable)
and receives immutable ``Snapshot`` values through ``sink``.

The worker obeys at two kinds of checkpoint:

* after every event the kernel emits (a ``subscribe`` callback): pause,
  step one event, snapshot requests and counter-type faults are handled
  here.  Blocking inside the callback freezes the simulation mid-operation,
  which is harmless since nothing else touches it, and is what makes "step
  one event" exact;
* at every ``SimKernel.step()`` (the client's blocking calls pump events
  through it): the kernel is consistent here, so killing and restarting the
  daemon, and quitting, happen only at this point.

With ``realtime`` the virtual clock follows the wall clock while running (not
while paused), and a step that would jump the clock to a watchdog deadline
waits for it instead: a stalled daemon or a lost response shows in-flight
ages growing until the watchdog fails them.  Without it (tests, snapshots)
the simulation is the plain deterministic one.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from daedalus_v4l2 import proto
from daedalus_v4l2.backends.sim import EntryState, SimKernel
from daedalus_v4l2.daemon import Daemon
from daedalus_v4l2.decode import decode_through
from daedalus_v4l2.v4l2.client import StatelessDecoder

from .metrics import LatencyWindow, RateMeter
from .model import (BufferView, ContextView, Counters, InflightRow, LogEvent, QueueView,
                    Snapshot)

log = logging.getLogger(__name__)

EVENT_RING = 256          # events kept for the next snapshot; older ones are skipped
IMPORTANT_RING = 64       # ... except errors and faults, which are kept apart and never skipped
IMPORTANT_KINDS = frozenset(("fail", "dropped", "reject", "daemon_gone", "worker_error", "fault",
                             "watchdog"))
RECENT_DONE = 3           # completed entries that stay in the table, dimmed
FAULTS = ("drop", "corrupt", "stall", "kill", "restart")


def check_fault(fault: str) -> None:
    """Refuse an unknown fault where it is asked for (the UI thread), not later."""
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")


class Quit(Exception):
    """Raised at a step boundary in the worker when the UI asked to stop."""


@dataclass
class Clip:
    """What to decode: packets in decode order and the stream's parameters."""
    packets: Sequence[bytes]
    codec: str
    width: int
    height: int
    name: str = "clip"

    @classmethod
    def from_file(cls, path) -> "Clip":
        from daedalus_v4l2 import container
        info = container.probe(path)
        return cls(list(container.packets(path)), info.codec, info.width, info.height,
                   str(path).rsplit("/", 1)[-1])


class StepClock:
    """A deterministic clock for tests and snapshots: time moves 4 ms per event."""

    def __init__(self, tick: float = 0.004) -> None:
        self.tick = tick
        self.now = 0.0

    def advance(self) -> None:
        self.now += self.tick

    def __call__(self) -> float:
        return self.now


class DrivenKernel(SimKernel):
    """SimKernel whose step() first hands control to the driver."""

    def __init__(self, driver: "SimSource", **options) -> None:
        super().__init__(**options)
        self._driver = driver

    def step(self, until: int | None = None) -> bool:
        if self._driver.before_step(until):
            return True     # the driver killed or restarted the daemon: that was the event
        return super().step(until)

    def _bitstream(self, src) -> bytes:
        """The sim flips random bytes, which VP9 (no checksums) often decodes without
        noticing; for the TUI's fault the frame marker goes too, so the decoder must
        report the error and the screen shows the error path."""
        armed = self.faults.corrupt_bitstreams > 0
        data = super()._bitstream(src)
        if armed and data:
            data = bytes([data[0] ^ 0xC0]) + data[1:]
        return data


@dataclass
class _Tracked:
    entry: object
    queued_at: float


@dataclass
class _Commands:
    paused: bool = False
    step_budget: int = 0
    want_snapshot: bool = False
    quit: bool = False
    pending: list[str] = field(default_factory=list)
    stop_at: int | None = None      # hold (not paused) once this many events happened


class SimSource:
    """Decodes ``clip`` through the simulated device in a thread, for the TUI."""

    kind = "sim"
    in_process = True       # the decode shares this process's GIL (tui.run.run_app)

    def __init__(self, clip: Clip, *, loop: bool = True, seed: int = 0, watchdog_ms: int = 2000,
                 depth: int = 2, daemon_options: dict | None = None, realtime: bool = True,
                 clock: Callable[[], float] | None = None, start_paused: bool = False,
                 pace_fps: float | None = None,
                 on_picture: Callable[[object], None] | None = None) -> None:
        self.clip, self.loop, self.depth = clip, loop, depth
        self.daemon_options = daemon_options or {}
        self.realtime = realtime
        self.clock = clock or time.perf_counter
        self._step_clock = self.clock if isinstance(self.clock, StepClock) else None
        self.pace_fps = pace_fps
        # called in the worker with each Picture, whose data is borrowed: valid until it returns
        self.on_picture = on_picture
        self.sink: Callable[[Snapshot], None] = lambda snapshot: None
        # no digests, as the decode path (backends_runtime.open_decoder) and the module
        self.kernel = DrivenKernel(self, seed=seed, watchdog_ms=watchdog_ms, digest=False)
        self.kernel.subscribe(self._on_event)
        self.daemon: Daemon | None = None
        self._cond = threading.Condition()
        self._cmd = _Commands(paused=start_paused)
        self._attention = start_paused       # fast-path flag: anything for the worker?
        self._thread: threading.Thread | None = None
        # worker-only state
        self._seq = 0
        self._ring: deque[tuple] = deque(maxlen=EVENT_RING)
        self._important: deque[tuple] = deque(maxlen=IMPORTANT_RING)
        self._sent_seq = 0
        self._tracked: dict[int, _Tracked] = {}
        self._queued_at: dict[object, float] = {}
        self._recent: deque[InflightRow] = deque(maxlen=RECENT_DONE)
        self._fps = RateMeter()
        self._latency = LatencyWindow()
        self._run_start = self.clock()
        self._paused_total = 0.0
        self._pace_next = 0.0
        self._pictures = 0
        self.failed_pictures = 0
        self.loops = 0
        self.finished = False
        self.finished_at: float | None = None   # set before finished, on self.clock
        self.error: str | None = None
        self.daemon_state = "attached"

    # ------------------------------------------------------------------ UI thread API
    def start(self, sink: Callable[[Snapshot], None]) -> None:
        self.sink = sink
        self._thread = threading.Thread(target=self._run, name="daedalus-sim", daemon=True)
        self._thread.start()

    def _command(self, update: Callable[[_Commands], None]) -> None:
        with self._cond:
            update(self._cmd)
            self._attention = True
            self._cond.notify_all()

    def request_snapshot(self) -> None:
        self._command(lambda c: setattr(c, "want_snapshot", True))

    def set_paused(self, paused: bool) -> None:
        def update(c):
            c.paused, c.stop_at = paused, None
        self._command(update)

    def toggle_pause(self) -> None:
        def update(c):
            c.paused, c.stop_at = not c.paused, None
        self._command(update)

    def step(self, events: int = 1) -> None:
        """While paused: run until ``events`` more events happened."""
        def update(c):
            c.paused = True
            c.step_budget += events
        self._command(update)

    def run_until_event(self, count: int) -> None:
        """Run (not paused) and hold once ``count`` events happened: the way tests and
        snapshots get a running screen that does not change under them."""
        def update(c):
            c.paused, c.step_budget, c.stop_at = False, 0, count
        self._command(update)

    def inject(self, fault: str) -> None:
        check_fault(fault)
        self._command(lambda c: c.pending.append(fault))

    @property
    def paused(self) -> bool:
        return self._cmd.paused

    def stop(self, timeout: float = 5.0) -> None:
        self._command(lambda c: setattr(c, "quit", True))
        if self._thread is not None:
            self._thread.join(timeout)

    # ------------------------------------------------------------------ worker: the decode loop
    def _run(self) -> None:
        self._run_start = self.clock()
        handler = _WorkerLogHandler(self)
        logging.getLogger("daedalus_v4l2").addHandler(handler)
        try:
            self._attach_daemon()
            decoder = StatelessDecoder(self.kernel.syscalls(), self.kernel.video_path,
                                       self.kernel.media_path)
            try:
                for picture in decode_through(decoder, self.clip.codec, self.clip.width,
                                        self.clip.height, self._packets(), depth=self.depth,
                                        borrow=True):
                    self._pictures += 1
                    if picture.data is None:
                        self.failed_pictures += 1
                    if self.on_picture is not None:
                        self.on_picture(picture)
            finally:
                decoder.close()
        except Quit:
            pass
        except Exception as exc:  # shown on screen; the UI stays up until q
            log.exception("the simulated decode stopped")
            self.error = f"{type(exc).__name__}: {exc}"
            self._record(("worker_error", None, None, self.error))
        finally:
            self._close_daemon()
            logging.getLogger("daedalus_v4l2").removeHandler(handler)
        self.finished_at = self.clock()
        self.finished = True
        self._serve_until_quit()

    def _packets(self):
        for loop in itertools.count():
            self.loops = loop
            if loop and not self.loop:
                return
            for packet in self.clip.packets:
                if self.pace_fps:
                    self._pace()
                yield packet

    def _attach_daemon(self) -> None:
        self.daemon = Daemon(self.kernel.open_chardev(), **self.daemon_options)
        self.kernel.attach_daemon(self.daemon.step)
        self.daemon_state = "attached"

    def _close_daemon(self) -> None:
        try:
            if self.daemon is not None and not self.daemon.transport.closed:
                self.daemon.close()
                self.daemon.transport.close()
        except Exception as exc:  # an invariant the sim caught on the way out: show it
            log.exception("closing the daemon's chardev")
            self.error = self.error or f"{type(exc).__name__}: {exc}"

    def _serve_until_quit(self) -> None:
        """The decode is over (or failed): keep answering snapshot requests."""
        while True:
            with self._cond:
                while not (self._cmd.quit or self._cmd.want_snapshot or self._cmd.pending):
                    self._cond.wait()
                if self._cmd.quit:
                    return
                self._cmd.pending.clear()
                self._cmd.want_snapshot = False
            self.sink(self.snapshot())

    # ------------------------------------------------------------------ worker: checkpoints
    def _on_event(self, ev) -> None:
        # Called for every event the kernel emits (a dozen per picture): this is what
        # being watchable costs the decode, so it only records, and _record is inlined.
        kind, detail = ev.kind, ev.detail
        self._seq += 1
        if self._step_clock is not None:
            self._step_clock.advance()
        record = (self._seq, ev.clock, kind, ev.ctx_id, ev.cookie, detail)
        self._ring.append(record)
        if kind in IMPORTANT_KINDS or "rror" in detail:
            self._important.append(record)
        if kind == "request_queue":
            ctx = self.kernel.context_by_id(ev.ctx_id)
            if ctx is not None and ctx.out_q.ready.last() is not None:
                self._queued_at[ctx.out_q.ready.last()] = self.clock()
        elif kind == "device_run":
            entry = self.kernel.running
            if entry is not None:
                start = self._queued_at.pop(entry.src, None)
                self._tracked[entry.cookie] = _Tracked(entry, start or self.clock())
        elif kind == "complete":
            self._completed(ev.cookie)
        if self._attention:
            # The end of DQBUF is a consistent point too: a client that never has to
            # wait (every job failing at once) still reaches one.
            self._checkpoint(at_step=False, safe=kind == "dqbuf")

    def _record(self, event: tuple) -> None:
        self._seq += 1
        if self._step_clock is not None:
            self._step_clock.advance()
        record = (self._seq, self.kernel.clock) + event
        self._ring.append(record)
        if event[0] in IMPORTANT_KINDS or "rror" in str(event[3]):
            self._important.append(record)

    def _completed(self, cookie: int) -> None:
        tracked = self._tracked.pop(cookie, None)
        if tracked is None:
            return
        now = self.clock()
        entry = tracked.entry
        self._fps.tick(now)
        if not entry.error:
            self._latency.add(now - tracked.queued_at)
        self._recent.append(self._row(entry, set(), "error" if entry.error else "done"))

    def before_step(self, until: int | None) -> bool:
        """True if a command changed the kernel (a daemon killed or restarted)."""
        acted = self._checkpoint(at_step=True, safe=True) if self._attention else False
        if self.realtime:
            self._sync_clock()
            acted = self._wait_for_deadline(until) or acted
        return acted

    def _checkpoint(self, at_step: bool, safe: bool) -> bool:
        """Obey the UI.  ``at_step``: not an event (steps are counted in events);
        ``safe``: the kernel is consistent, so the daemon may be killed or
        restarted and the decode may be stopped."""
        acted = False
        with self._cond:
            if not at_step and self._cmd.step_budget:
                self._cmd.step_budget -= 1      # this event was one of the steps asked for
        while True:
            with self._cond:
                cmd = self._cmd
                if cmd.quit:
                    self._attention = True
                    if safe:
                        raise Quit()
                    return acted
                pending = self._take_pending(safe)
                snapshot, cmd.want_snapshot = cmd.want_snapshot, False
                paused = cmd.paused     # what the snapshot shows: read with the decision
                holding = (cmd.paused and not cmd.step_budget) or \
                    (cmd.stop_at is not None and self._seq >= cmd.stop_at and not at_step)
                if holding and not (pending or snapshot):
                    started = time.perf_counter()
                    self._cond.wait(0.5)
                    self._paused_total += time.perf_counter() - started
                    continue
                self._attention = cmd.paused or bool(cmd.pending) or cmd.want_snapshot or \
                    cmd.stop_at is not None
            for fault in pending:
                acted = self._apply(fault) or acted
            if snapshot or pending:
                self.sink(self.snapshot(paused))
            if not holding:
                return acted

    def _take_pending(self, safe: bool) -> list[str]:
        """Counter and flag faults apply anywhere; kill and restart need a safe point."""
        now, later = [], []
        for fault in self._cmd.pending:
            (now if safe or fault not in ("kill", "restart") else later).append(fault)
        self._cmd.pending = later
        return now

    def _apply(self, fault: str) -> bool:
        """Apply one fault; True if it changed what the kernel can do next."""
        faults, acted = self.kernel.faults, fault in ("kill", "restart", "stall")
        if fault == "drop":
            faults.drop_responses += 1
        elif fault == "corrupt":
            faults.corrupt_bitstreams += 1
        elif fault == "stall":
            faults.stall_daemon = not faults.stall_daemon
        elif fault == "kill" and self.kernel.chardev.is_open:
            faults.kill_daemon()
            self.daemon_state = "killed"
        elif fault == "restart" and not self.kernel.chardev.is_open:
            self._attach_daemon()
        self._record(("fault", None, None, {
            "drop": "drop the next response", "corrupt": "corrupt the next bitstream",
            "stall": "daemon stalled" if faults.stall_daemon else "daemon resumed",
            "kill": "daemon killed", "restart": "daemon restarted"}[fault]))
        return acted

    # ------------------------------------------------------------------ worker: real time
    def _sync_clock(self) -> None:
        ms = int((self.clock() - self._run_start - self._paused_total) * 1000)
        if ms > self.kernel.clock:
            self.kernel.clock = ms

    def _wait_for_deadline(self, until: int | None) -> bool:
        """When the next event would be a watchdog, let it come in real time."""
        k = self.kernel
        while not (k._daemon_can_run() and k.chardev.fifo):
            deadline = k.next_deadline()
            if deadline is None or (until is not None and deadline > until) \
                    or k.clock >= deadline:
                return False
            with self._cond:
                if not self._attention:
                    self._cond.wait(min(0.05, (deadline - k.clock) / 1000))
            if self._attention and self._checkpoint(at_step=True, safe=True):
                return True
            self._sync_clock()
        return False

    def _pace(self) -> None:
        """Feed packets at ``pace_fps`` a second, like a live source (the demo's --fps)."""
        now = time.perf_counter()
        self._pace_next = max(self._pace_next + 1.0 / self.pace_fps, now)
        while True:
            if self._attention:
                self._checkpoint(at_step=True, safe=True)
            ahead = self._pace_next - time.perf_counter()
            if ahead <= 0.001:
                return
            k = self.kernel
            if k._daemon_can_run() and k.chardev.fifo:
                k.step()        # the daemon works while the client waits for its next packet
                continue
            with self._cond:
                if not self._attention:
                    self._cond.wait(min(ahead, 0.05))

    # ------------------------------------------------------------------ worker: snapshots
    def _row(self, entry, fifo: set[int], state: str | None = None) -> InflightRow:
        if state is None:
            state = _entry_state(entry, fifo)
        return InflightRow(entry.cookie, entry.ctx.id, proto.CODEC_NAMES.get(entry.ctx.codec, "?"),
                           entry.frame, entry.src.index if entry.src is not None else None,
                           entry.dst.index, state, max(0, self.kernel.clock - entry.sent_at))

    def snapshot(self, paused: bool | None = None) -> Snapshot:
        """``paused``: as the worker read it when it decided to hold or go on (a pause
        asked for meanwhile shows in the next snapshot, with the event it held at)."""
        if paused is None:
            paused = self._cmd.paused
        k = self.kernel
        fifo = {cookie for cookie, _ in k.chardev.fifo}
        contexts = tuple(
            ContextView(ctx.id, proto.CODEC_NAMES.get(ctx.codec, "?"), ctx.frame,
                        _queue_view("OUTPUT", ctx.out_q), _queue_view("CAPTURE", ctx.cap_q))
            for ctx in k.contexts)
        rows = tuple(self._row(e, fifo) for e in k.inflight) + tuple(self._recent)
        s = k.stats
        now = self.clock()
        counters = Counters(self._fps.rate(now), self._latency.percentile(50),
                            self._latency.percentile(99), s.jobs, s.done, s.errors,
                            s.watchdog_expiries, s.parked_now, s.parked_max)
        events = tuple(LogEvent(*e) for e in self._ring if e[0] > self._sent_seq)
        if events and events[0].seq > self._sent_seq + 1:
            # The ring overflowed since the last snapshot: say how many events are not
            # shown, but show the errors and faults among them all the same.
            first = events[0].seq
            kept = tuple(LogEvent(*e) for e in self._important if self._sent_seq < e[0] < first)
            skipped = first - self._sent_seq - 1 - len(kept)
            events = kept + (LogEvent(first - 1, events[0].clock_ms, "skipped", None, None,
                                      f"{skipped} events between two screen updates not shown"),
                             ) + events
        self._sent_seq = self._seq
        return Snapshot("sim", k.clock, not paused, contexts, rows, counters, events,
                        self._status(), self._seq)

    def _status(self) -> str:
        k = self.kernel
        if not k.chardev.is_open:
            daemon = "daemon KILLED (r restarts)"
        elif k.faults.stall_daemon:
            daemon = "daemon STALLED"
        else:
            daemon = "daemon up"
        parts = [daemon]
        if k.faults.drop_responses:
            parts.append(f"drop {k.faults.drop_responses}")
        if k.faults.corrupt_bitstreams:
            parts.append(f"corrupt {k.faults.corrupt_bitstreams}")
        if self._cmd.pending:
            parts.append("pending " + ",".join(self._cmd.pending))
        parts.append(f"{self.clip.name} loop {self.loops}")
        if self.error:
            parts.append("STOPPED: " + self.error)
        elif self.finished:
            parts.append("finished")
        return " · ".join(parts)


class _WorkerLogHandler(logging.Handler):
    """Log lines of the kernel and daemon (the worker thread's) go to the event log."""

    def __init__(self, source: SimSource) -> None:
        super().__init__(logging.INFO)
        self.source = source
        self.thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            try:
                text = record.getMessage()
            except Exception:  # a bad format string must not stop the decode
                text = str(record.msg)
            self.source._record(("log", None, None, f"{record.levelname.lower()}: {text}"))


def _entry_state(entry, fifo: set[int]) -> str:
    state = entry.state
    if state is EntryState.SENT:
        return "sent" if entry.cookie in fifo else "decoding"
    if state is EntryState.READY:
        return "error" if entry.error else "done"
    return state.value


def _queue_view(name: str, q) -> QueueView:
    return QueueView(name, q.streaming, tuple(BufferView(b.index, b.state.value)
                                              for b in q.buffers))
