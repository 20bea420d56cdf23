"""videobuf2 in miniature: buffers, their states, the lists they sit on, a ledger.

The real vb2 trusts its callers; a driver that puts a buffer on two lists or
completes it twice corrupts memory and crashes later, far from the bug.  Here
every list operation and state change is checked and raises InvariantError
at the faulty call, so a bookkeeping bug shows up where it is made.
"""
from __future__ import annotations

import enum
import functools
import itertools
from dataclasses import dataclass, field

from ...errors import InvariantError
from ...v4l2 import uapi

# CAPTURE mmap offsets carry this bit, as v4l2-mem2mem's DST_QUEUE_OFF_BASE, so
# one offset space on the video node names the buffers of both queues.
DST_QUEUE_OFF_BASE = 1 << 30
PAGE_SIZE = 4096
MAX_BUFFERS = 32


class BufState(enum.Enum):
    DEQUEUED = "dequeued"      # owned by userspace
    IN_REQUEST = "in_request"  # QBUF'd into a request that is not queued yet
    QUEUED = "queued"          # owned by the driver, on an m2m ready queue
    ACTIVE = "claimed"         # taken by device_run for a job
    PARKED = "parked"          # src consumed, picture not ready: stays on the in-flight entry
    HELD = "held"              # M2M_HOLD_CAPTURE_BUF: kept for the next slice of its picture
    DONE = "done"              # on the done list, waiting for DQBUF
    ERROR = "error"            # on the done list with V4L2_BUF_FLAG_ERROR

    # Hashed by identity, in C: Enum's own __hash__ is a Python call, and every
    # state change looks its states up in sets (~20 times a picture).
    __hash__ = object.__hash__


# Which state changes are legal.  Anything else is a driver bug: e.g. DONE ->
# DONE is "a buffer returned twice", PARKED -> ACTIVE is "claimed twice".
_TRANSITIONS = {
    BufState.DEQUEUED: {BufState.IN_REQUEST, BufState.QUEUED},
    BufState.IN_REQUEST: {BufState.QUEUED, BufState.DEQUEUED},
    BufState.QUEUED: {BufState.ACTIVE, BufState.DONE, BufState.ERROR},
    BufState.ACTIVE: {BufState.PARKED, BufState.HELD, BufState.DONE, BufState.ERROR},
    BufState.PARKED: {BufState.DONE, BufState.ERROR},
    BufState.HELD: {BufState.ACTIVE, BufState.DONE, BufState.ERROR},
    BufState.DONE: {BufState.DEQUEUED},
    BufState.ERROR: {BufState.DEQUEUED},
}
DRIVER_OWNED = frozenset({BufState.QUEUED, BufState.ACTIVE, BufState.PARKED, BufState.HELD})
_serial = itertools.count(1)


def is_output(buf_type: int) -> bool:
    return buf_type == uapi.V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE


@dataclass(eq=False)
class Vb2Buffer:
    """One vb2 buffer: its state, the one list it may be on, and its memory."""
    queue: "Vb2Queue"
    index: int
    length: int
    mem_offset: int
    mem: object = field(repr=False, default=None)   # a writable buffer (zeroed_memory)
    state: BufState = BufState.DEQUEUED
    list: "BufList | None" = field(default=None, repr=False)
    serial: int = field(default_factory=lambda: next(_serial))
    bytesused: int = 0
    flags: int = 0               # client flags of the last QBUF (HOLD_CAPTURE_BUF)
    timestamp_ns: int = 0
    sequence: int = 0
    error: bool = False          # sticky over the slices of a held picture
    request: object = None       # the MediaRequest it was queued with (OUTPUT)
    request_fd: int = -1

    def __post_init__(self):
        if self.mem is None:
            self.mem = zeroed_memory(self.length)

    def __repr__(self) -> str:
        return f"<{self.name} {self.state.value}>"

    @functools.cached_property
    def name(self) -> str:
        """As the checks and the events name it (its queue and index never change)."""
        kind = "OUTPUT" if self.queue.is_output else "CAPTURE"
        return f"{kind}[{self.index}]@ctx{self.queue.ctx_id}"

    def set_state(self, new: BufState) -> None:
        if new not in _TRANSITIONS[self.state]:
            raise InvariantError(f"{self.name}: illegal state change {self.state.value} -> "
                                 f"{new.value}{_hint(self.state, new)}")
        self.state = new


def zeroed_memory(length: int):
    """A buffer's memory, zero as vb2-vmalloc's, from the C heap (calloc): pages
    never used before are zeroed by the OS when first touched, so REQBUFS costs
    nothing up front for memory no picture writes; reused ones are cleared.  A
    buffer's memory goes back to the heap once nothing views it, and the next
    context's buffers find it mapped (``heap.keep_freed_memory``).  An mmap of
    each buffer's own faulted every 4 KiB of every buffer of every context: 2 ms
    a 1080p buffer on the EPYC VM and 0.5 ms more to unmap it, some 30 ms of a
    150-picture decode (a bytearray clears every byte up front: 16 1080p
    buffers took 33 ms in a fresh process)."""
    from ..._native import ffi
    return ffi.buffer(_heap_allocator()("uint8_t[]", length)) if length else bytearray()


@functools.cache
def _heap_allocator():
    from ..._native import ffi, lib
    return ffi.new_allocator(lib.dv_zeroed, lib.free, should_clear_after_alloc=False)


def _hint(old: BufState, new: BufState) -> str:
    if new in (BufState.DONE, BufState.ERROR) and old in (BufState.DONE, BufState.ERROR):
        return " (buffer returned twice)"
    if new is BufState.ACTIVE:
        return " (buffer claimed twice)"
    if new in (BufState.QUEUED, BufState.IN_REQUEST):
        return " (queued while not owned by userspace)"
    return ""


class BufList:
    """A list_head: a buffer is on at most one list, and list_del checks it is on this one."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._items: list[Vb2Buffer] = []

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self):
        return iter(list(self._items))

    def __contains__(self, buf: Vb2Buffer) -> bool:
        return buf.list is self

    def first(self) -> Vb2Buffer | None:
        return self._items[0] if self._items else None

    def last(self) -> Vb2Buffer | None:
        return self._items[-1] if self._items else None

    def add_tail(self, buf: Vb2Buffer) -> None:
        if buf.list is not None:
            raise InvariantError(f"list_add of {buf.name} to {self.name}: it is already on "
                                 f"{buf.list.name} (a buffer on two lists)")
        buf.list = self
        self._items.append(buf)

    def del_(self, buf: Vb2Buffer) -> None:
        if buf.list is not self:
            where = buf.list.name if buf.list is not None else "no list"
            raise InvariantError(f"list_del of {buf.name} from {self.name}, but it is on {where}"
                                 " (a second list_del)")
        buf.list = None
        self._items.remove(buf)


class Vb2Queue:
    """One vb2 queue of a context: its buffers, streaming flag, done list."""

    def __init__(self, ctx_id: int, buf_type: int) -> None:
        self.ctx_id = ctx_id
        self.type = buf_type
        self.is_output = is_output(buf_type)   # looked up several times a request
        self.buffers: list[Vb2Buffer] = []
        self.streaming = False
        self.sequence = 0
        kind = "out" if is_output(buf_type) else "cap"
        # The m2m ready queue (v4l2_m2m_ctx.{out,cap}_q_ctx.rdy_queue) and vb2's done_list.
        self.ready = BufList(f"ctx{ctx_id}.{kind}_rdy_queue")
        self.done = BufList(f"ctx{ctx_id}.{kind}_done_list")

    def allocate(self, count: int, length: int) -> None:
        base = 0 if self.is_output else DST_QUEUE_OFF_BASE
        step = (length + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE
        self.buffers = [Vb2Buffer(self, i, length, base + i * step) for i in range(count)]

    def by_offset(self, offset: int) -> Vb2Buffer | None:
        return next((b for b in self.buffers if b.mem_offset == offset), None)

    def busy(self) -> bool:
        """vb2_is_busy: buffers exist, so the format may not change."""
        return bool(self.buffers)


@dataclass
class LedgerEntry:
    serial: int
    name: str
    queued_at: int


class Ledger:
    """Every QBUF'd buffer not yet back: the "nothing lost" contract, checkable.  Only
    the outstanding ones are kept: a decode that runs for hours queues millions."""

    def __init__(self) -> None:
        self._outstanding: dict[int, LedgerEntry] = {}
        self._seq = itertools.count()

    def queued(self, buf: Vb2Buffer) -> None:
        if buf.serial in self._outstanding:
            raise InvariantError(f"{buf.name} queued again before it came back")
        self._outstanding[buf.serial] = LedgerEntry(buf.serial, buf.name, next(self._seq))

    def returned(self, buf: Vb2Buffer, how: str) -> None:
        if self._outstanding.pop(buf.serial, None) is None:
            raise InvariantError(f"{buf.name} returned to userspace ({how}) but was not "
                                 "outstanding (buffer returned twice)")

    def outstanding(self) -> list[LedgerEntry]:
        return list(self._outstanding.values())

    def check_all_returned(self) -> None:
        left = self.outstanding()
        if left:
            raise InvariantError("buffers never returned: " + ", ".join(e.name for e in left))
