"""The ``daedalus-v4l2`` command."""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import stat
import sys
import threading
from pathlib import Path

from . import __version__
from .argtypes import non_negative_number, positive, size

PROG = "daedalus-v4l2"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A V4L2 stateless video decoder whose decoding runs in a userspace daemon, "
                    "with a simulated kernel side (the sim backend) for machines without the module.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log more (-v: info, -vv: debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="encode a short VP9 clip, decode it through the simulated "
                                       "device, and check it is bit-exact")
    demo.add_argument("--frames", type=positive, default=60, help="clip length (default 60)")
    demo.add_argument("--size", type=size, default=(352, 288), help="WIDTHxHEIGHT (default 352x288)")
    demo.add_argument("--keep", metavar="DIR", help="keep the generated clip in DIR")
    demo.add_argument("--tui", action="store_true",
                      help="watch queues and in-flight buffers live, looping the clip until q")
    demo.add_argument("--fps", type=non_negative_number, default=30, metavar="N",
                      help="with --tui: feed N frames a second (default 30; 0: as fast as it goes)")

    dec = sub.add_parser("decode", help="decode a file through the decoder to raw NV12 or P010 frames",
                         description="Decode the first video stream of INPUT through the V4L2 "
                                     "stateless decoder and write its frames in display order, "
                                     "tightly packed: NV12 for 8-bit streams (like ffmpeg -f "
                                     "rawvideo -pix_fmt nv12), P010 little-endian for 10-bit "
                                     "streams (like ffmpeg -f rawvideo -pix_fmt p010le).")
    dec.add_argument("input", metavar="INPUT", help="IVF, WebM/MKV or MP4 file (VP9, H.264, AV1)")
    dec.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                     help="raw NV12 (8-bit) or P010LE (10-bit) output file ('-': standard "
                          "output, when it is not a terminal)")
    dec.add_argument("--backend", choices=("sim", "hw"), default="sim",
                     help="sim: simulated kernel and daemon in this process (default); "
                          "hw: the daedalus_v4l2 kernel module, with the daemon running")
    dec.add_argument("--device", metavar="PATH", help="video node for --backend hw (/dev/videoN)")
    dec.add_argument("--media", metavar="PATH", help="media node for --backend hw (/dev/mediaN)")
    dec.add_argument("--depth", type=positive, default=2,
                     help="requests in flight before waiting for a picture (default 2)")
    dec.add_argument("--threads", choices=("slice", "frame"), default="slice",
                     help="the sim daemon's libavcodec threads: slice (default) or frame, "
                          "faster with --depth 4 or more (with --backend hw, set it on the "
                          "daemon)")
    dec.add_argument("--sim-daemon", choices=("thread", "inline"), default="thread",
                     help="where the sim runs its daemon: in a thread of its own, decoding "
                          "while the client works and writing each picture while it decodes "
                          "the next (default); or inline in the client's thread, one "
                          "message at a time: the same run every time")
    dec.add_argument("-q", "--quiet", action="store_true", help="no progress or summary")
    dec.add_argument("--tui", action="store_true",
                     help="watch queues and in-flight buffers live (sim backend, decoding in "
                          "a child process; q quits)")

    daemon = sub.add_parser("daemon", help="run the decoder daemon on the kernel module's chardev")
    daemon.add_argument("--backend", choices=("hw",), default="hw",
                        help="hw: /dev/daedalus-v4l2 (the sim backend runs its daemon in-process)")
    daemon.add_argument("--chardev", default="/dev/daedalus-v4l2", metavar="PATH")
    daemon.add_argument("--wait", type=non_negative_number, default=0, metavar="SECONDS",
                        help="wait up to SECONDS for the module's nodes to appear (after insmod)")
    daemon.add_argument("--state-socket", metavar="PATH", default=None,
                        help="publish the daemon's state here for `tui` (default "
                             "$DAEDALUS_V4L2_STATE_SOCKET or /run/daedalus-v4l2/state.sock)")
    daemon.add_argument("--no-state-socket", action="store_true", help="do not publish state")
    daemon.add_argument("--threads", choices=("slice", "frame"), default="slice",
                        help="libavcodec threads: slice (default: every picture back before "
                             "the next request) or frame (several pictures at once while "
                             "clients keep requests queued: faster for clients that queue "
                             "several requests ahead)")
    daemon.add_argument("--write-behind", action=argparse.BooleanOptionalAction, default=True,
                        help="copy each picture into its CAPTURE buffer in a thread of its "
                             "own while libavcodec decodes the next request, the module "
                             "sending that request meanwhile (default: on)")

    tui = sub.add_parser("tui", help="watch a running hw daemon: debugfs and the daemon's socket")
    tui.add_argument("--debugfs", default="/sys/kernel/debug/daedalus_v4l2", metavar="DIR",
                     help="the module's debugfs directory (default %(default)s)")
    tui.add_argument("--socket", metavar="PATH", default=None,
                     help="the daemon's state socket (default as for `daemon --state-socket`)")

    devs = sub.add_parser("devices", help="list the module's video, media and chardev nodes",
                          description="List the daedalus_v4l2 module's /dev/videoN, /dev/mediaN and "
                                      "/dev/daedalus-v4l2 nodes (found in sysfs with pyudev), their "
                                      "owner, mode and symlinks. Exit status 1 when there are none.")
    devs.add_argument("--json", action="store_true", help="machine-readable output")

    bench = sub.add_parser("bench", help="1080p decode speed: bare PyAV against the sim path "
                                         "(and the kernel rig with --hw), by stage, RSS",
                           description="Decode 1080p VP9, H.264 and AV1 clips (cached in "
                                       "~/.cache/daedalus-v4l2/bench) with bare PyAV and through "
                                       "the whole simulated device, and report fps, sim/bare, CPU "
                                       "and context switches a picture, ms per picture by stage, "
                                       "RSS, packing and protocol costs.")
    from .bench import add_arguments as _bench_arguments
    _bench_arguments(bench)

    sub.add_parser("doctor", help="check module, nodes, permissions, daemon and codecs; say what to fix",
                   description="Check that this machine can decode through daedalus-v4l2 and say "
                               "what to fix. Exit status 1 when something is wrong.")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    journal = _setup_logging(level)
    if args.command in ("demo", "decode", "bench"):
        # a 3 MB picture reuses freed memory, not fresh pages (heap.py); not the long-running
        # daemon, whose pictures go straight into CAPTURE buffers and which should give
        # memory back between streams
        from .heap import keep_freed_memory
        keep_freed_memory()
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    except (OSError, ValueError) as exc:
        # Our errors subclass these builtins; anything else is a bug and shows its traceback.
        print(f"{'<3>' if journal else ''}{PROG}: error: {exc}", file=sys.stderr)
        return 1


def _setup_logging(level: int) -> bool:
    """Journal-friendly lines (``<6>name: message``) when stderr is systemd's
    journal stream; the usual ``prog: LEVEL: message`` otherwise."""
    from .sdnotify import JournalFormatter, journal_stream_is_stderr

    if not journal_stream_is_stderr():
        logging.basicConfig(level=level, format=f"{PROG}: %(levelname)s: %(message)s")
        return False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter())
    logging.basicConfig(level=level, handlers=[handler])
    return True


def cmd_demo(args) -> int:
    from . import demo
    if args.tui:
        return demo.main_tui(args.frames, *args.size, args.keep, args.fps)
    return demo.main(args.frames, *args.size, args.keep, sys.stdout)


def cmd_decode(args) -> int:
    from . import container
    from .backends_runtime import open_decoder
    from .decode import capture_format_for, decode_through
    from .progress import Progress
    from .threads import batch_scheduling

    if _is_a_terminal(args.output):
        # raw pictures are megabytes of binary: on a terminal they are garbage (and with
        # --tui they would land on the screen the app draws on), as gzip refuses too
        print(f"{PROG}: error: refusing to write raw pictures to a terminal "
              f"({'standard output' if args.output == '-' else args.output}): redirect "
              f"standard output, or give a file with -o", file=sys.stderr)
        return 2
    if args.tui:
        return _decode_tui(args)
    if args.backend == "hw" and args.threads != "slice":
        print(f"{PROG}: error: --threads is the daemon's with --backend hw: run "
              f"`{PROG} daemon --threads {args.threads}`", file=sys.stderr)
        return 2
    info = container.probe(args.input)
    progress = Progress(info.frames) if not args.quiet else None
    written = failed = 0
    out = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")
    try:
        # the daemon's threads started first: they do not inherit the client's policy
        with open_decoder(args.backend, args.device, args.media,
                          daemon_options=_daemon_threads(args.threads),
                          daemon_thread=args.sim_daemon == "thread") as opened, \
                batch_scheduling(args.backend == "sim"):
            for picture in decode_through(opened.decoder, info.codec, info.width, info.height,
                                          container.packets(args.input), depth=args.depth,
                                          capture_format=capture_format_for(info.pix_fmt),
                                          borrow=True):
                if picture.data is None:
                    failed += 1
                    what = f"packet {picture.packet}" if picture.packet else f"frame {picture.number}"
                    print(f"{PROG}: {what}: {picture.error}", file=sys.stderr)
                else:
                    out.write(picture.data)
                    written += 1
                if progress:
                    progress.update()
    finally:
        if out is not sys.stdout.buffer:
            out.close()
        if progress:
            progress.close()
    if not args.quiet:
        print(f"{PROG}: {written} frames written to {args.output}"
              + (f", {failed} failed" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


def _is_a_terminal(output: str) -> bool:
    """``-o`` names a terminal: standard output on one, or a tty device (/dev/tty)."""
    if output == "-":
        return sys.stdout.isatty()
    try:
        if not stat.S_ISCHR(os.stat(output).st_mode):
            return False
        fd = os.open(output, os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return False        # not there yet, or not writable: decode says so when it opens it
    try:
        return os.isatty(fd)
    finally:
        os.close(fd)


def _decode_tui(args) -> int:
    if args.backend != "sim":
        print(f"{PROG}: error: --tui decodes through the sim backend; to watch the hw module "
              f"and its daemon, run `{PROG} tui`", file=sys.stderr)
        return 2
    from .tui.run import run_app, sim_source_for_file

    output = Path(args.output)
    if args.output != "-" and (output.is_file() or not output.exists()):
        # a path that cannot be written fails here, not in the child (a FIFO is left
        # alone: opening it would wait for its reader)
        open(output, "wb").close()
    source = sim_source_for_file(args.input, loop=False, pace_fps=None, depth=args.depth,
                                 output=args.output, daemon_options=_daemon_threads(args.threads))
    code = run_app(source)
    return 1 if code or source.failed_pictures or source.error else 0


def _daemon_threads(name: str) -> dict:
    from .threads import THREADS
    return THREADS[name]


def cmd_tui(args) -> int:
    from .state_socket import default_socket_path
    from .tui.hw_source import HwSource
    from .tui.run import run_app
    return run_app(HwSource(args.debugfs, args.socket or default_socket_path()))


def cmd_daemon(args) -> int:
    from .daemon import Daemon
    from .transport import load_backend

    hw = load_backend(args.backend)
    if args.wait:
        hw.wait_for_nodes(args.wait)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    _warm_up()
    with hw.HwTransport(args.chardev) as transport:
        logging.getLogger(PROG).info("daemon attached to %s (pid %d; pictures written %s)",
                                     args.chardev, os.getpid(),
                                     "behind" if args.write_behind else "in place")
        with _state_server(args) as recorder:
            daemon = Daemon(transport, observer=recorder, write_behind=args.write_behind,
                            **_daemon_threads(args.threads))
            stopping = _notify_systemd(daemon, transport, stop)
            try:
                daemon.run(stop)
            finally:
                daemon.close()
                stopping()
    return 0


def _warm_up() -> None:
    """Pay the first stream's one-time cost before attaching: the search for
    daedalus-fourier's library (ctypes.util.find_library runs ldconfig and
    gcc). On a cold machine -- the rig's TCG guest, a Pi just booted -- it took
    longer than the module's watchdog (2 s), so a first frame failed."""
    from . import dispatch
    try:
        dispatch.load_fourier()
    except Exception as exc:  # noqa: BLE001 -- only a warm-up; the first stream reports it
        logging.getLogger(PROG).debug("warm-up: %s", exc)


@contextlib.contextmanager
def _state_server(args):
    """The daemon's state on a local socket for `tui` (daedalus_v4l2.state_socket)."""
    if args.no_state_socket:
        yield None
        return
    from .state_socket import StateRecorder, StateServer, default_socket_path
    recorder = StateRecorder()
    path = args.state_socket or default_socket_path()
    with StateServer(path, recorder):
        logging.getLogger(PROG).info("state published on %s", path)
        yield recorder


STATUS_INTERVAL = 2.0


def _daemon_status(daemon, transport) -> str:
    """The STATUS= line: streams and queue depths (requests inside the decoder, parked)."""
    sessions = list(daemon.sessions.values())
    pending = sum(len(getattr(s, "_pending", ())) for s in sessions)
    parked = sum(getattr(s, "parked", 0) for s in sessions)
    st = daemon.stats
    return (f"{len(sessions)} streams; in decoder {pending} (parked {parked}); "
            f"requests {st.requests}, pictures {st.pictures}, errors {st.errors}; "
            f"messages in {transport.stats.received}, out {transport.stats.sent}")


def _notify_systemd(daemon, transport, stop: threading.Event):
    """READY=1 now (the chardev is open), then STATUS= every few seconds from a
    thread; returns the function that says STOPPING=1."""
    from .sdnotify import Notifier

    notifier = Notifier()
    if not notifier.enabled:
        return lambda: None
    notifier.ready(_daemon_status(daemon, transport))

    def loop() -> None:
        while not stop.wait(STATUS_INTERVAL):
            try:
                notifier.status(_daemon_status(daemon, transport))
            except RuntimeError:  # a session dict changed under us: next time
                continue

    threading.Thread(target=loop, name="sd-notify", daemon=True).start()
    return notifier.stopping


def cmd_devices(args) -> int:
    from . import devices
    return devices.main(as_json=args.json)


def cmd_doctor(args) -> int:
    from . import doctor
    return doctor.main()


def cmd_bench(args) -> int:
    from . import bench
    return bench.main_args(args)


COMMANDS = {"demo": cmd_demo, "decode": cmd_decode, "daemon": cmd_daemon, "bench": cmd_bench,
            "devices": cmd_devices, "doctor": cmd_doctor, "tui": cmd_tui}
