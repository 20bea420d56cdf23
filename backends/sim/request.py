"""Media requests: an OUTPUT buffer and the controls that go with it, queued as one."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ...errors import InvariantError

class ReqState(enum.Enum):
    IDLE = "idle"          # being filled: controls and a buffer may be bound
    QUEUED = "queued"      # validated, its buffer is on the OUTPUT ready queue
    COMPLETE = "complete"  # its buffer came back, and its picture; poll gives POLLPRI


@dataclass(eq=False)
class MediaRequest:
    id: int  # numbered per SimKernel, so a fresh kernel replays identically
    state: ReqState = ReqState.IDLE
    buffer: object = None                              # the bound Vb2Buffer (one per request)
    controls: dict[int, bytes] = field(default_factory=dict)
    ctx: object = None                                 # the SimContext that bound something
    buffer_returned: bool = False
    # The driver's own object (the module's dv_bind_picture), bound at device_run unless
    # the request's CAPTURE buffer is held: the request completes with its picture, not
    # when the OUTPUT buffer comes back, which for a parked job is long before.
    picture_pending: bool = False

    def bind_buffer(self, buf) -> None:
        if self.buffer is not None:
            raise InvariantError(f"request {self.id} already has {self.buffer.name}")
        self.buffer = buf

    def unbind_buffer(self, buf) -> None:
        if self.buffer is not buf:
            raise InvariantError(f"request {self.id}: {buf.name} is not bound to it")
        self.buffer = None

    def complete_buffer(self) -> None:
        """The OUTPUT buffer was returned (DONE or ERROR)."""
        self._check_queued("its buffer came back")
        self.buffer_returned = True
        self._complete_if_done()

    def bind_picture(self) -> None:
        """device_run: the request now also waits for its picture."""
        self._check_queued("a picture was bound")
        self.picture_pending = True

    def complete_picture(self) -> None:
        """The request's CAPTURE buffer completed (DONE or ERROR)."""
        self._check_queued("its picture completed")
        if not self.picture_pending:
            raise InvariantError(f"request {self.id}: a picture completed that was not bound")
        self.picture_pending = False
        self._complete_if_done()

    def _check_queued(self, what: str) -> None:
        if self.state is not ReqState.QUEUED:
            raise InvariantError(f"request {self.id}: {what} while {self.state.value}")

    def _complete_if_done(self) -> None:
        if self.buffer_returned and not self.picture_pending:
            self.state = ReqState.COMPLETE

    def reinit(self) -> None:
        self.state = ReqState.IDLE
        self.buffer = None
        self.controls = {}
        self.ctx = None
        self.buffer_returned = self.picture_pending = False


def release_request(buf) -> None:
    """vb2 unbinds a buffer from its request when userspace gets the buffer back."""
    req, buf.request, buf.request_fd = buf.request, None, -1
    if req is not None and req.buffer is buf:
        req.unbind_buffer(buf)
