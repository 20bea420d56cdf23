"""The daemon's write-behind stage: a thread that sends everything the daemon says, in order.

With ``Daemon(write_behind=True)`` (``daemon --backend hw`` by default, and the sim's
daemon in its own thread) the daemon's own thread only reads
requests and feeds libavcodec; what it answers goes to this writer, which
sends it in the order it was given:

* ``SRC_CONSUMED`` as soon as a request's bitstream is the session's (it came
  in the DECODE), *before* libavcodec decodes it.  Sent while libavcodec
  decodes, it finishes the m2m job and the kernel sends the next DECODE
  meanwhile: the job is *parked* (contract 2 in DESIGN.md), as a pipelined
  decoder's is.  Its request still completes only with the picture (the kernel
  binds an object of its own to it), so any client can take a completed request
  for a decoded picture.
* The picture: copied into its CAPTURE buffer here (``pixels.pack_frame``),
  then ``HAS_PIXELS``, while libavcodec decodes the next request.
* Everything else (errors, ``FLUSH_DONE``, ``PONG``), after what came before.

The thread runs as SCHED_BATCH (threads.py): its wake-ups never preempt one of
libavcodec's workers in the middle of a picture.

The copy and libavcodec's decode both run without the GIL, so on two cores
each fills the time the other leaves a core idle, and the kernel's work for a
response (the next job, its DECODE) is off the path between two decodes.
Unlike a frame-threaded decoder's parked picture, a picture being written
needs nothing more from the client, so a client that waits for each picture
never stalls.  The kernel completes CAPTURE buffers in decode order.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from . import proto
from .threads import schedule_as_batch

log = logging.getLogger(__name__)

# a picture's write, or a message as it is; None: nothing to send (the picture's job
# was cancelled while it waited)
Write = Callable[[], proto.AnyMessage | None]


class PictureWriter:
    """Runs ``write`` callables in order in one thread and sends what each returns
    (the pictures' writes, and every other message of the daemon's in its turn)."""

    def __init__(self, send: Callable[[proto.AnyMessage], None]) -> None:
        self._send = send
        self._writes: deque[Write] = deque()
        self._cond = threading.Condition()
        self._unsent = 0          # writes put and not yet sent
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="daedalus-v4l2 writer", daemon=True)
        self._thread.start()

    def put(self, write: Write) -> None:
        with self._cond:
            if self._stopping:
                raise RuntimeError("the picture writer is stopped")
            self._writes.append(write)
            self._unsent += 1
            self._cond.notify_all()

    @property
    def unsent(self) -> int:
        return self._unsent

    def wait(self, timeout: float | None = None) -> bool:
        """Until everything put so far is sent; False if ``timeout`` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._unsent, timeout)

    def stop(self, timeout: float = 10.0) -> bool:
        """Send what is queued, then end the thread; False if it is still running
        after ``timeout``."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("the picture writer did not stop within %.0f s", timeout)
            return False
        return True

    def _run(self) -> None:
        schedule_as_batch()     # its wake-ups never preempt libavcodec's workers (threads.py)
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._writes or self._stopping)
                if not self._writes:
                    return                      # stopping, and nothing left to write
                write = self._writes.popleft()
            try:
                msg = write()
                if msg is not None:
                    self._send(msg)
            except Exception:  # a write never takes the writer down: the next one still goes
                log.exception("the picture writer: a write failed")
            finally:
                del write   # not kept (a picture, its session) while waiting for the next
                with self._cond:
                    self._unsent -= 1
                    self._cond.notify_all()
