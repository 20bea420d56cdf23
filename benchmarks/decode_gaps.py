#!/usr/bin/env python3
"""libavcodec's calls and the gaps between them, sim path against bare PyAV.

    .venv/bin/python benchmarks/decode_gaps.py                  # 150-frame 1080p clips, 6 rounds
    .venv/bin/python benchmarks/decode_gaps.py --codecs av1 --rounds 12

With slice threads (for AV1 libdav1d's ``max_frame_delay`` 1) libavcodec decodes
a picture inside the call that feeds it, so its workers sit idle for whatever
the calling thread does between two calls.  Bare PyAV spends that time in
``reformat`` and its loop; on the sim path the daemon's thread spends it in its
own Python (the next DECODE read and parsed, its packet built, the last picture
handed to the writer), while the call itself grows with the CPU the client's and
the writer's threads take beside libavcodec's workers, and with the GIL they
hold when it returns.  Each round decodes the clip both ways, in turn (in
reverse order every other round).  The report is the median over the rounds,
in ms a picture, of the time in libavcodec's calls, between them, and in all (on
``bench``'s clock: 1000 / fps).
It reports, never fails on a timing.
"""
from __future__ import annotations

import contextlib
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import av  # noqa: E402

from daedalus_v4l2 import bench, heap, session  # noqa: E402

WAYS = ("bare", "sim")
PARTS = ("call", "between", "wall")


def _bare(clip: bench.Clip) -> dict[str, float]:
    """bench's bare decode (slice threads, tight NV12/P010), timed around each call."""
    target = bench.bare_target(clip)
    calls = between = 0.0
    n = 0
    with av.open(str(clip.path)) as source:
        stream = bench.bare_stream(source, "SLICE")
        context = stream.codec_context
        picture = None
        with bench.batch_scheduling():
            began, returned = time.perf_counter(), None
            for packet in source.demux(stream):
                start = time.perf_counter()
                if returned is not None:
                    between += start - returned
                frames = context.decode(packet)
                returned = time.perf_counter()
                calls += returned - start
                for frame in frames:
                    picture = bench._tight_nv12(frame, target)  # noqa: F841 (held, as bench does)
                    n += 1
            wall = time.perf_counter() - began
    return _per_picture(clip, n, calls, between, wall)


@contextlib.contextmanager
def _timed_feeds(marks: list[tuple[float, float]]):
    """Every call a session makes into libavcodec, as (start, end)."""
    original = session.DecoderSession._feed

    def timed(self, data, cookie):
        start = time.perf_counter()
        try:
            return original(self, data, cookie)
        finally:
            marks.append((start, time.perf_counter()))

    session.DecoderSession._feed = timed
    try:
        yield
    finally:
        session.DecoderSession._feed = original


def _sim(clip: bench.Clip) -> dict[str, float]:
    """``decode --backend sim``'s path as bench decodes it, the daemon's calls timed."""
    marks: list[tuple[float, float]] = []
    with _timed_feeds(marks):
        n, seconds, stats = bench.sim_decode(clip)
    if stats["errors"] or stats["kernel_errors"]:    # a picture missing: _per_picture says so
        raise SystemExit(f"{clip.codec} sim: {n} of {clip.frames} pictures, {stats}")
    calls = sum(end - start for start, end in marks)
    between = sum(nxt[0] - prev[1] for prev, nxt in zip(marks, marks[1:]))
    return _per_picture(clip, n, calls, between, seconds)


def _per_picture(clip: bench.Clip, n: int, calls: float, between: float,
                 wall: float) -> dict[str, float]:
    if n != clip.frames:
        raise SystemExit(f"{clip.codec}: {n} of {clip.frames} pictures")
    return {"call": 1e3 * calls / n, "between": 1e3 * between / n, "wall": 1e3 * wall / n}


def measure(codec: str, frames: int, rounds: int, size: tuple[int, int] = (bench.WIDTH, bench.HEIGHT),
            progress=print) -> dict[str, dict[str, float]]:
    clip = bench.load_clip(codec, frames, *size)
    decode = {"bare": _bare, "sim": _sim}
    runs: dict[str, list[dict[str, float]]] = {way: [] for way in WAYS}
    for r in range(rounds):
        for way in (WAYS if r % 2 == 0 else WAYS[::-1]):
            runs[way].append(decode[way](clip))
        progress(f"  {codec} round {r + 1}/{rounds}: " + "; ".join(
            f"{way} call {runs[way][-1]['call']:.3f} between {runs[way][-1]['between']:.3f}"
            for way in WAYS))
    return {way: {part: statistics.median(run[part] for run in runs[way]) for part in PARTS}
            for way in WAYS}


def main(argv: list[str] | None = None) -> int:
    args = bench.rounds_script_args(__doc__, argv)
    heap.keep_freed_memory()    # as bench: both paths on the same heap settings
    print(f"libavcodec's calls and the gaps between them, ms a picture: slice threads, "
          f"{args.size}, {args.frames} frames, {args.rounds} rounds")
    for codec in args.codecs:
        r = measure(codec, args.frames, args.rounds, args.wh)
        print(f"{codec:<5} " + "   ".join(
            f"{way}: call {r[way]['call']:.3f} between {r[way]['between']:.3f} "
            f"wall {r[way]['wall']:.3f}" for way in WAYS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
