"""`daedalus-v4l2 decode --backend hw` in the guest: our client with real ioctls on
/dev/videoN, the module, and the rig's daemon on /dev/daedalus-v4l2, bit-exact
(per-frame MD5 of tightly packed NV12, or the P010 bytes of 10-bit VP9) with
Debian's ffmpeg CLI.

Clips are made in the guest ($TMPDIR, a tmpfs: the host root is read-only here)
with the package's synthesizer, once per session (tests/conftest.py `clip`).
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.contract.backends import H264_CLIP, VP9_CLIPS, daemon_attached, debugfs_counters
from tests.reference import ffmpeg_raw, frame_md5s
from vmrig import ROOT, missing, module_loaded

pytestmark = pytest.mark.vm

# What must never appear in dmesg (lockdep, list debugging, atomic-sleep and
# SLUB debugging are on in the rig's kernel).
BAD_DMESG = re.compile(
    r"WARNING:|BUG:|Oops|Call Trace:|general protection fault|kernel BUG|"
    r"possible circular locking|possible recursive locking|inconsistent lock state|"
    r"lockdep is turned off|list_(add|del) corruption|refcount_t:|INFO: task .* blocked|UBSAN|KASAN|"
    r"sleeping function called from invalid context|Unable to handle|Poison overwritten|"
    r"Object already free|Redzone|slab error"
)


@pytest.fixture(scope="module")
def hw():
    if not module_loaded("daedalus_v4l2"):
        missing("the daedalus_v4l2 module is not loaded (scripts/vm-run without --no-module)")
    if module_loaded("visl"):
        subprocess.run(["modprobe", "-r", "visl"], check=True)
    assert daemon_attached(), "no daemon holds /dev/daedalus-v4l2 (see daemon.log)"


def daemon_log(share_dir: Path) -> str:
    path = share_dir / "daemon.log"
    return path.read_text(errors="replace") if path.is_file() else ""


def decode_hw(clip: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "daedalus_v4l2", "decode", str(clip), "-o", str(out),
         "--backend", "hw", "-q"],
        capture_output=True, text=True, cwd=ROOT, timeout=600)


def check_bit_exact(clip, width, height, frames, tmp_path, share_dir, pix_fmt="nv12"):
    before, log_before = debugfs_counters(), len(daemon_log(share_dir))
    out = tmp_path / f"out.{pix_fmt}"
    r = decode_hw(clip, out)
    assert r.returncode == 0, r.stdout + r.stderr
    after = debugfs_counters()
    expected = frame_md5s(ffmpeg_raw(clip, pix_fmt), width, height, pix_fmt)
    got = frame_md5s(out.read_bytes(), width, height, pix_fmt)
    assert len(expected) == frames
    mismatched = [i for i, (a, b) in enumerate(zip(got, expected)) if a != b]
    assert len(got) == len(expected) and not mismatched, (
        f"{len(got)} frames, {len(expected)} expected; differing frames {mismatched}")
    jobs = after["jobs"] - before["jobs"]
    assert jobs >= frames, f"only {jobs} jobs went through the module for {frames} frames"
    for counter in ("errors", "watchdog_expiries", "unknown_cookie", "rejected_messages"):
        assert after[counter] == before[counter], f"{counter}: {before[counter]} -> {after[counter]}"
    new_log = daemon_log(share_dir)[log_before:]
    assert not re.search(r"WARNING|ERROR|Traceback", new_log), new_log
    return jobs


@pytest.mark.parametrize("name", list(VP9_CLIPS))
def test_decode_vp9_bit_exact(hw, clip, name, tmp_path, share_dir):
    spec = VP9_CLIPS[name]
    path = clip(".ivf", **spec)
    jobs = check_bit_exact(path, spec["width"], spec["height"], spec["frames"], tmp_path, share_dir)
    if name.startswith("good"):
        assert jobs > spec["frames"], "no hidden frames: the clip does not test the alt-ref path"


def test_decode_h264_bit_exact(hw, clip, tmp_path, share_dir):
    path = clip(".mp4", **H264_CLIP)
    check_bit_exact(path, H264_CLIP["width"], H264_CLIP["height"], H264_CLIP["frames"],
                    tmp_path, share_dir)


def test_dmesg_clean_after_load_and_decodes(hw):
    """Load (at boot) and every decode so far; unload is checked on the host
    (test_hw_dmesg.py), from the dmesg the rig saves after unloading."""
    lines = subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout.splitlines()
    assert any("daedalus_v4l2" in line and "registered" in line for line in lines), lines[-40:]
    bad = [line for line in lines if BAD_DMESG.search(line)]
    assert not bad, "\n".join(bad)


AV1_CLIP = dict(codec="av1", width=176, height=144, frames=12, options={"preset": "12"})


def test_decode_av1_bit_exact(hw, clip, tmp_path, share_dir):
    """SVT-AV1's default mini-GOP codes hidden frames: each still gets its own request."""
    from tests.test_av1_decode import dav1d_raw  # Debian's ffmpeg, naming libdav1d

    path = clip(".ivf", **AV1_CLIP)
    before = debugfs_counters()
    out = tmp_path / "out.nv12"
    r = decode_hw(path, out)
    assert r.returncode == 0, r.stdout + r.stderr
    after = debugfs_counters()
    w, h, frames = AV1_CLIP["width"], AV1_CLIP["height"], AV1_CLIP["frames"]
    expected = frame_md5s(dav1d_raw(path, "nv12"), w, h)
    assert len(expected) == frames
    assert frame_md5s(out.read_bytes(), w, h) == expected
    assert after["jobs"] - before["jobs"] >= frames
    for counter in ("errors", "watchdog_expiries", "unknown_cookie", "rejected_messages"):
        assert after[counter] == before[counter], f"{counter}: {before[counter]} -> {after[counter]}"


def test_decode_vp9_profile_2_to_p010_bit_exact(hw, tmp_path, share_dir):
    """10-bit VP9 (alt-ref on) through the module: P010 CAPTURE buffers, every picture
    equal to ffmpeg's p010le, hidden frames each with their own request."""
    from tests.clips import ffmpeg_cli_clip
    from tests.test_decode_vp9 import PROFILE2

    name, width, height, frames, pix_fmt, encoder = PROFILE2
    path = ffmpeg_cli_clip(tmp_path, name, width, height, frames, pix_fmt, encoder)
    jobs = check_bit_exact(path, width, height, frames, tmp_path, share_dir, pix_fmt="p010le")
    assert jobs > frames, "no hidden frames: the alt-ref path did not run"
