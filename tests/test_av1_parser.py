"""The AV1 client side: OBUs, sequence and frame headers, controls, and the
sequence header the daemon rebuilds.

Real streams come from SVT-AV1 through PyAV and are checked against an
independent reader of the same bits: FFmpeg's ``trace_headers`` bitstream
filter (Debian's ffmpeg CLI), which prints every header field with its bit
position.  Hand-built inputs cover what SVT-AV1 does not emit.
"""
from __future__ import annotations

import dataclasses
import re
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daedalus_v4l2 import container
from daedalus_v4l2.codecs import av1, av1_controls, av1_obu, av1_syntax
from daedalus_v4l2.codecs.av1_client import Av1Client
from daedalus_v4l2.codecs.av1_syntax import OperatingPoint
from daedalus_v4l2.errors import BitstreamError, UnsupportedError
from daedalus_v4l2.v4l2 import uapi
from daedalus_v4l2.v4l2.uapi import ffi

from .reference import ffmpeg_path

SVT_FAST = {"preset": "12"}
CLIPS = {
    "random-access-352x288.ivf": dict(width=352, height=288, frames=20, options=SVT_FAST),
    "tiles-grain-352x288.ivf": dict(
        width=352, height=288, frames=10,
        options=dict(SVT_FAST, **{"svtav1-params": "tile-columns=1:tile-rows=1:film-grain=10"})),
    "10bit-lowdelay-322x182.webm": dict(
        width=322, height=182, frames=12, pix_fmt="yuv420p10le",
        options=dict(SVT_FAST, **{"svtav1-params": "pred-struct=1"})),
}


@pytest.fixture(scope="module")
def clips(clip):
    return {name: clip(name[name.rindex("."):], codec="av1", **params)
            for name, params in CLIPS.items()}


def units_of(path) -> list[av1.FrameUnit]:
    parser = av1.Av1Parser()
    return [u for packet in container.packets(path) for u in parser.temporal_unit(packet)]


# --------------------------------------------------------------------------- against trace_headers

_ELEMENT = re.compile(r"\] (\d+)\s+(\S+)\s+([01]*) = (-?\d+)$")


def trace_frame_headers(path) -> list[dict]:
    """Every frame header trace_headers prints: {name: value} and "_end", the bit
    after its last field (counted from the start of the OBU, as it prints them)."""
    result = subprocess.run(
        [ffmpeg_path(), "-v", "trace", "-nostdin", "-i", str(path), "-c", "copy",
         "-bsf:v", "trace_headers", "-f", "null", "-"], capture_output=True, text=True, check=True)
    headers, current = [], None
    for line in result.stderr.splitlines():
        if "trace_headers" not in line:
            continue
        match = _ELEMENT.search(line)
        if match is None:
            current = {} if line.rstrip().endswith("] Frame Header") else None
            if current is not None:
                headers.append(current)
            continue
        if current is None:
            continue
        pos, name, bits, value = match.groups()
        if name in ("zero_bit", "trailing_one_bit", "trailing_zero_bit"):
            current = None
            continue
        current.setdefault(name, int(value))
        current["_end"] = int(pos) + len(bits)
    return headers


def our_fields(unit: av1.FrameUnit) -> dict:
    h = unit.header
    fields = {"show_existing_frame": int(h.show_existing_frame)}
    if h.show_existing_frame:
        fields["frame_to_show_map_idx"] = h.frame_to_show_map_idx
        return fields
    lf, q, info = h.loop_filter, h.quantization, h.tile_info
    fields.update({
        "frame_type": h.frame_type, "show_frame": int(h.show_frame),
        "showable_frame": int(h.showable_frame),
        "error_resilient_mode": int(h.error_resilient_mode),
        "disable_cdf_update": int(h.disable_cdf_update), "order_hint": h.order_hint,
        "primary_ref_frame": h.primary_ref_frame, "refresh_frame_flags": h.refresh_frame_flags,
        "allow_high_precision_mv": int(h.allow_high_precision_mv),
        "is_motion_mode_switchable": int(h.is_motion_mode_switchable),
        "use_ref_frame_mvs": int(h.use_ref_frame_mvs),
        "disable_frame_end_update_cdf": int(h.disable_frame_end_update_cdf),
        "uniform_tile_spacing_flag": int(info.uniform), "tile_cols_log2": info.tile_cols_log2,
        "tile_rows_log2": info.tile_rows_log2, "base_q_idx": q.base_q_idx,
        "using_qmatrix": int(q.using_qmatrix), "segmentation_enabled": int(h.segmentation.enabled),
        "delta_q_present": int(h.delta_q_present), "loop_filter_sharpness": lf.sharpness,
        "loop_filter_delta_enabled": int(lf.delta_enabled), "cdef_bits": h.cdef.bits,
        "cdef_damping_minus_3": h.cdef.damping_minus_3, "tx_mode": h.tx_mode,
        "reference_select": int(h.reference_select), "skip_mode_present": int(h.skip_mode_present),
        "allow_warped_motion": int(h.allow_warped_motion), "reduced_tx_set": int(h.reduced_tx_set),
        "apply_grain": int(h.film_grain.apply_grain), "grain_seed": h.film_grain.grain_seed,
        "num_y_points": len(h.film_grain.point_y_value),
    })
    for i in range(4):
        fields[f"loop_filter_level[{i}]"] = lf.level[i]
    for i in range(av1.REFS_PER_FRAME):
        fields[f"ref_frame_idx[{i}]"] = h.ref_frame_idx[i]
    for i in range(1 << h.cdef.bits):
        fields[f"cdef_y_pri_strength[{i}]"] = h.cdef.y_pri_strength[i]
    return fields


@pytest.mark.parametrize("name", CLIPS)
def test_frame_headers_match_ffmpeg_trace_headers(clips, name):
    units = units_of(clips[name])
    traced = trace_frame_headers(clips[name])
    assert len(units) == len(traced) > 0
    compared = 0
    for number, (unit, trace) in enumerate(zip(units, traced)):
        ours = our_fields(unit)
        common = {k for k in ours if k in trace}
        assert {k: ours[k] for k in common} == {k: trace[k] for k in common}, f"frame {number}"
        compared += len(common)
        # where the header ends: the tile data offsets depend on it
        obu = av1_obu.split_obus(unit.data)[0]
        assert 8 * (obu.payload_start - obu.start) + unit.header.header_bits == trace["_end"], \
            f"frame {number}: header length"
    assert compared > 20 * len(units) // 2


def test_tiles_cover_each_frame_obu_exactly(clips):
    for unit in units_of(clips["tiles-grain-352x288.ivf"]):
        if unit.header.show_existing_frame:
            assert unit.tiles == []
            continue
        assert len(unit.tiles) == unit.header.num_tiles == 4
        assert [(t.row, t.col) for t in unit.tiles] == [(0, 0), (0, 1), (1, 0), (1, 1)]
        size_bytes = unit.header.tile_info.tile_size_bytes
        *sized, last = unit.tiles
        for tile, following in zip(sized, unit.tiles[1:]):
            # every tile but the last comes after its tile_size_minus_1 field
            coded = int.from_bytes(unit.data[tile.offset - size_bytes:tile.offset], "little")
            assert coded + 1 == tile.size
            gap = size_bytes if following is not last else 0
            assert following.offset == tile.offset + tile.size + gap
        assert last.offset + last.size == len(unit.data)


# --------------------------------------------------------------------------- controls

def test_frame_control_carries_the_header_and_references(clips):
    units = units_of(clips["tiles-grain-352x288.ivf"])
    unit = next(u for u in units
                if not u.header.frame_is_intra and not u.header.show_existing_frame)
    h = unit.header
    refs = [1000 * (i + 1) for i in range(8)]
    ctrl = av1_controls.frame_from_control(av1_controls.frame_control(h, refs))
    assert list(ctrl.reference_frame_ts) == refs
    assert list(ctrl.ref_frame_idx) == h.ref_frame_idx
    assert ctrl.refresh_frame_flags == h.refresh_frame_flags
    assert ctrl.order_hint == h.order_hint and ctrl.frame_type == av1.INTER_FRAME
    assert ctrl.frame_width_minus_1 == 351 and ctrl.frame_height_minus_1 == 287
    assert ctrl.tile_info.tile_cols == ctrl.tile_info.tile_rows == 2
    assert list(ctrl.tile_info.mi_col_starts[0:3]) == h.tile_info.mi_col_starts
    assert ctrl.quantization.base_q_idx == h.quantization.base_q_idx
    assert list(ctrl.loop_filter.level) == h.loop_filter.level
    show = bool(ctrl.flags & av1_controls.V4L2_AV1_FRAME_FLAG_SHOW_FRAME)
    assert show == h.show_frame
    grain = ffi.cast("struct v4l2_ctrl_av1_film_grain *",
                     ffi.from_buffer(av1_controls.film_grain_control(h)))
    assert grain.grain_seed == h.film_grain.grain_seed
    assert grain.num_y_points == len(h.film_grain.point_y_value)


def test_tile_group_entries_are_one_struct_per_tile(clips):
    unit = units_of(clips["tiles-grain-352x288.ivf"])[0]
    data = av1_controls.tile_group_entries(unit.tiles)
    size = ffi.sizeof("struct v4l2_ctrl_av1_tile_group_entry")
    assert len(data) == 4 * size
    entries = ffi.cast("struct v4l2_ctrl_av1_tile_group_entry *", ffi.from_buffer(data))
    assert [(entries[i].tile_offset, entries[i].tile_size) for i in range(4)] == \
        [(t.offset, t.size) for t in unit.tiles]


def test_show_existing_frames_have_no_frame_control(clips):
    unit = next(u for u in units_of(clips["random-access-352x288.ivf"])
                if u.header.show_existing_frame)
    with pytest.raises(ValueError):
        av1_controls.frame_control(unit.header, [0] * 8)


def test_client_requests_carry_the_four_controls(clips):
    client = Av1Client()
    stamps = iter(range(1000, 10**6, 1000))
    jobs = [job for packet in container.packets(clips["tiles-grain-352x288.ivf"])
            for job in client.jobs(packet, lambda: next(stamps))]
    decoded = [j for j in jobs if j.show_timestamp is None]
    assert set(decoded[0].controls) == {
        uapi.V4L2_CID_STATELESS_AV1_SEQUENCE, uapi.V4L2_CID_STATELESS_AV1_FRAME,
        uapi.V4L2_CID_STATELESS_AV1_TILE_GROUP_ENTRY, uapi.V4L2_CID_STATELESS_AV1_FILM_GRAIN}
    assert any(not j.shown for j in decoded), "hidden frames are requests too"
    shown_again = [j.show_timestamp for j in jobs if j.show_timestamp is not None]
    assert shown_again and set(shown_again) <= {j.timestamp for j in decoded if not j.shown}


# --------------------------------------------------------------------------- sequence round trip

def test_sequence_header_round_trip_through_the_control(clips):
    """parsed -> control -> rebuilt OBU -> parsed again: the same fields."""
    for name in CLIPS:
        original = units_of(clips[name])[0].sequence
        control = av1_controls.sequence_control(original)
        rebuilt = av1_controls.sequence_from_control(control)
        obu_bytes = av1_controls.write_sequence_header_obu(rebuilt)
        (obu,) = av1_obu.split_obus(obu_bytes)
        assert obu.type == av1_obu.OBU_SEQUENCE_HEADER
        reparsed = av1.parse_sequence_header(obu_bytes[obu.payload_start:obu.end])
        assert reparsed == rebuilt
        assert av1_controls.sequence_control(reparsed) == control
        assert av1_controls.rebuild_limits(original) == []
        # everything that shapes decoding is the original's
        for field in dataclasses.fields(original):
            if field.name not in ("operating_points", "chroma_sample_position"):
                assert getattr(reparsed, field.name) == getattr(original, field.name), field.name


@given(st.data())
@settings(max_examples=150, deadline=None)
def test_any_sequence_the_control_can_carry_survives_the_rebuild(data):
    profile = data.draw(st.integers(0, 2))
    bit_depth = data.draw(st.sampled_from([8, 10, 12] if profile == 2 else [8, 10]))
    mono = profile != 1 and data.draw(st.booleans())
    seq = av1.SequenceHeader(
        seq_profile=profile, bit_depth=bit_depth, mono_chrome=mono,
        max_frame_width_minus_1=data.draw(st.integers(0, 65535)),
        max_frame_height_minus_1=data.draw(st.integers(0, 65535)),
        enable_order_hint=data.draw(st.booleans()), color_range=data.draw(st.booleans()),
        film_grain_params_present=data.draw(st.booleans()),
        use_128x128_superblock=data.draw(st.booleans()), enable_cdef=data.draw(st.booleans()),
        enable_superres=data.draw(st.booleans()), enable_restoration=data.draw(st.booleans()),
        separate_uv_delta_q=not mono and data.draw(st.booleans()))
    # the chroma subsampling each profile allows (spec 6.4.1, color_config semantics)
    if mono or profile == 0:
        seq.subsampling_x, seq.subsampling_y = 1, 1
    elif profile == 1:
        seq.subsampling_x, seq.subsampling_y = 0, 0
    elif bit_depth == 12:
        seq.subsampling_x, seq.subsampling_y = data.draw(st.sampled_from([(0, 0), (1, 0), (1, 1)]))
    else:
        seq.subsampling_x, seq.subsampling_y = 1, 0
    if seq.enable_order_hint:
        seq.order_hint_bits = data.draw(st.integers(1, 8))
        seq.enable_ref_frame_mvs = data.draw(st.booleans())
    control = av1_controls.sequence_control(seq)
    rebuilt = av1_controls.sequence_from_control(control)
    obu_bytes = av1_controls.write_sequence_header_obu(rebuilt)
    (obu,) = av1_obu.split_obus(obu_bytes)
    reparsed = av1.parse_sequence_header(obu_bytes[obu.payload_start:obu.end])
    assert reparsed == rebuilt
    assert av1_controls.sequence_control(reparsed) == control


def test_streams_the_rebuilt_sequence_header_would_misread_are_refused(clips):
    seq = units_of(clips["random-access-352x288.ivf"])[0].sequence
    for change in ({"frame_id_numbers_present_flag": True}, {"seq_force_integer_mv": 0},
                   {"frame_width_bits_minus_1": 15},
                   {"operating_points": [OperatingPoint(idc=0x101)]}):
        odd = dataclasses.replace(seq, **change)
        limits = av1_controls.rebuild_limits(odd)
        assert limits and next(iter(change)) in limits[0].replace("operating_point_idc",
                                                                  "operating_points")
    client = Av1Client()
    with pytest.raises(UnsupportedError, match="frame_id_numbers_present_flag"):
        client._check_sequence(dataclasses.replace(seq, frame_id_numbers_present_flag=True))


def test_show_existing_frame_obu_reads_back():
    parser = av1.Av1Parser()
    seq_obu = av1_controls.write_sequence_header_obu(
        av1_controls.sequence_from_control(av1_controls.sequence_control(
            av1.SequenceHeader(max_frame_width_minus_1=63, max_frame_height_minus_1=63))))
    parser.temporal_unit(seq_obu)  # a sequence header alone: no frames
    with pytest.raises(BitstreamError, match="empty reference slot 5"):
        parser.temporal_unit(av1_controls.show_existing_frame_obu(5))
    assert av1_controls.show_existing_frame_obu(5) == bytes([0x1A, 0x01, 0b1101_1000])


# --------------------------------------------------------------------------- OBU framing

@pytest.mark.parametrize("value", [0, 1, 127, 128, 16383, 16384, 2**32 - 1])
def test_leb128_round_trip(value):
    coded = av1_obu.write_leb128(value)
    assert av1_obu.read_leb128(coded + b"\xff", 0) == (value, len(coded))


def test_obu_framing_errors_are_bitstream_errors():
    for bad in (b"\x80", b"\x12\x05\x00", b"\x12", b"\x12\xff\xff\xff\xff\xff\xff\xff\xff\xff",
                b"\x16"):
        with pytest.raises(BitstreamError):
            av1_obu.split_obus(bad)
    assert [o.type for o in av1_obu.split_obus(b"\x12\x00\x78\x00")] == [2, 15]


def test_a_frame_before_any_sequence_header_is_refused(clips):
    packets = list(container.packets(clips["random-access-352x288.ivf"]))
    with pytest.raises(BitstreamError, match="before any sequence header"):
        av1.Av1Parser().temporal_unit(packets[1])


def test_state_is_kept_when_a_temporal_unit_is_bad(clips):
    packets = list(container.packets(clips["random-access-352x288.ivf"]))
    parser = av1.Av1Parser()
    parser.temporal_unit(packets[0])
    with pytest.raises(BitstreamError):
        parser.temporal_unit(packets[1][:len(packets[1]) // 3])
    assert parser.temporal_unit(packets[1])  # the truncated one changed nothing


# --------------------------------------------------------------------------- fuzz

@pytest.fixture(scope="module")
def real_units(clips):
    return list(container.packets(clips["tiles-grain-352x288.ivf"]))


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_random_bytes_raise_only_bitstream_errors(data):
    parser = av1.Av1Parser()
    for chunk in (data, b"\x12\x00\x0a\x0b" + data):
        try:
            parser.temporal_unit(chunk)
        except BitstreamError:
            pass
    try:
        av1.parse_sequence_header(data)
    except BitstreamError:
        pass


@given(st.data())
@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_corrupted_real_streams_raise_only_bitstream_errors(real_units, data):
    """Mutations of real temporal units reach deep into the frame header syntax."""
    parser = av1.Av1Parser()
    parser.temporal_unit(real_units[0])
    victim = bytearray(real_units[data.draw(st.integers(0, len(real_units) - 1))])
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, min(len(victim) - 1, 60)))
        victim[at] = data.draw(st.integers(0, 255))
    victim = victim[:data.draw(st.integers(0, len(victim)))]
    try:
        parser.temporal_unit(bytes(victim))
    except BitstreamError:
        pass


def test_the_daemon_infers_screen_content_forcing_from_the_key_frame(tmp_path):
    """rav1e's sequence header forces screen content tools off; the control cannot
    say so, and a header rebuilt with "chosen per frame" misreads every frame."""
    path = tmp_path / "rav1e.ivf"
    subprocess.run([ffmpeg_path(), "-v", "error", "-nostdin", "-f", "lavfi", "-i",
                    "testsrc2=size=64x64:rate=30", "-frames:v", "2", "-c:v", "librav1e",
                    "-speed", "10", str(path)], check=True)
    key = units_of(path)[0]
    assert key.sequence.seq_force_screen_content_tools == 0
    control = av1_controls.sequence_control(key.sequence)
    frame = av1_controls.frame_control(key.header, [0] * 8)
    tiles = av1_controls.tile_group_entries(key.tiles)
    rebuilt = av1_controls.sequence_from_control(control)
    assert rebuilt.seq_force_screen_content_tools == av1_syntax.SELECT_SCREEN_CONTENT_TOOLS
    inferred = av1_controls.infer_sequence(rebuilt, key.data, frame, tiles)
    assert inferred.seq_force_screen_content_tools == 0
    assert av1_controls.infer_sequence(rebuilt, key.data, frame) == inferred  # without tiles too
    # an SVT-AV1 style header (chosen per frame) is kept as it is
    select = dataclasses.replace(key.sequence, seq_force_screen_content_tools=2)
    assert av1_controls.infer_sequence(select, b"\x12\x00", frame) == select  # nothing to read


def test_the_key_frame_is_read_until_a_choice_fits(clips, monkeypatch):
    """The daemon reads a sequence's first key frame under each screen-content choice,
    most common first, and stops at the first that fits (each reading of a 1080p key
    frame costs 0.2 ms, before the first picture): SVT-AV1's, chosen per frame, at once."""
    key = units_of(clips["tiles-grain-352x288.ivf"])[0]
    frame = av1_controls.frame_control(key.header, [0] * 8)
    tiles = av1_controls.tile_group_entries(key.tiles)
    rebuilt = av1_controls.sequence_from_control(av1_controls.sequence_control(key.sequence))
    readings = []
    read_alone = av1_controls._read_alone
    monkeypatch.setattr(av1_controls, "_read_alone",
                        lambda seq, data: readings.append(seq) or read_alone(seq, data))
    inferred = av1_controls.infer_sequence(rebuilt, key.data, frame, tiles)
    assert inferred.seq_force_screen_content_tools == key.sequence.seq_force_screen_content_tools
    assert len(readings) == 1
