"""Fuzz targets: one ``bytes`` argument each; they raise only on a bug.

A parser may refuse its input with the error that says so (``ProtocolError``
for wire messages, ``BitstreamError``/``UnsupportedError`` for bitstreams and
controls: all ``ValueError``s); any other exception, a hang or unbounded
memory is a finding.  ``daemon_decode`` drives the whole daemon with one
message from a hostile or broken kernel and checks that every DECODE gets an
answer the kernel will accept.  ``pack_layout`` and ``unpack_layout`` check
that pixel copies driven by a kernel-provided layout never write outside the
buffer (guard bytes around it).
"""
from __future__ import annotations

import struct

from daedalus_v4l2 import proto
from daedalus_v4l2.errors import DaedalusError, ProtocolError

# The daemon's contract (errors.py): bad data raises a ValueError (BitstreamError,
# UnsupportedError, ProtocolError are ones); IndexError, KeyError, TypeError,
# OverflowError... escaping a parser are bugs.
REFUSALS = (ValueError,)
# The largest CAPTURE buffer the fake kernel below maps (a real one: 4096x4096 P010).
MAX_CAPTURE = 8 << 20


class Input:
    """Deterministic slicing of the fuzzer's bytes (atheris' FuzzedDataProvider,
    without needing atheris)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = bytes(data), 0

    def int(self, nbytes: int = 1) -> int:
        chunk = self.data[self.pos:self.pos + nbytes]
        self.pos += len(chunk)
        return int.from_bytes(chunk.ljust(nbytes, b"\0"), "little")

    def choice(self, options):
        return options[self.int() % len(options)]

    def bytes(self, n: int) -> bytes:
        chunk = self.data[self.pos:self.pos + n]
        self.pos += len(chunk)
        return chunk

    def rest(self) -> bytes:
        chunk = self.data[self.pos:]
        self.pos = len(self.data)
        return chunk


# ----------------------------------------------------------------------------- wire protocol

def proto_parse(data: bytes) -> None:
    """proto.parse: ProtocolError or a message that encodes back to what parses the same."""
    try:
        msg = proto.parse(data)
    except ProtocolError:
        return
    again = proto.parse(proto.encode(msg))
    if isinstance(msg, proto.DecodeRequest):
        msg.bitstream, again.bitstream = bytes(msg.bitstream), bytes(again.bitstream)
    assert again == msg, (msg, again)


def proto_header_fields(data: bytes) -> None:
    """A header built from fuzzed fields around a fuzzed payload: parse never
    accepts a length that disagrees with the bytes, never reads past them."""
    inp = Input(data)
    hdr = struct.pack("<IHHIIQII", inp.choice([proto.MAGIC, proto.MAGIC, inp.int(4)]),
                      inp.choice([proto.VERSION, proto.VERSION, inp.int(2)]), inp.int() % 10,
                      inp.choice([0, 0, 0, inp.int(4)]), inp.int(4), inp.int(8), inp.int(4),
                      inp.choice([0, 0, inp.int(4)]))
    proto_parse(hdr + inp.rest())


def controls_blob(data: bytes) -> None:
    try:
        controls = proto.parse_controls(memoryview(data))
    except ProtocolError:
        return
    assert sum(proto.CTRL_REC_SIZE + proto.align8(len(v)) for v in controls.values()) >= len(data) - 7


# ----------------------------------------------------------------------------- bitstream parsers

def _refused(fn, *args):
    try:
        return fn(*args)
    except REFUSALS:
        return None


def _must_refuse(fn, *args):
    try:
        fn(*args)
    except ValueError:
        return
    raise AssertionError(f"{fn.__name__} accepted what it documents as refused")


def vp9_parser(data: bytes) -> None:
    from daedalus_v4l2.codecs import vp9
    parser = vp9.Vp9Parser()
    frames = _refused(vp9.split_superframe, data) or [data]
    for frame in frames[:8]:
        header = _refused(parser.parse, frame)
        if header is None:
            continue
        if header.show_existing_frame:
            # No control describes it: the client shows a buffer it already has.
            _must_refuse(vp9.frame_control, header)
        else:
            vp9.frame_control(header)


def h264_parser(data: bytes) -> None:
    """The Python readers, and the C ones the client uses held to them: the same
    units, the same slice header or a refusal of both."""
    from daedalus_v4l2.codecs import h264, h264_native
    sps_by_id, pps_by_id = {}, {}
    reader = h264_native.SliceHeaderReader()
    nals = _refused(h264.split_annexb, data) or []
    if h264_native.split_annexb(data) != nals:
        raise AssertionError("the C and Python Annex B splits differ")
    for nal in nals[:32]:
        header = _refused(h264.nal_header, nal)
        if header is None:
            continue
        if header.nal_unit_type == 7:
            sps = _refused(h264.parse_sps, nal)
            if sps is not None:
                sps_by_id[sps.seq_parameter_set_id] = sps
        elif header.nal_unit_type == 8:
            pps = _refused(h264.parse_pps, nal, sps_by_id)
            if pps is not None:
                pps_by_id[pps.pic_parameter_set_id] = pps
        elif header.nal_unit_type in h264.VCL_NAL_TYPES:
            python = _refused(h264.parse_slice_header, nal, sps_by_id, pps_by_id)
            native = _refused(reader.read, nal, sps_by_id, pps_by_id)
            if python != native:
                raise AssertionError(f"slice header: Python {python}, C {native}")
    _refused(h264.split_avcc, data, 4)
    _refused(h264.parse_avcc_extradata, data)


def h264_client(data: bytes) -> None:
    """The client side: Annex B access units -> requests and their controls."""
    from daedalus_v4l2.codecs.h264_client import H264Client
    client = H264Client()
    ts = iter(range(1000, 10**9, 1000))
    for chunk in data.split(b"\0\0\0\1\x09")[:8]:
        _refused(client.jobs, chunk, lambda: next(ts))


def av1_parser(data: bytes) -> None:
    from daedalus_v4l2.codecs import av1, av1_obu
    _refused(av1_obu.split_obus, data)
    parser = av1.Av1Parser()
    half = len(data) // 2
    for unit in (data[:half], data[half:]):
        _refused(parser.temporal_unit, unit)


def stateless_controls(data: bytes) -> None:
    """The daemon's control parsers, on whatever the kernel copied out of a request."""
    from daedalus_v4l2.codecs import av1_controls, h264_controls
    inp = Input(data)
    which = inp.int() % 5
    body = inp.rest()
    if which == 0:
        sps = _refused(h264_controls.sps_from_control, body)
        if sps is not None:
            _refused(_rebuild_h264, sps, body)
    elif which == 1:
        _refused(h264_controls.pps_from_control, body)
    elif which == 2:
        _refused(h264_controls.scaling_matrix_from_control, body)
    elif which == 3:
        seq = _refused(av1_controls.sequence_from_control, body)
        if seq is not None:
            _refused(av1_controls.write_sequence_header_obu, seq)
    else:
        _refused(av1_controls.frame_from_control, body)


def _rebuild_h264(sps, body):
    from daedalus_v4l2.codecs import h264_controls, h264_rebuild
    h264_rebuild.rebuild_sps(sps)
    pps = h264_controls.pps_from_control(body.ljust(64, b"\0"))
    h264_rebuild.rebuild_pps(pps, sps)


# ----------------------------------------------------------------------------- pixels

def _layout(inp: Input):
    planes = [proto.Plane(inp.choice([0, inp.int(3), inp.int(4)]),
                          inp.choice([16, 32, 64, inp.int(2), inp.int(4)]),
                          inp.choice([8, 16, 24, inp.int(2), inp.int(4)])) for _ in range(2)]
    return planes, inp.int(2) % 8192


GUARD = b"\xa5" * 64


def _guarded(size: int):
    raw = bytearray(GUARD + bytes(size) + GUARD)
    return raw, memoryview(raw)[len(GUARD):len(GUARD) + size]


def _check_guards(raw: bytearray) -> None:
    assert raw[:len(GUARD)] == GUARD and raw[-len(GUARD):] == GUARD, "write outside the buffer"


_FRAMES: dict = {}


def _frame(fmt: str, w: int, h: int):
    import av
    import numpy as np
    key = (fmt, w, h)
    if key not in _FRAMES:
        if fmt == "nv12":
            frame = av.VideoFrame.from_ndarray(
                np.arange(w * h * 3 // 2, dtype=np.uint8).reshape(h * 3 // 2, w), format="nv12")
        else:
            frame = av.VideoFrame(w, h, fmt)
        _FRAMES[key] = frame
    return _FRAMES[key]


def pack_layout(data: bytes) -> None:
    """pixels.pack_frame with a layout and buffer size as a kernel might send them."""
    from daedalus_v4l2 import pixels
    inp = Input(data)
    fourcc = inp.choice([pixels.NV12, pixels.P010, inp.int(4)])
    w, h = inp.choice([(16, 16), (18, 10), (32, 8)])
    fmt = inp.choice(["yuv420p", "nv12", "yuv420p10le", "gray", "rgb24"])
    planes, size = _layout(inp)
    raw, dst = _guarded(size)
    try:
        picture = pixels.pack_frame(_frame(fmt, w, h), fourcc, planes, dst)
    except (DaedalusError, ValueError):
        _check_guards(raw)
        return
    _check_guards(raw)
    assert picture.plane_bytes[0] <= size


def unpack_layout(data: bytes) -> None:
    """The client's unpacking with a layout as G_FMT might report it."""
    from daedalus_v4l2 import pixels
    inp = Input(data)
    fourcc = inp.choice([pixels.NV12, pixels.P010])
    w, h = inp.int(2) % 80, inp.int(2) % 80
    planes, size = _layout(inp)
    src = bytes(size)
    try:
        need = pixels.tight_size(fourcc, w, h)
    except (DaedalusError, ValueError):
        return
    raw, out = _guarded(need)
    try:
        pixels.unpack_picture_into(src, fourcc, planes, w, h, out)
        pixels.picture_digest(src, fourcc, planes, w, h)
    except (DaedalusError, ValueError):
        pass
    _check_guards(raw)


# ----------------------------------------------------------------------------- the daemon

class FakeKernel:
    """The daemon's transport, as a hostile kernel: raw message bytes in, and a
    CAPTURE mapping of the size the kernel would really map (never more than
    MAX_CAPTURE: a larger capture_size fails the mapping, as mmap past a real
    buffer does)."""

    def __new__(cls):
        from daedalus_v4l2.transport import Transport

        class _Fake(Transport):
            def __init__(self):
                super().__init__()
                self.inbox: list[bytes] = []
                self.sent: list = []
                self.maps: dict[int, tuple[bytearray, memoryview]] = {}

            def _recv_internal(self, timeout):
                return self.inbox.pop(0) if self.inbox else None

            def _send_internal(self, data):
                self.sent.append(proto.parse(data))

            def _map_capture(self, request):
                if request.capture_size > MAX_CAPTURE:
                    raise OSError(22, f"mmap of {request.capture_size} bytes past the buffer")
                if request.cookie not in self.maps:
                    self.maps[request.cookie] = _guarded(request.capture_size)
                return self.maps[request.cookie][1]

        return _Fake()


_SEEDS: list[bytes] | None = None


def seeds() -> list[bytes]:
    global _SEEDS
    if _SEEDS is None:
        from fuzz import corpus
        _SEEDS = corpus.decode_messages()
    return _SEEDS


def _mutate_decode(raw: bytes, inp: Input) -> bytes:
    msg = proto.parse(raw)
    assert isinstance(msg, proto.DecodeRequest)
    op = inp.int() % 9
    bs = bytearray(msg.bitstream)
    if op == 0 and bs:                      # flipped bytes
        for _ in range(1 + inp.int() % 8):
            bs[inp.int(4) % len(bs)] ^= 1 + inp.int() % 255
    elif op == 1:                           # truncated
        bs = bs[:inp.int(4) % (len(bs) + 1)]
    elif op == 2:                           # zeros
        bs = bytearray(len(bs))
    elif op == 3:                           # garbage
        bs = bytearray(inp.rest()[:len(bs) or 64])
    elif op == 4 and msg.controls:          # a control's payload replaced
        cid = list(msg.controls)[inp.int() % len(msg.controls)]
        msg.controls[cid] = inp.bytes(inp.int(2) % 2048)
    elif op == 5:                           # another codec than the stream's
        msg.codec = inp.choice([proto.CODEC_VP9, proto.CODEC_H264, proto.CODEC_AV1, inp.int(4)])
    elif op == 6:                           # layout and sizes
        msg.capture_size = inp.choice([0, 1, msg.capture_size // 2, inp.int(4)])
        msg.planes = [proto.Plane(inp.int(4), inp.int(2), inp.int(2)) for _ in range(1 + inp.int() % 3)]
        msg.coded_width, msg.coded_height = inp.int(2), inp.int(2)
    elif op == 7:                           # flags and capture format
        msg.flags = inp.int(4)
        msg.capture_fourcc = inp.choice([msg.capture_fourcc, inp.int(4)])
    else:                                   # bytes appended
        bs += inp.bytes(inp.int(2) % 4096)
    msg.bitstream = bytes(bs)
    return proto.encode(msg)


def daemon_decode(data: bytes) -> None:
    """One or two (mutated) DECODEs from a real stream, or raw bytes, through the whole
    daemon: every DECODE it accepts gets answered with a FRAME the kernel accepts."""
    from daedalus_v4l2.daemon import Daemon
    inp = Input(data)
    pool = seeds()
    kernel = FakeKernel()
    mode = inp.int() % 4
    if mode == 0 or not pool:
        kernel.inbox.append(inp.rest())     # raw bytes: almost always refused
    else:
        start = inp.int(2) % len(pool)
        for i in range(1 + (mode == 3)):
            raw = pool[(start + i) % len(pool)]
            kernel.inbox.append(_mutate_decode(raw, inp) if mode != 1 or i else raw)
    daemon = Daemon(kernel)
    while kernel.inbox:
        daemon.step(0)
    for cookie, answers in _by_cookie(kernel.sent).items():
        for r in answers:
            check_frame_response(r, _capture_size_of(kernel, cookie))
    for raw, _ in kernel.maps.values():
        _check_guards(raw)


def _by_cookie(sent):
    out: dict[int, list] = {}
    for m in sent:
        if isinstance(m, proto.FrameResponse):
            out.setdefault(m.cookie, []).append(m)
    return out


def _capture_size_of(kernel, cookie):
    entry = kernel.maps.get(cookie)
    return None if entry is None else len(entry[1])


def check_frame_response(r: proto.FrameResponse, capture_size: int | None) -> None:
    """What the kernel's dv_check_frame() and dv_apply_frame() accept."""
    assert r.flags and not r.flags & ~(proto.FRAME_SRC_CONSUMED | proto.FRAME_HAS_PIXELS
                                       | proto.FRAME_ERROR), r
    assert -4095 <= r.status <= 0, r
    assert len(r.plane_bytes) <= proto.MAX_PLANES, r
    if r.flags & proto.FRAME_HAS_PIXELS:
        assert r.plane_bytes and capture_size is not None and r.plane_bytes[0] <= capture_size, r
    if r.flags & proto.FRAME_ERROR:
        assert r.reason, r


def daemon_answers_every_decode(data: bytes) -> None:
    """Like daemon_decode, and each DECODE that parsed gets SRC_CONSUMED or ERROR."""
    from daedalus_v4l2.daemon import Daemon
    pool = seeds()
    if not pool:
        return
    inp = Input(data)
    kernel = FakeKernel()
    raw = _mutate_decode(pool[inp.int(2) % len(pool)], inp)
    kernel.inbox.append(raw)
    Daemon(kernel).step(0)
    if kernel.stats.received:
        cookie = proto.parse(raw).cookie
        answers = _by_cookie(kernel.sent).get(cookie, [])
        assert any(a.flags & (proto.FRAME_SRC_CONSUMED | proto.FRAME_ERROR) for a in answers), \
            (cookie, kernel.sent)
        for a in answers:
            check_frame_response(a, _capture_size_of(kernel, cookie))


TARGETS = {
    "proto": proto_parse,
    "proto_fields": proto_header_fields,
    "controls_blob": controls_blob,
    "vp9": vp9_parser,
    "h264": h264_parser,
    "h264_client": h264_client,
    "av1": av1_parser,
    "ctrls": stateless_controls,
    "pack": pack_layout,
    "unpack": unpack_layout,
    "daemon": daemon_decode,
    "daemon_answers": daemon_answers_every_decode,
}
