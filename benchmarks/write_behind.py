#!/usr/bin/env python3
"""The sim path with and without the daemon's write-behind, against bare PyAV.

    .venv/bin/python benchmarks/write_behind.py                 # 150-frame 1080p clips, 6 rounds
    .venv/bin/python benchmarks/write_behind.py --codecs av1 --rounds 12

Each round decodes the clip of ``bench`` three ways, in turn (in reverse
order every other round): bare PyAV (slice threads; for AV1 libdav1d's
``max_frame_delay`` 1), and ``decode --backend sim``'s path (the daemon in its
own thread, slice threads, a client 2 deep) with the daemon writing pictures
in place before it answers, and writing them behind (writer.py: the default).
The report is the median of the rounds' sim/bare fps for each.  It reports,
never fails on a timing.
"""
from __future__ import annotations

import pathlib
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from daedalus_v4l2 import bench, heap  # noqa: E402

WAYS = ("bare", "in place", "behind")


def _fps(clip: bench.Clip, way: str) -> float:
    if way == "bare":
        n, seconds, _ = bench.bare_decode(clip, "SLICE")
    else:
        n, seconds, stats = bench.sim_decode(clip, write_behind=way == "behind")
        if stats["errors"] or stats["kernel_errors"] or n != clip.frames:
            raise SystemExit(f"{clip.codec} {way}: {n} of {clip.frames} pictures, {stats}")
    return n / seconds


def measure(codec: str, frames: int, rounds: int, size: tuple[int, int] = (bench.WIDTH, bench.HEIGHT),
            progress=print) -> dict:
    clip = bench.load_clip(codec, frames, *size)
    fps: dict[str, list[float]] = {way: [] for way in WAYS}
    for r in range(rounds):
        for way in (WAYS if r % 2 == 0 else WAYS[::-1]):
            fps[way].append(_fps(clip, way))
        progress(f"  {codec} round {r + 1}/{rounds}: " +
                 ", ".join(f"{way} {fps[way][-1]:.1f} fps" for way in WAYS))
    ratios = {way: [s / b for s, b in zip(fps[way], fps["bare"])] for way in WAYS[1:]}
    return {"fps": {way: statistics.median(v) for way, v in fps.items()},
            "ratio": {way: statistics.median(v) for way, v in ratios.items()}, "ratios": ratios}


def main(argv: list[str] | None = None) -> int:
    args = bench.rounds_script_args(__doc__, argv)
    heap.keep_freed_memory()    # as bench: every path on the same heap settings
    print(f"sim path written in place and behind, against bare PyAV: slice threads, {args.size}, "
          f"{args.frames} frames, {args.rounds} rounds")
    for codec in args.codecs:
        r = measure(codec, args.frames, args.rounds, args.wh)
        print(f"{codec:<5} bare {r['fps']['bare']:7.1f} fps  "
              f"in place {r['fps']['in place']:7.1f} fps, sim/bare {r['ratio']['in place']:.3f}  "
              f"behind {r['fps']['behind']:7.1f} fps, sim/bare {r['ratio']['behind']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
