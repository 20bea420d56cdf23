"""GStreamer's stateless decoders (gstreamer1.0-plugins-bad's v4l2codecs) through
our device, bit-exact with Debian's ffmpeg CLI.

visl is kept unloaded: GStreamer names the first stateless decoder of a codec
it finds ``v4l2sl<codec>dec``, so with our module alone ``v4l2slvp9dec`` and
``v4l2slh264dec`` are ours; the module's debugfs ``jobs`` counter must grow
by at least the number of frames to prove the pictures came through it.

The pipelines ask the decoder for NV12 and write it with filesink. Without
GstVideoMeta downstream, v4l2codecs copies each picture into GStreamer's
default NV12 layout (rows padded to a multiple of 4 bytes), which
``tight_nv12`` strips before comparing per-frame MD5s.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.contract.backends import H264_CLIP, VP9_CLIPS, daemon_attached, debugfs_counters
from tests.reference import ffmpeg_nv12, frame_md5s
from vmrig import guest_tool, missing, module_loaded, sh

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def gst(tmp_path_factory):
    """The GStreamer environment: one registry for the module (scanned once)."""
    if not module_loaded("daedalus_v4l2"):
        missing("the daedalus_v4l2 module is not loaded (scripts/vm-run without --no-module)")
    guest_tool("gst-launch-1.0")
    guest_tool("gst-inspect-1.0")
    if module_loaded("visl"):
        assert sh("modprobe -r visl").returncode == 0
    assert daemon_attached(), "no daemon holds /dev/daedalus-v4l2 (see daemon.log)"
    return f"GST_REGISTRY={tmp_path_factory.mktemp('gst')}/registry.bin GST_DEBUG_NO_COLOR=1"


def test_only_our_stateless_decoders_are_listed(gst, share_dir):
    r = sh(f"{gst} gst-inspect-1.0")
    assert r.returncode == 0, r.output
    decoders = sorted(set(re.findall(r"\b(v4l2sl\w*dec)\b", r.stdout)))
    (share_dir / "gst-stateless-decoders.txt").write_text("\n".join(decoders) + "\n")
    assert "v4l2slvp9dec" in decoders and "v4l2slh264dec" in decoders, decoders
    # With visl loaded too there would be v4l2slvideoN<codec>dec elements.
    assert not [d for d in decoders if d.startswith("v4l2slvideo")], decoders


def tight_nv12(raw: bytes, frames: int, width: int, height: int) -> bytes:
    """GStreamer's padded NV12 frames, repacked without row padding."""
    rows = height + (height + 1) // 2
    assert frames and len(raw) % frames == 0, f"{len(raw)} bytes for {frames} frames"
    per_frame = len(raw) // frames
    stride, rest = divmod(per_frame, rows)
    assert rest == 0 and stride >= width, f"{per_frame} bytes a frame is not {rows} rows of >= {width}"
    row_bytes = [width] * height + [2 * ((width + 1) // 2)] * ((height + 1) // 2)
    out = bytearray()
    for f in range(frames):
        base = f * per_frame
        for r, n in enumerate(row_bytes):
            out += raw[base + r * stride: base + r * stride + n]
    return bytes(out)


def gst_decode(gst, pipeline: str, clip: Path, out: Path, width, height, frames, share_dir, tag):
    before = debugfs_counters()
    cmd = (f"{gst} GST_DEBUG=v4l2codecs*:4 gst-launch-1.0 -q filesrc location={clip} ! {pipeline} "
           f"! video/x-raw,format=NV12 ! filesink location={out}")
    r = sh(cmd, timeout=600)
    (share_dir / f"gst-{tag}.log").write_text(f"$ {cmd}\n{r.output}")
    assert r.returncode == 0, r.output[-4000:]
    after = debugfs_counters()
    jobs = after["jobs"] - before["jobs"]
    assert jobs >= frames, f"only {jobs} jobs went through our module for {frames} frames"
    assert after["errors"] == before["errors"], (before, after)
    expected = frame_md5s(ffmpeg_nv12(clip), width, height)
    assert len(expected) == frames
    got = frame_md5s(tight_nv12(out.read_bytes(), len(expected), width, height), width, height)
    mismatched = [i for i, (a, b) in enumerate(zip(got, expected)) if a != b]
    assert not mismatched, f"frames differing from ffmpeg: {mismatched}"
    return jobs


@pytest.mark.parametrize("name", ["good-322x182", "realtime-352x288"])
def test_v4l2slvp9dec_is_bit_exact(gst, clip, name, tmp_path, share_dir):
    spec = VP9_CLIPS[name]
    path = clip(".ivf", **spec)
    jobs = gst_decode(gst, "ivfparse ! vp9parse ! v4l2slvp9dec", path, tmp_path / "out.nv12",
                      spec["width"], spec["height"], spec["frames"], share_dir, f"vp9-{name}")
    if name.startswith("good"):
        assert jobs > spec["frames"], "no hidden frames: the clip does not test the alt-ref path"


def test_v4l2slh264dec_is_bit_exact(gst, clip, tmp_path, share_dir):
    path = clip(".mp4", **H264_CLIP)
    gst_decode(gst, "qtdemux ! h264parse ! v4l2slh264dec", path, tmp_path / "out.nv12",
               H264_CLIP["width"], H264_CLIP["height"], H264_CLIP["frames"], share_dir, "h264")
