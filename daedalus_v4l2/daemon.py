"""The decoder daemon: requests in from a Transport, pictures out into CAPTURE memory.

It is the same code on every backend: ``step()`` handles one message, so the
simulated kernel can drive it one event at a time, and ``run()`` loops over
``step()`` for the real chardev.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from . import proto
from .errors import UnsupportedError
from .session import DecoderSession, error_response, open_session, unexpected_error_response
from .transport import Transport
from .writer import PictureWriter

log = logging.getLogger(__name__)

WRITER_WAIT = 10.0  # s: how long closing a stream or the daemon waits for the writer


@dataclass
class DaemonStats:
    requests: int = 0
    pictures: int = 0
    errors: int = 0
    streams_opened: int = 0
    streams_closed: int = 0
    send_failures: int = 0


class Daemon:
    """``write_behind``: pictures are written into CAPTURE memory by a thread of
    their own while libavcodec decodes the next request, and every message to
    the kernel goes out through that thread, in order (writer.py); for a daemon
    that runs in a thread of its own, not for one stepped inline.  The kernel
    completes each request with its picture, so any client works with it
    (docs/driver-model.md, Jobs)."""

    def __init__(self, transport: Transport, observer=None, *, write_behind: bool = False,
                 **session_options) -> None:
        self.transport = transport
        # Optional hook (state_socket.StateRecorder): on_message/on_response per message.
        self.observer = observer
        if observer is not None:
            observer.daemon = self
        self.session_options = session_options
        self.sessions: dict[int, DecoderSession] = {}
        self.stats = DaemonStats()
        # with a writer, only its thread sends (_send); else only the daemon's
        self.writer = PictureWriter(self._send) if write_behind else None

    # ------------------------------------------------------------------ loop
    def step(self, timeout: float | None = 0) -> bool:
        """Handle at most one message; False if none came within ``timeout``."""
        msg = self.transport.receive(timeout)
        if msg is None:
            return False
        self.handle(msg)
        return True

    def run(self, stop: threading.Event | None = None, poll_interval: float = 0.2) -> None:
        stop = stop or threading.Event()
        while not stop.is_set():
            self.step(poll_interval)

    def close(self) -> None:
        """Close every session still open (a daemon that stops, a sim torn down),
        after the pictures being written behind are sent."""
        for stream_id in list(self.sessions):
            self._on_close(stream_id)
        if self.writer is not None:
            self.writer.stop(WRITER_WAIT)

    def wait_written(self, timeout: float | None = None) -> bool:
        """Until everything handed to the writer is sent (True at once without a
        writer); False if ``timeout`` passed first."""
        return self.writer is None or self.writer.wait(timeout)

    # ------------------------------------------------------------------ messages
    def handle(self, msg: proto.AnyMessage) -> None:
        if self.observer is not None:
            self.observer.on_message(msg)
        if isinstance(msg, proto.DecodeRequest):
            self._on_decode(msg)
        elif isinstance(msg, proto.StreamOpen):
            self._on_open(msg)
        elif msg.type == proto.MSG_STREAM_CLOSE:
            self._on_close(msg.stream_id)
        elif msg.type == proto.MSG_FLUSH:
            self._on_flush(msg.stream_id)
        elif msg.type == proto.MSG_PING:
            self._answer(proto.Message(proto.MSG_PONG, msg.cookie, msg.stream_id))
        else:
            log.warning("ignoring message type %d the daemon does not expect", msg.type)

    def _on_open(self, msg: proto.StreamOpen) -> None:
        self._on_close(msg.stream_id)  # a reused stream id starts afresh
        try:
            self.sessions[msg.stream_id] = self._open_session(msg.stream_id, msg.codec)
        except UnsupportedError as exc:
            log.warning("stream %d: %s", msg.stream_id, exc)
            return
        self.stats.streams_opened += 1
        log.info("stream %d opened: %s %dx%d", msg.stream_id,
                 proto.CODEC_NAMES.get(msg.codec, msg.codec), msg.coded_width, msg.coded_height)

    def _on_close(self, stream_id: int) -> None:
        session = self.sessions.pop(stream_id, None)
        if session is not None:
            # its pictures may still be in the writer's hands (bounded: a wedged write
            # must not stop the daemon; the kernel's watchdog ends what it never sends)
            if not self.wait_written(WRITER_WAIT):
                log.error("stream %d: the picture writer is still busy after %.0f s", stream_id,
                          WRITER_WAIT)
            session.close()
            self.stats.streams_closed += 1
            log.info("stream %d closed after %d pictures", stream_id, session.frames_out)

    def _session_for(self, req: proto.DecodeRequest) -> DecoderSession:
        session = self.sessions.get(req.stream_id)
        if session is None:  # no STREAM_OPEN seen (daemon restarted mid-stream)
            session = self._open_session(req.stream_id, req.codec)
            self.sessions[req.stream_id] = session
        return session

    def _open_session(self, stream_id: int, codec: int) -> DecoderSession:
        session = open_session(stream_id, codec, **self.session_options)
        if self.writer is not None:
            session.emit = self.writer.put
        return session

    def _on_decode(self, req: proto.DecodeRequest) -> None:
        self.stats.requests += 1
        try:
            session = self._session_for(req)
            responses = session.decode(req, self.transport.capture_memory)
        except UnsupportedError as exc:
            responses = [error_response(req, str(exc))]
        except Exception as exc:  # one bad request must never take the daemon down
            log.exception("stream %d cookie %d: unexpected failure", req.stream_id, req.cookie)
            responses = [unexpected_error_response(req, exc)]
        for response in responses:
            self._answer(response)

    def _on_flush(self, stream_id: int) -> None:
        session = self.sessions.get(stream_id)
        if session is not None:
            for response in session.drain(self.transport.capture_memory):
                self._answer(response)
        # after every picture of the stream (the writer sends in order)
        self._answer(proto.Message(proto.MSG_FLUSH_DONE, 0, stream_id))

    def _answer(self, msg: proto.AnyMessage) -> None:
        """A message to the kernel: now, or with write_behind in the writer's turn,
        after what the writer has yet to send."""
        if self.writer is None:
            self._send(msg)
        else:
            self.writer.put(lambda: msg)

    def _send(self, msg: proto.AnyMessage) -> None:
        if self.observer is not None:
            self.observer.on_response(msg)
        if isinstance(msg, proto.FrameResponse):
            self.stats.pictures += bool(msg.flags & proto.FRAME_HAS_PIXELS)
            self.stats.errors += msg.is_error
        try:
            self.transport.send(msg)
        except OSError as exc:
            # The kernel refused it (stream gone, cookie cancelled): counted, not fatal.
            self.stats.send_failures += 1
            log.info("kernel refused a message for stream %d: %s", msg.stream_id, exc)
        if isinstance(msg, proto.FrameResponse) and msg.flags & (proto.FRAME_HAS_PIXELS | proto.FRAME_ERROR):
            self.transport.release_capture(msg.cookie)
