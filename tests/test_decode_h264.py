"""H.264 end to end on the sim backend, against Debian's ffmpeg CLI.

Every clip is made here with libx264 (through PyAV), decoded through the
simulated V4L2 stateless device and the daemon (which sees slices and
control structs only, and rebuilds SPS and PPS), and compared frame by frame
(MD5 of each tightly packed NV12 frame, display order) with what an
independent ffmpeg build writes.  Both decode modes and both start-code modes
of the device are exercised, and the strict client (one request in flight,
waiting for each CAPTURE buffer) must decode every frame of B-pyramid
streams across many GOPs.
"""
import pytest

from daedalus_v4l2 import cli, container
from daedalus_v4l2.backends_runtime import open_decoder
from daedalus_v4l2.codecs import h264
from daedalus_v4l2.codecs.h264_client import (
    ANNEX_B, FRAME_BASED, NO_START_CODE, SLICE_BASED, H264Client, get_menu, set_menu)
from daedalus_v4l2.decode import StatelessPipeline
from daedalus_v4l2.errors import UnsupportedError
from daedalus_v4l2.threads import THREADS
from daedalus_v4l2.v4l2 import uapi

from .reference import ffmpeg_nv12, frame_md5s

PYRAMID = {"bf": "3", "b-pyramid": "normal"}
CUSTOM_CQM = ("cqm4=" + ",".join(str(12 + 3 * i) for i in range(16))
              + ":cqm8=" + ",".join(str(9 + i) for i in range(64)))

# name -> (width, height, frames, x264 options)
CLIPS = {
    "baseline-176x144.h264": (176, 144, 20, {"profile": "baseline"}),
    "main-pyramid-176x144.mp4": (176, 144, 40, dict(PYRAMID, profile="main")),
    "high-cavlc-pyramid-322x182.mkv": (322, 182, 24, dict(PYRAMID, coder="0")),
    "weighted-refs4-176x144.h264": (176, 144, 30, dict(PYRAMID, refs="4", weightp="2",
                                                        weightb="1")),
    "multislice-176x144.h264": (176, 144, 16, dict(PYRAMID, slices="4")),
    "multislice-cavlc-176x144.mkv": (176, 144, 12, {"slices": "4", "coder": "0", "bf": "2"}),
    "8x8dct-cqm-jvt-176x144.h264": (176, 144, 12, {"8x8dct": "1", "x264-params": "cqm=jvt"}),
    "8x8dct-cqm-custom-176x144.mp4": (176, 144, 12, {"8x8dct": "1", "bf": "2",
                                                      "x264-params": CUSTOM_CQM}),
    "ultrafast-1920x1080.mp4": (1920, 1080, 3, {"preset": "ultrafast"}),
}
# Many GOPs, open GOP, B-pyramid: where an earlier implementation lost frames.
GOPS = ("gops-open-pyramid-64x48.h264", (64, 48, 320, dict(
    PYRAMID, **{"x264-params": "keyint=30:min-keyint=30:scenecut=0:open-gop=1"})))
ALL = dict(CLIPS, **dict([GOPS]))
MODES = {"frame-annexb": (FRAME_BASED, ANNEX_B), "frame-none": (FRAME_BASED, NO_START_CODE),
         "slice-annexb": (SLICE_BASED, ANNEX_B), "slice-none": (SLICE_BASED, NO_START_CODE)}


@pytest.fixture(scope="module")
def clips(clip):
    made = {}
    for name, (w, h, n, opts) in ALL.items():
        suffix = "." + name.rsplit(".", 1)[1]
        params = dict(codec="h264", width=w, height=h, frames=n, options=opts)
        if suffix == ".h264":
            params["container"] = "h264"
        made[name] = clip(suffix, **params)
    return made


@pytest.fixture(scope="module")
def expected(clips):
    return {name: frame_md5s(ffmpeg_nv12(path), ALL[name][0], ALL[name][1])
            for name, path in clips.items()}


def decode_with(path, client, depth=2, daemon_options=None):
    """Decode through the sim with ``client``; (pictures, kernel stats, daemon stats).
    The daemon inline: some tests count what the kernel's queues held (parked pictures),
    which must not depend on how fast a daemon thread keeps up."""
    info = container.probe(path)
    with open_decoder("sim", daemon_options=daemon_options, daemon_thread=False) as opened:
        pipeline = StatelessPipeline(opened.decoder, client, info.width, info.height, depth=depth)
        try:
            pictures = list(pipeline.run(container.packets(path)))
        finally:
            pipeline.close()
        return pictures, opened.kernel.stats, opened.daemon.stats


def md5s_of(pictures, width, height):
    assert all(p.data is not None for p in pictures), [p.error for p in pictures if p.data is None]
    return frame_md5s(b"".join(p.data for p in pictures), width, height)


def slices_per_picture(path) -> int:
    first = next(container.packets(path))
    return sum(h264.nal_header(n).nal_unit_type in h264.VCL_NAL_TYPES
               for n in h264.split_annexb(first))


@pytest.mark.parametrize("name", CLIPS)
def test_decode_command_is_bit_exact_with_ffmpeg(clips, expected, name, tmp_path):
    width, height, frames, _ = CLIPS[name]
    out = tmp_path / "out.nv12"
    assert cli.main(["decode", str(clips[name]), "-o", str(out), "-q"]) == 0
    assert len(expected[name]) == frames
    assert frame_md5s(out.read_bytes(), width, height) == expected[name]


@pytest.mark.parametrize("mode", ["slice-annexb", "slice-none", "frame-none"])
@pytest.mark.parametrize("name", ["main-pyramid-176x144.mp4", "weighted-refs4-176x144.h264",
                                  "multislice-176x144.h264", "multislice-cavlc-176x144.mkv",
                                  "8x8dct-cqm-custom-176x144.mp4"])
def test_every_decode_mode_and_start_code_is_bit_exact(clips, expected, name, mode):
    """Frame-annexb is the device default, which the decode command test covers."""
    path = clips[name]
    width, height, _, _ = ALL[name]
    decode_mode, start_code = MODES[mode]
    client = H264Client(decode_mode, start_code)
    multi_slice = slices_per_picture(path) > 1
    if mode == "frame-none" and multi_slice:
        with pytest.raises(UnsupportedError, match="slice-based"):
            decode_with(path, client)
        return
    pictures, kernel, daemon = decode_with(path, client)
    assert (client.decode_mode, client.start_code) == (decode_mode, start_code)
    assert md5s_of(pictures, width, height) == expected[name]
    assert kernel.errors == 0 and daemon.errors == 0
    if decode_mode == SLICE_BASED and multi_slice:
        # one request per slice, the CAPTURE buffer held for all but the last
        assert kernel.jobs == len(pictures) * slices_per_picture(path)
    else:
        assert kernel.jobs == len(pictures)


@pytest.mark.parametrize("mode", ["frame-annexb", "slice-none"])
@pytest.mark.parametrize("name", ["gops-open-pyramid-64x48.h264", "weighted-refs4-176x144.h264",
                                  "multislice-176x144.h264"])
def test_a_client_that_waits_for_every_picture_never_stalls_and_loses_nothing(
        clips, expected, name, mode):
    """Depth 1: each request's CAPTURE buffer must come back before the next
    request is queued (the sim raises SimDeadlock instead of hanging), on
    B-pyramid streams, over many GOPs; every frame bit-exact, none lost."""
    width, height, frames, _ = ALL[name]
    pictures, kernel, daemon = decode_with(clips[name], H264Client(*MODES[mode]), depth=1)
    assert len(pictures) == frames == len(expected[name])
    assert md5s_of(pictures, width, height) == expected[name]
    assert kernel.parked_max == 0, "a picture came out later than its own request"
    assert daemon.pictures == frames and daemon.errors == 0


@pytest.mark.parametrize("depth", [1, 6])
@pytest.mark.parametrize("mode", ["frame-annexb", "slice-none"])
@pytest.mark.parametrize("name", ["gops-open-pyramid-64x48.h264", "weighted-refs4-176x144.h264",
                                  "multislice-176x144.h264"])
def test_frame_threads_park_for_a_deep_client_and_never_stall_a_strict_one(
        clips, expected, name, mode, depth):
    """A frame-threaded daemon holds pictures back only while the kernel says another
    job is queued (DECODE_MORE_QUEUED); otherwise it pushes them out with end-of-sequence
    packets.  Depth 6 parks; depth 1 never waits; both bit-exact, nothing lost."""
    width, height, frames, _ = ALL[name]
    pictures, kernel, daemon = decode_with(clips[name], H264Client(*MODES[mode]), depth=depth,
                                           daemon_options=THREADS["frame"])
    assert md5s_of(pictures, width, height) == expected[name]
    assert daemon.pictures == frames and daemon.errors == 0 and kernel.errors == 0
    if depth == 1:
        assert kernel.parked_max == 0, "a picture came out later than its own request"
    else:
        assert kernel.parked_max > 0, "frame threads and a deep client should park pictures"


@pytest.mark.parametrize("mode", ["frame-annexb", "slice-none"])
def test_parameter_sets_sent_again_with_other_fields_are_followed(clips, tmp_path, mode):
    """Two streams one after the other, with SPS 0 and PPS 0 in each: High with
    JVT scaling lists, then Baseline.  The client's controls and the daemon's
    parameter sets must follow the sets of the second (both keep the last ones
    they built); bit-exact with ffmpeg on the same bytes."""
    first, second = clips["8x8dct-cqm-jvt-176x144.h264"], clips["baseline-176x144.h264"]
    joined = tmp_path / "joined.h264"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    width, height = 176, 144
    expected = frame_md5s(ffmpeg_nv12(joined), width, height)
    pictures, kernel, daemon = decode_with(joined, H264Client(*MODES[mode]))
    assert len(pictures) == ALL["8x8dct-cqm-jvt-176x144.h264"][2] + ALL["baseline-176x144.h264"][2]
    assert md5s_of(pictures, width, height) == expected
    assert kernel.errors == 0 and daemon.errors == 0


def test_the_client_uses_the_mode_the_device_is_in(clips, expected):
    """No preference: the client reads DECODE_MODE and START_CODE from the device."""
    path = clips["multislice-176x144.h264"]
    info = container.probe(path)
    with open_decoder("sim") as opened:
        decoder = opened.decoder
        set_menu(decoder, uapi.V4L2_CID_STATELESS_H264_DECODE_MODE, SLICE_BASED)
        set_menu(decoder, uapi.V4L2_CID_STATELESS_H264_START_CODE, NO_START_CODE)
        client = H264Client()
        pipeline = StatelessPipeline(decoder, client, info.width, info.height)
        try:
            pictures = list(pipeline.run(container.packets(path)))
        finally:
            pipeline.close()
        assert get_menu(decoder, uapi.V4L2_CID_STATELESS_H264_DECODE_MODE) == SLICE_BASED
    assert (client.decode_mode, client.start_code) == (SLICE_BASED, NO_START_CODE)
    assert md5s_of(pictures, info.width, info.height) == expected["multislice-176x144.h264"]


def test_the_clips_exercise_what_their_names_say(clips):
    """Guard against an encoder option silently doing nothing."""
    def parameter_sets(name):
        nals = h264.split_annexb(next(container.packets(clips[name])))
        sps = h264.parse_sps(next(n for n in nals if n[0] & 0x1F == h264.NAL_SPS))
        pps = h264.parse_pps(next(n for n in nals if n[0] & 0x1F == h264.NAL_PPS),
                             {sps.seq_parameter_set_id: sps})
        return sps, pps

    sps, pps = parameter_sets("baseline-176x144.h264")
    assert sps.profile_idc == 66 and not pps.entropy_coding_mode_flag
    assert sps.pic_order_cnt_type == 2
    sps, pps = parameter_sets("main-pyramid-176x144.mp4")
    assert sps.profile_idc == 77 and pps.entropy_coding_mode_flag
    assert sps.max_num_reorder_frames == 2  # the pyramid: B frames referenced by B frames
    sps, pps = parameter_sets("high-cavlc-pyramid-322x182.mkv")
    assert not pps.entropy_coding_mode_flag and sps.frame_cropping_flag
    sps, pps = parameter_sets("weighted-refs4-176x144.h264")
    # explicit weights in P slices (PRED_WEIGHTS), implicit ones for B (x264's weightb)
    assert pps.weighted_pred_flag and pps.weighted_bipred_idc == 2 and sps.max_num_ref_frames >= 4
    for name in ("8x8dct-cqm-jvt-176x144.h264", "8x8dct-cqm-custom-176x144.mp4"):
        sps, pps = parameter_sets(name)
        assert pps.transform_8x8_mode_flag
        assert sps.seq_scaling_matrix_present_flag or pps.pic_scaling_matrix_present_flag
        assert pps.scaling_matrix.lists_4x4[0] != h264.FLAT_4X4
    sps, _ = parameter_sets("ultrafast-1920x1080.mp4")
    assert sps.visible_size == (1920, 1080) and sps.height_mbs * 16 == 1088
    assert slices_per_picture(clips["multislice-176x144.h264"]) > 1  # x264 makes 2 of "4" here
    assert slices_per_picture(clips["multislice-cavlc-176x144.mkv"]) > 1
