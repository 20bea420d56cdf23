"""The kernel <-> daemon wire protocol, read from its one definition.

``include/daedalus_v4l2_proto.h`` is read by cffi (parsed at install time,
or at import when it changed since: ``cdefs.py``): there is no second,
hand-written copy of any layout here.  This module builds and
parses messages as bytes and checks every length, on both directions, the
same way the kernel module does.
"""
from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from . import cdefs
from .errors import ProtocolError

HEADER_FILE = "daedalus_v4l2_proto.h"
DEFS_MODULE = "daedalus_v4l2._proto_defs"   # built by setup.py (_defs_build.py)


def header_path() -> Path:
    """Where the protocol header is: inside the package (installed) or the checkout."""
    packaged = resources.files(__package__) / HEADER_FILE
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "include" / HEADER_FILE


# Parsed at install time when the header is unchanged since (cdefs.py says how).
ffi = cdefs.load(DEFS_MODULE, cdefs.header_declarations(header_path().read_text()))
lib = ffi.dlopen(None)  # only for the #define constants

MAGIC = lib.DV4L2_MAGIC
VERSION = lib.DV4L2_VERSION
MAX_PLANES = lib.DV4L2_MAX_PLANES
MAX_PAYLOAD = lib.DV4L2_MAX_PAYLOAD
REASON_LEN = lib.DV4L2_REASON_LEN

MSG_PING = lib.DV4L2_MSG_PING
MSG_PONG = lib.DV4L2_MSG_PONG
MSG_STREAM_OPEN = lib.DV4L2_MSG_STREAM_OPEN
MSG_STREAM_CLOSE = lib.DV4L2_MSG_STREAM_CLOSE
MSG_DECODE = lib.DV4L2_MSG_DECODE
MSG_FRAME = lib.DV4L2_MSG_FRAME
MSG_FLUSH = lib.DV4L2_MSG_FLUSH
MSG_FLUSH_DONE = lib.DV4L2_MSG_FLUSH_DONE

CODEC_VP9 = lib.DV4L2_CODEC_VP9
CODEC_H264 = lib.DV4L2_CODEC_H264
CODEC_AV1 = lib.DV4L2_CODEC_AV1
CODEC_NAMES = {CODEC_VP9: "vp9", CODEC_H264: "h264", CODEC_AV1: "av1"}

DECODE_HOLD_CAPTURE = lib.DV4L2_DECODE_HOLD_CAPTURE
DECODE_FIRST_SLICE = lib.DV4L2_DECODE_FIRST_SLICE
DECODE_NO_DIGEST = lib.DV4L2_DECODE_NO_DIGEST
DECODE_MORE_QUEUED = lib.DV4L2_DECODE_MORE_QUEUED

FRAME_SRC_CONSUMED = lib.DV4L2_FRAME_SRC_CONSUMED
FRAME_HAS_PIXELS = lib.DV4L2_FRAME_HAS_PIXELS
FRAME_ERROR = lib.DV4L2_FRAME_ERROR

HEADER_SIZE = ffi.sizeof("struct dv4l2_msg_header")
DECODE_REQ_SIZE = ffi.sizeof("struct dv4l2_decode_req")
FRAME_RESP_SIZE = ffi.sizeof("struct dv4l2_frame_resp")
STREAM_OPEN_SIZE = ffi.sizeof("struct dv4l2_stream_open")
CTRL_REC_SIZE = ffi.sizeof("struct dv4l2_ctrl_rec")

# The payload each type must carry: an exact size, a minimum (DECODE), or none.
_PAYLOAD_EXACT = {
    MSG_PING: 0, MSG_PONG: 0, MSG_STREAM_CLOSE: 0, MSG_FLUSH: 0, MSG_FLUSH_DONE: 0,
    MSG_STREAM_OPEN: STREAM_OPEN_SIZE, MSG_FRAME: FRAME_RESP_SIZE,
}
KNOWN_TYPES = frozenset(_PAYLOAD_EXACT) | {MSG_DECODE}


def align8(n: int) -> int:
    return (n + 7) & ~7


_UNSIGNED_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}
_SIGNED_CODES = {1: "b", 2: "h", 4: "i", 8: "q"}


def _flat_fields(ctype, offset: int, name: str, decls=None):
    """(offset, struct code, name) of every integer and char array in a field of
    type ``ctype`` at ``offset``, nested structs and arrays spelled out
    (``planes[1].height``); ``decls`` is the cffi FFI that declares it (the
    protocol header's by default)."""
    decls = decls or ffi
    if ctype.kind == "struct":
        for field_name, f in ctype.fields:
            prefix = f"{name}.{field_name}" if name else field_name
            yield from _flat_fields(f.type, offset + f.offset, prefix, decls)
    elif ctype.kind == "array" and ctype.item.cname == "char":
        yield offset, f"{ctype.length}s", name
    elif ctype.kind == "array":
        size = decls.sizeof(ctype.item)
        for i in range(ctype.length):
            yield from _flat_fields(ctype.item, offset + i * size, f"{name}[{i}]", decls)
    elif ctype.kind == "primitive" and re.fullmatch(r"u?int(8|16|32|64)_t", ctype.cname):
        codes = _UNSIGNED_CODES if ctype.cname.startswith("u") else _SIGNED_CODES
        yield offset, codes[decls.sizeof(ctype)], name
    else:
        raise TypeError(f"{name} is not an integer, a struct or an array of them: {ctype.cname}")


def _packer(ctype: str, decls=None) -> tuple[struct.Struct, tuple[str, ...]]:
    """A struct.Struct for a struct of integers (and char arrays, nested structs and
    arrays of them), and its flat field names in order, built from cffi's reading
    of the header (no layout written here): it packs and reads a message several
    times faster than a cffi struct does (ffi.new, then bytes of it), and every
    request and picture runs through these."""
    decls = decls or ffi
    fmt, end, names = "=", 0, []
    for offset, code, name in _flat_fields(decls.typeof(ctype), 0, "", decls):
        fmt += "x" * (offset - end) + code
        end = offset + struct.calcsize("=" + code)
        names.append(name)
    fmt += "x" * (decls.sizeof(ctype) - end)
    packer = struct.Struct(fmt)
    assert packer.size == decls.sizeof(ctype), (ctype, fmt)
    return packer, tuple(names)


def _plane_names(field: str, count: int, members: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{field}[{i}].{m}" for i in range(count) for m in members)


# The code below passes and reads these fields in this order: checked at import.
_HEADER, _HEADER_FIELDS = _packer("struct dv4l2_msg_header")
_CTRL_REC, _CTRL_REC_FIELDS = _packer("struct dv4l2_ctrl_rec")
_DECODE_REQ, _DECODE_REQ_FIELDS = _packer("struct dv4l2_decode_req")
_FRAME_RESP, _FRAME_RESP_FIELDS = _packer("struct dv4l2_frame_resp")
_EXPECTED_FIELDS = {
    "header": (_HEADER_FIELDS, ("magic", "version", "type", "flags", "payload_len", "cookie",
                                "stream_id", "reserved")),
    "control record": (_CTRL_REC_FIELDS, ("id", "size")),
    "decode request": (_DECODE_REQ_FIELDS, (
        "timestamp", "capture_offset", "codec", "flags", "coded_width", "coded_height",
        "capture_fourcc", "capture_index", "capture_size", "output_index", "num_planes",
        "ctrl_len", "bitstream_len", "reserved")
        + _plane_names("planes", MAX_PLANES, ("offset", "bytesperline", "height", "reserved"))),
    "frame response": (_FRAME_RESP_FIELDS, (
        "status", "flags", "width", "height", "fourcc", "num_planes")
        + tuple(f"plane_bytes[{i}]" for i in range(MAX_PLANES)) + ("reserved", "digest", "reason")),
}
for _what, (_read, _expected) in _EXPECTED_FIELDS.items():
    if _read != _expected:
        raise ImportError(f"{HEADER_FILE} changed its {_what}: {_read}; "
                          "proto.py needs the same change")
_PADDING = tuple(bytes(-n & 7) for n in range(8))   # by len % 8: the zeros to the next 8
_NO_PLANE = (0, 0, 0, 0)


class FrameRecord(NamedTuple):
    """A FRAME payload's fields as they are on the wire (the kernel's write handler
    checks the ones :func:`parse` does not: ``reserved``, the unused plane counts,
    the reason's NUL)."""
    status: int
    flags: int
    width: int
    height: int
    fourcc: int
    num_planes: int
    plane_bytes: tuple[int, ...]
    reserved: int
    digest: int
    reason: bytes


def frame_record(payload: bytes | memoryview) -> FrameRecord:
    """The fields of a FRAME payload (at least FRAME_RESP_SIZE bytes)."""
    status, flags, width, height, fourcc, num_planes, *counts, reserved, digest, reason = \
        _FRAME_RESP.unpack_from(payload)
    return FrameRecord(status, flags, width, height, fourcc, num_planes, tuple(counts),
                       reserved, digest, reason)


# --------------------------------------------------------------------------- messages

@dataclass
class Plane:
    offset: int
    bytesperline: int
    height: int


@dataclass
class Message:
    """A message with a payload this module does not interpret further."""
    type: int
    cookie: int = 0
    stream_id: int = 0
    payload: bytes = b""


@dataclass
class StreamOpen:
    stream_id: int
    codec: int
    output_fourcc: int
    coded_width: int
    coded_height: int
    capture_fourcc: int
    type: int = MSG_STREAM_OPEN
    cookie: int = 0


@dataclass
class DecodeRequest:
    stream_id: int
    cookie: int
    timestamp: int
    codec: int
    coded_width: int
    coded_height: int
    capture_fourcc: int
    capture_index: int
    capture_size: int
    output_index: int
    planes: list[Plane]
    controls: dict[int, bytes]
    bitstream: bytes | memoryview
    capture_offset: int = 0
    flags: int = 0
    type: int = MSG_DECODE


@dataclass
class FrameResponse:
    stream_id: int
    cookie: int
    flags: int
    status: int = 0
    width: int = 0
    height: int = 0
    fourcc: int = 0
    plane_bytes: list[int] = field(default_factory=list)
    digest: int = 0
    reason: str = ""
    type: int = MSG_FRAME

    @property
    def is_error(self) -> bool:
        return bool(self.flags & FRAME_ERROR)


AnyMessage = Message | StreamOpen | DecodeRequest | FrameResponse


# --------------------------------------------------------------------------- encoding

def _header(type_: int, cookie: int, stream_id: int, payload_len: int) -> bytes:
    if payload_len > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {payload_len} bytes exceeds {MAX_PAYLOAD}")
    return _HEADER.pack(MAGIC, VERSION, type_, 0, payload_len, cookie, stream_id, 0)


def encode(msg: AnyMessage) -> bytes:
    """The bytes of one message, header and payload."""
    if isinstance(msg, DecodeRequest):
        return _encode_decode(msg)
    if isinstance(msg, FrameResponse):
        return _encode_frame(msg)
    if isinstance(msg, StreamOpen):
        body = ffi.new("struct dv4l2_stream_open *")
        body.codec, body.output_fourcc = msg.codec, msg.output_fourcc
        body.coded_width, body.coded_height = msg.coded_width, msg.coded_height
        body.capture_fourcc = msg.capture_fourcc
        payload = bytes(ffi.buffer(body))
        return _header(MSG_STREAM_OPEN, msg.cookie, msg.stream_id, len(payload)) + payload
    return _header(msg.type, msg.cookie, msg.stream_id, len(msg.payload)) + bytes(msg.payload)


def encode_controls(controls: dict[int, bytes]) -> bytes:
    """Control records, each 8-byte aligned, in the order given."""
    parts: list = []
    for cid, data in controls.items():
        size = len(data)
        parts += (_CTRL_REC.pack(cid, size), data, _PADDING[size & 7])
    return b"".join(parts)


def _encode_decode(msg: DecodeRequest) -> bytes:
    if len(msg.planes) > MAX_PLANES:
        raise ProtocolError(f"{len(msg.planes)} planes, at most {MAX_PLANES}")
    ctrls = encode_controls(msg.controls)
    planes: list[int] = []
    for plane in msg.planes:
        planes += (plane.offset, plane.bytesperline, plane.height, 0)
    planes += _NO_PLANE * (MAX_PLANES - len(msg.planes))
    body = _DECODE_REQ.pack(
        msg.timestamp, msg.capture_offset, msg.codec, msg.flags, msg.coded_width,
        msg.coded_height, msg.capture_fourcc, msg.capture_index, msg.capture_size,
        msg.output_index, len(msg.planes), len(ctrls), len(msg.bitstream), 0, *planes)
    payload_len = DECODE_REQ_SIZE + len(ctrls) + len(msg.bitstream)
    # join takes any buffer: the bitstream is copied once, into the message
    return b"".join((_header(MSG_DECODE, msg.cookie, msg.stream_id, payload_len),
                     body, ctrls, msg.bitstream))


def _encode_frame(msg: FrameResponse) -> bytes:
    counts = list(msg.plane_bytes[:MAX_PLANES])
    counts += [0] * (MAX_PLANES - len(counts))
    reason = msg.reason.encode("utf-8", "replace")[:REASON_LEN - 1]  # the rest NULs
    payload = _FRAME_RESP.pack(msg.status, msg.flags, msg.width, msg.height, msg.fourcc,
                               len(msg.plane_bytes), *counts, 0, msg.digest, reason)
    return _header(MSG_FRAME, msg.cookie, msg.stream_id, len(payload)) + payload


# --------------------------------------------------------------------------- parsing

@dataclass
class Header:
    type: int
    flags: int
    payload_len: int
    cookie: int
    stream_id: int


def parse_header(data: bytes | memoryview) -> Header:
    """Validate and read a message header; raises ProtocolError saying what is wrong."""
    if len(data) < HEADER_SIZE:
        raise ProtocolError(f"short header: {len(data)} bytes, need {HEADER_SIZE}")
    magic, version, type_, flags, payload_len, cookie, stream_id, reserved = \
        _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ProtocolError(f"bad magic 0x{magic:08x}")
    if version != VERSION:
        raise ProtocolError(f"unsupported protocol version {version} (this side speaks {VERSION})")
    if type_ not in KNOWN_TYPES:
        raise ProtocolError(f"unknown message type {type_}")
    if flags or reserved:
        raise ProtocolError("reserved header bits set")
    if payload_len > MAX_PAYLOAD:
        raise ProtocolError(f"payload length {payload_len} exceeds {MAX_PAYLOAD}")
    expected = _PAYLOAD_EXACT.get(type_)
    if expected is not None and payload_len != expected:
        raise ProtocolError(f"type {type_} carries {expected} payload bytes, not {payload_len}")
    if type_ == MSG_DECODE and payload_len < DECODE_REQ_SIZE:
        raise ProtocolError(f"decode request of {payload_len} bytes is shorter than its struct")
    return Header(type_, flags, payload_len, cookie, stream_id)


def parse(data: bytes | memoryview,
          check_frame: Callable[[FrameRecord], None] | None = None) -> AnyMessage:
    """One whole message from its bytes.  The returned bitstream is a view
    into ``data`` (no copy of large payloads).  ``check_frame``: called with a
    FRAME's fields as they are on the wire, before they are read (the kernel's
    write handler checks there what this does not look at)."""
    view = memoryview(data).cast("B")
    hdr = parse_header(view)
    if len(view) != HEADER_SIZE + hdr.payload_len:
        raise ProtocolError(f"message is {len(view)} bytes, header says {HEADER_SIZE + hdr.payload_len}")
    payload = view[HEADER_SIZE:]
    if hdr.type == MSG_DECODE:
        return _parse_decode(hdr, payload)
    if hdr.type == MSG_FRAME:
        return _parse_frame(hdr, payload, check_frame)
    if hdr.type == MSG_STREAM_OPEN:
        body = ffi.from_buffer("struct dv4l2_stream_open *", payload)
        return StreamOpen(hdr.stream_id, body.codec, body.output_fourcc, body.coded_width,
                          body.coded_height, body.capture_fourcc, cookie=hdr.cookie)
    return Message(hdr.type, hdr.cookie, hdr.stream_id, bytes(payload))


def parse_controls(blob: memoryview) -> dict[int, bytes]:
    controls: dict[int, bytes] = {}
    pos, total = 0, len(blob)
    record = _CTRL_REC.unpack_from   # looked up once: every request has several
    while pos < total:
        if total - pos < CTRL_REC_SIZE:
            raise ProtocolError("truncated control record header")
        cid, size = record(blob, pos)
        start = pos + CTRL_REC_SIZE
        end = start + size
        if end > total:
            raise ProtocolError(f"control 0x{cid:x} claims {size} bytes past the blob")
        if cid in controls:
            raise ProtocolError(f"control 0x{cid:x} appears twice")
        controls[cid] = blob[start:end].tobytes()
        pos = start + align8(size)
    return controls


def _parse_decode(hdr: Header, payload: memoryview) -> DecodeRequest:
    (timestamp, capture_offset, codec, flags, coded_width, coded_height, capture_fourcc,
     capture_index, capture_size, output_index, num_planes, ctrl_len, bitstream_len, _,
     *plane_fields) = _DECODE_REQ.unpack_from(payload)
    if num_planes == 0 or num_planes > MAX_PLANES:
        raise ProtocolError(f"decode request with {num_planes} planes")
    if ctrl_len % 8:
        raise ProtocolError(f"control blob length {ctrl_len} is not 8-byte aligned")
    if DECODE_REQ_SIZE + ctrl_len + bitstream_len != hdr.payload_len:
        raise ProtocolError(
            f"decode request lengths disagree: struct {DECODE_REQ_SIZE} + controls {ctrl_len}"
            f" + bitstream {bitstream_len} != payload {hdr.payload_len}")
    planes = [Plane(*plane_fields[4 * i:4 * i + 3]) for i in range(num_planes)]
    ctrl_end = DECODE_REQ_SIZE + ctrl_len
    controls = parse_controls(payload[DECODE_REQ_SIZE:ctrl_end])
    return DecodeRequest(
        stream_id=hdr.stream_id, cookie=hdr.cookie, timestamp=timestamp, codec=codec,
        coded_width=coded_width, coded_height=coded_height, capture_fourcc=capture_fourcc,
        capture_index=capture_index, capture_size=capture_size, output_index=output_index,
        planes=planes, controls=controls, bitstream=payload[ctrl_end:],
        capture_offset=capture_offset, flags=flags)


def _parse_frame(hdr: Header, payload: memoryview,
                 check: Callable[[FrameRecord], None] | None) -> FrameResponse:
    r = frame_record(payload)
    if check is not None:
        check(r)
    if r.num_planes > MAX_PLANES:
        raise ProtocolError(f"frame response with {r.num_planes} planes")
    if r.flags & ~(FRAME_SRC_CONSUMED | FRAME_HAS_PIXELS | FRAME_ERROR):
        raise ProtocolError(f"unknown frame flags 0x{r.flags:x}")
    return FrameResponse(
        stream_id=hdr.stream_id, cookie=hdr.cookie, flags=r.flags, status=r.status,
        width=r.width, height=r.height, fourcc=r.fourcc,
        plane_bytes=list(r.plane_bytes[:r.num_planes]), digest=r.digest,
        reason=r.reason.partition(b"\0")[0].decode("utf-8", "replace"))
