"""The client side of VP9 for a V4L2 stateless decoder.

A stateless VP9 client does four things for every coded frame, and this
module has one piece for each:

1. :func:`split_superframe` cuts a container packet into frames (VP9 spec
   Annex B, "Superframes": libvpx packs a hidden alt-ref frame and the next
   shown frame into one packet).
2. :class:`Vp9Parser` reads each frame's uncompressed header (spec
   "Uncompressed header syntax") into a :class:`Vp9FrameHeader`, keeping the
   state that crosses frames: reference slot sizes (for
   frame_size_with_refs), loop filter deltas, segmentation data and the colour
   config of the last intra frame.
3. :class:`Vp9References` tracks which CAPTURE buffer timestamp each of the
   eight reference slots holds: V4L2 names reference frames by timestamp.
4. :func:`frame_control` fills ``struct v4l2_ctrl_vp9_frame``
   (``V4L2_CID_STATELESS_VP9_FRAME``) from a header and the reference
   timestamps.

Every malformed input raises :class:`~daedalus_v4l2.errors.BitstreamError`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from daedalus_v4l2.codecs.bitreader import BitReader
from daedalus_v4l2.errors import BitstreamError
from daedalus_v4l2.v4l2 import uapi
from daedalus_v4l2.v4l2.uapi import ffi

# ---- VP9 constants (spec section 3, "Symbols and abbreviated terms") ----
KEY_FRAME = 0
NON_KEY_FRAME = 1
NUM_REF_FRAMES = 8
REFS_PER_FRAME = 3
MAX_SEGMENTS = 8
SEG_LVL_MAX = 4
MIN_TILE_WIDTH_B64 = 4
MAX_TILE_WIDTH_B64 = 64
FRAME_MARKER = 2
SYNC_CODE = (0x49, 0x83, 0x42)
CS_BT_601 = 2
CS_RGB = 7
# segmentation_feature_bits / segmentation_feature_signed (spec "Segmentation params syntax"):
# ALT_Q, ALT_L, REF_FRAME, SKIP.
SEGMENTATION_FEATURE_BITS = (8, 6, 2, 0)
SEGMENTATION_FEATURE_SIGNED = (True, True, False, False)
# setup_past_independence (spec "Setup past independence process")
# resets the loop filter deltas to these, indexed INTRA, LAST, GOLDEN, ALTREF.
DEFAULT_LF_REF_DELTAS = (1, 0, -1, -1)
DEFAULT_LF_MODE_DELTAS = (0, 0)

# ---- V4L2 values of <linux/v4l2-controls.h> that uapi.py does not define
# (tests/test_vp9_parser.py checks them against the system header). ----
V4L2_VP9_SIGN_BIAS_LAST = 0x1
V4L2_VP9_SIGN_BIAS_GOLDEN = 0x2
V4L2_VP9_SIGN_BIAS_ALT = 0x4
V4L2_VP9_RESET_FRAME_CTX_NONE = 0
V4L2_VP9_RESET_FRAME_CTX_SPEC = 1
V4L2_VP9_RESET_FRAME_CTX_ALL = 2
V4L2_VP9_INTERP_FILTER_EIGHTTAP = 0
V4L2_VP9_INTERP_FILTER_EIGHTTAP_SMOOTH = 1
V4L2_VP9_INTERP_FILTER_EIGHTTAP_SHARP = 2
V4L2_VP9_INTERP_FILTER_BILINEAR = 3
V4L2_VP9_INTERP_FILTER_SWITCHABLE = 4
V4L2_VP9_REFERENCE_MODE_SINGLE_REFERENCE = 0

# The bitstream's raw_interpolation_filter goes through literal_to_type
# (spec "Interpolation filter syntax"): 0 smooth, 1 regular, 2 sharp, 3 bilinear.  V4L2 numbers the
# filters as libvpx does (regular first), so the two orders differ.
LITERAL_TO_V4L2_INTERP_FILTER = (
    V4L2_VP9_INTERP_FILTER_EIGHTTAP_SMOOTH,
    V4L2_VP9_INTERP_FILTER_EIGHTTAP,
    V4L2_VP9_INTERP_FILTER_EIGHTTAP_SHARP,
    V4L2_VP9_INTERP_FILTER_BILINEAR,
)


# ====================================================================
# Superframes (spec Annex B)
# ====================================================================

def split_superframe(data: bytes) -> list[bytes]:
    """Split a packet into its frames.

    A superframe ends with an index whose first and last bytes are the same
    marker byte ``0b110mmfff`` (mm+1 bytes per size, fff+1 frames).  If the
    last byte is no marker, or the byte where the index would start does not
    repeat it, the packet is one plain frame (libvpx and FFmpeg decide the
    same way).  An index whose markers match but whose sizes do not fit the
    packet raises :class:`BitstreamError`.  An empty packet has no frames.
    """
    data = bytes(data)
    if not data:
        return []
    index = _read_superframe_index(data)
    if index is None:
        return [data]
    sizes, index_size = index
    return _cut_frames(data, sizes, len(data) - index_size)


def _read_superframe_index(data: bytes) -> tuple[list[int], int] | None:
    marker = data[-1]
    if marker & 0xE0 != 0xC0:
        return None
    bytes_per_size = ((marker >> 3) & 0x3) + 1
    frame_count = (marker & 0x7) + 1
    index_size = 2 + bytes_per_size * frame_count
    if len(data) < index_size or data[-index_size] != marker:
        return None
    sizes_start = len(data) - index_size + 1
    sizes = [int.from_bytes(data[at:at + bytes_per_size], "little")
             for at in range(sizes_start, sizes_start + bytes_per_size * frame_count,
                             bytes_per_size)]
    return sizes, index_size


def _cut_frames(data: bytes, sizes: list[int], payload_end: int) -> list[bytes]:
    frames, offset = [], 0
    for number, size in enumerate(sizes):
        if size == 0:
            raise BitstreamError(f"superframe index: frame {number} has size 0")
        if offset + size > payload_end:
            raise BitstreamError(
                f"superframe index: frame {number} ({size} bytes at offset {offset}) runs "
                f"past the {payload_end} bytes before the index")
        frames.append(data[offset:offset + size])
        offset += size
    return frames


# ====================================================================
# The uncompressed header
# ====================================================================

def _zeros_8x4() -> tuple[tuple[int, ...], ...]:
    return tuple((0,) * SEG_LVL_MAX for _ in range(MAX_SEGMENTS))


def _false_8x4() -> tuple[tuple[bool, ...], ...]:
    return tuple((False,) * SEG_LVL_MAX for _ in range(MAX_SEGMENTS))


@dataclass
class Vp9FrameHeader:
    """Every field of one frame's uncompressed header (spec "Uncompressed header
    syntax"), with the
    values that persist from earlier frames already applied.

    ``frame_context_idx`` is the coded value: for intra and error-resilient
    frames the spec then uses context 0, but the kernel (v4l2-vp9.c
    ``v4l2_vp9_reset_frame_ctx``) wants the coded index to reset it.
    ``reset_frame_context`` is the coded 0..3 value; :func:`frame_control`
    maps it to V4L2's enum.  ``ref_frame_sign_bias`` and ``ref_frame_idx`` are
    indexed LAST, GOLDEN, ALTREF.
    """
    profile: int = 0
    show_existing_frame: bool = False
    frame_to_show_map_idx: int = 0
    frame_type: int = NON_KEY_FRAME
    show_frame: bool = True
    error_resilient_mode: bool = False
    intra_only: bool = False
    reset_frame_context: int = 0
    # color_config
    bit_depth: int = 8
    color_space: int = 0
    color_range: int = 0
    subsampling_x: int = 1
    subsampling_y: int = 1
    # references
    refresh_frame_flags: int = 0
    ref_frame_idx: tuple[int, int, int] = (0, 0, 0)
    ref_frame_sign_bias: tuple[bool, bool, bool] = (False, False, False)
    size_from_ref: int | None = None   # i of the first found_ref[i] = 1, if any
    allow_high_precision_mv: bool = False
    # read_interpolation_filter (spec "Interpolation filter syntax")
    is_filter_switchable: bool = False
    raw_interpolation_filter: int = 0
    interpolation_filter: int = V4L2_VP9_INTERP_FILTER_EIGHTTAP   # V4L2 enum value
    refresh_frame_context: bool = False
    frame_parallel_decoding_mode: bool = False
    frame_context_idx: int = 0
    # frame_size / render_size
    width: int = 0
    height: int = 0
    render_width: int = 0
    render_height: int = 0
    # loop_filter_params
    loop_filter_level: int = 0
    loop_filter_sharpness: int = 0
    loop_filter_delta_enabled: bool = False
    loop_filter_delta_update: bool = False
    loop_filter_ref_deltas: tuple[int, int, int, int] = DEFAULT_LF_REF_DELTAS
    loop_filter_mode_deltas: tuple[int, int] = DEFAULT_LF_MODE_DELTAS
    # quantization_params
    base_q_idx: int = 0
    delta_q_y_dc: int = 0
    delta_q_uv_dc: int = 0
    delta_q_uv_ac: int = 0
    # segmentation_params
    segmentation_enabled: bool = False
    segmentation_update_map: bool = False
    segmentation_tree_probs: tuple[int, ...] = (255,) * 7
    segmentation_pred_probs: tuple[int, ...] = (255,) * 3
    segmentation_temporal_update: bool = False
    segmentation_update_data: bool = False
    segmentation_abs_or_delta_update: bool = False
    segmentation_feature_enabled: tuple[tuple[bool, ...], ...] = field(default_factory=_false_8x4)
    segmentation_feature_data: tuple[tuple[int, ...], ...] = field(default_factory=_zeros_8x4)
    # tile_info
    tile_cols_log2: int = 0
    tile_rows_log2: int = 0
    # sizes of the two headers, in bytes
    compressed_header_size: int = 0      # header_size_in_bytes
    uncompressed_header_size: int = 0    # up to and including trailing_bits

    @property
    def is_keyframe(self) -> bool:
        return not self.show_existing_frame and self.frame_type == KEY_FRAME

    @property
    def frame_is_intra(self) -> bool:
        """FrameIsIntra: no inter prediction, so no reference frames."""
        return self.is_keyframe or self.intra_only

    @property
    def is_displayed(self) -> bool:
        """Whether this frame puts a picture on screen."""
        return self.show_existing_frame or self.show_frame

    @property
    def lossless(self) -> bool:
        return (self.base_q_idx == 0 and self.delta_q_y_dc == 0
                and self.delta_q_uv_dc == 0 and self.delta_q_uv_ac == 0)


@dataclass
class _ColorConfig:
    bit_depth: int = 8
    color_space: int = CS_BT_601
    color_range: int = 0
    subsampling_x: int = 1
    subsampling_y: int = 1


@dataclass
class _CrossFrameState:
    """What the spec keeps from one frame to the next."""
    ref_sizes: list[tuple[int, int] | None] = field(
        default_factory=lambda: [None] * NUM_REF_FRAMES)
    color: _ColorConfig | None = None    # None until a keyframe or intra-only frame
    lf_ref_deltas: list[int] = field(default_factory=lambda: list(DEFAULT_LF_REF_DELTAS))
    lf_mode_deltas: list[int] = field(default_factory=lambda: list(DEFAULT_LF_MODE_DELTAS))
    seg_tree_probs: list[int] = field(default_factory=lambda: [255] * 7)
    seg_pred_probs: list[int] = field(default_factory=lambda: [255] * 3)
    seg_abs_or_delta_update: bool = False
    seg_feature_enabled: list[list[bool]] = field(
        default_factory=lambda: [[False] * SEG_LVL_MAX for _ in range(MAX_SEGMENTS)])
    seg_feature_data: list[list[int]] = field(
        default_factory=lambda: [[0] * SEG_LVL_MAX for _ in range(MAX_SEGMENTS)])

    def clone(self) -> "_CrossFrameState":
        """A copy a parse may change (copy.deepcopy, ~20x cheaper: the lists are of
        immutable values, and a color config is never changed once made)."""
        return _CrossFrameState(
            list(self.ref_sizes), self.color, list(self.lf_ref_deltas), list(self.lf_mode_deltas),
            list(self.seg_tree_probs), list(self.seg_pred_probs), self.seg_abs_or_delta_update,
            [list(row) for row in self.seg_feature_enabled],
            [list(row) for row in self.seg_feature_data])

    def setup_past_independence(self) -> None:
        """The parts of the spec's setup_past_independence that touch the
        header: segmentation features and loop filter deltas go back to their
        defaults.  (The probability tables are the decoder's business.)"""
        self.seg_feature_enabled = [[False] * SEG_LVL_MAX for _ in range(MAX_SEGMENTS)]
        self.seg_feature_data = [[0] * SEG_LVL_MAX for _ in range(MAX_SEGMENTS)]
        self.seg_abs_or_delta_update = False
        self.lf_ref_deltas = list(DEFAULT_LF_REF_DELTAS)
        self.lf_mode_deltas = list(DEFAULT_LF_MODE_DELTAS)


class Vp9Parser:
    """Parses uncompressed headers of one stream, frame by frame, in decode order.

    The parser's cross-frame state only changes when a frame parses cleanly,
    so a corrupt frame can be dropped and the stream continued.
    """

    def __init__(self) -> None:
        self._state = _CrossFrameState()

    def reset(self) -> None:
        """Forget everything (a new stream, or a seek)."""
        self._state = _CrossFrameState()

    def ref_slot_size(self, slot: int) -> tuple[int, int] | None:
        """The (width, height) reference slot ``slot`` holds, or None if empty."""
        return self._state.ref_sizes[slot]

    def parse(self, frame: bytes) -> Vp9FrameHeader:
        """Parse one frame (not a superframe: see :func:`split_superframe`)."""
        state = self._state.clone()
        header = _HeaderReader(bytes(frame), state).read()
        _refresh_reference_sizes(state, header)
        self._state = state
        return header


def _refresh_reference_sizes(state: _CrossFrameState, header: Vp9FrameHeader) -> None:
    """The size part of the reference update process (spec "Reference frame update process")."""
    for slot in range(NUM_REF_FRAMES):
        if header.refresh_frame_flags >> slot & 1:
            state.ref_sizes[slot] = (header.width, header.height)


class _HeaderReader:
    """Reads one uncompressed header, following the spec's syntax function by function."""

    def __init__(self, frame: bytes, state: _CrossFrameState) -> None:
        self.frame = frame
        self.bits = BitReader(frame)
        self.state = state
        self.fields: dict = {}

    def read(self) -> Vp9FrameHeader:
        if not self.frame:
            raise BitstreamError("truncated header: empty frame")
        self.uncompressed_header()
        return Vp9FrameHeader(**self.fields)

    # ---- uncompressed_header() ----
    def uncompressed_header(self) -> None:
        f, bits = self.fields, self.bits
        marker = bits.read_bits(2, "frame_marker")
        if marker != FRAME_MARKER:
            raise BitstreamError(f"bad frame marker {marker:#b} (expected 0b10)")
        f["profile"] = self.profile()
        f["show_existing_frame"] = bits.read_bool("show_existing_frame")
        if f["show_existing_frame"]:
            self.show_existing_frame()
            return
        f["frame_type"] = bits.read_bits(1, "frame_type")
        f["show_frame"] = bits.read_bool("show_frame")
        f["error_resilient_mode"] = bits.read_bool("error_resilient_mode")
        if f["frame_type"] == KEY_FRAME:
            self.keyframe_setup()
        else:
            self.non_keyframe_setup()
        self.frame_context_setup()
        self.loop_filter_params()
        self.quantization_params()
        self.segmentation_params()
        self.tile_info()
        self.header_sizes()

    def profile(self) -> int:
        low = self.bits.read_bits(1, "profile_low_bit")
        high = self.bits.read_bits(1, "profile_high_bit")
        profile = (high << 1) | low
        # Profile 3 is followed by a reserved bit that libvpx adds to the
        # profile: set, it would make a profile 4, which does not exist.
        if profile == 3 and self.bits.read_bits(1, "reserved_zero"):
            raise BitstreamError("unknown profile 4 (reserved bit after profile 3 is set)")
        return profile

    def show_existing_frame(self) -> None:
        # A one-byte header: it names a slot to show again, decodes nothing
        # and refreshes no slot (spec "Frame semantics", frame_to_show_map_idx).
        f = self.fields
        slot = self.bits.read_bits(3, "frame_to_show_map_idx")
        size = self.state.ref_sizes[slot]
        if size is None:
            raise BitstreamError(f"show_existing_frame of empty reference slot {slot}")
        f["frame_to_show_map_idx"] = slot
        f["width"], f["height"] = size
        f["render_width"], f["render_height"] = size
        self.apply_color(self.state.color or _ColorConfig())
        f["uncompressed_header_size"] = self.bits.byte_position

    def keyframe_setup(self) -> None:
        f = self.fields
        self.frame_sync_code()
        self.apply_color(self.color_config())
        self.frame_size()
        self.render_size()
        f["refresh_frame_flags"] = 0xFF    # a keyframe refreshes every slot

    def non_keyframe_setup(self) -> None:
        f, bits = self.fields, self.bits
        f["intra_only"] = False if f["show_frame"] else bits.read_bool("intra_only")
        if not f["error_resilient_mode"]:
            f["reset_frame_context"] = bits.read_bits(2, "reset_frame_context")
        if f["intra_only"]:
            self.intra_only_setup()
        else:
            self.inter_setup()

    def intra_only_setup(self) -> None:
        f = self.fields
        self.frame_sync_code()
        if f["profile"] > 0:
            self.apply_color(self.color_config())
        else:
            # Profile 0 intra-only frames carry no color_config: 8-bit 4:2:0
            # BT.601 is implied (spec "Uncompressed header syntax", intra_only branch).
            self.apply_color(_ColorConfig())
        f["refresh_frame_flags"] = self.bits.read_bits(8, "refresh_frame_flags")
        self.frame_size()
        self.render_size()

    def inter_setup(self) -> None:
        f, bits = self.fields, self.bits
        if self.state.color is None:
            raise BitstreamError("inter frame before any keyframe or intra-only frame")
        self.apply_color(self.state.color)
        f["refresh_frame_flags"] = bits.read_bits(8, "refresh_frame_flags")
        ref_idx, sign_bias = [], []
        for _ in range(REFS_PER_FRAME):
            ref_idx.append(bits.read_bits(3, "ref_frame_idx"))
            sign_bias.append(bits.read_bool("ref_frame_sign_bias"))
        f["ref_frame_idx"], f["ref_frame_sign_bias"] = tuple(ref_idx), tuple(sign_bias)
        self.frame_size_with_refs()
        f["allow_high_precision_mv"] = bits.read_bool("allow_high_precision_mv")
        self.read_interpolation_filter()

    def frame_sync_code(self) -> None:
        code = tuple(self.bits.read_bits(8, "frame_sync_code") for _ in range(3))
        if code != SYNC_CODE:
            found = " ".join(f"{byte:02x}" for byte in code)
            raise BitstreamError(f"bad frame sync code {found} (expected 49 83 42)")

    # ---- color_config() (spec "Color config syntax") ----
    def color_config(self) -> _ColorConfig:
        bits, profile = self.bits, self.fields["profile"]
        color = _ColorConfig()
        if profile >= 2:
            color.bit_depth = 12 if bits.read_bool("ten_or_twelve_bit") else 10
        color.color_space = bits.read_bits(3, "color_space")
        carries_subsampling = profile in (1, 3)
        if color.color_space != CS_RGB:
            color.color_range = bits.read_bits(1, "color_range")
            if carries_subsampling:
                color.subsampling_x = bits.read_bits(1, "subsampling_x")
                color.subsampling_y = bits.read_bits(1, "subsampling_y")
                if color.subsampling_x and color.subsampling_y:
                    raise BitstreamError(f"4:2:0 subsampling in profile {profile}, "
                                         "which is for 4:4:4/4:2:2/4:4:0 only")
                self.reserved_zero()
        else:
            # RGB is always full range and never subsampled; profiles 0 and 2
            # are 4:2:0 only, so RGB is invalid there.
            color.color_range = 1
            if not carries_subsampling:
                raise BitstreamError(f"RGB color space in profile {profile}")
            color.subsampling_x = color.subsampling_y = 0
            self.reserved_zero()
        self.state.color = color
        return color

    def reserved_zero(self) -> None:
        if self.bits.read_bits(1, "reserved_zero"):
            raise BitstreamError("reserved bit set in color_config")

    def apply_color(self, color: _ColorConfig) -> None:
        self.state.color = color
        self.fields.update(bit_depth=color.bit_depth, color_space=color.color_space,
                           color_range=color.color_range, subsampling_x=color.subsampling_x,
                           subsampling_y=color.subsampling_y)

    # ---- frame_size(), render_size(), frame_size_with_refs() ----
    def frame_size(self) -> None:
        self.fields["width"] = self.bits.read_bits(16, "frame_width_minus_1") + 1
        self.fields["height"] = self.bits.read_bits(16, "frame_height_minus_1") + 1

    def render_size(self) -> None:
        f = self.fields
        if self.bits.read_bool("render_and_frame_size_different"):
            f["render_width"] = self.bits.read_bits(16, "render_width_minus_1") + 1
            f["render_height"] = self.bits.read_bits(16, "render_height_minus_1") + 1
        else:
            f["render_width"], f["render_height"] = f["width"], f["height"]

    def frame_size_with_refs(self) -> None:
        # The size is either copied from the first reference flagged
        # found_ref, or coded explicitly when none is.
        f = self.fields
        for i in range(REFS_PER_FRAME):
            if self.bits.read_bool("found_ref"):
                slot = f["ref_frame_idx"][i]
                size = self.state.ref_sizes[slot]
                if size is None:
                    raise BitstreamError(f"frame size taken from empty reference slot {slot}")
                f["width"], f["height"] = size
                f["size_from_ref"] = i
                break
        else:
            self.frame_size()
        self.render_size()

    def read_interpolation_filter(self) -> None:
        f = self.fields
        f["is_filter_switchable"] = self.bits.read_bool("is_filter_switchable")
        if f["is_filter_switchable"]:
            f["interpolation_filter"] = V4L2_VP9_INTERP_FILTER_SWITCHABLE
        else:
            raw = self.bits.read_bits(2, "raw_interpolation_filter")
            f["raw_interpolation_filter"] = raw
            f["interpolation_filter"] = LITERAL_TO_V4L2_INTERP_FILTER[raw]

    # ---- frame contexts ----
    def frame_context_setup(self) -> None:
        f, bits = self.fields, self.bits
        if f["error_resilient_mode"]:
            f["refresh_frame_context"] = False
            f["frame_parallel_decoding_mode"] = True
        else:
            f["refresh_frame_context"] = bits.read_bool("refresh_frame_context")
            f["frame_parallel_decoding_mode"] = bits.read_bool("frame_parallel_decoding_mode")
        f["frame_context_idx"] = bits.read_bits(2, "frame_context_idx")
        intra = f["frame_type"] == KEY_FRAME or f.get("intra_only", False)
        if intra or f["error_resilient_mode"]:
            self.state.setup_past_independence()

    # ---- loop_filter_params() (spec "Loop filter params syntax") ----
    def loop_filter_params(self) -> None:
        f, bits, state = self.fields, self.bits, self.state
        f["loop_filter_level"] = bits.read_bits(6, "loop_filter_level")
        f["loop_filter_sharpness"] = bits.read_bits(3, "loop_filter_sharpness")
        f["loop_filter_delta_enabled"] = bits.read_bool("loop_filter_delta_enabled")
        if f["loop_filter_delta_enabled"]:
            f["loop_filter_delta_update"] = bits.read_bool("loop_filter_delta_update")
            if f["loop_filter_delta_update"]:
                self.update_deltas(state.lf_ref_deltas, "loop_filter_ref_deltas")
                self.update_deltas(state.lf_mode_deltas, "loop_filter_mode_deltas")
        # Deltas not updated keep their last value, which is what the
        # kernel wants too ("users should pass its last value").
        f["loop_filter_ref_deltas"] = tuple(state.lf_ref_deltas)
        f["loop_filter_mode_deltas"] = tuple(state.lf_mode_deltas)

    def update_deltas(self, deltas: list[int], what: str) -> None:
        for i in range(len(deltas)):
            if self.bits.read_bool(what):
                deltas[i] = self.bits.read_su(6, what)

    # ---- quantization_params() (spec "Quantization params syntax") ----
    def quantization_params(self) -> None:
        f, bits = self.fields, self.bits
        f["base_q_idx"] = bits.read_bits(8, "base_q_idx")
        f["delta_q_y_dc"] = bits.read_delta(4, "delta_q_y_dc")
        f["delta_q_uv_dc"] = bits.read_delta(4, "delta_q_uv_dc")
        f["delta_q_uv_ac"] = bits.read_delta(4, "delta_q_uv_ac")

    # ---- segmentation_params() (spec "Segmentation params syntax") ----
    def segmentation_params(self) -> None:
        f, bits, state = self.fields, self.bits, self.state
        f["segmentation_enabled"] = bits.read_bool("segmentation_enabled")
        if f["segmentation_enabled"]:
            f["segmentation_update_map"] = bits.read_bool("segmentation_update_map")
            if f["segmentation_update_map"]:
                self.segmentation_map_probs()
            f["segmentation_update_data"] = bits.read_bool("segmentation_update_data")
            if f["segmentation_update_data"]:
                self.segmentation_features()
        f["segmentation_tree_probs"] = tuple(state.seg_tree_probs)
        f["segmentation_pred_probs"] = tuple(state.seg_pred_probs)
        f["segmentation_abs_or_delta_update"] = state.seg_abs_or_delta_update
        f["segmentation_feature_enabled"] = tuple(map(tuple, state.seg_feature_enabled))
        f["segmentation_feature_data"] = tuple(map(tuple, state.seg_feature_data))

    def segmentation_map_probs(self) -> None:
        f, state = self.fields, self.state
        state.seg_tree_probs = [self.read_prob("segmentation_tree_probs") for _ in range(7)]
        f["segmentation_temporal_update"] = self.bits.read_bool("segmentation_temporal_update")
        # Without temporal update the prediction probabilities are unused
        # and defined as 255.
        state.seg_pred_probs = [
            self.read_prob("segmentation_pred_prob") if f["segmentation_temporal_update"] else 255
            for _ in range(3)]

    def segmentation_features(self) -> None:
        bits, state = self.bits, self.state
        state.seg_abs_or_delta_update = bits.read_bool("segmentation_abs_or_delta_update")
        for segment in range(MAX_SEGMENTS):
            for feature in range(SEG_LVL_MAX):
                enabled = bits.read_bool("feature_enabled")
                value = 0
                if enabled:
                    value = bits.read_bits(SEGMENTATION_FEATURE_BITS[feature], "feature_value")
                    if SEGMENTATION_FEATURE_SIGNED[feature] and bits.read_bool("feature_sign"):
                        value = -value
                state.seg_feature_enabled[segment][feature] = enabled
                state.seg_feature_data[segment][feature] = value

    def read_prob(self, what: str) -> int:
        return self.bits.read_bits(8, what) if self.bits.read_bool(what) else 255

    # ---- tile_info() (spec "Tile info syntax") ----
    def tile_info(self) -> None:
        f, bits = self.fields, self.bits
        sb64_cols = (((f["width"] + 7) >> 3) + 7) >> 3
        min_log2, max_log2 = _min_log2_tile_cols(sb64_cols), _max_log2_tile_cols(sb64_cols)
        tile_cols_log2 = min_log2
        while tile_cols_log2 < max_log2 and bits.read_bool("increment_tile_cols_log2"):
            tile_cols_log2 += 1
        f["tile_cols_log2"] = tile_cols_log2
        tile_rows_log2 = bits.read_bits(1, "tile_rows_log2")
        if tile_rows_log2:
            tile_rows_log2 += bits.read_bits(1, "increment_tile_rows_log2")
        f["tile_rows_log2"] = tile_rows_log2

    # ---- header_size_in_bytes and trailing_bits() ----
    def header_sizes(self) -> None:
        f = self.fields
        compressed = self.bits.read_bits(16, "header_size_in_bytes")
        if compressed == 0:
            raise BitstreamError("compressed header size (header_size_in_bytes) is 0")
        uncompressed = self.bits.byte_position   # trailing_bits pad to a byte
        if uncompressed + compressed > len(self.frame):
            raise BitstreamError(
                f"truncated frame: headers need {uncompressed} + {compressed} bytes, "
                f"frame has {len(self.frame)}")
        f["compressed_header_size"] = compressed
        f["uncompressed_header_size"] = uncompressed


def _min_log2_tile_cols(sb64_cols: int) -> int:
    """calc_min_log2_tile_cols: tiles at most 64 superblocks wide."""
    min_log2 = 0
    while (MAX_TILE_WIDTH_B64 << min_log2) < sb64_cols:
        min_log2 += 1
    return min_log2


def _max_log2_tile_cols(sb64_cols: int) -> int:
    """calc_max_log2_tile_cols: tiles at least 4 superblocks wide."""
    max_log2 = 1
    while (sb64_cols >> max_log2) >= MIN_TILE_WIDTH_B64:
        max_log2 += 1
    return max_log2 - 1


# ====================================================================
# Reference slots -> CAPTURE timestamps
# ====================================================================

class Vp9References:
    """Which CAPTURE buffer timestamp each of the 8 reference slots holds.

    V4L2 stateless decoders name reference frames by the timestamp of the
    CAPTURE buffer that holds them (``last_frame_ts`` etc.), so the client
    mirrors the decoder's slot refresh ("Reference frame update process") with timestamps.
    """

    def __init__(self) -> None:
        self._slots: list[int | None] = [None] * NUM_REF_FRAMES

    def reset(self) -> None:
        self._slots = [None] * NUM_REF_FRAMES

    @property
    def slots(self) -> tuple[int | None, ...]:
        return tuple(self._slots)

    def slot_timestamp(self, idx: int) -> int:
        """The timestamp in slot ``idx``: what show_existing_frame shows again."""
        timestamp = self._slots[idx]
        if timestamp is None:
            raise BitstreamError(f"reference slot {idx} holds no frame yet")
        return timestamp

    def refs_for(self, hdr: Vp9FrameHeader) -> tuple[int, int, int]:
        """(last_ts, golden_ts, alt_ts) for ``hdr``; zeros for intra frames,
        which reference nothing."""
        if hdr.frame_is_intra or hdr.show_existing_frame:
            return (0, 0, 0)
        last, golden, alt = (self.slot_timestamp(idx) for idx in hdr.ref_frame_idx)
        return last, golden, alt

    def update(self, hdr: Vp9FrameHeader, timestamp: int) -> None:
        """Record that the frame decoded into the buffer ``timestamp`` now sits
        in every slot its refresh_frame_flags names (all 8 for a keyframe)."""
        for slot in range(NUM_REF_FRAMES):
            if hdr.refresh_frame_flags >> slot & 1:
                self._slots[slot] = timestamp


# ====================================================================
# struct v4l2_ctrl_vp9_frame
# ====================================================================

def frame_control(hdr: Vp9FrameHeader, last_ts: int = 0, golden_ts: int = 0,
                  alt_ts: int = 0) -> bytes:
    """``struct v4l2_ctrl_vp9_frame`` for ``hdr``, as bytes for
    ``V4L2_CID_STATELESS_VP9_FRAME``.  Timestamps are CAPTURE buffer
    timestamps in nanoseconds (``v4l2_timeval_to_ns``)."""
    if hdr.show_existing_frame:
        raise ValueError("show_existing_frame decodes nothing: the client shows the "
                         "buffer of Vp9References.slot_timestamp(frame_to_show_map_idx)")
    ctrl = ffi.new("struct v4l2_ctrl_vp9_frame *")
    _fill_loop_filter(ctrl.lf, hdr)
    _fill_quantization(ctrl.quant, hdr)
    _fill_segmentation(ctrl.seg, hdr)
    ctrl.flags = _frame_flags(hdr)
    ctrl.compressed_header_size = hdr.compressed_header_size
    ctrl.uncompressed_header_size = hdr.uncompressed_header_size
    ctrl.frame_width_minus_1 = hdr.width - 1
    ctrl.frame_height_minus_1 = hdr.height - 1
    ctrl.render_width_minus_1 = hdr.render_width - 1
    ctrl.render_height_minus_1 = hdr.render_height - 1
    ctrl.last_frame_ts, ctrl.golden_frame_ts, ctrl.alt_frame_ts = last_ts, golden_ts, alt_ts
    ctrl.ref_frame_sign_bias = _sign_bias_mask(hdr)
    ctrl.reset_frame_context = _v4l2_reset_frame_context(hdr.reset_frame_context)
    ctrl.frame_context_idx = hdr.frame_context_idx
    ctrl.profile = hdr.profile
    ctrl.bit_depth = hdr.bit_depth
    ctrl.interpolation_filter = hdr.interpolation_filter
    ctrl.tile_cols_log2 = hdr.tile_cols_log2
    ctrl.tile_rows_log2 = hdr.tile_rows_log2
    # reference_mode is coded in the compressed header (spec "Frame reference
    # mode syntax"), which this parser does not read; our daemon
    # decodes the whole frame with libavcodec and does not need it.  Leave
    # it at 0 (SINGLE_REFERENCE), as ffi.new zeroed it.
    return bytes(ffi.buffer(ctrl))


def _frame_flags(hdr: Vp9FrameHeader) -> int:
    flag_for = (
        (hdr.is_keyframe, uapi.V4L2_VP9_FRAME_FLAG_KEY_FRAME),
        (hdr.show_frame, uapi.V4L2_VP9_FRAME_FLAG_SHOW_FRAME),
        (hdr.error_resilient_mode, uapi.V4L2_VP9_FRAME_FLAG_ERROR_RESILIENT),
        (hdr.intra_only, uapi.V4L2_VP9_FRAME_FLAG_INTRA_ONLY),
        (hdr.allow_high_precision_mv, uapi.V4L2_VP9_FRAME_FLAG_ALLOW_HIGH_PREC_MV),
        (hdr.refresh_frame_context, uapi.V4L2_VP9_FRAME_FLAG_REFRESH_FRAME_CTX),
        (hdr.frame_parallel_decoding_mode, uapi.V4L2_VP9_FRAME_FLAG_PARALLEL_DEC_MODE),
        (hdr.subsampling_x, uapi.V4L2_VP9_FRAME_FLAG_X_SUBSAMPLING),
        (hdr.subsampling_y, uapi.V4L2_VP9_FRAME_FLAG_Y_SUBSAMPLING),
        (hdr.color_range, uapi.V4L2_VP9_FRAME_FLAG_COLOR_RANGE_FULL_SWING),
    )
    return uapi.flag_mask(flag_for)


def _sign_bias_mask(hdr: Vp9FrameHeader) -> int:
    last, golden, alt = hdr.ref_frame_sign_bias
    return uapi.flag_mask(((last, V4L2_VP9_SIGN_BIAS_LAST), (golden, V4L2_VP9_SIGN_BIAS_GOLDEN),
                           (alt, V4L2_VP9_SIGN_BIAS_ALT)))


def _v4l2_reset_frame_context(coded: int) -> int:
    # Coded 0 and 1 both mean "no reset"; 2 resets the context
    # frame_context_idx names, 3 resets all four (spec "Frame semantics").
    return {2: V4L2_VP9_RESET_FRAME_CTX_SPEC,
            3: V4L2_VP9_RESET_FRAME_CTX_ALL}.get(coded, V4L2_VP9_RESET_FRAME_CTX_NONE)


def _fill_loop_filter(lf, hdr: Vp9FrameHeader) -> None:
    lf.ref_deltas = list(hdr.loop_filter_ref_deltas)
    lf.mode_deltas = list(hdr.loop_filter_mode_deltas)
    lf.level = hdr.loop_filter_level
    lf.sharpness = hdr.loop_filter_sharpness
    lf.flags = uapi.flag_mask((
        (hdr.loop_filter_delta_enabled, uapi.V4L2_VP9_LOOP_FILTER_FLAG_DELTA_ENABLED),
        (hdr.loop_filter_delta_update, uapi.V4L2_VP9_LOOP_FILTER_FLAG_DELTA_UPDATE)))


def _fill_quantization(quant, hdr: Vp9FrameHeader) -> None:
    quant.base_q_idx = hdr.base_q_idx
    quant.delta_q_y_dc = hdr.delta_q_y_dc
    quant.delta_q_uv_dc = hdr.delta_q_uv_dc
    quant.delta_q_uv_ac = hdr.delta_q_uv_ac


def _fill_segmentation(seg, hdr: Vp9FrameHeader) -> None:
    for segment in range(MAX_SEGMENTS):
        seg.feature_data[segment] = list(hdr.segmentation_feature_data[segment])
        # One bit per feature: V4L2_VP9_SEGMENT_FEATURE_ENABLED(id) = 1 << id.
        seg.feature_enabled[segment] = uapi.flag_mask(
            (enabled, 1 << feature)
            for feature, enabled in enumerate(hdr.segmentation_feature_enabled[segment]))
    seg.tree_probs = list(hdr.segmentation_tree_probs)
    seg.pred_probs = list(hdr.segmentation_pred_probs)
    seg.flags = uapi.flag_mask((
        (hdr.segmentation_enabled, uapi.V4L2_VP9_SEGMENTATION_FLAG_ENABLED),
        (hdr.segmentation_update_map, uapi.V4L2_VP9_SEGMENTATION_FLAG_UPDATE_MAP),
        (hdr.segmentation_temporal_update, uapi.V4L2_VP9_SEGMENTATION_FLAG_TEMPORAL_UPDATE),
        (hdr.segmentation_update_data, uapi.V4L2_VP9_SEGMENTATION_FLAG_UPDATE_DATA),
        (hdr.segmentation_abs_or_delta_update,
         uapi.V4L2_VP9_SEGMENTATION_FLAG_ABS_OR_DELTA_UPDATE),
    ))
