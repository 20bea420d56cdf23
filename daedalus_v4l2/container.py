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
        # the codec's canonical name: ctx.name is the decoder's (libdav1d for AV1)
        return VideoInfo(ctx.codec.canonical_name, ctx.width, ctx.height, stream.frames or 0,
                         ctx.pix_fmt if ctx.pix_fmt else None)


def packets(path: str | Path) -> Iterator[bytes]:
    """The coded packets of the first video stream, in decode order.

    H.264 always comes out as an Annex B byte stream: MP4 and Matroska store
    "AVCC" samples (length-prefixed NAL units, SPS and PPS in the avcC
    extradata), which are converted here, the parameter sets put in front of
    the first packet."""
    with _open(path) as container:
        stream = _video_stream(container, path)
        convert = _avcc_converter(stream.codec_context)
        try:
            for packet in container.demux(stream):
                if packet.size:
                    yield convert(bytes(packet))
        except av.error.FFmpegError as exc:
            raise BitstreamError(f"{path}: demuxing failed: {exc}") from exc


def _avcc_converter(ctx):
    """Identity, or AVCC -> Annex B for H.264 with an avcC record."""
    extradata = bytes(ctx.extradata or b"")
    if ctx.name != "h264" or not extradata or extradata[0] != 1:
        return lambda data: data
    from .codecs import h264

    config = h264.parse_avcc_extradata(extradata)
    header = [h264.annexb(config.sps + config.pps)]

    def convert(data: bytes) -> bytes:
        prefix, header[:] = (header[0] if header else b""), []
        return prefix + h264.annexb(h264.split_avcc(data, config.length_size))
    return convert


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
