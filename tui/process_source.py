"""The simulated stack in a child process, driven for the TUI.

``SimSource`` decodes in a thread of the TUI's own process, so every repaint
holds the GIL the client, the sim kernel and the daemon need: on 2 cores that
cost the decode about a fifth of its speed (benchmarks/tui_overhead.py).
``ProcessSource`` runs the same ``SimSource`` in a child process and speaks to
it over a pipe: the UI's commands go down, ``Snapshot`` values come back.  The
screen then costs the decode only the CPU it takes, on the other core.

The child is started with ``spawn`` (the app already runs threads, which
``fork`` would copy half-way) and has the same worker-thread rules as
``SimSource``.  If it dies, the screen keeps its last snapshot with the cause
in the status line, and ``error`` says it; nothing waits for it.
"""
from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable

from daedalus_v4l2.heap import keep_freed_memory
from .model import LogEvent, Snapshot
from .sim_source import Clip, SimSource, check_fault

log = logging.getLogger(__name__)

STOP_TIMEOUT = 5.0          # seconds the child gets to stop before it is terminated
CHILD_STOP_TIMEOUT = 2.0    # ... of which its worker thread gets this much
STATE_POLL = 0.1            # the child reports "finished" within this many seconds


@dataclasses.dataclass
class PictureWriter:
    """Writes each decoded picture's bytes to ``path`` ("-": standard output) in the
    child: a callable that crosses the process boundary, unlike a lambda."""
    path: str

    def __post_init__(self) -> None:
        self._out = None

    def __call__(self, picture) -> None:
        if picture.data is None:
            return
        if self._out is None:
            self._out = open(1 if self.path == "-" else self.path, "wb", closefd=self.path != "-")
        self._out.write(picture.data)

    def close(self) -> None:
        if self._out is not None:
            self._out.close()


class ProcessSource:
    """``SimSource(clip, **options)`` in a child process; the same UI-thread API."""

    kind = "sim"
    in_process = False      # the app need not share the GIL (tui.run.run_app)

    def __init__(self, clip: Clip | str, *, on_picture: PictureWriter | None = None,
                 **options) -> None:
        """``clip``: a Clip, or the path of a file the child reads itself (the packets
        of a long file need not cross the pipe)."""
        self.clip, self.on_picture, self.options = clip, on_picture, options
        self.sink: Callable[[Snapshot], None] = lambda snapshot: None
        self.paused = bool(options.get("start_paused", False))
        self.finished = False
        self.finished_at: float | None = None
        self.error: str | None = None
        self.failed_pictures = 0
        self.loops = 0
        self.exitcode: int | None = None
        self._last: Snapshot | None = None
        self._send_lock = threading.Lock()
        # One thread at a time may wait for the child: a second waitpid gets ECHILD,
        # which multiprocessing reads as "still running" (and would terminate a pid
        # that is no longer ours).
        self._reaping = threading.Lock()
        self._stopping = False
        self._process = None
        self._conn = None
        self._reader: threading.Thread | None = None

    # ------------------------------------------------------------------ UI thread API
    def start(self, sink: Callable[[Snapshot], None]) -> None:
        self.sink = sink
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(target=_child_main, name="daedalus-sim",
                                        args=(child_conn, self.clip, self.options,
                                              self.on_picture, logging.getLogger().level),
                                        daemon=True)
        try:
            _start_with_real_stderr(self._process)
        except Exception as exc:  # e.g. an option that cannot be pickled
            self.error = f"starting the simulation process: {type(exc).__name__}: {exc}"
            self.finished = True
            self._conn.close()
            self._deliver(_stopped(None, self.error))
            return
        finally:
            child_conn.close()  # the child's end lives in the child only: EOF when it dies
        self._reader = threading.Thread(target=self._read, name="daedalus-sim-pipe", daemon=True)
        self._reader.start()

    def request_snapshot(self) -> None:
        self._send("request_snapshot")

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self._send("set_paused", paused)

    def toggle_pause(self) -> None:
        self.set_paused(not self.paused)

    def step(self, events: int = 1) -> None:
        self.paused = True
        self._send("step", events)

    def run_until_event(self, count: int) -> None:
        self.paused = False
        self._send("run_until_event", count)

    def inject(self, fault: str) -> None:
        check_fault(fault)
        self._send("inject", fault)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        if self._process is None or self._process.pid is None or self._stopping:
            return      # never started (or start failed): nothing to stop
        self._stopping = True
        self._send("stop")
        with self._reaping:
            self._process.join(timeout)
            if self._process.is_alive():
                self.error = self.error or \
                    f"the simulation process did not stop in {timeout:.0f} s: terminated"
                self._process.terminate()
                self._process.join(timeout)
            self.exitcode = self._process.exitcode
        if self.exitcode not in (0, None):   # e.g. it died just as the app quit
            self.error = self.error or f"the simulation process exited (code {self.exitcode})"
        if self._reader is not None:
            self._reader.join(timeout)
        self._conn.close()

    # ------------------------------------------------------------------ the pipe
    def _send(self, op: str, *args) -> None:
        with self._send_lock:
            try:
                self._conn.send((op, *args))
            except (OSError, EOFError, AttributeError):
                pass        # the child is gone (or not started): _read says why on screen

    def _read(self) -> None:
        """The parent's reader thread: snapshots to the sink, state to attributes.  It
        reads until the child closes its end, whatever happens to the app meanwhile: a
        child whose pipe fills up would block in send and never stop."""
        while True:
            try:
                kind, payload, state = self._conn.recv()
            except (EOFError, OSError):
                break
            except Exception as exc:  # an unreadable message: say so, read on
                self.error = self.error or f"the simulation's pipe: {type(exc).__name__}: {exc}"
                continue
            self._take_state(state)
            if kind == "snapshot":
                self._last = payload
                self._deliver(payload)
        if not self._stopping:
            with self._reaping:
                self._process.join(STOP_TIMEOUT)
            self._died()

    def _deliver(self, snapshot: Snapshot) -> None:
        try:
            self.sink(snapshot)
        except Exception:  # never stop reading: the child would block in send
            if not self._stopping:    # (while quitting, the app may be gone already)
                log.exception("showing a snapshot of the simulation")

    def _take_state(self, state: dict) -> None:
        """As SimSource orders them: ``finished`` last, so whoever sees it set sees the
        rest too; an error the parent already holds is never cleared by the child's None."""
        for name, value in state.items():
            if name != "finished" and not (name == "error" and value is None):
                setattr(self, name, value)
        if "finished" in state:
            self.finished = state["finished"]

    def _died(self) -> None:
        self.error = self.error or \
            f"the simulation process exited (code {self._process.exitcode})"
        self.finished = True
        self._deliver(_stopped(self._last, self.error))


def _stopped(last: Snapshot | None, why: str) -> Snapshot:
    """The last snapshot, stopped, with ``why`` in the status line and in the log (the
    status line is easy to miss)."""
    last = last or Snapshot("sim", 0, False)
    status = f"{last.status} · " if last.status else ""
    event = LogEvent(last.events_total + 1, last.clock_ms, "worker_error", None, None, why)
    return dataclasses.replace(last, running=False, events=(event,),
                               events_total=last.events_total + 1, status=f"{status}STOPPED: {why}")


def _start_with_real_stderr(process) -> None:
    """While the app runs, Textual's sys.stderr is a capture with no file descriptor,
    and multiprocessing's resource tracker (started with the first spawn) hands the
    one of sys.stderr to its own child: "bad value(s) in fds_to_keep"."""
    saved = sys.stderr
    sys.stderr = sys.__stderr__ or saved
    try:
        process.start()
    finally:
        sys.stderr = saved


# ---------------------------------------------------------------------- the child

def _child_main(conn, clip, options: dict, on_picture, log_level: int) -> None:
    """Run SimSource here; obey the parent's commands until it says stop or goes away."""
    # Nothing may print over the screen: what goes wrong reaches the parent as `error`
    # (and the daemon's log lines the event log, at the parent's level).
    sys.stderr = open(os.devnull, "w")
    logging.getLogger().addHandler(logging.NullHandler())
    logging.getLogger().setLevel(log_level)
    # Ctrl+C is the parent's to handle: the child stops when told to, or when the pipe
    # closes because the parent is gone.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keep_freed_memory()    # as `decode` does: pictures reuse freed memory
    lock = threading.Lock()
    source = None

    def send(kind: str, payload=None, state=None) -> None:
        with lock:
            try:
                conn.send((kind, payload, state or _state(source)))
            except (OSError, EOFError):
                pass        # the parent is gone; the loop below sees EOF and stops
            except Exception as exc:  # a snapshot that does not pickle: say so, go on
                conn.send(("state", None, {"error": f"sending a {kind}: {exc!r}"}))

    try:
        if not isinstance(clip, Clip):
            clip = Clip.from_file(clip)
        source = SimSource(clip, on_picture=on_picture, **options)
    except Exception as exc:  # e.g. an unreadable file: the parent shows it, then sees EOF
        send("state", state={"error": f"{type(exc).__name__}: {exc}", "finished": True})
        conn.close()
        return
    source.start(lambda snapshot: send("snapshot", snapshot))
    reported = False
    try:
        while True:
            if conn.poll(STATE_POLL):
                op, *args = conn.recv()
                if op == "stop":
                    break
                getattr(source, op)(*args)
            if source.finished and not reported:
                reported = True
                send("state")
    except (EOFError, OSError):
        pass
    finally:
        source.stop(CHILD_STOP_TIMEOUT)
        if on_picture is not None:
            on_picture.close()
        send("state")
        conn.close()


def _state(source: SimSource) -> dict:
    return {"finished": source.finished, "error": source.error,
            "failed_pictures": source.failed_pictures, "loops": source.loops,
            "finished_at": source.finished_at}
