"""The VP9 client side: superframes, uncompressed headers, references, the
V4L2 frame control.

Real streams come from libvpx-vp9 through PyAV (tests/clips.py) and are
checked against two independent readers of the same bits: libavcodec's
decoder (how many pictures, what size, which are keyframes) and FFmpeg's
``trace_headers`` bitstream filter (every header field, by name).  Hand-built
headers cover what libvpx does not emit (intra-only frames, show_existing,
bad input).
"""
from __future__ import annotations

import functools
import re
import signal
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import av
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .reference import ffmpeg_path
from .clips import VP9_GOOD, VP9_REALTIME
from daedalus_v4l2.codecs import vp9
from daedalus_v4l2.codecs.bitreader import BitReader
from daedalus_v4l2.codecs.vp9 import (Vp9FrameHeader, Vp9Parser, Vp9References, frame_control,
                                      split_superframe)
from daedalus_v4l2.errors import BitstreamError
from daedalus_v4l2.v4l2 import uapi
from daedalus_v4l2.v4l2.uapi import ffi

FFMPEG_CLI = ffmpeg_path()  # required: the independent reference (scripts/test installs it)
V4L2_CONTROLS_HEADER = Path("/usr/include/linux/v4l2-controls.h")

# name -> make_clip parameters.  Sizes: CIF, one that is not a multiple of
# 8 (partial superblocks and mode-info units), and one a single superblock.
CLIPS = {
    "realtime-352x288.ivf": dict(options=VP9_REALTIME, width=352, height=288),
    "good-352x288.ivf": dict(options=VP9_GOOD, width=352, height=288),
    "good-352x288.webm": dict(options=VP9_GOOD, width=352, height=288),
    "realtime-322x182.webm": dict(options=VP9_REALTIME, width=322, height=182),
    "good-322x182.ivf": dict(options=VP9_GOOD, width=322, height=182),
    "realtime-64x64.ivf": dict(options=VP9_REALTIME, width=64, height=64, frames=12),
    "good-64x64.webm": dict(options=VP9_GOOD, width=64, height=64),
    # Cyclic-refresh AQ codes segmentation (map, temporal prediction,
    # features); error resilience switches frame contexts off.
    "segmented-resilient-352x288.ivf": dict(
        options={**VP9_REALTIME, "aq-mode": "3", "error-resilient": "1"},
        width=352, height=288, frames=10, bit_rate=300_000),
    "profile1-444-64x64.ivf": dict(options=VP9_REALTIME, width=64, height=64, frames=6,
                                   pix_fmt="yuv444p"),
    "profile1-rgb-64x64.ivf": dict(options=VP9_REALTIME, width=64, height=64, frames=6,
                                   pix_fmt="gbrp"),
}
GOOD_CLIPS = [name for name in CLIPS if name.startswith("good")]
# PyAV's libvpx is built without high bit depth; Debian's ffmpeg has it.
CLI_CLIPS = {"profile2-10bit-64x64.ivf": "yuv420p10le",
             "profile3-12bit-444-64x64.ivf": "yuv444p12le"}


# ====================================================================
# Clips, parsed once per session
# ====================================================================

@dataclass
class ParsedFrame:
    packet_index: int
    data: bytes
    header: Vp9FrameHeader


@dataclass
class ParsedClip:
    path: Path
    packets: list[bytes]
    packet_keyframe_flags: list[bool]
    frames: list[ParsedFrame]
    decoded: list[tuple[int, int, bool]]     # libavcodec: (width, height, key_frame)


def parse_clip(path: Path) -> ParsedClip:
    packets, key_flags = demux(path)
    parser, frames = Vp9Parser(), []
    for index, packet in enumerate(packets):
        for data in split_superframe(packet):
            frames.append(ParsedFrame(index, data, parser.parse(data)))
    return ParsedClip(path, packets, key_flags, frames, decode_with_libavcodec(packets))


def demux(path: Path) -> tuple[list[bytes], list[bool]]:
    packets, key_flags = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.size:
                packets.append(bytes(packet))
                key_flags.append(packet.is_keyframe)
    return packets, key_flags


def decode_with_libavcodec(packets: list[bytes]) -> list[tuple[int, int, bool]]:
    decoder = av.CodecContext.create("vp9", "r")
    decoded = []
    for packet in [av.Packet(data) for data in packets] + [None]:
        for picture in decoder.decode(packet):
            decoded.append((picture.width, picture.height, bool(picture.key_frame)))
    return decoded


@functools.cache
def _parsed(path: Path) -> ParsedClip:
    return parse_clip(path)


def make_cli_clip(path: Path, pix_fmt: str) -> Path:
    if not path.exists():
        subprocess.run(
            [FFMPEG_CLI, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
             "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=30", "-frames:v", "6",
             "-c:v", "libvpx-vp9", "-pix_fmt", pix_fmt, "-deadline", "realtime",
             "-cpu-used", "8", str(path)],
            check=True, timeout=60)
    return path


@pytest.fixture(params=list(CLIPS) + list(CLI_CLIPS))
def clip_name(request):
    return request.param


@pytest.fixture
def clip_path(clip_name, clip, clip_dir):
    if clip_name in CLI_CLIPS:
        return make_cli_clip(clip_dir / clip_name, CLI_CLIPS[clip_name])
    return clip(Path(clip_name).suffix, **CLIPS[clip_name])


@pytest.fixture
def parsed(clip_path) -> ParsedClip:
    return _parsed(clip_path)


# ====================================================================
# Real streams against libavcodec
# ====================================================================

def displayed(parsed: ParsedClip) -> list[Vp9FrameHeader]:
    return [f.header for f in parsed.frames if f.header.is_displayed]


def test_displayed_frames_match_libavcodec(parsed):
    shown = displayed(parsed)
    assert len(shown) == len(parsed.decoded)
    assert [(h.width, h.height) for h in shown] == [d[:2] for d in parsed.decoded]
    assert [h.is_keyframe for h in shown] == [d[2] for d in parsed.decoded]


def test_first_frame_is_keyframe_and_packet_flags_agree(parsed):
    assert parsed.frames[0].header.is_keyframe
    for index, key_flag in enumerate(parsed.packet_keyframe_flags):
        in_packet = [f.header for f in parsed.frames if f.packet_index == index]
        assert any(h.is_keyframe for h in in_packet) == key_flag


def test_headers_fit_inside_their_frame(parsed):
    for frame in parsed.frames:
        h = frame.header
        assert 0 < h.compressed_header_size
        assert h.uncompressed_header_size + h.compressed_header_size <= len(frame.data)


def test_color_config_matches_the_pixel_format(parsed, clip_name):
    expected = {  # (profile, bit_depth, subsampling_x, subsampling_y, rgb)
        "profile1-444": (1, 8, 0, 0, False), "profile1-rgb": (1, 8, 0, 0, True),
        "profile2-10bit": (2, 10, 1, 1, False), "profile3-12bit-444": (3, 12, 0, 0, False),
    }
    profile, depth, ss_x, ss_y, rgb = next(
        (v for k, v in expected.items() if clip_name.startswith(k)), (0, 8, 1, 1, False))
    for frame in parsed.frames:
        h = frame.header
        assert (h.profile, h.bit_depth, h.subsampling_x, h.subsampling_y) == (
            profile, depth, ss_x, ss_y)
        assert (h.color_space == vp9.CS_RGB) == rgb


@pytest.mark.parametrize("name", GOOD_CLIPS)
def test_good_preset_packs_hidden_altrefs_in_superframes(name, clip):
    parsed = _parsed(clip(Path(name).suffix, **CLIPS[name]))
    superframes = [i for i, p in enumerate(parsed.packets) if len(split_superframe(p)) > 1]
    assert superframes, "VP9_GOOD made no superframe"
    for index in superframes:
        first, *rest = [f.header for f in parsed.frames if f.packet_index == index]
        assert not first.show_frame and not first.show_existing_frame   # the alt-ref
        assert first.refresh_frame_flags != 0                            # kept for later
        assert rest[-1].show_frame


def test_realtime_preset_has_no_hidden_frames(clip):
    parsed = _parsed(clip(".ivf", **CLIPS["realtime-352x288.ivf"]))
    assert all(f.header.show_frame for f in parsed.frames)


def test_segmentation_and_error_resilience_are_parsed(clip):
    parsed = _parsed(clip(".ivf", **CLIPS["segmented-resilient-352x288.ivf"]))
    headers = [f.header for f in parsed.frames]
    assert any(h.segmentation_enabled and h.segmentation_update_data for h in headers)
    assert any(h.segmentation_temporal_update for h in headers)
    assert any(any(map(any, h.segmentation_feature_enabled)) for h in headers)
    resilient = [h for h in headers if h.error_resilient_mode]
    assert resilient and all(h.frame_parallel_decoding_mode and not h.refresh_frame_context
                             for h in resilient)


# ====================================================================
# Real streams against FFmpeg's trace_headers
# ====================================================================

_TRACE_LINE = re.compile(r"^\[trace_headers @ 0x[0-9a-f]+\] (.*)$")
_TRACE_FIELD = re.compile(r"^(\d+)\s+(\S+)\s+([01]*)\s*=\s*(-?\d+)$")


def trace_headers(path: Path) -> list[dict[str, int]]:
    """Each frame's header fields as FFmpeg's trace_headers prints them; the
    key "_end_bit" is one past the last bit of the uncompressed header."""
    result = subprocess.run(
        [FFMPEG_CLI, "-nostdin", "-nostats", "-hide_banner", "-i", str(path), "-c", "copy",
         "-bsf:v", "trace_headers", "-f", "null", "-"],
        capture_output=True, text=True, timeout=60, check=True)
    frames, current = [], None
    for line in result.stderr.splitlines():
        match = _TRACE_LINE.match(line)
        if not match:
            continue
        text = match.group(1).strip()
        if text == "Frame":
            current = {}
            frames.append(current)
        elif text.startswith(("Superframe", "Packet")):
            current = None
        elif current is not None and (field := _TRACE_FIELD.match(text)):
            bit, name, coded, value = field.groups()
            current[name] = int(value)
            current["_end_bit"] = max(current.get("_end_bit", 0), int(bit) + len(coded))
    return frames


def _trace_expectations(h: Vp9FrameHeader) -> dict[str, int]:
    """trace_headers' name for each field -> our value."""
    expected = {
        "show_existing_frame": h.show_existing_frame, "frame_type": h.frame_type,
        "show_frame": h.show_frame, "error_resilient_mode": h.error_resilient_mode,
        "intra_only": h.intra_only, "reset_frame_context": h.reset_frame_context,
        "refresh_frame_flags": h.refresh_frame_flags,
        "frame_width_minus_1": h.width - 1, "frame_height_minus_1": h.height - 1,
        "render_width_minus_1": h.render_width - 1, "render_height_minus_1": h.render_height - 1,
        "color_space": h.color_space, "color_range": h.color_range,
        "subsampling_x": h.subsampling_x, "subsampling_y": h.subsampling_y,
        "ten_or_twelve_bit": h.bit_depth == 12,
        "allow_high_precision_mv": h.allow_high_precision_mv,
        "is_filter_switchable": h.is_filter_switchable,
        "raw_interpolation_filter_type": h.raw_interpolation_filter,
        "render_and_frame_size_different": (h.render_width, h.render_height) != (h.width, h.height),
        "profile_low_bit": h.profile & 1, "profile_high_bit": h.profile >> 1,
        "refresh_frame_context": h.refresh_frame_context,
        "frame_parallel_decoding_mode": h.frame_parallel_decoding_mode,
        "frame_context_idx": h.frame_context_idx,
        "loop_filter_level": h.loop_filter_level,
        "loop_filter_sharpness": h.loop_filter_sharpness,
        "loop_filter_delta_enabled": h.loop_filter_delta_enabled,
        "loop_filter_delta_update": h.loop_filter_delta_update,
        "base_q_idx": h.base_q_idx,
        "segmentation_enabled": h.segmentation_enabled,
        "segmentation_update_map": h.segmentation_update_map,
        "segmentation_temporal_update": h.segmentation_temporal_update,
        "segmentation_update_data": h.segmentation_update_data,
        "segmentation_abs_or_delta_update": h.segmentation_abs_or_delta_update,
        "tile_cols_log2": h.tile_cols_log2, "tile_rows_log2": h.tile_rows_log2,
        "header_size_in_bytes": h.compressed_header_size,
    }
    for i in range(3):
        expected[f"found_ref[{i}]"] = h.size_from_ref == i
        expected[f"ref_frame_idx[{i}]"] = h.ref_frame_idx[i]
        expected[f"ref_frame_sign_bias[{i + 1}]"] = h.ref_frame_sign_bias[i]
    for i, delta in enumerate(h.loop_filter_ref_deltas):
        expected[f"loop_filter_ref_deltas[{i}]"] = delta
    for i, delta in enumerate(h.loop_filter_mode_deltas):
        expected[f"loop_filter_mode_deltas[{i}]"] = delta
    for i, prob in enumerate(h.segmentation_tree_probs):
        expected[f"segmentation_tree_probs[{i}].prob"] = prob
    for i, prob in enumerate(h.segmentation_pred_probs):
        expected[f"segmentation_pred_prob[{i}].prob"] = prob
    for segment, features in enumerate(h.segmentation_feature_data):
        for feature, value in enumerate(features):
            expected[f"feature_enabled[{segment}][{feature}]"] = (
                h.segmentation_feature_enabled[segment][feature])
            expected[f"feature_value[{segment}][{feature}]"] = abs(value)
            expected[f"feature_sign[{segment}][{feature}]"] = value < 0
    for name, value in (("delta_q_y_dc", h.delta_q_y_dc), ("delta_q_uv_dc", h.delta_q_uv_dc),
                        ("delta_q_uv_ac", h.delta_q_uv_ac)):
        expected[f"{name}.delta_coded"] = value != 0
        expected[f"{name}.delta_q"] = value
    return {name: int(value) for name, value in expected.items()}


def test_every_field_agrees_with_ffmpeg_trace_headers(parsed):
    traced = trace_headers(parsed.path)
    assert len(traced) == len(parsed.frames)
    compared: set[str] = set()
    for number, (frame, fields) in enumerate(zip(parsed.frames, traced)):
        expected = _trace_expectations(frame.header)
        for name, value in fields.items():
            if name in expected:
                assert expected[name] == value, f"frame {number}: {name}"
                compared.add(name)
        # The uncompressed header ends at the byte after trace's last bit.
        assert frame.header.uncompressed_header_size == (fields["_end_bit"] + 7) // 8
    assert {"base_q_idx", "refresh_frame_flags", "loop_filter_level",
            "header_size_in_bytes", "ref_frame_idx[2]"} <= compared


# ====================================================================
# References and the V4L2 control
# ====================================================================

def _walk_references(parsed: ParsedClip):
    """(header, timestamp, refs) in decode order, as a client would do it."""
    references = Vp9References()
    for number, frame in enumerate(parsed.frames):
        timestamp = (number + 1) * 1000
        refs = references.refs_for(frame.header)
        yield frame.header, timestamp, refs
        references.update(frame.header, timestamp)


def test_references_point_at_earlier_frames(parsed):
    for header, timestamp, refs in _walk_references(parsed):
        if header.frame_is_intra:
            assert refs == (0, 0, 0)
        else:
            assert all(0 < ref < timestamp for ref in refs)


@pytest.mark.parametrize("name", GOOD_CLIPS[:1])
def test_hidden_altref_becomes_the_alt_reference(name, clip):
    parsed = _parsed(clip(Path(name).suffix, **CLIPS[name]))
    walk = list(_walk_references(parsed))
    hidden = [(h, ts) for h, ts, _ in walk if not h.show_frame]
    assert hidden
    header, timestamp = hidden[0]
    later_alt_refs = {refs[2] for h, ts, refs in walk if ts > timestamp and not h.frame_is_intra}
    assert timestamp in later_alt_refs


def test_keyframe_refreshes_all_slots():
    references = Vp9References()
    references.update(Vp9FrameHeader(frame_type=vp9.KEY_FRAME, refresh_frame_flags=0xFF), 7)
    assert references.slots == (7,) * 8
    references.update(Vp9FrameHeader(refresh_frame_flags=0b100), 9)
    assert references.slot_timestamp(2) == 9 and references.slot_timestamp(3) == 7
    inter = Vp9FrameHeader(ref_frame_idx=(0, 3, 2))
    assert references.refs_for(inter) == (7, 7, 9)


def test_empty_reference_slot_is_an_error():
    with pytest.raises(BitstreamError, match="slot 4"):
        Vp9References().slot_timestamp(4)
    with pytest.raises(BitstreamError):
        Vp9References().refs_for(Vp9FrameHeader(ref_frame_idx=(0, 1, 2)))


def _control(data: bytes):
    assert len(data) == ffi.sizeof("struct v4l2_ctrl_vp9_frame")
    return ffi.cast("struct v4l2_ctrl_vp9_frame *", ffi.from_buffer(data))


def test_frame_control_round_trips(parsed):
    for header, _, refs in _walk_references(parsed):
        ctrl = _control(frame_control(header, *refs))
        assert (ctrl.frame_width_minus_1 + 1, ctrl.frame_height_minus_1 + 1) == (
            header.width, header.height)
        assert ctrl.render_width_minus_1 + 1 == header.render_width
        assert (ctrl.last_frame_ts, ctrl.golden_frame_ts, ctrl.alt_frame_ts) == refs
        assert bool(ctrl.flags & uapi.V4L2_VP9_FRAME_FLAG_KEY_FRAME) == header.is_keyframe
        assert bool(ctrl.flags & uapi.V4L2_VP9_FRAME_FLAG_SHOW_FRAME) == header.show_frame
        assert bool(ctrl.flags & uapi.V4L2_VP9_FRAME_FLAG_X_SUBSAMPLING) == bool(
            header.subsampling_x)
        assert bool(ctrl.flags & uapi.V4L2_VP9_FRAME_FLAG_ERROR_RESILIENT) == (
            header.error_resilient_mode)
        assert ctrl.compressed_header_size == header.compressed_header_size
        assert ctrl.uncompressed_header_size == header.uncompressed_header_size
        assert (ctrl.profile, ctrl.bit_depth) == (header.profile, header.bit_depth)
        assert ctrl.quant.base_q_idx == header.base_q_idx
        assert ctrl.lf.level == header.loop_filter_level
        assert list(ctrl.lf.ref_deltas) == list(header.loop_filter_ref_deltas)
        assert ctrl.interpolation_filter == header.interpolation_filter
        assert ctrl.frame_context_idx == header.frame_context_idx
        assert ctrl.reference_mode == 0
        assert bool(ctrl.seg.flags & uapi.V4L2_VP9_SEGMENTATION_FLAG_ENABLED) == (
            header.segmentation_enabled)
        for segment in range(8):
            assert list(ctrl.seg.feature_data[segment]) == list(
                header.segmentation_feature_data[segment])


def test_frame_control_maps_enums_and_bitmasks():
    header = Vp9FrameHeader(
        width=10, height=20, render_width=10, render_height=20,
        ref_frame_sign_bias=(False, True, True), reset_frame_context=3,
        is_filter_switchable=False, raw_interpolation_filter=0,
        interpolation_filter=vp9.LITERAL_TO_V4L2_INTERP_FILTER[0],
        loop_filter_delta_enabled=True, segmentation_enabled=True,
        segmentation_abs_or_delta_update=True, color_range=1, subsampling_x=0,
        segmentation_feature_enabled=((True, False, False, True),) + ((False,) * 4,) * 7,
        segmentation_feature_data=((-5, 0, 0, 0),) + ((0,) * 4,) * 7)
    ctrl = _control(frame_control(header))
    assert ctrl.ref_frame_sign_bias == vp9.V4L2_VP9_SIGN_BIAS_GOLDEN | vp9.V4L2_VP9_SIGN_BIAS_ALT
    assert ctrl.reset_frame_context == vp9.V4L2_VP9_RESET_FRAME_CTX_ALL
    assert ctrl.interpolation_filter == vp9.V4L2_VP9_INTERP_FILTER_EIGHTTAP_SMOOTH
    assert ctrl.lf.flags == uapi.V4L2_VP9_LOOP_FILTER_FLAG_DELTA_ENABLED
    assert ctrl.seg.flags == (uapi.V4L2_VP9_SEGMENTATION_FLAG_ENABLED
                              | uapi.V4L2_VP9_SEGMENTATION_FLAG_ABS_OR_DELTA_UPDATE)
    assert ctrl.seg.feature_enabled[0] == 0b1001 and ctrl.seg.feature_data[0][0] == -5
    assert ctrl.flags & uapi.V4L2_VP9_FRAME_FLAG_COLOR_RANGE_FULL_SWING
    assert not ctrl.flags & uapi.V4L2_VP9_FRAME_FLAG_X_SUBSAMPLING
    assert list(ctrl.reserved) == [0] * 7
    with pytest.raises(ValueError, match="show_existing_frame"):
        frame_control(Vp9FrameHeader(show_existing_frame=True))


@pytest.mark.parametrize("coded, v4l2", [(0, 0), (1, 0), (2, 1), (3, 2)])
def test_reset_frame_context_mapping(coded, v4l2):
    ctrl = _control(frame_control(Vp9FrameHeader(width=1, height=1, render_width=1,
                                                 render_height=1, reset_frame_context=coded)))
    assert ctrl.reset_frame_context == v4l2


def test_local_v4l2_constants_match_the_kernel_header():
    defines = dict(re.findall(r"#define\s+(V4L2_VP9_\w+)\s+(0x[0-9a-fA-F]+|\d+)\s*$",
                              V4L2_CONTROLS_HEADER.read_text(), re.M))
    local = {name: getattr(vp9, name) for name in dir(vp9) if name.startswith("V4L2_VP9_")}
    assert local
    for name, value in local.items():
        assert int(defines[name], 0) == value, name


# ====================================================================
# Hand-built headers: what libvpx does not emit
# ====================================================================

class BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def put(self, value: int, n: int = 1) -> BitWriter:
        self.bits += [(int(value) >> (n - 1 - i)) & 1 for i in range(n)]
        return self

    def put_su(self, value: int, n: int) -> BitWriter:
        return self.put(abs(value), n).put(value < 0)

    def to_bytes(self) -> bytes:
        padded = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(int("".join(map(str, padded[i:i + 8])), 2) for i in range(0, len(padded), 8))


def _profile_bits(w: BitWriter, profile: int) -> None:
    w.put(2, 2).put(profile & 1).put(profile >> 1)
    if profile == 3:
        w.put(0)


def _sync_code(w: BitWriter) -> None:
    for byte in vp9.SYNC_CODE:
        w.put(byte, 8)


def _frame_and_render_size(w: BitWriter, width: int, height: int) -> None:
    w.put(width - 1, 16).put(height - 1, 16).put(0)


def _tail(w: BitWriter, width: int, lf_level=10, q=60, lf_deltas=None, compressed=5,
          coded_compressed_size=None) -> bytes:
    """refresh_frame_context .. header_size_in_bytes, for a non-resilient frame,
    then ``compressed`` bytes standing in for the compressed header."""
    w.put(1).put(0).put(0, 2)                      # refresh ctx, parallel, frame_context_idx
    w.put(lf_level, 6).put(0, 3).put(1)            # level, sharpness, delta_enabled
    if lf_deltas is None:
        w.put(0)                                   # delta_update
    else:
        w.put(1)
        for delta in lf_deltas:                    # 4 ref deltas then 2 mode deltas
            w.put(delta is not None)
            if delta is not None:
                w.put_su(delta, 6)
    w.put(q, 8).put(0).put(0).put(0)               # base_q_idx, no delta_q
    w.put(0)                                       # segmentation_enabled
    sb64_cols = (((width + 7) >> 3) + 7) >> 3
    if vp9._max_log2_tile_cols(sb64_cols) > vp9._min_log2_tile_cols(sb64_cols):
        w.put(0)                                   # no increment_tile_cols_log2
    w.put(0)                                       # tile_rows_log2
    w.put(compressed if coded_compressed_size is None else coded_compressed_size, 16)
    return w.to_bytes() + b"\0" * compressed


def keyframe(width=64, height=48, profile=0, bit_depth=8, lf_deltas=None, q=60,
             coded_compressed_size=None) -> bytes:
    w = BitWriter()
    _profile_bits(w, profile)
    w.put(0).put(vp9.KEY_FRAME).put(1).put(0)      # show_existing, frame_type, show, resilient
    _sync_code(w)
    if profile >= 2:
        w.put(bit_depth == 12)
    w.put(1, 3).put(0)                             # color_space BT.601, studio range
    if profile in (1, 3):
        w.put(0).put(0).put(0)                     # 4:4:4, reserved_zero
    _frame_and_render_size(w, width, height)
    return _tail(w, width, lf_deltas=lf_deltas, q=q, coded_compressed_size=coded_compressed_size)


def intra_only_frame(width=32, height=32, profile=0, refresh=0b10) -> bytes:
    w = BitWriter()
    _profile_bits(w, profile)
    w.put(0).put(vp9.NON_KEY_FRAME).put(0).put(0)  # hidden, not resilient
    w.put(1).put(0, 2)                             # intra_only, reset_frame_context
    _sync_code(w)
    if profile > 0:
        if profile >= 2:
            w.put(0)                               # 10-bit
        w.put(2, 3).put(1).put(0).put(0).put(0)    # BT.709, full range, 4:4:4, reserved
    w.put(refresh, 8)
    _frame_and_render_size(w, width, height)
    return _tail(w, width)


def inter_frame(refs=(0, 1, 2), found_ref=0, width=None, raw_filter=None, lf_deltas=None,
                refresh=0b1) -> bytes:
    w = BitWriter()
    _profile_bits(w, 0)
    w.put(0).put(vp9.NON_KEY_FRAME).put(1).put(0)  # shown, not resilient
    w.put(0, 2).put(refresh, 8)                    # reset_frame_context, refresh flags
    for idx in refs:
        w.put(idx, 3).put(0)
    for i in range(3):
        w.put(i == found_ref)
        if i == found_ref:
            break
    if found_ref is None:
        _frame_and_render_size(w, width, 16)
    else:
        w.put(0)                                   # render_and_frame_size_different
    w.put(1)                                       # allow_high_precision_mv
    if raw_filter is None:
        w.put(1)
    else:
        w.put(0).put(raw_filter, 2)
    return _tail(w, width or 64, lf_deltas=lf_deltas)


def show_existing(slot: int) -> bytes:
    return BitWriter().put(2, 2).put(0).put(0).put(1).put(slot, 3).to_bytes()


def test_hand_built_keyframe_parses():
    h = Vp9Parser().parse(keyframe(width=100, height=50))
    assert (h.width, h.height, h.render_width, h.is_keyframe) == (100, 50, 100, True)
    assert (h.bit_depth, h.color_space, h.subsampling_x, h.refresh_frame_flags) == (8, 1, 1, 0xFF)
    assert (h.loop_filter_level, h.base_q_idx, h.compressed_header_size) == (10, 60, 5)


@pytest.mark.parametrize("profile, bit_depth", [(2, 10), (2, 12), (3, 10), (3, 12)])
def test_high_bit_depth_color_config(profile, bit_depth):
    h = Vp9Parser().parse(keyframe(profile=profile, bit_depth=bit_depth))
    assert (h.profile, h.bit_depth) == (profile, bit_depth)
    assert h.subsampling_x == (0 if profile == 3 else 1)


def test_profile0_intra_only_frame_is_8bit_420_and_keeps_other_slots():
    parser = Vp9Parser()
    parser.parse(keyframe(width=64, height=48))
    h = parser.parse(intra_only_frame(width=32, height=32, refresh=0b10))
    assert h.intra_only and h.frame_is_intra and not h.is_keyframe and not h.show_frame
    assert (h.bit_depth, h.subsampling_x, h.subsampling_y) == (8, 1, 1)
    assert h.color_space == vp9.CS_BT_601
    assert (h.width, h.refresh_frame_flags) == (32, 0b10)
    assert parser.ref_slot_size(1) == (32, 32) and parser.ref_slot_size(0) == (64, 48)
    assert Vp9References().refs_for(h) == (0, 0, 0)
    ctrl = _control(frame_control(h))
    assert ctrl.flags & uapi.V4L2_VP9_FRAME_FLAG_INTRA_ONLY
    assert not ctrl.flags & uapi.V4L2_VP9_FRAME_FLAG_KEY_FRAME


def test_profile1_intra_only_frame_reads_color_config():
    h = Vp9Parser().parse(intra_only_frame(profile=1))
    assert (h.color_space, h.color_range, h.subsampling_x, h.subsampling_y) == (2, 1, 0, 0)


def test_stream_may_start_at_an_intra_only_frame():
    parser = Vp9Parser()
    parser.parse(intra_only_frame(width=32, height=32, refresh=0xFF))
    assert parser.parse(inter_frame(found_ref=0)).width == 32


def test_frame_size_with_refs_takes_the_first_found_reference():
    parser = Vp9Parser()
    parser.parse(keyframe(width=64, height=48))
    parser.parse(intra_only_frame(width=32, height=32, refresh=0b100))
    h = parser.parse(inter_frame(refs=(0, 1, 2), found_ref=2))
    assert (h.width, h.height, h.size_from_ref) == (32, 32, 2)
    h = parser.parse(inter_frame(found_ref=None, width=40))
    assert (h.width, h.height, h.size_from_ref) == (40, 16, None)


@pytest.mark.parametrize("raw, v4l2", [(0, 1), (1, 0), (2, 2), (3, 3)])
def test_literal_interpolation_filter_maps_to_v4l2_order(raw, v4l2):
    parser = Vp9Parser()
    parser.parse(keyframe())
    h = parser.parse(inter_frame(raw_filter=raw))
    assert (h.is_filter_switchable, h.raw_interpolation_filter, h.interpolation_filter) == (
        False, raw, v4l2)


def test_switchable_interpolation_filter():
    parser = Vp9Parser()
    parser.parse(keyframe())
    h = parser.parse(inter_frame())
    assert h.interpolation_filter == vp9.V4L2_VP9_INTERP_FILTER_SWITCHABLE


def test_loop_filter_deltas_persist_until_a_keyframe_resets_them():
    parser = Vp9Parser()
    assert parser.parse(keyframe()).loop_filter_ref_deltas == (1, 0, -1, -1)
    h = parser.parse(inter_frame(lf_deltas=[None, 5, None, -7, 3, None]))
    assert (h.loop_filter_ref_deltas, h.loop_filter_mode_deltas) == ((1, 5, -1, -7), (3, 0))
    h = parser.parse(inter_frame())
    assert not h.loop_filter_delta_update
    assert (h.loop_filter_ref_deltas, h.loop_filter_mode_deltas) == ((1, 5, -1, -7), (3, 0))
    assert parser.parse(keyframe()).loop_filter_ref_deltas == (1, 0, -1, -1)


def test_show_existing_frame():
    parser = Vp9Parser()
    parser.parse(keyframe(width=64, height=48))
    h = parser.parse(show_existing(5))
    assert h.show_existing_frame and h.is_displayed and not h.is_keyframe
    assert (h.frame_to_show_map_idx, h.width, h.height) == (5, 64, 48)
    assert (h.uncompressed_header_size, h.compressed_header_size) == (1, 0)
    assert h.refresh_frame_flags == 0
    references = Vp9References()
    references.update(parser.parse(keyframe()), 123)
    assert references.slot_timestamp(h.frame_to_show_map_idx) == 123


# ====================================================================
# Error paths: only BitstreamError, never a hang
# ====================================================================

@contextmanager
def no_hang(seconds: int = 10):
    def give_up(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")
    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _primed_parser() -> Vp9Parser:
    parser = Vp9Parser()
    parser.parse(keyframe())
    return parser


@pytest.mark.parametrize("data, message", [
    (b"", "truncated"),
    (b"\x00" * 16, "frame marker"),
    (b"\xc0" * 16, "frame marker"),
    (bytes([0b10111000]) + keyframe()[1:], "profile 4"),           # profile 3, reserved bit set
    (keyframe()[:1] + b"\x49\x83\x43" + keyframe()[4:], "sync code"),
    (keyframe()[:3], "truncated"),
    (keyframe()[:-1], "truncated"),                                # compressed header cut short
    (keyframe()[:-5], "truncated"),                                # no compressed header
    (show_existing(3), "empty reference slot 3"),
    (inter_frame(), "before any keyframe"),
])
def test_bad_frames_raise_bitstream_error(data, message):
    with no_hang(), pytest.raises(BitstreamError, match=message):
        Vp9Parser().parse(data)


def test_zero_compressed_header_size_is_an_error():
    with pytest.raises(BitstreamError, match="is 0"):
        Vp9Parser().parse(keyframe(coded_compressed_size=0))


def test_rgb_is_invalid_in_profile0():
    w = BitWriter()
    _profile_bits(w, 0)
    w.put(0).put(vp9.KEY_FRAME).put(1).put(0)
    _sync_code(w)
    w.put(vp9.CS_RGB, 3)
    with pytest.raises(BitstreamError, match="RGB"):
        Vp9Parser().parse(w.to_bytes() + b"\0" * 8)


def test_frame_size_from_an_empty_slot_is_an_error():
    parser = Vp9Parser()
    parser.parse(intra_only_frame(refresh=0b1))
    with pytest.raises(BitstreamError, match="empty reference slot 1"):
        parser.parse(inter_frame(refs=(1, 0, 0), found_ref=0))


def test_failed_parse_leaves_the_parser_state_alone():
    parser = _primed_parser()
    good = inter_frame(lf_deltas=[None, 9, None, None, None, None])
    with pytest.raises(BitstreamError):
        parser.parse(good[:-1])
    assert parser.parse(inter_frame()).loop_filter_ref_deltas == (1, 0, -1, -1)


def test_truncating_real_frames_gives_bitstream_error(clip):
    parsed = _parsed(clip(".ivf", **CLIPS["good-322x182.ivf"]))
    parser = Vp9Parser()
    for frame in parsed.frames:
        h = frame.header
        needed = h.uncompressed_header_size + h.compressed_header_size
        for cut in sorted({0, 1, h.uncompressed_header_size - 1, needed - 1}):
            with no_hang(), pytest.raises(BitstreamError):
                parser.parse(frame.data[:cut])
        assert parser.parse(frame.data) == h      # the failures changed no state


# ---- the bit reader ----

def test_bit_reader_reads_msb_first_across_bytes():
    bits = BitReader(bytes([0b10110011, 0b01000000]))
    assert bits.read_bits(3) == 0b101
    assert bits.read_bits(7) == 0b1001101
    assert (bits.bit_position, bits.byte_position, bits.bits_left) == (10, 2, 6)
    bits.align()
    assert bits.byte_aligned() and bits.bits_left == 0


def test_bit_reader_signed_values():
    # su(4) = 5 then sign 1 -> -5; delta: flag 1, su(4) = 3 -> 3; delta flag 0 -> 0.
    bits = BitReader(BitWriter().put(5, 4).put(1).put(1).put(3, 4).put(0).put(0).to_bytes())
    assert bits.read_su(4) == -5 and bits.read_delta(4) == 3 and bits.read_delta(4) == 0


@pytest.mark.parametrize("code, ue, se", [("1", 0, 0), ("010", 1, 1), ("011", 2, -1),
                                          ("00100", 3, 2), ("00111", 6, -3)])
def test_bit_reader_exp_golomb(code, ue, se):
    data = BitWriter().put(int(code, 2), len(code)).to_bytes()
    assert BitReader(data).read_ue() == ue and BitReader(data).read_se() == se


def test_bit_reader_past_the_end_is_a_bitstream_error():
    bits = BitReader(b"\xff")
    bits.read_bits(5)
    with pytest.raises(BitstreamError, match="truncated"):
        bits.read_bits(4)
    with pytest.raises(BitstreamError):
        BitReader(b"\0\0").read_ue()                 # leading zeros run off the end
    with pytest.raises(BitstreamError, match="longer than 32"):
        BitReader(b"\0" * 8).read_ue()


# ---- superframes ----

def _superframe(frames: list[bytes], size_bytes: int = 1) -> bytes:
    marker = 0xC0 | ((size_bytes - 1) << 3) | (len(frames) - 1)
    sizes = b"".join(len(f).to_bytes(size_bytes, "little") for f in frames)
    return b"".join(frames) + bytes([marker]) + sizes + bytes([marker])


@pytest.mark.parametrize("size_bytes", [1, 2, 3, 4])
def test_superframe_round_trip(size_bytes):
    frames = [b"\x82" * 3, b"\x83" * 200, b"\x84"][: 3 if size_bytes > 1 else 2]
    frames = [f for f in frames if len(f) < 256 ** size_bytes]
    assert split_superframe(_superframe(frames, size_bytes)) == frames


def test_plain_frames_are_not_split():
    assert split_superframe(b"") == []
    assert split_superframe(b"\x82\x00\x01") == [b"\x82\x00\x01"]
    # A last byte that looks like a marker, without the matching first byte.
    assert split_superframe(b"\x82\x00\x01\x00\xc1") == [b"\x82\x00\x01\x00\xc1"]
    # Too short to hold the index its marker announces.
    assert split_superframe(b"\xc1\xc1") == [b"\xc1\xc1"]


def test_inconsistent_superframe_index_raises():
    too_big = b"\x82" * 4 + bytes([0xC1, 3, 9, 0xC1])
    with pytest.raises(BitstreamError, match="frame 1"):
        split_superframe(too_big)
    zero = b"\x82" * 4 + bytes([0xC1, 0, 4, 0xC1])
    with pytest.raises(BitstreamError, match="size 0"):
        split_superframe(zero)


# ---- fuzz ----

_FUZZ = settings(max_examples=200, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow])


def _parse_or_bitstream_error(parser: Vp9Parser, data: bytes) -> None:
    with no_hang():
        try:
            parser.parse(data)
        except BitstreamError:
            pass


@_FUZZ
@given(st.binary(max_size=64))
def test_fuzz_parse_random_bytes(data):
    _parse_or_bitstream_error(Vp9Parser(), data)
    _parse_or_bitstream_error(_primed_parser(), data)


@_FUZZ
@given(st.binary(min_size=1, max_size=48), st.integers(0, 3))
def test_fuzz_parse_with_a_valid_marker(data, profile):
    # Force frame_marker and profile so the fuzzer gets past the first check.
    first = 0x80 | (profile & 1) << 5 | (profile >> 1) << 4 | data[0] & 0x0F
    data = bytes([first]) + data[1:]
    _parse_or_bitstream_error(Vp9Parser(), data)
    _parse_or_bitstream_error(_primed_parser(), data)


@_FUZZ
@given(st.binary(max_size=40), st.integers(0, 255))
def test_fuzz_split_superframe(data, marker):
    with no_hang():
        for candidate in (data, data + bytes([marker]), bytes([marker]) + data + bytes([marker])):
            try:
                frames = split_superframe(candidate)
            except BitstreamError:
                continue
            assert sum(map(len, frames)) <= len(candidate)
