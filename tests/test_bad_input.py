"""Bad input on the sim backend, through the real daemon (docs/reliability.md).

Damaged bitstreams (flipped bytes, truncated frames, garbage, zeros), a codec
other than the format set, out-of-range controls, oversize buffers, sizes
beyond the advertised limits, malformed protocol messages both ways.  Every
case ends with a clear error (V4L2_BUF_FLAG_ERROR, an errno, one log line),
the stream or the next one goes on, nothing is lost and nothing hangs.
"""
from __future__ import annotations

import errno
import logging
import random
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daedalus_v4l2 import container, proto
from daedalus_v4l2.backends.sim import SimKernel
from daedalus_v4l2.backends.sim.testing import CAP, OUT, ScriptedDaemon, SimClient
from daedalus_v4l2.daemon import Daemon
from daedalus_v4l2.decode import decode_through
from daedalus_v4l2.threads import THREADS
from daedalus_v4l2.v4l2 import uapi
from daedalus_v4l2.v4l2.client import StatelessDecoder
from fuzz.damage import mutate
from fuzz.report import record
from fuzz.targets import FakeKernel, check_frame_response

from .reference import ffmpeg_nv12

SUITE = "bad input"
SEC = 1_000_000_000
W, H, FRAMES, DAMAGED = 64, 48, 10, 5
FRAME_BYTES = W * H * 3 // 2
MUTATIONS = ("flip", "truncate", "garbage", "zeros")


# --------------------------------------------------------------------------- damaged files

def ivf_frames(data: bytes) -> list[tuple[int, int]]:
    pos, out = 32, []
    while pos + 12 <= len(data):
        (n,) = struct.unpack_from("<I", data, pos)
        out.append((pos, n))
        pos += 12 + n
    return out


def damage_ivf(src: Path, dst: Path, index: int, how: str) -> Path:
    data = src.read_bytes()
    pos, n = ivf_frames(data)[index]
    payload = mutate(data[pos + 12:pos + 12 + n], how, random.Random(index))
    dst.write_bytes(data[:pos] + struct.pack("<I", len(payload)) + data[pos + 4:pos + 12]
                    + payload + data[pos + 12 + n:])
    return dst


def damaged_packets(path: Path, index: int, how: str) -> list[bytes]:
    """The clip's packets with packet ``index`` damaged past its first NAL header
    (H.264: in memory, as a raw .h264 file would be re-split by the demuxer)."""
    packets = list(container.packets(path))
    au = packets[index]
    first = au.find(b"\0\0\1", 0) + 4   # keep the start code and the NAL header byte
    packets[index] = au[:first] + mutate(au[first:], how, random.Random(index))
    return packets


@pytest.fixture(scope="module")
def clips(clip):
    out = {"vp9": clip(codec="vp9", width=W, height=H, frames=FRAMES),
           "h264": clip(suffix=".mp4", codec="h264", width=W, height=H, frames=FRAMES,
                        options={"bf": "0"})}
    try:
        out["av1"] = clip(codec="av1", width=W, height=H, frames=FRAMES)
    except Exception as exc:  # noqa: BLE001 - no AV1 encoder in this PyAV
        print(f"no AV1 clip: {exc}")
    return out


def damaged_file(clips, codec, how, tmp_path, index=DAMAGED) -> Path:
    return damage_ivf(clips[codec], tmp_path / f"{codec}-{how}.ivf", index, how)


def damaged_input(clips, codec, how, tmp_path, index=DAMAGED):
    """(path to probe, packets)."""
    if codec == "h264":
        return clips[codec], damaged_packets(clips[codec], index, how)
    bad = damaged_file(clips, codec, how, tmp_path, index)
    return bad, list(container.packets(bad))


def sim_stack(threads: str = "slice"):
    kernel = SimKernel(seed=1)
    daemon = Daemon(kernel.open_chardev(), **THREADS[threads])
    kernel.attach_daemon(daemon.step)
    return kernel, daemon


def sim_decode(kernel, path: Path, packets=None, depth: int = 2):
    info = container.probe(path)
    decoder = StatelessDecoder(kernel.syscalls(), kernel.video_path, kernel.media_path)
    try:
        return list(decode_through(decoder, info.codec, info.width, info.height,
                                   packets if packets is not None else container.packets(path),
                                   depth=depth))
    finally:
        decoder.close()
        while kernel.step():
            pass


def frames(raw: bytes) -> list[bytes]:
    return [raw[i:i + FRAME_BYTES] for i in range(0, len(raw), FRAME_BYTES)]


def assert_nothing_lost(kernel) -> int:
    kernel.ledger.check_all_returned()
    assert kernel.inflight == []
    return 0


# --------------------------------------------------------------------------- damaged streams

@pytest.mark.parametrize("threads", ["slice", "frame"])
@pytest.mark.parametrize("how", MUTATIONS)
@pytest.mark.parametrize("codec", ["vp9", "h264", "av1"])
def test_damaged_stream_errors_clearly_and_the_next_stream_decodes(codec, how, threads, clips,
                                                                   tmp_path, caplog):
    """Frame threads with a client 6 deep: pictures are parked when the damage hits,
    and libavcodec's error may surface on a later request; still every request gets
    its picture or an error, and nothing is lost."""
    if codec not in clips:
        pytest.skip("no AV1 encoder")
    probe, packets = damaged_input(clips, codec, how, tmp_path)
    intact = frames(ffmpeg_nv12(clips[codec]))
    kernel, daemon = sim_stack(threads)
    caplog.set_level(logging.INFO)
    started = time.monotonic()
    pictures = sim_decode(kernel, probe, packets, depth=6 if threads == "frame" else 2)
    elapsed = time.monotonic() - started
    lost = assert_nothing_lost(kernel)

    failed = [p for p in pictures if p.data is None]
    good = [p.data for p in pictures if not p.packet]
    # every frame before the damage is bit-exact
    assert good[:DAMAGED] == intact[:DAMAGED], "a frame before the damage differs"
    if failed:
        for p in failed:
            assert p.error, p
        # the daemon said why, once per failed job, without a traceback
        assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
        errors = daemon.stats.errors
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING
                    and r.name.startswith("daedalus_v4l2.session")]
        assert len(warnings) <= 2 * max(errors, 1) + 1, [r.getMessage() for r in warnings]
    else:
        # damage libavcodec does not notice (it conceals it): one picture per frame
        # all the same, and nothing before the damage changed (checked above)
        assert len(pictures) == FRAMES
    assert len(good) >= FRAMES - 1    # the next stream on the same kernel and daemon is bit-exact
    again = sim_decode(kernel, clips[codec], depth=6 if threads == "frame" else 2)
    assert [p.data for p in again] == intact
    assert_nothing_lost(kernel)
    record(SUITE, f"damaged {codec} ({how}, {threads} threads)", inputs=1, buffers_lost=lost,
           hangs=int(elapsed > 60), detected=len(failed))


@pytest.mark.parametrize("how", ["zeros", "garbage", "truncate"])
def test_cli_decode_of_a_damaged_file(how, clips, tmp_path):
    """`daedalus-v4l2 decode` on a damaged file: bounded time, what it could,
    which frames failed and why on stderr, non-zero exit."""
    codec = "vp9"
    bad = damaged_file(clips, codec, how, tmp_path)
    out = tmp_path / "out.nv12"
    started = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "daedalus_v4l2", "decode", str(bad), "-o", str(out)],
                       capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    written = frames(out.read_bytes())
    intact = frames(ffmpeg_nv12(clips[codec]))
    assert written[:DAMAGED] == intact[:DAMAGED]
    if p.returncode == 0:     # damage libavcodec conceals: every frame, none failed
        assert len(written) == FRAMES, p.stderr
    else:
        assert p.returncode == 1, p.stderr
        assert f"frame {DAMAGED + 1}:" in p.stderr or f"packet {DAMAGED + 1}:" in p.stderr, \
            p.stderr
        assert "failed" in p.stderr.splitlines()[-1], p.stderr
        assert len(written) >= DAMAGED
    assert "Traceback" not in p.stderr
    record(SUITE, f"cli decode ({how})", inputs=1, hangs=int(elapsed > 120))


# --------------------------------------------------------------------------- wrong codec

@pytest.mark.parametrize("fmt,codec", [("vp9", "h264"), ("h264", "vp9"), ("av1", "vp9"),
                                       ("vp9", "av1")])
def test_a_codec_other_than_the_format_set(fmt, codec, clips, caplog):
    """The OUTPUT format says one codec, the buffers hold another: ERROR per request,
    one reason each, and the context goes on."""
    if "av1" in (fmt, codec) and "av1" not in clips:
        pytest.skip("no AV1 encoder")
    kernel, daemon = sim_stack()
    caplog.set_level(logging.INFO)
    fourcc = {"vp9": uapi.V4L2_PIX_FMT_VP9_FRAME, "h264": uapi.V4L2_PIX_FMT_H264_SLICE,
              "av1": uapi.V4L2_PIX_FMT_AV1_FRAME}[fmt]
    controls = _valid_controls(clips[fmt])
    client = SimClient(kernel, pixelformat=fourcc, width=W, height=H)
    client.streamon()
    packets = list(container.packets(clips[codec]))[:3]
    errors = 0
    for i, data in enumerate(packets):
        client.queue_capture(i)
        client.queue_output(i % client.n_output, data, (i + 1) * SEC, controls=controls)
        cap = client.dqbuf(CAP)
        client.dqbuf(OUT)
        errors += cap.error
    # refused with a reason; later frames may decode garbage-in as libavcodec sees fit
    assert errors >= 1 and daemon.stats.errors >= 1
    assert not [r for r in caplog.records if r.exc_info]
    client.streamoff()
    client.close()
    assert_nothing_lost(kernel)
    record(SUITE, f"{codec} bitstream in a {fmt} stream", inputs=len(packets))


def _valid_controls(clip_path):
    """The controls of the first request of an intact stream of that codec."""
    kernel = SimKernel(seed=1)
    seen = []
    d = ScriptedDaemon(kernel.open_chardev(), policy=lambda m: seen.append(m) or "pixels")
    d.attach(kernel)
    sim_decode_first(kernel, clip_path)
    menus = {uapi.V4L2_CID_STATELESS_H264_DECODE_MODE, uapi.V4L2_CID_STATELESS_H264_START_CODE}
    return {cid: int.from_bytes(v[:4], "little", signed=True) if cid in menus else v
            for cid, v in seen[0].controls.items()}


def sim_decode_first(kernel, path):
    info = container.probe(path)
    decoder = StatelessDecoder(kernel.syscalls(), kernel.video_path, kernel.media_path)
    try:
        for _ in decode_through(decoder, info.codec, info.width, info.height,
                                list(container.packets(path))[:1]):
            pass
    finally:
        decoder.close()


# --------------------------------------------------------------------------- controls

def test_out_of_range_menu_controls_are_erange():
    kernel, _ = sim_stack()
    client = SimClient(kernel, pixelformat=uapi.V4L2_PIX_FMT_H264_SLICE)
    req = client.alloc_request()
    tried = 0
    for cid in (uapi.V4L2_CID_STATELESS_H264_DECODE_MODE, uapi.V4L2_CID_STATELESS_H264_START_CODE):
        for value in (-1, 2, 7, 0x7FFFFFFF):
            with pytest.raises(OSError) as exc:
                client.set_controls(req, {cid: value})
            assert exc.value.errno == errno.ERANGE
            tried += 1
    with pytest.raises(OSError) as exc:     # a compound payload smaller than its struct
        client.set_controls(req, {uapi.V4L2_CID_STATELESS_H264_SPS: b"\0" * 8})
    assert exc.value.errno == errno.EFAULT
    with pytest.raises(OSError) as exc:     # a control this device does not have
        client.set_controls(req, {0x00A40AFF: b"\0" * 8})
    assert exc.value.errno == errno.EINVAL
    client.close()
    record(SUITE, "out-of-range control values (ioctl)", inputs=tried + 2)


def test_compound_controls_with_impossible_values_fail_the_request(clips, caplog):
    """Values the V4L2 core lets through (sim) reach the daemon: ERROR with a reason."""
    caplog.set_level(logging.INFO)
    kernel, daemon = sim_stack()
    sps = bytearray(_valid_controls(clips["h264"])[uapi.V4L2_CID_STATELESS_H264_SPS])
    cases = []
    big = bytearray(sps)
    sps_c = uapi.ffi.cast("struct v4l2_ctrl_h264_sps *", uapi.ffi.from_buffer(big))
    sps_c.pic_width_in_mbs_minus1 = 1023            # 16384 pixels wide in a 64x48 stream
    sps_c.pic_height_in_map_units_minus1 = 1023
    cases.append(bytes(big))
    bad_depth = bytearray(sps)
    c = uapi.ffi.cast("struct v4l2_ctrl_h264_sps *", uapi.ffi.from_buffer(bad_depth))
    c.bit_depth_luma_minus8, c.chroma_format_idc, c.log2_max_frame_num_minus4 = 200, 9, 99
    cases.append(bytes(bad_depth))
    client = SimClient(kernel, pixelformat=uapi.V4L2_PIX_FMT_H264_SLICE, width=W, height=H)
    client.streamon()
    controls = _valid_controls(clips["h264"])
    packet = next(iter(container.packets(clips["h264"])))
    for i, bad in enumerate(cases):
        client.queue_capture(i)
        client.queue_output(i, packet, (i + 1) * SEC,
                            controls={**controls, uapi.V4L2_CID_STATELESS_H264_SPS: bad})
        assert client.dqbuf(CAP).error
        client.dqbuf(OUT)
    assert any("larger than the stream" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.exc_info]
    client.streamoff()
    client.close()
    assert_nothing_lost(kernel)
    record(SUITE, "impossible compound control values", inputs=len(cases))


# --------------------------------------------------------------------------- sizes

def test_sizes_beyond_the_advertised_limits_are_clamped():
    kernel, _ = sim_stack()
    sys_ = kernel.syscalls()
    fd = sys_.open(kernel.video_path)

    def s_fmt(w, h, sizeimage=0):
        f = uapi.ffi.new("struct v4l2_format *")
        f.type = OUT
        pix = f.fmt.pix_mp
        pix.pixelformat, pix.width, pix.height, pix.num_planes = uapi.V4L2_PIX_FMT_VP9_FRAME, w, h, 1
        pix.plane_fmt[0].sizeimage = sizeimage
        sys_.ioctl(fd, uapi.VIDIOC_S_FMT, f)
        return pix

    tried = 0
    for w, h, want in [(8192, 8192, (4096, 4096)), (0, 0, (16, 16)), (5, 70000, (16, 4096)),
                       (0xFFFFFFFF, 1, (4096, 16))]:
        pix = s_fmt(w, h)
        assert (pix.width, pix.height) == want
        tried += 1
    for asked in (0, 1, 0xFFFFFFFF, 65 << 20):
        pix = s_fmt(64, 48, asked)
        assert (1 << 20) <= pix.plane_fmt[0].sizeimage <= (64 << 20)
        tried += 1
    sys_.close(fd)
    record(SUITE, "formats beyond the limits (clamped)", inputs=tried)


def test_a_frame_larger_than_the_format_is_refused_quickly(clips, caplog):
    """A VP9 header claiming 16000x16000 in a 64x48 stream: ERROR at once, not seconds
    and half a GiB inside libavcodec."""
    caplog.set_level(logging.INFO)
    kernel, daemon = sim_stack()
    packets = list(container.packets(clips["vp9"]))
    key = bytearray(packets[0])
    bits = int.from_bytes(key[:9], "big")
    for start, value in ((36, 15999), (52, 15999)):   # frame_width/height_minus_1, profile 0
        shift = 72 - start - 16
        bits = (bits & ~(0xFFFF << shift)) | (value << shift)
    key[:9] = bits.to_bytes(9, "big")
    client = SimClient(kernel, width=W, height=H)
    client.streamon()
    client.queue_capture(0)
    started = time.monotonic()
    client.queue_output(0, bytes(key), SEC)
    assert client.dqbuf(CAP).error
    assert time.monotonic() - started < 2
    assert any("16000x16000, larger than the stream's 64x48" in r.getMessage()
               for r in caplog.records)
    client.dqbuf(OUT)
    client.streamoff()
    client.close()
    assert_nothing_lost(kernel)
    record(SUITE, "frame header beyond the format", inputs=1)


def test_oversize_and_overfull_buffers():
    kernel, daemon = sim_stack()
    client = SimClient(kernel, width=W, height=H, sizeimage=4 << 20)
    client.streamon()
    b, planes = client.new_buffer(OUT, 0)
    planes[0].bytesused = client.out_maps[0].__len__() + 1        # more than the buffer
    b.flags, b.request_fd = uapi.V4L2_BUF_FLAG_REQUEST_FD, client.alloc_request()
    with pytest.raises(OSError) as exc:
        client.sys.ioctl(client.fd, uapi.VIDIOC_QBUF, b)
    assert exc.value.errno == errno.EINVAL
    client.sys.close(b.request_fd)
    # a whole 4 MiB OUTPUT buffer of garbage: ERROR, no hang
    client.queue_capture(0)
    client.queue_output(0, random.Random(1).randbytes(4 << 20), SEC)
    assert client.dqbuf(CAP).error
    client.dqbuf(OUT)
    client.streamoff()
    client.close()
    assert_nothing_lost(kernel)
    record(SUITE, "oversize buffers", inputs=2)


# --------------------------------------------------------------------------- protocol

def good_frame(cookie=1, stream=1, **kw):
    return proto.encode(proto.FrameResponse(stream_id=stream, cookie=cookie,
                                            flags=kw.pop("flags", proto.FRAME_SRC_CONSUMED), **kw))


def hdr(data: bytes, **fields) -> bytes:
    names = ("magic", "version", "type", "flags", "payload_len", "cookie", "stream_id", "reserved")
    values = dict(zip(names, struct.unpack_from("<IHHIIQII", data)))
    values.update(fields)
    return struct.pack("<IHHIIQII", *(values[n] for n in names)) + data[proto.HEADER_SIZE:]


def resp_field(data: bytes, offset: int, fmt: str, value) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, proto.HEADER_SIZE + offset, value)
    return bytes(b)


DAEMON_TO_KERNEL = {
    "magic": lambda: hdr(good_frame(), magic=0x12345678),
    "version": lambda: hdr(good_frame(), version=2),
    "type": lambda: hdr(good_frame(), type=99),
    "kernel-only type": lambda: proto.encode(proto.Message(proto.MSG_DECODE, 1, 1, bytes(112))),
    "header flags": lambda: hdr(good_frame(), flags=1),
    "reserved": lambda: hdr(good_frame(), reserved=1),
    "short": lambda: good_frame()[:20],
    "payload_len small": lambda: hdr(good_frame(), payload_len=8),
    "payload_len large": lambda: hdr(good_frame(), payload_len=1 << 30),
    "longer write": lambda: good_frame() + b"\0" * 8,
    "no flags": lambda: resp_field(good_frame(), 4, "<I", 0),
    "unknown flags": lambda: resp_field(good_frame(), 4, "<I", 0x100),
    "positive status": lambda: resp_field(good_frame(), 0, "<i", 5),
    "huge status": lambda: resp_field(good_frame(), 0, "<i", -100000),
    "planes": lambda: resp_field(good_frame(), 20, "<I", 4),
    "pixels without plane": lambda: resp_field(good_frame(flags=proto.FRAME_HAS_PIXELS), 20, "<I", 0),
    "plane_bytes past num_planes": lambda: resp_field(good_frame(), 32, "<I", 7),
    "reason not terminated": lambda: (good_frame()[:proto.HEADER_SIZE + 48]
                                      + b"x" * 64),
    "wrong stream": lambda: good_frame(stream=77),
}


@pytest.mark.parametrize("name", list(DAEMON_TO_KERNEL))
def test_malformed_messages_to_the_kernel_are_rejected_and_counted(name):
    kernel = SimKernel(seed=1)
    d = ScriptedDaemon(kernel.open_chardev(), policy=lambda m: "none").attach(kernel)
    client = SimClient(kernel)
    client.streamon()
    client.queue_capture(0)
    client.queue_output(0, b"a", SEC)
    kernel.run_until(lambda: not d.transport.pending())
    with pytest.raises(OSError) as exc:
        d.transport._send_internal(DAEMON_TO_KERNEL[name]())
    assert exc.value.errno == errno.EINVAL
    assert kernel.stats.rejected_messages == 1
    assert [e.cookie for e in kernel.inflight] == [1]       # nothing else changed
    d.send_pixels(1, consumed=True)                          # and the job still completes
    assert not client.dqbuf(CAP).error
    client.streamoff()
    client.close()
    assert_nothing_lost(kernel)
    record(SUITE, f"malformed message to the kernel ({name})", inputs=1)


def test_unknown_duplicate_and_overflowing_responses():
    kernel = SimKernel(seed=1)
    d = ScriptedDaemon(kernel.open_chardev(), policy=lambda m: "consume").attach(kernel)
    client = SimClient(kernel)
    client.streamon()
    client.queue_capture(0)
    client.queue_output(0, b"a", SEC)
    client.dqbuf(OUT)
    codes = []
    for data in (good_frame(cookie=999), good_frame(cookie=2**64 - 1), good_frame(cookie=1)):
        with pytest.raises(OSError) as exc:
            d.transport._send_internal(data)
        codes.append(exc.value.errno)
    assert codes == [errno.ENOENT, errno.ENOENT, errno.EALREADY]
    size = d.decodes[1].capture_size
    with pytest.raises(OSError) as exc:       # plane_bytes past the CAPTURE buffer
        d.transport._send_internal(good_frame(flags=proto.FRAME_HAS_PIXELS, plane_bytes=[size + 1]))
    assert exc.value.errno == errno.EOVERFLOW
    assert client.dqbuf(CAP).error
    assert (kernel.stats.unknown_cookie, kernel.stats.duplicate_response) == (2, 1)
    client.streamoff()
    client.close()
    assert_nothing_lost(kernel)
    record(SUITE, "unknown/duplicate/overflowing responses", inputs=4)


def _decode_msg():
    return proto.DecodeRequest(
        stream_id=1, cookie=5, timestamp=0, codec=proto.CODEC_VP9, coded_width=64,
        coded_height=48, capture_fourcc=uapi.V4L2_PIX_FMT_NV12, capture_index=0,
        capture_size=4608, output_index=0,
        planes=[proto.Plane(0, 64, 48), proto.Plane(3072, 64, 24)], controls={}, bitstream=b"x")


KERNEL_TO_DAEMON = {
    "magic": lambda: hdr(proto.encode(_decode_msg()), magic=0),
    "version": lambda: hdr(proto.encode(_decode_msg()), version=9),
    "type": lambda: hdr(proto.encode(_decode_msg()), type=42),
    "flags": lambda: hdr(proto.encode(_decode_msg()), flags=4),
    "short header": lambda: proto.encode(_decode_msg())[:16],
    "payload_len past the bytes": lambda: hdr(proto.encode(_decode_msg()), payload_len=10**6),
    "payload_len over the cap": lambda: hdr(proto.encode(_decode_msg()), payload_len=2**31),
    "decode shorter than its struct": lambda: hdr(proto.encode(_decode_msg())[:60], payload_len=28),
    "no planes": lambda: resp_field(proto.encode(_decode_msg()), 48, "<I", 0),
    "too many planes": lambda: resp_field(proto.encode(_decode_msg()), 48, "<I", 9),
    "ctrl_len unaligned": lambda: resp_field(proto.encode(_decode_msg()), 52, "<I", 3),
    "ctrl_len past the payload": lambda: resp_field(proto.encode(_decode_msg()), 52, "<I", 4096),
    "bitstream_len disagrees": lambda: resp_field(proto.encode(_decode_msg()), 56, "<I", 77),
    "control record past the blob": lambda: proto.encode(
        proto.Message(proto.MSG_STREAM_OPEN, 0, 1, bytes(3))),
    "frame from the kernel with bad flags": lambda: resp_field(good_frame(), 4, "<I", 0x40),
}


def test_malformed_messages_to_the_daemon_are_rejected_and_counted():
    """The daemon's side: each bad message counted in Transport.stats.rejected, and
    the daemon goes on to answer the good DECODE after them."""
    kernel = FakeKernel()
    for make_bad in KERNEL_TO_DAEMON.values():
        kernel.inbox.append(make_bad())
    good = _decode_msg()
    kernel.inbox.append(proto.encode(good))
    daemon = Daemon(kernel)
    while kernel.inbox:
        daemon.step(0)
    assert kernel.stats.rejected == len(KERNEL_TO_DAEMON)
    assert kernel.stats.received == 1
    answers = [m for m in kernel.sent if isinstance(m, proto.FrameResponse)]
    assert [a.cookie for a in answers] == [good.cookie]
    for a in answers:
        check_frame_response(a, good.capture_size)
    record(SUITE, "malformed messages to the daemon", inputs=len(KERNEL_TO_DAEMON))


def test_a_hostile_capture_layout_is_refused_not_written(clips):
    """Plane offsets, strides and sizes the daemon gets are checked against the
    mapping it really has before one byte is written."""
    seeds = [m for m in __import__("fuzz.targets", fromlist=["seeds"]).seeds()
             if proto.parse(m).codec == proto.CODEC_VP9]
    cases = [
        dict(capture_size=100),                                     # smaller than the picture
        dict(planes=[proto.Plane(0, 64, 48), proto.Plane(2**32 - 64, 64, 24)]),
        dict(planes=[proto.Plane(0, 8, 48), proto.Plane(3072, 64, 24)]),     # stride < a row
        dict(planes=[proto.Plane(0, 64, 48), proto.Plane(0, 64, 24)]),       # overlapping planes
        dict(planes=[proto.Plane(0, 64, 2), proto.Plane(3072, 64, 24)]),     # too few rows
        dict(capture_size=2**32 - 1),                               # more than the kernel maps
        dict(capture_fourcc=0x34325659),                            # not NV12/P010
    ]
    for change in cases:
        msg = proto.parse(seeds[0])
        for k, v in change.items():
            setattr(msg, k, v)
        kernel = FakeKernel()
        kernel.inbox.append(proto.encode(msg))
        Daemon(kernel).step(0)
        (answer,) = [m for m in kernel.sent if isinstance(m, proto.FrameResponse)]
        assert answer.flags & proto.FRAME_ERROR and answer.reason, (change, answer)
        for raw, _ in kernel.maps.values():
            assert raw[:64] == b"\xa5" * 64 and raw[-64:] == b"\xa5" * 64
    record(SUITE, "hostile CAPTURE layouts (daemon)", inputs=len(cases))
