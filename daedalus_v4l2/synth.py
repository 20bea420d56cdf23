"""Short clips made with PyAV's encoders, for the demo and the tests (no binary fixtures).

The picture is deterministic but hard to code: gradients, a checkerboard
that scrolls, a circle that moves along a Lissajous path and seeded noise.
Motion and texture make encoders use inter prediction, motion vectors and
(with :data:`VP9_GOOD`) hidden alt-ref frames, which is what parsers and
decoders need exercising.

    make_clip(tmp / "a.ivf", codec="vp9", options=VP9_GOOD)
"""
from __future__ import annotations

import pathlib
from fractions import Fraction

import av
import numpy as np

from .threads import scheduling_kept

# Realtime: fastest, no look-ahead, so no hidden frames.
VP9_REALTIME = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}

# Hidden alt-ref frames packed in superframes.  libvpx only codes alt-refs in
# one-pass encoding through its realtime speed features
# (sf->use_altref_onepass: realtime deadline, VBR, lag-in-frames > 0);
# "deadline good" uses them in two-pass encoding only, which PyAV cannot
# drive (it exposes no stats_in/stats_out).  Hence realtime + look-ahead +
# a target bit rate ("b": without one, FFmpeg picks constant-quality mode,
# which has no alt-refs).  tests/test_vp9_parser.py checks that hidden frames
# come out of it.
VP9_GOOD = {"deadline": "realtime", "cpu-used": "5", "auto-alt-ref": "1",
            "lag-in-frames": "16", "b": "400k"}

CONTAINERS_BY_SUFFIX = {".ivf": "ivf", ".webm": "webm", ".mkv": "matroska", ".mp4": "mp4"}

_PREFERRED_AV1_ENCODERS = ("libsvtav1", "libaom-av1", "librav1e")


def encoder_name(codec: str) -> str:
    """The PyAV encoder behind a short codec name ("vp9", "h264", "av1")."""
    if codec == "vp9":
        return "libvpx-vp9"
    if codec == "h264":
        return "libx264"
    if codec == "av1":
        for name in _PREFERRED_AV1_ENCODERS:
            if name in av.codecs_available:
                return name
        raise RuntimeError("PyAV has no AV1 encoder (" + ", ".join(_PREFERRED_AV1_ENCODERS) + ")")
    raise ValueError(f"unknown codec {codec!r} (vp9, h264 or av1)")


def container_for(path: pathlib.Path) -> str:
    try:
        return CONTAINERS_BY_SUFFIX[path.suffix.lower()]
    except KeyError:
        raise ValueError(f"cannot tell the container from {path.name!r}: pass container=") from None


def pattern_frame(index: int, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Frame ``index`` of the moving pattern, as an RGB24 array (height, width, 3)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    red = 255 * x / max(width - 1, 1)
    green = 255 * y / max(height - 1, 1)
    blue = 128 + 100 * np.sin((x + y + 4 * index) / 17)
    picture = np.stack([red, green, blue], axis=-1)
    # A checkerboard scrolling diagonally: global motion.
    checker = (((x + 3 * index) // 16 + (y + 2 * index) // 16) % 2)[..., None]
    picture = picture * (0.6 + 0.4 * checker)
    # A circle moving on its own path: local motion against the background.
    cx = width / 2 + width / 3 * np.cos(index / 7)
    cy = height / 2 + height / 3 * np.sin(index / 5)
    radius = max(min(width, height) / 6, 2)
    inside = ((x - cx) ** 2 + (y - cy) ** 2 < radius ** 2)[..., None]
    picture = np.where(inside, np.array([250.0, 230.0, 20.0]), picture)
    picture += rng.normal(0, 6, size=picture.shape)
    return np.clip(picture, 0, 255).astype(np.uint8)


def make_clip(path, codec="vp9", width=352, height=288, frames=30, container=None, fps=30,
              pix_fmt="yuv420p", options: dict | None = None, bit_rate=None) -> pathlib.Path:
    """Encode ``frames`` frames of :func:`pattern_frame` to ``path`` and return it.

    ``container`` defaults to the one the suffix names (.ivf, .webm, .mkv,
    .mp4); ``options`` are the encoder's private options (e.g.
    :data:`VP9_REALTIME`); the output is the same for the same arguments.
    """
    path = pathlib.Path(path)
    rng = np.random.default_rng(seed=width * 100_003 + height)
    time_base = Fraction(1, fps)
    # libsvtav1 turns its caller into a SCHED_FIFO thread (when it may: as root); what
    # decodes or times in this thread afterwards must not run real-time
    with scheduling_kept(), \
            av.open(str(path), mode="w", format=container or container_for(path)) as output:
        stream = output.add_stream(encoder_name(codec), rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.time_base = time_base
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        stream.options = dict(options or {})
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern_frame(index, width, height, rng),
                                               format="rgb24")
            frame.pts, frame.time_base = index, time_base
            output.mux(stream.encode(frame.reformat(format=pix_fmt)))
        output.mux(stream.encode(None))
    return path
