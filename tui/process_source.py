"""The simulated stack in a child process, for the interactive TUI.

``SimSource`` runs the simulation in a thread of the app's own process, so
the decode and the screen share one GIL: every screen update (Textual's
layout and rendering, some milliseconds of Python) is time the decode stands
still.  ``ProcessSimSource`` runs the same ``SimSource`` in a child process
instead.  The child sends ``Snapshot`` values (small frozen dataclasses)
over a pipe and obeys commands from another; the app's process only
renders.  What the screen shows is the same; the decode no longer waits for
it (benchmarks/tui_overhead.py measures both).

The child is a fresh interpreter (``python -m
daedalus_v4l2.tui.process_source``): the app runs threads, so forking it is
not safe, and multiprocessing's spawn would re-run the caller's main module.
It talks over two pipes with multiprocessing's Connection (pickles), and
ignores SIGINT: the parent owns the terminal and decides when to quit.  If the child dies, the app is shown why
instead of freezing on a snapshot that never comes.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

from .model import Snapshot
from .sim_source import FAULTS, Clip, SimSource

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0        # seconds for the child to import and report in (a loaded machine)


@dataclasses.dataclass(frozen=True)
class WorkerState:
    """What the parent mirrors of the child's SimSource, sent with every message."""
    pictures: int = 0
    failed_pictures: int = 0
    loops: int = 0
    finished: bool = False
    finished_at: float | None = None        # time.perf_counter(): system-wide on Linux
    error: str | None = None


class ProcessSimSource:
    """``SimSource``'s interface, with the simulation in a child process.

    ``output``: a path the child appends every decoded picture to, or "-" for
    stdout (``decode --tui``); pictures stay in the child, only their count
    comes back.
    Other keyword arguments go to ``SimSource`` (``on_picture`` cannot: it
    would run in the child)."""

    kind = "sim"

    def __init__(self, clip: Clip, *, output: str | None = None, start_paused: bool = False,
                 **options) -> None:
        if "on_picture" in options:
            raise TypeError("ProcessSimSource writes pictures to `output`; on_picture would "
                            "run in the child process")
        self.clip, self.output, self.options = clip, output, options
        self.options["start_paused"] = start_paused
        self._paused = start_paused
        self.state = WorkerState()
        self.sink: Callable[[Snapshot], None] = lambda snapshot: None
        self._last: Snapshot | None = None
        self._send_lock = threading.Lock()
        self._process = None
        self._commands = None
        self._reader: threading.Thread | None = None
        self._stopping = False
        self.ready = threading.Event()      # the child has started its SimSource

    # ------------------------------------------------------------------ mirrored state
    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def finished(self) -> bool:
        return self.state.finished

    @property
    def finished_at(self) -> float | None:
        return self.state.finished_at

    @property
    def error(self) -> str | None:
        return self.state.error

    @property
    def failed_pictures(self) -> int:
        return self.state.failed_pictures

    @property
    def pictures(self) -> int:
        return self.state.pictures

    @property
    def loops(self) -> int:
        return self.state.loops

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def exitcode(self) -> int | None:
        """None while the child runs (or before start); negative: killed by that signal."""
        return self._process.poll() if self._process is not None else None

    # ------------------------------------------------------------------ lifecycle
    def start(self, sink: Callable[[Snapshot], None]) -> None:
        self.sink = sink
        command_read, command_write = os.pipe()
        event_read, event_write = os.pipe()
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(command_read), str(event_write)],
            pass_fds=(command_read, event_write), stdin=subprocess.DEVNULL)
        os.close(command_read)
        os.close(event_write)
        self._commands = Connection(command_write, readable=False)
        self._events = Connection(event_read, writable=False)
        self._send(("init", self.clip, self.options, self.output))
        self._reader = threading.Thread(target=self._read, name="daedalus-sim-pipe", daemon=True)
        self._reader.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._process is None or self._stopping:
            return
        self._stopping = True
        self._send(("quit",))
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("the simulation process did not quit in %.0f s; killing it", timeout)
            self._process.kill()
            self._process.wait(timeout)
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout)
        self._commands.close()

    # ------------------------------------------------------------------ commands
    def _send(self, command: tuple) -> None:
        with self._send_lock:
            try:
                self._commands.send(command)
            except (OSError, ValueError):   # the child is gone: _read reports it
                pass

    def request_snapshot(self) -> None:
        self._send(("snapshot",))

    def set_paused(self, paused: bool) -> None:
        self._paused = paused
        self._send(("set_paused", paused))

    def toggle_pause(self) -> None:
        self.set_paused(not self._paused)

    def step(self, events: int = 1) -> None:
        self._paused = True
        self._send(("step", events))

    def run_until_event(self, count: int) -> None:
        self._paused = False
        self._send(("run_until_event", count))

    def inject(self, fault: str) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")
        self._send(("inject", fault))

    # ------------------------------------------------------------------ the pipe from the child
    def _read(self) -> None:
        if not self._events.poll(START_TIMEOUT):
            self._child_gone(f"the simulation process did not start within {START_TIMEOUT:.0f} s")
            return
        while True:
            try:
                kind, payload, state = self._events.recv()
            except (EOFError, OSError):
                if not self._stopping:
                    self._child_gone(self._exit_reason())
                return
            except Exception as exc:  # noqa: BLE001 - a message we cannot read: stop, say why
                self._child_gone(f"unreadable message from the simulation process: {exc!r}")
                self.stop()
                return
            self.state = state
            if kind == "ready":
                self.ready.set()
            elif kind == "snapshot":
                self._last = payload
                self.sink(payload)

    def _exit_reason(self) -> str:
        try:
            code = self._process.wait(1.0)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None and code < 0:
            how = f"was killed by {signal.Signals(-code).name}"
        else:
            how = f"exited with status {code}"
        return f"the simulation process {how}"

    def _child_gone(self, reason: str) -> None:
        """Finish with an error and show it: the app may be waiting for a snapshot."""
        log.error("%s", reason)
        self.state = dataclasses.replace(self.state, finished=True, error=self.state.error or reason,
                                         finished_at=self.state.finished_at or time.perf_counter())
        self.ready.set()
        last = self._last or Snapshot("sim", 0, False)
        self.sink(dataclasses.replace(last, running=False, events=(),
                                      status=f"STOPPED: {self.state.error}"))


# ---------------------------------------------------------------------- the child
def _child_main(commands: Connection, events: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _init, clip, options, output = commands.recv()
    except (EOFError, OSError):                 # the parent died before it said what to run
        return
    # Nothing may write to the terminal the app draws on: warnings from libraries
    # with no handler of their own would reach logging's last-resort stderr handler.
    logging.getLogger().addHandler(logging.NullHandler())
    if output == "-":           # the app draws on stderr (Textual's driver), so stdout is free
        out = os.fdopen(1, "wb", closefd=False)
    else:
        out = open(output, "ab") if output else None
    send_lock = threading.Lock()
    source: SimSource | None = None

    def state() -> WorkerState:
        if source is None:
            return WorkerState()
        return WorkerState(source._pictures, source.failed_pictures, source.loops,
                           source.finished, getattr(source, "finished_at", None), source.error)

    def send(kind: str, payload=None) -> None:
        with send_lock:
            try:
                events.send((kind, payload, state()))
            except (OSError, ValueError):       # the parent is gone; the command loop ends too
                pass

    def on_picture(picture) -> None:
        if out is not None and picture.data is not None:
            out.write(picture.data)

    source = SimSource(clip, on_picture=on_picture, on_finished=lambda: send("finished"),
                       **options)
    source.start(lambda snapshot: send("snapshot", snapshot))
    send("ready")
    try:
        _obey(source, commands)
    finally:
        source.stop()
        if out is not None:
            out.close()
        send("stopped")
        events.close()


def _obey(source: SimSource, commands) -> None:
    actions = {
        "snapshot": source.request_snapshot,
        "set_paused": source.set_paused,
        "step": source.step,
        "run_until_event": source.run_until_event,
        "inject": source.inject,
    }
    while True:
        try:
            name, *args = commands.recv()
        except (EOFError, OSError):             # the parent died: stop with it
            return
        if name == "quit":
            return
        actions[name](*args)


if __name__ == "__main__":
    # Through the package, not this __main__ copy: what is pickled must name
    # classes the parent can import (daedalus_v4l2.tui.*, not __main__.*).
    from daedalus_v4l2.tui.process_source import _child_main as child_main
    child_main(Connection(int(sys.argv[1]), writable=False),
               Connection(int(sys.argv[2]), readable=False))
