"""Write-behind: the daemon's writer thread puts pictures into CAPTURE buffers while
libavcodec decodes the next request (daedalus_v4l2/writer.py).

The contracts hold with it: the same pictures, completed in decode order, every
buffer back once; a request parks only until its picture is written; a write
that fails ends its own request with ERROR and the stream goes on.
"""
import dataclasses
import errno
import logging
import threading

import pytest

from daedalus_v4l2 import container, pixels, proto
from daedalus_v4l2.backends_runtime import open_decoder
from daedalus_v4l2.daemon import Daemon
from daedalus_v4l2.decode import decode_through
from daedalus_v4l2.session import Vp9Session, open_session
from daedalus_v4l2.synth import VP9_REALTIME, make_clip
from daedalus_v4l2.threads import THREADS
from daedalus_v4l2.v4l2 import uapi
from daedalus_v4l2.writer import PictureWriter
from fuzz.corpus import record

from .reference import ffmpeg_nv12, frame_md5s

WIDTH, HEIGHT, FRAMES = 176, 144, 16


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("writer") / "c.ivf", "vp9", WIDTH, HEIGHT, FRAMES,
                     options=VP9_REALTIME)


# --------------------------------------------------------------------------- the writer alone

def test_the_writer_sends_in_the_order_it_was_given_and_wait_means_all_sent():
    sent, gate = [], threading.Event()

    def write(n):
        def run():
            gate.wait(5)
            return n
        return run

    writer = PictureWriter(sent.append)
    for n in range(20):
        writer.put(write(n))
    assert not writer.wait(0.05) and writer.unsent == 20    # held at the gate: nothing sent
    gate.set()
    assert writer.wait(5) and sent == list(range(20)) and writer.unsent == 0
    assert writer.stop()


def test_a_write_that_raises_does_not_stop_the_writer(caplog):
    sent = []
    writer = PictureWriter(sent.append)
    writer.put(lambda: 1)
    writer.put(lambda: 1 / 0)
    writer.put(lambda: 3)
    assert writer.wait(5) and sent == [1, 3]
    assert "a write failed" in caplog.text
    assert writer.stop()


def test_stop_sends_what_is_queued_first_and_takes_no_more():
    sent = []
    writer = PictureWriter(sent.append)
    for n in range(5):
        writer.put(lambda n=n: n)
    assert writer.stop() and sent == list(range(5))
    with pytest.raises(RuntimeError, match="stopped"):
        writer.put(lambda: 0)


# --------------------------------------------------------------------------- in the daemon

def decode(clip, depth=2, **daemon_options):
    info = container.probe(clip)
    with open_decoder("sim", daemon_options=daemon_options) as opened:
        pictures = list(decode_through(opened.decoder, info.codec, info.width, info.height,
                                       container.packets(clip), depth=depth, timeout=5.0))
        return pictures, opened


@pytest.mark.parametrize("depth", [1, 3])
def test_pictures_are_written_in_the_writer_thread_after_their_request_was_consumed(
        clip, depth, monkeypatch):
    writing_threads, sent = set(), []
    pack, send = pixels.pack_frame, Daemon._send

    def recording_pack(*args, **kwargs):
        writing_threads.add(threading.current_thread().name)
        return pack(*args, **kwargs)

    def recording_send(self, msg):
        if isinstance(msg, proto.FrameResponse):
            sent.append((msg.cookie, msg.flags))
        return send(self, msg)

    monkeypatch.setattr(pixels, "pack_frame", recording_pack)
    monkeypatch.setattr(Daemon, "_send", recording_send)
    pictures, opened = decode(clip, depth=depth)
    assert frame_md5s(b"".join(p.data for p in pictures), WIDTH, HEIGHT) == \
        frame_md5s(ffmpeg_nv12(clip), WIDTH, HEIGHT)
    assert writing_threads == {"daedalus-v4l2 writer"}
    # every request: SRC_CONSUMED first, then its pixels; the pixels in decode order
    assert [flags for _, flags in sent] == \
        [proto.FRAME_SRC_CONSUMED, proto.FRAME_HAS_PIXELS] * FRAMES
    pixels_order = [cookie for cookie, flags in sent if flags & proto.FRAME_HAS_PIXELS]
    assert pixels_order == sorted(pixels_order) and len(pixels_order) == FRAMES
    stats = opened.kernel.stats
    assert stats.errors == 0 and stats.done == stats.jobs == FRAMES
    assert 1 <= stats.parked_max <= depth    # parked only while being written
    opened.kernel.ledger.check_all_returned()


def test_without_write_behind_the_daemon_writes_before_it_answers(clip, monkeypatch):
    writing_threads = set()
    pack = pixels.pack_frame
    monkeypatch.setattr(pixels, "pack_frame", lambda *a, **k: (
        writing_threads.add(threading.current_thread().name), pack(*a, **k))[1])
    pictures, opened = decode(clip, write_behind=False)
    assert writing_threads == {"daedalus-v4l2 daemon"} and opened.daemon.writer is None
    assert opened.kernel.stats.parked_max == 0 and len(pictures) == FRAMES


def test_write_behind_is_refused_for_a_daemon_stepped_inline(clip):
    """Inline, the daemon runs under the kernel's lock, which its writer would need:
    every job would wait for the watchdog."""
    with pytest.raises(ValueError, match="thread of its own"):
        with open_decoder("sim", daemon_thread=False, daemon_options={"write_behind": True}):
            pass


def test_a_write_that_fails_ends_its_request_with_error_and_the_stream_goes_on(clip, monkeypatch):
    calls = []
    pack = pixels.pack_frame

    def failing_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("injected")   # not one of the errors _write_picture expects
        return pack(*args, **kwargs)

    monkeypatch.setattr(pixels, "pack_frame", failing_third)
    pictures, opened = decode(clip)
    assert [p.number for p in pictures if p.data is None] == [3]
    expected = frame_md5s(ffmpeg_nv12(clip), WIDTH, HEIGHT)
    got = frame_md5s(b"".join(p.data for p in pictures if p.data is not None), WIDTH, HEIGHT)
    assert got == expected[:2] + expected[3:]
    stats = opened.kernel.stats
    assert stats.errors == 1 and stats.done == FRAMES - 1 and stats.watchdog_expiries == 0
    assert opened.daemon.stats.errors == 1
    opened.kernel.ledger.check_all_returned()


# --------------------------------------------------------------------------- one answer a request

class _FailsAfterThePicture(Vp9Session):
    """A request whose picture comes out of its first packet and whose second
    packet libavcodec refuses."""

    def _packets(self, req):
        return [bytes(req.bitstream), b"\xff" * 16]


@pytest.mark.parametrize("write_behind", [False, True])
def test_a_packet_refused_after_the_picture_came_out_does_not_undo_the_picture(clip, write_behind):
    first = next(iter(container.packets(clip)))
    size = WIDTH * HEIGHT * 3 // 2
    req = proto.DecodeRequest(stream_id=1, cookie=7, timestamp=1000, codec=proto.CODEC_VP9,
                              coded_width=WIDTH, coded_height=HEIGHT,
                              capture_fourcc=uapi.V4L2_PIX_FMT_NV12, capture_index=0,
                              capture_size=size, output_index=0,
                              planes=[proto.Plane(0, WIDTH, HEIGHT),
                                      proto.Plane(WIDTH * HEIGHT, WIDTH, HEIGHT // 2)],
                              controls={}, bitstream=first)
    memory = bytearray(size)
    session = _FailsAfterThePicture(1)
    emitted = []
    if write_behind:
        session.emit = emitted.append
    responses = session.decode(req, lambda _: memoryview(memory))
    responses = [write() for write in emitted] + responses
    # one picture, no error on top of it (the kernel would have made the picture an ERROR
    # while it was parked, or refused the error as a duplicate)
    assert [r.flags for r in responses] == (
        [proto.FRAME_SRC_CONSUMED, proto.FRAME_HAS_PIXELS] if write_behind
        else [proto.FRAME_SRC_CONSUMED | proto.FRAME_HAS_PIXELS])
    assert any(memory)


def decode_requests(path) -> list[proto.DecodeRequest]:
    """The DECODE requests a sim decode of ``path`` sends its daemon."""
    return [proto.parse(m) for m in record(path)]


def fresh_capture(req: proto.DecodeRequest) -> memoryview:
    """A session's map_capture: a new CAPTURE buffer for every picture."""
    return memoryview(bytearray(req.capture_size))


class _FailsUnexpectedly(Vp9Session):
    """libavcodec's feeding raises something no bitstream explains (a bug) for cookie 2."""

    def _feed(self, data, cookie):
        if cookie == 2:
            raise RuntimeError("injected")
        return super()._feed(data, cookie)


@pytest.mark.parametrize("write_behind", [False, True])
def test_an_unexpected_failure_answers_its_request_once_even_after_a_drain(clip, write_behind):
    """The session answers the request itself and forgets it: the daemon's catch-all
    used to answer while the request stayed pending, so a FLUSH answered it again."""
    requests = decode_requests(clip)[:4]
    session = _FailsUnexpectedly(requests[0].stream_id)
    emitted = []
    if write_behind:
        session.emit = emitted.append
    answers = []
    for cookie, req in enumerate(requests, 1):
        answers += session.decode(dataclasses.replace(req, cookie=cookie), fresh_capture)
    answers += session.drain(fresh_capture)
    sent = [write() for write in emitted] + answers
    session.close()
    by_cookie = {c: [r.flags for r in sent if r.cookie == c] for c in range(1, 5)}
    failed = [proto.FRAME_SRC_CONSUMED, proto.FRAME_ERROR] if write_behind else \
        [proto.FRAME_SRC_CONSUMED | proto.FRAME_ERROR]
    assert by_cookie[2] == failed, by_cookie
    assert all(any(f & proto.FRAME_HAS_PIXELS for f in by_cookie[c]) for c in (1, 3, 4)), by_cookie
    assert next(r for r in sent if r.cookie == 2 and r.flags & proto.FRAME_ERROR).status == -5


@pytest.mark.parametrize("write_behind", [False, True])
def test_a_picture_whose_job_was_cancelled_gets_no_answer(clip, write_behind, caplog):
    """The kernel refuses the mmap of a cancelled job's CAPTURE buffer with ENOENT:
    the job is gone, so the picture is dropped without an ERROR the kernel would
    only refuse (and count as an unknown cookie) a second time."""
    requests = decode_requests(clip)[:3]
    session = Vp9Session(requests[0].stream_id)
    emitted = []
    if write_behind:
        session.emit = emitted.append

    def cancelled_at_2(req):
        if req.cookie == 2:
            raise OSError(errno.ENOENT, "no such job in flight")
        return fresh_capture(req)

    caplog.set_level("INFO")
    answers = []
    for cookie, req in enumerate(requests, 1):
        answers += session.decode(dataclasses.replace(req, cookie=cookie), cancelled_at_2)
    sent = [r for r in (write() for write in emitted) if r is not None] + answers
    session.close()
    by_cookie = {c: [r.flags for r in sent if r.cookie == c] for c in range(1, 4)}
    # with write-behind its SRC_CONSUMED went out before the decode, as for every request
    assert by_cookie[2] == ([proto.FRAME_SRC_CONSUMED] if write_behind else []), by_cookie
    assert all(any(f & proto.FRAME_HAS_PIXELS for f in by_cookie[c]) for c in (1, 3)), by_cookie
    assert "cookie 2: picture dropped, the kernel cancelled its job" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


# --------------------------------------------------------------------------- AV1, drained mid-stream

def test_a_flush_that_drains_written_behind_av1_pictures_feeds_the_sequence_header_again(tmp_path):
    """Drain flushes dav1d, which forgets the sequence header; the AV1 session must
    notice it also when drain's pictures went to the writer instead of its answer."""
    av1_clip = make_clip(tmp_path / "a.ivf", "av1", 176, 144, 6)
    requests = decode_requests(av1_clip)
    session = open_session(1, proto.CODEC_AV1, **THREADS["frame"])
    emitted = []
    session.emit = emitted.append
    for req in requests[:3]:
        req.flags |= proto.DECODE_MORE_QUEUED   # a deep client: dav1d may keep pictures
        session.decode(req, fresh_capture)
    assert session._pending, "dav1d's frame threads gave every picture back: nothing to drain"
    session.drain(fresh_capture)                # a FLUSH in mid-stream
    again = dataclasses.replace(requests[0], cookie=1000, flags=0)   # the key frame, anew
    answers = session.decode(again, fresh_capture) + session.drain(fresh_capture)
    sent = [write() for write in emitted] + answers
    session.close()
    assert [r.flags for r in sent if r.cookie == 1000] == \
        [proto.FRAME_SRC_CONSUMED, proto.FRAME_HAS_PIXELS]


# --------------------------------------------------------------------------- STREAMOFF

def test_streamoff_with_pictures_still_to_write_drops_them_quietly(clip, monkeypatch, caplog):
    """A seek: STREAMOFF cancels jobs whose pictures the writer has not written yet.
    Mapping their CAPTURE buffers then fails with ENOENT, as a FRAME for a finished
    cookie does: counted as an unknown cookie, logged at INFO, never a WARNING or a
    rejected message, and not answered with an ERROR the kernel would only refuse
    (and count) again; every buffer comes back."""
    holding, released = threading.Event(), threading.Event()
    write_behind = Vp9Session._write_behind
    mapped = []

    def held_after_the_first(self, frame, pending, map_capture):
        if pending.request.cookie > 1:
            holding.set()
            released.wait(10)            # until the client has streamed off
        return write_behind(self, frame, pending, lambda req: mapped.append(req.cookie) or
                            map_capture(req))

    monkeypatch.setattr(Vp9Session, "_write_behind", held_after_the_first)
    caplog.set_level("INFO")
    info = container.probe(clip)
    with open_decoder("sim") as opened:
        pictures = decode_through(opened.decoder, info.codec, info.width, info.height,
                                  container.packets(clip), depth=3, timeout=5.0)
        first = next(pictures)
        assert holding.wait(5)           # the second picture is in the writer's hands
        pictures.close()                 # STREAMOFF with jobs in flight: it waits for no daemon
        released.set()
    # closed: the daemon waited for its writer, so every picture it had has been tried
    assert first.number == 1 and first.data is not None
    stats = opened.kernel.stats
    assert mapped[:2] == [1, 2]          # 2 on: their jobs were cancelled first
    assert stats.rejected_messages == 0 and stats.unknown_cookie >= len(mapped) - 1 >= 1
    assert opened.daemon.stats.errors == 0
    opened.kernel.ledger.check_all_returned()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert "the kernel cancelled its job" in caplog.text
