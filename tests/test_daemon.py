"""The daemon on the sim backend: sessions per stream, errors for bad bitstreams, and going on."""
import errno
import select
import subprocess
import sys

import pytest

from daedalus_v4l2 import container, proto, session
from daedalus_v4l2.backends.sim import SimKernel
from daedalus_v4l2.codecs.bitreader import BitReader
from daedalus_v4l2.daemon import Daemon
from daedalus_v4l2.decode import StatelessPipeline, Vp9Client
from daedalus_v4l2.session import vp9_show_existing_frame
from daedalus_v4l2.synth import VP9_REALTIME, make_clip
from daedalus_v4l2.v4l2 import uapi
from daedalus_v4l2.v4l2.client import StatelessDecoder

from .damage import Damaging, garbage_after_the_header, zeros


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("d") / "c.ivf", "vp9", 176, 144, 12, options=VP9_REALTIME)


@pytest.fixture
def stack():
    kernel = SimKernel(seed=1)
    daemon = Daemon(kernel.open_chardev())
    kernel.attach_daemon(daemon.step)
    return kernel, daemon


def open_client(kernel):
    return StatelessDecoder(kernel.syscalls(), kernel.video_path, kernel.media_path)


def run(kernel, clip, client, depth=1):
    info = container.probe(clip)
    decoder = open_client(kernel)
    pipeline = StatelessPipeline(decoder, client, info.width, info.height, depth=depth)
    try:
        return list(pipeline.run(container.packets(clip)))
    finally:
        pipeline.close()
        decoder.close()
        settle(kernel)


def settle(kernel):
    """Let the daemon read what the kernel sent last (STREAM_CLOSE after a close)."""
    while kernel.step():
        pass


def test_a_rejected_bitstream_gives_error_and_the_stream_goes_on(stack, clip):
    kernel, daemon = stack
    pictures = run(kernel, clip, Damaging({5: zeros, 6: garbage_after_the_header}))
    assert [p.number for p in pictures if p.data is None] == [6, 7]
    assert all(p.data is not None for p in pictures[7:])  # inter frames after the damage decode
    assert kernel.stats.errors == 2
    assert daemon.stats.errors == 2 and daemon.stats.pictures == 10


def test_the_pipeline_dequeues_its_output_buffers_without_polling(stack, clip, monkeypatch):
    """A request's OUTPUT buffer comes back long before its picture: the pipeline takes
    it with one DQBUF (the video node is non-blocking) and polls only for CAPTURE."""
    from daedalus_v4l2.backends.sim.syscalls import SimSyscalls

    kernel, _ = stack
    polled, tried, dequeued = [], [], []
    poll, ioctl = SimSyscalls.poll, SimSyscalls.ioctl

    def counting_poll(self, fds, timeout):
        polled.extend(events for _, events in fds)
        return poll(self, fds, timeout)

    def counting_ioctl(self, fd, request, arg=None):
        if request == uapi.VIDIOC_DQBUF:
            tried.append(arg.type)
        result = ioctl(self, fd, request, arg)      # EAGAIN raises: not dequeued
        if request == uapi.VIDIOC_DQBUF:
            dequeued.append(arg.type)
        return result

    monkeypatch.setattr(SimSyscalls, "poll", counting_poll)
    monkeypatch.setattr(SimSyscalls, "ioctl", counting_ioctl)
    pictures = run(kernel, clip, Vp9Client())
    assert len(pictures) == 12 and all(p.data is not None for p in pictures)
    output = uapi.V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE
    assert tried.count(output) == dequeued.count(output) >= 12 - 4  # all but the last 4 reused
    assert polled and not any(events & select.POLLOUT for events in polled)


def test_looking_first_for_a_buffer_that_is_not_done_waits_no_longer_than_asked(stack, clip):
    """The first DQBUF must not block (the video node is open O_NONBLOCK): nothing is
    queued here, so a blocking one would wait for ever (the sim: SimDeadlock)."""
    from daedalus_v4l2.v4l2.client import CAPTURE, OUTPUT

    kernel, _ = stack
    info = container.probe(clip)
    decoder = open_client(kernel)
    pipeline = StatelessPipeline(decoder, Vp9Client(), info.width, info.height)
    try:
        for buf_type in (OUTPUT, CAPTURE):
            assert decoder.dequeue(buf_type, 0.01, look_first=True) is None
            assert decoder.dequeue(buf_type, 0) is None
    finally:
        pipeline.close()
        decoder.close()


def test_sessions_open_per_context_and_close_with_it(stack, clip):
    kernel, daemon = stack
    first = run(kernel, clip, Vp9Client())
    assert daemon.stats.streams_opened == 1 and daemon.stats.streams_closed == 1
    assert daemon.sessions == {}
    second = run(kernel, clip, Vp9Client())
    assert [p.data for p in first] == [p.data for p in second]
    assert daemon.stats.streams_opened == 2


def test_two_contexts_decode_interleaved_with_separate_sessions(stack, clip):
    kernel, daemon = stack
    info = container.probe(clip)
    decoders = [open_client(kernel) for _ in range(2)]
    pipelines = [StatelessPipeline(d, Vp9Client(), info.width, info.height, depth=1) for d in decoders]
    runs = [p.run(container.packets(clip)) for p in pipelines]
    outputs = [[], []]
    for pictures in zip(*runs):
        for out, picture in zip(outputs, pictures):
            out.append(picture.data)
    assert len(daemon.sessions) == 2
    assert outputs[0] == outputs[1] and len(outputs[0]) == 12
    for p, d in zip(pipelines, decoders):
        p.close()
        d.close()
    settle(kernel)
    assert daemon.sessions == {}


def test_ping_is_answered_with_pong():
    kernel = SimKernel(seed=2)
    transport = kernel.open_chardev()
    sent = []
    transport._send_internal = sent.append  # see the daemon's reply as bytes
    Daemon(transport).handle(proto.Message(proto.MSG_PING, cookie=77))
    reply = proto.parse(sent[0])
    assert reply.type == proto.MSG_PONG and reply.cookie == 77


def test_unsupported_codec_request_gets_an_error_response():
    kernel = SimKernel(seed=3)
    transport = kernel.open_chardev()
    sent = []
    transport._send_internal = sent.append
    req = proto.DecodeRequest(stream_id=1, cookie=5, timestamp=1000, codec=99, coded_width=16,
                              coded_height=16, capture_fourcc=uapi.V4L2_PIX_FMT_NV12,
                              capture_index=0, capture_size=384, output_index=0,
                              planes=[proto.Plane(0, 16, 16), proto.Plane(256, 16, 8)],
                              controls={}, bitstream=b"\0")
    Daemon(transport).handle(req)
    reply = proto.parse(sent[0])
    assert reply.flags == proto.FRAME_SRC_CONSUMED | proto.FRAME_ERROR
    assert reply.status == -errno.EINVAL and "not supported" in reply.reason


@pytest.mark.parametrize("profile", range(4))
def test_show_existing_frame_packets_say_what_they_mean(profile):
    """Bits per VP9 spec 6.2: frame_marker, profile, [reserved], show_existing_frame, slot."""
    for slot in range(8):
        bits = BitReader(vp9_show_existing_frame(profile, slot))
        assert bits.read_bits(2) == 0b10
        low, high = bits.read_bits(1), bits.read_bits(1)
        assert (high << 1) | low == profile
        if profile == 3:
            assert bits.read_bits(1) == 0
        assert bits.read_bits(1) == 1
        assert bits.read_bits(3) == slot
        assert bits.bits_left < 8


CLOSE_MANY_FRAME_THREADED_SESSIONS = """
import sys
from daedalus_v4l2 import container, session
packets = list(container.packets(sys.argv[1]))
for _ in range(300):
    s = session.Vp9Session(1, thread_type="FRAME", thread_count=3)
    for cookie, data in enumerate(packets, 1):
        s._feed(data, cookie)
        s._feed(session.vp9_show_existing_frame(0, 0), session.NOOP_PTS)  # a push
    s.close()
"""


def test_closing_frame_threaded_sessions_never_hangs(tmp_path):
    """PyAV frees a codec context holding the GIL, and a frame thread that calls back
    into Python then waits for ever: without the flush in close() this hung within
    300 closes.  In a child process, so that a hang fails the test."""
    clip = make_clip(tmp_path / "tiny.ivf", "vp9", 64, 48, 10)
    subprocess.run([sys.executable, "-c", CLOSE_MANY_FRAME_THREADED_SESSIONS, str(clip)],
                   check=True, timeout=120)


def test_close_closes_every_open_session(stack):
    """A daemon that stops (or a sim torn down before STREAM_CLOSE arrives) closes its
    sessions itself, so their decoders' threads finish (see the test above)."""
    _, daemon = stack
    for stream_id in (4, 5):
        daemon.handle(proto.StreamOpen(stream_id, proto.CODEC_VP9, 0x46395056, 64, 48, 0x3231564E))
    assert set(daemon.sessions) == {4, 5}
    daemon.close()
    assert daemon.sessions == {} and daemon.stats.streams_closed == 2


# FFmpeg's AV_INPUT_BUFFER_PADDING_SIZE: zeroed bytes a decoder may read past a packet's end
PADDING = 64


def _padding_of(packet) -> bytes:
    import ctypes
    return ctypes.string_at(packet.buffer_ptr + packet.size, PADDING)


def test_a_packet_holds_its_own_copy_with_zeroed_padding():
    data = bytearray(b"\xff" * 1000)
    packet = session.packet_of(data, 7)
    data[0] = 0   # the caller's buffer changes: the packet does not (it is not lent)
    assert bytes(packet) == b"\xff" * 1000
    assert (packet.pts, packet.dts) == (7, 7)
    assert _padding_of(packet) == bytes(PADDING)


def test_every_packet_the_daemon_feeds_libavcodec_is_padded(stack, clip, monkeypatch):
    real_packet_of, fed = session.packet_of, []

    def recording(data, pts):
        packet = real_packet_of(data, pts)
        fed.append((packet.size, _padding_of(packet)))
        return packet

    monkeypatch.setattr(session, "packet_of", recording)
    kernel, _ = stack
    pictures = run(kernel, clip, Vp9Client())
    assert len(fed) >= len(pictures) == 12
    assert all(size and padding == bytes(PADDING) for size, padding in fed)
