"""In-flight entries: one per job, from device_run until its CAPTURE buffer completes."""
from __future__ import annotations

import enum
from dataclasses import dataclass

from .context import SimContext
from .request import MediaRequest
from .vb2 import Vb2Buffer


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
    error: bool = False            # sticky: over the slices of a held picture too
    bytesused: int = 0             # the buffer's size until a FRAME says otherwise
    request: MediaRequest | None = None  # src's request, until the picture completes it

    @property
    def ctx_id(self) -> int:
        return self.ctx.id

    @property
    def context(self) -> SimContext:
        return self.ctx

    def __repr__(self) -> str:
        return (f"<InflightEntry cookie={self.cookie} ctx={self.ctx.id} {self.state.value} "
                f"src={self.src!r} dst={self.dst!r} frame={self.frame}>")
