"""The benchmark runs and reports every field (``daedalus-v4l2 bench``).

Tiny clips, one run: this checks the report, never a timing."""
from __future__ import annotations

import json

import pytest

from daedalus_v4l2 import bench, cli

CODECS = ("vp9", "h264", "av1")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    settings = bench.Settings(codecs=CODECS, frames=8, repeat=1, rss_frames=12, warmup=4,
                              micro_repeat=2, width=320, height=180,
                              cache=tmp_path_factory.mktemp("bench-clips"), mode="test")
    lines = []
    return bench.run(settings, lines.append) | {"_progress": lines}


def test_every_codec_reports_every_field(report):
    assert set(report["codecs"]) == set(CODECS)
    for codec, r in report["codecs"].items():
        assert r["frames"] == 8 and r["errors"] == 0, codec
        assert set(r["bare_fps"]) == set(bench.BARE_THREAD_TYPES)
        assert r["bare_best"] in bench.BARE_THREAD_TYPES
        for key in ("bare_best_fps", "bare_slice_fps", "sim_fps", "ratio", "ratio_slice",
                    "ratio_of_medians", "peak_rss_mb"):
            assert r[key] > 0, (codec, key)
        assert set(r["cpu_ms"]) == set(bench.SIM_THREADS)
        assert all(c["bare"] > 0 and c["sim"] > 0 for c in r["cpu_ms"].values()), codec
        # the client and the daemon's thread hand each request over: a switch at least
        assert set(r["switches"]) == set(bench.SIM_THREADS)
        assert all(c["sim"] >= 1 and c["bare"] >= 0 for c in r["switches"].values()), codec
        # one round: the ratio is its sim run against its bare run, the faster of each
        assert r["ratio_runs"] == [r["ratio"]] and r["ratio_interval"] is None
        assert r["ratio"] == pytest.approx(r["sim_fps"] / r["bare_best_fps"])
        assert {t: len(runs) for t, runs in r["sim_runs"].items()} == dict.fromkeys(bench.SIM_THREADS, 1)
        assert r["sim_best"] in bench.SIM_THREADS
        assert r["requests_per_picture"] >= 1.0
        assert all(fps > 0 for fps in r["sim_fps_by_threads"].values())
        # slice threads park only the pictures being written behind (one a request in
        # flight); frame threads with a deep client hold pictures back
        assert 1 <= r["sim_parked_max"]["SLICE"] <= bench.SIM_THREADS["SLICE"][1]
        assert r["sim_parked_max"]["FRAME"] > 0, codec
        stages = r["stages_ms"]
        base = set(bench.STAGES) | {"transport", "total", "overhead"}
        assert set(stages) == base | {"cpu_" + k for k in base}
        assert stages["libavcodec"] > 0 and stages["packing"] > 0 and stages["kernel"] > 0
        assert stages["total"] == pytest.approx(sum(stages[s] for s in bench.STAGES), rel=1e-6)
        rss = r["rss"]
        assert rss["frames"] == 12 and rss["warmup"] == 4 and rss["errors"] == 0
        assert {"start_mb", "end_mb", "max_mb", "growth_mb"} <= set(rss)


def test_packing_and_protocol_are_measured(report):
    assert set(report["packing"]) == {"NV12", "P010"}
    for p in report["packing"].values():
        for key in ("pack_ms", "pack_digest_ms", "digest_ms", "reformat_copy_ms", "speedup",
                    "speedup_with_digest"):
            assert p[key] > 0, key
    names = set(report["protocol"])
    kinds = ("DecodeRequest (key)", "DecodeRequest (median)", "FrameResponse")
    assert names == {f"{c} {kind}" for c in CODECS for kind in kinds}
    for p in report["protocol"].values():
        assert p["bytes"] > 0 and p["encode_us"] > 0 and p["parse_us"] > 0


def test_report_prints_and_serializes(report):
    text = bench.format_report(report)
    for codec in CODECS:
        assert codec in text
    for word in ("sim/bare", "peak RSS", "RSS growth", "libavcodec", "packing", "protocol",
                 "load average", "targets:", "CPU time a picture", "ratio of the medians",
                 "95 % interval", "requests a picture", "malloc thresholds"):
        assert word in text, word
    assert report["hw"] is None
    assert all(isinstance(ok, bool) for ok in report["verdict"].values())
    assert len(report["verdict"]) == 4 * len(CODECS) + 4
    json.loads(json.dumps(report, default=str))


def test_sim_over_bare_pairs_each_round_and_chooses_its_settings_on_the_other_rounds(
        monkeypatch, tmp_path):
    """Each round's sim run is divided by the bare run of that round, with each path's
    faster setting chosen by the medians of the *other* rounds: bare SLICE is faster
    over all three (10 fps median against 5), but rounds 1 and 3 are measured with
    FRAME, which the two rounds other than each of them favour."""
    # seconds for 10 pictures, round by round (bare SLICE starts with the warm-up)
    bare_runs = {"SLICE": iter([9.0, 1.0, 10.0, 1.0]), "FRAME": iter([2.0, 10 / 9, 2.0])}
    sim_runs = {"SLICE": iter([2.0, 2.0, 2.0]), "FRAME": iter([4.0, 4.0, 4.0])}
    calls = []

    def sim_decode(clip, threads="SLICE", limit=None, **kwargs):
        if limit is not None:                                   # the warm-up
            return limit, 1.0, {}
        calls.append(("sim", threads))
        return 10, next(sim_runs[threads]), {"errors": 0, "parked_max": 0, "cpu_seconds": 0.5,
                                             "switches": 30}

    def bare_decode(clip, thread_type, loops=1, clock=None):
        calls.append(("bare", thread_type))
        return 10, next(bare_runs[thread_type]), 0.25

    path = tmp_path / "clip.ivf"
    path.write_bytes(b"IVF")
    clip = bench.Clip("vp9", path, 64, 64, "yuv420p", "vp9", [b""] * 10)
    monkeypatch.setattr(bench, "load_clip", lambda *args: clip)
    monkeypatch.setattr(bench, "bare_decode", bare_decode)
    monkeypatch.setattr(bench, "sim_decode", sim_decode)
    monkeypatch.setattr(bench, "sim_stages", lambda c, t: {})
    monkeypatch.setattr(bench, "rss_growth", lambda *a: {"start_mb": 0, "end_mb": 0, "frames": 0})
    monkeypatch.setattr(bench, "_capture_messages", lambda c: {})
    r = bench.bench_codec("vp9", bench.Settings(codecs=("vp9",), repeat=3, cache=tmp_path),
                          lambda line: None)
    assert (r["bare_best"], r["sim_best"]) == ("SLICE", "SLICE")
    # round 1: FRAME (others: SLICE 1 and 10 -> 5.5, FRAME 9 and 5 -> 7): 5 / 5
    # round 2: SLICE (others: 10 against 5): 5 / 1;  round 3: as round 1
    assert r["ratio_runs"] == pytest.approx([1.0, 5.0, 1.0])
    assert r["ratio"] == pytest.approx(1.0)     # choosing on all rounds would give 0.5
    assert r["ratio_interval"] is None           # three rounds are too few
    # after the warm-up: every decode of a round, then the reverse order
    forward = [("bare", "SLICE"), ("bare", "FRAME"), ("sim", "SLICE"), ("sim", "FRAME")]
    assert calls[1:5] == forward and calls[5:9] == forward[::-1] and calls[9:] == forward


def test_each_round_is_measured_with_the_setting_the_other_rounds_chose():
    fps = {"SLICE": [10.0, 1.0, 10.0], "FRAME": [5.0, 9.0, 5.0]}
    assert bench._chosen(fps, 0) == "FRAME"     # rounds 1 and 2: 5.5 against 7
    assert bench._chosen(fps, 1) == "SLICE"     # rounds 0 and 2: 10 against 5
    assert bench._chosen({"SLICE": [3.0], "FRAME": [4.0]}, 0) == "FRAME"   # one round: itself


def test_the_median_interval_is_the_order_statistics_the_binomial_allows():
    values = [0.80 + 0.01 * i for i in range(12)]       # 0.80 .. 0.91, any order
    lo, hi = bench.median_interval(values[::-1])
    assert (lo, hi) == pytest.approx((0.82, 0.89))       # the 3rd and the 10th: 96 %
    assert bench.median_interval(values[:6]) == pytest.approx((0.80, 0.85))   # 6: min, max
    assert bench.median_interval(values[:5]) is None     # 5 values: at most 94 %


def test_the_command_is_registered():
    args = cli.build_parser().parse_args(["bench", "--short", "--codecs", "vp9", "--json", "-"])
    assert args.command == "bench" and args.short and args.codecs == ("vp9",)
    assert (args.size, args.warmup) == ((bench.WIDTH, bench.HEIGHT), None)   # None: the mode's
    assert cli.COMMANDS["bench"] is cli.cmd_bench


@pytest.mark.parametrize("option, value, says", [
    ("--repeat", "0", "must be at least 1, got 0"),
    ("--frames", "0", "must be at least 1, got 0"),
    ("--rss-frames", "-1", "must be at least 1, got -1"),
    ("--warmup", "-5", "must be 0 or more, got -5"),
    ("--warmup", "x", "expected a whole number, got 'x'"),
    ("--size", "0x0", "sizes go from 16x16 to 4096x4096, got '0x0'"),
    ("--size", "abc", "expected WIDTHxHEIGHT, got 'abc'"),
    ("--codecs", "vp9,foo", "unknown: foo; choose one or more of vp9,h264,av1"),
    ("--codecs", ",", "choose one or more of vp9,h264,av1, got ','"),
])
def test_a_bad_option_is_refused_before_any_work(option, value, says, capsys, monkeypatch):
    """A usage error (exit status 2) naming the option, before a clip is made or
    decoded: ``--repeat 0`` used to fail on an empty median after a minute of
    work, and a negative ``--warmup`` or ``--rss-frames`` ran to the end."""
    monkeypatch.setattr(bench, "run", lambda *a, **k: pytest.fail("the benchmark ran"))
    with pytest.raises(SystemExit) as exit_:
        cli.main(["bench", option, value])
    assert exit_.value.code == 2
    assert f"argument {option}: {says}" in capsys.readouterr().err


def test_the_codecs_are_taken_once_each_in_the_order_given():
    args = cli.build_parser().parse_args(["bench", "--codecs", " av1,vp9,,av1 "])
    assert args.codecs == ("av1", "vp9")


def test_the_rounds_scripts_refuse_bad_options_too(capsys):
    assert bench.rounds_script_args("doc", ["--size", "64x48", "--codecs", "h264"]).wh == (64, 48)
    with pytest.raises(SystemExit):
        bench.rounds_script_args("doc", ["--rounds", "0"])
    assert "argument --rounds: must be at least 1" in capsys.readouterr().err


def test_an_encoder_that_refuses_its_clip_is_a_clear_error_leaving_nothing(tmp_path, monkeypatch):
    """libsvtav1 refuses 66x34, for one (av1 at 64x64 and 1920x1080 it takes): the
    benchmark says which clip and which encoder, and leaves no partial file in its
    cache."""
    import errno

    import av

    from daedalus_v4l2 import synth
    from daedalus_v4l2.errors import UnsupportedError

    def refuse(path, **kwargs):
        path.write_bytes(b"half a clip")
        raise av.error.ArgumentError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(synth, "make_clip", refuse)
    with pytest.raises(UnsupportedError, match=r"cannot make the 66x34 av1 clip: libsvtav1 "
                                                r"refused it \(.*Invalid argument"):
        bench.clip_path("av1", 2, 66, 34, tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert cli.main(["bench", "--codecs", "av1", "--size", "66x34", "--frames", "2",
                     "--cache-dir", str(tmp_path)]) == 1
    assert list(tmp_path.iterdir()) == []


def test_short_mode_is_small():
    s = bench.Settings.for_mode(True)
    assert s.mode == "short" and s.frames < bench.FULL["frames"] and s.repeat == 1
    assert bench.Settings.for_mode(False, frames=10).frames == 10


def test_clip_cache_names_every_parameter(tmp_path):
    a = bench.clip_path("vp9", 10, directory=tmp_path, make=False)
    b = bench.clip_path("vp9", 11, directory=tmp_path, make=False)
    c = bench.clip_path("h264", 10, directory=tmp_path, make=False)
    assert len({a, b, c}) == 3 and not a.exists()


@pytest.mark.parametrize("width", [64, 38])
def test_bare_hands_out_the_tight_picture_copying_only_padded_rows(width):
    """Bare PyAV's picture, as the sim path's (decode_through(borrow=True)): the
    reformatted planes themselves when their rows are unpadded, else one copy;
    either way the bytes of the tightly packed NV12 picture."""
    av = pytest.importorskip("av")
    np = pytest.importorskip("numpy")
    from daedalus_v4l2 import pixels

    height = 22
    rng = np.random.default_rng(width)
    frame = av.VideoFrame.from_ndarray(
        rng.integers(0, 256, (height * 3 // 2, width), dtype=np.uint8), format="yuv420p")
    planes, size = pixels.capture_layout(pixels.NV12, width, height)
    dst = bytearray(size)
    pixels.pack_frame(frame, pixels.NV12, planes, dst, digest=False)
    tight = pixels.unpack_picture(dst, pixels.NV12, planes, width, height)

    picture = bench._tight_nv12(frame, "nv12")
    ref_rows_tight = frame.reformat(format="nv12").planes[0].line_size == width
    assert isinstance(picture, list) == ref_rows_tight
    got = b"".join(bytes(p) for p in picture) if isinstance(picture, list) else bytes(picture)
    assert got == bytes(tight)


def test_the_clock_counts_the_context_switches_of_every_thread():
    """Another thread sleeps 50 times while the clock runs and this one only waits
    for it to end: its switches count (it has ended by the time the clock stops),
    as libavcodec's threads and the sim's daemon thread do in a decode."""
    import threading
    import time

    def sleeper():
        for _ in range(50):
            time.sleep(0.0005)

    clock = bench.DecodeClock()
    with clock.running():
        thread = threading.Thread(target=sleeper)
        thread.start()
        thread.join()
    assert clock.switches >= 50
    idle = bench.DecodeClock()
    with idle.running():
        pass
    assert idle.switches < 5


def test_the_clocks_run_only_while_pictures_are_decoded(monkeypatch, tmp_path):
    """Neither path's setup counts as decoding: PyAV's probe of the file when it is
    opened (bare) and opening the device (sim) are made to take 0.5 s here, and a
    run of 8 small pictures must still come out under that."""
    import contextlib
    import time

    import av

    from daedalus_v4l2 import backends_runtime

    clip = bench.load_clip("vp9", 8, 176, 144, tmp_path)
    slow_open, slow_decoder = av.open, backends_runtime.open_decoder

    def open_after_a_while(*args, **kwargs):
        time.sleep(0.5)
        return slow_open(*args, **kwargs)

    @contextlib.contextmanager
    def decoder_after_a_while(*args, **kwargs):
        time.sleep(0.5)
        with slow_decoder(*args, **kwargs) as opened:
            yield opened
        time.sleep(0.5)

    monkeypatch.setattr(av, "open", open_after_a_while)
    monkeypatch.setattr(backends_runtime, "open_decoder", decoder_after_a_while)
    n, seconds, cpu_seconds = bench.bare_decode(clip, "SLICE")
    assert n == 8 and 0 < seconds < 0.5 and cpu_seconds > 0
    n, seconds, stats = bench.sim_decode(clip)
    assert n == 8 and 0 < seconds < 0.5 and stats["cpu_seconds"] > 0


def _tiny_benchmark_lines(name: str, marker: str) -> list[str]:
    """Run benchmarks/NAME tiny (6 frames of 176x144, one round); its report lines,
    one a codec, after checking it ended well and covered every codec."""
    import pathlib
    import subprocess
    import sys

    script = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / name
    done = subprocess.run([sys.executable, str(script), "--frames", "6", "--rounds", "1",
                           "--size", "176x144"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if marker in line]
    assert [line.split()[0] for line in lines] == ["vp9", "h264", "av1"], done.stdout
    return lines


def test_the_daemon_alone_is_measured_against_bare_pyav_for_every_codec():
    """benchmarks/daemon_only.py, tiny: the recorded DECODE messages replayed through a
    session decode every picture (an error response would end it non-zero)."""
    for line in _tiny_benchmark_lines("daemon_only.py", "daemon/bare"):
        daemon_fps = float(line.split("daemon alone")[1].split()[0])
        assert daemon_fps > 0, line


def test_the_sim_path_is_measured_written_in_place_and_behind_for_every_codec():
    """benchmarks/write_behind.py, tiny: both ways decode every picture (one missing
    or an error would end it non-zero) and are reported against bare PyAV."""
    for line in _tiny_benchmark_lines("write_behind.py", "sim/bare"):
        ratios = [float(part.split()[0].rstrip(",")) for part in line.split("sim/bare ")[1:]]
        assert len(ratios) == 2 and all(r > 0 for r in ratios), line


def test_libavcodecs_calls_and_the_gaps_between_them_are_measured_for_every_codec():
    """benchmarks/decode_gaps.py, tiny: both paths decode every picture (one missing or
    an error would end it non-zero), each with its calls, the gaps between them and
    its wall time a picture, the calls and gaps adding up to no more than the wall."""
    for line in _tiny_benchmark_lines("decode_gaps.py", " wall "):
        for way in ("bare", "sim"):
            fields = line.split(f"{way}: ")[1].split()
            call, between, wall = (float(fields[i]) for i in (1, 3, 5))
            assert call > 0 and between >= 0 and call + between <= wall, line


def test_the_stages_count_the_decode_not_the_device_open_and_close(monkeypatch, tmp_path):
    """sim_stages runs on the decode's clock, as the fps do: opening the device
    (its nodes, the daemon) and closing it (its mappings) count to no stage."""
    import time

    from daedalus_v4l2.backends.sim import syscalls

    clip = bench.load_clip("vp9", 8, 176, 144, tmp_path)
    for name in ("open", "munmap"):     # munmap is a kernel stage call, at close
        def slow(self, *args, original=getattr(syscalls.SimSyscalls, name), **kwargs):
            time.sleep(0.2)    # 2 opens (50 ms a picture, were they counted), 8 or more munmaps
            return original(self, *args, **kwargs)
        monkeypatch.setattr(syscalls.SimSyscalls, name, slow)
    stages = bench.sim_stages(clip)
    assert stages["total"] == pytest.approx(sum(stages[s] for s in bench.STAGES), rel=1e-6)
    assert stages["client"] < 40 and stages["kernel"] < 40 and stages["total"] < 60, stages
    assert stages["cpu_total"] == pytest.approx(sum(stages["cpu_" + s] for s in bench.STAGES),
                                                rel=1e-6)
