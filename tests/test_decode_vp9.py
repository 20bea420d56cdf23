"""VP9 end to end on the sim backend: `daedalus-v4l2 decode` against Debian's ffmpeg CLI.

Every clip is made here with libvpx (through PyAV), decoded through the
simulated V4L2 stateless device and the daemon, and compared frame by frame
(MD5 of each tightly packed NV12 frame) with what an independent ffmpeg
build writes for `-f rawvideo -pix_fmt nv12`.  The 10-bit (profile 2) clip
comes from the ffmpeg CLI's libvpx: PyAV's has no high bit depth.
"""
import hashlib
import pickle

import pytest

from daedalus_v4l2 import cli, container, proto
from daedalus_v4l2.backends_runtime import open_decoder
from daedalus_v4l2.codecs import vp9
from daedalus_v4l2.decode import capture_format_for, decode_through
from daedalus_v4l2.synth import VP9_GOOD, VP9_REALTIME, make_clip
from daedalus_v4l2.threads import THREADS

from .clips import ffmpeg_cli_clip
from .reference import ffmpeg_nv12, ffmpeg_raw, frame_md5s

CLIPS = {
    "realtime-352x288.ivf": (352, 288, 30, VP9_REALTIME),
    "good-352x288.webm": (352, 288, 40, VP9_GOOD),
    "good-322x182.ivf": (322, 182, 30, VP9_GOOD),
    "realtime-322x182.mkv": (322, 182, 20, VP9_REALTIME),
    "good-176x144.mp4": (176, 144, 24, VP9_GOOD),
    "realtime-1280x720.webm": (1280, 720, 8, VP9_REALTIME),
    "good-1280x720.ivf": (1280, 720, 10, dict(VP9_GOOD, **{"cpu-used": "8"})),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("vp9")
    return {name: make_clip(root / name, "vp9", w, h, n, options=opts)
            for name, (w, h, n, opts) in CLIPS.items()}


@pytest.mark.parametrize("name", CLIPS)
def test_decode_command_is_bit_exact_with_ffmpeg(clips, name, tmp_path):
    clip = clips[name]
    width, height, frames, _ = CLIPS[name]
    out = tmp_path / "out.nv12"
    assert cli.main(["decode", str(clip), "-o", str(out), "-q"]) == 0
    expected = frame_md5s(ffmpeg_nv12(clip), width, height)
    got = frame_md5s(out.read_bytes(), width, height)
    assert len(expected) == frames
    assert got == expected


def test_good_quality_clips_exercise_hidden_frames(clips):
    """The alt-ref path (hidden frame, picture fetched by show-existing) must really run."""
    clip = clips["good-352x288.webm"]
    info = container.probe(clip)
    with open_decoder("sim") as opened:
        pictures = list(decode_through(opened.decoder, info.codec, info.width, info.height,
                                       container.packets(clip)))
        stats = opened.kernel.stats
    assert len(pictures) == CLIPS["good-352x288.webm"][2]
    assert stats.jobs > len(pictures), "no hidden frames: the clip does not test the alt-ref path"
    assert stats.errors == 0 and stats.done == stats.jobs


@pytest.mark.parametrize("name", ["good-352x288.webm", "good-322x182.ivf"])
def test_a_client_that_waits_for_every_picture_never_stalls(clips, name):
    clip = clips[name]
    info = container.probe(clip)
    with open_decoder("sim") as opened:
        pictures = list(decode_through(opened.decoder, info.codec, info.width, info.height,
                                       container.packets(clip), depth=1))
    assert all(p.data is not None for p in pictures)
    assert len(pictures) == CLIPS[name][2]


def test_frame_threaded_daemon_parks_and_still_completes_in_decode_order(clips):
    """Frame threading delays libavcodec's output: requests park, then complete in order."""
    clip = clips["good-352x288.webm"]
    width, height, frames, _ = CLIPS["good-352x288.webm"]
    info = container.probe(clip)
    options = {"thread_type": "FRAME", "thread_count": 3}
    # inline: how many requests queue up (and so park) must not depend on thread timing
    with open_decoder("sim", daemon_options=options, daemon_thread=False) as opened:
        pictures = list(decode_through(opened.decoder, info.codec, width, height,
                                       container.packets(clip), depth=8))
        stats = opened.kernel.stats
    assert stats.parked_max > 0, "frame threading should have parked CAPTURE buffers"
    expected = frame_md5s(ffmpeg_nv12(clip), width, height)
    assert frame_md5s(b"".join(p.data for p in pictures), width, height) == expected


@pytest.mark.parametrize("write_behind", [False, True])
@pytest.mark.parametrize("name", ["good-352x288.webm", "good-322x182.ivf"])
def test_frame_threads_never_stall_a_client_that_waits_for_every_picture(clips, name, write_behind):
    """No job queued behind a request (no DECODE_MORE_QUEUED): the frame-threaded
    daemon pushes its pipeline with "show existing frame" packets instead of parking
    until the next request, so a depth-1 client gets every picture from its own
    request, bit-exact.  Written behind, the one request in flight parks until its
    picture is written, and nothing more."""
    clip = clips[name]
    width, height, frames, _ = CLIPS[name]
    info = container.probe(clip)
    with open_decoder("sim", daemon_options={**THREADS["frame"], "write_behind": write_behind}) as opened:
        pictures = list(decode_through(opened.decoder, info.codec, width, height,
                                       container.packets(clip), depth=1, timeout=1.0))
        stats, daemon = opened.kernel.stats, opened.daemon.stats
    assert stats.parked_max == (1 if write_behind else 0)
    assert stats.errors == 0 and daemon.errors == 0
    assert stats.jobs > frames, "no hidden frames: the clip does not test the alt-ref path"
    expected = frame_md5s(ffmpeg_nv12(clip), width, height)
    assert frame_md5s(b"".join(p.data for p in pictures), width, height) == expected


def test_decode_to_stdout(clips, capsysbinary):
    clip = clips["realtime-352x288.ivf"]
    assert cli.main(["decode", str(clip), "-o", "-", "-q"]) == 0
    raw = capsysbinary.readouterr().out
    assert frame_md5s(raw, 352, 288) == frame_md5s(ffmpeg_nv12(clip), 352, 288)


@pytest.mark.parametrize("tui", [False, True], ids=["plain", "tui"])
@pytest.mark.parametrize("how", ["stdout", "path"])
def test_decode_refuses_to_write_pictures_to_a_terminal(clips, tui, how):
    """`-o -` on a terminal, or `-o /dev/pts/N`: megabytes of binary (with --tui, over
    the app's screen).  Refused with exit 2 before anything is decoded; a redirected
    stdout still works (test_decode_to_stdout), and so does /dev/null."""
    import os
    import pty
    import subprocess
    import sys

    controller, terminal = pty.openpty()
    output = "-" if how == "stdout" else os.ttyname(terminal)
    try:
        # Nothing reads the terminal: a decode that wrote to it would block, and fail
        # on the timeout.
        done = subprocess.run([sys.executable, "-m", "daedalus_v4l2", "decode",
                               str(clips["realtime-352x288.ivf"]), "-o", output]
                              + (["--tui"] if tui else []),
                              stdout=terminal, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(terminal)
        os.close(controller)
    assert done.returncode == 2, done.stderr
    assert "refusing to write raw pictures to a terminal" in done.stderr


def test_decode_to_dev_null(clips):
    assert cli.main(["decode", str(clips["realtime-352x288.ivf"]), "-o", "/dev/null", "-q"]) == 0


def test_decode_of_a_missing_file_says_so(tmp_path, capsys):
    assert cli.main(["decode", str(tmp_path / "nope.ivf"), "-o", str(tmp_path / "o")]) == 1
    assert "nope.ivf" in capsys.readouterr().err


def test_decode_of_a_non_video_file_says_so(tmp_path, capsys):
    junk = tmp_path / "junk.ivf"
    junk.write_bytes(b"this is not a video file" * 10)
    assert cli.main(["decode", str(junk), "-o", str(tmp_path / "o")]) == 1
    assert "error" in capsys.readouterr().err


# --------------------------------------------------------------------------- profile 2 (10-bit)

# VP9_GOOD's settings: the realtime deadline with alt-ref on codes hidden frames
PROFILE2 = ("profile2-176x144.webm", 176, 144, 40, "yuv420p10le",
            ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "5", "-auto-alt-ref", "1",
             "-lag-in-frames", "16", "-b:v", "400k"])


def test_vp9_profile_2_decodes_to_p010_bit_exact_with_ffmpeg(tmp_path):
    """10-bit VP9 (profile 2, alt-ref on) through the sim: P010 CAPTURE, every picture
    the same as ffmpeg's p010le, hidden frames included."""
    name, width, height, frames, pix_fmt, encoder = PROFILE2
    clip = ffmpeg_cli_clip(tmp_path, name, width, height, frames, pix_fmt, encoder)
    first = next(iter(container.packets(clip)))
    assert vp9.Vp9Parser().parse(bytes(first)).profile == 2
    out = tmp_path / "out.p010"
    assert cli.main(["decode", str(clip), "-o", str(out), "-q"]) == 0
    expected = frame_md5s(ffmpeg_raw(clip, "p010le"), width, height, "p010le")
    assert len(expected) == frames
    assert frame_md5s(out.read_bytes(), width, height, "p010le") == expected
    info = container.probe(clip)
    with open_decoder("sim") as opened:
        pictures = list(decode_through(opened.decoder, info.codec, info.width, info.height,
                                       container.packets(clip),
                                       capture_format=capture_format_for(info.pix_fmt)))
        stats = opened.kernel.stats
    assert len(pictures) == frames and stats.errors == 0
    assert stats.jobs > frames, "no hidden frames: the clip does not test the alt-ref path"


class _FlagRecorder:
    """The daemon's observer hook: which DECODE requests came with DECODE_MORE_QUEUED."""

    def __init__(self) -> None:
        self.more = []

    def on_message(self, msg) -> None:
        if isinstance(msg, proto.DecodeRequest):
            self.more.append(bool(msg.flags & proto.DECODE_MORE_QUEUED))

    def on_response(self, msg) -> None:
        pass


@pytest.mark.parametrize("depth", [1, 4])
def test_the_kernel_says_more_queued_only_when_another_job_is_ready(clips, depth):
    """A client that waits for each picture never has a job queued behind the one
    running; a client 4 deep has one behind every request but the last few."""
    clip = clips["realtime-352x288.ivf"]
    info = container.probe(clip)
    recorder = _FlagRecorder()
    # inline: what is queued behind a job must not depend on how fast a daemon thread is
    with open_decoder("sim", daemon_thread=False) as opened:
        opened.daemon.observer = recorder
        pictures = list(decode_through(opened.decoder, info.codec, info.width, info.height,
                                       container.packets(clip), depth=depth))
    assert len(pictures) == len(recorder.more) == CLIPS["realtime-352x288.ivf"][2]
    if depth == 1:
        assert not any(recorder.more)
    else:
        assert recorder.more[-1] is False and sum(recorder.more) >= len(recorder.more) - depth


def test_decode_command_with_frame_threads_is_bit_exact(clips, tmp_path):
    clip = clips["good-352x288.webm"]
    out = tmp_path / "out.nv12"
    assert cli.main(["decode", str(clip), "-o", str(out), "-q", "--threads", "frame",
                     "--depth", "6"]) == 0
    assert frame_md5s(out.read_bytes(), 352, 288) == frame_md5s(ffmpeg_nv12(clip), 352, 288)


def test_decode_threads_with_the_hw_backend_points_at_the_daemon(clips, tmp_path, capsys):
    assert cli.main(["decode", str(clips["good-352x288.webm"]), "-o", str(tmp_path / "o"),
                     "--backend", "hw", "--threads", "frame"]) == 2
    assert "daemon --threads frame" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["good-352x288.webm", "good-322x182.ivf"])
def test_borrowed_pictures_are_the_same_pictures_without_a_copy(clips, name):
    """borrow=True (what `decode` uses): each picture is a read-only view, of the
    CAPTURE buffer itself when its rows are unpadded (352 wide) or of one reused
    scratch picture (322 wide), let go of when the next picture is asked for."""
    clip = clips[name]
    info = container.probe(clip)

    def pictures(**options):
        with open_decoder("sim") as opened:
            yield from decode_through(opened.decoder, info.codec, info.width, info.height,
                                      container.packets(clip), **options)

    copied = [hashlib.md5(p.data).hexdigest() for p in pictures()]
    borrowed, previous, buffers = [], None, set()
    for picture in pictures(borrow=True):
        assert isinstance(picture.data, memoryview) and picture.data.readonly
        if previous is not None:
            with pytest.raises(ValueError):     # released: the buffer went back to the device
                bytes(previous)
        buffers.add(id(picture.data.obj))      # what the view is of: which buffer
        borrowed.append(hashlib.md5(picture.data).hexdigest())
        previous = picture.data
    assert borrowed == copied and len(copied) == CLIPS[name][2]
    scratch = info.width % 16 != 0
    assert (len(buffers) == 1) == scratch, "a padded layout reuses one scratch picture"


def test_a_consumer_that_keeps_an_export_of_a_borrowed_picture_does_not_stop_the_decode(clips):
    """A consumer holding a buffer export of ``picture.data`` itself past its turn
    (so that releasing it fails): the decode goes on and every buffer comes back."""
    clip = clips["good-352x288.webm"]
    info = container.probe(clip)
    kept = []
    with open_decoder("sim") as opened:
        for picture in decode_through(opened.decoder, info.codec, info.width, info.height,
                                      container.packets(clip), borrow=True):
            kept.append(pickle.PickleBuffer(picture.data))
        stats = opened.kernel.stats
    assert len(kept) == CLIPS["good-352x288.webm"][2]
    assert stats.errors == 0 and stats.done == stats.jobs
    assert len(kept[-1].raw()) == info.width * info.height * 3 // 2
