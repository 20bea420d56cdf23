"""``daedalus-v4l2 bench``: what the emulated device costs on top of bare libavcodec.

For each codec (VP9, H.264 with B-frames, AV1) a 1080p clip with texture and
motion (:func:`daedalus_v4l2.synth.make_clip`, cached outside the checkout in
``~/.cache/daedalus-v4l2/bench/``) is decoded, side by side:

``bare``
    PyAV alone: decode to tightly packed NV12 (``reformat(format="nv12")``; its
    planes as they are when their rows are unpadded, as at 1080p, else copied
    into one buffer), with the best thread setting PyAV allows (frame
    and slice threading both tried, for AV1 libdav1d's frame delay, the faster
    one reported).
``sim``
    The full path of ``daedalus-v4l2 decode --backend sim``: the stateless
    client, the simulated kernel, the wire protocol, the daemon (in its own
    thread, as on a Pi where it is a process), libavcodec, packing into the
    CAPTURE buffer, DQBUF and the picture handed on as a view of the CAPTURE
    buffer (``decode_through(borrow=True)``, unpacked only when its rows are
    padded); with
    the daemon's two thread settings (``--threads``): slice threads for a
    client 2 requests deep, frame threads for one 6 deep (the faster one
    reported, as for bare).
``hw``
    With ``--hw``: the same decode in the kernel rig's VM (``scripts/vm-run``,
    QEMU TCG: emulation, so reported and never compared with a target).

and reported: fps of each thread setting (median of ``--repeat`` rounds that
each run every setting of both paths), sim/bare (the median over the rounds of
each round's sim run against its bare run, so that drift in the machine's
speed cancels out, each path's faster setting chosen on the other rounds, with
a distribution-free 95 % interval), CPU time and context switches a picture for
both paths (all threads), ms per frame by stage (client, sim kernel, protocol,
daemon, libavcodec, packing; from one extra instrumented run), peak RSS and RSS
growth over ``--rss-frames`` frames after warm-up (the clip looped through one
pipeline), the cost of packing a 1080p picture (NV12, P010) against PyAV's
reformat + copy, and the cost of encoding and parsing each protocol message.

Nothing here asserts a timing: the targets are printed next to the numbers.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

from . import argtypes
from .threads import THREADS, batch_scheduling

log = logging.getLogger(__name__)

WIDTH, HEIGHT = 1920, 1080
CACHE_ENV = "DAEDALUS_BENCH_CACHE"

# Encoder settings per codec.  Each keeps the decoder's threads usable without
# frame threading (which delays output past what a depth-1 client waits for):
# VP9 in 4 tile columns (libavcodec's vp9 slice threads decode tile columns),
# H.264 in 4 slices a picture (h264 slice threads), AV1 in 4x2 tiles (dav1d's
# tile threads with max_frame_delay=1).
CLIP_SPECS: dict[str, dict] = {
    "vp9": {"suffix": ".ivf", "bit_rate": 5_000_000,
            # realtime speed, look-ahead and alt-refs (hidden frames in superframes)
            "options": {"deadline": "realtime", "cpu-used": "8", "auto-alt-ref": "1",
                        "lag-in-frames": "16", "tile-columns": "2", "row-mt": "1"}},
    "h264": {"suffix": ".mp4", "bit_rate": 8_000_000,
             "options": {"preset": "veryfast", "x264-params": "bframes=3:b-pyramid=normal:slices=4"}},
    "av1": {"suffix": ".ivf", "bit_rate": 4_000_000,
            "options": {"preset": "10", "svtav1-params": "tile-columns=2:tile-rows=1"}},
}
CODECS = tuple(CLIP_SPECS)

FULL = {"frames": 150, "repeat": 12, "rss_frames": 1000, "warmup": 100, "micro_repeat": 200}
SHORT = {"frames": 16, "repeat": 1, "rss_frames": 100, "warmup": 20, "micro_repeat": 30}

TARGETS = {"ratio": 0.95, "fps": 60.0, "pack_speedup": 2.0, "pack_ms": 1.0, "rss_growth_mb": 20.0}


def cache_dir() -> pathlib.Path:
    base = os.environ.get(CACHE_ENV)
    if base:
        return pathlib.Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(xdg) / "daedalus-v4l2" / "bench"


def clip_path(codec: str, frames: int, width: int = WIDTH, height: int = HEIGHT,
              directory: pathlib.Path | None = None, make: bool = True) -> pathlib.Path:
    """The cached clip of ``codec`` (made on first use; the name hashes every parameter)."""
    import av

    from .errors import UnsupportedError
    from .synth import encoder_name, make_clip

    spec = CLIP_SPECS[codec]
    params = {"codec": codec, "width": width, "height": height, "frames": frames,
              "options": spec["options"], "bit_rate": spec["bit_rate"], "v": 1}
    key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    directory = directory or cache_dir()
    path = directory / f"{codec}-{width}x{height}-{frames}f-{key}{spec['suffix']}"
    if make and not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"partial-{os.getpid()}-{path.name}")
        log.info("encoding %s (%d frames, %dx%d), cached for later runs", path.name, frames,
                 width, height)
        try:
            make_clip(partial, codec=codec, width=width, height=height, frames=frames,
                      container={".ivf": "ivf", ".mp4": "mp4"}[spec["suffix"]],
                      options=spec["options"], bit_rate=spec["bit_rate"])
        except BaseException as exc:
            partial.unlink(missing_ok=True)     # no half-written clip left in the cache
            if isinstance(exc, av.FFmpegError):
                # the encoder refuses these settings: most often a size under its own smallest
                raise UnsupportedError(f"cannot make the {width}x{height} {codec} clip: "
                                       f"{encoder_name(codec)} refused it ({exc})") from exc
            raise
        partial.rename(path)
    return path


# --------------------------------------------------------------------------- memory

def rss_mb() -> float:
    """Resident set size now (MB)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # pragma: no cover - not Linux
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Start a new peak-RSS window (Linux: clear_refs 5 resets VmHWM)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- clips

@dataclass
class Clip:
    codec: str
    path: pathlib.Path
    width: int
    height: int
    pix_fmt: str | None
    codec_name: str          # libavcodec's canonical name (what decode_through takes)
    packets: list[bytes]

    @property
    def frames(self) -> int:
        return len(self.packets)


def load_clip(codec: str, frames: int, width: int = WIDTH, height: int = HEIGHT,
              directory: pathlib.Path | None = None) -> Clip:
    from . import container

    path = clip_path(codec, frames, width, height, directory)
    info = container.probe(path)
    return Clip(codec, path, info.width, info.height, info.pix_fmt, info.codec,
                list(container.packets(path)))


def _looped(packets: list[bytes], loops: int | None) -> Iterator[bytes]:
    """The clip's packets ``loops`` times (None: forever): every pass starts at a key frame."""
    n = 0
    while loops is None or n < loops:
        yield from packets
        n += 1


# --------------------------------------------------------------------------- bare PyAV

# The thread settings tried for bare PyAV, the daemon's own two (SIM_THREADS):
# libavcodec's slice or frame threads.  libdav1d ignores thread_type; its frame
# threads are its max_frame_delay (1: tile threads only, every picture from the
# call that fed it; 0: dav1d's own choice), which the AV1 session sets the same
# way.  AUTO is not tried: libavcodec turns it into frame threads for a decoder
# that has them (vp9, h264: validate_thread_parameters in pthread.c), so it would
# be FRAME twice, and the better of two draws of one setting is biased up.
BARE_THREAD_TYPES = ("SLICE", "FRAME")
DAV1D_FRAME_DELAY = {"SLICE": "1", "FRAME": "0"}


def _tight_nv12(frame, target: str) -> bytearray | list[memoryview]:
    """PyAV's own way to a tightly packed picture: reformat, then, as the sim path
    hands out its CAPTURE buffer without a copy (``decode_through(borrow=True)``),
    the planes as they are when their rows are unpadded (1080p); else the rows
    copied into one buffer."""
    import numpy as np

    ref = frame.reformat(format=target)
    bps = 2 if target == "p010le" else 1
    w, h = ref.width, ref.height
    rows = [(w * bps, h), (2 * ((w + 1) // 2) * bps, (h + 1) // 2)]
    if all(plane.line_size == row_bytes for plane, (row_bytes, _) in zip(ref.planes, rows)):
        return [memoryview(plane)[:row_bytes * nrows]
                for plane, (row_bytes, nrows) in zip(ref.planes, rows)]
    out = bytearray(sum(b * n for b, n in rows))
    view = np.frombuffer(out, np.uint8)
    pos = 0
    for plane, (row_bytes, nrows) in zip(ref.planes, rows):
        src = np.frombuffer(plane, np.uint8)[:plane.line_size * nrows].reshape(nrows, plane.line_size)
        view[pos:pos + row_bytes * nrows].reshape(nrows, row_bytes)[:] = src[:, :row_bytes]
        pos += row_bytes * nrows
    return out


class DecodeClock:
    """The clocks of one decode (wall and CPU, the whole process), running only
    while pictures are being decoded: started once the path's stack is open
    (bare: the file opened and probed; sim: the device opened) and stopped when
    the last picture is out.  Opening a file, PyAV probes it, decoding pictures
    of its own: 21-42 ms for these 1080p clips on the EPYC VM, 4-7 % of a
    150-picture bare decode, which only the bare path's clock used to count (the
    sim path's packets are demuxed once, in ``load_clip``)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.switches = 0

    @contextmanager
    def running(self):
        wall, cpu, switches = time.perf_counter(), time.process_time(), context_switches()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - wall
            self.cpu_seconds += time.process_time() - cpu
            self.switches += context_switches() - switches


def context_switches() -> int:
    """Context switches of the whole process so far, voluntary and not, every thread's
    (ended ones too): what handing work between threads costs, which fps and CPU
    time alone hide.  On the shared EPYC VM of 2026-11-24 two Python threads
    handing a token back and forth spent ~30 us of CPU a switch (150 us a round
    trip between two CPUs, 27 us with both on one)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_nvcsw + usage.ru_nivcsw


def bare_target(clip: Clip) -> str:
    """What bare PyAV reformats a clip's pictures to: P010 for more than 8 bits."""
    return "p010le" if clip.pix_fmt and ("p10" in clip.pix_fmt or "p9" in clip.pix_fmt) else "nv12"


def bare_stream(source, thread_type: str):
    """The video stream of an opened clip, set up as bare PyAV decodes it: libavcodec's
    threads of ``thread_type``, as many as it picks, and libdav1d's frame delay to match."""
    stream = source.streams.video[0]
    stream.thread_type = thread_type
    stream.thread_count = 0
    if stream.codec_context.name == "libdav1d":
        stream.codec_context.options = {"max_frame_delay": DAV1D_FRAME_DELAY[thread_type]}
    return stream


def bare_decode(clip: Clip, thread_type: str, loops: int = 1,
                clock: "DecodeClock | None" = None) -> tuple[int, float, float]:
    """(pictures, seconds, CPU seconds) of decode + tight NV12/P010, PyAV only, on
    the clocks of a :class:`DecodeClock`."""
    import av

    target = bare_target(clip)
    n = 0
    clock = clock or DecodeClock()
    for _ in range(loops):
        with av.open(str(clip.path)) as source:
            stream = bare_stream(source, thread_type)
            picture = None
            with batch_scheduling(), clock.running():   # as the sim path's client (below)
                for frame in source.decode(stream):
                    # held until the next one, as the sim path's consumer holds its Picture:
                    # the allocation pattern matters (glibc maps and page-faults a fresh 3 MB
                    # buffer when one is freed right away: ~3 ms a picture)
                    picture = _tight_nv12(frame, target)  # noqa: F841
                    n += 1
    return n, clock.seconds, clock.cpu_seconds


# --------------------------------------------------------------------------- the sim path

# The daemon's thread settings (``daemon --threads``) and the client depth each wants:
# frame threads pay off only when requests queue up behind the one decoding (the kernel
# then sets DECODE_MORE_QUEUED and the daemon may hold pictures back).
SIM_THREADS: dict[str, tuple[dict, int]] = {
    "SLICE": (THREADS["slice"], 2),
    "FRAME": (THREADS["frame"], 6),
}


def sim_decode(clip: Clip, loops: int | None = 1, limit: int | None = None,
               on_picture: Callable[[int], None] | None = None,
               threads: str = "SLICE", daemon_thread: bool = True,
               write_behind: bool = True,
               clock: "DecodeClock | None" = None) -> tuple[int, float, dict]:
    """(pictures, seconds, stats: the kernel's, and the CPU seconds) on the clocks
    of a :class:`DecodeClock`: what ``decode --backend sim --threads THREADS``
    does (the daemon in its own thread, writing pictures behind unless not
    ``write_behind``; inline if not ``daemon_thread``), without writing the
    pictures anywhere.  ``limit`` decodes only that many
    packets (a picture each in these clips) and drains the pipeline, as a whole
    decode ends: breaking off with requests in flight would cancel the job in
    the daemon's hands, and its daemon would be told the job is gone."""
    import itertools

    from .backends_runtime import open_decoder
    from .decode import capture_format_for, decode_through

    daemon_options, depth = SIM_THREADS[threads]
    daemon_options = {**daemon_options, "write_behind": daemon_thread and write_behind}
    n = errors = 0
    clock = clock or DecodeClock()
    with open_decoder("sim", daemon_options=daemon_options, daemon_thread=daemon_thread) as opened:
        with batch_scheduling(), clock.running():   # as `decode` runs its client (threads.py)
            pictures = decode_through(opened.decoder, clip.codec_name, clip.width, clip.height,
                                      itertools.islice(_looped(clip.packets, loops), limit),
                                      depth=depth, capture_format=capture_format_for(clip.pix_fmt),
                                      borrow=True)
            try:
                for picture in pictures:
                    n += 1
                    errors += picture.data is None
                    if on_picture is not None:
                        on_picture(n)
            finally:
                pictures.close()
        stats = {"errors": errors, "done": opened.kernel.stats.done,
                 "kernel_errors": opened.kernel.stats.errors,
                 "parked_max": opened.kernel.stats.parked_max, "cpu_seconds": clock.cpu_seconds,
                 "switches": clock.switches}
    return n, clock.seconds, stats


# --------------------------------------------------------------------------- stages

STAGES = ("client", "unpack", "kernel", "protocol", "daemon", "libavcodec", "packing")


class StageTimer:
    """Exclusive time per stage: a call wrapped as stage S counts to S minus the
    wrapped calls it makes (a syscall that runs the daemon counts to the daemon).
    Wall time, and this thread's CPU time (which a loaded machine disturbs less)."""

    def __init__(self) -> None:
        self.totals = dict.fromkeys(STAGES, 0.0)
        self.cpu = dict.fromkeys(STAGES, 0.0)
        self._stack: list[list] = []
        self._patches: list[tuple[object, str, object]] = []

    def wrap(self, owner, name: str, stage: str) -> None:
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        if isinstance(original, (staticmethod, classmethod)):
            raise TypeError(f"{name}: cannot wrap a {type(original).__name__}")
        perf, cpu_clock = time.perf_counter, time.thread_time
        stack, totals, cpu = self._stack, self.totals, self.cpu

        def timed(*args, **kwargs):
            now, now_cpu = perf(), cpu_clock()
            if stack:
                top = stack[-1]
                totals[top[0]] += now - top[1]
                cpu[top[0]] += now_cpu - top[2]
            stack.append([stage, now, now_cpu])
            try:
                return original(*args, **kwargs)
            finally:
                end, end_cpu = perf(), cpu_clock()
                top = stack.pop()
                totals[top[0]] += end - top[1]
                cpu[top[0]] += end_cpu - top[2]
                if stack:
                    stack[-1][1], stack[-1][2] = end, end_cpu
        timed.__wrapped__ = original
        self._patches.append((owner, name, original))
        setattr(owner, name, timed)

    def reset(self) -> None:
        """Count from zero again (between calls: nothing wrapped is running)."""
        assert not self._stack, "reset inside a timed call"
        for counts in (self.totals, self.cpu):   # in place: the wrappers hold these dicts
            counts.update(dict.fromkeys(STAGES, 0.0))

    def restore(self) -> None:
        for owner, name, original in reversed(self._patches):
            setattr(owner, name, original)
        self._patches.clear()


def _install_stage_timers(timer: StageTimer) -> None:
    from . import daemon, pixels, proto, session
    from .backends.sim import chardev, syscalls

    for cls in _subclasses(session.DecoderSession):
        if "_feed" in cls.__dict__:
            timer.wrap(cls, "_feed", "libavcodec")
    timer.wrap(pixels, "pack_frame", "packing")
    timer.wrap(pixels, "unpack_picture", "unpack")
    timer.wrap(pixels, "unpack_picture_into", "unpack")  # borrow's padded rows
    timer.wrap(proto, "encode", "protocol")
    timer.wrap(proto, "parse", "protocol")
    for name in ("ioctl", "poll", "mmap", "munmap"):
        timer.wrap(syscalls.SimSyscalls, name, "kernel")
    for name in ("write", "read", "map_capture"):
        timer.wrap(chardev.Chardev, name, "kernel")
    timer.wrap(daemon.Daemon, "step", "daemon")


def _subclasses(cls) -> list[type]:
    from . import session_av1, session_h264  # noqa: F401 - load every codec's session
    out, todo = [], [cls]
    while todo:
        c = todo.pop()
        out.append(c)
        todo.extend(c.__subclasses__())
    return out


class _StageClock(DecodeClock):
    """A decode's clock that starts the stage timer afresh with it, and also reads
    this thread's CPU: the stages count what the decode costs a picture, as the
    fps do, not the device's open (its nodes, the kernel and the daemon) or its
    close (its mappings).  REQBUFS is the decode's own, and counted by both."""

    def __init__(self, timer: StageTimer) -> None:
        super().__init__()
        self.timer = timer
        self.thread_seconds = 0.0
        self.stage_totals: dict[str, float] = {}
        self.stage_cpu: dict[str, float] = {}

    @contextmanager
    def running(self):
        self.timer.reset()
        start = time.thread_time()
        try:
            with super().running():
                yield
        finally:
            self.thread_seconds += time.thread_time() - start
            # what the stages were when the clock stopped (closing the device is not counted)
            self.stage_totals, self.stage_cpu = dict(self.timer.totals), dict(self.timer.cpu)


def sim_stages(clip: Clip, threads: str = "SLICE") -> dict:
    """ms per picture by stage, from one instrumented run of the sim path with
    the daemon inline: in one thread, so that the stages add up to the total
    (with the daemon in its own thread they overlap)."""
    timer = StageTimer()
    _install_stage_timers(timer)
    clock = _StageClock(timer)
    try:
        n, wall, _ = sim_decode(clip, threads=threads, daemon_thread=False, clock=clock)
        cpu = clock.thread_seconds
    finally:
        timer.restore()
    per = {}
    for name, totals, whole in (("", clock.stage_totals, wall), ("cpu_", clock.stage_cpu, cpu)):
        stages = dict(totals)
        stages["client"] += whole - sum(totals.values())   # the pipeline: everything not wrapped
        out = {k: 1e3 * v / max(n, 1) for k, v in stages.items()}
        out["transport"] = out["kernel"] + out["protocol"]
        out["total"] = 1e3 * whole / max(n, 1)
        # what the emulation adds to libavcodec's own work (unpack excluded: bare copies
        # padded rows too)
        out["overhead"] = out["total"] - out["libavcodec"] - out["unpack"]
        per.update({name + k: v for k, v in out.items()})
    return per


# --------------------------------------------------------------------------- micro-benchmarks

def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm: page faults, caches
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def _reformat_and_copy(frame, target: str, planes, dst) -> None:
    """PyAV's way into a CAPTURE buffer: swscale converts, numpy copies the rows."""
    import numpy as np

    ref = frame.reformat(format=target)
    out = np.frombuffer(dst, np.uint8)
    bps = 2 if target == "p010le" else 1
    w, h = frame.width, frame.height
    for plane, p, (row_bytes, rows) in zip(ref.planes, planes,
                                           [(w * bps, h), (2 * ((w + 1) // 2) * bps, (h + 1) // 2)]):
        src = np.frombuffer(plane, np.uint8)[:plane.line_size * rows].reshape(rows, plane.line_size)
        view = out[p.offset:p.offset + p.bytesperline * rows].reshape(rows, p.bytesperline)
        view[:, :row_bytes] = src[:, :row_bytes]


def packing_bench(frame, repeat: int) -> dict:
    """1080p NV12 and P010: pack_frame (with and without the digest) against PyAV's
    reformat + copy, into the driver's CAPTURE layout.  Each contender runs in blocks
    of ten back-to-back calls (its steady state: the same buffers reused, as in a
    decode loop), the blocks of all contenders taking turns so that a busy machine
    slows them alike; medians over every call."""
    from . import pixels

    out = {}
    for name, fourcc, source_fmt, target in (("NV12", pixels.NV12, "yuv420p", "nv12"),
                                             ("P010", pixels.P010, "yuv420p10le", "p010le")):
        src = frame if frame.format.name == source_fmt else frame.reformat(format=source_fmt)
        planes, size = pixels.capture_layout(fourcc, src.width, src.height)
        dst = memoryview(bytearray(size))
        tight = pixels.unpack_picture(dst, fourcc, planes, src.width, src.height)
        contenders = {
            "pack_ms": lambda: pixels.pack_frame(src, fourcc, planes, dst, digest=False),
            "pack_digest_ms": lambda: pixels.pack_frame(src, fourcc, planes, dst),
            "reformat_copy_ms": lambda: _reformat_and_copy(src, target, planes, dst),
            "digest_ms": lambda: pixels.fnv1a64(tight),
        }
        times: dict[str, list[float]] = {k: [] for k in contenders}
        for fn in contenders.values():
            fn()  # warm: page faults, caches
        for _ in range(max(1, repeat // 10)):
            for key, fn in contenders.items():
                fn()
                for _ in range(10):
                    t = time.perf_counter()
                    fn()
                    times[key].append((time.perf_counter() - t) * 1e3)
        result = {"source": source_fmt}
        if fourcc == pixels.P010:  # its loops are chosen at run time (NV12's are the compiler's)
            result["simd"] = pixels.simd_name()
        result.update({k: statistics.median(v) for k, v in times.items()})
        for key, over in (("speedup", "pack_ms"), ("speedup_with_digest", "pack_digest_ms")):
            result[key] = result["reformat_copy_ms"] / result[over] if result[over] else 0.0
        out[name] = result
    return out


def protocol_bench(samples: dict[str, object], repeat: int) -> dict:
    """µs to encode and to parse one message of each kind the hot path sends."""
    from . import proto

    out = {}
    n = max(repeat * 10, 100)
    for name, msg in samples.items():
        data = proto.encode(msg)
        enc = _median_ms(lambda: [proto.encode(msg) for _ in range(n)], 5) * 1e3 / n
        dec = _median_ms(lambda: [proto.parse(data) for _ in range(n)], 5) * 1e3 / n
        out[name] = {"bytes": len(data), "encode_us": enc, "parse_us": dec}
    return out


def _capture_messages(clip: Clip) -> dict[str, object]:
    """A real DECODE and FRAME of ``clip`` (the middle of its first pictures)."""
    from . import proto

    decodes: list = []
    frames: list = []
    original = proto.encode

    def spy(msg):
        if isinstance(msg, proto.DecodeRequest):
            decodes.append(msg)
        elif isinstance(msg, proto.FrameResponse) and msg.flags & proto.FRAME_HAS_PIXELS:
            frames.append(msg)
        return original(msg)
    proto.encode = spy
    try:
        sim_decode(clip, limit=min(9, clip.frames))
    finally:
        proto.encode = original
    key = decodes[0]
    typical = sorted(decodes, key=lambda m: len(m.bitstream))[len(decodes) // 2]
    return {f"{clip.codec} DecodeRequest (key)": key,
            f"{clip.codec} DecodeRequest (median)": typical,
            f"{clip.codec} FrameResponse": frames[0]}


def first_frame(clip: Clip):
    import av

    with av.open(str(clip.path)) as source:
        for frame in source.decode(video=0):
            return frame
    raise RuntimeError(f"{clip.path}: no picture")


# --------------------------------------------------------------------------- the hw path (rig)

def hw_decode(clip: Clip, loops: int = 1) -> tuple[int, float]:
    """(pictures, seconds) through the real module (/dev/videoN) and a running
    daemon, on a :class:`DecodeClock` as the other paths."""
    from .backends_runtime import open_decoder
    from .decode import capture_format_for, decode_through

    n = 0
    clock = DecodeClock()
    with open_decoder("hw") as opened, clock.running():
        for picture in decode_through(opened.decoder, clip.codec_name, clip.width, clip.height,
                                      _looped(clip.packets, loops),
                                      capture_format=capture_format_for(clip.pix_fmt), borrow=True):
            n += picture.data is not None
    return n, clock.seconds


def hw_in_rig(codecs: Iterable[str], frames: int, width: int, height: int,
              directory: pathlib.Path, timeout: int = 1800) -> dict:
    """Run :func:`hw_decode` in the kernel rig's VM (scripts/vm-run); {codec: fps or error}."""
    root = pathlib.Path(__file__).resolve().parent.parent
    vm_run = root / "scripts" / "vm-run"
    if not vm_run.exists():
        return {c: {"error": "scripts/vm-run not found (not a checkout)"} for c in codecs}
    codecs = list(codecs)
    for codec in codecs:  # made on the host: the guest sees the host's root read-only
        clip_path(codec, frames, width, height, directory)
    cmd = [str(vm_run), "--quiet", "--timeout", str(timeout), "--",
           "python", "-m", "daedalus_v4l2", "bench", "--hw-guest", "--frames", str(frames),
           "--size", f"{width}x{height}", "--cache-dir", str(directory), "--codecs", ",".join(codecs)]
    log.info("hw path: %s", " ".join(cmd))
    # the guest runs this interpreter's environment (PyAV and all), not the first python3 on PATH
    env = dict(os.environ, DAEDALUS_VENV=os.environ.get("DAEDALUS_VENV", sys.prefix))
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 120, cwd=root,
                              env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {c: {"error": f"vm-run: {exc}"} for c in codecs}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith('{"hw_guest":'):
            return json.loads(line)["hw_guest"]
    why = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {c: {"error": f"vm-run exit {done.returncode}: {why}"} for c in codecs}


def hw_guest_main(codecs: Iterable[str], frames: int, width: int, height: int,
                  directory: pathlib.Path) -> int:
    """Inside the rig: decode each cached clip through the module, print one JSON line."""
    results = {}
    for codec in codecs:
        try:
            clip = load_clip(codec, frames, width, height, directory)
            n, seconds = hw_decode(clip)
            results[codec] = {"frames": n, "fps": n / seconds if seconds else 0.0}
        except Exception as exc:  # noqa: BLE001 - reported, the other codecs still run
            results[codec] = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps({"hw_guest": results}), flush=True)
    return 0


# --------------------------------------------------------------------------- the run

@dataclass
class Settings:
    codecs: tuple[str, ...] = CODECS
    frames: int = FULL["frames"]
    repeat: int = FULL["repeat"]
    rss_frames: int = FULL["rss_frames"]
    warmup: int = FULL["warmup"]
    micro_repeat: int = FULL["micro_repeat"]
    width: int = WIDTH
    height: int = HEIGHT
    hw: bool = False
    cache: pathlib.Path = field(default_factory=cache_dir)
    mode: str = "full"

    @classmethod
    def for_mode(cls, short: bool, **overrides) -> "Settings":
        base = dict(SHORT if short else FULL)
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(mode="short" if short else "full", **base)


def machine() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    import av
    return {"cpus": os.cpu_count(), "load_before": [round(x, 2) for x in load],
            "python": platform.python_version(), "pyav": av.__version__,
            "libavcodec": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
            "cpu": _cpu_model(), "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def bench_codec(codec: str, s: Settings, progress: Callable[[str], None]) -> dict:
    """``repeat`` rounds, each decoding the clip with every thread setting of both
    paths (in reverse order every other round).  sim/bare is the
    median over the rounds of each round's sim run against its bare run, with the
    faster setting of each path chosen on the *other* rounds: choosing on the
    runs being measured would be biased up (the best of several noisy runs), most
    for whichever side has settings that come out alike, and a pair shares the
    machine's drift between rounds (a shared VM: +-10-20 %).  The fps reported
    for each path are the medians of its faster setting, chosen on all rounds."""
    clip = load_clip(codec, s.frames, s.width, s.height, s.cache)
    progress(f"{codec}: {clip.frames} frames of {clip.width}x{clip.height} ({clip.path.name})")
    # warm-up: libraries loaded, decoders opened once, caches hot
    sim_decode(clip, limit=min(4, clip.frames))
    bare_decode(clip, "SLICE")
    runs = _Runs(clip)
    # every decode of a round, in one order and then in the reverse one: a linear drift
    # in the machine's speed then weighs alike on any two settings compared
    sequence = [(runs.bare, t) for t in BARE_THREAD_TYPES] + [(runs.sim, t) for t in SIM_THREADS]
    for run in range(s.repeat):
        for decode, setting in sequence if run % 2 == 0 else reversed(sequence):
            decode(setting)
        progress(f"{codec}: run {run + 1}/{s.repeat}: sim "
                 + ", ".join(f"{t} {v[-1]:.1f}" for t, v in runs.sim_fps.items()) + "; bare "
                 + ", ".join(f"{t} {v[-1]:.1f}" for t, v in runs.bare_fps.items()))
    bare_fps = {t: statistics.median(v) for t, v in runs.bare_fps.items()}
    best = max(bare_fps, key=bare_fps.get)
    sim_by_threads = {t: statistics.median(v) for t, v in runs.sim_fps.items()}
    sim_best = max(sim_by_threads, key=sim_by_threads.get)
    paired = [runs.sim_fps[_chosen(runs.sim_fps, i)][i] / runs.bare_fps[_chosen(runs.bare_fps, i)][i]
              for i in range(s.repeat)]
    stages = sim_stages(clip, sim_best)
    rss = rss_growth(clip, s.warmup, s.rss_frames, sim_best)
    progress(f"{codec}: RSS {rss['start_mb']:.1f} -> {rss['end_mb']:.1f} MB over {rss['frames']} frames")
    return {"codec": codec, "clip": str(clip.path), "frames": clip.frames,
            "bytes": clip.path.stat().st_size, "pix_fmt": clip.pix_fmt,
            "bare_fps": bare_fps, "bare_best": best, "bare_best_fps": bare_fps[best],
            "bare_slice_fps": bare_fps["SLICE"],
            "sim_fps": sim_by_threads[sim_best], "sim_best": sim_best,
            "sim_fps_by_threads": sim_by_threads, "sim_runs": runs.sim_fps,
            "sim_parked_max": runs.parked, "requests_per_picture": runs.requests_per_picture,
            "ratio": statistics.median(paired),
            "ratio_runs": paired, "ratio_interval": median_interval(paired),
            "ratio_of_medians": sim_by_threads[sim_best] / bare_fps[best],
            "ratio_slice": sim_by_threads["SLICE"] / bare_fps["SLICE"],
            # CPU of the whole process (every thread) a picture, for each thread setting
            # both paths have: what the emulation costs the machine with the threads
            # alike, which a loaded machine disturbs much less than the fps
            "cpu_ms": {t: {"bare": statistics.median(runs.bare_cpu[t]),
                           "sim": statistics.median(runs.sim_cpu[t])} for t in SIM_THREADS},
            # and the context switches a picture (every thread's): libavcodec's own
            # threads on both paths, and the sim's hand-overs between the client, the
            # daemon's thread and its writer
            "switches": {t: {"bare": statistics.median(runs.bare_switches[t]),
                             "sim": statistics.median(runs.sim_switches[t])} for t in SIM_THREADS},
            "stages_ms": stages, "peak_rss_mb": runs.peak_rss, "rss": rss, "errors": runs.errors,
            "messages": _capture_messages(clip)}


def _chosen(fps: dict[str, list[float]], round_: int) -> str:
    """The faster setting by the median of every round but ``round_`` (all of them
    when there is only the one)."""
    def others(runs: list[float]) -> list[float]:
        return runs[:round_] + runs[round_ + 1:] or runs
    return max(fps, key=lambda setting: statistics.median(others(fps[setting])))


class _Runs:
    """Timed decodes of one clip: fps and CPU ms a picture per thread setting, and
    what the sim runs saw (errors, pictures missing, parked buffers, peak RSS)."""

    def __init__(self, clip: Clip) -> None:
        self.clip = clip
        self.bare_fps: dict[str, list[float]] = {t: [] for t in BARE_THREAD_TYPES}
        self.sim_fps: dict[str, list[float]] = {t: [] for t in SIM_THREADS}
        self.bare_cpu: dict[str, list[float]] = {t: [] for t in BARE_THREAD_TYPES}
        self.sim_cpu: dict[str, list[float]] = {t: [] for t in SIM_THREADS}
        self.bare_switches: dict[str, list[float]] = {t: [] for t in BARE_THREAD_TYPES}
        self.sim_switches: dict[str, list[float]] = {t: [] for t in SIM_THREADS}
        self.parked = dict.fromkeys(SIM_THREADS, 0)  # CAPTURE buffers parked at once, at most
        self.peak_rss = 0.0
        self.errors = 0
        self.requests_per_picture = 1.0   # more with hidden frames: each is a request

    def bare(self, thread_type: str) -> float:
        clock = DecodeClock()
        n, seconds, cpu_seconds = bare_decode(self.clip, thread_type, clock=clock)
        self.bare_cpu[thread_type].append(1e3 * cpu_seconds / max(n, 1))
        self.bare_switches[thread_type].append(clock.switches / max(n, 1))
        self.bare_fps[thread_type].append(n / seconds)
        return n / seconds

    def sim(self, threads: str) -> float:
        reset_peak_rss()
        n, seconds, stats = sim_decode(self.clip, threads=threads)
        self.sim_cpu[threads].append(1e3 * stats["cpu_seconds"] / max(n, 1))
        self.sim_switches[threads].append(stats["switches"] / max(n, 1))
        self.peak_rss = max(self.peak_rss, peak_rss_mb())
        self.errors += stats["errors"] + abs(self.clip.frames - n)
        self.parked[threads] = max(self.parked[threads], stats["parked_max"])
        self.requests_per_picture = stats.get("done", n) / max(n, 1)
        self.sim_fps[threads].append(n / seconds)
        return n / seconds


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """The distribution-free interval of the median: the k-th smallest and k-th
    largest value, with k as large as the binomial distribution allows for
    ``confidence`` (for 12 values the 3rd and the 10th, 96 %).  None with too few
    values for any interval (under 6 for 95 %)."""
    from math import comb

    n = len(values)
    ordered = sorted(values)
    for k in range(n // 2, 0, -1):
        outside = 2 * sum(comb(n, i) for i in range(k)) / 2 ** n
        if 1 - outside >= confidence:
            return ordered[k - 1], ordered[n - k]
    return None


def rss_growth(clip: Clip, warmup: int, frames: int, threads: str = "SLICE") -> dict:
    """RSS after ``warmup`` pictures, then over ``frames`` more (the clip looped),
    all read while the decoder is open (once it closes, its buffers are freed)."""
    samples: list[float] = []
    marks = {}

    def on_picture(n: int) -> None:
        if n == warmup:
            marks["start"] = rss_mb()
        elif n > warmup and ((n - warmup) % 50 == 0 or n == warmup + frames):
            samples.append(rss_mb())

    n, _, stats = sim_decode(clip, loops=None, limit=warmup + frames, on_picture=on_picture,
                             threads=threads)
    end = samples[-1] if samples else rss_mb()
    start = marks.get("start", end)
    return {"frames": n - warmup, "warmup": warmup, "start_mb": start, "end_mb": end,
            "max_mb": max(samples + [end]), "growth_mb": end - start, "errors": stats["errors"]}


def run(s: Settings, progress: Callable[[str], None] = lambda line: None) -> dict:
    from . import pixels  # noqa: F401 - fail early if the native helpers are missing
    from .heap import keep_freed_memory

    # For both paths, as the commands do: otherwise a picture's 3 MB page-faults in some
    # runs and not in others, and that, not decoding, decides which path is faster
    heap_fixed = keep_freed_memory()

    report = {"settings": {k: (str(v) if isinstance(v, pathlib.Path) else v)
                           for k, v in asdict(s).items()},
              "machine": machine() | {"malloc_thresholds_fixed": heap_fixed},
              "targets": TARGETS, "codecs": {}}
    samples: dict[str, object] = {}
    start = time.perf_counter()
    for codec in s.codecs:
        result = bench_codec(codec, s, progress)
        samples.update(result.pop("messages"))
        report["codecs"][codec] = result
    progress("packing and protocol micro-benchmarks")
    clip = load_clip(s.codecs[0], s.frames, s.width, s.height, s.cache)
    report["packing"] = packing_bench(first_frame(clip), s.micro_repeat)
    report["protocol"] = protocol_bench(samples, s.micro_repeat)
    if s.hw:
        progress("hw path: the kernel rig (scripts/vm-run, QEMU TCG)")
        report["hw"] = hw_in_rig(s.codecs, s.frames, s.width, s.height, s.cache)
    else:
        report["hw"] = None
    report["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
    report["seconds"] = time.perf_counter() - start
    report["verdict"] = verdict(report)
    return report


def verdict(report: dict) -> dict[str, bool]:
    """Each target of the issue, held or not (printed, never asserted)."""
    t = report["targets"]
    out = {}
    for codec, r in report["codecs"].items():
        out[f"{codec}: sim/bare >= {t['ratio']}"] = r["ratio"] >= t["ratio"]
        out[f"{codec}: sim >= {t['fps']:.0f} fps"] = r["sim_fps"] >= t["fps"]
        out[f"{codec}: RSS growth < {t['rss_growth_mb']:.0f} MB"] = \
            r["rss"]["growth_mb"] < t["rss_growth_mb"]
        out[f"{codec}: decode order kept, nothing lost"] = r["errors"] == 0
    for name, p in report.get("packing", {}).items():
        out[f"pack {name} >= {t['pack_speedup']:.0f}x reformat+copy"] = p["speedup"] >= t["pack_speedup"]
        out[f"pack {name} < {t['pack_ms']:.0f} ms"] = p["pack_ms"] < t["pack_ms"]
    return out


def format_report(report: dict) -> str:
    s, m = report["settings"], report["machine"]
    lines = [f"daedalus-v4l2 bench ({s['mode']}): {s['width']}x{s['height']}, "
             f"{s['frames']} frames a clip, median of {s['repeat']} round(s); "
             f"{m['cpus']} CPUs ({m['cpu']}), load average {m['load_before'][0]:.2f} before, "
             f"{m['load_after'][0]:.2f} after; PyAV {m['pyav']}, libavcodec {m['libavcodec']}; "
             + ("glibc malloc thresholds fixed for both paths (heap.py)"
                if m.get("malloc_thresholds_fixed") else "malloc thresholds left as they were"),
             ""]
    hw = report.get("hw") or {}
    head = (f"{'codec':<6}{'bare fps':>10}{'(threads)':>11}{'bare SLICE':>11}{'sim fps':>9}"
            f"{'(threads)':>11}{'sim SLICE':>10}{'sim FRAME':>10}"
            f"{'sim/bare':>9}{'sim/SLICE':>10}{'hw fps':>9}{'peak RSS':>10}{'RSS growth':>12}")
    lines += [head, "-" * len(head)]
    for codec, r in report["codecs"].items():
        h = hw.get(codec) if hw else None
        hw_text = "-" if not h else (f"{h['fps']:.1f}" if "fps" in h else "error")
        lines.append(f"{codec:<6}{r['bare_best_fps']:>10.1f}{r['bare_best']:>11}"
                     f"{r['bare_slice_fps']:>11.1f}{r['sim_fps']:>9.1f}{r['sim_best']:>11}"
                     f"{r['sim_fps_by_threads']['SLICE']:>10.1f}"
                     f"{r['sim_fps_by_threads']['FRAME']:>10.1f}{r['ratio']:>9.3f}"
                     f"{r['ratio_slice']:>10.3f}"
                     f"{hw_text:>9}{r['peak_rss_mb']:>8.0f}MB"
                     f"{r['rss']['growth_mb']:>+8.1f}MB/{r['rss']['frames']}f")
    lines.append("  (bare: PyAV alone, reformat to NV12/P010, planes copied only if padded, the "
                 "faster of SLICE and FRAME threads (AV1: libdav1d "
                 "with max_frame_delay 1 or its own); sim: pictures borrowed from CAPTURE, the "
                 "daemon in its own thread, with "
                 "slice threads and a client 2 deep or frame threads and a client 6 deep, the "
                 "faster; sim/bare: the median over the rounds of each round's sim run "
                 "against its bare run, each path's faster setting chosen on the other rounds; "
                 "sim/SLICE: medians, both with slice threads; fps and CPU counted from the "
                 "first packet to the last picture, each path's stack already open: bare's "
                 "file opened and probed, sim's device opened)")
    lines += ["", "sim/bare run by run, and CPU time a picture (the whole process, every thread; "
                  "median) with the same threads on both paths, and context switches a picture "
                  "(every thread's; bare / sim):"]
    for codec, r in report["codecs"].items():
        cpu = "; ".join(
            f"{t} bare {c['bare']:.2f} ms, sim {c['sim']:.2f} ms "
            f"({c['sim'] - c['bare']:+.2f} ms, {100 * (c['sim'] / c['bare'] - 1):+.0f} %; "
            f"context switches {r['switches'][t]['bare']:.1f} / {r['switches'][t]['sim']:.1f})"
            for t, c in r["cpu_ms"].items())
        interval = ("too few rounds for a 95 % interval" if r["ratio_interval"] is None else
                    "95 % interval {:.3f} .. {:.3f}".format(*r["ratio_interval"]))
        lines.append(f"  {codec:<5} sim/bare {' '.join(f'{x:.3f}' for x in r['ratio_runs'])} "
                     f"(median {r['ratio']:.3f}, {interval}; ratio of "
                     f"the medians {r['ratio_of_medians']:.3f}); {r['requests_per_picture']:.2f} "
                     f"requests a picture; CPU {cpu}")
    lines += ["", "sim path with its faster threads, ms per picture by stage (one instrumented "
                  "run with the daemon inline, so that the stages add up; wall time, then the "
                  "main thread's CPU time):"]
    names = list(STAGES) + ["transport", "overhead", "total"]
    head = f"{'codec':<11}" + "".join(f"{n:>11}" for n in names)
    lines += [head, "-" * len(head)]
    for prefix, what in (("", "wall"), ("cpu_", "cpu")):
        for codec, r in report["codecs"].items():
            lines.append(f"{codec + ' ' + what:<11}"
                         + "".join(f"{r['stages_ms'][prefix + n]:>11.2f}" for n in names))
    lines.append("  (transport = sim kernel + protocol; client = pipeline, codec parsing and "
                 "syscall marshalling; unpack = the client's copy to a tight picture, padded rows only; overhead = "
                 "total - libavcodec - unpack, what the emulated device adds; libavcodec's CPU "
                 "time is the calling thread's share only)")
    lines += ["", "packing one 1080p picture into a CAPTURE buffer (median ms):"]
    for name, p in report.get("packing", {}).items():
        loops = f" ({p['simd']} loops)" if "simd" in p else ""
        lines.append(f"  {name} from {p['source']}{loops}: pack_frame {p['pack_ms']:.3f}, with digest "
                     f"{p['pack_digest_ms']:.3f} (digest alone {p['digest_ms']:.3f}); PyAV "
                     f"reformat+copy {p['reformat_copy_ms']:.3f}: {p['speedup']:.1f}x faster "
                     f"({p['speedup_with_digest']:.1f}x with the digest)")
    lines += ["", "protocol, per message (median):"]
    for name, p in report.get("protocol", {}).items():
        lines.append(f"  {name:<31} {p['bytes']:>8} bytes  encode {p['encode_us']:6.1f} us  "
                     f"parse {p['parse_us']:6.1f} us")
    if hw:
        lines += ["", "hw path (kernel rig, QEMU TCG emulation: reported, not a target):"]
        for codec, h in hw.items():
            lines.append(f"  {codec}: " + (f"{h['fps']:.2f} fps over {h['frames']} frames"
                                          if "fps" in h else h.get("error", "?")))
    lines += ["", "targets:"]
    for what, ok in report["verdict"].items():
        lines.append(f"  [{'ok' if ok else 'MISS'}] {what}")
    lines.append(f"\n{report['seconds']:.0f} s")
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line

def add_arguments(parser) -> None:
    parser.add_argument("--short", action="store_true",
                        help=f"CI mode: {SHORT['frames']}-frame clips, one round, "
                             f"{SHORT['rss_frames']} frames for RSS (under two minutes)")
    parser.add_argument("--codecs", type=argtypes.choices_list(CODECS), default=CODECS,
                        metavar="LIST", help="comma-separated, from vp9,h264,av1 (default: all)")
    parser.add_argument("--frames", type=argtypes.positive, metavar="N", help="frames a clip "
                        f"(default {FULL['frames']}, short {SHORT['frames']})")
    parser.add_argument("--repeat", type=argtypes.positive, metavar="N",
                        help=f"rounds of every thread setting of both paths; medians and the "
                             f"median of the rounds' sim/bare are reported (default "
                             f"{FULL['repeat']}, short {SHORT['repeat']})")
    parser.add_argument("--rss-frames", type=argtypes.positive, metavar="N",
                        help=f"frames after warm-up for RSS growth (default {FULL['rss_frames']}, "
                             f"short {SHORT['rss_frames']})")
    parser.add_argument("--warmup", type=argtypes.non_negative, metavar="N",
                        help=f"frames before the RSS baseline (default {FULL['warmup']}, "
                             f"short {SHORT['warmup']})")
    parser.add_argument("--size", type=argtypes.size, default=(WIDTH, HEIGHT), metavar="WxH",
                        help=f"of the clips (default {WIDTH}x{HEIGHT}; each encoder has its own "
                             "smallest)")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help=f"where clips are cached (default ${CACHE_ENV} or "
                             "~/.cache/daedalus-v4l2/bench)")
    parser.add_argument("--hw", action="store_true",
                        help="also decode in the kernel rig's VM (scripts/vm-run; slow: TCG)")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON ('-': stdout)")
    parser.add_argument("--hw-guest", action="store_true", help=argparse_suppress())


def argparse_suppress():
    import argparse
    return argparse.SUPPRESS


def rounds_script_args(doc: str, argv: list[str] | None, rounds: int = 6):
    """The options of the benchmarks/ scripts that decode a clip a codec in rounds
    against bare PyAV: ``codecs`` (a tuple), ``frames``, ``rounds``, ``size`` (as
    WxH) and ``wh`` (width, height)."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codecs", type=argtypes.choices_list(CODECS), default=CODECS,
                        help="comma-separated (default: all)")
    parser.add_argument("--frames", type=argtypes.positive, default=FULL["frames"],
                        help=f"frames a clip (default {FULL['frames']})")
    parser.add_argument("--rounds", type=argtypes.positive, default=rounds,
                        help=f"rounds (default {rounds})")
    parser.add_argument("--size", type=argtypes.size, default=(WIDTH, HEIGHT), metavar="WxH")
    args = parser.parse_args(argv)
    args.wh, args.size = args.size, "x".join(map(str, args.size))
    return args


def main_args(args) -> int:
    codecs = args.codecs
    width, height = args.size
    directory = pathlib.Path(args.cache_dir) if args.cache_dir else None
    if args.hw_guest:
        return hw_guest_main(codecs, args.frames or FULL["frames"], width, height,
                             directory or cache_dir())
    s = Settings.for_mode(args.short, codecs=codecs, frames=args.frames, repeat=args.repeat,
                          rss_frames=args.rss_frames, warmup=args.warmup, width=width,
                          height=height, hw=args.hw, cache=directory)
    to_stdout = args.json == "-"
    say = (lambda line: print(line, file=sys.stderr, flush=True))
    report = run(s, say)
    text = format_report(report)
    print(text, file=sys.stderr if to_stdout else sys.stdout, flush=True)
    if args.json:
        data = json.dumps(report, indent=2, default=str)
        if to_stdout:
            print(data)
        else:
            pathlib.Path(args.json).write_text(data + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="daedalus-v4l2 bench", description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="bench: %(message)s")
    return main_args(args)
