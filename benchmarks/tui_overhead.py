"""How much the TUI slows decoding, and how often its screen updates.

The same packets (a VP9 clip, repeated ``--repeat`` times so that a decode lasts
seconds, i.e. dozens of screen updates) are decoded through the simulated stack:

* bare:     ``open_decoder("sim")`` + ``decode_through`` (what `decode` does);
* process:  what `demo --tui` and `decode --tui` run: ``ProcessSource`` (the
            simulation in a child process) with ``DaedalusTui`` attached
            headless (``App.run_test``), updating at REFRESH_HZ, its thread at
            nice +UI_NICE as ``run_app`` sets it;
* thread:   the same with ``SimSource`` (the simulation in a thread of the
            app's process, sharing its GIL), for comparison.

For the TUI runs the source starts paused; once the app is up and has shown a
snapshot it is resumed, and the decode is timed from there to the worker's
last picture (the app's and the child's start-up are not decode time).

Runs are interleaved (bare, process, thread, bare, ...) so drift in the
machine's load hits all three; medians are reported, and each TUI run is also
compared with the bare run just before it.  The load average before and after
is printed (the machine is shared), and so is the UI thread's CPU per screen
update, which a loaded machine disturbs much less.

    python benchmarks/tui_overhead.py [--frames 150] [--repeat 2] [--size 1920x1080] [--runs 7]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from daedalus_v4l2.backends_runtime import open_decoder
from daedalus_v4l2.decode import decode_through
from daedalus_v4l2.synth import VP9_GOOD, make_clip
from daedalus_v4l2.tui.app import SIM_SWITCH_INTERVAL, UI_NICE, DaedalusTui
from daedalus_v4l2.tui.process_source import ProcessSource
from daedalus_v4l2.tui.sim_source import Clip, SimSource

SOURCES = {"process": ProcessSource, "thread": SimSource}
UI_MS: dict[str, list[float]] = {name: [] for name in SOURCES}   # UI thread CPU ms per update


def bare(clip: Clip) -> float:
    start = time.perf_counter()
    with open_decoder("sim") as opened:
        n = sum(1 for _ in decode_through(opened.decoder, clip.codec, clip.width, clip.height,
                                          clip.packets))
    assert n == len(clip.packets) or n
    return time.perf_counter() - start


def with_tui(clip: Clip, kind: str) -> tuple[float, float]:
    async def go():
        source = SOURCES[kind](clip, loop=False, realtime=True, start_paused=True)
        # as run_app does: only a simulation in this process shares the GIL
        app = DaedalusTui(source, switch_interval=SIM_SWITCH_INTERVAL if kind == "thread" else None,
                          ui_nice=UI_NICE)
        async with app.run_test(size=(120, 40)) as pilot:
            while app.updates < 2:
                await pilot.pause(0.01)
            first = app.updates
            start = time.perf_counter()
            ui = time.thread_time()
            source.set_paused(False)
            while not source.finished:
                # the worker times itself: a slow poll costs nothing, and a plain sleep
                # wakes the UI thread less than Pilot.pause (which waits for idle widgets)
                await asyncio.sleep(0.25)
            # perf_counter is CLOCK_MONOTONIC: the child's finished_at is on this clock
            seconds = source.finished_at - start
            updates = app.updates - first
            UI_MS[kind].append(1000 * (time.thread_time() - ui) / max(1, updates))
            assert source.error is None, source.error
            await pilot.press("q")
        source.stop()
        return seconds, updates / seconds
    # In a thread of its own: the app lowers its thread's priority (UI_NICE), which an
    # unprivileged process cannot raise back; the bare runs must not run at it.
    result = []
    runner = threading.Thread(target=lambda: result.append(asyncio.run(go())))
    runner.start()
    runner.join()
    return result[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--repeat", type=int, default=2, help="the clip's packets, N times over")
    parser.add_argument("--size", default="1920x1080",
                        help="1920x1080 (default): the performance benchmark's VP9 clip "
                             "(daedalus_v4l2.bench, 4 tile columns, cached); else a synthetic clip")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    if (width, height) == (1920, 1080):
        from daedalus_v4l2.bench import clip_path
        one = Clip.from_file(clip_path("vp9", args.frames))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            one = Clip.from_file(make_clip(Path(tmp) / "bench.ivf", "vp9", width, height,
                                           args.frames, options=VP9_GOOD))
    clip = Clip(list(one.packets) * args.repeat, one.codec, one.width, one.height, "bench")
    frames = args.frames * args.repeat
    bare(clip)                                   # warm up libavcodec and the imports
    for kind in SOURCES:                         # and Textual
        with_tui(Clip(one.packets[:30], one.codec, one.width, one.height), kind)
    for values in UI_MS.values():
        values.clear()
    load_before = os.getloadavg()
    plain: list[float] = []
    tui: dict[str, list[float]] = {kind: [] for kind in SOURCES}
    rates: dict[str, list[float]] = {kind: [] for kind in SOURCES}
    for _ in range(args.runs):                   # interleaved, so drift hits all three
        plain.append(bare(clip))
        for kind in SOURCES:
            seconds, rate = with_tui(clip, kind)
            tui[kind].append(seconds)
            rates[kind].append(rate)
    load_after = os.getloadavg()

    def runs(xs):
        return [round(x, 3) for x in xs]
    p = statistics.median(plain)
    print(f"clip: VP9 {width}x{height}, {args.frames} frames x {args.repeat} = {frames} pictures, "
          f"{args.runs} interleaved runs each (median); {os.cpu_count()} CPUs")
    print(f"load average (1/5/15 min): before {' '.join(f'{x:.2f}' for x in load_before)}, "
          f"after {' '.join(f'{x:.2f}' for x in load_after)}")
    print(f"bare decode:            {p:.3f} s  ({frames / p:.0f} fps)   runs {runs(plain)}")
    for kind, label in (("process", "TUI, sim in a process"), ("thread", "TUI, sim in a thread ")):
        t = statistics.median(tui[kind])
        # Each run's ratio to the bare run just before it: drift in the machine's speed
        # (a shared VM: +-20 % between runs) cancels out of the pairs better than out of medians.
        paired = statistics.median(x / b for x, b in zip(tui[kind], plain))
        print(f"{label}:  {t:.3f} s  ({frames / t:.0f} fps)   runs {runs(tui[kind])}")
        print(f"    overhead {100 * (paired - 1):+.1f} % (median of paired runs; medians: "
              f"{100 * (t / p - 1):+.1f} %){'  <- what demo/decode --tui run, target < 5 %' if kind == 'process' else ''}")
        print(f"    screen updates {statistics.median(rates[kind]):.1f} per second, UI thread CPU "
              f"{statistics.median(UI_MS[kind]):.1f} ms per update")

if __name__ == "__main__":
    main()
