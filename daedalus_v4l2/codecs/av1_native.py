"""The AV1 client's per-frame work in C (``native/av1_headers.c``,
``native/av1_controls.c``, built into :mod:`daedalus_v4l2._native`): the walk
over a temporal unit's OBUs (:class:`UnitReader`), the headers, the controls.

A 1080p AV1 stream asks for one frame header, one reference update and one
frame control a request.  In Python (:mod:`~daedalus_v4l2.codecs.av1_syntax`,
:mod:`~daedalus_v4l2.codecs.av1_controls`) those were some 200 interpreter
calls a picture, which the decode path pays on the CPUs libdav1d needs; in C
they are a few microseconds.  The Python reader stays: it is the oracle that
``tests/test_av1_native.py`` holds the C to, field for field and byte for byte,
and what the parser tests and the daemon (once per sequence) read with.

A frame header here is a ``dv_av1_frame_header *`` (cffi), whose fields have
the names of :class:`~daedalus_v4l2.codecs.av1_syntax.FrameHeader`'s, flattened
(``tile_info.tile_cols`` is ``tile_cols``, ``segmentation.enabled`` is
``seg_enabled``).
"""
from __future__ import annotations

import struct

from ..errors import BitstreamError
from ..v4l2.uapi import ffi as uapi_ffi  # the controls' layouts, as the rest of the client uses
from . import native_lib
from .native_lib import ERROR_BYTES

ffi, lib = native_lib.load("dv_av1_parse_frame_header", "AV1 header code")
FRAME_CONTROL_SIZE = uapi_ffi.sizeof("struct v4l2_ctrl_av1_frame")
FILM_GRAIN_CONTROL_SIZE = uapi_ffi.sizeof("struct v4l2_ctrl_av1_film_grain")


class NativeState:
    """The sequence header and the eight reference slots, in C, for one stream."""

    def __init__(self, copy_of: NativeState | None = None) -> None:
        self.sequence = ffi.new("dv_av1_sequence *")
        self.slots = ffi.new("dv_av1_slot[8]")
        if copy_of is None:
            self._error = native_lib.error_buffer(ffi)
            return
        ffi.memmove(self.sequence, copy_of.sequence, ffi.sizeof("dv_av1_sequence"))
        ffi.memmove(self.slots, copy_of.slots, ffi.sizeof(self.slots))
        self._error = copy_of._error  # scratch for a message, read right after the call

    def copy(self) -> NativeState:
        """What a temporal unit reads into, so that a bad one leaves this untouched."""
        return NativeState(self)

    def read_sequence(self, payload: bytes) -> None:
        if lib.dv_av1_parse_sequence(payload, len(payload), self.sequence,
                                     self._error, ERROR_BYTES):
            raise BitstreamError(self._message())

    def read_frame_header(self, payload: bytes, temporal_id: int = 0, spatial_id: int = 0):
        """A new ``dv_av1_frame_header *`` for ``payload`` (a frame or frame header
        OBU's), read against the slots, which it does not change."""
        header = ffi.new("dv_av1_frame_header *")
        if lib.dv_av1_parse_frame_header(payload, len(payload), self.sequence, self.slots,
                                         temporal_id, spatial_id, header,
                                         self._error, ERROR_BYTES):
            raise BitstreamError(self._message())
        return header

    def update(self, header) -> None:
        """The reference frame update process (spec 7.20) after ``header``'s frame."""
        lib.dv_av1_update_slots(self.slots, header)

    def _message(self) -> str:
        return native_lib.message(ffi, self._error)


class UnitReader:
    """A temporal unit's OBU walk in one C call (``dv_av1_temporal_unit``): the
    frames of the units a stream is made of, read against a :class:`NativeState`,
    which it updates.  :meth:`read` gives None, having changed nothing, for a
    unit it leaves to the Python walk (codecs/av1.py): a new sequence header,
    OBU extension headers, more frames or tiles than its arrays hold, and any
    error, which the Python walk then reports as it always has."""

    MAX_FRAMES = 16     # a temporal unit: hidden frames, then the shown one
    MAX_TILES = 1024    # over all its frames (1080p SVT-AV1: 8 a frame)

    def __init__(self) -> None:
        self._headers = ffi.new("dv_av1_frame_header[]", self.MAX_FRAMES)
        self._frames = ffi.new("dv_av1_unit_frame[]", self.MAX_FRAMES)
        self._tiles = ffi.new("dv_av1_unit_tile[]", self.MAX_TILES)
        self._out = bytearray(0)
        self._out_buffer = ffi.from_buffer(self._out)

    def read(self, data: bytes, state: NativeState, sequence_payload: bytes):
        """[(header, the frame's OBUs, [(offset, size, row, col) of each tile],
        temporal_id, spatial_id, the tiles as V4L2_CID_STATELESS_AV1_TILE_GROUP_ENTRY's
        array)] of each frame, or None (see the class)."""
        if len(self._out) < len(data):
            self._out = bytearray(max(len(data), 2 * len(self._out)))
            self._out_buffer = ffi.from_buffer(self._out)
        count = lib.dv_av1_temporal_unit(
            data, len(data), sequence_payload or ffi.NULL, len(sequence_payload),
            state.sequence, state.slots, self._headers, self._frames, self.MAX_FRAMES,
            self._tiles, self.MAX_TILES, self._out_buffer, len(self._out))
        if count < 0:
            return None
        frames = []
        for i in range(count):
            frame = self._frames[i]
            header = ffi.new("dv_av1_frame_header *")
            ffi.memmove(header, self._headers + i, _HEADER_SIZE)
            obus = ffi.unpack(self._out_buffer + frame.data_offset, frame.data_size)
            tiles = ffi.buffer(self._tiles + frame.first_tile, _TILE_SIZE * frame.tile_count)
            frames.append((header, obus, list(_TILE.iter_unpack(tiles)), frame.temporal_id,
                           frame.spatial_id, tiles[:]))
        return frames


_HEADER_SIZE = ffi.sizeof("dv_av1_frame_header")
_TILE_SIZE = ffi.sizeof("dv_av1_unit_tile")
_TILE = struct.Struct("=4I")    # dv_av1_unit_tile: offset, size, row, col
if _TILE.size != _TILE_SIZE:
    raise ImportError("dv_av1_unit_tile is not four uint32_t: av1_headers.h changed")
# ...which is struct v4l2_ctrl_av1_tile_group_entry field for field, so a frame's tiles
# as the C walk gives them are its tile group entry control as they are.
if [ffi.offsetof("dv_av1_unit_tile", f) for f in ("offset", "size", "row", "col")] != \
        [uapi_ffi.offsetof("struct v4l2_ctrl_av1_tile_group_entry", f)
         for f in ("tile_offset", "tile_size", "tile_row", "tile_col")] or \
        uapi_ffi.sizeof("struct v4l2_ctrl_av1_tile_group_entry") != _TILE_SIZE:
    raise ImportError("dv_av1_unit_tile is no longer laid out as "
                      "struct v4l2_ctrl_av1_tile_group_entry: av1_headers.h changed")


def frame_control(header, reference_ts) -> bytes:
    """``struct v4l2_ctrl_av1_frame`` (what av1_controls.frame_control builds)."""
    if header.show_existing_frame:
        raise ValueError("show_existing_frame decodes nothing: the client shows the "
                         "buffer in that slot again")
    out = bytearray(FRAME_CONTROL_SIZE)
    if lib.dv_av1_frame_control(header, ffi.new("uint64_t[8]", list(reference_ts)),
                                ffi.from_buffer(out), FRAME_CONTROL_SIZE):
        raise RuntimeError("struct v4l2_ctrl_av1_frame: the C and cffi sizes differ")
    return bytes(out)


def film_grain_control(header) -> bytes:
    """``struct v4l2_ctrl_av1_film_grain`` (what av1_controls.film_grain_control builds)."""
    out = bytearray(FILM_GRAIN_CONTROL_SIZE)
    if lib.dv_av1_film_grain_control(header, ffi.from_buffer(out), FILM_GRAIN_CONTROL_SIZE):
        raise RuntimeError("struct v4l2_ctrl_av1_film_grain: the C and cffi sizes differ")
    return bytes(out)
