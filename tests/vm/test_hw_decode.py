"""`daedalus-v4l2 decode --backend hw` in the guest: our client with real ioctls on
/dev/videoN, the module, and the rig's daemon on /dev/daedalus-v4l2, bit-exact
(per-frame MD5 of tightly packed NV12, or the P010 bytes of 10-bit VP9) with
Debian's ffmpeg CLI.

Clips are made in the guest ($TMPDIR, a tmpfs: the host root is read-only here)
with the package's synthesizer, once per session (tests/conftest.py `clip`).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fuzz import rig
from tests.contract.backends import H264_CLIP, VP9_CLIPS, daemon_attached, debugfs_counters
from tests.reference import ffmpeg_raw, frame_md5s
from vmrig import ROOT, also_under_debug_kernel, missing, module_loaded

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


def decode_hw(clip: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "daedalus_v4l2", "decode", str(clip), "-o", str(out),
         "--backend", "hw", "-q", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=600)


def check_bit_exact(clip, width, height, frames, tmp_path, share_dir, pix_fmt="nv12",
                    decode_args=(), reference=None):
    """``reference(clip, pix_fmt)``: the expected raw frames (default: ffmpeg's)."""
    before, log_before = debugfs_counters(), len(daemon_log(share_dir))
    out = tmp_path / f"out.{pix_fmt}"
    r = decode_hw(clip, out, *decode_args)
    assert r.returncode == 0, r.stdout + r.stderr
    after = debugfs_counters()
    expected = frame_md5s((reference or ffmpeg_raw)(clip, pix_fmt), width, height, pix_fmt)
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


# Under the debug kernel (4x slower): one clip with hidden frames, one with odd sizes.
DEBUG_KERNEL_VP9 = ("good-352x288", "realtime-322x182")


@pytest.mark.parametrize("name", also_under_debug_kernel(VP9_CLIPS, DEBUG_KERNEL_VP9))
def test_decode_vp9_bit_exact(hw, clip, name, tmp_path, share_dir):
    spec = VP9_CLIPS[name]
    path = clip(".ivf", **spec)
    jobs = check_bit_exact(path, spec["width"], spec["height"], spec["frames"], tmp_path, share_dir)
    if name.startswith("good"):
        assert jobs > spec["frames"], "no hidden frames: the clip does not test the alt-ref path"


def test_frame_threaded_daemon_parks_for_a_deep_client_and_never_stalls_a_strict_one(
        hw, clip, tmp_path, share_dir):
    """`daemon --threads frame` on the module.  A client 6 requests deep: the module
    flags DECODE_MORE_QUEUED, the daemon parks pictures (debugfs `parked` grows) and
    sends them with later requests.  A client 1 deep: no flag, the daemon pushes each
    picture out with its own request, nothing parks.  Every picture bit-exact.
    (Without write-behind, which parks every picture while it is written.)

    Under TCG the daemon decodes a small picture faster than the Python client queues
    the next request, so nothing would be queued behind a job; the daemon is stopped
    until the deep client has requests waiting, as a client ahead of its decoder has."""
    vp9 = VP9_CLIPS["good-352x288"]
    cases = [(clip(".ivf", **vp9), vp9, 6, True), (clip(".ivf", **vp9), vp9, 1, False),
             (clip(".mp4", **H264_CLIP), H264_CLIP, 6, True)]
    log = share_dir / "daemon.log"   # check_bit_exact reads what the daemon adds to it
    old_wd = (rig.PARAMS / "watchdog_ms").read_text().strip()
    with rig.daemon_held_off():
        with open(log, "a") as sink:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "daedalus_v4l2", "daemon", "--backend", "hw",
                 "--threads", "frame", "--no-write-behind", "--no-state-socket"],
                cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
        try:
            assert rig.wait_for(lambda: daemon.pid in rig.daemon_pids(), 240), "daemon not attached"
            (rig.PARAMS / "watchdog_ms").write_text("60000\n")   # the daemon stops for a while
            for path, spec, depth, parks in cases:
                before = debugfs_counters()
                if parks:
                    os.kill(daemon.pid, signal.SIGSTOP)
                    threading.Thread(target=_resume_when_queued, args=(daemon.pid, depth // 2),
                                     daemon=True).start()
                check_bit_exact(path, spec["width"], spec["height"], spec["frames"], tmp_path,
                                share_dir, decode_args=("--depth", str(depth)))
                parked = debugfs_counters()["parked"] - before["parked"]
                assert (parked > 0) == parks, f"{spec['codec']} depth {depth}: {parked} parked"
        finally:
            (rig.PARAMS / "watchdog_ms").write_text(old_wd + "\n")
            os.kill(daemon.pid, signal.SIGCONT)
            daemon.terminate()
            assert daemon.wait(60) == 0


def _resume_when_queued(pid: int, count: int, timeout: float = 8) -> None:
    """SIGCONT the daemon once ``count`` OUTPUT buffers wait behind the claimed one
    (vb2 calls every buffer the driver has "active", claimed or not)."""
    def queued() -> bool:
        lines = (rig.DEBUGFS / "queues").read_text().splitlines()
        return any(" OUT " in line and line.count(":active") >= 1 + count for line in lines)
    try:
        rig.wait_for(queued, timeout)
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.mark.debug_kernel
def test_decode_h264_bit_exact(hw, clip, tmp_path, share_dir):
    path = clip(".mp4", **H264_CLIP)
    check_bit_exact(path, H264_CLIP["width"], H264_CLIP["height"], H264_CLIP["frames"],
                    tmp_path, share_dir)


@pytest.mark.debug_kernel
def test_dmesg_clean_after_load_and_decodes(hw):
    """Load (at boot) and every decode so far; unload is checked on the host
    (test_hw_dmesg.py), from the dmesg the rig saves after unloading."""
    lines = subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout.splitlines()
    assert any("daedalus_v4l2" in line and "registered" in line for line in lines), lines[-40:]
    bad = [line for line in lines if BAD_DMESG.search(line)]
    assert not bad, "\n".join(bad)


AV1_CLIP = dict(codec="av1", width=176, height=144, frames=12, options={"preset": "12"})


@pytest.mark.debug_kernel
def test_decode_av1_bit_exact(hw, clip, tmp_path, share_dir):
    """SVT-AV1's default mini-GOP codes hidden frames: each still gets its own request."""
    from tests.test_av1_decode import dav1d_raw  # Debian's ffmpeg, naming libdav1d

    path = clip(".ivf", **AV1_CLIP)
    check_bit_exact(path, AV1_CLIP["width"], AV1_CLIP["height"], AV1_CLIP["frames"], tmp_path,
                    share_dir, reference=dav1d_raw)


def test_decode_vp9_profile_2_to_p010_bit_exact(hw, tmp_path, share_dir):
    """10-bit VP9 (alt-ref on) through the module: P010 CAPTURE buffers, every picture
    equal to ffmpeg's p010le, hidden frames each with their own request."""
    from tests.clips import ffmpeg_cli_clip
    from tests.test_decode_vp9 import PROFILE2

    name, width, height, frames, pix_fmt, encoder = PROFILE2
    path = ffmpeg_cli_clip(tmp_path, name, width, height, frames, pix_fmt, encoder)
    jobs = check_bit_exact(path, width, height, frames, tmp_path, share_dir, pix_fmt="p010le")
    assert jobs > frames, "no hidden frames: the alt-ref path did not run"
