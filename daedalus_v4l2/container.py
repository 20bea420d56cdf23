"""Reading coded video out of a file: the first video stream's packets, with PyAV."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av

from .errors import BitstreamError, UnsupportedError


@dataclass(frozen=True)
class VideoInfo:
    codec: str          # libavcodec's name: vp9, h264, av1
    width: int
    height: int
    frames: int         # 0 when the container does not say
    pix_fmt: str | None


def probe(path: str | Path) -> VideoInfo:
    with _open(path) as container:
        stream = _video_stream(container, path)
        ctx = stream.codec_context
        return VideoInfo(ctx.name, ctx.width, ctx.height, stream.frames or 0,
                         ctx.pix_fmt if ctx.pix_fmt else None)


def packets(path: str | Path) -> Iterator[bytes]:
    """The coded packets of the first video stream, in decode order."""
    with _open(path) as container:
        stream = _video_stream(container, path)
        try:
            for packet in container.demux(stream):
                if packet.size:
                    yield bytes(packet)
        except av.error.FFmpegError as exc:
            raise BitstreamError(f"{path}: demuxing failed: {exc}") from exc


def _open(path):
    try:
        return av.open(str(path))
    except FileNotFoundError:
        raise
    except av.error.FFmpegError as exc:
        raise BitstreamError(f"{path}: not a media file PyAV can read ({exc})") from exc


def _video_stream(container, path):
    if not container.streams.video:
        raise UnsupportedError(f"{path}: has no video stream")
    return container.streams.video[0]
