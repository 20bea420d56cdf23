"""The independent reference: Debian's ffmpeg CLI (not PyAV's bundled libavcodec)."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path


def ffmpeg_path() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        raise RuntimeError("the ffmpeg CLI is required as the independent reference "
                           "(apt-get install ffmpeg; scripts/test does it)")
    return path


def nv12_frame_size(width: int, height: int) -> int:
    return width * height + 2 * ((width + 1) // 2) * ((height + 1) // 2)


BYTES_PER_SAMPLE = {"nv12": 1, "p010le": 2}


def ffmpeg_raw(path: Path, pix_fmt: str = "nv12", decoder: str | None = None) -> bytes:
    """What `ffmpeg [-c:v DECODER] -i INPUT -fps_mode passthrough -f rawvideo
    -pix_fmt PIX_FMT` writes (DECODER names one, e.g. libdav1d, so that ffmpeg
    never picks another)."""
    result = subprocess.run(
        [ffmpeg_path(), "-v", "error", "-nostdin", *(["-c:v", decoder] if decoder else []),
         "-i", str(path), "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"],
        check=True, capture_output=True)
    return result.stdout


def ffmpeg_nv12(path: Path) -> bytes:
    """What `ffmpeg -i INPUT -fps_mode passthrough -f rawvideo -pix_fmt nv12` writes."""
    return ffmpeg_raw(path)


def frame_md5s(raw: bytes, width: int, height: int, pix_fmt: str = "nv12") -> list[str]:
    """The MD5 of each tightly packed frame (NV12, or P010 little-endian: ``p010le``)."""
    size = nv12_frame_size(width, height) * BYTES_PER_SAMPLE[pix_fmt]
    assert len(raw) % size == 0, f"{len(raw)} bytes is not a whole number of {width}x{height} frames"
    return [hashlib.md5(raw[i:i + size]).hexdigest() for i in range(0, len(raw), size)]
