"""The decode's bookkeeping threads run as SCHED_BATCH, libavcodec's caller does not
(threads.py says why)."""
from __future__ import annotations

import os
import threading

import pytest

from daedalus_v4l2 import bench, cli, decode, session, synth, threads
from daedalus_v4l2.writer import PictureWriter

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux scheduling policy")


def policy() -> int:
    return os.sched_getscheduler(0)


def test_batch_scheduling_holds_for_the_block_and_restores_the_policy_after():
    start = policy()
    with threads.batch_scheduling() as applied:
        assert applied
        assert policy() == os.SCHED_BATCH
    assert policy() == start
    with pytest.raises(RuntimeError):
        with threads.batch_scheduling():
            raise RuntimeError("the block fails")
    assert policy() == start
    with threads.batch_scheduling(apply=False) as applied:
        assert not applied and policy() == start


@pytest.mark.skipif(os.geteuid() != 0, reason="libsvtav1 changes the policy only where it may")
def test_encoding_an_av1_clip_leaves_the_caller_s_policy_alone(tmp_path):
    before = policy()
    synth.make_clip(tmp_path / "a.ivf", "av1", 64, 64, 2)
    assert policy() == before


def test_a_thread_already_batch_stays_batch():
    def in_thread():
        threads.schedule_as_batch()
        with threads.batch_scheduling() as applied:
            seen.append((applied, policy()))
        seen.append(policy())

    seen: list = []
    worker = threading.Thread(target=in_thread)
    worker.start()
    worker.join()
    assert seen == [(True, os.SCHED_BATCH), os.SCHED_BATCH]
    assert policy() != os.SCHED_BATCH   # per thread: the caller's is untouched


def test_the_picture_writer_thread_runs_as_batch():
    writer = PictureWriter(lambda msg: None)
    seen: list[int] = []
    writer.put(lambda: seen.append(policy()))
    assert writer.wait(5)
    assert writer.stop()
    assert seen == [os.SCHED_BATCH]
    assert policy() != os.SCHED_BATCH


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return bench.load_clip("vp9", 6, 176, 144, tmp_path_factory.mktemp("clip"))


@pytest.fixture
def fed_by(monkeypatch) -> list[int]:
    """The policy of the thread that feeds libavcodec, at every packet."""
    seen: list[int] = []
    original_feed = session.DecoderSession._feed

    def feed(self, data, cookie):
        seen.append(policy())
        return original_feed(self, data, cookie)

    monkeypatch.setattr(session.DecoderSession, "_feed", feed)
    return seen


def test_both_bench_paths_run_their_client_as_batch_and_libavcodec_s_caller_not(
        monkeypatch, clip, fed_by):
    start = policy()
    client: list[int] = []
    n, _, stats = bench.sim_decode(clip, on_picture=lambda n: client.append(policy()))
    assert n == 6 and stats["errors"] == 0
    assert client == [os.SCHED_BATCH] * 6
    assert fed_by and set(fed_by) == {start}     # the daemon's thread
    assert policy() == start

    original_tight = bench._tight_nv12
    bare: list[int] = []

    def tight(frame, target):
        bare.append(policy())
        return original_tight(frame, target)

    monkeypatch.setattr(bench, "_tight_nv12", tight)
    assert bench.bare_decode(clip, "SLICE")[0] == 6
    assert bare == [os.SCHED_BATCH] * 6
    assert policy() == start


def test_the_decode_command_runs_its_client_as_batch_and_libavcodec_s_caller_not(
        monkeypatch, clip, tmp_path, fed_by):
    start = policy()
    original = decode.decode_through
    seen: list[int] = []

    def through(*args, **kwargs):
        for picture in original(*args, **kwargs):
            seen.append(policy())
            yield picture

    monkeypatch.setattr(decode, "decode_through", through)
    assert cli.main(["decode", str(clip.path), "-o", str(tmp_path / "out.yuv"), "-q"]) == 0
    assert seen == [os.SCHED_BATCH] * 6
    assert fed_by and set(fed_by) == {start}     # the daemon's thread
    assert policy() == start


def test_the_decode_command_leaves_a_hw_client_s_policy_alone(monkeypatch, clip, tmp_path):
    """Measured on the emulator only, where the client's thread runs the simulated kernel."""
    import contextlib
    from types import SimpleNamespace

    from daedalus_v4l2 import backends_runtime

    @contextlib.contextmanager
    def no_device(*args, **kwargs):     # no /dev/video here: the client alone is looked at
        yield SimpleNamespace(decoder=None)

    seen: list[int] = []

    def through(*args, **kwargs):
        seen.append(policy())
        yield decode.Picture(1, 1000, b"\0" * 16)

    monkeypatch.setattr(backends_runtime, "open_decoder", no_device)
    monkeypatch.setattr(decode, "decode_through", through)
    start = policy()
    assert cli.main(["decode", str(clip.path), "-o", str(tmp_path / "out.yuv"), "-q",
                     "--backend", "hw"]) == 0
    assert seen == [start] and start != os.SCHED_BATCH
