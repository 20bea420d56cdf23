"""AV1 headers <-> the V4L2 stateless AV1 controls (``<linux/v4l2-controls.h>``, Linux 6.5+).

Client side: :func:`sequence_control`, :func:`frame_control`,
:func:`tile_group_entries` and :func:`film_grain_control` fill the uAPI
structs from parsed headers.

Daemon side: the sequence header never reaches the OUTPUT buffer, only
``struct v4l2_ctrl_av1_sequence``; :func:`sequence_from_control` turns it
back into a :class:`SequenceHeader` that :func:`write_sequence_header_obu`
codes as an OBU for libavcodec.  The control leaves out fields that shape
how frame headers are read (frame id numbers, a decoder model, screen
content and integer-MV forcing, the size field widths).  The rebuilt header
takes the value each that encoders normally use, except where the first
frame of the sequence shows otherwise: :func:`infer_sequence` reads that
(intra) frame under each screen-content/integer-MV choice and keeps the one
that reproduces the request's own controls (rav1e, for one, forces screen
content tools off).  :func:`rebuild_limits` names what a stream's header
says that neither recovers, so a client can refuse such a stream up front
instead of getting wrong pictures.
"""
from __future__ import annotations

import dataclasses
import functools

from daedalus_v4l2.codecs import av1_obu
from daedalus_v4l2.codecs.av1_syntax import (
    ALTREF_FRAME, CP_BT_709, LAST_FRAME, MC_IDENTITY, ROTZOOM,
    SELECT_INTEGER_MV, SELECT_SCREEN_CONTENT_TOOLS, TC_SRGB, TRANSLATION, FrameHeader,
    OperatingPoint, SequenceHeader)
from daedalus_v4l2.codecs.bitwriter import BitWriter
from daedalus_v4l2.errors import BitstreamError
from daedalus_v4l2.v4l2 import uapi
from daedalus_v4l2.v4l2.uapi import ffi

# ---- values of the 6.12 <linux/v4l2-controls.h> (tests/test_layouts.py checks them) ----
V4L2_AV1_SEQUENCE_FLAG_STILL_PICTURE = 0x00000001
V4L2_AV1_SEQUENCE_FLAG_USE_128X128_SUPERBLOCK = 0x00000002
V4L2_AV1_SEQUENCE_FLAG_ENABLE_FILTER_INTRA = 0x00000004
V4L2_AV1_SEQUENCE_FLAG_ENABLE_INTRA_EDGE_FILTER = 0x00000008
V4L2_AV1_SEQUENCE_FLAG_ENABLE_INTERINTRA_COMPOUND = 0x00000010
V4L2_AV1_SEQUENCE_FLAG_ENABLE_MASKED_COMPOUND = 0x00000020
V4L2_AV1_SEQUENCE_FLAG_ENABLE_WARPED_MOTION = 0x00000040
V4L2_AV1_SEQUENCE_FLAG_ENABLE_DUAL_FILTER = 0x00000080
V4L2_AV1_SEQUENCE_FLAG_ENABLE_ORDER_HINT = 0x00000100
V4L2_AV1_SEQUENCE_FLAG_ENABLE_JNT_COMP = 0x00000200
V4L2_AV1_SEQUENCE_FLAG_ENABLE_REF_FRAME_MVS = 0x00000400
V4L2_AV1_SEQUENCE_FLAG_ENABLE_SUPERRES = 0x00000800
V4L2_AV1_SEQUENCE_FLAG_ENABLE_CDEF = 0x00001000
V4L2_AV1_SEQUENCE_FLAG_ENABLE_RESTORATION = 0x00002000
V4L2_AV1_SEQUENCE_FLAG_MONO_CHROME = 0x00004000
V4L2_AV1_SEQUENCE_FLAG_COLOR_RANGE = 0x00008000
V4L2_AV1_SEQUENCE_FLAG_SUBSAMPLING_X = 0x00010000
V4L2_AV1_SEQUENCE_FLAG_SUBSAMPLING_Y = 0x00020000
V4L2_AV1_SEQUENCE_FLAG_FILM_GRAIN_PARAMS_PRESENT = 0x00040000
V4L2_AV1_SEQUENCE_FLAG_SEPARATE_UV_DELTA_Q = 0x00080000

V4L2_AV1_FRAME_FLAG_SHOW_FRAME = 0x00000001
V4L2_AV1_FRAME_FLAG_SHOWABLE_FRAME = 0x00000002
V4L2_AV1_FRAME_FLAG_ERROR_RESILIENT_MODE = 0x00000004
V4L2_AV1_FRAME_FLAG_DISABLE_CDF_UPDATE = 0x00000008
V4L2_AV1_FRAME_FLAG_ALLOW_SCREEN_CONTENT_TOOLS = 0x00000010
V4L2_AV1_FRAME_FLAG_FORCE_INTEGER_MV = 0x00000020
V4L2_AV1_FRAME_FLAG_ALLOW_INTRABC = 0x00000040
V4L2_AV1_FRAME_FLAG_USE_SUPERRES = 0x00000080
V4L2_AV1_FRAME_FLAG_ALLOW_HIGH_PRECISION_MV = 0x00000100
V4L2_AV1_FRAME_FLAG_IS_MOTION_MODE_SWITCHABLE = 0x00000200
V4L2_AV1_FRAME_FLAG_USE_REF_FRAME_MVS = 0x00000400
V4L2_AV1_FRAME_FLAG_DISABLE_FRAME_END_UPDATE_CDF = 0x00000800
V4L2_AV1_FRAME_FLAG_ALLOW_WARPED_MOTION = 0x00001000
V4L2_AV1_FRAME_FLAG_REFERENCE_SELECT = 0x00002000
V4L2_AV1_FRAME_FLAG_REDUCED_TX_SET = 0x00004000
V4L2_AV1_FRAME_FLAG_SKIP_MODE_ALLOWED = 0x00008000
V4L2_AV1_FRAME_FLAG_SKIP_MODE_PRESENT = 0x00010000
V4L2_AV1_FRAME_FLAG_FRAME_SIZE_OVERRIDE = 0x00020000
V4L2_AV1_FRAME_FLAG_BUFFER_REMOVAL_TIME_PRESENT = 0x00040000
V4L2_AV1_FRAME_FLAG_FRAME_REFS_SHORT_SIGNALING = 0x00080000

V4L2_AV1_GLOBAL_MOTION_FLAG_IS_GLOBAL = 0x1
V4L2_AV1_GLOBAL_MOTION_FLAG_IS_ROT_ZOOM = 0x2
V4L2_AV1_GLOBAL_MOTION_FLAG_IS_TRANSLATION = 0x4
V4L2_AV1_LOOP_RESTORATION_FLAG_USES_LR = 0x1
V4L2_AV1_LOOP_RESTORATION_FLAG_USES_CHROMA_LR = 0x2
V4L2_AV1_SEGMENTATION_FLAG_ENABLED = 0x1
V4L2_AV1_SEGMENTATION_FLAG_UPDATE_MAP = 0x2
V4L2_AV1_SEGMENTATION_FLAG_TEMPORAL_UPDATE = 0x4
V4L2_AV1_SEGMENTATION_FLAG_UPDATE_DATA = 0x8
V4L2_AV1_SEGMENTATION_FLAG_SEG_ID_PRE_SKIP = 0x10
V4L2_AV1_LOOP_FILTER_FLAG_DELTA_ENABLED = 0x1
V4L2_AV1_LOOP_FILTER_FLAG_DELTA_UPDATE = 0x2
V4L2_AV1_LOOP_FILTER_FLAG_DELTA_LF_PRESENT = 0x4
V4L2_AV1_LOOP_FILTER_FLAG_DELTA_LF_MULTI = 0x8
V4L2_AV1_QUANTIZATION_FLAG_DIFF_UV_DELTA = 0x1
V4L2_AV1_QUANTIZATION_FLAG_USING_QMATRIX = 0x2
V4L2_AV1_QUANTIZATION_FLAG_DELTA_Q_PRESENT = 0x4
V4L2_AV1_TILE_INFO_FLAG_UNIFORM_TILE_SPACING = 0x1
V4L2_AV1_FILM_GRAIN_FLAG_APPLY_GRAIN = 0x1
V4L2_AV1_FILM_GRAIN_FLAG_UPDATE_GRAIN = 0x2
V4L2_AV1_FILM_GRAIN_FLAG_CHROMA_SCALING_FROM_LUMA = 0x4
V4L2_AV1_FILM_GRAIN_FLAG_OVERLAP = 0x8
V4L2_AV1_FILM_GRAIN_FLAG_CLIP_TO_RESTRICTED_RANGE = 0x10
V4L2_AV1_MAX_TILE_COUNT = 512

# seq_level_idx 31: "no level constraints" (spec A.3); the control carries no level.
NO_LEVEL = 31

_SEQUENCE_FLAGS = (
    ("still_picture", V4L2_AV1_SEQUENCE_FLAG_STILL_PICTURE),
    ("use_128x128_superblock", V4L2_AV1_SEQUENCE_FLAG_USE_128X128_SUPERBLOCK),
    ("enable_filter_intra", V4L2_AV1_SEQUENCE_FLAG_ENABLE_FILTER_INTRA),
    ("enable_intra_edge_filter", V4L2_AV1_SEQUENCE_FLAG_ENABLE_INTRA_EDGE_FILTER),
    ("enable_interintra_compound", V4L2_AV1_SEQUENCE_FLAG_ENABLE_INTERINTRA_COMPOUND),
    ("enable_masked_compound", V4L2_AV1_SEQUENCE_FLAG_ENABLE_MASKED_COMPOUND),
    ("enable_warped_motion", V4L2_AV1_SEQUENCE_FLAG_ENABLE_WARPED_MOTION),
    ("enable_dual_filter", V4L2_AV1_SEQUENCE_FLAG_ENABLE_DUAL_FILTER),
    ("enable_order_hint", V4L2_AV1_SEQUENCE_FLAG_ENABLE_ORDER_HINT),
    ("enable_jnt_comp", V4L2_AV1_SEQUENCE_FLAG_ENABLE_JNT_COMP),
    ("enable_ref_frame_mvs", V4L2_AV1_SEQUENCE_FLAG_ENABLE_REF_FRAME_MVS),
    ("enable_superres", V4L2_AV1_SEQUENCE_FLAG_ENABLE_SUPERRES),
    ("enable_cdef", V4L2_AV1_SEQUENCE_FLAG_ENABLE_CDEF),
    ("enable_restoration", V4L2_AV1_SEQUENCE_FLAG_ENABLE_RESTORATION),
    ("mono_chrome", V4L2_AV1_SEQUENCE_FLAG_MONO_CHROME),
    ("color_range", V4L2_AV1_SEQUENCE_FLAG_COLOR_RANGE),
    ("subsampling_x", V4L2_AV1_SEQUENCE_FLAG_SUBSAMPLING_X),
    ("subsampling_y", V4L2_AV1_SEQUENCE_FLAG_SUBSAMPLING_Y),
    ("film_grain_params_present", V4L2_AV1_SEQUENCE_FLAG_FILM_GRAIN_PARAMS_PRESENT),
    ("separate_uv_delta_q", V4L2_AV1_SEQUENCE_FLAG_SEPARATE_UV_DELTA_Q),
)

# Sequence header fields that change how frame headers are read but that the
# control does not carry: the rebuilt header must agree with the stream's.
# (seq_force_screen_content_tools is not here: infer_sequence recovers it from
# the key frame that starts a sequence.  seq_force_integer_mv only shows in a
# frame that allows screen content tools, so it stays.)
FRAME_SYNTAX_FIELDS = (
    "reduced_still_picture_header", "decoder_model_info_present_flag",
    "frame_id_numbers_present_flag", "frame_width_bits_minus_1", "frame_height_bits_minus_1",
    "seq_force_integer_mv", "operating_point_idc",
)

# (seq_force_screen_content_tools, seq_force_integer_mv) a sequence header may
# say, most common first (SVT-AV1 and libaom: both chosen per frame).
_SCREEN_CONTENT_CHOICES = (
    (SELECT_SCREEN_CONTENT_TOOLS, SELECT_INTEGER_MV), (0, SELECT_INTEGER_MV),
    (1, SELECT_INTEGER_MV), (SELECT_SCREEN_CONTENT_TOOLS, 0), (SELECT_SCREEN_CONTENT_TOOLS, 1),
    (1, 0), (1, 1),
)


def _struct_bytes(ctrl) -> bytes:
    return bytes(ffi.buffer(ctrl))


# ====================================================================
# struct v4l2_ctrl_av1_sequence
# ====================================================================

def sequence_control(seq: SequenceHeader) -> bytes:
    ctrl = ffi.new("struct v4l2_ctrl_av1_sequence *")
    ctrl.flags = uapi.flag_mask((getattr(seq, name), bit) for name, bit in _SEQUENCE_FLAGS)
    ctrl.seq_profile = seq.seq_profile
    ctrl.order_hint_bits = seq.order_hint_bits
    ctrl.bit_depth = seq.bit_depth
    ctrl.max_frame_width_minus_1 = seq.max_frame_width_minus_1
    ctrl.max_frame_height_minus_1 = seq.max_frame_height_minus_1
    return _struct_bytes(ctrl)


def sequence_from_control(data: bytes) -> SequenceHeader:
    """The sequence header the daemon rebuilds from ``V4L2_CID_STATELESS_AV1_SEQUENCE``."""
    ctrl = uapi.struct_from_bytes("struct v4l2_ctrl_av1_sequence", data)
    seq = SequenceHeader()
    for name, bit in _SEQUENCE_FLAGS:
        value = bool(ctrl.flags & bit)
        setattr(seq, name, int(value) if name.startswith("subsampling") else value)
    seq.seq_profile = ctrl.seq_profile
    seq.bit_depth = ctrl.bit_depth
    seq.order_hint_bits = ctrl.order_hint_bits if seq.enable_order_hint else 0
    seq.max_frame_width_minus_1 = ctrl.max_frame_width_minus_1
    seq.max_frame_height_minus_1 = ctrl.max_frame_height_minus_1
    # What the control does not carry, as encoders write it: the smallest size
    # fields, one operating point for every layer, screen content and integer
    # MV chosen per frame, and a still picture coded with the reduced header.
    seq.frame_width_bits_minus_1 = max(seq.max_frame_width_minus_1.bit_length(), 1) - 1
    seq.frame_height_bits_minus_1 = max(seq.max_frame_height_minus_1.bit_length(), 1) - 1
    seq.operating_points = [OperatingPoint(seq_level_idx=NO_LEVEL)]
    seq.seq_force_screen_content_tools = SELECT_SCREEN_CONTENT_TOOLS
    seq.seq_force_integer_mv = SELECT_INTEGER_MV
    seq.reduced_still_picture_header = seq.still_picture
    if seq.reduced_still_picture_header:
        seq.enable_order_hint = seq.enable_jnt_comp = seq.enable_ref_frame_mvs = False
        seq.order_hint_bits = 0
    return seq


def rebuild_limits(seq: SequenceHeader) -> list[str]:
    """The fields of ``seq`` that shape frame headers but that a sequence header
    rebuilt from its control would say differently (empty: the stream can go
    through the V4L2 uAPI to a daemon that rebuilds it)."""
    rebuilt = sequence_from_control(sequence_control(seq))
    return [f"{name}={getattr(seq, name)} (rebuilt: {getattr(rebuilt, name)})"
            for name in FRAME_SYNTAX_FIELDS if getattr(seq, name) != getattr(rebuilt, name)]


def infer_sequence(seq: SequenceHeader, data: bytes, frame_ctrl: bytes,
                   tile_entries: bytes | None = None) -> SequenceHeader:
    """``seq`` (rebuilt from its control) with the screen content and integer-MV
    choices under which ``data``, the first frame of the sequence, reads back
    as its frame control (and tile group entries) say.  ``seq`` unchanged when
    no choice fits, e.g. when the frame is not intra and cannot be read alone."""
    wanted = _fingerprint(frame_from_control(frame_ctrl))
    wanted_tiles = None if tile_entries is None else bytes(tile_entries)
    first_fit = None
    # Read lazily, most common choice first: each reading of a 1080p key frame
    # costs 0.2 ms, and all seven delayed a decode's first picture by 1.6-2.7 ms.
    for sct, imv in _SCREEN_CONTENT_CHOICES:
        candidate = dataclasses.replace(seq, seq_force_screen_content_tools=sct,
                                        seq_force_integer_mv=imv)
        fingerprint, tiles = _read_alone(candidate, data)
        if fingerprint != wanted:
            continue
        # Tile offsets pin the header's length down to the byte, when the client
        # counts them as we do (from the start of the OUTPUT buffer).
        if wanted_tiles is None or wanted_tiles == tiles:
            return candidate
        if first_fit is None:
            first_fit = candidate
    return seq if first_fit is None else first_fit


def _read_alone(seq: SequenceHeader, data: bytes) -> tuple[tuple | None, bytes]:
    """(fingerprint, tile entries) of ``data`` read as the first frame after ``seq``,
    by the C reader: the daemon reads a 1080p key frame this way for each of the
    choices before it decodes the sequence's first frame (2.5 ms in Python)."""
    from daedalus_v4l2.codecs import av1_native
    from daedalus_v4l2.codecs.av1 import Av1Parser  # av1 imports this module's siblings
    try:
        units = Av1Parser(native=True).temporal_unit(write_sequence_header_obu(seq) + data)
        if len(units) != 1 or units[0].header.show_existing_frame:
            return None, b""
        control = av1_native.frame_control(units[0].header, [0] * 8)
        return _fingerprint(frame_from_control(control)), tile_group_entries(units[0].tiles)
    except (BitstreamError, ValueError):
        return None, b""


def _fingerprint(ctrl) -> tuple:
    """Fields of a frame control that a misread header bit would change."""
    return (ctrl.flags, ctrl.frame_type, ctrl.order_hint, ctrl.refresh_frame_flags,
            ctrl.frame_width_minus_1, ctrl.frame_height_minus_1,
            ctrl.quantization.base_q_idx, ctrl.tile_info.tile_cols, ctrl.tile_info.tile_rows,
            tuple(ctrl.loop_filter.level), ctrl.cdef.bits, ctrl.tx_mode)




# ====================================================================
# The sequence header OBU (spec 5.5), written back
# ====================================================================

def write_sequence_header_obu(seq: SequenceHeader) -> bytes:
    """A sequence header OBU saying what ``seq`` says (no timing or decoder
    model info: neither changes decoding when absent from every frame)."""
    w = BitWriter()
    w.u(3, seq.seq_profile)
    w.flag(seq.still_picture)
    w.flag(seq.reduced_still_picture_header)
    if seq.reduced_still_picture_header:
        w.u(5, seq.operating_points[0].seq_level_idx)
    else:
        _write_operating_points(w, seq)
    w.u(4, seq.frame_width_bits_minus_1)
    w.u(4, seq.frame_height_bits_minus_1)
    w.u(seq.frame_width_bits_minus_1 + 1, seq.max_frame_width_minus_1)
    w.u(seq.frame_height_bits_minus_1 + 1, seq.max_frame_height_minus_1)
    if not seq.reduced_still_picture_header:
        w.flag(seq.frame_id_numbers_present_flag)
        if seq.frame_id_numbers_present_flag:
            w.u(4, seq.delta_frame_id_length_minus_2)
            w.u(3, seq.additional_frame_id_length_minus_1)
    w.flag(seq.use_128x128_superblock)
    w.flag(seq.enable_filter_intra)
    w.flag(seq.enable_intra_edge_filter)
    if not seq.reduced_still_picture_header:
        _write_inter_tools(w, seq)
    w.flag(seq.enable_superres)
    w.flag(seq.enable_cdef)
    w.flag(seq.enable_restoration)
    _write_color_config(w, seq)
    w.flag(seq.film_grain_params_present)
    w.trailing_bits()
    return av1_obu.obu(av1_obu.OBU_SEQUENCE_HEADER, w.to_bytes())


def _write_operating_points(w: BitWriter, seq: SequenceHeader) -> None:
    w.flag(False)  # timing_info_present_flag
    w.flag(False)  # initial_display_delay_present_flag
    w.u(5, len(seq.operating_points) - 1)
    for op in seq.operating_points:
        w.u(12, op.idc)
        w.u(5, op.seq_level_idx)
        if op.seq_level_idx > 7:
            w.u(1, op.seq_tier)


def _write_inter_tools(w: BitWriter, seq: SequenceHeader) -> None:
    w.flag(seq.enable_interintra_compound)
    w.flag(seq.enable_masked_compound)
    w.flag(seq.enable_warped_motion)
    w.flag(seq.enable_dual_filter)
    w.flag(seq.enable_order_hint)
    if seq.enable_order_hint:
        w.flag(seq.enable_jnt_comp)
        w.flag(seq.enable_ref_frame_mvs)
    choose_sct = seq.seq_force_screen_content_tools == SELECT_SCREEN_CONTENT_TOOLS
    w.flag(choose_sct)
    if not choose_sct:
        w.u(1, seq.seq_force_screen_content_tools)
    if seq.seq_force_screen_content_tools > 0:
        choose_imv = seq.seq_force_integer_mv == SELECT_INTEGER_MV
        w.flag(choose_imv)
        if not choose_imv:
            w.u(1, seq.seq_force_integer_mv)
    if seq.enable_order_hint:
        w.u(3, seq.order_hint_bits - 1)


def _write_color_config(w: BitWriter, seq: SequenceHeader) -> None:
    w.flag(seq.bit_depth > 8)  # high_bitdepth
    if seq.seq_profile == 2 and seq.bit_depth > 8:
        w.flag(seq.bit_depth == 12)
    if seq.seq_profile != 1:
        w.flag(seq.mono_chrome)
    w.flag(seq.color_description_present_flag)
    if seq.color_description_present_flag:
        w.u(8, seq.color_primaries)
        w.u(8, seq.transfer_characteristics)
        w.u(8, seq.matrix_coefficients)
    if seq.mono_chrome:
        w.flag(seq.color_range)
        return
    srgb = (seq.color_primaries, seq.transfer_characteristics, seq.matrix_coefficients) == \
        (CP_BT_709, TC_SRGB, MC_IDENTITY)
    if not srgb:
        w.flag(seq.color_range)
        if seq.seq_profile == 2 and seq.bit_depth == 12:
            w.u(1, seq.subsampling_x)
            if seq.subsampling_x:
                w.u(1, seq.subsampling_y)
        if seq.subsampling_x and seq.subsampling_y:
            w.u(2, seq.chroma_sample_position)
    w.flag(seq.separate_uv_delta_q)


@functools.lru_cache(maxsize=8)  # one per reference slot: a hidden frame's picture asks for it
def show_existing_frame_obu(slot: int) -> bytes:
    """A frame header OBU that only says "show reference slot N" (spec 5.9.2),
    for a sequence header without decoder model or frame ids (what
    :func:`sequence_from_control` rebuilds)."""
    w = BitWriter()
    w.flag(True)  # show_existing_frame
    w.u(3, slot)
    w.trailing_bits()
    return av1_obu.obu(av1_obu.OBU_FRAME_HEADER, w.to_bytes())


# ====================================================================
# struct v4l2_ctrl_av1_frame and friends
# ====================================================================

def frame_control(h: FrameHeader, reference_ts: list[int]) -> bytes:
    """``struct v4l2_ctrl_av1_frame`` for a decoded (not show-existing) frame;
    ``reference_ts`` are the CAPTURE timestamps (ns) in the eight slots."""
    if h.show_existing_frame:
        raise ValueError("show_existing_frame decodes nothing: the client shows the "
                         "buffer in that slot again")
    ctrl = ffi.new("struct v4l2_ctrl_av1_frame *")
    _fill_tile_info(ctrl.tile_info, h)
    _fill_quantization(ctrl.quantization, h)
    ctrl.superres_denom = h.superres_denom
    _fill_segmentation(ctrl.segmentation, h)
    _fill_loop_filter(ctrl.loop_filter, h)
    _fill_cdef(ctrl.cdef, h)
    ctrl.skip_mode_frame = list(h.skip_mode_frame)
    ctrl.primary_ref_frame = h.primary_ref_frame
    _fill_loop_restoration(ctrl.loop_restoration, h)
    _fill_global_motion(ctrl.global_motion, h)
    ctrl.flags = _frame_flags(h)
    ctrl.frame_type = h.frame_type
    ctrl.order_hint = h.order_hint
    ctrl.upscaled_width = h.upscaled_width
    ctrl.interpolation_filter = h.interpolation_filter
    ctrl.tx_mode = h.tx_mode
    ctrl.frame_width_minus_1 = h.frame_width - 1
    ctrl.frame_height_minus_1 = h.frame_height - 1
    ctrl.render_width_minus_1 = h.render_width - 1
    ctrl.render_height_minus_1 = h.render_height - 1
    ctrl.current_frame_id = h.current_frame_id
    ctrl.buffer_removal_time = list(h.buffer_removal_time)
    ctrl.order_hints = list(h.order_hints)
    ctrl.reference_frame_ts = list(reference_ts)
    ctrl.ref_frame_idx = list(h.ref_frame_idx)
    ctrl.refresh_frame_flags = h.refresh_frame_flags
    return _struct_bytes(ctrl)


def frame_from_control(data: bytes):
    """The daemon's read-only view of ``struct v4l2_ctrl_av1_frame``."""
    return uapi.struct_from_bytes("struct v4l2_ctrl_av1_frame", data)


def _frame_flags(h: FrameHeader) -> int:
    return uapi.flag_mask((
        (h.show_frame, V4L2_AV1_FRAME_FLAG_SHOW_FRAME),
        (h.showable_frame, V4L2_AV1_FRAME_FLAG_SHOWABLE_FRAME),
        (h.error_resilient_mode, V4L2_AV1_FRAME_FLAG_ERROR_RESILIENT_MODE),
        (h.disable_cdf_update, V4L2_AV1_FRAME_FLAG_DISABLE_CDF_UPDATE),
        (h.allow_screen_content_tools, V4L2_AV1_FRAME_FLAG_ALLOW_SCREEN_CONTENT_TOOLS),
        (h.force_integer_mv, V4L2_AV1_FRAME_FLAG_FORCE_INTEGER_MV),
        (h.allow_intrabc, V4L2_AV1_FRAME_FLAG_ALLOW_INTRABC),
        (h.use_superres, V4L2_AV1_FRAME_FLAG_USE_SUPERRES),
        (h.allow_high_precision_mv, V4L2_AV1_FRAME_FLAG_ALLOW_HIGH_PRECISION_MV),
        (h.is_motion_mode_switchable, V4L2_AV1_FRAME_FLAG_IS_MOTION_MODE_SWITCHABLE),
        (h.use_ref_frame_mvs, V4L2_AV1_FRAME_FLAG_USE_REF_FRAME_MVS),
        (h.disable_frame_end_update_cdf, V4L2_AV1_FRAME_FLAG_DISABLE_FRAME_END_UPDATE_CDF),
        (h.allow_warped_motion, V4L2_AV1_FRAME_FLAG_ALLOW_WARPED_MOTION),
        (h.reference_select, V4L2_AV1_FRAME_FLAG_REFERENCE_SELECT),
        (h.reduced_tx_set, V4L2_AV1_FRAME_FLAG_REDUCED_TX_SET),
        (h.skip_mode_frame[0] != 0, V4L2_AV1_FRAME_FLAG_SKIP_MODE_ALLOWED),
        (h.skip_mode_present, V4L2_AV1_FRAME_FLAG_SKIP_MODE_PRESENT),
        (h.frame_size_override_flag, V4L2_AV1_FRAME_FLAG_FRAME_SIZE_OVERRIDE),
        (h.buffer_removal_time_present_flag, V4L2_AV1_FRAME_FLAG_BUFFER_REMOVAL_TIME_PRESENT),
        (h.frame_refs_short_signaling, V4L2_AV1_FRAME_FLAG_FRAME_REFS_SHORT_SIGNALING),
    ))


def _fill_tile_info(ti, h: FrameHeader) -> None:
    info = h.tile_info
    ti.flags = V4L2_AV1_TILE_INFO_FLAG_UNIFORM_TILE_SPACING if info.uniform else 0
    ti.context_update_tile_id = info.context_update_tile_id
    ti.tile_cols, ti.tile_rows = info.tile_cols, info.tile_rows
    ti.mi_col_starts[0:len(info.mi_col_starts)] = info.mi_col_starts
    ti.mi_row_starts[0:len(info.mi_row_starts)] = info.mi_row_starts
    widths, heights = info.widths_in_sbs(), info.heights_in_sbs()
    ti.width_in_sbs_minus_1[0:len(widths)] = [w - 1 for w in widths]
    ti.height_in_sbs_minus_1[0:len(heights)] = [r - 1 for r in heights]
    ti.tile_size_bytes = info.tile_size_bytes


def _fill_quantization(q, h: FrameHeader) -> None:
    src = h.quantization
    q.flags = uapi.flag_mask(((src.diff_uv_delta, V4L2_AV1_QUANTIZATION_FLAG_DIFF_UV_DELTA),
                              (src.using_qmatrix, V4L2_AV1_QUANTIZATION_FLAG_USING_QMATRIX),
                              (h.delta_q_present, V4L2_AV1_QUANTIZATION_FLAG_DELTA_Q_PRESENT)))
    q.base_q_idx = src.base_q_idx
    q.delta_q_y_dc, q.delta_q_u_dc = src.delta_q_y_dc, src.delta_q_u_dc
    q.delta_q_u_ac = src.delta_q_u_ac
    q.delta_q_v_dc, q.delta_q_v_ac = src.delta_q_v_dc, src.delta_q_v_ac
    q.qm_y, q.qm_u, q.qm_v = src.qm_y, src.qm_u, src.qm_v
    q.delta_q_res = h.delta_q_res


def _fill_segmentation(seg, h: FrameHeader) -> None:
    src = h.segmentation
    seg.flags = uapi.flag_mask(((src.enabled, V4L2_AV1_SEGMENTATION_FLAG_ENABLED),
                                (src.update_map, V4L2_AV1_SEGMENTATION_FLAG_UPDATE_MAP),
                                (src.temporal_update, V4L2_AV1_SEGMENTATION_FLAG_TEMPORAL_UPDATE),
                                (src.update_data, V4L2_AV1_SEGMENTATION_FLAG_UPDATE_DATA),
                                (src.seg_id_pre_skip, V4L2_AV1_SEGMENTATION_FLAG_SEG_ID_PRE_SKIP)))
    seg.last_active_seg_id = src.last_active_seg_id
    for i in range(len(src.feature_enabled)):
        # V4L2_AV1_SEGMENT_FEATURE_ENABLED(id) = 1 << id
        seg.feature_enabled[i] = uapi.flag_mask(
            (on, 1 << j) for j, on in enumerate(src.feature_enabled[i]))
        seg.feature_data[i] = list(src.feature_data[i])


def _fill_loop_filter(lf, h: FrameHeader) -> None:
    src = h.loop_filter
    lf.flags = uapi.flag_mask(((src.delta_enabled, V4L2_AV1_LOOP_FILTER_FLAG_DELTA_ENABLED),
                               (src.delta_update, V4L2_AV1_LOOP_FILTER_FLAG_DELTA_UPDATE),
                               (h.delta_lf_present, V4L2_AV1_LOOP_FILTER_FLAG_DELTA_LF_PRESENT),
                               (h.delta_lf_multi, V4L2_AV1_LOOP_FILTER_FLAG_DELTA_LF_MULTI)))
    lf.level = list(src.level)
    lf.sharpness = src.sharpness
    lf.ref_deltas = list(src.ref_deltas)
    lf.mode_deltas = list(src.mode_deltas)
    lf.delta_lf_res = h.delta_lf_res


def _fill_cdef(cdef, h: FrameHeader) -> None:
    src = h.cdef
    cdef.damping_minus_3, cdef.bits = src.damping_minus_3, src.bits
    cdef.y_pri_strength, cdef.y_sec_strength = list(src.y_pri_strength), list(src.y_sec_strength)
    cdef.uv_pri_strength = list(src.uv_pri_strength)
    cdef.uv_sec_strength = list(src.uv_sec_strength)


def _fill_loop_restoration(lr, h: FrameHeader) -> None:
    src = h.loop_restoration
    lr.flags = uapi.flag_mask(((src.uses_lr, V4L2_AV1_LOOP_RESTORATION_FLAG_USES_LR),
                               (src.uses_chroma_lr, V4L2_AV1_LOOP_RESTORATION_FLAG_USES_CHROMA_LR)))
    lr.lr_unit_shift, lr.lr_uv_shift = src.lr_unit_shift, src.lr_uv_shift
    lr.frame_restoration_type = list(src.frame_restoration_type)
    lr.loop_restoration_size = list(src.loop_restoration_size)


def _fill_global_motion(gm, h: FrameHeader) -> None:
    # gm.invalid (the spec's warpValid from the shear process, 7.11.3.6) is
    # left 0: a decoder that warps computes it; our daemon never reads it.
    for ref in range(LAST_FRAME, ALTREF_FRAME + 1):
        kind = h.gm_type[ref]
        gm.flags[ref] = uapi.flag_mask(((kind != 0, V4L2_AV1_GLOBAL_MOTION_FLAG_IS_GLOBAL),
                                        (kind == ROTZOOM, V4L2_AV1_GLOBAL_MOTION_FLAG_IS_ROT_ZOOM),
                                        (kind == TRANSLATION, V4L2_AV1_GLOBAL_MOTION_FLAG_IS_TRANSLATION)))
        gm.type[ref] = kind
        gm.params[ref] = list(h.gm_params[ref])


def tile_group_entries(tiles) -> bytes:
    """``struct v4l2_ctrl_av1_tile_group_entry[]``, one per tile (a dynamic array).
    ``tile_offset`` counts from the start of the OUTPUT buffer."""
    if not tiles:
        raise ValueError("a decoded frame has at least one tile")
    if len(tiles) > V4L2_AV1_MAX_TILE_COUNT:
        raise ValueError(f"{len(tiles)} tiles is more than V4L2_AV1_MAX_TILE_COUNT")
    entries = ffi.new("struct v4l2_ctrl_av1_tile_group_entry[]", len(tiles))
    for entry, tile in zip(entries, tiles):
        entry.tile_offset, entry.tile_size = tile.offset, tile.size
        entry.tile_row, entry.tile_col = tile.row, tile.col
    return bytes(ffi.buffer(entries))


def film_grain_control(h: FrameHeader) -> bytes:
    fg = h.film_grain
    ctrl = ffi.new("struct v4l2_ctrl_av1_film_grain *")
    ctrl.flags = uapi.flag_mask(((fg.apply_grain, V4L2_AV1_FILM_GRAIN_FLAG_APPLY_GRAIN),
                                 (fg.update_grain, V4L2_AV1_FILM_GRAIN_FLAG_UPDATE_GRAIN),
                                 (fg.chroma_scaling_from_luma,
                                  V4L2_AV1_FILM_GRAIN_FLAG_CHROMA_SCALING_FROM_LUMA),
                                 (fg.overlap_flag, V4L2_AV1_FILM_GRAIN_FLAG_OVERLAP),
                                 (fg.clip_to_restricted_range,
                                  V4L2_AV1_FILM_GRAIN_FLAG_CLIP_TO_RESTRICTED_RANGE)))
    ctrl.grain_seed = fg.grain_seed
    ctrl.film_grain_params_ref_idx = fg.film_grain_params_ref_idx
    for plane in ("y", "cb", "cr"):
        values = getattr(fg, f"point_{plane}_value")
        setattr(ctrl, f"num_{plane}_points", len(values))
        getattr(ctrl, f"point_{plane}_value")[0:len(values)] = values
        scalings = getattr(fg, f"point_{plane}_scaling")
        getattr(ctrl, f"point_{plane}_scaling")[0:len(scalings)] = scalings
        coeffs = getattr(fg, f"ar_coeffs_{plane}_plus_128")
        getattr(ctrl, f"ar_coeffs_{plane}_plus_128")[0:len(coeffs)] = coeffs
    ctrl.grain_scaling_minus_8 = fg.grain_scaling_minus_8
    ctrl.ar_coeff_lag = fg.ar_coeff_lag
    ctrl.ar_coeff_shift_minus_6 = fg.ar_coeff_shift_minus_6
    ctrl.grain_scale_shift = fg.grain_scale_shift
    ctrl.cb_mult, ctrl.cb_luma_mult, ctrl.cb_offset = fg.cb_mult, fg.cb_luma_mult, fg.cb_offset
    ctrl.cr_mult, ctrl.cr_luma_mult, ctrl.cr_offset = fg.cr_mult, fg.cr_luma_mult, fg.cr_offset
    return _struct_bytes(ctrl)

