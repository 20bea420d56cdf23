"""The hw view: debugfs parsers against the module's format, the daemon's state socket."""
from __future__ import annotations

import asyncio
import time

import pytest

from daedalus_v4l2.backends.sim import SimKernel
from daedalus_v4l2.backends.sim.testing import ScriptedDaemon, SimClient
from daedalus_v4l2.daemon import Daemon
from daedalus_v4l2.decode import decode_through
from daedalus_v4l2.state_socket import StateClient, StateRecorder, StateServer
from daedalus_v4l2.synth import VP9_GOOD
from daedalus_v4l2.tui.app import DaedalusTui
from daedalus_v4l2.tui.hw_source import (HwSource, build_snapshot, parse_counters,
                                         parse_inflight, parse_queues)
from daedalus_v4l2.tui.styles import BUFFER_STYLE
from daedalus_v4l2.v4l2.client import StatelessDecoder


def module_inflight(entries) -> str:
    """What dv_inflight_show prints: seq_printf("%llu %u %s %u %u %s %u\\n", ...)."""
    return "".join("%d %d %s %d %d %s %d\n" % e for e in entries)


def module_counters(values: dict) -> str:
    """What dv_counters_show prints, in its order."""
    order = ("jobs", "done", "errors", "watchdog_expiries", "unknown_cookie",
             "duplicate_response", "rejected_messages", "parked_now", "parked_max")
    return "".join(f"{name} {values.get(name, 0)}\n" for name in order)


def module_queues(contexts) -> str:
    """What dv_queues_show prints: per context and queue, "ctx %u %s" then
    " %s %s" (OUT/CAP, on/off) and " %u:%s" per buffer, then a newline."""
    out = []
    for ctx, codec, queues in contexts:
        for name, streaming, buffers in queues:
            cells = "".join(" %d:%s" % b for b in buffers)
            out.append(f"ctx {ctx} {codec} {name} {'on' if streaming else 'off'}{cells}\n")
    return "".join(out)


def test_parse_queues_in_the_module_format():
    text = module_queues([(3, "vp9", [("OUT", True, [(0, "active"), (1, "in_request")]),
                                      ("CAP", True, [(0, "dequeued"), (5, "queued")])]),
                          (4, "h264", [("OUT", False, []), ("CAP", False, [])])])
    queues = parse_queues(text)
    assert [(q.ctx, q.codec, q.name, q.streaming, q.buffers) for q in queues] == [
        (3, "vp9", "OUT", True, ((0, "active"), (1, "in_request"))),
        (3, "vp9", "CAP", True, ((0, "dequeued"), (5, "queued"))),
        (4, "h264", "OUT", False, ()), (4, "h264", "CAP", False, ())]
    assert parse_queues("") == []
    for bad in ("ctx 1 vp9 OUT maybe\n", "ctx 1 vp9 SIDE on\n", "ctx 1 vp9 OUT on 3\n"):
        with pytest.raises(ValueError):
            parse_queues(bad)


def test_module_buffer_states_are_ones_the_view_draws():
    """dv_vb2_state_name's strings: each one the TUI has a style for, except
    "active", which the view names after the in-flight entry holding it."""
    import re
    from pathlib import Path
    source = (Path(__file__).parent.parent / "kernel" / "dv-debugfs.c").read_text()
    body = source[source.index("dv_vb2_state_name"):source.index("dv_queue_show")]
    names = set(re.findall(r'return "(\w+)";', body))
    assert names == {"dequeued", "in_request", "queued", "active", "done", "error"}
    assert names - {"active"} <= set(BUFFER_STYLE)


def test_hw_view_shows_every_buffer_of_every_open_context(tmp_path):
    """With the module's queues file: idle buffers and idle contexts show too, and a
    buffer the driver holds is named after its in-flight entry."""
    entries = parse_inflight(module_inflight([(5, 1, "vp9", 0, 3, "sent", 40),
                                              (4, 1, "vp9", 2, 2, "parked", 90)]))
    queues = parse_queues(module_queues([
        (1, "vp9", [("OUT", True, [(0, "active"), (1, "queued"), (2, "dequeued")]),
                    ("CAP", True, [(0, "dequeued"), (1, "done"), (2, "active"),
                                   (3, "active"), (4, "error")])]),
        (2, "h264", [("OUT", False, [(0, "dequeued")]), ("CAP", False, [])])]))
    snap = build_snapshot(HwSource(str(tmp_path)), entries, {}, None, queues=queues)
    one, two = snap.contexts
    assert (one.id, one.codec, two.id, two.codec) == (1, "vp9", 2, "h264")
    assert [(b.index, b.state) for b in one.output.buffers] == \
        [(0, "claimed"), (1, "queued"), (2, "dequeued")]
    assert [(b.index, b.state) for b in one.capture.buffers] == \
        [(0, "dequeued"), (1, "done"), (2, "parked"), (3, "claimed"), (4, "error")]
    assert one.output.streaming and not two.output.streaming
    assert [(b.index, b.state) for b in two.output.buffers] == [(0, "dequeued")]


def test_parse_inflight_in_the_module_format():
    text = module_inflight([(18446744073709551615, 1, "vp9", 3, 11, "parked", 4000000000),
                            (7, 2, "h264", 0, 0, "sent", 12), (8, 2, "?", 1, 2, "held", 0)])
    entries = parse_inflight(text)
    assert [(e.cookie, e.ctx, e.codec, e.out_idx, e.cap_idx, e.state, e.age_ms) for e in entries] \
        == [(2**64 - 1, 1, "vp9", 3, 11, "parked", 4000000000), (7, 2, "h264", 0, 0, "sent", 12),
            (8, 2, "?", 1, 2, "held", 0)]
    assert parse_inflight("") == []


def test_parse_counters_in_the_module_format():
    counters = parse_counters(module_counters({"jobs": 10, "errors": 2, "parked_max": 3}))
    assert counters["jobs"] == 10 and counters["errors"] == 2 and counters["parked_max"] == 3
    assert len(counters) == 9


def test_sim_states_match_the_module_state_names():
    """The module prints dv_state_names, or "error" for a ready entry that failed
    (dv_entry_shown_state); the view maps every one of them."""
    import re
    from pathlib import Path

    from daedalus_v4l2.tui.hw_source import _CAPTURE_STATE
    kernel = Path(__file__).parent.parent / "kernel"
    names = set(re.findall(r'\[DV_ENTRY_\w+\]\s*=\s*"(\w+)"', (kernel / "dv-bridge.c").read_text()))
    assert names == {"sent", "parked", "held", "ready"}
    debugfs = (kernel / "dv-debugfs.c").read_text()
    shown = debugfs[debugfs.index("dv_entry_shown_state"):debugfs.index("dv_inflight_show")]
    names |= set(re.findall(r'return "(\w+)";', shown))
    assert names == set(_CAPTURE_STATE) == {"sent", "parked", "held", "ready", "error"}


def test_hw_view_tells_a_failed_picture_from_a_done_one(tmp_path):
    """Ready entries wait for earlier ones of their context; the module says which
    of them will complete with ERROR, and the view shows it in both tables."""
    entries = parse_inflight(module_inflight([(5, 1, "vp9", 0, 3, "parked", 90),
                                              (6, 1, "vp9", 1, 4, "error", 40),
                                              (7, 1, "vp9", 2, 5, "ready", 20)]))
    queues = parse_queues(module_queues([
        (1, "vp9", [("OUT", True, [(0, "done"), (1, "error"), (2, "done")]),
                    ("CAP", True, [(3, "active"), (4, "active"), (5, "active")])])]))
    snap = build_snapshot(HwSource(str(tmp_path)), entries, {}, None, queues=queues)
    assert [(r.cookie, r.state) for r in snap.inflight] == [(5, "parked"), (6, "error"), (7, "done")]
    [ctx] = snap.contexts
    assert [(b.index, b.state) for b in ctx.capture.buffers] == \
        [(3, "parked"), (4, "error"), (5, "done")]


def test_state_socket_of_a_real_daemon(tmp_path, clip):
    """A real Daemon with the recorder hooked in, decoding through the sim; the socket
    answers while it runs, and HwSource joins it with debugfs text."""
    path = clip(".ivf", codec="vp9", width=176, height=144, frames=12, options=VP9_GOOD)
    from daedalus_v4l2 import container
    info = container.probe(path)
    kernel = SimKernel()
    recorder = StateRecorder()
    daemon = Daemon(kernel.open_chardev(), observer=recorder)
    kernel.attach_daemon(daemon.step)
    sock = str(tmp_path / "state.sock")
    with StateServer(sock, recorder):
        decoder = StatelessDecoder(kernel.syscalls(), kernel.video_path, kernel.media_path)
        pictures = list(decode_through(decoder, info.codec, info.width, info.height,
                                       container.packets(path)))
        client = StateClient(sock)
        state = client.query()
        again = client.query(since=state["seq"])
        client.close()
        decoder.close()
    assert len(pictures) == 12
    assert state["stats"]["pictures"] >= 12 and state["latency_ms"]["p50"] is not None
    assert [s["stream"] for s in state["sessions"]] == [1]
    kinds = {e["kind"] for e in state["events"]}
    assert {"stream_open", "decode", "frame"} <= kinds
    assert again["events"] == []                      # only what is new since seq


def test_state_socket_shrugs_off_a_client_that_hangs_up(tmp_path, capfd):
    """A TUI that quits (or gives up on a slow daemon) with answers unread is no
    error: no traceback in the daemon's log, and the next client is served."""
    import socket
    recorder = StateRecorder()
    for cookie in range(400):                    # an answer bigger than the socket buffer
        recorder._event("decode", 1, cookie, "x" * 200)
    sock = str(tmp_path / "state.sock")
    with StateServer(sock, recorder):
        for _ in range(3):
            rude = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            rude.connect(sock)
            rude.sendall(b'{"since": 0}\n' * 20)
            rude.close()
        client = StateClient(sock)
        state = client.query()
        client.close()
    assert state["seq"] == 400 and len(state["events"]) == 400
    assert "Traceback" not in capfd.readouterr().err


def test_hw_view_joins_debugfs_and_the_daemon(tmp_path):
    """The hw app on debugfs files in the module's format and a live daemon socket:
    the daemon has read cookie 5 (decoding), not cookie 6 (sent)."""
    kernel = SimKernel()
    recorder = StateRecorder()
    daemon = ScriptedDaemon(kernel.open_chardev(), policy=lambda m: "none")
    client = SimClient(kernel)
    debugfs = tmp_path / "daedalus_v4l2"
    debugfs.mkdir()
    (debugfs / "inflight").write_text(module_inflight([(5, 1, "vp9", 0, 3, "sent", 40),
                                                       (6, 1, "vp9", 1, 4, "sent", 2),
                                                       (4, 1, "vp9", 2, 2, "parked", 90)]))
    (debugfs / "counters").write_text(module_counters({"jobs": 6, "done": 3, "parked_now": 1,
                                                       "parked_max": 2, "watchdog_expiries": 1}))
    from daedalus_v4l2 import proto
    recorder.on_message(proto.DecodeRequest(stream_id=1, cookie=5, timestamp=1000, codec=proto.CODEC_VP9,
                                            coded_width=64, coded_height=48, capture_fourcc=0,
                                            capture_index=3, capture_size=0, output_index=0,
                                            planes=[], controls={}, bitstream=b"x",
                                            capture_offset=0, flags=0))
    sock = str(tmp_path / "state.sock")

    async def go():
        app = DaedalusTui(HwSource(str(debugfs), sock))
        async with app.run_test(size=(80, 24)) as pilot:
            deadline = time.monotonic() + 90      # generous: the machine may be loaded
            while not (app.snapshot and app.snapshot.inflight and "pid" in app.snapshot.status):
                assert time.monotonic() < deadline
                await pilot.pause(0.02)
            rows = {r.cookie: r for r in app.snapshot.inflight}
            assert rows[5].state == "decoding" and rows[5].frame == 1
            assert rows[6].state == "sent" and rows[6].frame is None
            assert rows[4].state == "parked" and rows[4].age_ms == 90
            assert app.snapshot.counters.watchdog_expiries == 1
            assert app.snapshot.counters.parked_max == 2
            caps = app.snapshot.contexts[0].capture.buffers
            assert [(b.index, b.state) for b in caps] == [(2, "parked"), (3, "claimed"),
                                                          (4, "claimed")]
            await pilot.press("space", "k")           # sim-only keys do nothing here
            await pilot.press("q")
        assert app.return_code == 0

    with StateServer(sock, recorder):
        asyncio.run(go())
    client.close()
    del daemon
