"""The wire protocol: round trips, the 4 MiB keyframe, and every malformed message rejected."""
import errno
import re
import struct

import cffi
import pytest

from daedalus_v4l2 import proto
from daedalus_v4l2.errors import ProtocolError
from daedalus_v4l2.transport import Transport


def decode_request(bitstream=b"\x82\x49\x83", controls=None, **overrides):
    fields = dict(stream_id=3, cookie=41, timestamp=5000, codec=proto.CODEC_VP9, coded_width=352,
                  coded_height=288, capture_fourcc=0x3231564E, capture_index=2, capture_size=152064,
                  output_index=1, planes=[proto.Plane(0, 352, 288), proto.Plane(101376, 352, 144)],
                  controls=controls if controls is not None else {0xA40A2C: bytes(range(168))},
                  bitstream=bitstream, capture_offset=1 << 30, flags=proto.DECODE_FIRST_SLICE)
    fields.update(overrides)
    return proto.DecodeRequest(**fields)


def test_decode_request_round_trip():
    req = decode_request()
    got = proto.parse(proto.encode(req))
    assert isinstance(got, proto.DecodeRequest)
    assert bytes(got.bitstream) == req.bitstream
    got.bitstream = req.bitstream
    assert got == req


def test_a_4_mib_keyframe_goes_through():
    big = bytes(range(256)) * (4 * 1024 * 4)
    assert len(big) == 4 << 20
    got = proto.parse(proto.encode(decode_request(bitstream=big)))
    assert bytes(got.bitstream) == big


def test_frame_response_round_trip_with_reason():
    resp = proto.FrameResponse(3, 41, proto.FRAME_SRC_CONSUMED | proto.FRAME_ERROR, status=-errno.EINVAL,
                               reason="libavcodec: Invalid data found", plane_bytes=[152064],
                               digest=0x0123456789ABCDEF)
    assert proto.parse(proto.encode(resp)) == resp


def test_reason_is_truncated_not_overflowed():
    resp = proto.FrameResponse(1, 1, proto.FRAME_ERROR, reason="x" * 500)
    assert proto.parse(proto.encode(resp)).reason == "x" * (proto.REASON_LEN - 1)


@pytest.mark.parametrize("msg", [
    proto.Message(proto.MSG_PING, cookie=9), proto.Message(proto.MSG_FLUSH, stream_id=2),
    proto.StreamOpen(4, proto.CODEC_VP9, 0x46395056, 640, 480, 0x3231564E),
])
def test_small_messages_round_trip(msg):
    assert proto.parse(proto.encode(msg)) == msg


def corrupt(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value):]


FRAME = proto.encode(proto.FrameResponse(1, 7, proto.FRAME_SRC_CONSUMED))
DECODE = proto.encode(decode_request())


@pytest.mark.parametrize("data, complaint", [
    (corrupt(FRAME, 0, b"XXXX"), "bad magic"),
    (corrupt(FRAME, 4, b"\x02\x00"), "version"),
    (corrupt(FRAME, 6, b"\x63\x00"), "unknown message type"),
    (corrupt(FRAME, 8, b"\x01\x00\x00\x00"), "reserved"),
    (corrupt(FRAME, 12, b"\x10\x00\x00\x00"), "carries"),
    (corrupt(FRAME, 12, b"\xff\xff\xff\x7f"), "exceeds"),
    (FRAME[:20], "short header"),
    (FRAME[:-1], "header says"),
    (FRAME + b"\0", "header says"),
    (corrupt(FRAME, 32 + 4, b"\x80\x00\x00\x00"), "unknown frame flags"),
    (corrupt(DECODE, 32 + 48, b"\x09\x00\x00\x00"), "planes"),  # num_planes
    (corrupt(DECODE, 32 + 52, b"\x04\x00\x00\x00"), "aligned"),  # ctrl_len
    (corrupt(DECODE, 32 + 56, b"\x00\x00\x01\x00"), "disagree"),  # bitstream_len
    (corrupt(DECODE, 32 + 112 + 4, b"\xff\x00\x00\x00"), "past the blob"),  # ctrl size
])
def test_malformed_messages_are_rejected(data, complaint):
    with pytest.raises(ProtocolError, match=complaint):
        proto.parse(data)


def test_control_appearing_twice_is_rejected():
    blob = proto.encode_controls({1: b"abc"}) * 2
    with pytest.raises(ProtocolError, match="twice"):
        proto.parse_controls(memoryview(blob))


PACKED_STRUCTS = ["struct dv4l2_msg_header", "struct dv4l2_ctrl_rec", "struct dv4l2_decode_req",
                  "struct dv4l2_frame_resp"]


def _distinct_value(code: str, i: int):
    """A value for flat field ``i`` that no other field has, in the field's type."""
    if code.endswith("s"):
        return bytes((i + k) % 255 + 1 for k in range(int(code[:-1]) - 1)) + b"\0"
    bits = 8 * struct.calcsize("=" + code)
    value = (0x0102030405060708 * (i + 1)) & ((1 << bits) - 1)
    return value - (1 << bits) if code.islower() and value >> (bits - 1) else value


def _set_flat(ref, name: str, value) -> None:
    """Set ``planes[1].height`` of a cffi struct through its path."""
    *path, last = re.split(r"\.|(?=\[)", name)
    for part in path:
        ref = ref[int(part[1:-1])] if part.startswith("[") else getattr(ref, part)
    if last.startswith("["):
        ref[int(last[1:-1])] = value
    else:
        setattr(ref, last, value)


@pytest.mark.parametrize("ctype", PACKED_STRUCTS)
def test_packed_structs_are_the_header_files_layout(ctype):
    """The struct.Struct packers for every struct on the per-picture path are read
    from cffi's layout: every field, nested ones and array items too, at its
    offset, in its width and signedness (distinct values, so a swapped or
    misplaced field shows)."""
    packer, names = proto._packer(ctype)
    flat = list(proto._flat_fields(proto.ffi.typeof(ctype), 0, ""))
    assert names == tuple(name for _, _, name in flat)
    ref = proto.ffi.new(ctype + " *")
    values = [_distinct_value(code, i) for i, (_, code, _) in enumerate(flat)]
    for (_, _, name), value in zip(flat, values):
        _set_flat(ref, name, value)
    assert packer.pack(*values) == bytes(proto.ffi.buffer(ref))
    assert packer.unpack(bytes(proto.ffi.buffer(ref))) == tuple(values)


def test_every_field_of_the_decode_request_is_read_back():
    """A request whose every field differs from every other round-trips: no field
    of the struct is dropped or read from a neighbour."""
    msg = decode_request(timestamp=(1 << 63) + 5, capture_offset=(1 << 40) + 4096, codec=3,
                         flags=0xF, coded_width=1920, coded_height=1088, capture_fourcc=0x30313050,
                         capture_index=7, capture_size=6266880, output_index=5,
                         planes=[proto.Plane(1, 2, 3), proto.Plane(4, 5, 6), proto.Plane(7, 8, 9)])
    assert proto.parse(proto.encode(msg)) == msg


def test_frame_record_reads_what_parse_leaves_out():
    resp = proto.FrameResponse(3, 41, proto.FRAME_HAS_PIXELS, status=-5, width=1, height=2,
                               fourcc=3, plane_bytes=[4, 5], digest=(1 << 64) - 1, reason="why")
    record = proto.frame_record(memoryview(proto.encode(resp))[proto.HEADER_SIZE:])
    assert record == (-5, proto.FRAME_HAS_PIXELS, 1, 2, 3, 2, (4, 5, 0), 0, (1 << 64) - 1,
                      b"why".ljust(proto.REASON_LEN, b"\0"))


def test_a_struct_with_other_than_integers_gets_no_packer():
    other = cffi.FFI()
    other.cdef("struct odd { uint32_t id; float gain; };")
    with pytest.raises(TypeError, match="gain is not an integer"):
        proto._packer("struct odd", other)


class ListTransport(Transport):
    def __init__(self, messages):
        super().__init__()
        self.messages = list(messages)

    def _recv_internal(self, timeout):
        return self.messages.pop(0) if self.messages else None

    def _send_internal(self, data):
        raise AssertionError("not used")

    def _map_capture(self, request):
        raise AssertionError("not used")


def test_transport_counts_and_skips_malformed_messages():
    t = ListTransport([b"garbage", corrupt(FRAME, 0, b"XXXX"), FRAME])
    msg = t.receive(0)
    assert isinstance(msg, proto.FrameResponse) and msg.cookie == 7
    assert t.stats.rejected == 2 and t.stats.received == 1
    assert "magic" in t.stats.last_error
    assert t.receive(0) is None
