"""The daemon's one view of the kernel: a Transport.

Shaped like python-can's ``BusABC``: the template methods here validate and
count, and a backend overrides the small ``_recv_internal`` /
``_send_internal`` / ``_map_capture`` hooks.  The daemon code is the same
whichever backend is behind it: ``sim`` (the in-process model of the kernel
module) or ``hw`` (the real /dev/daedalus-v4l2).
"""
from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass

from . import proto
from .errors import DeviceError, ProtocolError

log = logging.getLogger(__name__)


@dataclass
class TransportStats:
    received: int = 0
    sent: int = 0
    rejected: int = 0  # malformed messages, counted and dropped
    last_error: str = ""


class Transport(ABC):
    """Receive requests from the kernel, reach their CAPTURE memory, send responses."""

    def __init__(self) -> None:
        self.stats = TransportStats()

    def receive(self, timeout: float | None = None) -> proto.AnyMessage | None:
        """The next valid message, or None when ``timeout`` passes (0 = poll).

        A malformed message is logged, counted in ``stats.rejected`` and
        skipped: one bad message never stops the daemon.
        """
        while True:
            data = self._recv_internal(timeout)
            if data is None:
                return None
            try:
                msg = proto.parse(data)
            except ProtocolError as exc:
                self.stats.rejected += 1
                self.stats.last_error = str(exc)
                log.warning("rejected message from kernel: %s", exc)
                continue
            self.stats.received += 1
            return msg

    def send(self, msg: proto.AnyMessage) -> None:
        self._send_internal(proto.encode(msg))
        self.stats.sent += 1

    def capture_memory(self, request: proto.DecodeRequest) -> memoryview:
        """Writable memory of the request's CAPTURE buffer, exactly capture_size bytes."""
        mem = self._map_capture(request)
        if len(mem) < request.capture_size:
            raise DeviceError(
                f"CAPTURE buffer {request.capture_index} maps {len(mem)} bytes, "
                f"request says {request.capture_size}")
        return mem[:request.capture_size]

    def release_capture(self, cookie: int) -> None:
        """The daemon is done with this job's CAPTURE buffer (its picture or error was sent)."""

    @abstractmethod
    def _recv_internal(self, timeout: float | None) -> bytes | memoryview | None:
        """One whole message's bytes, or None on timeout."""

    @abstractmethod
    def _send_internal(self, data: bytes) -> None:
        """Deliver one whole message to the kernel."""

    @abstractmethod
    def _map_capture(self, request: proto.DecodeRequest) -> memoryview:
        """Writable memory of the request's CAPTURE buffer."""

    def close(self) -> None:
        """Let go of the kernel; in-flight jobs then fail with ERROR there."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# Backends by name, imported lazily (python-can's registry): the hw backend
# needs pyudev and a Linux device, the sim needs neither.
BACKENDS = {
    "sim": "daedalus_v4l2.backends.sim",
    "hw": "daedalus_v4l2.backends.hw",
}


def load_backend(name: str):
    """The backend module registered under ``name``."""
    try:
        module = BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}") from None
    return importlib.import_module(module)
