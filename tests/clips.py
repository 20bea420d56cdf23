"""Test clips: the package's synthesizer (daedalus_v4l2.synth), cached per session."""
from __future__ import annotations

import hashlib
import json
import pathlib
import subprocess

from daedalus_v4l2.synth import (  # noqa: F401  (re-exported for the tests)
    VP9_GOOD, VP9_REALTIME, container_for, encoder_name, make_clip, pattern_frame)


def cached_clip(directory, suffix=".ivf", **params) -> pathlib.Path:
    """:func:`make_clip` into ``directory``, reusing a clip made earlier with
    the same parameters (the file name is a hash of them)."""
    key = json.dumps({"suffix": suffix, **params}, sort_keys=True, default=str)
    name = hashlib.sha1(key.encode()).hexdigest()[:16] + suffix
    path = pathlib.Path(directory) / name
    if not path.exists():
        partial = path.with_name("partial-" + name)
        make_clip(partial, container=params.pop("container", None) or container_for(path),
                  **params)
        partial.rename(path)
    return path


def ffmpeg_cli_clip(directory, name: str, width: int, height: int, frames: int, pix_fmt: str,
                    encoder: list[str]) -> pathlib.Path:
    """A clip from Debian's ffmpeg CLI, for what PyAV's bundled encoders cannot
    make (rav1e, libaom's realtime mode, 10-bit VP9: PyAV's libvpx has no high
    bit depth), from its testsrc2 pattern; made once per directory."""
    from .reference import ffmpeg_path
    path = pathlib.Path(directory) / name
    if not path.exists():
        partial = path.with_name(f"partial-{name}")
        subprocess.run([ffmpeg_path(), "-v", "error", "-nostdin", "-f", "lavfi", "-i",
                        f"testsrc2=size={width}x{height}:rate=30", "-frames:v", str(frames),
                        "-pix_fmt", pix_fmt, *encoder, "-y", str(partial)], check=True)
        partial.rename(path)
    return path
