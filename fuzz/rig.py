"""Guest-side helpers of the rig's reliability tests (tests/vm/test_reliability_*.py):
the daemon the rig supervises, the module's debugfs counters, dmesg reports."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

CHARDEV = "/dev/daedalus-v4l2"
DEBUGFS = Path("/sys/kernel/debug/daedalus_v4l2")
PARAMS = Path("/sys/module/daedalus_v4l2/parameters")
SHARE = Path(os.environ.get("DAEDALUS_VM_SHARE", "/run/vm-share"))
HOLD = SHARE / "daemon.hold"
ROOT = Path(__file__).resolve().parents[1]

# What a kernel under test must never print.
REPORT_RE = re.compile(
    r"BUG: KASAN|BUG:|WARNING:|Oops|general protection|kernel BUG|list_add corruption|"
    r"list_del corruption|ODEBUG:|possible circular locking|possible recursive locking|"
    r"inconsistent lock state|suspicious RCU usage|unreferenced object|Call Trace:|"
    r"UBSAN:|refcount_t: |kmemleak: \d+ new suspected")


def counters() -> dict[str, int]:
    out = {}
    for line in (DEBUGFS / "counters").read_text().splitlines():
        name, value = line.split()
        out[name] = int(value)
    return out


def inflight() -> list[str]:
    return [line for line in (DEBUGFS / "inflight").read_text().splitlines() if line.strip()]


def daemon_pids() -> list[int]:
    """Processes holding the chardev open."""
    return [pid for pid, paths in open_files().items() if CHARDEV in paths]


def open_files() -> dict[int, set[str]]:
    """What every process has open.  A busy process opens and closes fds while
    it is read (a daemon starting up): one fd gone between listing and readlink
    must not hide the others."""
    files: dict[int, set[str]] = {}
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            fds = list(fd_dir.iterdir())
        except OSError:
            continue            # the process exited
        paths = set()
        for fd in fds:
            try:
                paths.add(os.readlink(fd))
            except OSError:
                continue        # that fd was closed meanwhile
        files[int(fd_dir.parent.name)] = paths
    return files


def holders(prefixes=("/dev/video", "/dev/media", CHARDEV)) -> dict[int, list[str]]:
    """Processes holding the driver's nodes: why an rmmod says "in use"."""
    return {pid: sorted(p for p in paths if p.startswith(prefixes))
            for pid, paths in open_files().items()
            if any(p.startswith(prefixes) for p in paths)}


def gone(pid: int) -> bool:
    """Exited and reaped: every thread is gone, so its files are released (a
    killed leader can leave /proc/PID/fd empty while other threads still hold them)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def wait_for(predicate, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def wait_daemon(timeout: float = 600) -> int:
    """The pid of the (restarted) daemon once it holds the chardev (a bound: under the
    debug kernel on a slow host its imports alone took over 120 s)."""
    assert wait_for(lambda: daemon_pids(), timeout, 0.5), \
        f"no daemon attached to {CHARDEV} within {timeout} s (see daemon.log)"
    return daemon_pids()[0]


@contextmanager
def daemon_held_off():
    """No daemon for the duration: the rig's supervisor waits, the daemon is killed;
    afterwards the supervisor starts a new one and this waits for it."""
    HOLD.write_text("held by a reliability test\n")
    try:
        killed = daemon_pids()
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: not daemon_pids() and all(gone(p) for p in killed), 60), \
            f"the daemon did not die: {holders()}"
        yield
    finally:
        HOLD.unlink(missing_ok=True)
    wait_daemon()


def dmesg() -> str:
    return subprocess.run(["dmesg"], capture_output=True, text=True).stdout


def reports(text: str) -> list[str]:
    return [line for line in text.splitlines() if REPORT_RE.search(line)]


class DmesgWatch:
    """Kernel reports printed since creation."""

    def __init__(self) -> None:
        self.start = len(dmesg().splitlines())

    def new_lines(self) -> list[str]:
        return dmesg().splitlines()[self.start:]

    def reports(self) -> list[str]:
        return reports("\n".join(self.new_lines()))


def kmemleak_scan() -> list[str]:
    """Leak reports after a scan ([] without kmemleak)."""
    path = Path("/sys/kernel/debug/kmemleak")
    if not path.exists():
        return []
    for _ in range(2):      # kmemleak reports an object only after two scans see it
        path.write_text("scan\n")
    text = path.read_text()
    return [line for line in text.splitlines() if "unreferenced object" in line]


def find_nodes():
    from daedalus_v4l2.backends.hw import find_nodes as find
    return find()


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "daedalus_v4l2", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)
