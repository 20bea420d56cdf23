"""What the V4L2 control core checks in a compound control before it takes it.

The real module never sees a VP9 frame control the core refused: 6.12's
``std_validate_compound`` (drivers/media/v4l2-core/v4l2-ctrls-core.c) fails
VIDIOC_S_EXT_CTRLS / TRY_EXT_CTRLS with EINVAL first.  The simulation applies
the same rules, so a client sees the same errno on both backends (the contract
suite checks it).  Only the VP9 rules are here; the core also rewrites some
H.264 and AV1 fields (zeroing conditionally valid ones), which the sim does
not model.
"""
from __future__ import annotations

from ...v4l2 import uapi

VP9_FRAME_FLAGS = (uapi.V4L2_VP9_FRAME_FLAG_KEY_FRAME | uapi.V4L2_VP9_FRAME_FLAG_SHOW_FRAME
                   | uapi.V4L2_VP9_FRAME_FLAG_ERROR_RESILIENT | uapi.V4L2_VP9_FRAME_FLAG_INTRA_ONLY
                   | uapi.V4L2_VP9_FRAME_FLAG_ALLOW_HIGH_PREC_MV
                   | uapi.V4L2_VP9_FRAME_FLAG_REFRESH_FRAME_CTX
                   | uapi.V4L2_VP9_FRAME_FLAG_PARALLEL_DEC_MODE
                   | uapi.V4L2_VP9_FRAME_FLAG_X_SUBSAMPLING | uapi.V4L2_VP9_FRAME_FLAG_Y_SUBSAMPLING
                   | uapi.V4L2_VP9_FRAME_FLAG_COLOR_RANGE_FULL_SWING)
SUBSAMPLING_420 = uapi.V4L2_VP9_FRAME_FLAG_X_SUBSAMPLING | uapi.V4L2_VP9_FRAME_FLAG_Y_SUBSAMPLING
LF_FLAGS = uapi.V4L2_VP9_LOOP_FILTER_FLAG_DELTA_ENABLED | uapi.V4L2_VP9_LOOP_FILTER_FLAG_DELTA_UPDATE
SEG_FLAGS = (uapi.V4L2_VP9_SEGMENTATION_FLAG_ENABLED | uapi.V4L2_VP9_SEGMENTATION_FLAG_UPDATE_MAP
             | uapi.V4L2_VP9_SEGMENTATION_FLAG_TEMPORAL_UPDATE
             | uapi.V4L2_VP9_SEGMENTATION_FLAG_UPDATE_DATA
             | uapi.V4L2_VP9_SEGMENTATION_FLAG_ABS_OR_DELTA_UPDATE)
SEG_FEATURE_RANGE = (255, 63, 3, 0)    # |feature_data| per feature: Q, LF, ref frame, skip
PROFILE_MAX, RESET_FRAME_CTX_ALL, NUM_FRAME_CTX = 3, 2, 4
INTERP_FILTER_SWITCHABLE, REFERENCE_MODE_SELECT, TX_MODE_SELECT = 4, 2, 4


def minimal_vp9_frame():
    """A ``struct v4l2_ctrl_vp9_frame *`` the core accepts: profile 0, 8-bit, 4:2:0,
    everything else zero.  Callers change fields, then send ``bytes(ffi.buffer(f))``."""
    frame = uapi.ffi.new("struct v4l2_ctrl_vp9_frame *")
    frame.bit_depth = 8
    frame.flags = SUBSAMPLING_420
    return frame


def refusal(cid: int, payload: bytes) -> str | None:
    """Why the control core refuses this control value (EINVAL), or None."""
    if cid == uapi.V4L2_CID_STATELESS_VP9_FRAME:
        return vp9_frame(payload)
    if cid == uapi.V4L2_CID_STATELESS_VP9_COMPRESSED_HDR and payload:
        if payload[0] > TX_MODE_SELECT:         # tx_mode is the struct's first byte
            return f"tx_mode {payload[0]} > {TX_MODE_SELECT}"
    return None


def vp9_frame(payload: bytes) -> str | None:
    f = uapi.struct_from_bytes("struct v4l2_ctrl_vp9_frame", payload)
    checks = (
        (f.flags & ~VP9_FRAME_FLAGS, f"unknown flags 0x{f.flags & ~VP9_FRAME_FLAGS:x}"),
        (f.flags & uapi.V4L2_VP9_FRAME_FLAG_ERROR_RESILIENT
         and f.flags & uapi.V4L2_VP9_FRAME_FLAG_REFRESH_FRAME_CTX,
         "error resilient with refresh_frame_context"),
        (f.profile > PROFILE_MAX, f"profile {f.profile}"),
        (f.reset_frame_context > RESET_FRAME_CTX_ALL, f"reset_frame_context {f.reset_frame_context}"),
        (f.frame_context_idx >= NUM_FRAME_CTX, f"frame_context_idx {f.frame_context_idx}"),
        ((f.profile < 2 and f.bit_depth != 8) or (f.profile >= 2 and f.bit_depth not in (10, 12)),
         f"bit_depth {f.bit_depth} in profile {f.profile}"),
        (f.profile in (0, 2) and f.flags & SUBSAMPLING_420 != SUBSAMPLING_420,
         f"profile {f.profile} is 4:2:0 only"),
        (f.profile in (1, 3) and f.flags & SUBSAMPLING_420 == SUBSAMPLING_420,
         f"profile {f.profile} is not 4:2:0"),
        (f.interpolation_filter > INTERP_FILTER_SWITCHABLE,
         f"interpolation_filter {f.interpolation_filter}"),
        (f.tile_cols_log2 > 6, f"tile_cols_log2 {f.tile_cols_log2}"),
        (f.reference_mode > REFERENCE_MODE_SELECT, f"reference_mode {f.reference_mode}"),
    )
    for failed, why in checks:
        if failed:
            return f"VP9 frame: {why}"
    return _vp9_loop_filter(f.lf) or _vp9_quantization(f.quant) or _vp9_segmentation(f.seg)


def _vp9_loop_filter(lf) -> str | None:
    if lf.flags & ~LF_FLAGS:
        return f"VP9 loop filter: unknown flags 0x{lf.flags & ~LF_FLAGS:x}"
    if lf.level > 63 or lf.sharpness > 7:
        return f"VP9 loop filter: level {lf.level}, sharpness {lf.sharpness}"
    deltas = list(lf.ref_deltas) + list(lf.mode_deltas)
    if any(not -63 <= d <= 63 for d in deltas):
        return f"VP9 loop filter: deltas {deltas} beyond +-63"
    return None


def _vp9_quantization(q) -> str | None:
    deltas = (q.delta_q_y_dc, q.delta_q_uv_dc, q.delta_q_uv_ac)
    if any(not -15 <= d <= 15 for d in deltas):
        return f"VP9 quantization: deltas {deltas} beyond +-15"
    return None


def _vp9_segmentation(seg) -> str | None:
    if seg.flags & ~SEG_FLAGS:
        return f"VP9 segmentation: unknown flags 0x{seg.flags & ~SEG_FLAGS:x}"
    if any(e & ~0xF for e in seg.feature_enabled):
        return "VP9 segmentation: feature_enabled beyond the 4 features"
    for segment in range(8):
        for feature, limit in enumerate(SEG_FEATURE_RANGE):
            value = seg.feature_data[segment][feature]
            if not -limit <= value <= limit:
                return f"VP9 segmentation: segment {segment} feature {feature} data {value}"
    return None
