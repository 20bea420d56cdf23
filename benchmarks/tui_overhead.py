"""How much the TUI slows decoding, and how often its screen updates.

The same packets (a VP9 clip, repeated ``--repeat`` times so that a decode lasts
seconds, i.e. dozens of screen updates) are decoded through the simulated stack:

* bare:     ``open_decoder("sim")`` with the daemon inline, as the TUI's
            simulation runs it, + ``decode_through`` (what `decode --sim-daemon
            inline` does), twice: in a new process (as `decode` runs: the
            process's first decode) and in this one (warm: it has decoded before);
* process:  what `demo --tui` and `decode --tui` run: ``ProcessSource`` (the
            simulation in a child process) with ``DaedalusTui`` attached
            headless (``App.run_test``), updating at REFRESH_HZ, its thread at
            nice +UI_NICE as ``run_app`` sets it;
* noscreen: ``ProcessSource`` alone: the child process, its bookkeeping and
            a snapshot asked for REFRESH_HZ times a second, nothing drawn: what
            the screen adds is process minus noscreen;
* thread:   the same with ``SimSource`` (the simulation in a thread of the
            app's process, sharing its GIL), for comparison.

For the TUI runs the source starts paused; once the app is up and has shown a
snapshot it is resumed, and the decode is timed from there to the worker's
last picture (the app's and the child's start-up are not decode time).

Runs are interleaved (bare, process, noscreen, thread, bare, ...) so drift in
the machine's load hits them all; each run is compared with the bare run of
its round that matches it -- a child process's first decode (process,
noscreen) with bare in a new process, a decode in this process (thread) with
bare in this process -- and the median of those ratios is reported with their
middle half (25th-75th percentile), next to the ratio of the medians.  The
load average before and after is printed (the machine is shared), and so is
the UI thread's CPU per screen update, which a loaded machine disturbs much
less.  Every process here fixes glibc's malloc as the commands do
(daedalus_v4l2/heap.py), so that no run page-faults its pictures and another not.

    python benchmarks/tui_overhead.py [--frames 150] [--repeat 2] [--size 1920x1080] [--runs 9]
                                      [--variants process,noscreen,thread]
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from daedalus_v4l2.argtypes import choices_list, positive, size
from daedalus_v4l2.backends_runtime import open_decoder
from daedalus_v4l2.decode import decode_through
from daedalus_v4l2.heap import keep_freed_memory
from daedalus_v4l2.synth import VP9_GOOD, make_clip
from daedalus_v4l2.tui.app import REFRESH_HZ, SIM_SWITCH_INTERVAL, UI_NICE, DaedalusTui
from daedalus_v4l2.tui.process_source import ProcessSource
from daedalus_v4l2.tui.sim_source import Clip, SimSource

SOURCES = {"process": ProcessSource, "thread": SimSource}
VARIANTS = ("process", "noscreen", "thread")
LABELS = {"process": "TUI, sim in a process", "noscreen": "sim in a process, no screen",
          "thread": "TUI, sim in a thread"}
# What each is compared with: a child process's first decode with a new process's, a
# decode in this (warm) process with one in this process.
BASELINE = {"process": "new", "noscreen": "new", "thread": "warm"}
UI_MS: dict[str, list[float]] = {name: [] for name in SOURCES}   # UI thread CPU ms per update


def bare(clip: Clip) -> float:
    """Seconds from the open stack (kernel, daemon, decoder) to the last picture: where
    a TUI run's clock starts too (its worker holds, paused, once the simulated kernel
    is built and the daemon's chardev open; the first open of the stack in a process
    also imports the sim backend, 30-40 ms)."""
    # the daemon inline, as the TUI's simulation runs it (it steps the kernel itself)
    with open_decoder("sim", daemon_thread=False) as opened:
        start = time.perf_counter()
        n = sum(1 for _ in decode_through(opened.decoder, clip.codec, clip.width, clip.height,
                                          clip.packets, borrow=True))
        seconds = time.perf_counter() - start
    assert n == len(clip.packets) or n
    return seconds


def _bare_child(clip: Clip, conn) -> None:
    keep_freed_memory()     # as `decode` and ProcessSource's child do
    try:
        conn.send(("ok", bare(clip)))
    except BaseException as exc:    # the parent says what went wrong, not just EOFError
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def bare_in_a_new_process(clip: Clip) -> float:
    """``bare`` as ``daedalus-v4l2 decode`` runs it: in a process of its own that has not
    decoded anything yet (the imports are done before the clock starts).  A process's
    first decode is slower than its next ones (the heap grows, page faults, libavcodec's
    first use; the report prints both).  ProcessSource's child is such a process, so it
    is compared with this."""
    ours, theirs = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.get_context("spawn").Process(target=_bare_child, args=(clip, theirs),
                                                         daemon=True)
    child.start()
    theirs.close()
    try:
        if not ours.poll(300):
            raise RuntimeError("the bare decode in a new process took over 300 s")
        status, value = ours.recv()
        if status != "ok":
            raise RuntimeError(f"the bare decode in a new process failed: {value}")
        return value
    finally:
        child.join(10)
        if child.is_alive():
            child.terminate()


def without_screen(clip: Clip) -> tuple[float, float]:
    """ProcessSource with nobody drawing: snapshots asked for (one on its way at a
    time, as the app does) REFRESH_HZ times a second and dropped."""
    arrived = threading.Event()
    count = [0]

    def deliver(snapshot) -> None:
        count[0] += 1
        arrived.set()
    source = ProcessSource(clip, loop=False, realtime=True, start_paused=True)
    source.start(deliver)
    try:
        source.request_snapshot()
        if not arrived.wait(60):
            raise RuntimeError("no snapshot from the child in 60 s")
        arrived.clear()
        first = count[0]
        start = time.perf_counter()
        source.set_paused(False)
        while not source.finished:
            due = time.perf_counter() + 1 / REFRESH_HZ
            source.request_snapshot()
            arrived.wait(1)
            arrived.clear()
            time.sleep(max(0.0, due - time.perf_counter()))
        seconds = source.finished_at - start
        assert source.error is None, source.error
    finally:
        source.stop()
    return seconds, (count[0] - first) / seconds


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


def run_variant(clip: Clip, variant: str) -> tuple[float, float]:
    return without_screen(clip) if variant == "noscreen" else with_tui(clip, variant)


def quartiles(xs: list[float]) -> tuple[float, float]:
    if len(xs) < 2:
        return xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=positive, default=150)
    parser.add_argument("--repeat", type=positive, default=2, help="the clip's packets, N times over")
    parser.add_argument("--size", type=size, default=(1920, 1080),
                        help="1920x1080 (default): the performance benchmark's VP9 clip "
                             "(daedalus_v4l2.bench, 4 tile columns, cached); else a synthetic clip")
    parser.add_argument("--runs", type=positive, default=9)
    parser.add_argument("--variants", type=choices_list(VARIANTS), default=VARIANTS,
                        help=f"comma-separated, from {','.join(VARIANTS)} (default: all)")
    args = parser.parse_args()
    keep_freed_memory()     # as the commands do (the warm bare decode and the thread variant)
    variants = args.variants
    width, height = args.size
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
    for variant in variants:                     # and Textual
        run_variant(Clip(one.packets[:30], one.codec, one.width, one.height), variant)
    for values in UI_MS.values():
        values.clear()
    load_before = os.getloadavg()
    base: dict[str, list[float]] = {"new": [], "warm": []}
    timed: dict[str, list[float]] = {v: [] for v in variants}
    rates: dict[str, list[float]] = {v: [] for v in variants}
    for run in range(args.runs):                 # interleaved, so drift hits them all
        base["new"].append(bare_in_a_new_process(clip))
        base["warm"].append(bare(clip))
        for variant in variants:
            seconds, rate = run_variant(clip, variant)
            timed[variant].append(seconds)
            rates[variant].append(rate)
        print(f"run {run + 1}/{args.runs}: bare {base['new'][-1]:.3f} s (new process), "
              f"{base['warm'][-1]:.3f} s (warm), "
              + ", ".join(f"{v} {timed[v][-1]:.3f} s" for v in variants), flush=True)
    load_after = os.getloadavg()

    def runs(xs):
        return [round(x, 3) for x in xs]
    medians = {k: statistics.median(v) for k, v in base.items()}
    print(f"clip: VP9 {width}x{height}, {args.frames} frames x {args.repeat} = {frames} pictures, "
          f"{args.runs} interleaved runs each (median); {os.cpu_count()} CPUs")
    print(f"load average (1/5/15 min): before {' '.join(f'{x:.2f}' for x in load_before)}, "
          f"after {' '.join(f'{x:.2f}' for x in load_after)}")
    for key, label in (("new", "bare, a new process:"), ("warm", "bare, this process (warm):")):
        m = medians[key]
        print(f"{label:<29} {m:.3f} s  ({frames / m:.0f} fps)   runs {runs(base[key])}")
    for variant in variants:
        t = statistics.median(timed[variant])
        # Each run's ratio to the bare run of its round: drift in the machine's speed
        # (a shared VM: +-20 % between runs) cancels out of the pairs better than out of medians.
        plain, p = base[BASELINE[variant]], medians[BASELINE[variant]]
        ratios = [x / b for x, b in zip(timed[variant], plain)]
        low, high = quartiles(ratios)
        target = "  <- what demo/decode --tui run, target < 5 %" if variant == "process" else ""
        print(f"{LABELS[variant] + ':':<29} {t:.3f} s  ({frames / t:.0f} fps)   "
              f"runs {runs(timed[variant])}")
        which = "a new" if BASELINE[variant] == "new" else "this"
        print(f"    overhead {100 * (statistics.median(ratios) - 1):+.1f} % against bare in "
              f"{which} process (median of paired runs; middle half {100 * (low - 1):+.1f} .. "
              f"{100 * (high - 1):+.1f} %; medians: {100 * (t / p - 1):+.1f} %){target}")
        ui = f", UI thread CPU {statistics.median(UI_MS[variant]):.1f} ms per update" \
            if UI_MS.get(variant) else ""
        what = "screen updates" if variant in SOURCES else "snapshots"
        print(f"    {what} {statistics.median(rates[variant]):.1f} per second{ui}")


if __name__ == "__main__":
    main()
