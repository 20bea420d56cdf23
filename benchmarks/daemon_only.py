#!/usr/bin/env python3
"""The daemon alone against bare PyAV: where the sim path's cost is.

    .venv/bin/python benchmarks/daemon_only.py                 # 150-frame 1080p clips, 6 rounds
    .venv/bin/python benchmarks/daemon_only.py --codecs av1 --rounds 12

The DECODE messages of ``bench``'s 1080p clip are recorded once at the
daemon's end of the simulated chardev (``fuzz.corpus.record``), then replayed
straight into a decoder session, the daemon's work and nothing else: parse
each message, decode, pack into a CAPTURE-sized buffer, encode the FRAME
response.  No client, no simulated kernel, no chardev.  Each round decodes
bare PyAV (slice threads; for AV1 libdav1d's ``max_frame_delay`` 1) and the
replay (the daemon's slice threads), in turn; the report is the median of the
rounds' daemon/bare fps.  Above 1 the daemon costs less than bare PyAV's
``reformat``; what ``bench``'s sim path loses beyond that is the client's and
the simulated kernel's.  It reports, never fails on a timing.
"""
from __future__ import annotations

import itertools
import pathlib
import statistics
import sys
import time
from collections.abc import Iterator

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from daedalus_v4l2 import bench, heap, proto  # noqa: E402
from daedalus_v4l2.session import open_session  # noqa: E402
from fuzz.corpus import record  # noqa: E402


def capture_buffers(req: proto.DecodeRequest, count: int = 6) -> Iterator[memoryview]:
    """Buffers of the CAPTURE size ``req`` states, handed out in turn as the driver's are."""
    return itertools.cycle([memoryview(bytearray(req.capture_size)) for _ in range(count)])


def _picture(response: proto.FrameResponse) -> bool:
    """Whether the response carries a picture, once it is on the wire as the daemon sends it."""
    proto.encode(response)
    if response.flags & proto.FRAME_ERROR:
        raise SystemExit(f"the replay failed on cookie {response.cookie}: {response.reason}")
    return bool(response.flags & proto.FRAME_HAS_PIXELS)


def replay(messages: list[bytes], thread_options: dict) -> tuple[int, float]:
    """(pictures, seconds): every message through one session, as the daemon handles it."""
    first = proto.parse(messages[0])
    buffers = capture_buffers(first)
    session = open_session(first.stream_id, first.codec, **thread_options)
    pictures = 0
    start = time.perf_counter()
    try:
        for message in messages:
            req = proto.parse(message)
            for response in session.decode(req, lambda _: next(buffers)):
                pictures += _picture(response)
        for response in session.drain(lambda _: next(buffers)):
            pictures += _picture(response)
    finally:
        session.close()
    return pictures, time.perf_counter() - start


def measure(codec: str, frames: int, rounds: int, size: tuple[int, int] = (bench.WIDTH, bench.HEIGHT),
            progress=print) -> dict:
    clip = bench.load_clip(codec, frames, *size)
    messages = [m for m in record(clip.path) if proto.parse_header(m).type == proto.MSG_DECODE]
    options = bench.SIM_THREADS["SLICE"][0]
    bare, daemon = [], []
    for r in range(rounds):
        for name in (("bare", "daemon") if r % 2 == 0 else ("daemon", "bare")):
            if name == "bare":
                n, seconds, _ = bench.bare_decode(clip, "SLICE")
                bare.append(n / seconds)
            else:
                n, seconds = replay(messages, options)
                daemon.append(n / seconds)
        progress(f"  {codec} round {r + 1}/{rounds}: bare {bare[-1]:.1f} fps, "
                 f"daemon alone {daemon[-1]:.1f} fps")
    ratios = [d / b for d, b in zip(daemon, bare)]
    return {"bare_fps": statistics.median(bare), "daemon_fps": statistics.median(daemon),
            "ratio": statistics.median(ratios), "ratios": ratios, "requests": len(messages)}


def main(argv: list[str] | None = None) -> int:
    args = bench.rounds_script_args(__doc__, argv)
    heap.keep_freed_memory()    # as bench: both paths on the same heap settings
    print(f"daemon alone against bare PyAV, slice threads, {args.size}, {args.frames} frames, "
          f"{args.rounds} rounds")
    for codec in args.codecs:
        r = measure(codec, args.frames, args.rounds, args.wh)
        print(f"{codec:<5} bare {r['bare_fps']:7.1f} fps  daemon alone {r['daemon_fps']:7.1f} fps  "
              f"daemon/bare {r['ratio']:.3f} (rounds: {' '.join(f'{x:.2f}' for x in r['ratios'])}; "
              f"{r['requests']} requests)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
