"""The TUI on the simulated stack: App.run_test() + Pilot, condition-based waits, SVG snapshots.

Snapshots run the sim without real time (``realtime=False``) and with a clock
that moves per event (``StepClock``), and hold the worker at a fixed event
count, so what is on screen is a function of the clip and the seed only.

Nothing here asserts on time: every wait is for a condition, with a generous
timeout (the machine may be loaded), and what a test checks does not depend
on how many screen updates happened on the way (events are collected from
every snapshot the app received; errors and faults are never skipped).
"""
from __future__ import annotations

import asyncio
import time

import pytest
from textual.app import App

from daedalus_v4l2 import cli
from daedalus_v4l2.synth import VP9_GOOD
from daedalus_v4l2.tui import run as tui_run
from daedalus_v4l2.tui.app import UI_NICE, DaedalusTui
from daedalus_v4l2.tui.event_log import EventLog
from daedalus_v4l2.tui.inflight_table import COLUMNS, GAP, InflightTable
from daedalus_v4l2.tui.model import InflightRow, LogEvent
from daedalus_v4l2.tui.process_source import ProcessSource
from daedalus_v4l2.tui.sim_source import Clip, SimSource, StepClock

TIMEOUT = 90.0          # seconds; only reached when something is wrong (or the machine stalls)

FRAME_THREADS = {"thread_type": "FRAME", "thread_count": 3}

# The interactive paths run on both sources: the simulation in a thread of the
# test's process (SimSource), and in a child process over a pipe (ProcessSource,
# what `demo --tui` and `decode --tui` use).
SOURCES = pytest.mark.parametrize("Source", [SimSource, ProcessSource],
                                  ids=["thread", "process"])


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory):
    from .clips import cached_clip
    path = cached_clip(tmp_path_factory.mktemp("tui"), ".ivf", codec="vp9", width=176,
                       height=144, frames=24, options=VP9_GOOD)
    return Clip.from_file(path)


def frozen_source(clip, **options) -> SimSource:
    """For snapshots.  They stop at <= 160 events: fewer than a snapshot's event ring
    (sim_source.EVENT_RING) and than the log writes at once (event_log.PER_UPDATE), so
    no "events not shown" marker can appear, whatever the update rate was."""
    return SimSource(clip, loop=False, realtime=False, clock=StepClock(), start_paused=True,
                     **options)


class RecordingTui(DaedalusTui):
    """The app, keeping every event of every snapshot it was sent (the log shows
    the newest only): what a test looks for does not depend on the update rate."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen_events = []

    def on_snapshot_ready(self, message) -> None:
        self.seen_events.extend(message.snapshot.events)
        super().on_snapshot_ready(message)


async def wait_for(pilot, predicate, timeout: float = TIMEOUT) -> None:
    """Let the app run until ``predicate()`` holds (a condition, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            app = pilot.app
            log = app.query_one(EventLog)
            raise AssertionError(
                f"condition not reached in {timeout:.0f} s ({app.snapshot and app.snapshot.events_total} "
                f"events, {app.updates} updates, status {app.snapshot and app.snapshot.status!r}, "
                f"log {len(log.lines)} lines at {log.scroll_y}/{log.max_scroll_y})")
        await pilot.pause(0.05)
    await pilot.pause()          # one more round: the widgets render what arrived


def at_event(app, count: int, running: bool | None = None):
    def reached() -> bool:
        s = app.snapshot
        log = app.query_one(EventLog)
        return s is not None and s.events_total >= count and \
            (running is None or s.running == running) and \
            log.caught_up and len(log.lines) > 0 and \
            log.scroll_y >= log.max_scroll_y                # the log caught up
    return reached


# ------------------------------------------------------------------ snapshots

def test_snapshots_cannot_skip_events():
    """See frozen_source: what keeps the snapshots independent of the update rate."""
    from daedalus_v4l2.tui import event_log, sim_source
    assert 160 < min(sim_source.EVENT_RING, event_log.PER_UPDATE)


def test_snapshot_streaming(snap_compare, small_clip):
    app = DaedalusTui(frozen_source(small_clip))

    async def run_before(pilot):
        app.source.run_until_event(160)
        await wait_for(pilot, at_event(app, 160, running=True))
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_snapshot_paused(snap_compare, small_clip):
    app = DaedalusTui(frozen_source(small_clip))

    async def run_before(pilot):
        await wait_for(pilot, at_event(app, 1, running=False))
        app.source.step(70)
        await wait_for(pilot, at_event(app, 71))
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_snapshot_parked_buffers(snap_compare, small_clip):
    app = DaedalusTui(frozen_source(small_clip, depth=8, daemon_options=FRAME_THREADS))

    async def run_before(pilot):
        app.source.run_until_event(98)
        await wait_for(pilot, at_event(app, 98))
        assert app.snapshot.counters.parked_now == 2
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_snapshot_error(snap_compare, small_clip):
    app = DaedalusTui(frozen_source(small_clip))

    async def run_before(pilot):
        app.source.run_until_event(60)
        await wait_for(pilot, at_event(app, 60))
        await pilot.press("c")                     # corrupt the next bitstream
        app.source.run_until_event(110)
        await wait_for(pilot, lambda: app.snapshot.counters.errors == 1
                       and at_event(app, 110)())
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


# ------------------------------------------------------------------ behaviour

@SOURCES
def test_pause_and_step_one_event(small_clip, Source):
    async def go():
        app = DaedalusTui(Source(small_clip, loop=True, realtime=False))
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.snapshot and app.snapshot.counters.done > 5)
            await pilot.press("space")
            await wait_for(pilot, lambda: not app.snapshot.running)
            seen = app.snapshot.events_total
            app.source.request_snapshot()
            await wait_for(pilot, lambda: app.updates > 3 and app.snapshot.events_total == seen)
            await pilot.press("s")
            await wait_for(pilot, lambda: app.snapshot.events_total == seen + 1)
            await pilot.press("space")
            await wait_for(pilot, lambda: app.snapshot.events_total > seen + 50)
            await pilot.press("q")
        assert app.return_code == 0
    asyncio.run(go())


@SOURCES
def test_dropped_response_shows_the_watchdog_path(small_clip, Source):
    async def go():
        app = RecordingTui(Source(small_clip, loop=True, realtime=False, watchdog_ms=500,
                                  pace_fps=100))
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.snapshot and app.snapshot.counters.done > 3)
            await pilot.press("d")
            await wait_for(pilot, lambda: app.snapshot.counters.watchdog_expiries == 1)
            # The fault and the watchdog's failing of the job it left waiting reached the
            # screen: errors and faults are never among the events a snapshot skips.
            await wait_for(pilot, lambda: any(e.kind == "fail" and e.detail == "watchdog"
                                              for e in app.seen_events))
            faults = [e for e in app.seen_events if e.kind == "fault"]
            assert [e.detail for e in faults] == ["drop the next response"]
            fail = next(e for e in app.seen_events if e.kind == "fail")
            assert fail.seq > faults[0].seq and fail.is_error
            assert app.snapshot.counters.errors >= 1
            done = app.snapshot.counters.done
            await wait_for(pilot, lambda: app.snapshot.counters.done > done + 20)  # and it goes on
            assert app.snapshot.counters.watchdog_expiries == 1
            await pilot.press("q")
        assert app.return_code == 0
    asyncio.run(go())


@SOURCES
def test_stall_then_kill_and_restart_the_daemon(small_clip, Source):
    async def go():
        app = DaedalusTui(Source(small_clip, loop=True, realtime=True, watchdog_ms=300,
                                 pace_fps=200))
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: app.snapshot and app.snapshot.counters.done > 3)
            await pilot.press("t")
            await wait_for(pilot, lambda: "STALLED" in app.snapshot.status)
            await wait_for(pilot, lambda: app.snapshot.counters.watchdog_expiries >= 1)
            await pilot.press("t", "k")
            await wait_for(pilot, lambda: "KILLED" in app.snapshot.status)
            errors = app.snapshot.counters.errors
            await wait_for(pilot, lambda: app.snapshot.counters.errors > errors)
            await pilot.press("r")
            await wait_for(pilot, lambda: "daemon up" in app.snapshot.status)
            done = app.snapshot.counters.done
            await wait_for(pilot, lambda: app.snapshot.counters.done > done + 20)
            assert app.source.error is None
            await pilot.press("q")
        assert app.return_code == 0
    asyncio.run(go())


def test_updates_keep_coming_while_decoding(small_clip):
    """The app asks for a snapshot REFRESH_HZ (>= 10) times a second and shows each one.
    The rate actually reached is measured by benchmarks/tui_overhead.py: a rate
    asserted here would depend on how loaded the machine is."""
    async def go():
        app = DaedalusTui(SimSource(small_clip, loop=True, pace_fps=60))
        assert app.refresh_hz >= 10
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.updates >= 1)
            first = app.snapshot.events_total
            await wait_for(pilot, lambda: app.updates >= 20
                           and app.snapshot.events_total > first)
            await pilot.press("q")
        assert app.return_code == 0
    asyncio.run(go())


def test_inflight_columns_line_up_under_their_headers():
    """Numbers right-aligned under right-aligned headers, text left-aligned: each
    value sits in its header's cells, and no column is empty."""

    class TableOnly(App):
        def compose(self):
            yield InflightTable()

    async def go():
        app = TableOnly()
        async with app.run_test(size=(80, 12)) as pilot:
            table = app.query_one(InflightTable)
            table.entries = (InflightRow(1234, 1, "vp9", 17, 3, 11, "decoding", 42),
                             InflightRow(7, 2, "h264", None, None, 0, "done", 1))
            await pilot.pause()
            return table.lines
    header, first, second = asyncio.run(go())
    spans, start = {}, 0
    for key, name, width, right in COLUMNS:
        spans[key] = (start, start + width, right)
        assert header[start:start + width] == (name.rjust(width) if right else name.ljust(width))
        start += width + GAP

    def cell(line, key):
        a, b, right = spans[key]
        text = line[a:b]
        assert text.strip(), f"{key} is empty in {line!r}"
        assert text == (text.strip().rjust(b - a) if right else text.strip().ljust(b - a))
        return text.strip()
    assert [cell(first, k) for k, *_ in COLUMNS] == \
        ["1234", "1", "vp9", "17", "3", "11", "decoding", "42"]
    assert [cell(second, k) for k, *_ in COLUMNS] == ["7", "2", "h264", "-", "-", "0", "done", "1"]


class LogOnly(App):
    def compose(self):
        yield EventLog()


def write_events(log: EventLog, start: int, n: int = 30) -> None:
    """Events ``start`` .. ``start + n - 1``, one line each, written now."""
    log.add_events(tuple(LogEvent(seq, seq, "done", 1, seq, "ok")
                         for seq in range(start, start + n)))
    log.flush()


def test_the_event_log_grows_without_a_layout_of_the_screen(monkeypatch):
    """A write that adds lines changes only the log's scrollbar, not where anything
    sits: it must not ask for a layout of the whole screen (Log's virtual_size does,
    on every write, until the log is full: each one re-rendered every widget)."""
    from textual.screen import Screen

    layouts = []
    refresh_layout = Screen._refresh_layout

    def counting(self, *args, **kwargs):
        layouts.append(args)
        return refresh_layout(self, *args, **kwargs)
    monkeypatch.setattr(Screen, "_refresh_layout", counting)

    async def go():
        app = LogOnly()
        async with app.run_test(size=(80, 12)) as pilot:
            log = app.query_one(EventLog)
            write_events(log, 0)                # more lines than fit
            await pilot.pause()
            layouts.clear()
            for start in range(30, 300, 30):
                write_events(log, start)
                await pilot.pause()
            assert layouts == []
            assert len(log.lines) == 300
            assert log.vertical_scrollbar.window_virtual_size == 300
            assert log.scroll_y == log.max_scroll_y == 300 - log.scrollable_content_region.height
            assert log.lines[-1].rstrip().endswith("#299   ok")
            await pilot.press("q")
    asyncio.run(go())


def test_the_event_log_stays_where_the_user_scrolled_until_they_scroll_back_down():
    async def go():
        app = LogOnly()
        async with app.run_test(size=(80, 12)) as pilot:
            log = app.query_one(EventLog)
            write_events(log, 0)
            await pilot.pause()
            assert log.following and log.scroll_y == log.max_scroll_y > 0
            log.scroll_to(y=0, animate=False, immediate=True)    # the user scrolls up
            await pilot.pause()
            for start in (30, 60):
                write_events(log, start)
                await pilot.pause()
                assert not log.following and log.scroll_y == 0
            log.scroll_end(animate=False, immediate=True)        # and back down
            await pilot.pause()
            write_events(log, 90)
            await pilot.pause()
            assert log.following and log.scroll_y == log.max_scroll_y
            assert log.lines[-1].rstrip().endswith("#119   ok")
            await pilot.press("q")
    asyncio.run(go())


def test_filter_and_wide_layout(small_clip):
    async def go():
        app = DaedalusTui(frozen_source(small_clip))
        async with app.run_test(size=(140, 40)) as pilot:
            app.source.run_until_event(80)
            await wait_for(pilot, at_event(app, 80))
            assert app.query_one("#main").has_class("wide")
            await pilot.press("f")
            await wait_for(pilot, lambda: app.query_one(EventLog).ctx_filter == 1)
            await pilot.press("f")
            await wait_for(pilot, lambda: app.query_one(EventLog).ctx_filter is None)
            await pilot.resize_terminal(80, 24)
            await wait_for(pilot, lambda: not app.query_one("#main").has_class("wide"))
            await pilot.press("q")
        assert app.return_code == 0
    asyncio.run(go())


def test_demo_tui_exits_0_on_q(monkeypatch):
    """`daedalus-v4l2 demo --tui`: the app runs under run_test, the simulation in a child
    process; q quits with 0 and the child exits with 0."""
    seen = {}

    def run_app(source):
        async def go():
            app = DaedalusTui(source)
            async with app.run_test(size=(80, 24)) as pilot:
                await wait_for(pilot, lambda: app.snapshot and app.snapshot.counters.done > 8)
                seen["loops"] = source.loops
                await pilot.press("q")
            source.stop()
            assert isinstance(source, ProcessSource)
            assert source.exitcode == 0 and not source._process.is_alive()
            return app.return_code
        return asyncio.run(go())

    monkeypatch.setattr(tui_run, "run_app", run_app)
    assert cli.main(["demo", "--tui", "--frames", "4", "--size", "64x48", "--fps", "0"]) == 0
    assert seen["loops"] >= 1          # a 4-frame clip: it looped to get past 8 pictures


def test_decode_tui_writes_the_pictures_decode_writes(tmp_path, monkeypatch):
    """`decode --tui`: the child process writes the pictures to -o, byte for byte what
    `decode` without the TUI writes, and the command exits 0 once the clip is done."""
    from .clips import cached_clip
    clip = cached_clip(tmp_path, ".ivf", codec="vp9", width=176, height=144, frames=12,
                       options=VP9_GOOD)
    plain, watched = tmp_path / "plain.yuv", tmp_path / "watched.yuv"
    assert cli.main(["decode", str(clip), "-o", str(plain), "-q"]) == 0
    seen = {}

    def run_app(source):
        async def go():
            app = DaedalusTui(source)
            async with app.run_test(size=(80, 24)) as pilot:
                await wait_for(pilot, lambda: source.finished and app.snapshot is not None)
                await pilot.press("q")
            return app.return_code
        code = asyncio.run(go())
        source.stop()
        seen["exitcode"] = source.exitcode
        return code

    monkeypatch.setattr(tui_run, "run_app", run_app)
    assert cli.main(["decode", str(clip), "-o", str(watched), "--tui"]) == 0
    assert seen["exitcode"] == 0         # it stopped when asked, not terminated
    assert watched.read_bytes() == plain.read_bytes() and plain.stat().st_size > 0


@pytest.mark.parametrize("signame", ["SIGKILL", "SIGINT"])
def test_a_signal_to_the_simulation_process(small_clip, signame):
    """SIGKILL: the screen keeps its last picture of the state, says why in the status
    line and the log, and nothing waits for the child.  SIGINT (the terminal's Ctrl+C
    reaches its whole process group): the child goes on; quitting is the app's call."""
    import os
    import signal

    async def go():
        source = ProcessSource(small_clip, loop=True, realtime=True, pace_fps=100)
        app = RecordingTui(source)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.snapshot and app.snapshot.counters.done > 3)
            os.kill(source._process.pid, getattr(signal, signame))
            if signame == "SIGKILL":
                await wait_for(pilot, lambda: "STOPPED" in app.snapshot.status)
                assert source.error == "the simulation process exited (code -9)"
                assert not app.snapshot.running and app.snapshot.counters.done > 3
                assert any(e.kind == "worker_error" and "code -9" in e.detail
                           for e in app.seen_events)
                await pilot.press("space", "k")     # commands to a dead child are dropped
            else:
                done = app.snapshot.counters.done
                await wait_for(pilot, lambda: app.snapshot.counters.done > done + 10)
                assert source.error is None and source._process.is_alive()
            await pilot.press("q")
        assert app.return_code == 0
        assert source.exitcode == (-9 if signame == "SIGKILL" else 0)
    asyncio.run(go())


def test_decode_tui_exits_1_when_the_simulation_process_died(tmp_path, monkeypatch):
    from .clips import cached_clip
    import os
    import signal
    clip = cached_clip(tmp_path, ".ivf", codec="vp9", width=176, height=144, frames=12,
                       options=VP9_GOOD)

    def run_app(source):
        async def go():
            app = DaedalusTui(source)
            async with app.run_test(size=(80, 24)) as pilot:
                await wait_for(pilot, lambda: source.finished and app.snapshot is not None)
                os.kill(source._process.pid, signal.SIGKILL)
                await wait_for(pilot, lambda: "STOPPED" in app.snapshot.status)
                await pilot.press("q")
            return app.return_code
        return asyncio.run(go())

    monkeypatch.setattr(tui_run, "run_app", run_app)
    assert cli.main(["decode", str(clip), "-o", str(tmp_path / "out.yuv"), "--tui"]) == 1


def test_decode_tui_refuses_an_unreadable_file_before_the_screen_opens(tmp_path, monkeypatch,
                                                                       capsys):
    bad = tmp_path / "bad.ivf"
    bad.write_bytes(b"DKIF" + bytes(60))
    monkeypatch.setattr(tui_run, "run_app", lambda source: pytest.fail("the app was opened"))
    assert cli.main(["decode", str(bad), "-o", str(tmp_path / "out.yuv"), "--tui"]) != 0
    assert "bad.ivf" in capsys.readouterr().err


def test_a_source_that_cannot_start_says_so_on_screen(small_clip):
    async def go():
        source = ProcessSource(small_clip, daemon_options={"unpicklable": lambda: 0})
        app = DaedalusTui(source)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.snapshot is not None and "STOPPED" in
                           app.snapshot.status)
            assert source.error.startswith("starting the simulation process:")
            assert source.finished
            await pilot.press("q")
        assert app.return_code == 0
    asyncio.run(go())


def test_the_childs_state_never_clears_an_error_and_sets_finished_last(small_clip):
    source = ProcessSource(small_clip)
    source.error = "the simulation's pipe: EOFError"
    seen = []

    class Watch(dict):
        def items(self):
            for name, value in super().items():
                seen.append((name, source.finished))
                yield name, value

    source._take_state(Watch(finished=True, error=None, failed_pictures=2, finished_at=1.5))
    assert source.error == "the simulation's pipe: EOFError" and source.failed_pictures == 2
    assert source.finished and source.finished_at == 1.5
    assert all(finished is False for _, finished in seen)   # nothing was set after it


def test_process_source_refuses_an_unknown_fault_at_once(small_clip):
    with pytest.raises(ValueError, match="unknown fault"):
        ProcessSource(small_clip).inject("melt")


def test_a_sim_in_a_child_process_leaves_the_gil_switch_interval_alone(small_clip, monkeypatch):
    import sys
    before = sys.getswitchinterval()
    seen = {}

    def run(app):
        seen["interval"], seen["nice"] = app.switch_interval, app.ui_nice
        return 0

    monkeypatch.setattr(DaedalusTui, "run", run)
    assert tui_run.run_app(ProcessSource(small_clip)) == 0
    assert seen["interval"] is None and sys.getswitchinterval() == before
    assert seen["nice"] == UI_NICE > 0


def test_the_screen_yields_to_the_decode_but_the_child_does_not(small_clip):
    """With ui_nice the app's thread runs at a lower priority while it is up; the
    simulation's process, spawned before that, keeps the priority it had.  (In a
    thread of its own: an unprivileged thread cannot get its priority back.)"""
    import os
    import threading
    seen = {}

    def app_thread():
        async def go():
            source = ProcessSource(small_clip, loop=True, pace_fps=60)
            app = DaedalusTui(source, ui_nice=UI_NICE)
            tid = threading.get_native_id()
            seen["before"] = os.getpriority(os.PRIO_PROCESS, tid)
            async with app.run_test(size=(80, 24)) as pilot:
                await wait_for(pilot, lambda: app.snapshot and app.snapshot.counters.done > 2)
                seen["during"] = os.getpriority(os.PRIO_PROCESS, tid)
                seen["child"] = os.getpriority(os.PRIO_PROCESS, source._process.pid)
                await pilot.press("q")
            seen["code"] = app.return_code
        asyncio.run(go())

    runner = threading.Thread(target=app_thread)
    runner.start()
    runner.join(TIMEOUT)
    assert seen["code"] == 0
    assert seen["during"] == min(19, seen["before"] + UI_NICE)
    assert seen["child"] == seen["before"]


def test_the_gil_switch_interval_is_shortened_while_the_sim_runs(small_clip, monkeypatch):
    """run_app gives a sim source SIM_SWITCH_INTERVAL (the decode thread gets the GIL
    back sooner from a repaint) and the previous interval comes back on exit."""
    import sys

    from daedalus_v4l2.tui.app import SIM_SWITCH_INTERVAL
    before = sys.getswitchinterval()
    seen = {}

    def run(app):
        async def go():
            async with app.run_test(size=(80, 24)) as pilot:
                await wait_for(pilot, lambda: app.snapshot is not None)
                seen["during"] = sys.getswitchinterval()
                await pilot.press("q")
            return app.return_code
        return asyncio.run(go())

    monkeypatch.setattr(DaedalusTui, "run", run)
    monkeypatch.setattr(tui_run, "UI_NICE", 0)   # the app runs in this thread: keep its priority
    assert tui_run.run_app(frozen_source(small_clip)) == 0
    assert seen["during"] == pytest.approx(SIM_SWITCH_INTERVAL) != before
    assert sys.getswitchinterval() == before


def test_the_overhead_benchmark_compares_each_variant_with_its_own_bare_decode():
    """benchmarks/tui_overhead.py, tiny: every variant runs and is paired with the bare
    decode it stands for (a child process with a new process, a thread with this one)."""
    import pathlib
    import subprocess
    import sys

    script = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "tui_overhead.py"
    done = subprocess.run([sys.executable, str(script), "--runs", "1", "--frames", "8",
                           "--repeat", "1", "--size", "176x144"],
                          capture_output=True, text=True, timeout=TIMEOUT * 2)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    for line in ("bare, a new process:", "bare, this process (warm):", "TUI, sim in a process:",
                 "sim in a process, no screen:", "TUI, sim in a thread:"):
        assert line in out, (line, out)
    overheads = [line for line in out.splitlines() if "overhead" in line]
    assert [("a new process" in line, "this process" in line) for line in overheads] == \
        [(True, False), (True, False), (False, True)], overheads
    assert "screen updates" in out and "snapshots" in out
