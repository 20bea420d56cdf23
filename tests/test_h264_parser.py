"""H.264 syntax: NAL units, RBSP, SPS/PPS/slice headers, the rebuild round trip, POC and DPB.

Parsers are checked on libx264's output and fuzzed with hypothesis (only
BitstreamError may escape); the daemon's rebuilt parameter sets must parse
back to the fields the client put into the controls.
"""
from dataclasses import fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daedalus_v4l2 import container
from daedalus_v4l2.codecs import h264
from daedalus_v4l2.codecs.bitreader import BitReader
from daedalus_v4l2.codecs.h264 import (
    Mmco, RefPicListModification, SliceHeader, Sps, parse_pps, parse_slice_header, parse_sps,
    split_annexb)
from daedalus_v4l2.codecs.h264_controls import (
    pps_control, pps_from_control, scaling_matrix_control, scaling_matrix_from_control,
    sps_control, sps_from_control)
from daedalus_v4l2.codecs.h264_dpb import CurrentPicture, Dpb, PocState
from daedalus_v4l2.codecs.bitwriter import BitWriter
from daedalus_v4l2.codecs.h264_rebuild import escape, rebuild_pps, rebuild_sps
from daedalus_v4l2.errors import BitstreamError
from daedalus_v4l2.v4l2 import uapi

X264 = {
    "baseline": {"profile": "baseline"},
    "main-pyramid": {"profile": "main", "bf": "3", "b-pyramid": "normal"},
    "high-cqm": {"8x8dct": "1", "x264-params": "cqm=jvt", "chroma_qp_offset": "3"},
    "high-custom-cqm": {"8x8dct": "1", "x264-params": "cqm4=" + ",".join(["20"] * 16)},
    "weighted": {"weightp": "2", "weightb": "1", "refs": "4", "bf": "2"},
}


@pytest.fixture(scope="module")
def streams(clip):
    """name -> list of NAL units of a short x264 clip (Annex B)."""
    out = {}
    for name, opts in X264.items():
        path = clip(".h264", codec="h264", width=98, height=66, frames=8, options=opts,
                    container="h264")
        out[name] = [nal for packet in container.packets(path) for nal in split_annexb(packet)]
    return out


def parameter_sets(nals):
    sps = parse_sps(next(n for n in nals if n[0] & 0x1F == h264.NAL_SPS))
    pps = parse_pps(next(n for n in nals if n[0] & 0x1F == h264.NAL_PPS),
                    {sps.seq_parameter_set_id: sps})
    return sps, pps


# ---------------------------------------------------------------- NAL units and bits

def test_annexb_and_avcc_split_the_same_units():
    units = [b"\x67\x42\x01", b"\x68\xce", b"\x65\x88\x00\x00\x03\x01"]
    stream = b"\x00\x00\x00\x01" + units[0] + b"\x00\x00\x01" + units[1] + b"\x00\x00\x00\x00\x01" + units[2]
    assert split_annexb(stream) == units
    avcc = b"".join(len(u).to_bytes(4, "big") + u for u in units)
    assert h264.split_avcc(avcc) == units
    with pytest.raises(BitstreamError):
        h264.split_avcc(avcc[:-1])


def test_zigzag_scans_are_the_spec_tables():
    assert h264.ZIGZAG_4X4 == (0, 1, 4, 8, 5, 2, 3, 6, 9, 12, 13, 10, 7, 11, 14, 15)
    assert h264.ZIGZAG_8X8[:10] == (0, 1, 8, 16, 9, 2, 3, 10, 17, 24)
    assert sorted(h264.ZIGZAG_8X8) == list(range(64)) and h264.ZIGZAG_8X8[-1] == 63


@given(st.lists(st.tuples(st.sampled_from(["u", "ue", "se"]), st.integers(0, 2 ** 20)), max_size=40))
def test_bit_writer_and_reader_agree(items):
    writer = BitWriter()
    expected = []
    for kind, value in items:
        if kind == "u":
            writer.u(21, value)
        elif kind == "ue":
            writer.ue(value)
        else:
            value -= 2 ** 19
            writer.se(value)
        expected.append(value)
    writer.trailing_bits()
    reader = BitReader(writer.to_bytes())
    got = [reader.read_bits(21) if kind == "u" else reader.read_ue() if kind == "ue" else reader.read_se()
           for kind, _ in items]
    assert got == expected


@given(st.binary(max_size=200))
def test_escape_then_unescape_is_identity_and_leaves_no_start_code(data):
    escaped = escape(data)
    assert b"\x00\x00\x00" not in escaped and b"\x00\x00\x01" not in escaped
    assert b"\x00\x00\x02" not in escaped
    assert h264.unescape(escaped).data == (data if not data.endswith(b"\x00\x00") else data)


def _unescape_byte_by_byte(payload: bytes) -> tuple[bytes, list[int]]:
    """7.4.1 as the spec reads: after two zero bytes, a 0x03 is dropped."""
    out, escapes, zeros = bytearray(), [], 0
    for byte in payload:
        if zeros >= 2 and byte == 3:
            escapes.append(len(out))
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out), escapes


@given(st.lists(st.sampled_from([b"\x00", b"\x03", b"\x00\x00\x03", b"\x01", b"\xff"]),
                max_size=60).map(b"".join))
def test_unescape_drops_what_the_spec_drops_and_says_where(payload):
    """Runs of zeros and 0x03 of every kind (00 00 03 03, 00 00 00 03, 00 00 03 00 00 03):
    the same bytes and escape offsets as the spec's byte-by-byte reading."""
    rbsp = h264.unescape(payload)
    assert (rbsp.data, rbsp.escapes) == _unescape_byte_by_byte(payload)


# ---------------------------------------------------------------- parsing x264's output

def test_x264_parameter_sets_parse(streams):
    sps, pps = parameter_sets(streams["baseline"])
    assert (sps.profile_idc, sps.pic_order_cnt_type, pps.entropy_coding_mode_flag) == (66, 2, False)
    assert sps.visible_size == (98, 66) and sps.frame_cropping_flag
    sps, pps = parameter_sets(streams["main-pyramid"])
    assert sps.pic_order_cnt_type == 0 and sps.max_num_reorder_frames == 2
    sps, pps = parameter_sets(streams["high-cqm"])
    assert pps.transform_8x8_mode_flag and pps.chroma_qp_index_offset != 0  # x264 adds psy offsets
    assert pps.second_chroma_qp_index_offset == pps.chroma_qp_index_offset
    # cqm=jvt: lists absent from a PPS without SPS lists take the defaults (rule A)
    assert pps.scaling_matrix.lists_4x4[0] == h264.DEFAULT_4X4_INTRA
    assert pps.scaling_matrix.lists_8x8[1] == h264.DEFAULT_8X8_INTER
    _, pps = parameter_sets(streams["high-custom-cqm"])
    assert pps.scaling_matrix.lists_4x4[3] == (20,) * 16


def test_slice_headers_of_x264_parse(streams):
    nals = streams["weighted"]
    sps, pps = parameter_sets(nals)
    headers = [parse_slice_header(n, {0: sps}, {0: pps}) for n in nals
               if n[0] & 0x1F in h264.VCL_NAL_TYPES]
    assert headers[0].idr and headers[0].slice_type == h264.SLICE_I
    assert {h.slice_type for h in headers} >= {h264.SLICE_P, h264.SLICE_B}
    assert any(h.pred_weight_table is not None for h in headers)
    for h in headers:
        assert h.header_bit_size > 8 and (h.nal_ref_idc == 0) == (h.dec_ref_pic_marking_bit_size == 0)


# ---------------------------------------------------------------- the rebuild round trip

DECODING_SPS_FIELDS = [f.name for f in fields(Sps) if f.name not in (
    "seq_scaling_matrix_present_flag", "scaling_matrix", "vui_parameters_present_flag",
    "max_num_reorder_frames", "max_dec_frame_buffering")]


@pytest.mark.parametrize("name", X264)
def test_parameter_sets_survive_controls_and_rebuild(streams, name):
    """x264's SPS/PPS -> controls -> daemon's rebuilt NAL units -> parsed again:
    every field that matters for decoding is the same, scaling lists included."""
    sps, pps = parameter_sets(streams[name])
    sps_back = sps_from_control(sps_control(sps))
    pps_back = pps_from_control(pps_control(pps, sps))
    scaling = None
    if pps_back.pic_scaling_matrix_present_flag:
        scaling = scaling_matrix_from_control(scaling_matrix_control(pps.scaling_matrix))
    rebuilt_sps = parse_sps(rebuild_sps(sps_back, sps.visible_size))
    rebuilt_pps = parse_pps(rebuild_pps(pps_back, sps_back, scaling),
                            {rebuilt_sps.seq_parameter_set_id: rebuilt_sps})
    for field in DECODING_SPS_FIELDS:
        assert getattr(rebuilt_sps, field) == getattr(sps, field), field
    for field in (f.name for f in fields(type(pps))):
        if field not in ("pic_scaling_matrix_present_flag", "scaling_matrix"):
            assert getattr(rebuilt_pps, field) == getattr(pps, field), field
    assert rebuilt_pps.scaling_matrix == pps.scaling_matrix
    # what makes libavcodec hand pictures out only when asked (see session_h264)
    assert rebuilt_sps.max_num_reorder_frames == 16


def test_sps_control_flags_and_constraint_bits():
    sps = Sps(profile_idc=100, constraint_set_flags=0b000011, frame_mbs_only_flag=True,
              direct_8x8_inference_flag=True, offset_for_ref_frame=(3, -4))
    raw = sps_control(sps)
    ctrl = uapi.ffi.cast("struct v4l2_ctrl_h264_sps *", uapi.ffi.from_buffer(raw))
    assert ctrl.flags == (uapi.V4L2_H264_SPS_FLAG_FRAME_MBS_ONLY
                          | uapi.V4L2_H264_SPS_FLAG_DIRECT_8X8_INFERENCE)
    assert ctrl.constraint_set_flags == (uapi.V4L2_H264_SPS_CONSTRAINT_SET0_FLAG
                                         | uapi.V4L2_H264_SPS_CONSTRAINT_SET1_FLAG)
    assert ctrl.num_ref_frames_in_pic_order_cnt_cycle == 2 and ctrl.offset_for_ref_frame[1] == -4
    assert sps_from_control(raw).offset_for_ref_frame == (3, -4)


# ---------------------------------------------------------------- fuzzing

def _sps_and_pps():
    sps = Sps(profile_idc=100, pic_width_in_mbs_minus1=10, pic_height_in_map_units_minus1=8)
    return {0: sps}, {0: h264.Pps(entropy_coding_mode_flag=True)}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_parsers_raise_only_bitstream_errors(data):
    sps_by_id, pps_by_id = _sps_and_pps()
    for nal_type, parse in ((7, lambda n: parse_sps(n)), (8, lambda n: parse_pps(n, sps_by_id)),
                            (1, lambda n: parse_slice_header(n, sps_by_id, pps_by_id)),
                            (5, lambda n: parse_slice_header(n, sps_by_id, pps_by_id))):
        try:
            parse(bytes([0x60 | nal_type]) + data)
        except BitstreamError:
            pass


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64))
def test_container_level_parsers_raise_only_bitstream_errors(data):
    for call in (lambda: h264.parse_avcc_extradata(data), lambda: h264.split_avcc(data, 4),
                 lambda: split_annexb(data)):
        try:
            call()
        except BitstreamError:
            pass


# ---------------------------------------------------------------- POC

def test_poc_type_0_wraps_its_lsb():
    sps = Sps(pic_order_cnt_type=0, log2_max_pic_order_cnt_lsb_minus4=0)  # MaxPicOrderCntLsb 16
    state = PocState()
    pocs = [state.compute(SliceHeader(nal_unit_type=5 if i == 0 else 1, nal_ref_idc=1,
                                      pic_order_cnt_lsb=(2 * i) % 16), sps)[0] for i in range(12)]
    assert pocs == [2 * i for i in range(12)]


def test_poc_type_1_follows_the_expected_cycle():
    sps = Sps(pic_order_cnt_type=1, offset_for_ref_frame=(4, 2), offset_for_non_ref_pic=-3,
              offset_for_top_to_bottom_field=1)
    state = PocState()
    idr = SliceHeader(nal_unit_type=5, nal_ref_idc=1, frame_num=0)
    assert state.compute(idr, sps) == (0, 1)
    # frame_num 1, reference: absFrameNum 1 -> expected = offset[0] = 4
    assert state.compute(SliceHeader(nal_ref_idc=1, frame_num=1), sps) == (4, 5)
    # frame_num 2, non-reference: absFrameNum 2-1 = 1 -> 4 - 3
    assert state.compute(SliceHeader(nal_ref_idc=0, frame_num=2), sps) == (1, 2)
    # frame_num 3, reference: absFrameNum 3 -> one cycle (6) + offset[0] (4)
    assert state.compute(SliceHeader(nal_ref_idc=1, frame_num=3, delta_pic_order_cnt=(1, 0)),
                         sps) == (11, 12)


def test_poc_type_2_is_twice_the_frame_number_across_wraps():
    sps = Sps(pic_order_cnt_type=2, log2_max_frame_num_minus4=0)  # MaxFrameNum 16
    state = PocState()
    pocs = [state.compute(SliceHeader(nal_unit_type=5 if i == 0 else 1, nal_ref_idc=1,
                                      frame_num=i % 16), sps)[0] for i in range(20)]
    assert pocs == [2 * i for i in range(20)]


# ---------------------------------------------------------------- DPB

def _add(dpb, sps, timestamp, poc, **header):
    sh = SliceHeader(**header)
    return dpb.add(CurrentPicture(sh, timestamp, poc, poc), sps)


def test_sliding_window_keeps_the_newest_references():
    sps = Sps(max_num_ref_frames=2, max_num_reorder_frames=0)
    dpb = Dpb()
    assert _add(dpb, sps, 1000, 0, nal_unit_type=5, nal_ref_idc=1) == [1000]
    for n in range(1, 5):
        assert _add(dpb, sps, 1000 * (n + 1), 2 * n, nal_ref_idc=1, frame_num=n) == [1000 * (n + 1)]
    assert [f.timestamp for f in dpb.references()] == [4000, 5000]
    entries = dpb.entries_for(SliceHeader(frame_num=5), sps)
    assert [(e.timestamp, e.pic_num, e.frame_num) for e in entries] == [(4000, 3, 3), (5000, 4, 4)]


def test_mmco_marks_unused_and_long_term():
    sps = Sps(max_num_ref_frames=3, max_num_reorder_frames=0)
    dpb = Dpb()
    _add(dpb, sps, 1000, 0, nal_unit_type=5, nal_ref_idc=1)
    _add(dpb, sps, 2000, 2, nal_ref_idc=1, frame_num=1)
    # frame 2: drop picture 0 (CurrPicNum 2 - 2), make picture 1 long-term index 0
    _add(dpb, sps, 3000, 4, nal_ref_idc=1, frame_num=2, adaptive_ref_pic_marking_mode_flag=True,
         mmcos=[Mmco(1, difference_of_pic_nums_minus1=1), Mmco(3, difference_of_pic_nums_minus1=0,
                                                                long_term_frame_idx=0)])
    refs = {f.timestamp: (f.reference, f.long_term_frame_idx) for f in dpb.references()}
    assert refs == {2000: ("long", 0), 3000: ("short", 0)}
    entries = dpb.entries_for(SliceHeader(frame_num=3), sps)
    assert [(e.timestamp, e.long_term, e.pic_num) for e in entries] == [(2000, True, 0),
                                                                      (3000, False, 2)]


def test_display_order_follows_poc_and_idr_flushes():
    sps = Sps(max_num_ref_frames=2, max_num_reorder_frames=1)
    dpb = Dpb()
    shown = _add(dpb, sps, 1, 0, nal_unit_type=5, nal_ref_idc=1)
    shown += _add(dpb, sps, 2, 4, nal_ref_idc=1, frame_num=1)       # P, POC 4
    shown += _add(dpb, sps, 3, 2, nal_ref_idc=0, frame_num=2)       # B, POC 2
    shown += _add(dpb, sps, 4, 8, nal_ref_idc=1, frame_num=2)       # P, POC 8
    shown += _add(dpb, sps, 5, 6, nal_ref_idc=0, frame_num=3)       # B, POC 6
    shown += _add(dpb, sps, 6, 0, nal_unit_type=5, nal_ref_idc=1)   # IDR: the rest first
    shown += dpb.flush()
    assert shown == [1, 3, 2, 5, 4, 6]


def test_reference_lists_for_p_and_b_slices_with_a_modification():
    sps = Sps(max_num_ref_frames=4, max_num_reorder_frames=2)
    dpb = Dpb()
    _add(dpb, sps, 100, 0, nal_unit_type=5, nal_ref_idc=1)            # frame_num 0, POC 0
    _add(dpb, sps, 200, 8, nal_ref_idc=1, frame_num=1)                # POC 8
    _add(dpb, sps, 300, 4, nal_ref_idc=1, frame_num=2)                # POC 4
    # P slice, frame_num 3: descending PicNum -> [300, 200, 100]
    p = SliceHeader(slice_type=h264.SLICE_P, frame_num=3, num_ref_idx_l0_active_minus1=2)
    refs = [e.timestamp for e in dpb.entries_for(p, sps)]
    l0, _ = dpb.ref_pic_lists(p, sps, 12)
    assert [refs[i] for i in l0] == [300, 200, 100]
    # the same with frame_num 0 (PicNum 0 - 1 = -1 ... ) moved to the front
    p.ref_pic_list_modifications[0].append(RefPicListModification(0, 2))  # 3 - 3 = picture 0
    l0, _ = dpb.ref_pic_lists(p, sps, 12)
    assert [refs[i] for i in l0] == [100, 300, 200]
    # B slice at POC 6: list0 by descending POC below, list1 ascending above
    b = SliceHeader(slice_type=h264.SLICE_B, frame_num=3, num_ref_idx_l0_active_minus1=2,
                    num_ref_idx_l1_active_minus1=2)
    l0, l1 = dpb.ref_pic_lists(b, sps, 6)
    assert [refs[i] for i in l0] == [300, 100, 200] and [refs[i] for i in l1] == [200, 300, 100]
