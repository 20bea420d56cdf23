"""The client side of AV1 for a V4L2 stateless decoder: headers and frames.

A stateless AV1 client turns each temporal unit (one container packet) into
requests, one per coded frame:

1. :class:`Av1Parser` walks the OBUs of a temporal unit
   (:mod:`~daedalus_v4l2.codecs.av1_obu`), reads sequence headers
   (:func:`parse_sequence_header`, spec 5.5) and frame headers (spec 5.9,
   ``uncompressed_header``) into :class:`SequenceHeader` and
   :class:`FrameHeader`, finds every tile of the tile groups (spec 5.11.1),
   and hands back one :class:`FrameUnit` per frame: the frame's own OBUs
   (what the OUTPUT buffer holds, as ``V4L2_PIX_FMT_AV1_FRAME`` says: the
   frame "including the frame header, as extracted from the container") and
   the tiles' offsets inside them.
2. It keeps what the spec carries from frame to frame in eight reference
   slots (:class:`RefSlot`: sizes, order hints, loop filter deltas,
   segmentation, global motion and film grain parameters), because later
   frame headers are coded relative to them.
3. :class:`Av1References` mirrors the slots with CAPTURE timestamps, which
   is how V4L2 names reference frames (``reference_frame_ts[8]``).

``Av1Parser(native=True)``, what the client uses, reads the frame headers and
keeps the slots in C (:mod:`~daedalus_v4l2.codecs.av1_native`): its units'
headers are ``dv_av1_frame_header *``, the same fields flattened, and the walk
over a unit's OBUs is one C call too, except for the units it leaves to the
walk here (a new sequence header, anything malformed).  The Python readers are
the default, and the oracle the C is tested against.

:mod:`~daedalus_v4l2.codecs.av1_controls` turns the headers into the V4L2
control structs.  Every malformed input raises
:class:`~daedalus_v4l2.errors.BitstreamError`; a parser's state only
changes when a whole temporal unit parsed cleanly.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

from daedalus_v4l2.codecs import av1_native, av1_obu
from daedalus_v4l2.codecs.av1_obu import Obu
from daedalus_v4l2.codecs.av1_syntax import (  # noqa: F401  (the module's public names)
    INTER_FRAME, INTRA_ONLY_FRAME, KEY_FRAME, NUM_REF_FRAMES, REFS_PER_FRAME, SWITCH_FRAME,
    FrameHeader, FrameHeaderReader, RefSlot, SequenceHeader, copy_film_grain, copy_rows,
    parse_sequence_header, read_le)
from daedalus_v4l2.codecs.bitreader import BitReader
from daedalus_v4l2.errors import BitstreamError


@dataclass
class Tile:
    """A tile's coded data inside a :class:`FrameUnit`'s bytes."""
    offset: int
    size: int
    row: int
    col: int


@dataclass
class FrameUnit:
    """One frame of a temporal unit: what one request carries.

    ``data`` is the frame's OBUs as they were in the container (a frame OBU,
    or a frame header OBU and its tile group OBUs); ``tiles`` locate every
    tile in it.  A show-existing frame has its one frame header OBU and no
    tiles: clients show it again instead of decoding it.  ``tile_entries``:
    the tiles as ``V4L2_CID_STATELESS_AV1_TILE_GROUP_ENTRY``'s array, when the C
    walk read the unit (None from the Python walk: av1_controls builds it).
    """
    header: FrameHeader
    sequence: SequenceHeader
    data: bytes
    tiles: list[Tile]
    temporal_id: int = 0
    spatial_id: int = 0
    tile_entries: bytes | None = None


@dataclass
class _ParserState:
    sequence: SequenceHeader | None = None
    slots: list[RefSlot] = field(default_factory=lambda: [RefSlot() for _ in range(NUM_REF_FRAMES)])
    sequence_payload: bytes = b""  # what ``sequence`` was read from
    native: av1_native.NativeState | None = None  # the C reader's sequence and slots

    def copy(self) -> _ParserState:
        # A shallow copy is enough to roll back: a temporal unit replaces the sequence
        # header and slots (RefSlot snapshots, never changed in place), it does not edit
        # them. (copy.deepcopy of the state cost ~2-3 ms a frame at 1080p.)
        return _ParserState(self.sequence, list(self.slots), self.sequence_payload,
                            self.native.copy() if self.native is not None else None)


class Av1Parser:
    """Parses the temporal units of one stream, in decode order: frame headers
    in C when ``native`` (see the module's docstring), else in Python."""

    def __init__(self, native: bool = False) -> None:
        self.native = native
        self._state = self._new_state()
        # the units of a stream in one C call each; the rest walked here
        self._unit_reader = av1_native.UnitReader() if native else None

    def _new_state(self) -> _ParserState:
        return _ParserState(native=av1_native.NativeState() if self.native else None)

    def reset(self) -> None:
        self._state = self._new_state()

    @property
    def sequence(self) -> SequenceHeader | None:
        return self._state.sequence

    def slot(self, index: int) -> RefSlot:
        return self._state.slots[index]

    def temporal_unit(self, data: bytes) -> list[FrameUnit]:
        """The frames of one temporal unit (a container packet), in decode order."""
        data = bytes(data)
        if self._unit_reader is not None:
            units = self._read_in_c(data)
            if units is not None:
                return units
        state = self._state.copy()
        try:
            units = _TemporalUnitReader(data, state).read()
        except (IndexError, ValueError, ZeroDivisionError) as exc:
            if isinstance(exc, BitstreamError):
                raise
            raise BitstreamError(f"malformed AV1 temporal unit: {exc}") from exc
        self._state = state
        return units

    def _read_in_c(self, data: bytes) -> list[FrameUnit] | None:
        """The unit read by the C walk, or None when it is the Python walk's
        (av1_native.UnitReader): the state is then as it was."""
        state = self._state
        # before any sequence header the payload is b"": the C walk leaves the unit
        frames = self._unit_reader.read(data, state.native, state.sequence_payload)
        if frames is None:
            return None
        return [FrameUnit(header, state.sequence, obus, [Tile(*tile) for tile in tiles],
                          temporal_id, spatial_id, tile_entries)
                for header, obus, tiles, temporal_id, spatial_id, tile_entries in frames]


@dataclass
class _PendingFrame:
    """A frame whose header is read and whose tiles are still coming."""
    header: FrameHeader
    data: bytearray      # its OBUs so far
    obu: Obu             # the OBU its header came in
    tiles: list[Tile] = field(default_factory=list)
    next_tile: int = 0


class _TemporalUnitReader:
    """Walks the OBUs of one temporal unit and groups them into frames."""

    def __init__(self, data: bytes, state: _ParserState) -> None:
        self.data, self.state = data, state
        self.units: list[FrameUnit] = []
        self.pending: _PendingFrame | None = None

    def read(self) -> list[FrameUnit]:
        for obu in av1_obu.split_obus(self.data):
            if self._dropped_by_operating_point(obu):
                continue
            self._obu(obu)
        if self.pending is not None:
            raise BitstreamError("temporal unit ends in the middle of a frame (tiles missing)")
        return self.units

    def _dropped_by_operating_point(self, obu: Obu) -> bool:
        """Spec 7.5: OBUs of layers outside the operating point are dropped."""
        seq = self.state.sequence
        if seq is None or not obu.has_extension or seq.operating_point_idc == 0:
            return False
        if obu.type in (av1_obu.OBU_SEQUENCE_HEADER, av1_obu.OBU_TEMPORAL_DELIMITER):
            return False
        idc = seq.operating_point_idc
        return not ((idc >> obu.temporal_id) & 1 and (idc >> (obu.spatial_id + 8)) & 1)

    def _payload(self, obu: Obu) -> bytes:
        return self.data[obu.payload_start:obu.end]

    def _obu(self, obu: Obu) -> None:
        if obu.type == av1_obu.OBU_SEQUENCE_HEADER:
            self._sequence_header(self._payload(obu))
        elif obu.type == av1_obu.OBU_TEMPORAL_DELIMITER:
            if self.pending is not None:
                raise BitstreamError("temporal delimiter in the middle of a frame")
        elif obu.type == av1_obu.OBU_FRAME_HEADER:
            if self.pending is None:  # else frame_header_copy() of the frame in progress
                self._frame_header_obu(obu)
        elif obu.type == av1_obu.OBU_FRAME:
            self._frame_obu(obu)
        elif obu.type == av1_obu.OBU_TILE_GROUP:
            self._tile_group_obu(obu)
        # Redundant frame headers repeat the frame in progress; metadata, tile
        # lists, padding and reserved types decode no picture.

    def _sequence_header(self, payload: bytes) -> None:
        """Read, unless it repeats the one in force (encoders repeat it at every key
        frame, some in every temporal unit): the same object then, so the client
        checks and converts a sequence once."""
        state = self.state
        if state.sequence is not None and payload == state.sequence_payload:
            return
        state.sequence = parse_sequence_header(payload)
        if state.native is not None:
            state.native.read_sequence(payload)
        state.sequence_payload = payload

    def _sequence(self) -> SequenceHeader:
        if self.state.sequence is None:
            raise BitstreamError("frame before any sequence header")
        return self.state.sequence

    def _read_header(self, payload: bytes, obu: Obu):
        """The frame header at the start of ``payload``, and the byte after it
        (byte_alignment() included)."""
        sequence = self._sequence()  # refuses a frame before any sequence header
        if self.state.native is not None:
            header = self.state.native.read_frame_header(payload, obu.temporal_id,
                                                         obu.spatial_id)
            return header, (header.header_bits + 7) >> 3
        bits = BitReader(payload)
        header = FrameHeaderReader(bits, sequence, self.state.slots,
                                   obu.temporal_id, obu.spatial_id).read()
        bits.align()
        return header, bits.byte_position

    def _frame_header_obu(self, obu: Obu) -> None:
        header, _ = self._read_header(self._payload(obu), obu)
        frame = _PendingFrame(header, bytearray(self.data[obu.start:obu.end]), obu)
        if header.show_existing_frame:
            self._finish(frame)
        else:
            self.pending = frame

    def _frame_obu(self, obu: Obu) -> None:
        if self.pending is not None:
            raise BitstreamError("frame OBU while the previous frame still lacks tiles")
        payload = self._payload(obu)
        header, end = self._read_header(payload, obu)
        if header.show_existing_frame:
            raise BitstreamError("frame OBU with show_existing_frame set")
        self.pending = _PendingFrame(header, bytearray(self.data[obu.start:obu.end]), obu)
        self._tile_group(payload[end:], obu.payload_start - obu.start + end)

    def _tile_group_obu(self, obu: Obu) -> None:
        if self.pending is None:
            raise BitstreamError("tile group without a frame header")
        base = len(self.pending.data) + obu.payload_start - obu.start
        self.pending.data += self.data[obu.start:obu.end]
        self._tile_group(self._payload(obu), base)

    def _tile_group(self, payload: bytes, base: int) -> None:
        """tile_group_obu() (spec 5.11.1): record each tile's place, relative to the unit."""
        frame = self.pending
        tile_cols, tile_rows, tile_bits, tile_size_bytes = _tile_layout(frame.header)
        num_tiles = tile_cols * tile_rows
        bits = BitReader(payload)
        tg_start, tg_end = 0, num_tiles - 1
        if num_tiles > 1 and bits.read_bool("tile_start_and_end_present_flag"):
            tg_start = bits.read_bits(tile_bits, "tg_start")
            tg_end = bits.read_bits(tile_bits, "tg_end")
        bits.align()
        if tg_start != frame.next_tile or tg_end < tg_start or tg_end >= num_tiles:
            raise BitstreamError(f"tile group {tg_start}..{tg_end} does not continue at tile "
                                 f"{frame.next_tile} of {num_tiles}")
        pos = bits.byte_position
        for tile_num in range(tg_start, tg_end + 1):
            if tile_num == tg_end:
                size = len(payload) - pos
            else:
                size = read_le(payload, pos, tile_size_bytes, "tile_size_minus_1") + 1
                pos += tile_size_bytes
            if size <= 0 or pos + size > len(payload):
                raise BitstreamError(f"tile {tile_num}: {size} bytes at byte {pos} do not fit "
                                     f"the {len(payload)}-byte tile group")
            frame.tiles.append(Tile(base + pos, size, tile_num // tile_cols, tile_num % tile_cols))
            pos += size
        frame.next_tile = tg_end + 1
        if tg_end == num_tiles - 1:
            self.pending = None
            self._finish(frame)

    def _finish(self, frame: _PendingFrame) -> None:
        if self.state.native is not None:
            self.state.native.update(frame.header)
        else:
            _update_references(self.state, frame.header)
        self.units.append(FrameUnit(frame.header, self._sequence(), bytes(frame.data), frame.tiles,
                                    frame.obu.temporal_id, frame.obu.spatial_id))


def _tile_layout(header) -> tuple[int, int, int, int]:
    """(tile columns, tile rows, bits of a tile number, tile_size_bytes) of a
    frame header, Python's or C's."""
    if isinstance(header, FrameHeader):
        info = header.tile_info
        return (info.tile_cols, info.tile_rows, info.tile_cols_log2 + info.tile_rows_log2,
                info.tile_size_bytes)
    return (header.tile_cols, header.tile_rows, header.tile_cols_log2 + header.tile_rows_log2,
            header.tile_size_bytes)


def _update_references(state: _ParserState, header: FrameHeader) -> None:
    """The reference frame update process (spec 7.20), for what headers need."""
    if header.show_existing_frame:
        if header.frame_type != KEY_FRAME:
            return
        # Showing a key frame again reloads it and refreshes every slot with it
        # (spec 7.21, "Reference frame loading process").
        shown = copy.deepcopy(state.slots[header.frame_to_show_map_idx])
        shown.showable = False
        state.slots = [copy.deepcopy(shown) for _ in range(NUM_REF_FRAMES)]
        return
    for i in range(NUM_REF_FRAMES):
        if header.refresh_frame_flags >> i & 1:
            state.slots[i] = _saved_slot(header)


def _saved_slot(h: FrameHeader) -> RefSlot:
    return RefSlot(
        valid=True, frame_id=h.current_frame_id, frame_type=h.frame_type,
        upscaled_width=h.upscaled_width, frame_width=h.frame_width, frame_height=h.frame_height,
        render_width=h.render_width,
        render_height=h.render_height, order_hint=h.order_hint,
        saved_order_hints=list(h.order_hints), gm_params=copy_rows(h.gm_params),
        lf_ref_deltas=list(h.loop_filter.ref_deltas),
        lf_mode_deltas=list(h.loop_filter.mode_deltas),
        seg_feature_enabled=copy_rows(h.segmentation.feature_enabled),
        seg_feature_data=copy_rows(h.segmentation.feature_data),
        film_grain=copy_film_grain(h.film_grain), showable=h.showable_frame)


# ====================================================================
# Reference slots -> CAPTURE timestamps
# ====================================================================

class Av1References:
    """Which CAPTURE buffer timestamp each of the eight reference slots holds."""

    def __init__(self) -> None:
        self._slots: list[int] = [0] * NUM_REF_FRAMES

    @property
    def slots(self) -> list[int]:
        return list(self._slots)

    def slot_timestamp(self, idx: int) -> int:
        if not self._slots[idx]:
            raise BitstreamError(f"reference slot {idx} holds no frame yet")
        return self._slots[idx]

    def check_references(self, header) -> None:
        """An inter frame must only use slots that hold a frame (``header``:
        Python's or C's)."""
        if header.show_existing_frame or header.frame_type in (KEY_FRAME, INTRA_ONLY_FRAME):
            return
        for idx in header.ref_frame_idx:
            self.slot_timestamp(idx)

    def update(self, header, timestamp: int) -> None:
        """After a decoded frame (``timestamp``) or a shown-again key frame."""
        if header.show_existing_frame:
            if header.frame_type == KEY_FRAME:
                shown = self.slot_timestamp(header.frame_to_show_map_idx)
                self._slots = [shown] * NUM_REF_FRAMES
            return
        for i in range(NUM_REF_FRAMES):
            if header.refresh_frame_flags >> i & 1:
                self._slots[i] = timestamp
