"""`daedalus-v4l2 tui` in the guest: the hw view attached to the rig's daemon.

The rig starts ``python -m daedalus_v4l2 daemon --backend hw`` as root with a
clean environment, so the daemon publishes its state on the default socket
(``state_socket.default_socket_path()``: /run/daedalus-v4l2/state.sock for
root), and /init mounts debugfs at /sys/kernel/debug.  A VP9 clip is decoded
through /dev/videoN by ``daedalus-v4l2 decode --backend hw`` in a subprocess
while the TUI (``HwSource`` inside ``App.run_test()``) watches; the test
checks that what it shows comes from the module's debugfs (counters, in-flight
entries, every buffer of the open contexts) and from the daemon's socket (pid, frame numbers, messages, latency).

Every wait is on a condition with a generous timeout: the guest is TCG on two
shared cores.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vmrig import ROOT, missing, module_loaded

pytestmark = pytest.mark.vm

DEBUGFS = Path("/sys/kernel/debug/daedalus_v4l2")
# A row shows "decoding" with its frame number only while the daemon holds it, and under
# TCG the TUI builds ~1.5 snapshots a second.  At 176x144 x 60 CI twice caught no such
# row; at 352x288 x 120, 9-10 snapshots fell inside the decode and 3-6 of them had one
# (4 runs in the guest); at 352x288 x 240, 16-20 and 7-14 (3 runs).
CLIP = dict(codec="vp9", width=352, height=288, frames=240)
TIMEOUT = 300.0


@pytest.fixture(scope="module")
def rig():
    from daedalus_v4l2.state_socket import default_socket_path
    from tests.contract.backends import daemon_attached
    if not module_loaded("daedalus_v4l2"):
        missing("the daedalus_v4l2 module is not loaded (scripts/vm-run without --no-module)")
    if module_loaded("visl"):
        subprocess.run(["modprobe", "-r", "visl"], check=True)
    assert os.path.ismount("/sys/kernel/debug"), "debugfs is not mounted in the guest"
    assert all((DEBUGFS / name).is_file() for name in ("inflight", "counters", "queues")), \
        sorted(p.name for p in DEBUGFS.iterdir()) if DEBUGFS.is_dir() else f"no {DEBUGFS}"
    assert daemon_attached(), "no daemon holds /dev/daedalus-v4l2 (see daemon.log)"
    socket_path = default_socket_path()
    deadline = time.monotonic() + 60
    while not os.path.exists(socket_path):           # the daemon opens it after attaching
        assert time.monotonic() < deadline, f"the daemon publishes no state on {socket_path}"
        time.sleep(0.2)
    return socket_path


class RecordingHwSource:
    """HwSource that also keeps every snapshot it built (in its own thread), so
    rows that were on screen for a moment only are not missed by the test."""

    def __new__(cls, *args, **kwargs):
        from daedalus_v4l2.tui.hw_source import HwSource

        class _Recording(HwSource):
            def __init__(self, *a, **kw) -> None:
                super().__init__(*a, **kw)
                self.seen = []

            def snapshot(self):
                snap = super().snapshot()
                self.seen.append(snap)
                return snap
        return _Recording(*args, **kwargs)


def test_tui_shows_debugfs_and_the_daemon_while_decoding(rig, tmp_path):
    from daedalus_v4l2.synth import VP9_REALTIME, make_clip
    from daedalus_v4l2.tui.app import DaedalusTui
    from daedalus_v4l2.tui.counters_bar import CountersBar
    from daedalus_v4l2.tui.event_log import EventLog
    from daedalus_v4l2.tui.inflight_table import InflightTable
    from tests.contract.backends import debugfs_counters

    clip = make_clip(tmp_path / "tui.ivf", **CLIP, options=VP9_REALTIME)     # quick under TCG
    before = debugfs_counters()
    source = RecordingHwSource(str(DEBUGFS), rig)
    out = tmp_path / "out.nv12"

    async def wait_for(pilot, predicate, what: str, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"not shown within {timeout:.0f} s: {what}"
            await pilot.pause(0.05)
        await pilot.pause()

    on_screen: set[int] = set()            # cookies the in-flight table showed

    async def go():
        app = DaedalusTui(source)
        async with app.run_test(size=(120, 40)) as pilot:
            table = app.query_one(InflightTable)
            await wait_for(pilot, lambda: app.snapshot is not None
                           and "daemon pid" in app.snapshot.status, "the daemon's socket")
            decode = subprocess.Popen(
                [sys.executable, "-m", "daedalus_v4l2", "decode", str(clip), "-o", str(out),
                 "--backend", "hw", "-q"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
            try:
                # While it runs: in-flight entries from debugfs, joined with the daemon's
                # frame numbers (the daemon has read the DECODE: "decoding").
                def watch(done) -> bool:
                    on_screen.update(table.shown_cookies)
                    return done()
                await wait_for(pilot, lambda: watch(lambda: any(
                    r.frame is not None for s in source.seen for r in s.inflight)
                    or decode.poll() is not None), "in-flight rows")
                await wait_for(pilot, lambda: watch(lambda: decode.poll() is not None),
                               "the end of the decode")
            finally:
                if decode.poll() is None:
                    decode.kill()
                output = decode.communicate()[0]
            assert decode.returncode == 0, output
            after = debugfs_counters()
            jobs = after["jobs"] - before["jobs"]
            assert jobs >= CLIP["frames"], (before, after)
            # After it: the counters on screen are the module's, the in-flight table empties.
            await wait_for(pilot, lambda: app.snapshot.counters.jobs == after["jobs"]
                           and app.snapshot.counters.done == after["done"]
                           and not app.snapshot.inflight, "the module's final counters")
            await wait_for(pilot, lambda: app.snapshot.counters.latency_p50_ms is not None,
                           "the daemon's latency")
            snap = app.snapshot
            bar_text = "\n".join(app.query_one(CountersBar).lines)
            log = app.query_one(EventLog)
            table_lines = table.lines
            await pilot.press("q")
        assert app.return_code == 0
        return snap, bar_text, log, table_lines

    snap, bar_text, log, table_lines = asyncio.run(go())

    # debugfs: the module's counters, as the module printed them
    assert snap.counters.errors == before["errors"]
    assert snap.counters.watchdog_expiries == before["watchdog_expiries"]
    assert f"jobs {snap.counters.jobs}" in bar_text and f"done {snap.counters.done}" in bar_text
    assert f"debugfs {DEBUGFS}" in snap.status
    # debugfs in-flight entries seen while decoding, with the daemon's frame numbers
    rows = [r for s in source.seen for r in s.inflight]
    assert rows, f"no in-flight entry in {len(source.seen)} snapshots"
    assert {r.codec for r in rows} == {"vp9"}
    assert {r.state for r in rows} <= {"sent", "decoding", "parked", "held", "done"}
    joined = [r for r in rows if r.frame is not None]
    assert joined and all(r.state != "sent" for r in joined), (len(source.seen), rows[:20])
    assert max(r.frame for r in joined) <= CLIP["frames"] * 2       # hidden frames count too
    # debugfs queues: the decoding context with all its buffers, idle ones included
    # (vb2 states), and the ones a job holds named after its entry
    streaming = [c for s in source.seen for c in s.contexts
                 if c.codec == "vp9" and c.output.streaming and c.capture.streaming]
    assert streaming, [s.contexts for s in source.seen][:5]
    assert all(len(c.output.buffers) >= 2 and len(c.capture.buffers) >= 2 for c in streaming)
    states = {b.state for c in streaming for b in c.output.buffers + c.capture.buffers}
    assert states & {"dequeued", "queued", "in_request", "done"}, states
    assert states & {"claimed", "parked", "held"}, states
    assert states <= {"dequeued", "in_request", "queued", "claimed", "parked", "held", "done",
                      "error"}, states
    assert on_screen and on_screen <= {r.cookie for r in rows}, (on_screen, rows[:10])
    assert table_lines[0].split() == ["cookie", "ctx", "codec", "frame", "out", "cap", "state",
                                      "age", "ms"] and "idle" in table_lines[1]
    # the daemon's socket: its pid, its messages in the event log
    pid = int(snap.status.split("daemon pid ")[1].split()[0])
    assert pid != os.getpid()
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert "daedalus_v4l2" in cmdline and "daemon" in cmdline, cmdline
    kinds = {e.kind for e in log.events}
    assert {"stream_open", "decode", "frame", "inflight"} <= kinds, kinds
    decodes = [e for e in log.events if e.kind == "decode"]
    assert len(decodes) >= min(CLIP["frames"], 100), len(decodes)
