"""The sim with its daemon in a thread of its own (what `decode --backend sim` runs).

The contracts hold as with the daemon inline: the same pictures, in decode
order, every buffer back; a daemon that dies or stalls fails its jobs instead
of hanging the client; a wait that can never end is still a SimDeadlock.
"""
import contextlib
import logging
import threading

import pytest

from daedalus_v4l2 import cli, container
from daedalus_v4l2.backends.sim import DaemonThread, SimDeadlock, SimKernel
from daedalus_v4l2.backends.sim.testing import CAP, SimClient
from daedalus_v4l2.backends_runtime import open_decoder
from daedalus_v4l2.daemon import Daemon
from daedalus_v4l2.decode import decode_through
from daedalus_v4l2.synth import VP9_GOOD, make_clip
from daedalus_v4l2.threads import THREADS
from daedalus_v4l2.v4l2 import uapi

from .reference import ffmpeg_nv12, frame_md5s

WIDTH, HEIGHT, FRAMES = 352, 288, 30


@pytest.fixture(scope="module")
def hidden_frames_clip(tmp_path_factory):
    """Alt-ref frames: more requests than pictures, re-displays by the client."""
    return make_clip(tmp_path_factory.mktemp("thread") / "good.webm", "vp9", WIDTH, HEIGHT,
                     FRAMES, options=VP9_GOOD)


def decode_all(clip, **open_options):
    info = container.probe(clip)
    depth = open_options.pop("depth", 2)
    with open_decoder("sim", **open_options) as opened:
        pictures = list(decode_through(opened.decoder, info.codec, info.width, info.height,
                                       container.packets(clip), depth=depth, timeout=5.0))
        kernel = opened.kernel
    return pictures, kernel, opened


@pytest.mark.parametrize("threads,depth", [("slice", 1), ("slice", 2), ("frame", 6)])
def test_the_daemon_thread_gives_what_the_inline_daemon_gives_bit_exact(hidden_frames_clip,
                                                                       threads, depth):
    inline, inline_kernel, _ = decode_all(hidden_frames_clip, daemon_thread=False, depth=depth,
                                          daemon_options=THREADS[threads])
    threaded, kernel, opened = decode_all(hidden_frames_clip, depth=depth,
                                          daemon_options=THREADS[threads])
    assert not opened.daemon_thread.alive, "the daemon thread outlived open_decoder"
    expected = frame_md5s(ffmpeg_nv12(hidden_frames_clip), WIDTH, HEIGHT)
    assert frame_md5s(b"".join(p.data for p in threaded), WIDTH, HEIGHT) == expected
    assert [p.timestamp for p in threaded] == [p.timestamp for p in inline]
    assert kernel.stats.errors == 0 and kernel.stats.done == kernel.stats.jobs > FRAMES
    kernel.ledger.check_all_returned()
    assert kernel.inflight == [] and inline_kernel.inflight == []


def test_the_daemon_decodes_in_its_own_thread(hidden_frames_clip, monkeypatch):
    threads = set()
    handle = Daemon.handle

    def recording(self, msg):
        threads.add(threading.current_thread().name)
        return handle(self, msg)

    monkeypatch.setattr(Daemon, "handle", recording)
    decode_all(hidden_frames_clip)
    assert threads == {"daedalus-v4l2 daemon"}
    threads.clear()
    decode_all(hidden_frames_clip, daemon_thread=False)
    assert threads == {threading.main_thread().name}


def test_a_daemon_thread_that_dies_fails_its_jobs_and_the_client_goes_on(hidden_frames_clip,
                                                                         monkeypatch, caplog):
    """As a daemon process that dies closes its fd: every job in flight ends with
    ERROR at once, later jobs fail for want of a daemon, every buffer comes back."""
    handled = []
    handle = Daemon.handle

    def dies_on_the_fifth(self, msg):
        handled.append(msg)
        if len(handled) == 5:
            raise RuntimeError("the daemon's bug")
        return handle(self, msg)

    monkeypatch.setattr(Daemon, "handle", dies_on_the_fifth)
    with caplog.at_level(logging.CRITICAL, "daedalus_v4l2.sim"):
        pictures, kernel, opened = decode_all(hidden_frames_clip)
    assert isinstance(opened.daemon_thread.error, RuntimeError)
    assert "the daemon thread died: RuntimeError: the daemon's bug" in caplog.text
    good = [p for p in pictures if p.data is not None]
    assert 0 < len(good) < FRAMES and len(pictures) == FRAMES
    assert all("V4L2_BUF_FLAG_ERROR" in p.error for p in pictures if p.data is None)
    assert kernel.stats.errors > 0 and kernel.stats.done + kernel.stats.errors == kernel.stats.jobs
    kernel.ledger.check_all_returned()


def test_a_stalled_daemon_thread_is_ended_by_the_watchdog(hidden_frames_clip):
    """The clock follows real time with the daemon in a thread: jobs it never
    answers end with ERROR one watchdog period later, and the decode ends."""
    info = container.probe(hidden_frames_clip)
    with open_decoder("sim", watchdog_ms=50) as opened:
        opened.kernel.faults.stall_daemon = True
        pictures = list(decode_through(opened.decoder, info.codec, info.width, info.height,
                                       container.packets(hidden_frames_clip), depth=2))
        kernel = opened.kernel
    assert len(pictures) == FRAMES and all(p.data is None for p in pictures)
    assert kernel.stats.watchdog_expiries > 0 and kernel.stats.done == 0
    kernel.ledger.check_all_returned()


@contextlib.contextmanager
def threaded_sim(prepare=None, **kernel_options):
    """A kernel with the daemon in its thread and a client streaming on it; the
    thread stopped (and the ledger checked) at the end.  ``prepare(kernel)``
    runs before the daemon thread starts."""
    kernel = SimKernel(**kernel_options)
    if prepare is not None:
        prepare(kernel)
    thread = DaemonThread(kernel, Daemon(kernel.open_chardev())).start()
    try:
        client = SimClient(kernel)
        client.streamon()
        yield kernel, thread, client
        client.streamoff()
        client.close()
    finally:
        assert thread.stop()
    kernel.ledger.check_all_returned()


class CountingCondition(threading.Condition):
    """A condition that counts its notify calls (notify_all included)."""

    def __init__(self, lock) -> None:
        super().__init__(lock)
        self.notified = 0

    def notify(self, n: int = 1) -> None:
        self.notified += 1
        super().notify(n)


def test_each_event_wakes_only_the_thread_that_waits_for_it():
    """A client's blocking calls wait on ``changed``, the daemon thread's read on
    ``daemon_readable``: a DECODE queued wakes the daemon alone, a buffer done
    wakes the client, and a stall lifted wakes the daemon at once rather than a
    poll interval later.  (One condition for both woke each thread at every step
    of every picture: a futex wake and a context switch for nothing.)"""
    def counting_conditions(kernel):    # before the daemon thread waits on one
        kernel.changed = CountingCondition(kernel.lock)
        kernel.daemon_readable = CountingCondition(kernel.lock)

    with threaded_sim(prepare=counting_conditions) as (kernel, thread, client):
        kernel.faults.stall_daemon = True
        kernel.changed.notified = kernel.daemon_readable.notified = 0
        client.queue_capture(0)
        client.queue_output(0, b"a", 1_000_000_000)       # STREAM_OPEN and DECODE queued
        assert kernel.daemon_readable.notified == 2 and kernel.changed.notified == 0
        kernel.faults.stall_daemon = False
        assert kernel.daemon_readable.notified == 3
        client.dqbuf(CAP)                                 # the daemon answered: a buffer done
        assert kernel.changed.notified >= 1


def test_a_wait_nothing_can_end_is_a_deadlock_with_the_daemon_in_a_thread():
    with threaded_sim() as (kernel, thread, client):
        client.queue_output(0, b"a", 1_000_000_000)   # no CAPTURE buffer: it can never run
        with pytest.raises(SimDeadlock, match="0 CAPTURE buffers ready"):
            client.dqbuf(CAP)
    assert not thread.alive and thread.error is None


def test_a_wait_on_a_stalled_daemon_thread_ends_by_the_watchdog_then_as_a_deadlock():
    """Messages the stalled daemon will never read are no reason to wait: once the
    watchdog has ended the job, a second wait is a SimDeadlock, not a hang."""
    with threaded_sim(watchdog_ms=50) as (kernel, thread, client):
        kernel.faults.stall_daemon = True
        client.queue_capture(0)
        client.queue_output(0, b"a", 1_000_000_000)
        assert client.dqbuf(CAP).flags & uapi.V4L2_BUF_FLAG_ERROR     # the watchdog's
        assert kernel.stats.watchdog_expiries == 1 and kernel.chardev.fifo
        with pytest.raises(SimDeadlock):
            client.dqbuf(CAP)


def test_a_killed_daemon_thread_fails_its_job_and_stops_reading():
    with threaded_sim() as (kernel, thread, client):
        kernel.faults.stall_daemon = True           # the job stays with the daemon
        client.queue_capture(0)
        client.queue_output(0, b"a", 1_000_000_000)
        kernel.faults.kill_daemon()                 # from this (another) thread, as the TUI does
        assert client.dqbuf(CAP).flags & uapi.V4L2_BUF_FLAG_ERROR
        thread._thread.join(5)                      # no stop(): it must end by itself
        assert not thread.alive, "a daemon thread whose chardev is closed went on polling it"


def test_decode_runs_the_daemon_inline_on_request(hidden_frames_clip, tmp_path):
    threaded, inline = tmp_path / "thread.nv12", tmp_path / "inline.nv12"
    assert cli.main(["decode", str(hidden_frames_clip), "-o", str(threaded), "-q"]) == 0
    assert cli.main(["decode", str(hidden_frames_clip), "-o", str(inline), "-q",
                     "--sim-daemon", "inline"]) == 0
    assert threaded.read_bytes() == inline.read_bytes()
    assert len(inline.read_bytes()) == FRAMES * WIDTH * HEIGHT * 3 // 2
