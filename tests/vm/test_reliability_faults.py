"""Bad input and faults against the real module in the rig (guest side; docs/reliability.md).

The rig starts the daemon under a supervisor (scripts/vm-run's daemon.sh):
these tests kill it, stop it, hold it off (fuzz.rig.daemon_held_off) and
let the supervisor start a new one.  Every test checks that nothing is left
in flight and counts what it tried into the reliability table.
"""
from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from vmrig import also_under_debug_kernel, missing, module_loaded

from daedalus_v4l2 import container
from daedalus_v4l2.decode import Vp9Client, decode_through
from daedalus_v4l2.synth import VP9_REALTIME, make_clip
from daedalus_v4l2.v4l2 import uapi
from daedalus_v4l2.v4l2.client import CAPTURE, OUTPUT, StatelessDecoder
from daedalus_v4l2.v4l2.syscalls import OsSyscalls
from fuzz import rig
from fuzz.damage import mutate
from fuzz.report import record

pytestmark = pytest.mark.vm

W, H, FRAMES, DAMAGED = 64, 48, 8, 4
FRAME_BYTES = W * H * 3 // 2


@pytest.fixture(scope="module", autouse=True)
def our_module():
    if not module_loaded("daedalus_v4l2"):
        missing("the daedalus_v4l2 module is not loaded (scripts/vm-run without --no-module)")
    rig.wait_daemon()
    yield
    rig.HOLD.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return {"vp9": make_clip(d / "c.ivf", "vp9", W, H, FRAMES, options=VP9_REALTIME),
            "h264": make_clip(d / "c.mp4", "h264", W, H, FRAMES, options={"bf": "0"})}


def reference(path) -> list[bytes]:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-f", "rawvideo",
                          "-pix_fmt", "nv12", "-"], check=True, capture_output=True).stdout
    return [raw[i:i + FRAME_BYTES] for i in range(0, len(raw), FRAME_BYTES)]


def open_decoder() -> StatelessDecoder:
    nodes = rig.find_nodes()
    return StatelessDecoder(OsSyscalls(), nodes.video, nodes.media)


def decode(path, packets=None, depth=2):
    info = container.probe(path)
    with open_decoder() as dec:
        return list(decode_through(dec, info.codec, info.width, info.height,
                                   packets if packets is not None else container.packets(path),
                                   depth=depth, timeout=20))


def nothing_in_flight() -> int:
    """Entries left in flight once everything is closed (buffers lost)."""
    rig.wait_for(lambda: not rig.inflight(), 5)
    return len(rig.inflight())


# --------------------------------------------------------------------------- bad input

# Under the debug kernel one damage per codec: the module's path is the same ERROR.
DEBUG_KERNEL_DAMAGE = {("vp9", "flip"), ("h264", "truncate")}


@pytest.mark.parametrize("codec,how", also_under_debug_kernel(
    [(codec, how) for codec in ("vp9", "h264") for how in ("flip", "truncate", "garbage", "zeros")],
    DEBUG_KERNEL_DAMAGE))
def test_damaged_stream_on_the_module(codec, how, clips):
    path = clips[codec]
    packets = list(container.packets(path))
    skip = packets[DAMAGED].find(b"\0\0\1") + 4 if codec == "h264" else 0
    packets[DAMAGED] = packets[DAMAGED][:skip] + mutate(packets[DAMAGED][skip:], how,
                                                        random.Random(DAMAGED))
    before, watch = rig.counters(), rig.DmesgWatch()
    started = time.monotonic()
    pictures = decode(path, packets)
    elapsed = time.monotonic() - started
    lost = nothing_in_flight()
    intact = reference(path)
    good = [p.data for p in pictures if not p.packet]
    assert good[:DAMAGED] == intact[:DAMAGED]
    after = rig.counters()
    errors = after["errors"] - before["errors"]
    failed_lines = [l for l in watch.new_lines() if " failed (" in l and "cookie" in l]
    assert len(failed_lines) == errors or (errors and failed_lines), (errors, failed_lines)
    assert decode(path) and [p.data for p in decode(path)] == intact   # the next stream
    assert lost == 0 and not watch.reports(), watch.reports()
    record("bad input", f"damaged {codec} ({how})", inputs=1, buffers_lost=lost,
           hangs=int(elapsed > 60), dmesg_reports=len(watch.reports()))


def test_cli_decode_of_a_damaged_file_on_the_module(clips, tmp_path):
    data = Path(clips["vp9"]).read_bytes()
    pos = 32
    for _ in range(DAMAGED):
        pos += 12 + int.from_bytes(data[pos:pos + 4], "little")
    n = int.from_bytes(data[pos:pos + 4], "little")
    bad = tmp_path / "bad.ivf"
    bad.write_bytes(data[:pos + 12] + bytes(n) + data[pos + 12 + n:])
    out = tmp_path / "out.nv12"
    started = time.monotonic()
    p = rig.cli("decode", "--backend", "hw", str(bad), "-o", str(out))
    assert time.monotonic() - started < 300
    assert p.returncode == 1, p.stderr
    assert f"packet {DAMAGED + 1}:" in p.stderr and "Traceback" not in p.stderr, p.stderr
    raw = out.read_bytes()
    assert [raw[i:i + FRAME_BYTES] for i in range(0, DAMAGED * FRAME_BYTES, FRAME_BYTES)] == \
        reference(clips["vp9"])[:DAMAGED]
    record("bad input", "cli decode --backend hw (zeros)", inputs=1, buffers_lost=nothing_in_flight())


class Stream:
    """One open of the video node, VP9 at WxH, with MMAP buffers and requests."""

    def __init__(self, fourcc=uapi.V4L2_PIX_FMT_VP9_FRAME, n=4, sizeimage=0):
        self.dec = open_decoder()
        self.dec.set_format(OUTPUT, fourcc, W, H, sizeimage)
        self.dec.request_buffers(OUTPUT, n)
        self.dec.request_buffers(CAPTURE, n)
        self.requests = [self.dec.alloc_request() for _ in range(n)]
        self.dec.streamon(OUTPUT)
        self.dec.streamon(CAPTURE)

    def submit(self, i, data, controls, ts):
        self.dec.queue_capture(i)
        self.dec.set_controls(controls, self.requests[i])
        self.dec.queue_output(i, data, ts, self.requests[i])
        self.requests[i].queue()

    def close(self):
        for r in self.requests:
            r.close()
        self.dec.close()


def vp9_jobs(path):
    client = Vp9Client()
    ts = iter(range(1000, 10**9, 1000))
    return [j for p in container.packets(path) for j in client.jobs(p, lambda: next(ts))
            if j.show_timestamp is None]


@pytest.mark.debug_kernel
def test_bad_controls_sizes_and_buffers_on_the_module(clips):
    tried = 0
    s = Stream()
    jobs = vp9_jobs(clips["vp9"])
    with pytest.raises(OSError) as exc:              # compound smaller than its struct
        s.dec.set_controls({uapi.V4L2_CID_STATELESS_VP9_FRAME: b"\0" * 8}, s.requests[0])
    assert exc.value.errno in (errno.EFAULT, errno.EINVAL, errno.ENOSPC)
    tried += 1
    frame = bytearray(jobs[0].controls[uapi.V4L2_CID_STATELESS_VP9_FRAME])
    frame[-1] = 0xFF                                  # reserved bytes / out-of-range fields
    frame[0:4] = b"\xff\xff\xff\xff"
    try:
        s.dec.set_controls({uapi.V4L2_CID_STATELESS_VP9_FRAME: bytes(frame)}, s.requests[0])
    except OSError as e:                              # the core's std_validate refused it
        assert e.errno in (errno.EINVAL, errno.ERANGE)
    tried += 1
    s.requests[0].reinit()
    # a VP9 header claiming 16000x16000 in a 64x48 stream: ERROR at once
    key = bytearray(jobs[0].data)
    bits = int.from_bytes(key[:9], "big")
    for start in (36, 52):
        shift = 72 - start - 16
        bits = (bits & ~(0xFFFF << shift)) | (15999 << shift)
    key[:9] = bits.to_bytes(9, "big")
    started = time.monotonic()
    s.submit(0, bytes(key), jobs[0].controls, 1000)
    cap = s.dec.dequeue(CAPTURE, 10)
    assert cap is not None and cap.error and time.monotonic() - started < 5
    assert s.dec.dequeue(OUTPUT, 10) is not None
    tried += 1
    # an H.264 bitstream in the VP9 stream, and 1 MiB of garbage
    h264 = next(iter(container.packets(clips["h264"])))
    for i, data in enumerate([h264, random.Random(2).randbytes(1 << 20)], 1):
        s.submit(i, data, jobs[0].controls, 1000 * (i + 1))
        cap = s.dec.dequeue(CAPTURE, 10)
        assert cap is not None and cap.error
        assert s.dec.dequeue(OUTPUT, 10) is not None
        tried += 1
    s.close()
    # S_FMT beyond the advertised limits is clamped
    dec = open_decoder()
    for w, h, want in [(8192, 8192, (4096, 4096)), (1, 1, (16, 16))]:
        f = dec.set_format(OUTPUT, uapi.V4L2_PIX_FMT_VP9_FRAME, w, h, 0xFFFFFFFF)
        assert (f.width, f.height) == want and f.sizeimage <= 64 << 20
        tried += 1
    dec.close()
    record("bad input", "controls, sizes, buffers, wrong codec (module)", inputs=tried,
           buffers_lost=nothing_in_flight())


# --------------------------------------------------------------------------- faults

@pytest.mark.debug_kernel
def test_kill_9_mid_stream_fails_in_flight_at_once_and_a_new_daemon_serves(clips):
    pid = rig.wait_daemon()
    old_wd = (rig.PARAMS / "watchdog_ms").read_text().strip()
    (rig.PARAMS / "watchdog_ms").write_text("30000\n")   # so ERROR can only come from the kill
    try:
        s = Stream(n=4)
        jobs = vp9_jobs(clips["vp9"])
        os.kill(pid, signal.SIGSTOP)                     # keep the jobs in flight
        for i in range(4):
            s.submit(i, jobs[i].data, jobs[i].controls, 1000 * (i + 1))
        assert rig.wait_for(lambda: len(rig.inflight()) >= 1, 5)
        started = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        caps = [s.dec.dequeue(CAPTURE, 5) for _ in range(4)]
        took = time.monotonic() - started
        assert all(c is not None and c.error for c in caps), caps
        assert took < 3, f"in-flight jobs took {took:.1f} s to fail"
        t = time.monotonic()
        s.dec.streamoff(OUTPUT)
        s.dec.streamoff(CAPTURE)
        s.close()
        assert time.monotonic() - t < 2
    finally:
        (rig.PARAMS / "watchdog_ms").write_text(old_wd + "\n")
    lost = nothing_in_flight()
    new = rig.wait_daemon()
    assert new != pid
    assert [p.data for p in decode(clips["vp9"])] == reference(clips["vp9"])
    record("faults", "kill -9 the daemon mid-stream", faults=1, buffers_lost=lost,
           hangs=int(took >= 3))


@pytest.mark.debug_kernel
def test_a_stopped_daemon_meets_the_watchdog(clips):
    pid = rig.wait_daemon()
    old_wd = (rig.PARAMS / "watchdog_ms").read_text().strip()
    (rig.PARAMS / "watchdog_ms").write_text("500\n")
    before = rig.counters()
    s = Stream(n=2)
    jobs = vp9_jobs(clips["vp9"])
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        s.submit(0, jobs[0].data, jobs[0].controls, 1000)
        cap = s.dec.dequeue(CAPTURE, 10)
        took = time.monotonic() - started
        assert cap is not None and cap.error and 0.4 < took < 5, (cap, took)
    finally:
        os.kill(pid, signal.SIGCONT)
        (rig.PARAMS / "watchdog_ms").write_text(old_wd + "\n")
    s.dec.dequeue(OUTPUT, 5)
    s.close()
    after = rig.counters()
    assert after["watchdog_expiries"] > before["watchdog_expiries"]
    lost = nothing_in_flight()
    # the woken daemon's late answer is counted, and it serves the next stream
    assert [p.data for p in decode(clips["vp9"])] == reference(clips["vp9"])
    record("faults", "SIGSTOP the daemon (watchdog)", faults=1, buffers_lost=lost,
           hangs=int(took >= 5))


@pytest.mark.debug_kernel
def test_client_closes_with_jobs_in_flight(clips):
    pid = rig.wait_daemon()
    before = rig.counters()
    s = Stream(n=4)
    jobs = vp9_jobs(clips["vp9"])
    os.kill(pid, signal.SIGSTOP)
    try:
        for i in range(4):
            s.submit(i, jobs[i].data, jobs[i].controls, 1000 * (i + 1))
        rig.wait_for(lambda: rig.inflight(), 5)
        started = time.monotonic()
        s.close()                                       # no STREAMOFF, no DQBUF
        took = time.monotonic() - started
        assert took < 2 and not rig.inflight()
    finally:
        os.kill(pid, signal.SIGCONT)
    rig.wait_for(lambda: rig.counters()["unknown_cookie"] > before["unknown_cookie"], 30)
    assert [p.data for p in decode(clips["vp9"])] == reference(clips["vp9"])
    record("faults", "client closes with jobs in flight", faults=1,
           buffers_lost=nothing_in_flight(), hangs=int(took >= 2))


@pytest.mark.debug_kernel
def test_two_daemons_race_for_the_chardev(tmp_path):
    rig.wait_daemon()
    p = rig.cli("daemon", "--no-state-socket", timeout=300)   # a second daemon, the first attached
    assert p.returncode != 0 and "already held by another daemon" in p.stderr, p.stderr
    # Openers spin until a common instant and try once; the winner keeps the chardev
    # until every racer has tried (a marker file each), so however late a slow
    # python start makes one, exactly one open can succeed.
    rounds, racers = 3, 6
    code = ("import os,sys,time\nt,d=float(sys.argv[1]),sys.argv[2]\n"
            "while time.time()<t: pass\n"
            "try:\n fd=os.open('/dev/daedalus-v4l2',os.O_RDWR); r='OPEN'\n"
            "except OSError as e: fd,r=-1,str(e.errno)\n"
            "open(os.path.join(d,str(os.getpid())),'w').close(); print(r); sys.stdout.flush()\n"
            "end=time.time()+180\n"
            "while fd>=0 and len(os.listdir(d))<int(sys.argv[3]) and time.time()<end: time.sleep(0.05)\n"
            "fd>=0 and os.close(fd)\n")
    with rig.daemon_held_off():
        for n in range(rounds):
            marks = Path(tmp_path) / f"round{n}"
            marks.mkdir()
            at = str(time.time() + 3)
            procs = [subprocess.Popen([sys.executable, "-c", code, at, str(marks), str(racers)],
                                      stdout=subprocess.PIPE, text=True) for _ in range(racers)]
            outs = [pr.communicate(timeout=300)[0].strip() for pr in procs]
            assert outs.count("OPEN") == 1, outs
            assert sorted(o for o in outs if o != "OPEN") == [str(errno.EBUSY)] * (racers - 1)
    record("faults", "daemons racing for the chardev (EBUSY)", faults=1 + rounds * racers)


@pytest.mark.debug_kernel
def test_rmmod_with_the_daemon_attached_and_a_clean_reload(clips):
    rig.wait_daemon()
    watch = rig.DmesgWatch()
    r = subprocess.run(["rmmod", "daedalus_v4l2"], capture_output=True, text=True)
    assert r.returncode != 0 and "in use" in (r.stderr + r.stdout).lower(), r
    assert module_loaded("daedalus_v4l2")
    faults = 1
    with rig.daemon_held_off():
        r = subprocess.run(["rmmod", "daedalus_v4l2"], capture_output=True, text=True)
        assert r.returncode == 0, f"{r.stderr} holders: {rig.holders()}"
        leaks = rig.kmemleak_scan()
        r = subprocess.run(["modprobe", "daedalus_v4l2"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert rig.wait_for(lambda: Path(rig.CHARDEV).exists(), 10)
        faults += 1
    assert [p.data for p in decode(clips["vp9"])] == reference(clips["vp9"])
    assert not leaks, leaks
    assert not watch.reports(), watch.reports()
    record("faults", "rmmod with the daemon attached; unload and reload", faults=faults,
           dmesg_reports=len(watch.reports()) + len(leaks))


@pytest.mark.debug_kernel
def test_eight_contexts_decode_at_once(clips):
    rig.wait_daemon()
    intact = reference(clips["vp9"])
    results, errors = {}, []

    def one(n):
        try:
            results[n] = [p.data for p in decode(clips["vp9"], depth=1 + n % 3)]
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(f"context {n}: {exc!r}")

    threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    hung = sum(t.is_alive() for t in threads)
    assert not errors and not hung, errors
    differ = {n: [i for i in range(max(len(got), len(intact)))
                  if i >= len(got) or i >= len(intact) or got[i] != intact[i]]
              for n, got in results.items() if got != intact}
    assert not differ, {n: (f"{len(results[n])} of {len(intact)} pictures; differ at {idx}; "
                            f"failed: {[i for i, d in enumerate(results[n]) if d is None]}")
                        for n, idx in differ.items()}
    record("faults", "eight contexts decoding at once", faults=8, buffers_lost=nothing_in_flight(),
           hangs=hung, seconds=round(time.monotonic() - started, 1))
