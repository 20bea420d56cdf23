"""Seed inputs: the real DECODE messages of short generated VP9, H.264 and AV1
clips, recorded at the daemon's end of the simulated chardev.  Cached in
$DAEDALUS_CACHE/fuzz-seeds (default ~/.cache/daedalus-v4l2/fuzz-seeds)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from daedalus_v4l2 import proto

log = logging.getLogger(__name__)
CACHE = Path(os.environ.get("DAEDALUS_CACHE", Path.home() / ".cache" / "daedalus-v4l2")) / "fuzz-seeds"
CLIPS = {"vp9": ".ivf", "h264": ".mp4", "av1": ".ivf"}
FRAMES = 6


def record(clip: Path) -> list[bytes]:
    """The raw kernel->daemon DECODE messages of decoding ``clip`` on the sim backend."""
    from daedalus_v4l2 import container
    from daedalus_v4l2.backends_runtime import open_decoder
    from daedalus_v4l2.decode import decode_through

    info = container.probe(clip)
    seen: list[bytes] = []
    # inline: the spy below sees every message (a daemon thread could already be
    # inside a read when it is put in place), and the seeds are the same every time
    with open_decoder("sim", daemon_thread=False) as opened:
        transport = opened.daemon.transport
        inner = transport._recv_internal

        def spy(timeout):
            data = inner(timeout)
            if data is not None:
                seen.append(bytes(data))
            return data
        transport._recv_internal = spy
        for _ in decode_through(opened.decoder, info.codec, info.width, info.height,
                                container.packets(clip)):
            pass
    return [m for m in seen if proto.parse_header(m).type == proto.MSG_DECODE]


def decode_messages(directory: Path = CACHE) -> list[bytes]:
    """Seeds from the cache, made on first use; codecs without an encoder are left out."""
    from daedalus_v4l2.synth import make_clip

    directory.mkdir(parents=True, exist_ok=True)
    out: list[bytes] = []
    for codec, suffix in CLIPS.items():
        files = sorted(directory.glob(f"{codec}-*.bin"))
        if not files and not (directory / f"{codec}.none").exists():
            try:
                clip = make_clip(directory / f"{codec}{suffix}", codec, 64, 48, FRAMES)
                messages = record(clip)
            except Exception as exc:  # no encoder for this codec here: fuzz the others
                log.warning("no %s seeds: %s", codec, exc)
                (directory / f"{codec}.none").write_text(str(exc))
                continue
            for i, m in enumerate(messages):
                (directory / f"{codec}-{i:02d}.bin").write_bytes(m)
            files = sorted(directory.glob(f"{codec}-*.bin"))
        out += [f.read_bytes() for f in files]
    return out


def write_corpus(target: str, directory: Path) -> None:
    """Starting inputs for an atheris run of ``target`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    seeds = decode_messages()
    for i, m in enumerate(seeds):
        body = proto.parse(m)
        if target in ("proto", "proto_fields"):
            data = m if target == "proto" else m[proto.HEADER_SIZE:]
        elif target in ("vp9", "h264", "av1"):
            data = bytes(body.bitstream) if proto.CODEC_NAMES.get(body.codec) == target else b""
        elif target == "controls_blob":
            data = proto.encode_controls(body.controls)
        elif target in ("daemon", "daemon_answers"):
            data = bytes([1 + i % 3]) + (i).to_bytes(2, "little") + bytes(16)
        else:
            data = b""
        if data:
            (directory / f"seed-{i:03d}").write_bytes(data)
