"""The daemon's state on a local socket, for ``daedalus-v4l2 tui`` on hw.

The kernel's debugfs shows what the module knows (in-flight entries, counters);
the daemon knows the rest: which requests it is decoding, each one's frame
number, latency from DECODE to FRAME, its sessions and recent messages.  A
``StateRecorder`` hooked into the daemon notes that much at the cost of a
lock and a few dict operations per message; a ``StateServer`` thread answers
queries on a Unix socket, one JSON line per request line::

    -> {"since": 0}
    <- {"pid": ..., "stats": {...}, "sessions": [...], "pending": [...],
        "latency_ms": {"p50": ..., "p99": ...}, "fps": ..., "events": [...], "seq": ...}
"""
from __future__ import annotations

import json
import os
import socket
import socketserver
import threading
import time
from collections import deque
from dataclasses import asdict
from pathlib import Path

from . import proto

ENV = "DAEDALUS_V4L2_STATE_SOCKET"
EVENTS = 512
LATENCIES = 256


def default_socket_path() -> str:
    """$DAEDALUS_V4L2_STATE_SOCKET, else /run/daedalus-v4l2/state.sock for root,
    else $XDG_RUNTIME_DIR/daedalus-v4l2.sock (or /tmp/daedalus-v4l2-UID.sock)."""
    if os.environ.get(ENV):
        return os.environ[ENV]
    if os.geteuid() == 0:
        return "/run/daedalus-v4l2/state.sock"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return f"{runtime}/daedalus-v4l2.sock" if runtime else f"/tmp/daedalus-v4l2-{os.geteuid()}.sock"


class StateRecorder:
    """The daemon's hook (``Daemon(observer=...)``): called in the daemon's thread."""

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self.daemon = None
        self._lock = threading.Lock()
        self._pending: dict[int, tuple] = {}      # cookie -> (t, stream, codec, frame, out, cap)
        self._frames: dict[int, int] = {}         # stream -> DECODEs seen
        self._latency: deque[float] = deque(maxlen=LATENCIES)
        self._pictures: deque[float] = deque(maxlen=LATENCIES)
        self._events: deque[tuple] = deque(maxlen=EVENTS)
        self._seq = 0

    def _event(self, kind: str, stream: int | None, cookie: int | None, detail: str) -> None:
        self._seq += 1
        self._events.append((self._seq, self.clock(), kind, stream, cookie, detail))

    def on_message(self, msg) -> None:
        now = self.clock()
        with self._lock:
            if isinstance(msg, proto.DecodeRequest):
                frame = self._frames.get(msg.stream_id, 0) + 1
                self._frames[msg.stream_id] = frame
                self._pending[msg.cookie] = (now, msg.stream_id, msg.codec, frame,
                                             msg.output_index, msg.capture_index)
                self._event("decode", msg.stream_id, msg.cookie,
                            f"out {msg.output_index} cap {msg.capture_index} "
                            f"{len(msg.bitstream)} bytes")
            elif isinstance(msg, proto.StreamOpen):
                self._frames[msg.stream_id] = 0
                self._event("stream_open", msg.stream_id, None,
                            f"{proto.CODEC_NAMES.get(msg.codec, msg.codec)} "
                            f"{msg.coded_width}x{msg.coded_height}")
            else:
                self._event(f"msg {msg.type}", msg.stream_id, msg.cookie or None, "")

    def on_response(self, msg) -> None:
        if not isinstance(msg, proto.FrameResponse):
            return
        now = self.clock()
        final = msg.flags & (proto.FRAME_HAS_PIXELS | proto.FRAME_ERROR)
        with self._lock:
            entry = self._pending.pop(msg.cookie, None) if final else self._pending.get(msg.cookie)
            if final and entry is not None:
                self._pictures.append(now)
                if not msg.flags & proto.FRAME_ERROR:
                    self._latency.append(now - entry[0])
            what = "error" if msg.flags & proto.FRAME_ERROR else \
                "pixels" if msg.flags & proto.FRAME_HAS_PIXELS else "consumed"
            self._event("frame", msg.stream_id, msg.cookie,
                        what + (f": {msg.reason}" if getattr(msg, "reason", "") else ""))

    def state(self, since: int = 0) -> dict:
        now = self.clock()
        with self._lock:
            pending = [{"cookie": c, "stream": s, "codec": proto.CODEC_NAMES.get(codec, "?"),
                        "frame": f, "out": o, "cap": cap, "age_ms": int((now - t) * 1000)}
                       for c, (t, s, codec, f, o, cap) in self._pending.items()]
            latency = sorted(self._latency)
            recent = [t for t in self._pictures if t >= now - 2.0]
            events = [{"seq": q, "t_ms": int((t - self.started) * 1000), "kind": k,
                       "stream": s, "cookie": c, "detail": d}
                      for q, t, k, s, c, d in self._events if q > since]
            seq = self._seq
        daemon = self.daemon
        return {
            "pid": os.getpid(),
            "uptime_ms": int((now - self.started) * 1000),
            "stats": asdict(daemon.stats) if daemon is not None else {},
            "sessions": [{"stream": sid, "frames_out": getattr(s, "frames_out", 0)}
                         for sid, s in list(daemon.sessions.items())] if daemon is not None else [],
            "pending": pending,
            "latency_ms": {"p50": _pct(latency, 50), "p99": _pct(latency, 99)},
            "fps": (len(recent) - 1) / (recent[-1] - recent[0])
            if len(recent) > 1 and recent[-1] > recent[0] else 0.0,
            "events": events,
            "seq": seq,
        }


def _pct(ordered: list[float], p: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        try:
            for line in self.rfile:
                self._answer(line)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the TUI went away (quit, or gave up on a slow answer): not an error

    def _answer(self, line: bytes) -> None:
        try:
            since = int(json.loads(line or b"{}").get("since", 0))
        except (ValueError, AttributeError):
            since = 0
        self.wfile.write(json.dumps(self.server.recorder.state(since)).encode() + b"\n")
        self.wfile.flush()


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class StateServer:
    """Serves a recorder's state on ``path`` from a background thread."""

    def __init__(self, path: str, recorder: StateRecorder) -> None:
        self.path = path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if os.path.exists(path):
            os.unlink(path)          # a stale socket from a daemon that died
        self._server = _Server(path, _Handler)
        self._server.recorder = recorder
        os.chmod(path, 0o660)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="daedalus-state", daemon=True)

    def __enter__(self) -> "StateServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class StateClient:
    """The TUI's end: one connection, one query per call."""

    # Generous: the TUI polls from its own thread, so a slow answer (a daemon
    # busy decoding on a loaded machine) costs a stale screen, while giving up
    # and reconnecting would make the daemon compute the same answer again.
    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self._file = self.sock.makefile("rb")

    def query(self, since: int = 0) -> dict:
        self.sock.sendall(json.dumps({"since": since}).encode() + b"\n")
        line = self._file.readline()
        if not line:
            raise ConnectionError("the daemon closed its state socket")
        return json.loads(line)

    def close(self) -> None:
        self._file.close()
        self.sock.close()
