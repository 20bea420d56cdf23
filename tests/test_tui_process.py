"""The TUI's simulation in a child process (tui/process_source.py): what `demo --tui`
and `decode --tui` run, so the screen and the decode do not share a GIL.

The deterministic screens (snapshots, stepping) are tested on the in-thread
SimSource in test_tui.py; here: the same app drives the child the same way,
pictures written by the child are the ones `decode` writes, and a child that
dies is shown on screen instead of freezing it.
"""
from __future__ import annotations

import asyncio
import os
import signal

import pytest

from daedalus_v4l2 import cli
from daedalus_v4l2.synth import VP9_GOOD
from daedalus_v4l2.tui import run as tui_run
from daedalus_v4l2.tui.app import DaedalusTui
from daedalus_v4l2.tui.process_source import ProcessSimSource
from daedalus_v4l2.tui.sim_source import Clip

from .test_tui import RecordingTui, wait_for


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    from .clips import cached_clip
    return cached_clip(tmp_path_factory.mktemp("tui-process"), ".ivf", codec="vp9", width=176,
                       height=144, frames=24, options=VP9_GOOD)


def test_the_app_drives_the_child(clip_path):
    """Pause, step, faults and quit reach the child; its snapshots reach the screen."""
    async def go():
        source = ProcessSimSource(Clip.from_file(clip_path), loop=True, watchdog_ms=300,
                                  start_paused=True)
        app = RecordingTui(source)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.snapshot is not None and source.ready.is_set())
            assert source.pid != os.getpid() and source.exitcode is None
            assert not app.snapshot.running
            held = app.snapshot.events_total        # paused at the first checkpoint
            await pilot.press("s")
            await wait_for(pilot, lambda: app.snapshot.events_total == held + 1)
            assert not app.snapshot.running
            await pilot.press("space")
            await wait_for(pilot, lambda: app.snapshot.running and app.snapshot.counters.done > 30)
            await pilot.press("k")
            await wait_for(pilot, lambda: "KILLED" in app.snapshot.status
                           and app.snapshot.counters.errors > 0)
            await pilot.press("r")
            done = app.snapshot.counters.done
            await wait_for(pilot, lambda: "daemon up" in app.snapshot.status
                           and app.snapshot.counters.done > done + 10)
            kinds = {e.kind for e in app.seen_events}
            assert {"fault", "daemon_gone"} <= kinds, kinds
            assert source.error is None
            await pilot.press("q")
        assert app.return_code == 0
        source.stop()
        assert source.exitcode == 0
    asyncio.run(go())


def test_a_dead_child_is_shown_not_waited_for(clip_path):
    async def go():
        source = ProcessSimSource(Clip.from_file(clip_path), loop=True, pace_fps=30)
        app = DaedalusTui(source)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.snapshot is not None
                           and app.snapshot.counters.done > 2)
            os.kill(source.pid, signal.SIGKILL)
            await wait_for(pilot, lambda: app.snapshot.status.startswith("STOPPED"))
            assert "killed by SIGKILL" in app.snapshot.status
            assert source.finished and "SIGKILL" in source.error
            await pilot.press("q")
        assert app.return_code == 0
        source.stop()
        assert source.exitcode == -signal.SIGKILL
    asyncio.run(go())


def test_decode_tui_writes_what_decode_writes(clip_path, tmp_path, monkeypatch):
    """The child writes the pictures; the file equals plain `decode`'s output."""
    def run_app(source):
        async def go():
            app = DaedalusTui(source)
            async with app.run_test(size=(80, 24)) as pilot:
                await wait_for(pilot, lambda: source.finished and app.snapshot is not None
                               and "finished" in app.snapshot.status)
                await pilot.press("q")
            source.stop()
            return app.return_code
        return asyncio.run(go())

    plain, tui = tmp_path / "plain.nv12", tmp_path / "tui.nv12"
    tui.write_bytes(b"stale bytes from an earlier run")
    assert cli.main(["decode", str(clip_path), "-o", str(plain), "--quiet"]) == 0
    monkeypatch.setattr(tui_run, "run_app", run_app)
    assert cli.main(["decode", str(clip_path), "-o", str(tui), "--tui"]) == 0
    assert tui.stat().st_size == 24 * 176 * 144 * 3 // 2
    assert tui.read_bytes() == plain.read_bytes()


def test_on_picture_is_refused(clip_path):
    with pytest.raises(TypeError, match="output"):
        ProcessSimSource(Clip.from_file(clip_path), on_picture=print)
