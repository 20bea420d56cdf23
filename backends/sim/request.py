"""Media requests: an OUTPUT buffer and the controls that go with it, queued as one."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ...errors import InvariantError

class ReqState(enum.Enum):
    IDLE = "idle"          # being filled: controls and a buffer may be bound
    QUEUED = "queued"      # validated, its buffer is on the OUTPUT ready queue
    COMPLETE = "complete"  # its buffer came back; poll gives POLLPRI


@dataclass(eq=False)
class MediaRequest:
    id: int  # numbered per SimKernel, so a fresh kernel replays identically
    state: ReqState = ReqState.IDLE
    buffer: object = None                              # the bound Vb2Buffer (one per request)
    controls: dict[int, bytes] = field(default_factory=dict)
    ctx: object = None                                 # the SimContext that bound something

    def bind_buffer(self, buf) -> None:
        if self.buffer is not None:
            raise InvariantError(f"request {self.id} already has {self.buffer.name}")
        self.buffer = buf

    def unbind_buffer(self, buf) -> None:
        if self.buffer is not buf:
            raise InvariantError(f"request {self.id}: {buf.name} is not bound to it")
        self.buffer = None

    def complete(self) -> None:
        """The OUTPUT buffer was returned (DONE or ERROR): the request is done."""
        if self.state is not ReqState.QUEUED:
            raise InvariantError(f"request {self.id} completed while {self.state.value}")
        self.state = ReqState.COMPLETE

    def reinit(self) -> None:
        self.state = ReqState.IDLE
        self.buffer = None
        self.controls = {}
        self.ctx = None


def release_request(buf) -> None:
    """vb2 unbinds a buffer from its request when userspace gets the buffer back."""
    req, buf.request, buf.request_fd = buf.request, None, -1
    if req is not None and req.buffer is buf:
        req.unbind_buffer(buf)
