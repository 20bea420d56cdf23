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


def ffmpeg_nv12(path: Path) -> bytes:
    """What `ffmpeg -i INPUT -fps_mode passthrough -f rawvideo -pix_fmt nv12` writes."""
    result = subprocess.run(
        [ffmpeg_path(), "-v", "error", "-nostdin", "-i", str(path), "-fps_mode", "passthrough",
         "-f", "rawvideo", "-pix_fmt", "nv12", "-"],
        check=True, capture_output=True)
    return result.stdout


def frame_md5s(raw: bytes, width: int, height: int) -> list[str]:
    size = nv12_frame_size(width, height)
    assert len(raw) % size == 0, f"{len(raw)} bytes is not a whole number of {width}x{height} frames"
    return [hashlib.md5(raw[i:i + size]).hexdigest() for i in range(0, len(raw), size)]
