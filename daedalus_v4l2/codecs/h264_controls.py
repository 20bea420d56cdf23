"""H.264 parameter sets <-> V4L2 stateless control structs.

The client fills ``struct v4l2_ctrl_h264_sps``, ``_pps`` and
``_scaling_matrix`` from parsed parameter sets (:func:`sps_control`,
:func:`pps_control`, :func:`scaling_matrix_control`); the daemon reads them
back into the same dataclasses (:func:`sps_from_control`,
:func:`pps_from_control`, :func:`scaling_matrix_from_control`) to rebuild NAL
units from them.  Per-picture and per-slice controls (decode params, slice
params, prediction weights) are filled in :mod:`.h264_dpb`'s terms by
:func:`decode_params_control`, :func:`slice_params_control` and
:func:`pred_weights_control`.

Field semantics follow the kernel's ext-ctrls-codec-stateless.rst.
"""
from __future__ import annotations

from dataclasses import dataclass

from daedalus_v4l2.codecs.h264 import (
    SLICE_B, SLICE_SP, Pps, PredWeightTable, ScalingMatrix, SliceHeader, Sps)
from daedalus_v4l2.errors import BitstreamError
from daedalus_v4l2.v4l2 import uapi
from daedalus_v4l2.v4l2.uapi import ffi

SPS_FLAG_FIELDS = (
    ("separate_colour_plane_flag", uapi.V4L2_H264_SPS_FLAG_SEPARATE_COLOUR_PLANE),
    ("qpprime_y_zero_transform_bypass_flag", uapi.V4L2_H264_SPS_FLAG_QPPRIME_Y_ZERO_TRANSFORM_BYPASS),
    ("delta_pic_order_always_zero_flag", uapi.V4L2_H264_SPS_FLAG_DELTA_PIC_ORDER_ALWAYS_ZERO),
    ("gaps_in_frame_num_value_allowed_flag", uapi.V4L2_H264_SPS_FLAG_GAPS_IN_FRAME_NUM_VALUE_ALLOWED),
    ("frame_mbs_only_flag", uapi.V4L2_H264_SPS_FLAG_FRAME_MBS_ONLY),
    ("mb_adaptive_frame_field_flag", uapi.V4L2_H264_SPS_FLAG_MB_ADAPTIVE_FRAME_FIELD),
    ("direct_8x8_inference_flag", uapi.V4L2_H264_SPS_FLAG_DIRECT_8X8_INFERENCE),
)
SPS_INT_FIELDS = (
    "profile_idc", "constraint_set_flags", "level_idc", "seq_parameter_set_id", "chroma_format_idc",
    "bit_depth_luma_minus8", "bit_depth_chroma_minus8", "log2_max_frame_num_minus4",
    "pic_order_cnt_type", "log2_max_pic_order_cnt_lsb_minus4", "max_num_ref_frames",
    "offset_for_non_ref_pic", "offset_for_top_to_bottom_field", "pic_width_in_mbs_minus1",
    "pic_height_in_map_units_minus1",
)
PPS_FLAG_FIELDS = (
    ("entropy_coding_mode_flag", uapi.V4L2_H264_PPS_FLAG_ENTROPY_CODING_MODE),
    ("bottom_field_pic_order_in_frame_present_flag",
     uapi.V4L2_H264_PPS_FLAG_BOTTOM_FIELD_PIC_ORDER_IN_FRAME_PRESENT),
    ("weighted_pred_flag", uapi.V4L2_H264_PPS_FLAG_WEIGHTED_PRED),
    ("deblocking_filter_control_present_flag",
     uapi.V4L2_H264_PPS_FLAG_DEBLOCKING_FILTER_CONTROL_PRESENT),
    ("constrained_intra_pred_flag", uapi.V4L2_H264_PPS_FLAG_CONSTRAINED_INTRA_PRED),
    ("redundant_pic_cnt_present_flag", uapi.V4L2_H264_PPS_FLAG_REDUNDANT_PIC_CNT_PRESENT),
    ("transform_8x8_mode_flag", uapi.V4L2_H264_PPS_FLAG_TRANSFORM_8X8_MODE),
)
PPS_INT_FIELDS = (
    "pic_parameter_set_id", "seq_parameter_set_id", "num_slice_groups_minus1",
    "num_ref_idx_l0_default_active_minus1", "num_ref_idx_l1_default_active_minus1",
    "weighted_bipred_idc", "pic_init_qp_minus26", "pic_init_qs_minus26", "chroma_qp_index_offset",
    "second_chroma_qp_index_offset",
)

# slice_type % 5 is V4L2's numbering too (V4L2_H264_SLICE_TYPE_P = 0 ... SI = 4).


def _as_bytes(ctrl) -> bytes:
    return bytes(ffi.buffer(ctrl))




# ====================================================================
# SPS, PPS, scaling matrix
# ====================================================================

def sps_control(sps: Sps) -> bytes:
    ctrl = ffi.new("struct v4l2_ctrl_h264_sps *")
    for name in SPS_INT_FIELDS:
        setattr(ctrl, name, getattr(sps, name))
    ctrl.num_ref_frames_in_pic_order_cnt_cycle = len(sps.offset_for_ref_frame)
    for i, offset in enumerate(sps.offset_for_ref_frame):
        ctrl.offset_for_ref_frame[i] = offset
    ctrl.flags = sum(bit for name, bit in SPS_FLAG_FIELDS if getattr(sps, name))
    return _as_bytes(ctrl)


def sps_from_control(data: bytes) -> Sps:
    ctrl = uapi.struct_from_bytes("struct v4l2_ctrl_h264_sps", data)
    sps = Sps(**{name: getattr(ctrl, name) for name in SPS_INT_FIELDS})
    for name, bit in SPS_FLAG_FIELDS:
        setattr(sps, name, bool(ctrl.flags & bit))
    count = ctrl.num_ref_frames_in_pic_order_cnt_cycle
    sps.offset_for_ref_frame = tuple(ctrl.offset_for_ref_frame[i] for i in range(count))
    return sps


def pps_control(pps: Pps, sps: Sps) -> bytes:
    ctrl = ffi.new("struct v4l2_ctrl_h264_pps *")
    for name in PPS_INT_FIELDS:
        setattr(ctrl, name, getattr(pps, name))
    flags = sum(bit for name, bit in PPS_FLAG_FIELDS if getattr(pps, name))
    if scaling_matrix_in_use(pps, sps):
        flags |= uapi.V4L2_H264_PPS_FLAG_SCALING_MATRIX_PRESENT
    ctrl.flags = flags
    return _as_bytes(ctrl)


def pps_from_control(data: bytes) -> Pps:
    ctrl = uapi.struct_from_bytes("struct v4l2_ctrl_h264_pps", data)
    pps = Pps(**{name: getattr(ctrl, name) for name in PPS_INT_FIELDS})
    for name, bit in PPS_FLAG_FIELDS:
        setattr(pps, name, bool(ctrl.flags & bit))
    pps.pic_scaling_matrix_present_flag = bool(ctrl.flags &
                                               uapi.V4L2_H264_PPS_FLAG_SCALING_MATRIX_PRESENT)
    return pps


def scaling_matrix_in_use(pps: Pps, sps: Sps) -> bool:
    """V4L2_H264_PPS_FLAG_SCALING_MATRIX_PRESENT: the SPS or the PPS has lists."""
    return sps.seq_scaling_matrix_present_flag or pps.pic_scaling_matrix_present_flag


def scaling_matrix_control(matrix: ScalingMatrix) -> bytes:
    ctrl = ffi.new("struct v4l2_ctrl_h264_scaling_matrix *")
    for i, values in enumerate(matrix.lists_4x4):
        ctrl.scaling_list_4x4[i] = list(values)
    for i, values in enumerate(matrix.lists_8x8):
        ctrl.scaling_list_8x8[i] = list(values)
    return _as_bytes(ctrl)


def scaling_matrix_from_control(data: bytes) -> ScalingMatrix:
    ctrl = uapi.struct_from_bytes("struct v4l2_ctrl_h264_scaling_matrix", data)
    lists_4x4 = tuple(tuple(ctrl.scaling_list_4x4[i]) for i in range(6))
    lists_8x8 = tuple(tuple(ctrl.scaling_list_8x8[i]) for i in range(6))
    for values in lists_4x4 + lists_8x8:
        if 0 in values:
            raise BitstreamError("scaling matrix with a zero entry")
    return ScalingMatrix(lists_4x4, lists_8x8)


# ====================================================================
# Per picture and per slice
# ====================================================================

@dataclass(frozen=True)
class DpbEntry:
    """One reference picture as the current picture sees it."""
    timestamp: int
    pic_num: int            # PicNum (FrameNumWrap) or LongTermPicNum
    frame_num: int          # frame_num, or LongTermFrameIdx for long-term references
    top_field_order_cnt: int
    bottom_field_order_cnt: int
    long_term: bool


def decode_params_control(sh: SliceHeader, top_poc: int, bottom_poc: int,
                          dpb: list[DpbEntry]) -> bytes:
    if len(dpb) > uapi.V4L2_H264_NUM_DPB_ENTRIES:
        raise BitstreamError(f"{len(dpb)} reference pictures, the DPB holds 16")
    ctrl = ffi.new("struct v4l2_ctrl_h264_decode_params *")
    for slot, entry in zip(ctrl.dpb, dpb):
        slot.reference_ts = entry.timestamp
        slot.pic_num = entry.pic_num & 0xFFFFFFFF
        slot.frame_num = entry.frame_num
        slot.fields = uapi.V4L2_H264_FRAME_REF
        slot.top_field_order_cnt = entry.top_field_order_cnt
        slot.bottom_field_order_cnt = entry.bottom_field_order_cnt
        slot.flags = (uapi.V4L2_H264_DPB_ENTRY_FLAG_VALID | uapi.V4L2_H264_DPB_ENTRY_FLAG_ACTIVE
                      | (uapi.V4L2_H264_DPB_ENTRY_FLAG_LONG_TERM if entry.long_term else 0))
    ctrl.nal_ref_idc = sh.nal_ref_idc
    ctrl.frame_num = sh.frame_num
    ctrl.top_field_order_cnt, ctrl.bottom_field_order_cnt = top_poc, bottom_poc
    ctrl.idr_pic_id = sh.idr_pic_id
    ctrl.pic_order_cnt_lsb = sh.pic_order_cnt_lsb
    ctrl.delta_pic_order_cnt_bottom = sh.delta_pic_order_cnt_bottom
    ctrl.delta_pic_order_cnt0, ctrl.delta_pic_order_cnt1 = sh.delta_pic_order_cnt
    ctrl.dec_ref_pic_marking_bit_size = sh.dec_ref_pic_marking_bit_size
    ctrl.pic_order_cnt_bit_size = sh.pic_order_cnt_bit_size
    ctrl.slice_group_change_cycle = sh.slice_group_change_cycle
    flags = uapi.V4L2_H264_DECODE_PARAM_FLAG_IDR_PIC if sh.idr else 0
    if sh.field_pic_flag:
        flags |= uapi.V4L2_H264_DECODE_PARAM_FLAG_FIELD_PIC
    if sh.bottom_field_flag:
        flags |= uapi.V4L2_H264_DECODE_PARAM_FLAG_BOTTOM_FIELD
    if sh.slice_type in (0, SLICE_SP):
        flags |= uapi.V4L2_H264_DECODE_PARAM_FLAG_PFRAME
    elif sh.slice_type == SLICE_B:
        flags |= uapi.V4L2_H264_DECODE_PARAM_FLAG_BFRAME
    ctrl.flags = flags
    return _as_bytes(ctrl)


def slice_params_control(sh: SliceHeader, ref_lists: tuple[list[int], list[int]]) -> bytes:
    """``ref_lists`` are the final RefPicList0/1 as indices into the DPB array."""
    ctrl = ffi.new("struct v4l2_ctrl_h264_slice_params *")
    ctrl.header_bit_size = sh.header_bit_size
    ctrl.first_mb_in_slice = sh.first_mb_in_slice
    ctrl.slice_type = sh.slice_type
    ctrl.colour_plane_id = sh.colour_plane_id
    ctrl.redundant_pic_cnt = sh.redundant_pic_cnt
    ctrl.cabac_init_idc = sh.cabac_init_idc
    ctrl.slice_qp_delta = sh.slice_qp_delta
    ctrl.slice_qs_delta = sh.slice_qs_delta
    ctrl.disable_deblocking_filter_idc = sh.disable_deblocking_filter_idc
    ctrl.slice_alpha_c0_offset_div2 = sh.slice_alpha_c0_offset_div2
    ctrl.slice_beta_offset_div2 = sh.slice_beta_offset_div2
    ctrl.num_ref_idx_l0_active_minus1 = sh.num_ref_idx_l0_active_minus1
    ctrl.num_ref_idx_l1_active_minus1 = sh.num_ref_idx_l1_active_minus1
    for target, indices in zip((ctrl.ref_pic_list0, ctrl.ref_pic_list1), ref_lists):
        for slot, index in zip(target, indices):
            slot.fields, slot.index = uapi.V4L2_H264_FRAME_REF, index
    flags = uapi.V4L2_H264_SLICE_FLAG_DIRECT_SPATIAL_MV_PRED if sh.direct_spatial_mv_pred_flag else 0
    if sh.sp_for_switch_flag:
        flags |= uapi.V4L2_H264_SLICE_FLAG_SP_FOR_SWITCH
    ctrl.flags = flags
    return _as_bytes(ctrl)


def pred_weights_control(table: PredWeightTable) -> bytes:
    ctrl = ffi.new("struct v4l2_ctrl_h264_pred_weights *")
    ctrl.luma_log2_weight_denom = table.luma_log2_weight_denom
    ctrl.chroma_log2_weight_denom = table.chroma_log2_weight_denom
    for factors, luma, chroma in zip(ctrl.weight_factors, table.luma, table.chroma):
        for i, (weight, offset) in enumerate(luma):
            factors.luma_weight[i], factors.luma_offset[i] = weight, offset
        for i, pair in enumerate(chroma):
            for j, (weight, offset) in enumerate(pair):
                factors.chroma_weight[i][j], factors.chroma_offset[i][j] = weight, offset
    return _as_bytes(ctrl)
