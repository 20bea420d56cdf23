"""The hw view: the module's debugfs files and the daemon's state socket, polled.

debugfs (kernel/dv-debugfs.c) has, per in-flight entry, one line
``cookie ctx codec out_idx cap_idx state age_ms`` in ``daedalus_v4l2/inflight``,
``name value`` lines in ``daedalus_v4l2/counters``, and per open context its
two vb2 queues in ``daedalus_v4l2/queues``: ``ctx <id> <codec> OUT|CAP on|off
<index>:<state> ...``.  A buffer the driver holds (vb2 "active") is shown as
what the in-flight entry holding it says: claimed, parked, held, or error
(the picture failed and waits for earlier ones to complete).  The
daemon's socket (daedalus_v4l2.state_socket) adds frame numbers, which
requests it is decoding, latency, fps and its recent messages.  A module
without the queues file (older builds) still gets a view: the buffers the
in-flight entries hold.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from daedalus_v4l2.state_socket import StateClient

from .model import (BufferView, ContextView, Counters, InflightRow, LogEvent, QueueView,
                    Snapshot)

DEBUGFS = "/sys/kernel/debug/daedalus_v4l2"
# debugfs entry state -> the CAPTURE buffer's state (the module keeps the dst on the entry)
_CAPTURE_STATE = {"sent": "claimed", "parked": "parked", "held": "held", "ready": "done",
                  "error": "error"}


@dataclass(frozen=True)
class DebugfsEntry:
    cookie: int
    ctx: int
    codec: str
    out_idx: int
    cap_idx: int
    state: str
    age_ms: int


def parse_inflight(text: str) -> list[DebugfsEntry]:
    """``%llu %u %s %u %u %s %u`` per line (dv_inflight_show)."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 7:
            raise ValueError(f"inflight line {number}: expected 7 fields, got {line!r}")
        cookie, ctx, codec, out_idx, cap_idx, state, age = fields
        entries.append(DebugfsEntry(int(cookie), int(ctx), codec, int(out_idx), int(cap_idx),
                                    state, int(age)))
    return entries


@dataclass(frozen=True)
class DebugfsQueue:
    ctx: int
    codec: str
    name: str                       # "OUT" or "CAP"
    streaming: bool
    buffers: tuple[tuple[int, str], ...]   # (index, vb2 state)


def parse_queues(text: str) -> list[DebugfsQueue]:
    """``ctx %u %s OUT|CAP on|off [%u:%s ...]`` per line (dv_queues_show)."""
    queues = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) < 5 or fields[0] != "ctx" or fields[3] not in ("OUT", "CAP") \
                or fields[4] not in ("on", "off"):
            raise ValueError(f"queues line {number}: {line!r}")
        buffers = []
        for cell in fields[5:]:
            index, _, state = cell.partition(":")
            if not index.isdigit() or not state:
                raise ValueError(f"queues line {number}: buffer {cell!r}")
            buffers.append((int(index), state))
        queues.append(DebugfsQueue(int(fields[1]), fields[2], fields[3], fields[4] == "on",
                                   tuple(buffers)))
    return queues


def parse_counters(text: str) -> dict[str, int]:
    """``name value`` per line (dv_counters_show)."""
    counters = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, _, value = line.partition(" ")
        try:
            counters[name] = int(value)
        except ValueError:
            raise ValueError(f"counters line {number}: {line!r}") from None
    return counters


class HwSource:
    """Polls debugfs and the daemon socket in a thread, one poll per snapshot request."""

    kind = "hw"

    def __init__(self, debugfs: str = DEBUGFS, socket_path: str | None = None) -> None:
        self.debugfs = Path(debugfs)
        self.socket_path = socket_path
        self.sink = lambda snapshot: None
        self._wake = threading.Condition()
        self._want = False
        self._quit = False
        self._thread: threading.Thread | None = None
        self._client: StateClient | None = None
        self._since = 0
        self._seq = 0
        self._last_counters: dict[str, int] = {}
        self._last_cookies: set[int] = set()

    # UI-thread API (what SimSource has, minus the sim's controls)
    def start(self, sink) -> None:
        self.sink = sink
        self._thread = threading.Thread(target=self._run, name="daedalus-hw", daemon=True)
        self._thread.start()

    def request_snapshot(self) -> None:
        with self._wake:
            self._want = True
            self._wake.notify()

    def stop(self, timeout: float = 2.0) -> None:
        with self._wake:
            self._quit = True
            self._wake.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    paused = False

    def toggle_pause(self) -> None: ...
    def step(self, events: int = 1) -> None: ...
    def inject(self, fault: str) -> None: ...

    # ------------------------------------------------------------------ thread
    def _run(self) -> None:
        while True:
            with self._wake:
                while not (self._want or self._quit):
                    self._wake.wait()
                if self._quit:
                    break
                self._want = False
            self.sink(self.snapshot())
        if self._client is not None:
            self._client.close()

    def _read(self, name: str) -> str | None:
        try:
            return (self.debugfs / name).read_text()
        except OSError:
            return None

    def _daemon_state(self) -> dict | None:
        if not self.socket_path:
            return None
        try:
            if self._client is None:
                self._client = StateClient(self.socket_path)
            state = self._client.query(self._since)
        except (OSError, ValueError):
            if self._client is not None:
                self._client.close()
            self._client = None
            return None
        self._since = state.get("seq", self._since)
        return state

    def snapshot(self) -> Snapshot:
        inflight_text, counters_text = self._read("inflight"), self._read("counters")
        queues_text = self._read("queues")
        entries = parse_inflight(inflight_text) if inflight_text is not None else []
        counters = parse_counters(counters_text) if counters_text is not None else {}
        queues = parse_queues(queues_text) if queues_text is not None else None
        daemon = self._daemon_state()
        return build_snapshot(self, entries, counters, daemon,
                              debugfs_ok=inflight_text is not None, queues=queues)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq


def build_snapshot(source: HwSource, entries: list[DebugfsEntry], counters: dict[str, int],
                   daemon: dict | None, debugfs_ok: bool = True,
                   queues: list[DebugfsQueue] | None = None) -> Snapshot:
    pending = {p["cookie"]: p for p in (daemon or {}).get("pending", [])}
    rows = []
    for e in entries:
        known = pending.get(e.cookie)
        state = e.state
        if state == "sent" and known is not None:
            state = "decoding"          # the daemon has read the DECODE
        elif state == "ready":
            state = "done"
        rows.append(InflightRow(e.cookie, e.ctx, e.codec, known["frame"] if known else None,
                                e.out_idx, e.cap_idx, state, e.age_ms))
    contexts = _contexts(entries, daemon) if queues is None else \
        _contexts_from_queues(queues, entries, daemon)
    events = _events(source, counters, entries, daemon)
    latency = (daemon or {}).get("latency_ms", {})
    shown = Counters(float((daemon or {}).get("fps", 0.0)), latency.get("p50"), latency.get("p99"),
                     counters.get("jobs", 0), counters.get("done", 0), counters.get("errors", 0),
                     counters.get("watchdog_expiries", 0), counters.get("parked_now", 0),
                     counters.get("parked_max", 0))
    status = [f"debugfs {source.debugfs}" if debugfs_ok else f"no debugfs at {source.debugfs}",
              f"daemon pid {daemon['pid']}" if daemon else
              ("no daemon socket" if not source.socket_path else f"no daemon at {source.socket_path}")]
    return Snapshot("hw", 0, True, contexts, tuple(rows), shown, events, " · ".join(status),
                    source._seq)


def _contexts(entries: list[DebugfsEntry], daemon: dict | None) -> tuple[ContextView, ...]:
    ids = sorted({e.ctx for e in entries} |
                 {s["stream"] for s in (daemon or {}).get("sessions", [])})
    views = []
    for ctx in ids:
        mine = [e for e in entries if e.ctx == ctx]
        outs = tuple(BufferView(e.out_idx, "claimed") for e in mine if e.state == "sent")
        caps = tuple(BufferView(e.cap_idx, _CAPTURE_STATE.get(e.state, "claimed")) for e in mine)
        codec = mine[0].codec if mine else "?"
        views.append(ContextView(ctx, codec, _frames(daemon, ctx),
                                 QueueView("OUTPUT", True, tuple(sorted(outs, key=_index))),
                                 QueueView("CAPTURE", True, tuple(sorted(caps, key=_index)))))
    return tuple(views)


def _contexts_from_queues(queues: list[DebugfsQueue], entries: list[DebugfsEntry],
                          daemon: dict | None) -> tuple[ContextView, ...]:
    """Every open context with all its buffers; "active" ones named after the
    in-flight entry that holds them."""
    holder = {("OUT", e.ctx, e.out_idx): "claimed" for e in entries if e.state == "sent"}
    holder.update({("CAP", e.ctx, e.cap_idx): _CAPTURE_STATE.get(e.state, "claimed")
                   for e in entries})
    by_ctx: dict[int, dict[str, DebugfsQueue]] = {}
    for q in queues:
        by_ctx.setdefault(q.ctx, {})[q.name] = q
    views = []
    for ctx, pair in sorted(by_ctx.items()):
        shown = {}
        for name, label in (("OUT", "OUTPUT"), ("CAP", "CAPTURE")):
            q = pair.get(name)
            buffers = () if q is None else tuple(
                BufferView(index, holder.get((name, ctx, index), "claimed")
                           if state == "active" else state)
                for index, state in q.buffers)
            shown[name] = QueueView(label, q is not None and q.streaming, buffers)
        codec = next(iter(pair.values())).codec
        views.append(ContextView(ctx, codec, _frames(daemon, ctx), shown["OUT"], shown["CAP"]))
    return tuple(views)


def _frames(daemon: dict | None, ctx: int) -> int:
    """The newest frame number the daemon is decoding for ``ctx`` (0: none)."""
    return max((p["frame"] for p in (daemon or {}).get("pending", []) if p["stream"] == ctx),
               default=0)


def _index(buf: BufferView) -> int:
    return buf.index


def _events(source: HwSource, counters: dict[str, int], entries: list[DebugfsEntry],
            daemon: dict | None) -> tuple[LogEvent, ...]:
    events = []
    for e in (daemon or {}).get("events", []):
        events.append(LogEvent(source._next_seq(), e["t_ms"], e["kind"], e["stream"], e["cookie"],
                               e["detail"]))
    for name in ("errors", "watchdog_expiries", "rejected_messages", "unknown_cookie"):
        delta = counters.get(name, 0) - source._last_counters.get(name, 0)
        if source._last_counters and delta > 0:
            events.append(LogEvent(source._next_seq(), 0, "kernel", None, None, f"{name} +{delta}"))
    source._last_counters = counters
    cookies = {e.cookie for e in entries}
    for e in entries:
        if e.cookie not in source._last_cookies:
            events.append(LogEvent(source._next_seq(), 0, "inflight", e.ctx, e.cookie,
                                   f"{e.state} out {e.out_idx} cap {e.cap_idx}"))
    source._last_cookies = cookies
    return tuple(events)
