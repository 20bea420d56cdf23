"""The ``daedalus-v4l2`` command."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from . import __version__

PROG = "daedalus-v4l2"


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if not (16 <= w <= 4096 and 16 <= h <= 4096):
        raise argparse.ArgumentTypeError("sizes go from 16x16 to 4096x4096")
    return w, h


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


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
    demo.add_argument("--frames", type=_positive, default=60, help="clip length (default 60)")
    demo.add_argument("--size", type=_size, default=(352, 288), help="WIDTHxHEIGHT (default 352x288)")
    demo.add_argument("--keep", metavar="DIR", help="keep the generated clip in DIR")

    dec = sub.add_parser("decode", help="decode a file through the decoder to raw NV12 frames",
                         description="Decode the first video stream of INPUT through the V4L2 "
                                     "stateless decoder and write its frames in display order, "
                                     "tightly packed NV12 (like ffmpeg -f rawvideo -pix_fmt nv12).")
    dec.add_argument("input", metavar="INPUT", help="IVF, WebM/MKV or MP4 file (VP9)")
    dec.add_argument("-o", "--output", required=True, metavar="OUTPUT", help="raw NV12 output file ('-' for stdout)")
    dec.add_argument("--backend", choices=("sim", "hw"), default="sim",
                     help="sim: simulated kernel and daemon in this process (default); "
                          "hw: the daedalus_v4l2 kernel module, with the daemon running")
    dec.add_argument("--device", metavar="PATH", help="video node for --backend hw (/dev/videoN)")
    dec.add_argument("--media", metavar="PATH", help="media node for --backend hw (/dev/mediaN)")
    dec.add_argument("--depth", type=_positive, default=2,
                     help="requests in flight before waiting for a picture (default 2)")
    dec.add_argument("-q", "--quiet", action="store_true", help="no progress or summary")

    daemon = sub.add_parser("daemon", help="run the decoder daemon on the kernel module's chardev")
    daemon.add_argument("--backend", choices=("hw",), default="hw",
                        help="hw: /dev/daedalus-v4l2 (the sim backend runs its daemon in-process)")
    daemon.add_argument("--chardev", default="/dev/daedalus-v4l2", metavar="PATH")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format=f"{PROG}: %(levelname)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    except (OSError, ValueError) as exc:
        # Our errors subclass these builtins; anything else is a bug and shows its traceback.
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1


def cmd_demo(args) -> int:
    from . import demo
    return demo.main(args.frames, *args.size, args.keep, sys.stdout)


def cmd_decode(args) -> int:
    from . import container
    from .backends_runtime import open_decoder
    from .decode import decode_through
    from .progress import Progress

    info = container.probe(args.input)
    progress = Progress(info.frames) if not args.quiet else None
    written = failed = 0
    out = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")
    try:
        with open_decoder(args.backend, args.device, args.media) as opened:
            for picture in decode_through(opened.decoder, info.codec, info.width, info.height,
                                          container.packets(args.input), depth=args.depth):
                if picture.data is None:
                    failed += 1
                    print(f"{PROG}: frame {picture.number}: {picture.error}", file=sys.stderr)
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


def cmd_daemon(args) -> int:
    from .daemon import Daemon
    from .transport import load_backend

    backend = load_backend(args.backend)
    transport_cls = getattr(backend, "HwTransport", None)
    if transport_cls is None:
        raise OSError(0, "the hw backend's transport is not built yet (see the kernel module issue)")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with transport_cls(args.chardev) as transport:
        logging.getLogger(PROG).info("daemon attached to %s (pid %d)", args.chardev, os.getpid())
        Daemon(transport).run(stop)
    return 0


COMMANDS = {"demo": cmd_demo, "decode": cmd_decode, "daemon": cmd_daemon}
