"""Fuzzing (docs/reliability.md): hypothesis properties on the wire protocol, the
control and bitstream parsers, the pixel layouts and the whole daemon; and a
bounded atheris (coverage-guided) run of the same targets.  A target raises
only on a bug: a parser may refuse input only with a ValueError."""
from __future__ import annotations

import gc
import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz import targets
from fuzz.report import record

ROOT = Path(__file__).resolve().parents[1]
SUITE = "fuzzing"
FAST = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
COUNTS: dict[str, int] = {}


def counted(name, fn):
    def run(data):
        COUNTS[name] = COUNTS.get(name, 0) + 1
        fn(data)
    return run


def seed_or_bytes():
    seeds = targets.seeds()
    mutated = st.tuples(st.sampled_from(seeds), st.lists(st.tuples(st.integers(0, 1 << 16),
                                                                    st.integers(0, 255)),
                                                         max_size=8)).map(_apply)
    return st.one_of(st.binary(max_size=512), mutated)


def _apply(pair):
    seed, edits = pair
    b = bytearray(seed)
    for pos, value in edits:
        b[pos % len(b)] = value
    return bytes(b)


@pytest.mark.parametrize("name", ["proto", "proto_fields", "controls_blob", "vp9", "h264",
                                  "h264_client", "ctrls", "pack", "unpack"])
def test_targets_property(name):
    fn = counted(name, targets.TARGETS[name])
    given(seed_or_bytes())(FAST(fn))()
    record(SUITE, f"hypothesis {name}", inputs=COUNTS.get(name, 0))


@pytest.mark.parametrize("name", ["av1", "daemon", "daemon_answers"])
def test_slow_targets_property(name):
    fn = counted(name, targets.TARGETS[name])
    given(st.binary(min_size=4, max_size=256))(SLOW(fn))()
    record(SUITE, f"hypothesis {name}", inputs=COUNTS.get(name, 0))


def test_control_views_keep_their_bytes_alive():
    """Regression: the control parsers' cast used to return a pointer into a temporary
    bytes object, so SPS/PPS/AV1 fields were read from freed (and reused) memory."""
    from daedalus_v4l2.codecs import av1_controls
    from daedalus_v4l2.v4l2 import uapi
    sps = uapi.struct_from_bytes("struct v4l2_ctrl_h264_sps", bytes(range(256)) * 8)
    frame = av1_controls.frame_from_control(b"\x5a" * 4096)
    before = (sps.profile_idc, sps.pic_width_in_mbs_minus1, frame.order_hint)
    for _ in range(200):
        gc.collect()
        junk = [bytes([i % 256]) * 1100 for i in range(2000)]
        del junk
    assert (sps.profile_idc, sps.pic_width_in_mbs_minus1, frame.order_hint) == before


def test_vp9_target_takes_a_show_existing_frame():
    """Regression (atheris, CI of 2026-11-22): a fuzzed show_existing_frame header
    reached frame_control, which refuses it by contract; the target must not call
    that a finding, and frame_control must go on refusing it."""
    import base64
    from daedalus_v4l2.codecs import vp9
    found = base64.b64decode("gkmDQgAD8AL2ADhKAAAwYABBTMGqqqqqK6qqqqqqqqqqqqqq/////6Oqqqqq"
                             "/KqqqqqqqKqqwRoIwQ==")
    parser = vp9.Vp9Parser()
    headers = [parser.parse(frame) for frame in vp9.split_superframe(found)]
    assert [h.show_existing_frame for h in headers] == [False, True]
    targets.vp9_parser(found)
    with pytest.raises(ValueError, match="show_existing_frame"):
        vp9.frame_control(headers[1])


# ---------------------------------------------------------------------------- atheris

ATHERIS_BUDGET = {"proto": 3, "proto_fields": 2, "controls_blob": 2, "vp9": 3, "h264": 3,
                  "ctrls": 2, "pack": 2, "unpack": 2, "daemon": 6}   # 25 s in all


def atheris_run(name, seconds, workdir):
    cmd = [sys.executable, "-m", "fuzz.run", name, f"-max_total_time={seconds}",
           "-rss_limit_mb=1536", "-timeout=20", f"-artifact_prefix={workdir}/",
           "-print_final_stats=1"]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                          timeout=seconds * 4 + 120)


@pytest.mark.parametrize("name", list(ATHERIS_BUDGET))
def test_atheris_bounded(name, tmp_path):
    if importlib.util.find_spec("atheris") is None:
        why = "atheris not installed (pip install -e '.[fuzz]'; scripts/test does it)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)  # in CI a missing prerequisite is a failure, not a skip
        pytest.skip(why)
    seconds = int(os.environ.get("DAEDALUS_FUZZ_SECONDS", ATHERIS_BUDGET[name]))
    started = time.monotonic()
    p = atheris_run(name, seconds, tmp_path)
    out = p.stdout + p.stderr
    crashes = list(tmp_path.glob("crash-*")) + list(tmp_path.glob("timeout-*")) + \
        list(tmp_path.glob("oom-*"))
    assert p.returncode == 0 and not crashes, out[-6000:]
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", out)
    rss = re.search(r"stat::peak_rss_mb:\s*(\d+)", out)
    record(SUITE, f"atheris {name}", inputs=int(runs.group(1)) if runs else 0,
           hangs=int(time.monotonic() - started > seconds * 4 + 60),
           peak_rss_mb=int(rss.group(1)) if rss else None)
