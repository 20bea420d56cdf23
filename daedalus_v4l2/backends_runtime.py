"""Opening a decoder on a backend: what ``--backend sim|hw`` means to the client side.

sim: a fresh simulated kernel in this process with the daemon attached to
     its chardev, so one command runs the whole stack.  The daemon reads the
     chardev in a thread of its own, as on a Pi where it is a process of its
     own; ``daemon_thread=False`` runs it inline instead, in the caller's thread
     and deterministically (on 2 cores not clearly slower: see README, Performance).
hw:  the real /dev/videoN and /dev/mediaN of the daedalus_v4l2 module; the
     daemon runs separately (``daedalus-v4l2 daemon --backend hw``).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from .daemon import Daemon
from .errors import DeviceError
from .transport import load_backend
from .v4l2.client import StatelessDecoder
from .v4l2.syscalls import OsSyscalls


@dataclass
class OpenedDecoder:
    decoder: StatelessDecoder | None   # None only while open_decoder builds the sim
    kernel: object | None = None   # the SimKernel, for the sim backend
    daemon: Daemon | None = None   # the in-process daemon, for the sim backend
    daemon_thread: object | None = None  # its thread (backends/sim/daemon_thread.py), if any


@contextlib.contextmanager
def open_decoder(backend: str, device: str | None = None, media: str | None = None,
                 daemon_options: dict | None = None, daemon_thread: bool = True,
                 **sim_options) -> Iterator[OpenedDecoder]:
    module = load_backend(backend)
    if backend != "sim":
        video, media = _hw_nodes(module, device, media)
        opened = OpenedDecoder(StatelessDecoder(OsSyscalls(), video, media))
        try:
            yield opened
        finally:
            opened.decoder.close()
        return
    # as the module by default: no digests asked for (nothing reads them; they cost
    # the daemon more than the copy into CAPTURE)
    kernel = module.SimKernel(**{"digest": False, **sim_options})
    # a daemon in its own thread writes pictures behind (writer.py), as the hw daemon does
    options = {"write_behind": daemon_thread, **(daemon_options or {})}
    if options["write_behind"] and not daemon_thread:
        # stepped inline, the daemon runs under the kernel's lock, which its writer needs
        raise ValueError("write_behind needs the daemon in a thread of its own (daemon_thread=True)")
    daemon = Daemon(kernel.open_chardev(), **options)
    opened = OpenedDecoder(None, kernel, daemon)
    try:
        if daemon_thread:
            opened.daemon_thread = module.DaemonThread(kernel, daemon).start()
        else:
            kernel.attach_daemon(daemon.step)
        opened.decoder = StatelessDecoder(kernel.syscalls(), kernel.video_path, kernel.media_path)
        yield opened
    finally:
        _close_sim(opened)


def _close_sim(opened: OpenedDecoder) -> None:
    # The daemon thread first, so that it does not race the close: a client that stops
    # early (a limit, Ctrl+C) would cancel the job in the daemon's hands, and its mmap
    # of that job's CAPTURE buffer would be refused with a warning.
    stopped = opened.daemon_thread is None or opened.daemon_thread.stop()
    if opened.decoder is not None:
        opened.decoder.close()
    opened.daemon.transport.close()
    if stopped:     # a thread still decoding keeps its sessions: closing them under it would crash
        opened.daemon.close()


def _hw_nodes(module, device, media):
    if device and media:
        return device, media
    find = getattr(module, "find_nodes", None)
    if find is None:
        raise DeviceError(0, "the hw backend cannot discover devices yet: "
                             "give --device /dev/videoN and --media /dev/mediaN")
    nodes = find()
    return device or nodes.video, media or nodes.media
