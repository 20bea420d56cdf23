"""A bounded fuzzer of /dev/daedalus-v4l2, run as the daemon (the real one held off):
``python -m fuzz.chardev --seconds 20 [--seed N]`` in the rig's guest, as root.

A client thread keeps VP9 requests in flight so real cookies exist; the fuzzer
reads the DECODEs and writes random and mutated messages: random bytes, valid
headers with bad lengths, types, flags, planes, statuses and reasons, FRAMEs for
unknown, finished and real cookies (duplicates, plane_bytes past the buffer),
oversized writes, PING floods, and mmaps at random offsets and sizes.  Every
refusal must be the documented errno, and the module's counters must account
for each one: rejected_messages = EINVAL + EOVERFLOW writes + refused mmaps,
unknown_cookie = ENOENT writes and mmaps (a job not in flight), duplicate_response
= EALREADY.  Last, an mmap at a finished cookie (after the client's STREAMOFF)
must be ENOENT.  Prints one JSON summary line.
"""
from __future__ import annotations

import argparse
import errno
import json
import mmap
import os
import random
import select
import struct
import threading
import time

from daedalus_v4l2 import proto

CHARDEV = "/dev/daedalus-v4l2"
HDR = "<IHHIIQII"
CLIENT_START_TIMEOUT = 120.0
EXPECTED = {errno.EINVAL, errno.ENOENT, errno.EALREADY, errno.EOVERFLOW, errno.ENOSPC}


def frame(cookie, stream, flags=proto.FRAME_SRC_CONSUMED, **kw):
    return proto.encode(proto.FrameResponse(stream_id=stream, cookie=cookie, flags=flags, **kw))


class Fuzzer:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.fd = os.open(CHARDEV, os.O_RDWR | os.O_NONBLOCK)
        self.decodes: dict[int, proto.DecodeRequest] = {}
        self.finished: list[int] = []
        self.errnos: dict[str, int] = {}
        self.writes = self.mmaps = self.mmap_rejected = self.mmap_unknown = 0
        self.unexpected: list[str] = []

    def drain(self) -> None:
        while select.select([self.fd], [], [], 0)[0]:
            try:
                data = os.read(self.fd, 1 << 24)
            except BlockingIOError:
                return
            msg = proto.parse(data)
            if isinstance(msg, proto.DecodeRequest):
                self.decodes[msg.cookie] = msg

    def write(self, data: bytes, kind: str) -> None:
        self.writes += 1
        try:
            n = os.write(self.fd, data)
            assert n == len(data)
            code = 0
        except OSError as exc:
            code = exc.errno
            if code not in EXPECTED:
                self.unexpected.append(f"{kind}: {errno.errorcode.get(code, code)}")
        name = errno.errorcode.get(code, "OK") if code else "OK"
        self.errnos[name] = self.errnos.get(name, 0) + 1

    # ---- message makers
    def random_bytes(self):
        return self.rng.randbytes(self.rng.choice([0, 1, 31, 32, 33, 144, 145, self.rng.randrange(400)]))

    def bad_header(self):
        good = frame(self.rng.randrange(1 << 20), 1)
        fields = list(struct.unpack_from(HDR, good))
        i = self.rng.randrange(8)
        fields[i] = self.rng.choice([0, 1, 0xFFFF, 0xFFFFFFFF, self.rng.randrange(1 << 16)])
        try:
            head = struct.pack(HDR, *fields)
        except struct.error:
            head = good[:32]
        return head + good[32:]

    def real_cookie_frame(self):
        if not self.decodes:
            return frame(self.rng.randrange(1 << 40), 1)
        cookie = self.rng.choice(list(self.decodes))
        req = self.decodes[cookie]
        flags = self.rng.choice([proto.FRAME_SRC_CONSUMED, proto.FRAME_HAS_PIXELS,
                                 proto.FRAME_ERROR, proto.FRAME_SRC_CONSUMED | proto.FRAME_HAS_PIXELS,
                                 self.rng.randrange(1 << 32)])
        planes = self.rng.choice([[req.capture_size], [req.capture_size + 1], [0], [1 << 31],
                                  [1, 2, 3], []])
        stream = self.rng.choice([req.stream_id, req.stream_id, req.stream_id + 1])
        status = self.rng.choice([0, 0, -22, 5, -5000])
        try:
            data = frame(cookie, stream, flags & 0xFFFFFFFF, plane_bytes=planes,
                         status=status, reason=self.rng.choice(["", "fuzz", "x" * 80]))
        except Exception:  # noqa: BLE001 - an unencodable combination: send raw garbage
            data = self.random_bytes()
        if self.rng.random() < 0.2:   # truncated or padded
            data = data[:self.rng.randrange(len(data))] if self.rng.random() < 0.5 else data + b"\0" * 8
        if flags & (proto.FRAME_HAS_PIXELS | proto.FRAME_ERROR):
            self.finished.append(cookie)
        return data

    def unknown_cookie_frame(self):
        cookie = self.rng.choice([0, 2**64 - 1, self.rng.randrange(1 << 63), *self.finished[-3:]])
        return frame(cookie, 1, proto.FRAME_ERROR, reason="late")

    def oversized(self):
        return frame(1, 1) + self.rng.randbytes(self.rng.choice([8, 4096, 1 << 16]))

    def ping_flood(self):
        for _ in range(80):
            self.write(proto.encode(proto.Message(proto.MSG_PING, cookie=7)), "ping")
        return proto.encode(proto.Message(proto.MSG_PONG))

    def try_mmap(self):
        self.mmaps += 1
        cookies = list(self.decodes) or [1]
        offset = self.rng.choice([self.rng.choice(cookies), self.rng.randrange(1 << 30), 0]) \
            * mmap.PAGESIZE
        size = self.rng.choice([mmap.PAGESIZE, 1 << 20, 64 << 20])
        flags = self.rng.choice([mmap.MAP_SHARED, mmap.MAP_SHARED, mmap.MAP_PRIVATE])
        try:
            m = mmap.mmap(self.fd, size, flags, mmap.PROT_READ | mmap.PROT_WRITE, offset=offset)
        except OSError as exc:
            self.count_mmap_refusal(exc)
            if exc.errno not in (errno.EINVAL, errno.ENOENT, errno.ENOMEM, errno.EOVERFLOW):
                self.unexpected.append(f"mmap: {exc}")
            return
        m[:16] = b"fuzzfuzzfuzzfuzz"
        m.close()

    def count_mmap_refusal(self, exc: OSError) -> None:
        """What the module counted for a refused mmap."""
        self.mmap_rejected += exc.errno == errno.EINVAL   # dv_reject
        self.mmap_unknown += exc.errno == errno.ENOENT    # no job in flight: unknown_cookie

    def map_finished(self) -> str:
        """mmap at a cookie whose job is over (the client has streamed off), as a
        daemon whose picture came out after STREAMOFF does: the errno's name."""
        if not self.decodes:
            return "no cookie seen"
        self.mmaps += 1
        try:
            mmap.mmap(self.fd, mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                      offset=max(self.decodes) * mmap.PAGESIZE).close()
        except OSError as exc:
            self.count_mmap_refusal(exc)
            return errno.errorcode.get(exc.errno, str(exc.errno))
        return "mapped"

    def step(self) -> None:
        self.drain()
        kind = self.rng.choice(["random", "header", "real", "unknown", "oversized", "ping",
                                "mmap", "real", "real"])
        if kind == "mmap":
            return self.try_mmap()
        make = {"random": self.random_bytes, "header": self.bad_header,
                "real": self.real_cookie_frame, "unknown": self.unknown_cookie_frame,
                "oversized": self.oversized, "ping": self.ping_flood}[kind]
        self.write(make(), kind)


def counters() -> dict[str, int]:
    text = open("/sys/kernel/debug/daedalus_v4l2/counters").read()
    return {k: int(v) for k, v in (line.split() for line in text.splitlines())}


def client_loop(stop: threading.Event, started: threading.Event) -> int:
    """A VP9 client keeping requests in flight; returns how many it queued.
    Sets ``started`` once its first request is queued, so the fuzzing clock
    starts only when real cookies can exist (on the guest's one slow CPU the
    imports and setup alone can outlast a short run)."""
    from daedalus_v4l2.backends.hw import find_nodes
    from daedalus_v4l2.backends.sim.validate import minimal_vp9_frame
    from daedalus_v4l2.v4l2 import uapi
    from daedalus_v4l2.v4l2.client import CAPTURE, OUTPUT, StatelessDecoder
    from daedalus_v4l2.v4l2.syscalls import OsSyscalls
    nodes = find_nodes()
    queued = 0
    with StatelessDecoder(OsSyscalls(), nodes.video, nodes.media) as dec:
        dec.set_format(OUTPUT, uapi.V4L2_PIX_FMT_VP9_FRAME, 64, 48)
        dec.request_buffers(OUTPUT, 4)
        dec.request_buffers(CAPTURE, 4)
        reqs = [dec.alloc_request() for _ in range(4)]
        dec.streamon(OUTPUT)
        dec.streamon(CAPTURE)
        frame = minimal_vp9_frame()              # what the core's validate_vp9_frame() takes
        ctrl = {uapi.V4L2_CID_STATELESS_VP9_FRAME: bytes(uapi.ffi.buffer(frame))}
        free_out, free_cap = set(range(4)), set(range(4))
        while not stop.is_set():
            while free_out and free_cap:
                i, c = free_out.pop(), free_cap.pop()
                reqs[i].reinit()
                dec.queue_capture(c)
                dec.set_controls(ctrl, reqs[i])
                dec.queue_output(i, os.urandom(64), 1000 * (queued + 1), reqs[i])
                reqs[i].queue()
                queued += 1
            started.set()
            for buf_type, free in ((CAPTURE, free_cap), (OUTPUT, free_out)):
                done = dec.dequeue(buf_type, 0.3)
                if done is not None:
                    free.add(done.index)
        dec.streamoff(OUTPUT)
        dec.streamoff(CAPTURE)
        for r in reqs:
            r.close()
    return queued


def run(seconds: float, seed: int) -> dict:
    before = counters()
    fuzzer = Fuzzer(random.Random(seed))
    stop, started, errors, result = threading.Event(), threading.Event(), [], {}
    def client():
        try:
            result["queued"] = client_loop(stop, started)
        except Exception as exc:  # noqa: BLE001 - reported in the summary
            errors.append(repr(exc))
        finally:
            started.set()
    t = threading.Thread(target=client)
    t.start()
    if not started.wait(CLIENT_START_TIMEOUT):
        errors.append(f"the client queued nothing within {CLIENT_START_TIMEOUT:.0f} s")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        fuzzer.step()
    stop.set()
    t.join(60)
    finished_mmap = fuzzer.map_finished()
    os.close(fuzzer.fd)
    time.sleep(0.2)
    after = counters()
    delta = {k: after[k] - before[k] for k in after if not k.startswith("parked")}
    e = fuzzer.errnos
    summary = {
        "writes": fuzzer.writes, "mmaps": fuzzer.mmaps, "mmap_rejected": fuzzer.mmap_rejected,
        "mmap_unknown": fuzzer.mmap_unknown, "finished_mmap": finished_mmap, "errnos": e, "counters": delta,
        "client_requests": result.get("queued", 0), "client_hung": t.is_alive(),
        "client_errors": errors,
        "unexpected": fuzzer.unexpected,
        "accounted": {
            "rejected_messages": delta["rejected_messages"] - e.get("EINVAL", 0)
            - e.get("EOVERFLOW", 0) - fuzzer.mmap_rejected,
            "unknown_cookie": delta["unknown_cookie"] - e.get("ENOENT", 0) - fuzzer.mmap_unknown,
            "duplicate_response": delta["duplicate_response"] - e.get("EALREADY", 0),
        },
    }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(run(args.seconds, args.seed)))


if __name__ == "__main__":
    main()
