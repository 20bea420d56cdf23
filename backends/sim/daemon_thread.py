"""The daemon in a thread of its own, as on a Pi where it is a process of its own.

Inline (the default), the simulated kernel lets the daemon handle a message
whenever a client call blocks, so libavcodec decodes while the client waits
and the client's work waits while libavcodec decodes.  Here the daemon reads
the chardev in its own thread: PyAV releases the GIL while libavcodec
decodes, so one request decodes while the client parses, queues and copies
out the pictures around it, as a V4L2 client and a device overlap.
"""
from __future__ import annotations

import logging
import threading

log = logging.getLogger("daedalus_v4l2.sim")

# How long the daemon's receive() waits before it looks at the stop flag again:
# a stop wakes it at once, so this only bounds a missed wake-up.
POLL_INTERVAL = 0.5


class DaemonThread:
    """Run ``daemon`` (a Daemon on ``kernel``'s chardev) in a thread until stop()."""

    def __init__(self, kernel, daemon) -> None:
        self.kernel, self.daemon = kernel, daemon
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="daedalus-v4l2 daemon", daemon=True)

    def start(self) -> "DaemonThread":
        self.kernel.run_daemon_in_thread()
        self._set_running(True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            # until stopped, or until its chardev is closed (killed): nothing more to read
            while not self._stop.is_set() and not self.daemon.transport.closed:
                self.daemon.step(POLL_INTERVAL)
        except BaseException as exc:  # a daemon process that dies: its fd closes
            self.error = exc
            log.critical("the daemon thread died: %s: %s", type(exc).__name__, exc, exc_info=True)
            self.daemon.transport.close()   # every job in flight fails now, as dv_fail_all does
        finally:
            self._set_running(False)

    def _set_running(self, running: bool) -> None:
        with self.kernel.lock:      # a client waiting on it looks again, and so does its read
            self.kernel.daemon_thread_running = running
            self.kernel.changed.notify_all()
            self.kernel.daemon_readable.notify_all()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop after the message in hand (a decode finishes in milliseconds); False
        if the thread is still running after ``timeout``."""
        self._stop.set()
        self.daemon.transport.wake()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("the daemon thread did not stop within %.0f s", timeout)
            return False
        # and the pictures it handed its writer, before the client closes under them
        if not self.daemon.wait_written(timeout):
            log.error("the daemon's picture writer did not finish within %.0f s", timeout)
            return False
        return True

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()
