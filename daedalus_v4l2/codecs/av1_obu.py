"""AV1 OBU framing: reading and writing Open Bitstream Units.

AV1 in IVF, WebM/Matroska, MP4 and ``.obu`` files uses the "low overhead
bitstream format" (AV1 spec section 5.2): a sequence of OBUs, each with a
header and, normally, a leb128 ``obu_size``.  A container packet is one
*temporal unit*: a temporal delimiter, maybe a sequence header, then one or
more frames (hidden ones first, the shown one last) and metadata.

This module only knows the framing; :mod:`daedalus_v4l2.codecs.av1` reads
what is inside.  It also has the small MSB-first :class:`BitWriter` the
daemon uses to rebuild a sequence header OBU from its V4L2 control.

Every malformed input raises :class:`~daedalus_v4l2.errors.BitstreamError`.
"""
from __future__ import annotations

from dataclasses import dataclass

from daedalus_v4l2.errors import BitstreamError

# obu_type (spec 6.2.2, "OBU header semantics")
OBU_SEQUENCE_HEADER = 1
OBU_TEMPORAL_DELIMITER = 2
OBU_FRAME_HEADER = 3
OBU_TILE_GROUP = 4
OBU_METADATA = 5
OBU_FRAME = 6
OBU_REDUNDANT_FRAME_HEADER = 7
OBU_TILE_LIST = 8
OBU_PADDING = 15

# leb128() reads at most 8 bytes and its value must fit 32 bits (spec 4.10.5).
_LEB128_MAX_BYTES = 8


def read_leb128(data: bytes, pos: int) -> tuple[int, int]:
    """(value, bytes used) of the leb128 at ``data[pos:]``."""
    value = 0
    for i in range(_LEB128_MAX_BYTES):
        if pos + i >= len(data):
            raise BitstreamError(f"truncated leb128 at byte {pos}")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if value > 0xFFFFFFFF:
                raise BitstreamError(f"leb128 at byte {pos} does not fit 32 bits")
            return value, i + 1
    raise BitstreamError(f"leb128 at byte {pos} is longer than {_LEB128_MAX_BYTES} bytes")


def write_leb128(value: int) -> bytes:
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"leb128 value {value} outside 0..2^32-1")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


@dataclass(frozen=True)
class Obu:
    """One OBU inside a buffer: where it starts, its header, where its payload is."""
    type: int
    start: int            # offset of the OBU header in the buffer
    payload_start: int    # offset of the first payload byte
    payload_size: int
    temporal_id: int = 0
    spatial_id: int = 0
    has_extension: bool = False

    @property
    def end(self) -> int:
        return self.payload_start + self.payload_size


def split_obus(data: bytes) -> list[Obu]:
    """Every OBU of a low-overhead-format buffer, in order.

    An OBU without ``obu_has_size_field`` runs to the end of the buffer
    (spec 5.3.1), so it can only be the last one.
    """
    data = bytes(data)
    obus, pos = [], 0
    while pos < len(data):
        obu = _read_obu(data, pos)
        obus.append(obu)
        pos = obu.end
    return obus


def _read_obu(data: bytes, start: int) -> Obu:
    header = data[start]
    if header & 0x80:
        raise BitstreamError(f"OBU at byte {start}: obu_forbidden_bit is set")
    obu_type = (header >> 3) & 0xF
    has_extension = bool(header & 0x04)
    has_size = bool(header & 0x02)
    pos = start + 1
    temporal_id = spatial_id = 0
    if has_extension:
        if pos >= len(data):
            raise BitstreamError(f"OBU at byte {start}: truncated extension header")
        temporal_id, spatial_id = data[pos] >> 5, (data[pos] >> 3) & 0x3
        pos += 1
    if has_size:
        size, used = read_leb128(data, pos)
        pos += used
    else:
        size = len(data) - pos
    if pos + size > len(data):
        raise BitstreamError(f"OBU type {obu_type} at byte {start}: obu_size {size} runs past "
                             f"the {len(data)}-byte buffer")
    return Obu(obu_type, start, pos, size, temporal_id, spatial_id, has_extension)


def obu(obu_type: int, payload: bytes) -> bytes:
    """An OBU with a size field and no extension header."""
    header = (obu_type & 0xF) << 3 | 0x02  # obu_has_size_field = 1
    return bytes([header]) + write_leb128(len(payload)) + payload
