"""The daemon's AV1 session on its own: requests in, FRAME responses out.

Requests are what our client makes of a real SVT-AV1 clip; the CAPTURE
buffers are plain bytearrays.  This is where the daemon's side of the
contract is pinned down: the sequence header OBU is rebuilt and fed only when
the control changes, every request is answered in the call that brought it
(decode order, nothing parked), and bad requests come back as errors.
"""
from __future__ import annotations

import pytest

from daedalus_v4l2 import container, pixels, proto
from daedalus_v4l2.codecs import av1_controls
from daedalus_v4l2.codecs.av1_client import Av1Client
from daedalus_v4l2.session import open_session
from daedalus_v4l2.session_av1 import Av1Session
from daedalus_v4l2.v4l2 import uapi

WIDTH, HEIGHT = 176, 144
NV12 = uapi.V4L2_PIX_FMT_NV12


@pytest.fixture(scope="module")
def jobs(clip):
    path = clip(".ivf", codec="av1", width=WIDTH, height=HEIGHT, frames=12,
                options={"preset": "12"})
    client = Av1Client()
    stamps = iter(range(1000, 10**9, 1000))
    return [job for packet in container.packets(path)
            for job in client.jobs(packet, lambda: next(stamps))
            if job.show_timestamp is None]


class Captures:
    """CAPTURE buffers by cookie, as the transport maps them."""

    def __init__(self) -> None:
        self.planes, self.size = pixels.capture_layout(NV12, WIDTH, HEIGHT)
        self.buffers: dict[int, bytearray] = {}

    def request(self, cookie: int, job, controls=None, bitstream=None) -> proto.DecodeRequest:
        self.buffers[cookie] = bytearray(self.size)
        return proto.DecodeRequest(
            stream_id=1, cookie=cookie, timestamp=job.timestamp, codec=proto.CODEC_AV1,
            coded_width=WIDTH, coded_height=HEIGHT, capture_fourcc=NV12, capture_index=0,
            capture_size=self.size, output_index=0, planes=self.planes,
            controls=job.controls if controls is None else controls,
            bitstream=job.data if bitstream is None else bitstream)

    def map(self, req: proto.DecodeRequest) -> memoryview:
        return memoryview(self.buffers[req.cookie])


def test_the_codec_opens_an_av1_session():
    assert isinstance(open_session(3, proto.CODEC_AV1), Av1Session)


def test_every_request_is_answered_with_its_picture_at_once(jobs):
    session, captures = Av1Session(1), Captures()
    for cookie, job in enumerate(jobs, start=1):
        (response,) = session.decode(captures.request(cookie, job), captures.map)
        assert response.cookie == cookie and not response.is_error, response.reason
        assert response.flags & proto.FRAME_HAS_PIXELS and response.flags & proto.FRAME_SRC_CONSUMED
        assert (response.width, response.height, response.fourcc) == (WIDTH, HEIGHT, NV12)
    assert session.parked == 0 and session.frames_out == len(jobs)
    assert any(not job.shown for job in jobs), "the clip should have hidden frames"


def test_the_sequence_header_is_fed_only_when_its_control_changes(jobs, monkeypatch):
    session, captures = Av1Session(1), Captures()
    fed: list[bytes] = []
    original = Av1Session._feed
    def spy(self, data, cookie):
        fed.append(bytes(data))
        return original(self, data, cookie)

    monkeypatch.setattr(Av1Session, "_feed", spy)
    rebuilt = av1_controls.write_sequence_header_obu(av1_controls.sequence_from_control(
        jobs[0].controls[uapi.V4L2_CID_STATELESS_AV1_SEQUENCE]))
    session.decode(captures.request(1, jobs[0]), captures.map)
    session.decode(captures.request(2, jobs[1]), captures.map)
    assert fed[0] == rebuilt + jobs[0].data
    assert not any(packet.startswith(rebuilt) for packet in fed[1:])
    # a different sequence control (a new stream) brings a new sequence header
    changed = dict(jobs[0].controls)
    sequence = bytearray(changed[uapi.V4L2_CID_STATELESS_AV1_SEQUENCE])
    sequence[0] ^= av1_controls.V4L2_AV1_SEQUENCE_FLAG_ENABLE_FILTER_INTRA
    changed[uapi.V4L2_CID_STATELESS_AV1_SEQUENCE] = bytes(sequence)
    fed.clear()
    session.decode(captures.request(3, jobs[0], controls=changed), captures.map)
    assert fed[0].startswith(bytes([0x0A]))  # a sequence header OBU first


def test_a_request_without_the_sequence_control_is_an_error(jobs):
    session, captures = Av1Session(1), Captures()
    controls = dict(jobs[0].controls)
    del controls[uapi.V4L2_CID_STATELESS_AV1_SEQUENCE]
    (response,) = session.decode(captures.request(1, jobs[0], controls=controls), captures.map)
    assert response.is_error and response.flags & proto.FRAME_SRC_CONSUMED
    assert "control" in response.reason


def test_a_hidden_frame_that_refreshes_no_slot_is_an_error(jobs):
    session, captures = Av1Session(1), Captures()
    session.decode(captures.request(1, jobs[0]), captures.map)
    hidden = next(job for job in jobs if not job.shown)
    controls = dict(hidden.controls)
    frame = bytearray(controls[uapi.V4L2_CID_STATELESS_AV1_FRAME])
    frame[uapi.ffi.offsetof("struct v4l2_ctrl_av1_frame", "refresh_frame_flags")] = 0
    controls[uapi.V4L2_CID_STATELESS_AV1_FRAME] = bytes(frame)
    (response,) = session.decode(captures.request(2, hidden, controls=controls), captures.map)
    assert response.is_error and "refreshes no reference slot" in response.reason


def test_a_frame_control_larger_than_the_format_is_refused(jobs):
    """A frame control claiming 16384x16384 in a 176x144 stream: an error with the
    sizes, before libdav1d sees the frame, and the stream goes on."""
    session, captures = Av1Session(1), Captures()
    controls = dict(jobs[0].controls)
    frame = bytearray(controls[uapi.V4L2_CID_STATELESS_AV1_FRAME])
    c = uapi.ffi.cast("struct v4l2_ctrl_av1_frame *", uapi.ffi.from_buffer(frame))
    c.frame_width_minus_1 = c.frame_height_minus_1 = c.upscaled_width = 16383
    controls[uapi.V4L2_CID_STATELESS_AV1_FRAME] = bytes(frame)
    (bad,) = session.decode(captures.request(1, jobs[0], controls=controls), captures.map)
    assert bad.is_error and bad.flags & proto.FRAME_SRC_CONSUMED
    assert "the AV1 frame control says 16384x16384, larger than the stream's 176x144" in bad.reason
    (good,) = session.decode(captures.request(2, jobs[0]), captures.map)
    assert not good.is_error and good.flags & proto.FRAME_HAS_PIXELS


def test_garbage_is_an_error_and_the_stream_goes_on(jobs):
    session, captures = Av1Session(1), Captures()
    (bad,) = session.decode(captures.request(1, jobs[0], bitstream=b"\x32\x05" + b"\xff" * 5),
                            captures.map)
    assert bad.is_error
    (good,) = session.decode(captures.request(2, jobs[0]), captures.map)
    assert not good.is_error and good.flags & proto.FRAME_HAS_PIXELS
