"""Rebuilding H.264 NAL units from V4L2 control structs, for the daemon.

A stateless client sends slices only: SPS and PPS arrive as control structs
(``v4l2_ctrl_h264_sps``/``_pps``/``_scaling_matrix``).  libavcodec wants NAL
units, so the daemon writes them back (7.3.2.1.1, 7.3.2.2), equivalent for
decoding to what the encoder wrote:

* the scaling lists go into the PPS, every list transmitted explicitly (the
  control holds the lists in force after all fall-back rules, so nothing is
  lost by not using the SPS's or the defaults);
* frame cropping, which the SPS control does not carry, comes from the size
  of the OUTPUT format (the visible size the client asked for);
* the VUI says only ``bitstream_restriction_flag = 1`` with
  ``max_num_reorder_frames = 16``: libavcodec then never hands a picture out
  by itself (it would wait for 16 more), so its display-order logic never
  runs and never drops a picture as "out of order".  The daemon takes each
  picture out right after decoding it with :func:`end_of_sequence` (see
  ``session_h264`` for why that works): decode order, the order a stateless
  decoder owes its client.

Colour description and timing are display metadata; they do not change a
decoded sample, so they are left out.
"""
from __future__ import annotations

from daedalus_v4l2.codecs.bitwriter import BitWriter
from daedalus_v4l2.codecs.h264 import (
    HIGH_PROFILES, NAL_END_SEQUENCE, NAL_PPS, NAL_SPS, ZIGZAG_4X4, ZIGZAG_8X8, Pps, ScalingMatrix, Sps,
    to_zigzag)
from daedalus_v4l2.errors import BitstreamError

# max_num_reorder_frames of the rebuilt SPS: the most H.264 allows, so
# libavcodec's own output never triggers (see the module docstring).
NEVER_OUTPUT_REORDER_DEPTH = 16


def escape(rbsp: bytes) -> bytes:
    """7.4.1: an emulation_prevention_three_byte after every two zero bytes
    that are followed by a byte 0..3 (or end the payload)."""
    out, zeros = bytearray(), 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    if zeros >= 2:  # a NAL unit must not end in 0x00 0x00 (cabac_zero_words aside)
        out.append(3)
    return bytes(out)


def nal_unit(nal_ref_idc: int, nal_unit_type: int, rbsp: bytes) -> bytes:
    return bytes([(nal_ref_idc << 5) | nal_unit_type]) + escape(rbsp)


# ====================================================================
# SPS
# ====================================================================

def crop_for(sps: Sps, width: int, height: int) -> tuple[int, int, int, int]:
    """Right and bottom crop (in crop units) that leave ``width`` x ``height``
    of the coded picture; none when that size is not smaller or not reachable."""
    unit_x, unit_y = sps.crop_units
    coded_w, coded_h = 16 * sps.width_mbs, 16 * sps.height_mbs
    right = (coded_w - width) // unit_x if 0 < width < coded_w else 0
    bottom = (coded_h - height) // unit_y if 0 < height < coded_h else 0
    return 0, right, 0, bottom


def rebuild_sps(sps: Sps, visible: tuple[int, int] | None = None,
                reorder_depth: int = NEVER_OUTPUT_REORDER_DEPTH) -> bytes:
    """The SPS NAL unit (header byte included) for ``sps``, cropped to ``visible``,
    with ``reorder_depth`` as the VUI's max_num_reorder_frames."""
    w = BitWriter()
    w.u(8, sps.profile_idc)
    w.u(8, sum(1 << (7 - i) for i in range(6) if sps.constraint_set_flags >> i & 1))
    w.u(8, sps.level_idc)
    w.ue(sps.seq_parameter_set_id)
    if sps.profile_idc in HIGH_PROFILES:
        w.ue(sps.chroma_format_idc)
        if sps.chroma_format_idc == 3:
            w.flag(sps.separate_colour_plane_flag)
        w.ue(sps.bit_depth_luma_minus8)
        w.ue(sps.bit_depth_chroma_minus8)
        w.flag(sps.qpprime_y_zero_transform_bypass_flag)
        w.flag(False)  # seq_scaling_matrix_present_flag: the lists travel in the PPS
    elif (sps.chroma_format_idc, sps.bit_depth_luma_minus8, sps.bit_depth_chroma_minus8) != (1, 0, 0):
        raise BitstreamError(f"profile_idc {sps.profile_idc} cannot code chroma format "
                             f"{sps.chroma_format_idc} or more than 8 bits")
    w.ue(sps.log2_max_frame_num_minus4)
    w.ue(sps.pic_order_cnt_type)
    if sps.pic_order_cnt_type == 0:
        w.ue(sps.log2_max_pic_order_cnt_lsb_minus4)
    elif sps.pic_order_cnt_type == 1:
        w.flag(sps.delta_pic_order_always_zero_flag)
        w.se(sps.offset_for_non_ref_pic)
        w.se(sps.offset_for_top_to_bottom_field)
        w.ue(len(sps.offset_for_ref_frame))
        for offset in sps.offset_for_ref_frame:
            w.se(offset)
    w.ue(sps.max_num_ref_frames)
    w.flag(sps.gaps_in_frame_num_value_allowed_flag)
    w.ue(sps.pic_width_in_mbs_minus1)
    w.ue(sps.pic_height_in_map_units_minus1)
    w.flag(sps.frame_mbs_only_flag)
    if not sps.frame_mbs_only_flag:
        w.flag(sps.mb_adaptive_frame_field_flag)
    w.flag(sps.direct_8x8_inference_flag)
    crop = crop_for(sps, *visible) if visible else (0, 0, 0, 0)
    w.flag(any(crop))
    if any(crop):
        for offset in crop:
            w.ue(offset)
    w.flag(True)  # vui_parameters_present_flag
    _write_bitstream_restriction_vui(w, reorder_depth)
    w.trailing_bits()
    return nal_unit(3, NAL_SPS, w.to_bytes())


def _write_bitstream_restriction_vui(w: BitWriter, reorder_depth: int) -> None:
    """E.1.1 with nothing but bitstream_restriction (E.2.1 defaults, but the reorder depth)."""
    for _ in range(5):  # aspect ratio, overscan, video signal, chroma loc, timing
        w.flag(False)
    w.flag(False)  # nal_hrd_parameters_present_flag
    w.flag(False)  # vcl_hrd_parameters_present_flag
    w.flag(False)  # pic_struct_present_flag
    w.flag(True)   # bitstream_restriction_flag
    w.flag(True)   # motion_vectors_over_pic_boundaries_flag
    w.ue(2)        # max_bytes_per_pic_denom (E.2.1 default)
    w.ue(1)        # max_bits_per_mb_denom (default)
    w.ue(16)       # log2_max_mv_length_horizontal (default)
    w.ue(16)       # log2_max_mv_length_vertical (default)
    w.ue(reorder_depth)               # max_num_reorder_frames
    w.ue(NEVER_OUTPUT_REORDER_DEPTH)  # max_dec_frame_buffering: 16 is always enough


# ====================================================================
# PPS
# ====================================================================

def rebuild_pps(pps: Pps, sps: Sps, scaling: ScalingMatrix | None = None) -> bytes:
    """The PPS NAL unit for ``pps``; ``scaling`` (the lists in force) when the
    control says V4L2_H264_PPS_FLAG_SCALING_MATRIX_PRESENT."""
    if pps.num_slice_groups_minus1:
        raise BitstreamError("slice groups (FMO) cannot be described by V4L2 controls")
    w = BitWriter()
    w.ue(pps.pic_parameter_set_id)
    w.ue(pps.seq_parameter_set_id)
    w.flag(pps.entropy_coding_mode_flag)
    w.flag(pps.bottom_field_pic_order_in_frame_present_flag)
    w.ue(0)  # num_slice_groups_minus1
    w.ue(pps.num_ref_idx_l0_default_active_minus1)
    w.ue(pps.num_ref_idx_l1_default_active_minus1)
    w.flag(pps.weighted_pred_flag)
    w.u(2, pps.weighted_bipred_idc)
    w.se(pps.pic_init_qp_minus26)
    w.se(pps.pic_init_qs_minus26)
    w.se(pps.chroma_qp_index_offset)
    w.flag(pps.deblocking_filter_control_present_flag)
    w.flag(pps.constrained_intra_pred_flag)
    w.flag(pps.redundant_pic_cnt_present_flag)
    if (pps.transform_8x8_mode_flag or scaling is not None
            or pps.second_chroma_qp_index_offset != pps.chroma_qp_index_offset):
        w.flag(pps.transform_8x8_mode_flag)
        w.flag(scaling is not None)  # pic_scaling_matrix_present_flag
        if scaling is not None:
            _write_scaling_matrix(w, scaling, sps, pps.transform_8x8_mode_flag)
        w.se(pps.second_chroma_qp_index_offset)
    w.trailing_bits()
    return nal_unit(3, NAL_PPS, w.to_bytes())


def _write_scaling_matrix(w: BitWriter, matrix: ScalingMatrix, sps: Sps, transform_8x8: bool) -> None:
    count_8x8 = (2 if sps.chroma_format_idc != 3 else 6) if transform_8x8 else 0
    for values in matrix.lists_4x4:
        w.flag(True)
        _write_scaling_list(w, to_zigzag(values, ZIGZAG_4X4))
    for values in matrix.lists_8x8[:count_8x8]:
        w.flag(True)
        _write_scaling_list(w, to_zigzag(values, ZIGZAG_8X8))


def _write_scaling_list(w: BitWriter, values) -> None:
    """Every value coded explicitly as a delta_scale (7.3.2.1.1.1)."""
    last = 8
    for value in values:
        w.se((value - last + 128) % 256 - 128)
        last = value


# ====================================================================
# End of sequence
# ====================================================================

def end_of_sequence() -> bytes:
    """An end-of-sequence NAL unit (7.3.2.5): no payload."""
    return nal_unit(0, NAL_END_SEQUENCE, b"")
