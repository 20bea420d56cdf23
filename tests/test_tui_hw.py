"""The hw view: debugfs parsers against the module's format, the daemon's state socket."""
from __future__ import annotations

import asyncio
import time

from daedalus_v4l2.backends.sim import SimKernel
from daedalus_v4l2.backends.sim.testing import ScriptedDaemon, SimClient
from daedalus_v4l2.daemon import Daemon
from daedalus_v4l2.decode import decode_through
from daedalus_v4l2.state_socket import StateClient, StateRecorder, StateServer
from daedalus_v4l2.synth import VP9_GOOD
from daedalus_v4l2.tui.app import DaedalusTui
from daedalus_v4l2.tui.hw_source import HwSource, parse_counters, parse_inflight
from daedalus_v4l2.v4l2.client import StatelessDecoder


def module_inflight(entries) -> str:
    """What dv_inflight_show prints: seq_printf("%llu %u %s %u %u %s %u\\n", ...)."""
    return "".join("%d %d %s %d %d %s %d\n" % e for e in entries)


def module_counters(values: dict) -> str:
    """What dv_counters_show prints, in its order."""
    order = ("jobs", "done", "errors", "watchdog_expiries", "unknown_cookie",
             "duplicate_response", "rejected_messages", "parked_now", "parked_max")
    return "".join(f"{name} {values.get(name, 0)}\n" for name in order)


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
    """The module prints dv_state_names; the parser maps the same set."""
    import re
    from pathlib import Path
    source = (Path(__file__).parent.parent / "kernel" / "dv-bridge.c").read_text()
    names = set(re.findall(r'\[DV_ENTRY_\w+\]\s*=\s*"(\w+)"', source))
    assert names == {"sent", "parked", "held", "ready"}


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
