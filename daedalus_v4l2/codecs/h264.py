"""H.264 syntax for a V4L2 stateless client: NAL units, SPS, PPS and slice headers.

A stateless H.264 client reads the parameter sets and every slice header
itself (the device gets them as control structs) and sends only slice data.
This module is the reading half, after the H.264 spec (ITU-T H.264, 08/2021):

* :func:`split_annexb` / :func:`split_avcc` cut a byte stream into NAL units
  (Annex B start codes, or the length prefixes of MP4/MKV "AVCC" samples);
  :func:`parse_avcc_extradata` reads the avcC box those containers carry.
* :func:`unescape` removes emulation prevention bytes (7.4.1: 0x000003),
  remembering where, so bit positions can be mapped back to the NAL unit.
* :func:`parse_sps`, :func:`parse_pps` and :func:`parse_slice_header` follow
  7.3.2.1.1, 7.3.2.2 and 7.3.3 syntax function by syntax function.

Scaling lists are kept in raster order (what V4L2 wants, "after the inverse
scanning process") with the fall-back rules of Table 7-2 already applied.

Every malformed input raises :class:`~daedalus_v4l2.errors.BitstreamError`.
Interlaced (field) pictures parse, but the client refuses them later.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from daedalus_v4l2.codecs.bitreader import BitReader
from daedalus_v4l2.errors import BitstreamError

# ---- NAL unit types (Table 7-1) ----
NAL_SLICE = 1
NAL_SLICE_DPA = 2
NAL_IDR_SLICE = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9
NAL_END_SEQUENCE = 10
NAL_END_STREAM = 11
NAL_FILLER = 12
NAL_SPS_EXT = 13
NAL_PREFIX = 14
NAL_SUBSET_SPS = 15
NAL_SLICE_EXT = 20
VCL_NAL_TYPES = (NAL_SLICE, NAL_IDR_SLICE)

# ---- slice_type % 5 (Table 7-6) ----
SLICE_P, SLICE_B, SLICE_I, SLICE_SP, SLICE_SI = range(5)

# Profiles whose SPS carries chroma_format_idc and friends (7.3.2.1.1).
HIGH_PROFILES = frozenset((100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135))
MAX_SPS_COUNT = 32
MAX_PPS_COUNT = 256


# ====================================================================
# NAL units and RBSP
# ====================================================================

def split_annexb(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream, start codes removed.

    Start codes are 0x000001, optionally after more zero bytes (B.2); the
    trailing zero bytes before the next start code belong to no NAL unit.
    """
    data = bytes(data)
    starts = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i + 3)
        i = data.find(b"\x00\x00\x01", i + 3)
    nals = []
    for n, start in enumerate(starts):
        end = starts[n + 1] - 3 if n + 1 < len(starts) else len(data)
        nal = data[start:end].rstrip(b"\x00") if n + 1 < len(starts) else data[start:end]
        if nal:
            nals.append(nal)
    return nals


def split_avcc(data: bytes, length_size: int = 4) -> list[bytes]:
    """The NAL units of an AVCC sample: each prefixed by its big-endian length."""
    if length_size not in (1, 2, 4):
        raise BitstreamError(f"AVCC length prefixes of {length_size} bytes (1, 2 or 4 allowed)")
    data = bytes(data)
    nals, pos = [], 0
    while pos < len(data):
        if pos + length_size > len(data):
            raise BitstreamError(f"AVCC sample: truncated length prefix at byte {pos}")
        size = int.from_bytes(data[pos:pos + length_size], "big")
        pos += length_size
        if size == 0 or pos + size > len(data):
            raise BitstreamError(f"AVCC sample: NAL unit of {size} bytes at byte {pos} "
                                 f"does not fit the {len(data)}-byte sample")
        nals.append(data[pos:pos + size])
        pos += size
    return nals


@dataclass
class AvcConfig:
    """An AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1): the avcC box."""
    length_size: int
    sps: list[bytes]
    pps: list[bytes]


def parse_avcc_extradata(extradata: bytes) -> AvcConfig:
    data = bytes(extradata)
    if len(data) < 7 or data[0] != 1:
        raise BitstreamError("avcC: not an AVCDecoderConfigurationRecord (version 1)")
    length_size = (data[4] & 3) + 1
    pos, lists = 5, []
    for count_mask in (0x1F, 0xFF):  # numOfSequenceParameterSets is 5 bits, PPS count 8
        if pos >= len(data):
            raise BitstreamError("avcC: truncated")
        count, pos = data[pos] & count_mask, pos + 1
        units = []
        for _ in range(count):
            if pos + 2 > len(data):
                raise BitstreamError("avcC: truncated parameter set length")
            size = int.from_bytes(data[pos:pos + 2], "big")
            if pos + 2 + size > len(data):
                raise BitstreamError("avcC: parameter set runs past the record")
            units.append(data[pos + 2:pos + 2 + size])
            pos += 2 + size
        lists.append(units)
    return AvcConfig(length_size, lists[0], lists[1])


def annexb(nals) -> bytes:
    """NAL units joined into an Annex B byte stream (4-byte start codes)."""
    return b"".join(b"\x00\x00\x00\x01" + bytes(nal) for nal in nals)


@dataclass(frozen=True)
class NalHeader:
    nal_ref_idc: int
    nal_unit_type: int


def nal_header(nal: bytes) -> NalHeader:
    if not nal:
        raise BitstreamError("empty NAL unit")
    if nal[0] & 0x80:
        raise BitstreamError("NAL unit with forbidden_zero_bit set")
    return NalHeader((nal[0] >> 5) & 3, nal[0] & 0x1F)


@dataclass
class Rbsp:
    """A NAL unit's payload with emulation prevention removed.

    ``escapes`` lists the RBSP byte offsets in front of which a 0x03 byte
    was dropped, so an RBSP bit position maps back to the NAL unit."""
    data: bytes
    escapes: list[int]

    def nal_bit_position(self, rbsp_bits: int, header_bytes: int = 1) -> int:
        dropped = sum(1 for at in self.escapes if at * 8 < rbsp_bits)
        return rbsp_bits + 8 * (dropped + header_bytes)


def unescape(payload: bytes) -> Rbsp:
    """7.4.1: every 0x000003 in the NAL unit payload loses its 0x03.  The search
    and the copies are bytes methods (C), not a loop over every byte in Python:
    the client unescapes every slice NAL it reads a header from (a 1080p key
    slice is hundreds of KB)."""
    payload = bytes(payload)
    at = payload.find(b"\x00\x00\x03")
    if at < 0:
        return Rbsp(payload, [])
    out, escapes, start = bytearray(), [], 0
    while at >= 0:
        out += payload[start:at + 2]
        escapes.append(len(out))
        # the zeros before a dropped 0x03 do not count towards the next one
        start = at + 3
        at = payload.find(b"\x00\x00\x03", start)
    out += payload[start:]
    return Rbsp(bytes(out), escapes)


def more_rbsp_data(bits: BitReader, rbsp: bytes) -> bool:
    """7.2 more_rbsp_data(): is there anything before the rbsp_stop_one_bit?"""
    stripped = rbsp.rstrip(b"\x00")
    if not stripped:
        return False
    last = stripped[-1]
    stop_bit = (len(stripped) - 1) * 8 + 7 - ((last & -last).bit_length() - 1)
    return bits.bit_position < stop_bit


# ====================================================================
# Scaling lists (7.3.2.1.1.1, Table 7-2, 8.5.6)
# ====================================================================

def _zigzag(n: int) -> tuple[int, ...]:
    """Raster positions of the frame zig-zag scan of an n x n block (8.5.6, Figure 8-8)."""
    order = sorted(((r, c) for r in range(n) for c in range(n)),
                   key=lambda rc: (rc[0] + rc[1], rc[0] if (rc[0] + rc[1]) % 2 else rc[1]))
    return tuple(r * n + c for r, c in order)


ZIGZAG_4X4 = _zigzag(4)
ZIGZAG_8X8 = _zigzag(8)

# Table 7-3 and 7-4, in zig-zag order (idx).
_DEFAULT_4X4_INTRA = (6, 13, 13, 20, 20, 20, 28, 28, 28, 28, 32, 32, 32, 37, 37, 42)
_DEFAULT_4X4_INTER = (10, 14, 14, 20, 20, 20, 24, 24, 24, 24, 27, 27, 27, 30, 30, 34)
_DEFAULT_8X8_INTRA = (
    6, 10, 10, 13, 11, 13, 16, 16, 16, 16, 18, 18, 18, 18, 18, 23, 23, 23, 23, 23, 23, 25, 25, 25,
    25, 25, 25, 25, 27, 27, 27, 27, 27, 27, 27, 27, 29, 29, 29, 29, 29, 29, 29, 31, 31, 31, 31, 31,
    31, 33, 33, 33, 33, 33, 36, 36, 36, 36, 38, 38, 38, 40, 40, 42)
_DEFAULT_8X8_INTER = (
    9, 13, 13, 15, 13, 15, 17, 17, 17, 17, 19, 19, 19, 19, 19, 21, 21, 21, 21, 21, 21, 22, 22, 22,
    22, 22, 22, 22, 24, 24, 24, 24, 24, 24, 24, 24, 25, 25, 25, 25, 25, 25, 25, 27, 27, 27, 27, 27,
    27, 28, 28, 28, 28, 28, 30, 30, 30, 30, 32, 32, 32, 33, 33, 35)


def to_raster(zigzag_values, scan) -> tuple[int, ...]:
    raster = [0] * len(scan)
    for idx, value in enumerate(zigzag_values):
        raster[scan[idx]] = value
    return tuple(raster)


def to_zigzag(raster_values, scan) -> tuple[int, ...]:
    return tuple(raster_values[pos] for pos in scan)


DEFAULT_4X4_INTRA = to_raster(_DEFAULT_4X4_INTRA, ZIGZAG_4X4)
DEFAULT_4X4_INTER = to_raster(_DEFAULT_4X4_INTER, ZIGZAG_4X4)
DEFAULT_8X8_INTRA = to_raster(_DEFAULT_8X8_INTRA, ZIGZAG_8X8)
DEFAULT_8X8_INTER = to_raster(_DEFAULT_8X8_INTER, ZIGZAG_8X8)
FLAT_4X4 = (16,) * 16
FLAT_8X8 = (16,) * 64


@dataclass(frozen=True)
class ScalingMatrix:
    """Six 4x4 and six 8x8 lists in raster order; list order as V4L2's
    (4x4: Intra Y, Cb, Cr, Inter Y, Cb, Cr; 8x8: Intra Y, Inter Y, Intra Cb,
    Inter Cb, Intra Cr, Inter Cr), which is also the syntax order."""
    lists_4x4: tuple[tuple[int, ...], ...] = (FLAT_4X4,) * 6
    lists_8x8: tuple[tuple[int, ...], ...] = (FLAT_8X8,) * 6


FLAT = ScalingMatrix()


def _read_scaling_list(bits: BitReader, size: int) -> tuple[int, ...] | None:
    """One scaling_list(); None means useDefaultScalingMatrixFlag."""
    scan = ZIGZAG_4X4 if size == 16 else ZIGZAG_8X8
    last, next_, values = 8, 8, []
    for j in range(size):
        if next_ != 0:
            delta = bits.read_se("delta_scale")
            if not -128 <= delta <= 127:
                raise BitstreamError(f"delta_scale {delta} outside -128..127")
            next_ = (last + delta + 256) % 256
            if j == 0 and next_ == 0:
                return None
        values.append(last if next_ == 0 else next_)
        last = values[-1]
    return to_raster(values, scan)


def _read_scaling_matrix(bits: BitReader, count: int, fallback: ScalingMatrix) -> ScalingMatrix:
    """``count`` (flag, list) pairs with the fall-back rule whose base lists
    (for lists 0, 3, 6 and 7) are ``fallback``'s: the defaults for an SPS
    (rule A), the SPS's lists for a PPS (rule B)."""
    defaults = (DEFAULT_4X4_INTRA, DEFAULT_4X4_INTER, DEFAULT_8X8_INTRA, DEFAULT_8X8_INTER)
    l4, l8 = list(fallback.lists_4x4), list(fallback.lists_8x8)
    for i in range(count):
        present = bits.read_bool("scaling_list_present_flag")
        if i < 6:
            default = defaults[0] if i < 3 else defaults[1]
            if present:
                values = _read_scaling_list(bits, 16)
                l4[i] = default if values is None else values
            elif i not in (0, 3):
                l4[i] = l4[i - 1]
        else:
            k = i - 6
            default = defaults[2] if k % 2 == 0 else defaults[3]
            if present:
                values = _read_scaling_list(bits, 64)
                l8[k] = default if values is None else values
            elif k >= 2:
                l8[k] = l8[k - 2]
    return ScalingMatrix(tuple(l4), tuple(l8))


# Rule A's base: what list 0, 3, 6 and 7 fall back to when absent from an SPS.
DEFAULT_FALLBACK = ScalingMatrix(
    (DEFAULT_4X4_INTRA,) * 3 + (DEFAULT_4X4_INTER,) * 3,
    (DEFAULT_8X8_INTRA, DEFAULT_8X8_INTER) * 3)


# ====================================================================
# Sequence parameter set (7.3.2.1.1, E.1.1)
# ====================================================================

@dataclass
class Sps:
    profile_idc: int = 66
    constraint_set_flags: int = 0          # bit 0 = constraint_set0_flag, as V4L2
    level_idc: int = 30
    seq_parameter_set_id: int = 0
    chroma_format_idc: int = 1
    separate_colour_plane_flag: bool = False
    bit_depth_luma_minus8: int = 0
    bit_depth_chroma_minus8: int = 0
    qpprime_y_zero_transform_bypass_flag: bool = False
    seq_scaling_matrix_present_flag: bool = False
    scaling_matrix: ScalingMatrix = FLAT
    log2_max_frame_num_minus4: int = 0
    pic_order_cnt_type: int = 0
    log2_max_pic_order_cnt_lsb_minus4: int = 0
    delta_pic_order_always_zero_flag: bool = False
    offset_for_non_ref_pic: int = 0
    offset_for_top_to_bottom_field: int = 0
    offset_for_ref_frame: tuple[int, ...] = ()
    max_num_ref_frames: int = 1
    gaps_in_frame_num_value_allowed_flag: bool = False
    pic_width_in_mbs_minus1: int = 0
    pic_height_in_map_units_minus1: int = 0
    frame_mbs_only_flag: bool = True
    mb_adaptive_frame_field_flag: bool = False
    direct_8x8_inference_flag: bool = True
    frame_cropping_flag: bool = False
    frame_crop_offsets: tuple[int, int, int, int] = (0, 0, 0, 0)  # left, right, top, bottom
    vui_parameters_present_flag: bool = False
    # from the VUI's bitstream_restriction, None when absent
    max_num_reorder_frames: int | None = None
    max_dec_frame_buffering: int | None = None

    @property
    def chroma_array_type(self) -> int:
        return 0 if self.separate_colour_plane_flag else self.chroma_format_idc

    @property
    def max_frame_num(self) -> int:
        return 1 << (self.log2_max_frame_num_minus4 + 4)

    @property
    def max_pic_order_cnt_lsb(self) -> int:
        return 1 << (self.log2_max_pic_order_cnt_lsb_minus4 + 4)

    @property
    def width_mbs(self) -> int:
        return self.pic_width_in_mbs_minus1 + 1

    @property
    def height_mbs(self) -> int:
        """FrameHeightInMbs (7-18)."""
        return (2 - self.frame_mbs_only_flag) * (self.pic_height_in_map_units_minus1 + 1)

    @property
    def crop_units(self) -> tuple[int, int]:
        """CropUnitX, CropUnitY (7-19 .. 7-22)."""
        if self.chroma_array_type == 0:
            return 1, 2 - self.frame_mbs_only_flag
        sub_width = 1 if self.chroma_format_idc == 3 else 2
        sub_height = 2 if self.chroma_format_idc == 1 else 1
        return sub_width, sub_height * (2 - self.frame_mbs_only_flag)

    @property
    def visible_size(self) -> tuple[int, int]:
        left, right, top, bottom = self.frame_crop_offsets
        ux, uy = self.crop_units
        return (16 * self.width_mbs - ux * (left + right),
                16 * self.height_mbs - uy * (top + bottom))


def parse_sps(nal: bytes) -> Sps:
    """An SPS NAL unit (header byte included)."""
    header = nal_header(nal)
    if header.nal_unit_type != NAL_SPS:
        raise BitstreamError(f"NAL unit type {header.nal_unit_type} is not an SPS")
    rbsp = unescape(nal[1:]).data
    bits = BitReader(rbsp)
    sps = Sps()
    sps.profile_idc = bits.read_bits(8, "profile_idc")
    flags = bits.read_bits(8, "constraint_set_flags")
    # constraint_set0_flag is the first (most significant) bit; V4L2 puts it in bit 0
    sps.constraint_set_flags = sum(1 << i for i in range(6) if flags >> (7 - i) & 1)
    sps.level_idc = bits.read_bits(8, "level_idc")
    sps.seq_parameter_set_id = _ue_max(bits, MAX_SPS_COUNT - 1, "seq_parameter_set_id")
    if sps.profile_idc in HIGH_PROFILES:
        _read_sps_high_profile_fields(bits, sps)
    sps.log2_max_frame_num_minus4 = _ue_max(bits, 12, "log2_max_frame_num_minus4")
    sps.pic_order_cnt_type = _ue_max(bits, 2, "pic_order_cnt_type")
    if sps.pic_order_cnt_type == 0:
        sps.log2_max_pic_order_cnt_lsb_minus4 = _ue_max(bits, 12, "log2_max_pic_order_cnt_lsb_minus4")
    elif sps.pic_order_cnt_type == 1:
        _read_poc_type1_fields(bits, sps)
    sps.max_num_ref_frames = _ue_max(bits, 16, "max_num_ref_frames")
    sps.gaps_in_frame_num_value_allowed_flag = bits.read_bool("gaps_in_frame_num_value_allowed_flag")
    sps.pic_width_in_mbs_minus1 = _ue_max(bits, 1023, "pic_width_in_mbs_minus1")
    sps.pic_height_in_map_units_minus1 = _ue_max(bits, 1023, "pic_height_in_map_units_minus1")
    sps.frame_mbs_only_flag = bits.read_bool("frame_mbs_only_flag")
    if not sps.frame_mbs_only_flag:
        sps.mb_adaptive_frame_field_flag = bits.read_bool("mb_adaptive_frame_field_flag")
    sps.direct_8x8_inference_flag = bits.read_bool("direct_8x8_inference_flag")
    sps.frame_cropping_flag = bits.read_bool("frame_cropping_flag")
    if sps.frame_cropping_flag:
        sps.frame_crop_offsets = tuple(bits.read_ue("frame_crop_offset") for _ in range(4))
        width, height = sps.visible_size
        if width <= 0 or height <= 0:
            raise BitstreamError(f"frame cropping leaves {width}x{height} pixels")
    sps.vui_parameters_present_flag = bits.read_bool("vui_parameters_present_flag")
    if sps.vui_parameters_present_flag:
        _read_vui(bits, sps)
    return sps


def _ue_max(bits: BitReader, maximum: int, what: str) -> int:
    value = bits.read_ue(what)
    if value > maximum:
        raise BitstreamError(f"{what} {value} is larger than {maximum}")
    return value


def _read_sps_high_profile_fields(bits: BitReader, sps: Sps) -> None:
    sps.chroma_format_idc = _ue_max(bits, 3, "chroma_format_idc")
    if sps.chroma_format_idc == 3:
        sps.separate_colour_plane_flag = bits.read_bool("separate_colour_plane_flag")
    sps.bit_depth_luma_minus8 = _ue_max(bits, 6, "bit_depth_luma_minus8")
    sps.bit_depth_chroma_minus8 = _ue_max(bits, 6, "bit_depth_chroma_minus8")
    sps.qpprime_y_zero_transform_bypass_flag = bits.read_bool("qpprime_y_zero_transform_bypass_flag")
    sps.seq_scaling_matrix_present_flag = bits.read_bool("seq_scaling_matrix_present_flag")
    if sps.seq_scaling_matrix_present_flag:
        count = 8 if sps.chroma_format_idc != 3 else 12
        sps.scaling_matrix = _read_scaling_matrix(bits, count, DEFAULT_FALLBACK)


def _read_poc_type1_fields(bits: BitReader, sps: Sps) -> None:
    sps.delta_pic_order_always_zero_flag = bits.read_bool("delta_pic_order_always_zero_flag")
    sps.offset_for_non_ref_pic = bits.read_se("offset_for_non_ref_pic")
    sps.offset_for_top_to_bottom_field = bits.read_se("offset_for_top_to_bottom_field")
    count = _ue_max(bits, 255, "num_ref_frames_in_pic_order_cnt_cycle")
    sps.offset_for_ref_frame = tuple(bits.read_se("offset_for_ref_frame") for _ in range(count))


def _read_vui(bits: BitReader, sps: Sps) -> None:
    """E.1.1; only bitstream_restriction matters here (display reordering)."""
    if bits.read_bool("aspect_ratio_info_present_flag"):
        if bits.read_bits(8, "aspect_ratio_idc") == 255:  # Extended_SAR
            bits.skip(32)
    if bits.read_bool("overscan_info_present_flag"):
        bits.skip(1)
    if bits.read_bool("video_signal_type_present_flag"):
        bits.skip(4)
        if bits.read_bool("colour_description_present_flag"):
            bits.skip(24)
    if bits.read_bool("chroma_loc_info_present_flag"):
        bits.read_ue("chroma_sample_loc_type_top_field")
        bits.read_ue("chroma_sample_loc_type_bottom_field")
    if bits.read_bool("timing_info_present_flag"):
        bits.skip(65)
    nal_hrd = bits.read_bool("nal_hrd_parameters_present_flag")
    if nal_hrd:
        _skip_hrd(bits)
    vcl_hrd = bits.read_bool("vcl_hrd_parameters_present_flag")
    if vcl_hrd:
        _skip_hrd(bits)
    if nal_hrd or vcl_hrd:
        bits.skip(1)  # low_delay_hrd_flag
    bits.skip(1)      # pic_struct_present_flag
    if bits.read_bool("bitstream_restriction_flag"):
        bits.skip(1)  # motion_vectors_over_pic_boundaries_flag
        for what in ("max_bytes_per_pic_denom", "max_bits_per_mb_denom",
                     "log2_max_mv_length_horizontal", "log2_max_mv_length_vertical"):
            bits.read_ue(what)
        sps.max_num_reorder_frames = _ue_max(bits, 16, "max_num_reorder_frames")
        sps.max_dec_frame_buffering = _ue_max(bits, 16, "max_dec_frame_buffering")


def _skip_hrd(bits: BitReader) -> None:
    """E.1.2 hrd_parameters()."""
    cpb_cnt = _ue_max(bits, 31, "cpb_cnt_minus1") + 1
    bits.skip(8)  # bit_rate_scale, cpb_size_scale
    for _ in range(cpb_cnt):
        bits.read_ue("bit_rate_value_minus1")
        bits.read_ue("cpb_size_value_minus1")
        bits.skip(1)
    bits.skip(20)


# ====================================================================
# Picture parameter set (7.3.2.2)
# ====================================================================

@dataclass
class Pps:
    pic_parameter_set_id: int = 0
    seq_parameter_set_id: int = 0
    entropy_coding_mode_flag: bool = False
    bottom_field_pic_order_in_frame_present_flag: bool = False
    num_slice_groups_minus1: int = 0
    slice_group_map_type: int = 0
    slice_group_change_rate_minus1: int = 0
    num_ref_idx_l0_default_active_minus1: int = 0
    num_ref_idx_l1_default_active_minus1: int = 0
    weighted_pred_flag: bool = False
    weighted_bipred_idc: int = 0
    pic_init_qp_minus26: int = 0
    pic_init_qs_minus26: int = 0
    chroma_qp_index_offset: int = 0
    deblocking_filter_control_present_flag: bool = False
    constrained_intra_pred_flag: bool = False
    redundant_pic_cnt_present_flag: bool = False
    transform_8x8_mode_flag: bool = False
    pic_scaling_matrix_present_flag: bool = False
    second_chroma_qp_index_offset: int = 0
    # The lists in force for pictures using this PPS: its own, or its SPS's.
    scaling_matrix: ScalingMatrix = FLAT


class LastPair:
    """``build(sps, pps)`` for the pair of parameter sets it was last asked for, kept
    until another pair comes: a stream's slices name the same pair picture after
    picture.  By identity, not equality: sets are parsed once and never changed, a
    set sent again is a new object, and the entry holds both, so no id is reused."""

    def __init__(self, build) -> None:
        self._build = build
        self._last: tuple | None = None

    def __call__(self, sps: Sps, pps: Pps):
        last = self._last
        if last is None or last[0] is not sps or last[1] is not pps:
            last = self._last = (sps, pps, self._build(sps, pps))
        return last[2]


def parse_pps(nal: bytes, sps_by_id: dict[int, Sps]) -> Pps:
    """A PPS NAL unit; its SPS must be known (the 8x8 list count and the
    scaling fall-back depend on it)."""
    header = nal_header(nal)
    if header.nal_unit_type != NAL_PPS:
        raise BitstreamError(f"NAL unit type {header.nal_unit_type} is not a PPS")
    rbsp = unescape(nal[1:]).data
    bits = BitReader(rbsp)
    pps = Pps()
    pps.pic_parameter_set_id = _ue_max(bits, MAX_PPS_COUNT - 1, "pic_parameter_set_id")
    pps.seq_parameter_set_id = _ue_max(bits, MAX_SPS_COUNT - 1, "seq_parameter_set_id")
    sps = sps_by_id.get(pps.seq_parameter_set_id)
    if sps is None:
        raise BitstreamError(f"PPS {pps.pic_parameter_set_id} refers to unknown SPS "
                             f"{pps.seq_parameter_set_id}")
    pps.entropy_coding_mode_flag = bits.read_bool("entropy_coding_mode_flag")
    pps.bottom_field_pic_order_in_frame_present_flag = bits.read_bool(
        "bottom_field_pic_order_in_frame_present_flag")
    pps.num_slice_groups_minus1 = _ue_max(bits, 7, "num_slice_groups_minus1")
    if pps.num_slice_groups_minus1:
        _read_slice_groups(bits, pps, sps)
    pps.num_ref_idx_l0_default_active_minus1 = _ue_max(bits, 31, "num_ref_idx_l0_default_active_minus1")
    pps.num_ref_idx_l1_default_active_minus1 = _ue_max(bits, 31, "num_ref_idx_l1_default_active_minus1")
    pps.weighted_pred_flag = bits.read_bool("weighted_pred_flag")
    pps.weighted_bipred_idc = bits.read_bits(2, "weighted_bipred_idc")
    if pps.weighted_bipred_idc == 3:
        raise BitstreamError("weighted_bipred_idc 3 is reserved")
    pps.pic_init_qp_minus26 = _se_range(bits, -26, 25, "pic_init_qp_minus26")
    pps.pic_init_qs_minus26 = _se_range(bits, -26, 25, "pic_init_qs_minus26")
    pps.chroma_qp_index_offset = _se_range(bits, -12, 12, "chroma_qp_index_offset")
    pps.deblocking_filter_control_present_flag = bits.read_bool("deblocking_filter_control_present_flag")
    pps.constrained_intra_pred_flag = bits.read_bool("constrained_intra_pred_flag")
    pps.redundant_pic_cnt_present_flag = bits.read_bool("redundant_pic_cnt_present_flag")
    pps.second_chroma_qp_index_offset = pps.chroma_qp_index_offset
    pps.scaling_matrix = sps.scaling_matrix
    if more_rbsp_data(bits, rbsp):
        _read_pps_extension(bits, pps, sps)
    return pps


def _se_range(bits: BitReader, low: int, high: int, what: str) -> int:
    value = bits.read_se(what)
    if not low <= value <= high:
        raise BitstreamError(f"{what} {value} outside {low}..{high}")
    return value


def _read_slice_groups(bits: BitReader, pps: Pps, sps: Sps) -> None:
    """Flexible macroblock ordering (Baseline): parsed so the PPS reads right;
    V4L2 has no fields for it, so the client refuses such streams."""
    groups = pps.num_slice_groups_minus1 + 1
    pps.slice_group_map_type = _ue_max(bits, 6, "slice_group_map_type")
    kind = pps.slice_group_map_type
    if kind == 0:
        for _ in range(groups):
            bits.read_ue("run_length_minus1")
    elif kind == 2:
        for _ in range(groups - 1):
            bits.read_ue("top_left")
            bits.read_ue("bottom_right")
    elif kind in (3, 4, 5):
        bits.skip(1)
        pps.slice_group_change_rate_minus1 = bits.read_ue("slice_group_change_rate_minus1")
    elif kind == 6:
        units = bits.read_ue("pic_size_in_map_units_minus1") + 1
        if units > (sps.width_mbs * sps.height_mbs):
            raise BitstreamError(f"pic_size_in_map_units {units} larger than the picture")
        bits.skip(units * (groups - 1).bit_length())


def _read_pps_extension(bits: BitReader, pps: Pps, sps: Sps) -> None:
    pps.transform_8x8_mode_flag = bits.read_bool("transform_8x8_mode_flag")
    pps.pic_scaling_matrix_present_flag = bits.read_bool("pic_scaling_matrix_present_flag")
    if pps.pic_scaling_matrix_present_flag:
        count = 6 + (2 if sps.chroma_format_idc != 3 else 6) * pps.transform_8x8_mode_flag
        # 7.4.2.2: an absent list falls back by rule B (lists 0, 3, 6, 7 take the
        # SPS's) when the SPS has lists, else by rule A (the default lists).
        base = sps.scaling_matrix if sps.seq_scaling_matrix_present_flag else DEFAULT_FALLBACK
        pps.scaling_matrix = _read_scaling_matrix(bits, count, base)
    pps.second_chroma_qp_index_offset = _se_range(bits, -12, 12, "second_chroma_qp_index_offset")


# ====================================================================
# Slice header (7.3.3)
# ====================================================================

@dataclass
class RefPicListModification:
    idc: int        # modification_of_pic_nums_idc: 0, 1 (short-term), 2 (long-term)
    value: int      # abs_diff_pic_num_minus1 or long_term_pic_num


@dataclass
class Mmco:
    """One memory_management_control_operation (7.3.3.3)."""
    op: int
    difference_of_pic_nums_minus1: int = 0
    long_term_pic_num: int = 0
    long_term_frame_idx: int = 0
    max_long_term_frame_idx_plus1: int = 0


@dataclass
class PredWeightTable:
    """7.3.3.2, with absent weights at their defaults (2^denom, offset 0)."""
    luma_log2_weight_denom: int = 0
    chroma_log2_weight_denom: int = 0
    # [list][ref] -> (weight, offset); chroma [list][ref][cb/cr]
    luma: list[list[tuple[int, int]]] = field(default_factory=lambda: [[], []])
    chroma: list[list[tuple[tuple[int, int], tuple[int, int]]]] = field(
        default_factory=lambda: [[], []])


@dataclass
class SliceHeader:
    nal_ref_idc: int = 0
    nal_unit_type: int = NAL_SLICE
    first_mb_in_slice: int = 0
    slice_type: int = SLICE_I            # slice_type % 5
    pic_parameter_set_id: int = 0
    colour_plane_id: int = 0
    frame_num: int = 0
    field_pic_flag: bool = False
    bottom_field_flag: bool = False
    idr_pic_id: int = 0
    pic_order_cnt_lsb: int = 0
    delta_pic_order_cnt_bottom: int = 0
    delta_pic_order_cnt: tuple[int, int] = (0, 0)
    redundant_pic_cnt: int = 0
    direct_spatial_mv_pred_flag: bool = False
    num_ref_idx_l0_active_minus1: int = 0
    num_ref_idx_l1_active_minus1: int = 0
    ref_pic_list_modifications: tuple[list[RefPicListModification], list[RefPicListModification]] = \
        field(default_factory=lambda: ([], []))
    pred_weight_table: PredWeightTable | None = None
    no_output_of_prior_pics_flag: bool = False
    long_term_reference_flag: bool = False
    adaptive_ref_pic_marking_mode_flag: bool = False
    mmcos: list[Mmco] = field(default_factory=list)
    cabac_init_idc: int = 0
    slice_qp_delta: int = 0
    sp_for_switch_flag: bool = False
    slice_qs_delta: int = 0
    disable_deblocking_filter_idc: int = 0
    slice_alpha_c0_offset_div2: int = 0
    slice_beta_offset_div2: int = 0
    slice_group_change_cycle: int = 0
    # sizes the V4L2 controls want
    header_bit_size: int = 0             # NAL unit bits before slice_data(), header byte included
    pic_order_cnt_bit_size: int = 0      # RBSP bits of the POC syntax elements
    dec_ref_pic_marking_bit_size: int = 0

    @property
    def idr(self) -> bool:
        return self.nal_unit_type == NAL_IDR_SLICE

    @property
    def has_mmco5(self) -> bool:
        return any(m.op == 5 for m in self.mmcos)


def parse_slice_header(nal: bytes, sps_by_id: dict[int, Sps],
                       pps_by_id: dict[int, Pps]) -> SliceHeader:
    """The header of a coded slice NAL unit (type 1 or 5)."""
    header = nal_header(nal)
    if header.nal_unit_type not in VCL_NAL_TYPES:
        raise BitstreamError(f"NAL unit type {header.nal_unit_type} is not a coded slice")
    rbsp = unescape(nal[1:])
    reader = _SliceHeaderReader(BitReader(rbsp.data), header, sps_by_id, pps_by_id)
    sh = reader.read()
    sh.header_bit_size = rbsp.nal_bit_position(reader.bits.bit_position)
    return sh


class _SliceHeaderReader:
    def __init__(self, bits: BitReader, header: NalHeader, sps_by_id, pps_by_id) -> None:
        self.bits, self.nal = bits, header
        self.sps_by_id, self.pps_by_id = sps_by_id, pps_by_id
        self.sh = SliceHeader(nal_ref_idc=header.nal_ref_idc, nal_unit_type=header.nal_unit_type)

    def read(self) -> SliceHeader:
        bits, sh = self.bits, self.sh
        sh.first_mb_in_slice = bits.read_ue("first_mb_in_slice")
        slice_type = _ue_max(bits, 9, "slice_type")
        sh.slice_type = slice_type % 5
        if sh.idr and sh.slice_type not in (SLICE_I, SLICE_SI):
            raise BitstreamError("IDR slice that is not intra")
        sh.pic_parameter_set_id = _ue_max(bits, MAX_PPS_COUNT - 1, "pic_parameter_set_id")
        pps = self.pps_by_id.get(sh.pic_parameter_set_id)
        if pps is None:
            raise BitstreamError(f"slice refers to unknown PPS {sh.pic_parameter_set_id}")
        sps = self.sps_by_id.get(pps.seq_parameter_set_id)
        if sps is None:
            raise BitstreamError(f"PPS {pps.pic_parameter_set_id} refers to unknown SPS")
        self.sps, self.pps = sps, pps
        if sh.first_mb_in_slice >= sps.width_mbs * sps.height_mbs:
            raise BitstreamError(f"first_mb_in_slice {sh.first_mb_in_slice} past the picture")
        if sps.separate_colour_plane_flag:
            sh.colour_plane_id = bits.read_bits(2, "colour_plane_id")
        sh.frame_num = bits.read_bits(sps.log2_max_frame_num_minus4 + 4, "frame_num")
        if not sps.frame_mbs_only_flag:
            sh.field_pic_flag = bits.read_bool("field_pic_flag")
            if sh.field_pic_flag:
                sh.bottom_field_flag = bits.read_bool("bottom_field_flag")
        if sh.idr:
            sh.idr_pic_id = _ue_max(bits, 65535, "idr_pic_id")
        self.pic_order_cnt()
        if pps.redundant_pic_cnt_present_flag:
            sh.redundant_pic_cnt = _ue_max(bits, 127, "redundant_pic_cnt")
        if sh.slice_type == SLICE_B:
            sh.direct_spatial_mv_pred_flag = bits.read_bool("direct_spatial_mv_pred_flag")
        self.num_ref_idx_active()
        self.ref_pic_list_modification()
        if (pps.weighted_pred_flag and sh.slice_type in (SLICE_P, SLICE_SP)) or \
                (pps.weighted_bipred_idc == 1 and sh.slice_type == SLICE_B):
            sh.pred_weight_table = self.pred_weight_table()
        if sh.nal_ref_idc:
            start = bits.bit_position
            self.dec_ref_pic_marking()
            sh.dec_ref_pic_marking_bit_size = bits.bit_position - start
        if pps.entropy_coding_mode_flag and sh.slice_type not in (SLICE_I, SLICE_SI):
            sh.cabac_init_idc = _ue_max(bits, 2, "cabac_init_idc")
        sh.slice_qp_delta = _se_range(bits, -87, 77, "slice_qp_delta")
        if sh.slice_type in (SLICE_SP, SLICE_SI):
            if sh.slice_type == SLICE_SP:
                sh.sp_for_switch_flag = bits.read_bool("sp_for_switch_flag")
            sh.slice_qs_delta = _se_range(bits, -51, 51, "slice_qs_delta")
        if pps.deblocking_filter_control_present_flag:
            self.deblocking()
        if pps.num_slice_groups_minus1 and pps.slice_group_map_type in (3, 4, 5):
            size = sps.width_mbs * (sps.pic_height_in_map_units_minus1 + 1)
            rate = pps.slice_group_change_rate_minus1 + 1
            sh.slice_group_change_cycle = bits.read_bits(_change_cycle_bits(size, rate),
                                                         "slice_group_change_cycle")
        return sh

    def pic_order_cnt(self) -> None:
        bits, sh, sps, pps = self.bits, self.sh, self.sps, self.pps
        start = bits.bit_position
        both_fields = pps.bottom_field_pic_order_in_frame_present_flag and not sh.field_pic_flag
        if sps.pic_order_cnt_type == 0:
            sh.pic_order_cnt_lsb = bits.read_bits(sps.log2_max_pic_order_cnt_lsb_minus4 + 4,
                                                  "pic_order_cnt_lsb")
            if both_fields:
                sh.delta_pic_order_cnt_bottom = bits.read_se("delta_pic_order_cnt_bottom")
        if sps.pic_order_cnt_type == 1 and not sps.delta_pic_order_always_zero_flag:
            first = bits.read_se("delta_pic_order_cnt[0]")
            second = bits.read_se("delta_pic_order_cnt[1]") if both_fields else 0
            sh.delta_pic_order_cnt = (first, second)
        sh.pic_order_cnt_bit_size = bits.bit_position - start

    def num_ref_idx_active(self) -> None:
        bits, sh, pps = self.bits, self.sh, self.pps
        sh.num_ref_idx_l0_active_minus1 = pps.num_ref_idx_l0_default_active_minus1
        sh.num_ref_idx_l1_active_minus1 = pps.num_ref_idx_l1_default_active_minus1
        if sh.slice_type in (SLICE_P, SLICE_SP, SLICE_B):
            if bits.read_bool("num_ref_idx_active_override_flag"):
                limit = 31 if sh.field_pic_flag else 15
                sh.num_ref_idx_l0_active_minus1 = _ue_max(bits, limit, "num_ref_idx_l0_active_minus1")
                if sh.slice_type == SLICE_B:
                    sh.num_ref_idx_l1_active_minus1 = _ue_max(bits, limit,
                                                              "num_ref_idx_l1_active_minus1")
        if not sh.field_pic_flag and max(sh.num_ref_idx_l0_active_minus1,
                                         sh.num_ref_idx_l1_active_minus1) > 15:
            raise BitstreamError("more than 16 active references in a frame slice")

    def ref_pic_list_modification(self) -> None:
        sh = self.sh
        lists = [SLICE_P, SLICE_SP, SLICE_B]
        if sh.slice_type in lists:
            sh.ref_pic_list_modifications[0].extend(self._modifications())
        if sh.slice_type == SLICE_B:
            sh.ref_pic_list_modifications[1].extend(self._modifications())

    def _modifications(self) -> list[RefPicListModification]:
        bits, out = self.bits, []
        if not bits.read_bool("ref_pic_list_modification_flag"):
            return out
        while True:
            idc = _ue_max(bits, 5, "modification_of_pic_nums_idc")
            if idc == 3:
                return out
            if idc > 3:
                raise BitstreamError(f"modification_of_pic_nums_idc {idc} (MVC) in a plain slice")
            out.append(RefPicListModification(idc, bits.read_ue("pic num")))
            if len(out) > 33:
                raise BitstreamError("more reference list modifications than list entries")

    def pred_weight_table(self) -> PredWeightTable:
        bits, sh, chroma = self.bits, self.sh, self.sps.chroma_array_type != 0
        table = PredWeightTable()
        table.luma_log2_weight_denom = _ue_max(bits, 7, "luma_log2_weight_denom")
        if chroma:
            table.chroma_log2_weight_denom = _ue_max(bits, 7, "chroma_log2_weight_denom")
        counts = [sh.num_ref_idx_l0_active_minus1 + 1]
        if sh.slice_type == SLICE_B:
            counts.append(sh.num_ref_idx_l1_active_minus1 + 1)
        luma_default = (1 << table.luma_log2_weight_denom, 0)
        chroma_default = (1 << table.chroma_log2_weight_denom, 0)
        for lst, count in enumerate(counts):
            for _ in range(count):
                luma = luma_default
                if bits.read_bool("luma_weight_flag"):
                    luma = (_se_range(bits, -128, 127, "luma_weight"),
                            _se_range(bits, -128, 127, "luma_offset"))
                table.luma[lst].append(luma)
                cb = cr = chroma_default
                if chroma and bits.read_bool("chroma_weight_flag"):
                    cb, cr = ((_se_range(bits, -128, 127, "chroma_weight"),
                               _se_range(bits, -128, 127, "chroma_offset")) for _ in range(2))
                table.chroma[lst].append((cb, cr))
        return table

    def dec_ref_pic_marking(self) -> None:
        bits, sh = self.bits, self.sh
        if sh.idr:
            sh.no_output_of_prior_pics_flag = bits.read_bool("no_output_of_prior_pics_flag")
            sh.long_term_reference_flag = bits.read_bool("long_term_reference_flag")
            return
        sh.adaptive_ref_pic_marking_mode_flag = bits.read_bool("adaptive_ref_pic_marking_mode_flag")
        if not sh.adaptive_ref_pic_marking_mode_flag:
            return
        while True:
            op = _ue_max(bits, 6, "memory_management_control_operation")
            if op == 0:
                return
            mmco = Mmco(op)
            if op in (1, 3):
                mmco.difference_of_pic_nums_minus1 = bits.read_ue("difference_of_pic_nums_minus1")
            if op == 2:
                mmco.long_term_pic_num = bits.read_ue("long_term_pic_num")
            if op in (3, 6):
                mmco.long_term_frame_idx = _ue_max(bits, 31, "long_term_frame_idx")
            if op == 4:
                mmco.max_long_term_frame_idx_plus1 = _ue_max(bits, 16, "max_long_term_frame_idx_plus1")
            sh.mmcos.append(mmco)
            if len(sh.mmcos) > 66:
                raise BitstreamError("too many memory management control operations")

    def deblocking(self) -> None:
        bits, sh = self.bits, self.sh
        sh.disable_deblocking_filter_idc = _ue_max(bits, 2, "disable_deblocking_filter_idc")
        if sh.disable_deblocking_filter_idc != 1:
            sh.slice_alpha_c0_offset_div2 = _se_range(bits, -6, 6, "slice_alpha_c0_offset_div2")
            sh.slice_beta_offset_div2 = _se_range(bits, -6, 6, "slice_beta_offset_div2")


def _change_cycle_bits(size: int, rate: int) -> int:
    """Ceil(Log2(PicSizeInMapUnits / SliceGroupChangeRate + 1)), "/" exact (7.4.3)."""
    n = 0
    while (rate << n) < size + rate:
        n += 1
    return n


def first_slice_of_new_picture(prev: SliceHeader | None, cur: SliceHeader) -> bool:
    """7.4.1.2.4: does ``cur`` start a new primary coded picture after ``prev``?"""
    if prev is None:
        return True
    if cur.redundant_pic_cnt > 0:
        return False
    return (cur.frame_num != prev.frame_num
            or cur.pic_parameter_set_id != prev.pic_parameter_set_id
            or cur.field_pic_flag != prev.field_pic_flag
            or cur.bottom_field_flag != prev.bottom_field_flag
            or (cur.nal_ref_idc == 0) != (prev.nal_ref_idc == 0)
            or cur.pic_order_cnt_lsb != prev.pic_order_cnt_lsb
            or cur.delta_pic_order_cnt_bottom != prev.delta_pic_order_cnt_bottom
            or cur.delta_pic_order_cnt != prev.delta_pic_order_cnt
            or cur.idr != prev.idr
            or (cur.idr and prev.idr and cur.idr_pic_id != prev.idr_pic_id)
            or cur.first_mb_in_slice == 0)
