"""``daedalus-v4l2 demo``: the whole stack on an embedded default.

Makes a short VP9 clip with PyAV's libvpx encoder (good quality, so it has
hidden alt-ref frames in superframes), decodes it through the simulated V4L2
stateless device and the daemon, decodes it again with bare libavcodec, and
says whether every frame is byte-for-byte the same.
"""
from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from . import container
from .backends_runtime import open_decoder
from .decode import decode_through
from .synth import VP9_GOOD, make_clip
from .threads import batch_scheduling


@dataclass
class DemoResult:
    frames: int
    matching: int
    reference_frames: int
    seconds: float
    errors: int
    stats: object

    @property
    def bit_exact(self) -> bool:
        return self.frames == self.reference_frames == self.matching and not self.errors


def reference_nv12_md5s(path: Path) -> list[str]:
    """Per-frame MD5s of tightly packed NV12 from bare libavcodec + swscale."""
    digests = []
    with av.open(str(path)) as source:
        for frame in source.decode(video=0):
            nv12 = frame.reformat(format="nv12")
            w, h = nv12.width, nv12.height
            luma = _rows(nv12.planes[0], w, h)
            chroma = _rows(nv12.planes[1], 2 * ((w + 1) // 2), (h + 1) // 2)
            digests.append(hashlib.md5(luma + chroma).hexdigest())
    return digests


def _rows(plane, row_bytes: int, rows: int) -> bytes:
    data = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    return data[:rows, :row_bytes].tobytes()


def run_demo(workdir: Path, frames: int = 60, width: int = 352, height: int = 288) -> DemoResult:
    clip = make_clip(workdir / "demo.ivf", "vp9", width, height, frames, options=VP9_GOOD)
    info = container.probe(clip)
    reference = reference_nv12_md5s(clip)
    got: list[str] = []
    errors = 0
    start = time.monotonic()
    with open_decoder("sim") as opened, batch_scheduling():  # the daemon's threads: not batch
        for picture in decode_through(opened.decoder, info.codec, info.width, info.height,
                                      container.packets(clip), borrow=True):
            if picture.data is None:
                errors += 1
                got.append("")
            else:
                got.append(hashlib.md5(picture.data).hexdigest())
        stats = opened.kernel.stats
    seconds = time.monotonic() - start
    matching = sum(a == b for a, b in zip(got, reference))
    return DemoResult(len(got), matching, len(reference), seconds, errors, stats)


def main(frames: int, width: int, height: int, keep: str | None, out) -> int:
    print(f"daedalus-v4l2 demo: VP9 {width}x{height}, {frames} frames "
          f"(libvpx-vp9 with hidden alt-ref frames in superframes)", file=out)
    with tempfile.TemporaryDirectory(prefix="daedalus-demo-") as tmp:
        workdir = Path(keep) if keep else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        result = run_demo(workdir, frames, width, height)
    s = result.stats
    fps = result.frames / max(result.seconds, 1e-9)
    print(f"  through the simulated V4L2 device: {result.frames} frames in "
          f"{result.seconds:.2f} s ({fps:.1f} fps)", file=out)
    print(f"  requests: {s.jobs} ({s.jobs - result.reference_frames} hidden alt-ref frames, "
          f"pictures fetched with a show-existing-frame packet)", file=out)
    print(f"  kernel: {s.jobs} jobs, {s.done} done, {s.errors} errors, parked max "
          f"{s.parked_max}, watchdog expiries {s.watchdog_expiries}", file=out)
    verdict = "yes" if result.bit_exact else "NO"
    print(f"  bit-exact against libavcodec: {verdict} ({result.matching}/{result.reference_frames} "
          f"frames match)", file=out)
    return 0 if result.bit_exact else 1


def main_tui(frames: int, width: int, height: int, keep: str | None, fps: float) -> int:
    """The demo under the TUI: the clip loops through the simulated device until q."""
    from .tui.process_source import ProcessSource
    from .tui.run import run_app
    from .tui.sim_source import Clip

    with tempfile.TemporaryDirectory(prefix="daedalus-demo-") as tmp:
        workdir = Path(keep) if keep else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        clip = Clip.from_file(make_clip(workdir / "demo.ivf", "vp9", width, height, frames,
                                        options=VP9_GOOD))
    return run_app(ProcessSource(clip, loop=True, pace_fps=fps or None))
