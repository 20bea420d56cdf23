"""AV1 syntax: constants, descriptors, sequence and frame headers (spec 4, 5.5, 5.9).

The readers follow the spec's syntax functions one by one, with the spec's
names, so that a field can be checked against the text.  What a frame header
needs from earlier frames comes in as the eight :class:`RefSlot`s.
:mod:`daedalus_v4l2.codecs.av1` puts them together into a stream parser.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from daedalus_v4l2.codecs.bitreader import BitReader
from daedalus_v4l2.errors import BitstreamError

# ---- constants (spec section 3, "Symbols and abbreviated terms") ----
NUM_REF_FRAMES = 8
REFS_PER_FRAME = 7
TOTAL_REFS_PER_FRAME = 8
PRIMARY_REF_NONE = 7
MAX_SEGMENTS = 8
SEG_LVL_MAX = 8
SEG_LVL_REF_FRAME = 5
MAX_LOOP_FILTER = 63
MAX_TILE_WIDTH = 4096
MAX_TILE_AREA = 4096 * 2304
MAX_TILE_ROWS = 64
MAX_TILE_COLS = 64
SUPERRES_NUM = 8
SUPERRES_DENOM_MIN = 9
SUPERRES_DENOM_BITS = 3
SELECT_SCREEN_CONTENT_TOOLS = 2
SELECT_INTEGER_MV = 2
RESTORATION_TILESIZE_MAX = 256
WARPEDMODEL_PREC_BITS = 16
GM_ABS_TRANS_BITS, GM_TRANS_PREC_BITS = 12, 6
GM_ABS_TRANS_ONLY_BITS, GM_TRANS_ONLY_PREC_BITS = 9, 3
GM_ABS_ALPHA_BITS, GM_ALPHA_PREC_BITS = 12, 15
ALL_FRAMES = 0xFF

KEY_FRAME, INTER_FRAME, INTRA_ONLY_FRAME, SWITCH_FRAME = 0, 1, 2, 3
INTRA_FRAME, LAST_FRAME, LAST2_FRAME, LAST3_FRAME = 0, 1, 2, 3
GOLDEN_FRAME, BWDREF_FRAME, ALTREF2_FRAME, ALTREF_FRAME = 4, 5, 6, 7
IDENTITY, TRANSLATION, ROTZOOM, AFFINE = 0, 1, 2, 3
RESTORE_NONE, RESTORE_WIENER, RESTORE_SGRPROJ, RESTORE_SWITCHABLE = 0, 1, 2, 3
ONLY_4X4, TX_MODE_LARGEST, TX_MODE_SELECT = 0, 1, 2
INTERP_SWITCHABLE = 4
CP_BT_709, TC_SRGB, MC_IDENTITY, UNSPECIFIED = 1, 13, 0, 2

SEGMENTATION_FEATURE_BITS = (8, 6, 6, 6, 6, 3, 0, 0)
SEGMENTATION_FEATURE_SIGNED = (1, 1, 1, 1, 1, 0, 0, 0)
SEGMENTATION_FEATURE_MAX = (255, MAX_LOOP_FILTER, MAX_LOOP_FILTER, MAX_LOOP_FILTER,
                            MAX_LOOP_FILTER, 7, 0, 0)
# lr_type as coded -> FrameRestorationType (spec 6.10.15, Remap_Lr_Type)
REMAP_LR_TYPE = (RESTORE_NONE, RESTORE_SWITCHABLE, RESTORE_WIENER, RESTORE_SGRPROJ)
# setup_past_independence / loop_filter_params defaults, indexed INTRA_FRAME..ALTREF_FRAME
DEFAULT_LF_REF_DELTAS = (1, 0, 0, 0, -1, 0, -1, -1)
DEFAULT_GM_PARAMS = (0, 0, 1 << WARPEDMODEL_PREC_BITS, 0, 0, 1 << WARPEDMODEL_PREC_BITS)
# set_frame_refs: the references filled after LAST and GOLDEN (spec 7.8)
REF_FRAME_LIST = (LAST2_FRAME, LAST3_FRAME, BWDREF_FRAME, ALTREF2_FRAME, ALTREF_FRAME)


# ====================================================================
# Bit reading helpers for AV1's descriptors (spec 4.10)
# ====================================================================

def read_su(bits: BitReader, n: int, what: str) -> int:
    """su(n): an n-bit two's complement value."""
    value = bits.read_bits(n, what)
    sign = 1 << (n - 1)
    return value - 2 * sign if value & sign else value


def read_ns(bits: BitReader, n: int, what: str) -> int:
    """ns(n): a value in 0..n-1 in a non-symmetric unsigned code."""
    w = n.bit_length()  # FloorLog2(n) + 1
    m = (1 << w) - n
    v = bits.read_bits(w - 1, what)
    if v < m:
        return v
    return (v << 1) - m + bits.read_bits(1, what)


def read_uvlc(bits: BitReader, what: str) -> int:
    leading_zeros = 0
    while not bits.read_bool(what):
        leading_zeros += 1
    if leading_zeros >= 32:
        return (1 << 32) - 1
    return bits.read_bits(leading_zeros, what) + (1 << leading_zeros) - 1


def read_le(data: bytes, pos: int, n: int, what: str) -> int:
    """le(n): n bytes, little-endian."""
    if pos + n > len(data):
        raise BitstreamError(f"truncated: {what} needs {n} bytes at byte {pos}")
    return int.from_bytes(data[pos:pos + n], "little")


def tile_log2(blk_size: int, target: int) -> int:
    k = 0
    while (blk_size << k) < target:
        k += 1
    return k


# ====================================================================
# Sequence header (spec 5.5)
# ====================================================================

@dataclass
class OperatingPoint:
    idc: int = 0
    seq_level_idx: int = 0
    seq_tier: int = 0
    decoder_model_present: bool = False
    initial_display_delay_present: bool = False


@dataclass
class SequenceHeader:
    seq_profile: int = 0
    still_picture: bool = False
    reduced_still_picture_header: bool = False
    timing_info_present_flag: bool = False
    equal_picture_interval: bool = False
    decoder_model_info_present_flag: bool = False
    buffer_removal_time_length_minus_1: int = 0
    frame_presentation_time_length_minus_1: int = 0
    initial_display_delay_present_flag: bool = False
    operating_points: list[OperatingPoint] = field(default_factory=lambda: [OperatingPoint()])
    frame_width_bits_minus_1: int = 0
    frame_height_bits_minus_1: int = 0
    max_frame_width_minus_1: int = 0
    max_frame_height_minus_1: int = 0
    frame_id_numbers_present_flag: bool = False
    delta_frame_id_length_minus_2: int = 0
    additional_frame_id_length_minus_1: int = 0
    use_128x128_superblock: bool = False
    enable_filter_intra: bool = False
    enable_intra_edge_filter: bool = False
    enable_interintra_compound: bool = False
    enable_masked_compound: bool = False
    enable_warped_motion: bool = False
    enable_dual_filter: bool = False
    enable_order_hint: bool = False
    enable_jnt_comp: bool = False
    enable_ref_frame_mvs: bool = False
    seq_force_screen_content_tools: int = SELECT_SCREEN_CONTENT_TOOLS
    seq_force_integer_mv: int = SELECT_INTEGER_MV
    order_hint_bits: int = 0
    enable_superres: bool = False
    enable_cdef: bool = False
    enable_restoration: bool = False
    # color_config()
    bit_depth: int = 8
    mono_chrome: bool = False
    color_description_present_flag: bool = False
    color_primaries: int = UNSPECIFIED
    transfer_characteristics: int = UNSPECIFIED
    matrix_coefficients: int = UNSPECIFIED
    color_range: bool = False
    subsampling_x: int = 1
    subsampling_y: int = 1
    chroma_sample_position: int = 0
    separate_uv_delta_q: bool = False
    film_grain_params_present: bool = False

    @property
    def num_planes(self) -> int:
        return 1 if self.mono_chrome else 3

    @property
    def operating_point_idc(self) -> int:
        """OperatingPointIdc of operating point 0, the one decoders choose by default."""
        return self.operating_points[0].idc


def parse_sequence_header(payload: bytes) -> SequenceHeader:
    """The sequence header OBU's payload (after the OBU header and size)."""
    bits = BitReader(payload)
    seq = SequenceHeader()
    seq.seq_profile = bits.read_bits(3, "seq_profile")
    if seq.seq_profile > 2:
        raise BitstreamError(f"unknown seq_profile {seq.seq_profile}")
    seq.still_picture = bits.read_bool("still_picture")
    seq.reduced_still_picture_header = bits.read_bool("reduced_still_picture_header")
    if seq.reduced_still_picture_header:
        seq.operating_points = [OperatingPoint(seq_level_idx=bits.read_bits(5, "seq_level_idx"))]
    else:
        _timing_and_operating_points(bits, seq)
    seq.frame_width_bits_minus_1 = bits.read_bits(4, "frame_width_bits_minus_1")
    seq.frame_height_bits_minus_1 = bits.read_bits(4, "frame_height_bits_minus_1")
    seq.max_frame_width_minus_1 = bits.read_bits(seq.frame_width_bits_minus_1 + 1,
                                                 "max_frame_width")
    seq.max_frame_height_minus_1 = bits.read_bits(seq.frame_height_bits_minus_1 + 1,
                                                  "max_frame_height")
    if not seq.reduced_still_picture_header:
        seq.frame_id_numbers_present_flag = bits.read_bool("frame_id_numbers_present_flag")
    if seq.frame_id_numbers_present_flag:
        seq.delta_frame_id_length_minus_2 = bits.read_bits(4, "delta_frame_id_length_minus_2")
        seq.additional_frame_id_length_minus_1 = bits.read_bits(3, "additional_frame_id_length")
    seq.use_128x128_superblock = bits.read_bool("use_128x128_superblock")
    seq.enable_filter_intra = bits.read_bool("enable_filter_intra")
    seq.enable_intra_edge_filter = bits.read_bool("enable_intra_edge_filter")
    if not seq.reduced_still_picture_header:
        _inter_tools(bits, seq)
    seq.enable_superres = bits.read_bool("enable_superres")
    seq.enable_cdef = bits.read_bool("enable_cdef")
    seq.enable_restoration = bits.read_bool("enable_restoration")
    _color_config(bits, seq)
    seq.film_grain_params_present = bits.read_bool("film_grain_params_present")
    return seq


def _timing_and_operating_points(bits: BitReader, seq: SequenceHeader) -> None:
    seq.timing_info_present_flag = bits.read_bool("timing_info_present_flag")
    buffer_delay_length = 0
    if seq.timing_info_present_flag:
        bits.read_bits(32, "num_units_in_display_tick")
        bits.read_bits(32, "time_scale")
        seq.equal_picture_interval = bits.read_bool("equal_picture_interval")
        if seq.equal_picture_interval:
            read_uvlc(bits, "num_ticks_per_picture_minus_1")
        seq.decoder_model_info_present_flag = bits.read_bool("decoder_model_info_present_flag")
        if seq.decoder_model_info_present_flag:
            buffer_delay_length = bits.read_bits(5, "buffer_delay_length_minus_1") + 1
            bits.read_bits(32, "num_units_in_decoding_tick")
            seq.buffer_removal_time_length_minus_1 = bits.read_bits(5, "buffer_removal_time_length")
            seq.frame_presentation_time_length_minus_1 = bits.read_bits(
                5, "frame_presentation_time_length_minus_1")
    seq.initial_display_delay_present_flag = bits.read_bool("initial_display_delay_present_flag")
    count = bits.read_bits(5, "operating_points_cnt_minus_1") + 1
    seq.operating_points = [_operating_point(bits, seq, buffer_delay_length) for _ in range(count)]


def _operating_point(bits: BitReader, seq: SequenceHeader,
                     buffer_delay_length: int) -> OperatingPoint:
    op = OperatingPoint(idc=bits.read_bits(12, "operating_point_idc"),
                        seq_level_idx=bits.read_bits(5, "seq_level_idx"))
    if op.seq_level_idx > 7:
        op.seq_tier = bits.read_bits(1, "seq_tier")
    if seq.decoder_model_info_present_flag:
        op.decoder_model_present = bits.read_bool("decoder_model_present_for_this_op")
        if op.decoder_model_present:
            bits.read_bits(buffer_delay_length, "decoder_buffer_delay")
            bits.read_bits(buffer_delay_length, "encoder_buffer_delay")
            bits.read_bits(1, "low_delay_mode_flag")
    if seq.initial_display_delay_present_flag:
        op.initial_display_delay_present = bits.read_bool("initial_display_delay_present_for_op")
        if op.initial_display_delay_present:
            bits.read_bits(4, "initial_display_delay_minus_1")
    return op


def _inter_tools(bits: BitReader, seq: SequenceHeader) -> None:
    seq.enable_interintra_compound = bits.read_bool("enable_interintra_compound")
    seq.enable_masked_compound = bits.read_bool("enable_masked_compound")
    seq.enable_warped_motion = bits.read_bool("enable_warped_motion")
    seq.enable_dual_filter = bits.read_bool("enable_dual_filter")
    seq.enable_order_hint = bits.read_bool("enable_order_hint")
    if seq.enable_order_hint:
        seq.enable_jnt_comp = bits.read_bool("enable_jnt_comp")
        seq.enable_ref_frame_mvs = bits.read_bool("enable_ref_frame_mvs")
    if bits.read_bool("seq_choose_screen_content_tools"):
        seq.seq_force_screen_content_tools = SELECT_SCREEN_CONTENT_TOOLS
    else:
        seq.seq_force_screen_content_tools = bits.read_bits(1, "seq_force_screen_content_tools")
    seq.seq_force_integer_mv = SELECT_INTEGER_MV
    if seq.seq_force_screen_content_tools > 0 and not bits.read_bool("seq_choose_integer_mv"):
        seq.seq_force_integer_mv = bits.read_bits(1, "seq_force_integer_mv")
    if seq.enable_order_hint:
        seq.order_hint_bits = bits.read_bits(3, "order_hint_bits_minus_1") + 1


def _color_config(bits: BitReader, seq: SequenceHeader) -> None:
    high_bitdepth = bits.read_bool("high_bitdepth")
    if seq.seq_profile == 2 and high_bitdepth:
        seq.bit_depth = 12 if bits.read_bool("twelve_bit") else 10
    else:
        seq.bit_depth = 10 if high_bitdepth else 8
    seq.mono_chrome = False if seq.seq_profile == 1 else bits.read_bool("mono_chrome")
    seq.color_description_present_flag = bits.read_bool("color_description_present_flag")
    if seq.color_description_present_flag:
        seq.color_primaries = bits.read_bits(8, "color_primaries")
        seq.transfer_characteristics = bits.read_bits(8, "transfer_characteristics")
        seq.matrix_coefficients = bits.read_bits(8, "matrix_coefficients")
    if seq.mono_chrome:
        seq.color_range = bits.read_bool("color_range")
        seq.subsampling_x = seq.subsampling_y = 1
        return
    if (seq.color_primaries, seq.transfer_characteristics, seq.matrix_coefficients) == \
            (CP_BT_709, TC_SRGB, MC_IDENTITY):
        seq.color_range = True
        seq.subsampling_x = seq.subsampling_y = 0
    else:
        seq.color_range = bits.read_bool("color_range")
        seq.subsampling_x, seq.subsampling_y = _subsampling(bits, seq)
        if seq.subsampling_x and seq.subsampling_y:
            seq.chroma_sample_position = bits.read_bits(2, "chroma_sample_position")
    seq.separate_uv_delta_q = bits.read_bool("separate_uv_delta_q")


def _subsampling(bits: BitReader, seq: SequenceHeader) -> tuple[int, int]:
    if seq.seq_profile == 0:
        return 1, 1
    if seq.seq_profile == 1:
        return 0, 0
    if seq.bit_depth == 12:
        x = bits.read_bits(1, "subsampling_x")
        return x, bits.read_bits(1, "subsampling_y") if x else 0
    return 1, 0


# ====================================================================
# Frame header (spec 5.9)
# ====================================================================

@dataclass
class TileInfo:
    uniform: bool = True
    tile_cols: int = 1
    tile_rows: int = 1
    tile_cols_log2: int = 0
    tile_rows_log2: int = 0
    mi_col_starts: list[int] = field(default_factory=list)
    mi_row_starts: list[int] = field(default_factory=list)
    context_update_tile_id: int = 0
    tile_size_bytes: int = 4
    sb_shift: int = 4

    def widths_in_sbs(self) -> list[int]:
        return [(b - a + (1 << self.sb_shift) - 1) >> self.sb_shift
                for a, b in zip(self.mi_col_starts, self.mi_col_starts[1:])]

    def heights_in_sbs(self) -> list[int]:
        return [(b - a + (1 << self.sb_shift) - 1) >> self.sb_shift
                for a, b in zip(self.mi_row_starts, self.mi_row_starts[1:])]


@dataclass
class Quantization:
    base_q_idx: int = 0
    delta_q_y_dc: int = 0
    diff_uv_delta: bool = False
    delta_q_u_dc: int = 0
    delta_q_u_ac: int = 0
    delta_q_v_dc: int = 0
    delta_q_v_ac: int = 0
    using_qmatrix: bool = False
    qm_y: int = 0
    qm_u: int = 0
    qm_v: int = 0


@dataclass
class Segmentation:
    enabled: bool = False
    update_map: bool = False
    temporal_update: bool = False
    update_data: bool = False
    feature_enabled: list[list[bool]] = field(
        default_factory=lambda: [[False] * SEG_LVL_MAX for _ in range(MAX_SEGMENTS)])
    feature_data: list[list[int]] = field(
        default_factory=lambda: [[0] * SEG_LVL_MAX for _ in range(MAX_SEGMENTS)])
    seg_id_pre_skip: bool = False
    last_active_seg_id: int = 0


@dataclass
class LoopFilter:
    level: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    sharpness: int = 0
    delta_enabled: bool = False
    delta_update: bool = False
    ref_deltas: list[int] = field(default_factory=lambda: list(DEFAULT_LF_REF_DELTAS))
    mode_deltas: list[int] = field(default_factory=lambda: [0, 0])


@dataclass
class Cdef:
    damping_minus_3: int = 0
    bits: int = 0
    y_pri_strength: list[int] = field(default_factory=lambda: [0] * 8)
    y_sec_strength: list[int] = field(default_factory=lambda: [0] * 8)
    uv_pri_strength: list[int] = field(default_factory=lambda: [0] * 8)
    uv_sec_strength: list[int] = field(default_factory=lambda: [0] * 8)


@dataclass
class LoopRestoration:
    frame_restoration_type: list[int] = field(default_factory=lambda: [RESTORE_NONE] * 3)
    uses_lr: bool = False
    uses_chroma_lr: bool = False
    lr_unit_shift: int = 0
    lr_uv_shift: int = 0
    loop_restoration_size: list[int] = field(default_factory=lambda: [0, 0, 0])


@dataclass
class FilmGrain:
    apply_grain: bool = False
    grain_seed: int = 0
    update_grain: bool = False
    film_grain_params_ref_idx: int = 0
    point_y_value: list[int] = field(default_factory=list)
    point_y_scaling: list[int] = field(default_factory=list)
    chroma_scaling_from_luma: bool = False
    point_cb_value: list[int] = field(default_factory=list)
    point_cb_scaling: list[int] = field(default_factory=list)
    point_cr_value: list[int] = field(default_factory=list)
    point_cr_scaling: list[int] = field(default_factory=list)
    grain_scaling_minus_8: int = 0
    ar_coeff_lag: int = 0
    ar_coeffs_y_plus_128: list[int] = field(default_factory=list)
    ar_coeffs_cb_plus_128: list[int] = field(default_factory=list)
    ar_coeffs_cr_plus_128: list[int] = field(default_factory=list)
    ar_coeff_shift_minus_6: int = 0
    grain_scale_shift: int = 0
    cb_mult: int = 0
    cb_luma_mult: int = 0
    cb_offset: int = 0
    cr_mult: int = 0
    cr_luma_mult: int = 0
    cr_offset: int = 0
    overlap_flag: bool = False
    clip_to_restricted_range: bool = False


def copy_rows(rows: list[list]) -> list[list]:
    """A copy of a list of flat lists: what copy.deepcopy gives, for a tenth of its
    cost (the parser saves and loads several of these every frame)."""
    return [list(row) for row in rows]


def copy_film_grain(grain: FilmGrain) -> FilmGrain:
    """load_grain_params(): a copy whose lists are its own."""
    lists = {f.name: list(getattr(grain, f.name)) for f in fields(grain)
             if isinstance(getattr(grain, f.name), list)}
    return replace(grain, **lists)


def _default_gm_params() -> list[list[int]]:
    return [list(DEFAULT_GM_PARAMS) for _ in range(TOTAL_REFS_PER_FRAME)]


@dataclass
class FrameHeader:
    """The fields of one uncompressed_header(), values carried from the
    reference slots already applied.  Arrays indexed by reference frame
    (order_hints, loop filter ref deltas, gm_*) go INTRA_FRAME..ALTREF_FRAME."""
    show_existing_frame: bool = False
    frame_to_show_map_idx: int = 0
    frame_type: int = KEY_FRAME
    show_frame: bool = True
    showable_frame: bool = False
    error_resilient_mode: bool = False
    disable_cdf_update: bool = False
    allow_screen_content_tools: int = 0
    force_integer_mv: int = 0
    current_frame_id: int = 0
    frame_size_override_flag: bool = False
    order_hint: int = 0
    primary_ref_frame: int = PRIMARY_REF_NONE
    buffer_removal_time_present_flag: bool = False
    buffer_removal_time: list[int] = field(default_factory=lambda: [0] * 32)
    refresh_frame_flags: int = 0
    allow_intrabc: bool = False
    frame_refs_short_signaling: bool = False
    ref_frame_idx: list[int] = field(default_factory=lambda: [0] * REFS_PER_FRAME)
    allow_high_precision_mv: bool = False
    interpolation_filter: int = 0
    is_motion_mode_switchable: bool = False
    use_ref_frame_mvs: bool = False
    disable_frame_end_update_cdf: bool = True
    order_hints: list[int] = field(default_factory=lambda: [0] * TOTAL_REFS_PER_FRAME)
    ref_frame_sign_bias: list[int] = field(default_factory=lambda: [0] * TOTAL_REFS_PER_FRAME)
    # frame_size(), superres_params(), render_size()
    frame_width: int = 0
    frame_height: int = 0
    upscaled_width: int = 0
    render_width: int = 0
    render_height: int = 0
    use_superres: bool = False
    superres_denom: int = SUPERRES_NUM
    mi_cols: int = 0
    mi_rows: int = 0
    tile_info: TileInfo = field(default_factory=TileInfo)
    quantization: Quantization = field(default_factory=Quantization)
    segmentation: Segmentation = field(default_factory=Segmentation)
    delta_q_present: bool = False
    delta_q_res: int = 0
    delta_lf_present: bool = False
    delta_lf_res: int = 0
    delta_lf_multi: bool = False
    coded_lossless: bool = False
    all_lossless: bool = False
    loop_filter: LoopFilter = field(default_factory=LoopFilter)
    cdef: Cdef = field(default_factory=Cdef)
    loop_restoration: LoopRestoration = field(default_factory=LoopRestoration)
    tx_mode: int = ONLY_4X4
    reference_select: bool = False
    skip_mode_present: bool = False
    skip_mode_frame: list[int] = field(default_factory=lambda: [0, 0])
    allow_warped_motion: bool = False
    reduced_tx_set: bool = False
    gm_type: list[int] = field(default_factory=lambda: [IDENTITY] * TOTAL_REFS_PER_FRAME)
    gm_params: list[list[int]] = field(default_factory=_default_gm_params)
    film_grain: FilmGrain = field(default_factory=FilmGrain)
    header_bits: int = 0  # bits of uncompressed_header(), before any trailing/alignment bits

    @property
    def frame_is_intra(self) -> bool:
        return self.frame_type in (KEY_FRAME, INTRA_ONLY_FRAME)

    @property
    def is_displayed(self) -> bool:
        return self.show_existing_frame or self.show_frame

    @property
    def num_tiles(self) -> int:
        return self.tile_info.tile_cols * self.tile_info.tile_rows


@dataclass
class RefSlot:
    """What the reference frame update process (spec 7.20) saves in a slot."""
    valid: bool = False
    frame_id: int = 0
    frame_type: int = KEY_FRAME
    upscaled_width: int = 0
    frame_width: int = 0
    frame_height: int = 0
    render_width: int = 0
    render_height: int = 0
    order_hint: int = 0
    saved_order_hints: list[int] = field(default_factory=lambda: [0] * TOTAL_REFS_PER_FRAME)
    gm_params: list[list[int]] = field(default_factory=_default_gm_params)
    lf_ref_deltas: list[int] = field(default_factory=lambda: list(DEFAULT_LF_REF_DELTAS))
    lf_mode_deltas: list[int] = field(default_factory=lambda: [0, 0])
    seg_feature_enabled: list[list[bool]] = field(
        default_factory=lambda: [[False] * SEG_LVL_MAX for _ in range(MAX_SEGMENTS)])
    seg_feature_data: list[list[int]] = field(
        default_factory=lambda: [[0] * SEG_LVL_MAX for _ in range(MAX_SEGMENTS)])
    film_grain: FilmGrain = field(default_factory=FilmGrain)
    showable: bool = False




# ====================================================================
# uncompressed_header() (spec 5.9.2)
# ====================================================================

class FrameHeaderReader:
    """Reads one uncompressed_header() against a sequence header and the
    reference slots; the slots are only read, never changed."""

    def __init__(self, bits: BitReader, seq: SequenceHeader, slots: list[RefSlot],
                 temporal_id: int = 0, spatial_id: int = 0) -> None:
        self.bits, self.seq, self.slots = bits, seq, slots
        self.temporal_id, self.spatial_id = temporal_id, spatial_id
        self.h = FrameHeader()
        self.start = bits.bit_position
        # RefOrderHint as this frame sees it (a shown key frame or
        # ref_order_hint[] in error resilient mode can change it)
        self.ref_order_hint = [slot.order_hint for slot in slots]

    def f(self, n: int, what: str) -> int:
        return self.bits.read_bits(n, what)

    def flag(self, what: str) -> bool:
        return self.bits.read_bool(what)

    def read(self) -> FrameHeader:
        self.uncompressed_header()
        self.h.header_bits = self.bits.bit_position - self.start
        return self.h

    # ---- the top level ----
    def uncompressed_header(self) -> None:
        h, seq = self.h, self.seq
        id_len = 0
        if seq.frame_id_numbers_present_flag:
            id_len = seq.additional_frame_id_length_minus_1 + seq.delta_frame_id_length_minus_2 + 3
        if seq.reduced_still_picture_header:
            h.frame_type, h.show_frame, h.showable_frame = KEY_FRAME, True, False
        else:
            h.show_existing_frame = self.flag("show_existing_frame")
            if h.show_existing_frame:
                self.show_existing_frame(id_len)
                return
            self.frame_type_and_show_flags()
        if h.frame_type == KEY_FRAME and h.show_frame:
            self.ref_order_hint = [0] * NUM_REF_FRAMES
        h.disable_cdf_update = self.flag("disable_cdf_update")
        self.screen_content_and_integer_mv()
        if seq.frame_id_numbers_present_flag:
            h.current_frame_id = self.f(id_len, "current_frame_id")
        if h.frame_type == SWITCH_FRAME:
            h.frame_size_override_flag = True
        elif not seq.reduced_still_picture_header:
            h.frame_size_override_flag = self.flag("frame_size_override_flag")
        h.order_hint = self.f(seq.order_hint_bits, "order_hint")
        if not (h.frame_is_intra or h.error_resilient_mode):
            h.primary_ref_frame = self.f(3, "primary_ref_frame")
        if seq.decoder_model_info_present_flag:
            self.buffer_removal_times()
        self.refresh_and_references()
        if seq.reduced_still_picture_header or h.disable_cdf_update:
            h.disable_frame_end_update_cdf = True
        else:
            h.disable_frame_end_update_cdf = self.flag("disable_frame_end_update_cdf")
        previous = None if h.primary_ref_frame == PRIMARY_REF_NONE else \
            self.slots[h.ref_frame_idx[h.primary_ref_frame]]
        self.load_previous(previous)
        self.tile_info()
        self.quantization_params()
        self.segmentation_params()
        self.delta_q_and_lf_params()
        self.lossless()
        self.loop_filter_params()
        self.cdef_params()
        self.lr_params()
        self.read_tx_mode()
        h.reference_select = False if h.frame_is_intra else self.flag("reference_select")
        self.skip_mode_params()
        if h.frame_is_intra or h.error_resilient_mode or not seq.enable_warped_motion:
            h.allow_warped_motion = False
        else:
            h.allow_warped_motion = self.flag("allow_warped_motion")
        h.reduced_tx_set = self.flag("reduced_tx_set")
        self.global_motion_params(previous)
        self.film_grain_params()

    def show_existing_frame(self, id_len: int) -> None:
        h, seq = self.h, self.seq
        h.frame_to_show_map_idx = self.f(3, "frame_to_show_map_idx")
        if seq.decoder_model_info_present_flag and not seq.equal_picture_interval:
            self.f(seq.frame_presentation_time_length_minus_1 + 1, "frame_presentation_time")
        if seq.frame_id_numbers_present_flag:
            self.f(id_len, "display_frame_id")
        slot = self.slots[h.frame_to_show_map_idx]
        if not slot.valid:
            raise BitstreamError(f"show_existing_frame of empty reference slot "
                                 f"{h.frame_to_show_map_idx}")
        h.frame_type = slot.frame_type
        h.refresh_frame_flags = ALL_FRAMES if h.frame_type == KEY_FRAME else 0
        h.show_frame = True
        h.frame_width, h.frame_height = slot.frame_width, slot.frame_height
        h.upscaled_width = slot.upscaled_width
        h.render_width, h.render_height = slot.render_width, slot.render_height
        h.order_hint = slot.order_hint
        if seq.film_grain_params_present:
            h.film_grain = copy_film_grain(slot.film_grain)  # load_grain_params()

    def frame_type_and_show_flags(self) -> None:
        h, seq = self.h, self.seq
        h.frame_type = self.f(2, "frame_type")
        h.show_frame = self.flag("show_frame")
        if h.show_frame and seq.decoder_model_info_present_flag and not seq.equal_picture_interval:
            self.f(seq.frame_presentation_time_length_minus_1 + 1, "frame_presentation_time")
        if h.show_frame:
            h.showable_frame = h.frame_type != KEY_FRAME
        else:
            h.showable_frame = self.flag("showable_frame")
        if h.frame_type == SWITCH_FRAME or (h.frame_type == KEY_FRAME and h.show_frame):
            h.error_resilient_mode = True
        else:
            h.error_resilient_mode = self.flag("error_resilient_mode")

    def screen_content_and_integer_mv(self) -> None:
        h, seq = self.h, self.seq
        if seq.seq_force_screen_content_tools == SELECT_SCREEN_CONTENT_TOOLS:
            h.allow_screen_content_tools = self.f(1, "allow_screen_content_tools")
        else:
            h.allow_screen_content_tools = seq.seq_force_screen_content_tools
        if h.allow_screen_content_tools:
            if seq.seq_force_integer_mv == SELECT_INTEGER_MV:
                h.force_integer_mv = self.f(1, "force_integer_mv")
            else:
                h.force_integer_mv = seq.seq_force_integer_mv
        if h.frame_is_intra:
            h.force_integer_mv = 1

    def buffer_removal_times(self) -> None:
        h, seq = self.h, self.seq
        h.buffer_removal_time_present_flag = self.flag("buffer_removal_time_present_flag")
        if not h.buffer_removal_time_present_flag:
            return
        for num, op in enumerate(seq.operating_points):
            if not op.decoder_model_present:
                continue
            in_temporal = (op.idc >> self.temporal_id) & 1
            in_spatial = (op.idc >> (self.spatial_id + 8)) & 1
            if op.idc == 0 or (in_temporal and in_spatial):
                h.buffer_removal_time[num] = self.f(seq.buffer_removal_time_length_minus_1 + 1,
                                                    "buffer_removal_time")

    # ---- references and sizes ----
    def refresh_and_references(self) -> None:
        h, seq = self.h, self.seq
        if h.frame_type == SWITCH_FRAME or (h.frame_type == KEY_FRAME and h.show_frame):
            h.refresh_frame_flags = ALL_FRAMES
        else:
            h.refresh_frame_flags = self.f(8, "refresh_frame_flags")
        if (not h.frame_is_intra or h.refresh_frame_flags != ALL_FRAMES) and \
                h.error_resilient_mode and seq.enable_order_hint:
            for i in range(NUM_REF_FRAMES):
                self.ref_order_hint[i] = self.f(seq.order_hint_bits, "ref_order_hint")
        if h.frame_is_intra:
            self.frame_size()
            self.render_size()
            if h.allow_screen_content_tools and h.upscaled_width == h.frame_width:
                h.allow_intrabc = self.flag("allow_intrabc")
        else:
            self.inter_frame_setup()

    def inter_frame_setup(self) -> None:
        h, seq = self.h, self.seq
        if seq.enable_order_hint:
            h.frame_refs_short_signaling = self.flag("frame_refs_short_signaling")
        if h.frame_refs_short_signaling:
            last = self.f(3, "last_frame_idx")
            gold = self.f(3, "gold_frame_idx")
            h.ref_frame_idx = self.set_frame_refs(last, gold)
        for i in range(REFS_PER_FRAME):
            if not h.frame_refs_short_signaling:
                h.ref_frame_idx[i] = self.f(3, "ref_frame_idx")
            if seq.frame_id_numbers_present_flag:
                self.f(seq.delta_frame_id_length_minus_2 + 2, "delta_frame_id_minus_1")
        for idx in h.ref_frame_idx:
            if not self.slots[idx].valid:
                raise BitstreamError(f"inter frame references empty slot {idx}")
        if h.frame_size_override_flag and not h.error_resilient_mode:
            self.frame_size_with_refs()
        else:
            self.frame_size()
            self.render_size()
        h.allow_high_precision_mv = False if h.force_integer_mv else \
            self.flag("allow_high_precision_mv")
        if self.flag("is_filter_switchable"):
            h.interpolation_filter = INTERP_SWITCHABLE
        else:
            h.interpolation_filter = self.f(2, "interpolation_filter")
        h.is_motion_mode_switchable = self.flag("is_motion_mode_switchable")
        if not (h.error_resilient_mode or not seq.enable_ref_frame_mvs):
            h.use_ref_frame_mvs = self.flag("use_ref_frame_mvs")
        for i in range(REFS_PER_FRAME):
            hint = self.ref_order_hint[h.ref_frame_idx[i]]
            h.order_hints[LAST_FRAME + i] = hint
            h.ref_frame_sign_bias[LAST_FRAME + i] = int(self.relative_dist(hint, h.order_hint) > 0)

    def relative_dist(self, a: int, b: int) -> int:
        """get_relative_dist(): signed distance of two order hints."""
        if not self.seq.enable_order_hint:
            return 0
        diff = a - b
        m = 1 << (self.seq.order_hint_bits - 1)
        return (diff & (m - 1)) - (diff & m)

    def set_frame_refs(self, last: int, gold: int) -> list[int]:
        """Spec 7.8: the other five references from LAST and GOLDEN and the order hints."""
        refs = [-1] * REFS_PER_FRAME
        refs[LAST_FRAME - LAST_FRAME], refs[GOLDEN_FRAME - LAST_FRAME] = last, gold
        used = [False] * NUM_REF_FRAMES
        used[last] = used[gold] = True
        cur = 1 << (self.seq.order_hint_bits - 1)
        shifted = [cur + self.relative_dist(self.ref_order_hint[i], self.h.order_hint)
                   for i in range(NUM_REF_FRAMES)]

        def pick(backward: bool, latest: bool) -> int:
            best, best_hint = -1, 0
            for i, hint in enumerate(shifted):
                if used[i] or (hint >= cur) != backward:
                    continue
                if best < 0 or (hint >= best_hint if latest else hint < best_hint):
                    best, best_hint = i, hint
            return best

        for ref_frame, backward, latest in ((ALTREF_FRAME, True, True),
                                            (BWDREF_FRAME, True, False),
                                            (ALTREF2_FRAME, True, False)):
            ref = pick(backward, latest)
            if ref >= 0:
                refs[ref_frame - LAST_FRAME], used[ref] = ref, True
        for ref_frame in REF_FRAME_LIST:
            if refs[ref_frame - LAST_FRAME] < 0:
                ref = pick(False, True)
                if ref >= 0:
                    refs[ref_frame - LAST_FRAME], used[ref] = ref, True
        earliest = min(range(NUM_REF_FRAMES), key=lambda i: (shifted[i], i))
        return [earliest if r < 0 else r for r in refs]

    def frame_size(self) -> None:
        h, seq = self.h, self.seq
        if h.frame_size_override_flag:
            h.frame_width = self.f(seq.frame_width_bits_minus_1 + 1, "frame_width_minus_1") + 1
            h.frame_height = self.f(seq.frame_height_bits_minus_1 + 1, "frame_height_minus_1") + 1
        else:
            h.frame_width = seq.max_frame_width_minus_1 + 1
            h.frame_height = seq.max_frame_height_minus_1 + 1
        self.superres_params()

    def superres_params(self) -> None:
        h = self.h
        h.use_superres = self.flag("use_superres") if self.seq.enable_superres else False
        h.superres_denom = SUPERRES_NUM
        if h.use_superres:
            h.superres_denom = self.f(SUPERRES_DENOM_BITS, "coded_denom") + SUPERRES_DENOM_MIN
        h.upscaled_width = h.frame_width
        denom = h.superres_denom
        h.frame_width = (h.upscaled_width * SUPERRES_NUM + denom // 2) // denom
        h.mi_cols = 2 * ((h.frame_width + 7) >> 3)   # compute_image_size()
        h.mi_rows = 2 * ((h.frame_height + 7) >> 3)

    def render_size(self) -> None:
        h = self.h
        if self.flag("render_and_frame_size_different"):
            h.render_width = self.f(16, "render_width_minus_1") + 1
            h.render_height = self.f(16, "render_height_minus_1") + 1
        else:
            h.render_width, h.render_height = h.upscaled_width, h.frame_height

    def frame_size_with_refs(self) -> None:
        h = self.h
        for i in range(REFS_PER_FRAME):
            if self.flag("found_ref"):
                slot = self.slots[h.ref_frame_idx[i]]
                h.upscaled_width = h.frame_width = slot.upscaled_width
                h.frame_height = slot.frame_height
                h.render_width, h.render_height = slot.render_width, slot.render_height
                self.superres_params()
                return
        self.frame_size()
        self.render_size()

    # ---- what primary_ref_frame brings (load_previous / setup_past_independence) ----
    def load_previous(self, previous: RefSlot | None) -> None:
        h = self.h
        if previous is None:  # setup_past_independence()
            return            # the dataclass defaults are exactly its values
        h.loop_filter.ref_deltas = list(previous.lf_ref_deltas)
        h.loop_filter.mode_deltas = list(previous.lf_mode_deltas)
        h.segmentation.feature_enabled = copy_rows(previous.seg_feature_enabled)
        h.segmentation.feature_data = copy_rows(previous.seg_feature_data)

    # ---- tile_info() (spec 5.9.15) ----
    def tile_info(self) -> None:
        h, info = self.h, self.h.tile_info
        sb128 = self.seq.use_128x128_superblock
        info.sb_shift = 5 if sb128 else 4
        sb_cols = (h.mi_cols + 31) >> 5 if sb128 else (h.mi_cols + 15) >> 4
        sb_rows = (h.mi_rows + 31) >> 5 if sb128 else (h.mi_rows + 15) >> 4
        sb_size = info.sb_shift + 2
        max_tile_width_sb = MAX_TILE_WIDTH >> sb_size
        max_tile_area_sb = MAX_TILE_AREA >> (2 * sb_size)
        min_log2_tile_cols = tile_log2(max_tile_width_sb, sb_cols)
        max_log2_tile_cols = tile_log2(1, min(sb_cols, MAX_TILE_COLS))
        max_log2_tile_rows = tile_log2(1, min(sb_rows, MAX_TILE_ROWS))
        min_log2_tiles = max(min_log2_tile_cols, tile_log2(max_tile_area_sb, sb_rows * sb_cols))
        info.uniform = self.flag("uniform_tile_spacing_flag")
        if info.uniform:
            info.tile_cols_log2 = self.increments(min_log2_tile_cols, max_log2_tile_cols,
                                                  "increment_tile_cols_log2")
            info.mi_col_starts = self.uniform_starts(sb_cols, info.tile_cols_log2, h.mi_cols)
            min_log2_tile_rows = max(min_log2_tiles - info.tile_cols_log2, 0)
            info.tile_rows_log2 = self.increments(min_log2_tile_rows, max_log2_tile_rows,
                                                  "increment_tile_rows_log2")
            info.mi_row_starts = self.uniform_starts(sb_rows, info.tile_rows_log2, h.mi_rows)
        else:
            info.mi_col_starts, widest = self.explicit_starts(sb_cols, max_tile_width_sb, h.mi_cols,
                                                              "width_in_sbs_minus_1")
            if min_log2_tiles > 0:
                max_tile_area_sb = (sb_rows * sb_cols) >> (min_log2_tiles + 1)
            else:
                max_tile_area_sb = sb_rows * sb_cols
            max_tile_height_sb = max(max_tile_area_sb // widest, 1)
            info.mi_row_starts, _ = self.explicit_starts(sb_rows, max_tile_height_sb, h.mi_rows,
                                                         "height_in_sbs_minus_1")
            info.tile_cols_log2 = tile_log2(1, len(info.mi_col_starts) - 1)
            info.tile_rows_log2 = tile_log2(1, len(info.mi_row_starts) - 1)
        info.tile_cols = len(info.mi_col_starts) - 1
        info.tile_rows = len(info.mi_row_starts) - 1
        if info.tile_cols > MAX_TILE_COLS or info.tile_rows > MAX_TILE_ROWS:
            raise BitstreamError(f"{info.tile_cols}x{info.tile_rows} tiles is more than 64x64")
        if info.tile_cols_log2 > 0 or info.tile_rows_log2 > 0:
            info.context_update_tile_id = self.f(info.tile_rows_log2 + info.tile_cols_log2,
                                                 "context_update_tile_id")
            info.tile_size_bytes = self.f(2, "tile_size_bytes_minus_1") + 1
            if info.context_update_tile_id >= info.tile_cols * info.tile_rows:
                raise BitstreamError(f"context_update_tile_id {info.context_update_tile_id} "
                                     f"past the {info.tile_cols * info.tile_rows} tiles")

    def increments(self, value: int, limit: int, what: str) -> int:
        while value < limit and self.flag(what):
            value += 1
        return value

    def uniform_starts(self, sbs: int, log2: int, mis: int) -> list[int]:
        size_sb = (sbs + (1 << log2) - 1) >> log2
        shift = self.h.tile_info.sb_shift
        return [start << shift for start in range(0, sbs, size_sb)] + [mis]

    def explicit_starts(self, sbs: int, max_size: int, mis: int,
                        what: str) -> tuple[list[int], int]:
        starts, start, widest = [], 0, 0
        shift = self.h.tile_info.sb_shift
        while start < sbs:
            starts.append(start << shift)
            size = read_ns(self.bits, min(sbs - start, max_size), what) + 1
            widest = max(widest, size)
            start += size
        return starts + [mis], widest

    # ---- quantization, segmentation, deltas (spec 5.9.12-5.9.18) ----
    def quantization_params(self) -> None:
        q, seq = self.h.quantization, self.seq
        q.base_q_idx = self.f(8, "base_q_idx")
        q.delta_q_y_dc = self.read_delta_q("delta_q_y_dc")
        if seq.num_planes > 1:
            q.diff_uv_delta = self.flag("diff_uv_delta") if seq.separate_uv_delta_q else False
            q.delta_q_u_dc = self.read_delta_q("delta_q_u_dc")
            q.delta_q_u_ac = self.read_delta_q("delta_q_u_ac")
            if q.diff_uv_delta:
                q.delta_q_v_dc = self.read_delta_q("delta_q_v_dc")
                q.delta_q_v_ac = self.read_delta_q("delta_q_v_ac")
            else:
                q.delta_q_v_dc, q.delta_q_v_ac = q.delta_q_u_dc, q.delta_q_u_ac
        q.using_qmatrix = self.flag("using_qmatrix")
        if q.using_qmatrix:
            q.qm_y = self.f(4, "qm_y")
            q.qm_u = self.f(4, "qm_u")
            q.qm_v = self.f(4, "qm_v") if seq.separate_uv_delta_q else q.qm_u

    def read_delta_q(self, what: str) -> int:
        return read_su(self.bits, 7, what) if self.flag(what) else 0

    def segmentation_params(self) -> None:
        h, seg = self.h, self.h.segmentation
        seg.enabled = self.flag("segmentation_enabled")
        if seg.enabled:
            if h.primary_ref_frame == PRIMARY_REF_NONE:
                seg.update_map, seg.temporal_update, seg.update_data = True, False, True
            else:
                seg.update_map = self.flag("segmentation_update_map")
                if seg.update_map:
                    seg.temporal_update = self.flag("segmentation_temporal_update")
                seg.update_data = self.flag("segmentation_update_data")
            if seg.update_data:
                self.segmentation_features()
        else:
            seg.feature_enabled = [[False] * SEG_LVL_MAX for _ in range(MAX_SEGMENTS)]
            seg.feature_data = [[0] * SEG_LVL_MAX for _ in range(MAX_SEGMENTS)]
        seg.seg_id_pre_skip, seg.last_active_seg_id = False, 0
        for i in range(MAX_SEGMENTS):
            for j in range(SEG_LVL_MAX):
                if seg.feature_enabled[i][j]:
                    seg.last_active_seg_id = i
                    seg.seg_id_pre_skip |= j >= SEG_LVL_REF_FRAME

    def segmentation_features(self) -> None:
        seg = self.h.segmentation
        for i in range(MAX_SEGMENTS):
            for j in range(SEG_LVL_MAX):
                enabled = self.flag("feature_enabled")
                value = 0
                if enabled:
                    bits, limit = SEGMENTATION_FEATURE_BITS[j], SEGMENTATION_FEATURE_MAX[j]
                    if SEGMENTATION_FEATURE_SIGNED[j]:
                        value = read_su(self.bits, 1 + bits, "feature_value")
                        value = max(-limit, min(limit, value))
                    else:
                        value = max(0, min(limit, self.f(bits, "feature_value")))
                seg.feature_enabled[i][j] = enabled
                seg.feature_data[i][j] = value

    def delta_q_and_lf_params(self) -> None:
        h = self.h
        if h.quantization.base_q_idx > 0:
            h.delta_q_present = self.flag("delta_q_present")
        if h.delta_q_present:
            h.delta_q_res = self.f(2, "delta_q_res")
            if not h.allow_intrabc:
                h.delta_lf_present = self.flag("delta_lf_present")
            if h.delta_lf_present:
                h.delta_lf_res = self.f(2, "delta_lf_res")
                h.delta_lf_multi = self.flag("delta_lf_multi")

    def lossless(self) -> None:
        """CodedLossless and AllLossless (spec 5.9.2, after delta_lf_params)."""
        h, q = self.h, self.h.quantization
        deltas_zero = not (q.delta_q_y_dc or q.delta_q_u_ac or q.delta_q_u_dc
                           or q.delta_q_v_ac or q.delta_q_v_dc)
        h.coded_lossless = deltas_zero and all(
            self.qindex(segment) == 0 for segment in range(MAX_SEGMENTS))
        h.all_lossless = h.coded_lossless and h.frame_width == h.upscaled_width

    def qindex(self, segment: int) -> int:
        """get_qindex(1, segment): the segment's quantizer, ignoring block deltas."""
        seg, base = self.h.segmentation, self.h.quantization.base_q_idx
        if seg.enabled and seg.feature_enabled[segment][0]:
            return max(0, min(255, base + seg.feature_data[segment][0]))
        return base

    # ---- loop filter, CDEF, loop restoration, tx mode (spec 5.9.11, 5.9.19-21) ----
    def loop_filter_params(self) -> None:
        h, lf = self.h, self.h.loop_filter
        if h.coded_lossless or h.allow_intrabc:
            lf.ref_deltas, lf.mode_deltas = list(DEFAULT_LF_REF_DELTAS), [0, 0]
            return
        lf.level[0] = self.f(6, "loop_filter_level[0]")
        lf.level[1] = self.f(6, "loop_filter_level[1]")
        if self.seq.num_planes > 1 and (lf.level[0] or lf.level[1]):
            lf.level[2] = self.f(6, "loop_filter_level[2]")
            lf.level[3] = self.f(6, "loop_filter_level[3]")
        lf.sharpness = self.f(3, "loop_filter_sharpness")
        lf.delta_enabled = self.flag("loop_filter_delta_enabled")
        if lf.delta_enabled:
            lf.delta_update = self.flag("loop_filter_delta_update")
            if lf.delta_update:
                for deltas in (lf.ref_deltas, lf.mode_deltas):
                    for i in range(len(deltas)):
                        if self.flag("update_delta"):
                            deltas[i] = read_su(self.bits, 7, "loop_filter_delta")

    def cdef_params(self) -> None:
        h, cdef = self.h, self.h.cdef
        if h.coded_lossless or h.allow_intrabc or not self.seq.enable_cdef:
            return  # cdef_bits 0, strengths 0, CdefDamping 3: the defaults
        cdef.damping_minus_3 = self.f(2, "cdef_damping_minus_3")
        cdef.bits = self.f(2, "cdef_bits")
        for i in range(1 << cdef.bits):
            cdef.y_pri_strength[i] = self.f(4, "cdef_y_pri_strength")
            cdef.y_sec_strength[i] = self.sec_strength()
            if self.seq.num_planes > 1:
                cdef.uv_pri_strength[i] = self.f(4, "cdef_uv_pri_strength")
                cdef.uv_sec_strength[i] = self.sec_strength()

    def sec_strength(self) -> int:
        value = self.f(2, "cdef_sec_strength")
        return 4 if value == 3 else value

    def lr_params(self) -> None:
        h, lr, seq = self.h, self.h.loop_restoration, self.seq
        if h.all_lossless or h.allow_intrabc or not seq.enable_restoration:
            return
        for i in range(seq.num_planes):
            lr.frame_restoration_type[i] = REMAP_LR_TYPE[self.f(2, "lr_type")]
            if lr.frame_restoration_type[i] != RESTORE_NONE:
                lr.uses_lr = True
                lr.uses_chroma_lr |= i > 0
        if not lr.uses_lr:
            return
        lr.lr_unit_shift = self.f(1, "lr_unit_shift")
        if seq.use_128x128_superblock:
            lr.lr_unit_shift += 1
        elif lr.lr_unit_shift:
            lr.lr_unit_shift += self.f(1, "lr_unit_extra_shift")
        luma_size = RESTORATION_TILESIZE_MAX >> (2 - lr.lr_unit_shift)
        if seq.subsampling_x and seq.subsampling_y and lr.uses_chroma_lr:
            lr.lr_uv_shift = self.f(1, "lr_uv_shift")
        lr.loop_restoration_size = [luma_size, luma_size >> lr.lr_uv_shift,
                                    luma_size >> lr.lr_uv_shift]

    def read_tx_mode(self) -> None:
        h = self.h
        if h.coded_lossless:
            h.tx_mode = ONLY_4X4
        else:
            h.tx_mode = TX_MODE_SELECT if self.flag("tx_mode_select") else TX_MODE_LARGEST

    def skip_mode_params(self) -> None:
        h = self.h
        h.skip_mode_frame = [0, 0]
        if h.frame_is_intra or not h.reference_select or not self.seq.enable_order_hint:
            return
        hints = [self.ref_order_hint[idx] for idx in h.ref_frame_idx]
        forward = self.nearest(hints, lambda d: d < 0, latest=True, anchor=h.order_hint)
        backward = self.nearest(hints, lambda d: d > 0, latest=False, anchor=h.order_hint)
        if forward < 0:
            return
        if backward >= 0:
            pair = (forward, backward)
        else:
            second = self.nearest(hints, lambda d: d < 0, latest=True, anchor=hints[forward])
            if second < 0:
                return
            pair = (forward, second)
        h.skip_mode_frame = [LAST_FRAME + min(pair), LAST_FRAME + max(pair)]
        h.skip_mode_present = self.flag("skip_mode_present")

    def nearest(self, hints: list[int], side, latest: bool, anchor: int) -> int:
        """skip_mode_params' searches: the reference on ``side`` of ``anchor``
        closest to it (the latest forward or the earliest backward one)."""
        best = -1
        for i, hint in enumerate(hints):
            if not side(self.relative_dist(hint, anchor)):
                continue
            if best < 0:
                best = i
                continue
            dist = self.relative_dist(hint, hints[best])
            if (latest and dist > 0) or (not latest and dist < 0):
                best = i
        return best

    # ---- global motion (spec 5.9.24, 5.9.25, 5.9.26-28) ----
    def global_motion_params(self, previous: RefSlot | None) -> None:
        h = self.h
        if h.frame_is_intra:
            return
        prev = previous.gm_params if previous is not None else _default_gm_params()
        for ref in range(LAST_FRAME, ALTREF_FRAME + 1):
            gm_type = IDENTITY
            if self.flag("is_global"):
                if self.flag("is_rot_zoom"):
                    gm_type = ROTZOOM
                else:
                    gm_type = TRANSLATION if self.flag("is_translation") else AFFINE
            h.gm_type[ref] = gm_type
            params = h.gm_params[ref]
            if gm_type >= ROTZOOM:
                params[2] = self.global_param(gm_type, 2, prev[ref][2])
                params[3] = self.global_param(gm_type, 3, prev[ref][3])
                if gm_type == AFFINE:
                    params[4] = self.global_param(gm_type, 4, prev[ref][4])
                    params[5] = self.global_param(gm_type, 5, prev[ref][5])
                else:
                    params[4], params[5] = -params[3], params[2]
            if gm_type >= TRANSLATION:
                params[0] = self.global_param(gm_type, 0, prev[ref][0])
                params[1] = self.global_param(gm_type, 1, prev[ref][1])

    def global_param(self, gm_type: int, idx: int, previous: int) -> int:
        abs_bits, prec_bits = GM_ABS_ALPHA_BITS, GM_ALPHA_PREC_BITS
        if idx < 2:
            if gm_type == TRANSLATION:
                hp = 0 if self.h.allow_high_precision_mv else 1
                abs_bits, prec_bits = GM_ABS_TRANS_ONLY_BITS - hp, GM_TRANS_ONLY_PREC_BITS - hp
            else:
                abs_bits, prec_bits = GM_ABS_TRANS_BITS, GM_TRANS_PREC_BITS
        prec_diff = WARPEDMODEL_PREC_BITS - prec_bits
        round_ = (1 << WARPEDMODEL_PREC_BITS) if idx % 3 == 2 else 0
        sub = (1 << prec_bits) if idx % 3 == 2 else 0
        mx = 1 << abs_bits
        r = (previous >> prec_diff) - sub
        return (self.signed_subexp_with_ref(-mx, mx + 1, r) << prec_diff) + round_

    def signed_subexp_with_ref(self, low: int, high: int, r: int) -> int:
        return self.unsigned_subexp_with_ref(high - low, r - low) + low

    def unsigned_subexp_with_ref(self, mx: int, r: int) -> int:
        v = self.subexp(mx)
        if (r << 1) <= mx:
            return inverse_recenter(r, v)
        return mx - 1 - inverse_recenter(mx - 1 - r, v)

    def subexp(self, num_syms: int) -> int:
        i, mk, k = 0, 0, 3
        while True:
            b2 = k + i - 1 if i else k
            a = 1 << b2
            if num_syms <= mk + 3 * a:
                return read_ns(self.bits, num_syms - mk, "subexp_final_bits") + mk
            if not self.flag("subexp_more_bits"):
                return self.f(b2, "subexp_bits") + mk
            i += 1
            mk += a

    # ---- film_grain_params() (spec 5.9.30) ----
    def film_grain_params(self) -> None:
        h, seq = self.h, self.seq
        if not seq.film_grain_params_present or (not h.show_frame and not h.showable_frame):
            return  # reset_grain_params(): the defaults
        fg = h.film_grain
        fg.apply_grain = self.flag("apply_grain")
        if not fg.apply_grain:
            return
        fg.grain_seed = self.f(16, "grain_seed")
        fg.update_grain = self.flag("update_grain") if h.frame_type == INTER_FRAME else True
        if not fg.update_grain:
            fg.film_grain_params_ref_idx = self.f(3, "film_grain_params_ref_idx")
            seed, ref_idx = fg.grain_seed, fg.film_grain_params_ref_idx
            h.film_grain = fg = copy_film_grain(self.slots[ref_idx].film_grain)  # load_grain_params
            fg.grain_seed, fg.film_grain_params_ref_idx, fg.update_grain = seed, ref_idx, False
            return
        self.film_grain_points(fg)
        self.film_grain_ar_coeffs(fg)
        if fg.point_cb_value:
            fg.cb_mult, fg.cb_luma_mult = self.f(8, "cb_mult"), self.f(8, "cb_luma_mult")
            fg.cb_offset = self.f(9, "cb_offset")
        if fg.point_cr_value:
            fg.cr_mult, fg.cr_luma_mult = self.f(8, "cr_mult"), self.f(8, "cr_luma_mult")
            fg.cr_offset = self.f(9, "cr_offset")
        fg.overlap_flag = self.flag("overlap_flag")
        fg.clip_to_restricted_range = self.flag("clip_to_restricted_range")

    def film_grain_points(self, fg: FilmGrain) -> None:
        seq = self.seq
        fg.point_y_value, fg.point_y_scaling = self.points(14, "num_y_points")
        fg.chroma_scaling_from_luma = False if seq.mono_chrome else \
            self.flag("chroma_scaling_from_luma")
        if seq.mono_chrome or fg.chroma_scaling_from_luma or \
                (seq.subsampling_x == 1 and seq.subsampling_y == 1 and not fg.point_y_value):
            return
        fg.point_cb_value, fg.point_cb_scaling = self.points(10, "num_cb_points")
        fg.point_cr_value, fg.point_cr_scaling = self.points(10, "num_cr_points")

    def points(self, most: int, what: str) -> tuple[list[int], list[int]]:
        count = self.f(4, what)
        if count > most:
            raise BitstreamError(f"{what} {count} is more than {most}")
        values, scalings = [], []
        for _ in range(count):
            values.append(self.f(8, "point_value"))
            scalings.append(self.f(8, "point_scaling"))
        return values, scalings

    def film_grain_ar_coeffs(self, fg: FilmGrain) -> None:
        fg.grain_scaling_minus_8 = self.f(2, "grain_scaling_minus_8")
        fg.ar_coeff_lag = self.f(2, "ar_coeff_lag")
        num_pos_luma = 2 * fg.ar_coeff_lag * (fg.ar_coeff_lag + 1)
        num_pos_chroma = num_pos_luma
        if fg.point_y_value:
            num_pos_chroma = num_pos_luma + 1
            fg.ar_coeffs_y_plus_128 = [self.f(8, "ar_coeffs_y") for _ in range(num_pos_luma)]
        if fg.chroma_scaling_from_luma or fg.point_cb_value:
            fg.ar_coeffs_cb_plus_128 = [self.f(8, "ar_coeffs_cb") for _ in range(num_pos_chroma)]
        if fg.chroma_scaling_from_luma or fg.point_cr_value:
            fg.ar_coeffs_cr_plus_128 = [self.f(8, "ar_coeffs_cr") for _ in range(num_pos_chroma)]
        fg.ar_coeff_shift_minus_6 = self.f(2, "ar_coeff_shift_minus_6")
        fg.grain_scale_shift = self.f(2, "grain_scale_shift")


def inverse_recenter(r: int, v: int) -> int:
    if v > 2 * r:
        return v
    if v & 1:
        return r - ((v + 1) >> 1)
    return r + (v >> 1)
