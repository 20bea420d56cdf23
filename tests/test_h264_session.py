"""The H.264 daemon session: decode order out of libavcodec, damaged slices, held slices.

The first two tests pin down the libavcodec behaviour session_h264 relies
on, directly through PyAV: why a recovery point SEI is not enough, and that
an end-of-sequence packet hands out exactly the picture just decoded.
"""
import av
import pytest

from daedalus_v4l2 import container, proto
from daedalus_v4l2.codecs import h264
from daedalus_v4l2.codecs.h264_client import ANNEX_B, FRAME_BASED, SLICE_BASED, H264Client
from daedalus_v4l2.codecs.h264_controls import pps_control, pps_from_control, sps_control, sps_from_control
from daedalus_v4l2.codecs.bitwriter import BitWriter
from daedalus_v4l2.codecs.h264_rebuild import end_of_sequence, nal_unit, rebuild_pps, rebuild_sps
from daedalus_v4l2.decode import StatelessPipeline
from daedalus_v4l2.session_h264 import H264Session
from daedalus_v4l2.v4l2 import uapi

from .reference import ffmpeg_nv12, frame_md5s
from .test_daemon import open_client, settle, stack  # noqa: F401  (fixture)

WIDTH, HEIGHT, FRAMES = 96, 64, 24
PYRAMID = {"bf": "3", "b-pyramid": "normal"}


@pytest.fixture(scope="module")
def pyramid(clip):
    return clip(".h264", codec="h264", width=WIDTH, height=HEIGHT, frames=FRAMES, options=PYRAMID,
                container="h264")


def access_units(path):
    """(rebuilt SPS+PPS NAL units, the slices of each picture) of a clip, decode order."""
    sps_by_id, pps_by_id, pictures = {}, {}, []
    for packet in container.packets(path):
        slices = []
        for nal in h264.split_annexb(packet):
            kind = nal[0] & 0x1F
            if kind == h264.NAL_SPS:
                sps = h264.parse_sps(nal)
                sps_by_id[sps.seq_parameter_set_id] = sps
            elif kind == h264.NAL_PPS:
                pps = h264.parse_pps(nal, sps_by_id)
                pps_by_id[pps.pic_parameter_set_id] = pps
            elif kind in h264.VCL_NAL_TYPES:
                slices.append(nal)
        pictures.append(slices)
    sps_back = sps_from_control(sps_control(sps))
    headers = [rebuild_sps(sps_back, sps.visible_size),
               rebuild_pps(pps_from_control(pps_control(pps, sps)), sps_back)]
    return headers, pictures


def recovery_point_sei() -> bytes:
    """SEI with a recovery point (D.1.8): recovery_frame_cnt 0, exact match."""
    payload = BitWriter()
    payload.ue(0)
    payload.flag(True)
    payload.flag(False)
    payload.u(2, 0)
    payload.trailing_bits()
    body = payload.to_bytes()
    return nal_unit(0, h264.NAL_SEI, bytes([6, len(body)]) + body + b"\x80")


def decode_one_by_one(headers, pictures, before=(), after_each=None):
    """Feed libavcodec picture by picture; which pts came out after each."""
    ctx = av.CodecContext.create("h264", "r")
    out = []
    for n, slices in enumerate(pictures):
        packet = av.Packet(h264.annexb((headers if n == 0 else []) + list(before) + slices))
        packet.pts = n
        got = [f.pts for f in ctx.decode(packet)]
        if after_each is not None:
            extra = av.Packet(after_each)
            extra.pts = 10_000 + n
            got += [f.pts for f in ctx.decode(extra)]
        out.append(got)
    return out


def test_a_recovery_point_sei_does_not_give_decode_order(pyramid):
    """The untested idea: reorder depth 0 in the SPS and a recovery point SEI in
    front of every picture.  libavcodec marks only IDR pictures as key frames,
    so B pictures below the last output POC are dropped ("no picture ooo")."""
    headers, pictures = access_units(pyramid)
    sps = h264.parse_sps(headers[0])
    zero_reorder = [rebuild_sps(sps, (WIDTH, HEIGHT), reorder_depth=0), headers[1]]
    outputs = decode_one_by_one(zero_reorder, pictures, before=[recovery_point_sei()])
    shown = [pts for got in outputs for pts in got]
    assert shown == sorted(shown)  # every picture that came out did so at once...
    assert len(shown) < FRAMES     # ...but B pictures never came out at all
    b_pictures = [n for n, slices in enumerate(pictures)
                  if h264.parse_slice_header(slices[0], {0: sps}, {0: h264.parse_pps(
                      headers[1], {0: sps})}).slice_type == h264.SLICE_B]
    assert set(range(FRAMES)) - set(shown) <= set(b_pictures)


def test_an_end_of_sequence_packet_hands_out_the_picture_just_decoded(pyramid):
    headers, pictures = access_units(pyramid)
    eos = h264.annexb([end_of_sequence()])
    outputs = decode_one_by_one(headers, pictures, after_each=eos)
    assert outputs == [[n] for n in range(FRAMES)]


def test_damaged_slices_give_errors_and_the_stream_goes_on(stack, pyramid):  # noqa: F811
    kernel, daemon = stack

    class Damaging(H264Client):
        def jobs(self, packet, next_timestamp):
            jobs = super().jobs(packet, next_timestamp)
            if self.pictures == 6:  # the 6th picture: no start code, no slice
                jobs[0].data = b"\xff" * len(jobs[0].data)
            return jobs

    decoder = open_client(kernel)
    pipeline = StatelessPipeline(decoder, Damaging(FRAME_BASED, ANNEX_B), WIDTH, HEIGHT, depth=1)
    try:
        pictures = list(pipeline.run(container.packets(pyramid)))
    finally:
        pipeline.close()
        decoder.close()
        settle(kernel)
    assert len(pictures) == FRAMES
    assert sum(p.data is None for p in pictures) == 1
    assert daemon.stats.errors == 1 and daemon.stats.pictures == FRAMES - 1


def _request(cookie, slices, controls, flags):
    planes = [proto.Plane(0, WIDTH, HEIGHT), proto.Plane(WIDTH * HEIGHT, WIDTH, HEIGHT // 2)]
    return proto.DecodeRequest(
        stream_id=1, cookie=cookie, timestamp=cookie * 1000, codec=proto.CODEC_H264,
        coded_width=WIDTH, coded_height=HEIGHT, capture_fourcc=uapi.V4L2_PIX_FMT_NV12,
        capture_index=0, capture_size=WIDTH * HEIGHT * 3 // 2, output_index=0, planes=planes,
        controls=controls, bitstream=h264.annexb(slices), flags=flags)


def test_held_slices_make_one_picture_and_a_flush_finishes_a_held_picture(clip):
    path = clip(".h264", codec="h264", width=WIDTH, height=HEIGHT, frames=3,
                options={"bf": "0", "x264-params": "slice-max-mbs=12"}, container="h264")
    client = H264Client()
    client.decode_mode, client.start_code = SLICE_BASED, ANNEX_B  # no device to configure
    stamps = iter(range(1000, 10 ** 6, 1000))
    jobs = [job for packet in container.packets(path) for job in client.jobs(packet, lambda: next(stamps))]
    assert [job.hold for job in jobs] == [True, False] * 3
    session = H264Session(1)
    memory = {}

    def map_capture(req):
        return memory.setdefault(req.cookie, memoryview(bytearray(req.capture_size)))

    responses = []
    for cookie, job in enumerate(jobs[:4], 1):
        flags = (proto.DECODE_HOLD_CAPTURE if job.hold else 0) | \
                (proto.DECODE_FIRST_SLICE if cookie % 2 else 0)
        responses += session.decode(_request(cookie, h264.split_annexb(job.data), job.controls,
                                             flags), map_capture)
    # the third picture's first slice is held, then FLUSH comes without its last slice
    responses += session.decode(_request(5, h264.split_annexb(jobs[4].data), jobs[4].controls,
                                         proto.DECODE_HOLD_CAPTURE | proto.DECODE_FIRST_SLICE),
                                map_capture)
    responses += session.drain(map_capture)
    by_cookie = {}
    for r in responses:
        by_cookie.setdefault(r.cookie, r.flags)  # the first answer to each request
    assert by_cookie[1] == by_cookie[3] == by_cookie[5] == proto.FRAME_SRC_CONSUMED
    assert by_cookie[2] & proto.FRAME_HAS_PIXELS and by_cookie[4] & proto.FRAME_HAS_PIXELS
    reference = frame_md5s(ffmpeg_nv12(path), WIDTH, HEIGHT)
    picture = bytes(memory[2][:WIDTH * HEIGHT * 3 // 2])
    assert frame_md5s(picture, WIDTH, HEIGHT) == reference[:1]
    assert any(r.cookie == 5 and r.flags & proto.FRAME_HAS_PIXELS for r in responses)


def test_an_sps_control_larger_than_the_format_is_refused_mid_stream(pyramid):
    """The session reads the size an SPS control declares once for each control it
    has not seen: after pictures with the stream's own SPS, one claiming 16384x16384
    in a 96x64 stream is still an error with the sizes, and the stream goes on."""
    from daedalus_v4l2 import pixels
    client = H264Client()
    stamps = iter(range(1000, 10**9, 1000))
    jobs = [job for packet in container.packets(pyramid)
            for job in client.jobs(packet, lambda: next(stamps))]
    planes, size = pixels.capture_layout(uapi.V4L2_PIX_FMT_NV12, WIDTH, HEIGHT)
    buffers = {}

    def request(cookie, job, controls):
        buffers[cookie] = bytearray(size)
        return proto.DecodeRequest(
            stream_id=1, cookie=cookie, timestamp=job.timestamp, codec=proto.CODEC_H264,
            coded_width=WIDTH, coded_height=HEIGHT, capture_fourcc=uapi.V4L2_PIX_FMT_NV12,
            capture_index=0, capture_size=size, output_index=0, planes=planes,
            controls=controls, bitstream=job.data)

    session = H264Session(1)
    big = bytearray(jobs[1].controls[uapi.V4L2_CID_STATELESS_H264_SPS])
    sps = uapi.ffi.cast("struct v4l2_ctrl_h264_sps *", uapi.ffi.from_buffer(big))
    sps.pic_width_in_mbs_minus1 = sps.pic_height_in_map_units_minus1 = 1023
    mapped = lambda req: memoryview(buffers[req.cookie])  # noqa: E731
    (first,) = session.decode(request(1, jobs[0], jobs[0].controls), mapped)
    assert not first.is_error, first.reason
    (bad,) = session.decode(request(2, jobs[1], {**jobs[1].controls,
                                                  uapi.V4L2_CID_STATELESS_H264_SPS: bytes(big)}),
                            mapped)
    assert bad.is_error and bad.flags & proto.FRAME_SRC_CONSUMED
    assert "the H.264 SPS control says 16384x16384, larger than the stream's 96x64" in bad.reason
    (good,) = session.decode(request(3, jobs[1], jobs[1].controls), mapped)
    assert not good.is_error and good.flags & proto.FRAME_HAS_PIXELS
