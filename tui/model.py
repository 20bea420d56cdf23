"""What the TUI shows, as immutable values: one ``Snapshot`` per screen update.

A source (the in-process simulation, or debugfs plus the daemon's socket on
hw) builds these in its own thread and posts them to the app; widgets only
ever see these values, never the objects they were read from.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from textual.message import Message

# Buffer states as the issue names them (vb2 ACTIVE is "claimed").
BUFFER_STATES = ("dequeued", "queued", "claimed", "parked", "held", "done", "error")
# In-flight states: sent (DECODE queued), decoding (the daemon read it), parked,
# held, done / error (picture ready, completing in decode order).
ENTRY_STATES = ("sent", "decoding", "parked", "held", "done", "error")


@dataclass(frozen=True)
class BufferView:
    index: int
    state: str


@dataclass(frozen=True)
class QueueView:
    name: str                      # "OUTPUT" or "CAPTURE"
    streaming: bool
    buffers: tuple[BufferView, ...]


@dataclass(frozen=True)
class ContextView:
    id: int
    codec: str
    frame: int                     # pictures started
    output: QueueView
    capture: QueueView


@dataclass(frozen=True)
class InflightRow:
    cookie: int
    ctx: int
    codec: str
    frame: int | None              # None where the source does not know it
    out_index: int | None          # None once the OUTPUT buffer went back
    cap_index: int
    state: str
    age_ms: int


@dataclass(frozen=True)
class Counters:
    fps: float = 0.0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    jobs: int = 0
    done: int = 0
    errors: int = 0
    watchdog_expiries: int = 0
    parked_now: int = 0
    parked_max: int = 0


@dataclass(frozen=True)
class LogEvent:
    seq: int
    clock_ms: int                  # the kernel's clock (virtual ms in the sim)
    kind: str
    ctx: int | None
    cookie: int | None
    detail: str

    @property
    def is_error(self) -> bool:
        return self.kind in ("fail", "dropped", "reject", "daemon_gone", "worker_error") or \
            "ERROR" in self.detail or "error" in self.detail

    def line(self) -> str:
        ctx = f"ctx{self.ctx}" if self.ctx is not None else "    "
        cookie = f"#{self.cookie}" if self.cookie is not None else ""
        return f"{self.clock_ms:>7} {ctx:<5} {self.kind:<13} {cookie:<6} {self.detail}"


@dataclass(frozen=True)
class Snapshot:
    source: str                            # "sim" or "hw"
    clock_ms: int
    running: bool                          # False when paused (sim)
    contexts: tuple[ContextView, ...] = ()
    inflight: tuple[InflightRow, ...] = ()
    counters: Counters = field(default_factory=Counters)
    events: tuple[LogEvent, ...] = ()      # new since the previous snapshot
    status: str = ""                       # one line: daemon state, faults armed, loop ...
    events_total: int = 0                  # events seen so far (the step counter)


@dataclass
class SnapshotReady(Message):
    """Posted by a source's thread: the next thing to show."""
    snapshot: Snapshot
