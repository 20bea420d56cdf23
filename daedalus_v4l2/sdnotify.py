"""systemd integration without libsystemd: sd_notify and journal log lines.

``notify("READY=1", "STATUS=...")`` sends one datagram to ``$NOTIFY_SOCKET``
(the protocol of sd_notify(3): newline-separated assignments; a socket name
starting with ``@`` is in the abstract namespace). Without ``$NOTIFY_SOCKET``
(not started by systemd with Type=notify) it does nothing and returns False,
so callers never need to check.

Under systemd the daemon's stderr is a journal stream (``$JOURNAL_STREAM``
names its device and inode). :class:`JournalFormatter` then prefixes each
line with its syslog priority, ``<3>`` .. ``<7>`` (sd-daemon(3)), which
journald turns into the entry's PRIORITY; timestamps and the program name are
dropped because the journal records them itself.
"""
from __future__ import annotations

import logging
import os
import socket

__all__ = ["JournalFormatter", "Notifier", "journal_stream_is_stderr", "notify"]


def notify(*assignments: str, env: dict[str, str] | None = None) -> bool:
    """Send ``assignments`` (e.g. ``"READY=1"``) to systemd; False if not under systemd."""
    env = os.environ if env is None else env
    address = env.get("NOTIFY_SOCKET", "")
    if not address or not assignments:
        return False
    if address[0] == "@":
        address = "\0" + address[1:]
    elif address[0] != "/":
        return False  # vsock and other forms are not used for services
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.sendto("\n".join(assignments).encode(), address)
        except OSError:
            return False  # systemd gone or socket replaced: never fatal for the daemon
    return True


class Notifier:
    """The daemon's view of sd_notify: READY once, STATUS only when it changes."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = env
        self.enabled = bool((os.environ if env is None else env).get("NOTIFY_SOCKET"))
        self._last_status: str | None = None

    def ready(self, status: str = "") -> bool:
        fields = ["READY=1", f"MAINPID={os.getpid()}"]
        if status:
            fields.append(f"STATUS={status}")
            self._last_status = status
        return notify(*fields, env=self.env)

    def status(self, text: str) -> bool:
        if text == self._last_status:
            return False
        self._last_status = text
        return notify(f"STATUS={text}", env=self.env)

    def stopping(self) -> bool:
        return notify("STOPPING=1", env=self.env)


def journal_stream_is_stderr(env: dict[str, str] | None = None, fd: int = 2) -> bool:
    """True when ``fd`` is the journal stream systemd connected (``$JOURNAL_STREAM=dev:ino``)."""
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(part) for part in value.split(":"))
        st = os.fstat(fd)
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


# logging level -> syslog priority (sd-daemon(3): SD_ERR "<3>" ... SD_DEBUG "<7>")
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
               (logging.INFO, 6), (logging.DEBUG, 7))


def syslog_priority(levelno: int) -> int:
    for level, priority in _PRIORITIES:
        if levelno >= level:
            return priority
    return 7


class JournalFormatter(logging.Formatter):
    """``<6>daedalus_v4l2.daemon: stream 1 opened ...``: one journal entry per line.

    A multi-line message (a traceback) gets the prefix on every line, so no
    part of it lands in the journal at the wrong priority.
    """

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines() or [""])
