"""How much the TUI slows decoding, and how often its screen updates.

The same packets (a VP9 clip, repeated ``--repeat`` times so that a decode lasts
seconds, i.e. dozens of screen updates) are decoded through the simulated stack:

* bare:    ``open_decoder("sim")`` + ``decode_through`` (what `decode` does);
* source:  the TUI's ``SimSource`` worker thread alone (its event tracking,
           no app, no snapshots): the cost of being watchable;
* tui:     ``SimSource`` with ``DaedalusTui`` attached headless
           (``App.run_test``), updating at REFRESH_HZ.  The source starts
           paused; once the app is up and has shown a snapshot it is resumed,
           and the decode is timed from there to the worker's last picture
           (the app's start-up is not decode time).

Runs are interleaved (bare, source, tui, bare, ...) so drift in the machine's
load hits all three; medians are reported, with the load average before and
after (the machine is shared).  Besides wall time it prints process CPU time
and the UI thread's CPU per screen update, which a loaded machine disturbs
much less: on 2 shared cores at load 5-10 single runs vary by +-40 %.

    python benchmarks/tui_overhead.py [--frames 150] [--repeat 2] [--size 1920x1080] [--runs 7]
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
from daedalus_v4l2.tui.app import SIM_SWITCH_INTERVAL, DaedalusTui
from daedalus_v4l2.tui.sim_source import Clip, SimSource


CPU: dict[str, list[float]] = {"bare": [], "source": [], "tui": []}   # process CPU s
UI_MS: list[float] = []      # the UI thread's CPU ms per screen update (app + pilot)


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


def with_tui(clip: Clip) -> tuple[float, float]:
    async def go():
        source = SimSource(clip, loop=False, realtime=True, start_paused=True)
        app = DaedalusTui(source, switch_interval=SIM_SWITCH_INTERVAL)   # as run_app does
        async with app.run_test(size=(120, 40)) as pilot:
            while app.updates < 2:
                await pilot.pause(0.01)
            first = app.updates
            start = time.perf_counter()
            cpu, ui = time.process_time(), time.thread_time()
            source.set_paused(False)
            while not source.finished:
                # the worker times itself: a slow poll costs nothing, and a plain sleep
                # wakes the UI thread less than Pilot.pause (which waits for idle widgets)
                await asyncio.sleep(0.25)
            seconds = source.finished_at - start
            updates = app.updates - first
            CPU["tui"].append(time.process_time() - cpu)
            UI_MS.append(1000 * (time.thread_time() - ui) / max(1, updates))
            assert source.error is None, source.error
            await pilot.press("q")
        return seconds, updates / seconds
    return asyncio.run(go())


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
    with_tui(Clip(one.packets[:30], one.codec, one.width, one.height))   # and Textual
    for values in (*CPU.values(), UI_MS):
        values.clear()
    load_before = os.getloadavg()
    plain, src, tui, rates = [], [], [], []
    for _ in range(args.runs):                   # interleaved, so drift hits all three
        plain.append(bare(clip))
        src.append(source_only(clip))
        seconds, rate = with_tui(clip)
        tui.append(seconds)
        rates.append(rate)
    load_after = os.getloadavg()
    p, s, t = statistics.median(plain), statistics.median(src), statistics.median(tui)

    def runs(xs):
        return [round(x, 3) for x in xs]
    print(f"clip: VP9 {width}x{height}, {args.frames} frames x {args.repeat} = {frames} pictures, "
          f"{args.runs} interleaved runs each (median); {os.cpu_count()} CPUs")
    print(f"load average (1/5/15 min): before {' '.join(f'{x:.2f}' for x in load_before)}, "
          f"after {' '.join(f'{x:.2f}' for x in load_after)}")
    print(f"bare decode:        {p:.3f} s  ({frames / p:.0f} fps)   runs {runs(plain)}")
    print(f"SimSource alone:    {s:.3f} s  ({frames / s:.0f} fps)   runs {runs(src)}")
    print(f"with TUI attached:  {t:.3f} s  ({frames / t:.0f} fps)   runs {runs(tui)}")
    # Each run's ratio to the bare run just before it: drift in the machine's speed
    # (a shared VM: +-20 % between runs) cancels out of the pairs better than out of medians.
    paired = statistics.median(x / b for x, b in zip(tui, plain))
    print(f"ratio (TUI / bare): {t / p:.3f} (medians), {paired:.3f} (median of paired runs)  "
          f"-> overhead {100 * (paired - 1):+.1f} % (target < 5 %)")
    print(f"ratio (TUI / SimSource alone): {t / s:.3f}  -> {100 * (t / s - 1):+.1f} %")
    med = {k: statistics.median(v) for k, v in CPU.items()}
    print(f"process CPU s:      bare {med['bare']:.3f}, SimSource {med['source']:.3f}, "
          f"TUI {med['tui']:.3f}  -> TUI / bare CPU {med['tui'] / med['bare']:.3f}")
    print(f"UI thread CPU:      {statistics.median(UI_MS):.1f} ms per screen update "
          f"(runs {[round(x, 1) for x in UI_MS]})")
    print(f"screen updates:     {statistics.median(rates):.1f} per second   runs "
          f"{[round(r, 1) for r in rates]}")


if __name__ == "__main__":
    main()
