"""What the simulation reports (stats, events) and the faults it can inject."""
from __future__ import annotations

from dataclasses import dataclass, field


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
    _kernel: object = field(default=None, repr=False)   # the SimKernel

    def __setattr__(self, name: str, value) -> None:
        super().__setattr__(name, value)
        kernel = getattr(self, "_kernel", None)
        if name == "stall_daemon" and kernel is not None:
            kernel.wake_daemon()        # a stall lifted: the daemon thread reads at once

    def kill_daemon(self) -> None:
        """Close the chardev as if the daemon process died."""
        with self._kernel.lock:     # the daemon may be in its own thread
            self._kernel.chardev.kill()
