"""How much the TUI slows decoding, and how often its screen updates.

The same packets (a VP9 clip, repeated ``--repeat`` times so that a decode lasts
seconds, i.e. dozens of screen updates) are decoded through the simulated stack:

* bare:    ``open_decoder("sim")`` + ``decode_through`` (what `decode` does);
* source:  the TUI's ``SimSource`` worker thread alone (its event tracking,
           no app, no snapshots): the cost of being watchable;
* tui:     what ``demo --tui`` and ``decode --tui`` run: ``ProcessSimSource``
           (the same SimSource in a child process) with ``DaedalusTui``
           attached headless (``App.run_test``), updating at REFRESH_HZ.  The
           source starts paused; once the app is up and has shown a snapshot
           it is resumed, and the decode is timed from there to the worker's
           last picture (the app's start-up is not decode time);
* thread:  the same with SimSource in a thread of the app's process, sharing
           its GIL (how the TUI ran before; the tests still use it, being
           deterministic): the cost the child process removes.

Runs are interleaved (bare, source, tui, thread, bare, ...) so drift in the machine's
load hits all three; medians are reported, with the load average before and
after (the machine is shared).  Besides wall time it prints process CPU time
and the UI thread's CPU per screen update, which a loaded machine disturbs
much less: on 2 shared cores at load 5-10 single runs vary by +-40 %.

    python benchmarks/tui_overhead.py [--frames 60] [--repeat 8] [--size 352x288] [--runs 5]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from daedalus_v4l2.backends_runtime import open_decoder
from daedalus_v4l2.decode import decode_through
from daedalus_v4l2.synth import VP9_GOOD, make_clip
from daedalus_v4l2.tui.app import DaedalusTui
from daedalus_v4l2.tui.process_source import ProcessSimSource
from daedalus_v4l2.tui.sim_source import Clip, SimSource


CPU: dict[str, list[float]] = {"bare": [], "source": [], "tui": [], "thread": []}  # CPU s
UI_MS: dict[str, list[float]] = {"tui": [], "thread": []}   # UI thread CPU ms per update


def bare(clip: Clip) -> float:
    start = time.perf_counter()
    cpu = time.process_time()
    with open_decoder("sim") as opened:
        n = sum(1 for _ in decode_through(opened.decoder, clip.codec, clip.width, clip.height,
                                          clip.packets))
    assert n == len(clip.packets) or n
    CPU["bare"].append(time.process_time() - cpu)
    return time.perf_counter() - start


def source_only(clip: Clip) -> float:
    source = SimSource(clip, loop=False, realtime=True)
    start = time.perf_counter()
    cpu = time.process_time()
    source.start(lambda snapshot: None)
    while not source.finished:
        time.sleep(0.01)
    seconds = source.finished_at - start
    CPU["source"].append(time.process_time() - cpu)
    source.stop()
    assert source.error is None, source.error
    return seconds


def child_cpu(pid: int) -> float:
    """CPU seconds (user + system) a live process used so far, from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def with_tui(clip: Clip, mode: str = "tui") -> tuple[float, float]:
    """``mode`` "tui": the sim in a child process (ProcessSimSource); "thread":
    in a thread of this process (SimSource)."""
    async def go():
        if mode == "tui":
            source = ProcessSimSource(clip, loop=False, realtime=True, start_paused=True)
        else:
            source = SimSource(clip, loop=False, realtime=True, start_paused=True)
        app = DaedalusTui(source)
        async with app.run_test(size=(120, 40)) as pilot:
            while app.updates < 2:
                await pilot.pause(0.01)
            first = app.updates
            start = time.perf_counter()
            cpu, ui = time.process_time(), time.thread_time()
            child = child_cpu(source.pid) if mode == "tui" else 0.0
            source.set_paused(False)
            while not source.finished:
                # the worker times itself: a slow poll costs nothing, and a plain sleep
                # wakes the UI thread less than Pilot.pause (which waits for idle widgets)
                await asyncio.sleep(0.25)
            seconds = source.finished_at - start
            updates = app.updates - first
            child = child_cpu(source.pid) - child if mode == "tui" else 0.0
            CPU[mode].append(time.process_time() - cpu + child)
            UI_MS[mode].append(1000 * (time.thread_time() - ui) / max(1, updates))
            assert source.error is None, source.error
            await pilot.press("q")
        source.stop()
        return seconds, updates / seconds
    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=8, help="the clip's packets, N times over")
    parser.add_argument("--size", default="352x288")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        one = Clip.from_file(make_clip(Path(tmp) / "bench.ivf", "vp9", width, height,
                                       args.frames, options=VP9_GOOD))
    clip = Clip(list(one.packets) * args.repeat, one.codec, one.width, one.height, "bench")
    frames = args.frames * args.repeat
    bare(clip)                                   # warm up libavcodec and the imports
    for mode in ("tui", "thread"):               # and Textual
        with_tui(Clip(one.packets, one.codec, one.width, one.height), mode)
    for values in (*CPU.values(), *UI_MS.values()):
        values.clear()
    load_before = os.getloadavg()
    wall: dict[str, list[float]] = {"bare": [], "source": [], "tui": [], "thread": []}
    rates: dict[str, list[float]] = {"tui": [], "thread": []}
    for _ in range(args.runs):                   # interleaved, so drift hits all of them
        wall["bare"].append(bare(clip))
        wall["source"].append(source_only(clip))
        for mode in ("tui", "thread"):
            seconds, rate = with_tui(clip, mode)
            wall[mode].append(seconds)
            rates[mode].append(rate)
    load_after = os.getloadavg()
    med = {k: statistics.median(v) for k, v in wall.items()}
    cpu = {k: statistics.median(v) for k, v in CPU.items()}
    p = med["bare"]

    def runs(xs):
        return [round(x, 3) for x in xs]
    print(f"clip: VP9 {width}x{height}, {args.frames} frames x {args.repeat} = {frames} pictures, "
          f"{args.runs} interleaved runs each (median); {os.cpu_count()} CPUs")
    print(f"load average (1/5/15 min): before {' '.join(f'{x:.2f}' for x in load_before)}, "
          f"after {' '.join(f'{x:.2f}' for x in load_after)}")
    labels = {"bare": "bare decode", "source": "SimSource alone",
              "tui": "TUI (sim in a child process, what demo --tui runs)",
              "thread": "TUI (sim in the app's process)"}
    for key, label in labels.items():
        print(f"{label + ':':<52} {med[key]:.3f} s ({frames / med[key]:.0f} fps)   "
              f"runs {runs(wall[key])}")
    for key in ("tui", "thread"):
        print(f"{labels[key]}: decode time / bare {med[key] / p:.3f} -> overhead "
              f"{100 * (med[key] / p - 1):+.1f} % (target < 5 %); / SimSource alone "
              f"{100 * (med[key] / med['source'] - 1):+.1f} %")
        print(f"    CPU s (all processes) {cpu[key]:.3f} vs bare {cpu['bare']:.3f}; UI thread "
              f"{statistics.median(UI_MS[key]):.1f} ms CPU per screen update; "
              f"{statistics.median(rates[key]):.1f} updates/s (runs "
              f"{[round(r, 1) for r in rates[key]]})")


if __name__ == "__main__":
    main()
