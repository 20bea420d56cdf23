"""Helpers for driving the simulation in tests: a small client and a scripted daemon.

Neither decodes anything.  ``SimClient`` speaks the V4L2 stateless uAPI through
``kernel.syscalls()``; ``ScriptedDaemon`` answers DECODE messages with whatever
the test tells it to (pixels, consume only, error, nothing), writing a marker
into the CAPTURE buffer so a test can see which picture landed where.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Callable

from ... import proto
from ...v4l2 import uapi
from .validate import minimal_vp9_frame

ffi = uapi.ffi
OUT = uapi.V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE
CAP = uapi.V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE


@dataclass
class Dequeued:
    index: int
    flags: int
    timestamp_ns: int
    sequence: int
    bytesused: int
    field: int

    @property
    def error(self) -> bool:
        return bool(self.flags & uapi.V4L2_BUF_FLAG_ERROR)


class SimClient:
    """One open of the video node, set up for VP9 with MMAP buffers."""

    def __init__(self, kernel, n_output: int = 4, n_capture: int = 4, width: int = 64,
                 height: int = 48, sizeimage: int = 0, nonblock: bool = False,
                 pixelformat: int = uapi.V4L2_PIX_FMT_VP9_FRAME) -> None:
        import os
        self.kernel = kernel
        self.sys = kernel.syscalls()
        self.fd = self.sys.open(kernel.video_path, os.O_RDWR | (os.O_NONBLOCK if nonblock else 0))
        self.media = self.sys.open(kernel.media_path)
        self.ctx = kernel.contexts[-1]
        self.out_fmt = self.s_fmt(OUT, pixelformat, width, height, sizeimage)
        self.cap_fmt = self.g_fmt(CAP)
        self.n_output = self.reqbufs(OUT, n_output)
        self.n_capture = self.reqbufs(CAP, n_capture)
        self.out_maps = [self.map(OUT, i) for i in range(self.n_output)]
        self.cap_maps = [self.map(CAP, i) for i in range(self.n_capture)]
        self.requests: dict[int, int] = {}     # OUTPUT index -> request fd in use

    # ---- setup

    def s_fmt(self, buf_type, pixelformat, width, height, sizeimage=0):
        f = ffi.new("struct v4l2_format *")
        f.type = buf_type
        pix = f.fmt.pix_mp
        pix.pixelformat, pix.width, pix.height = pixelformat, width, height
        pix.num_planes = 1
        pix.plane_fmt[0].sizeimage = sizeimage
        self.sys.ioctl(self.fd, uapi.VIDIOC_S_FMT, f)
        return f

    def g_fmt(self, buf_type):
        f = ffi.new("struct v4l2_format *")
        f.type = buf_type
        self.sys.ioctl(self.fd, uapi.VIDIOC_G_FMT, f)
        return f

    def reqbufs(self, buf_type, count):
        rb = ffi.new("struct v4l2_requestbuffers *", {"count": count, "type": buf_type,
                                                      "memory": uapi.V4L2_MEMORY_MMAP})
        self.sys.ioctl(self.fd, uapi.VIDIOC_REQBUFS, rb)
        return rb.count

    def new_buffer(self, buf_type, index=0):
        b = ffi.new("struct v4l2_buffer *")
        planes = ffi.new("struct v4l2_plane[1]")
        b.type, b.memory, b.index, b.length, b.m.planes = (
            buf_type, uapi.V4L2_MEMORY_MMAP, index, 1, planes)
        return b, planes

    def map(self, buf_type, index):
        b, planes = self.new_buffer(buf_type, index)
        self.sys.ioctl(self.fd, uapi.VIDIOC_QUERYBUF, b)
        return self.sys.mmap(self.fd, planes[0].length, planes[0].m.mem_offset)

    def streamon(self, buf_type=None):
        for t in ([OUT, CAP] if buf_type is None else [buf_type]):
            self.sys.ioctl(self.fd, uapi.VIDIOC_STREAMON, ffi.new("int *", t))

    def streamoff(self, buf_type=None):
        for t in ([OUT, CAP] if buf_type is None else [buf_type]):
            self.sys.ioctl(self.fd, uapi.VIDIOC_STREAMOFF, ffi.new("int *", t))

    # ---- queueing

    def queue_capture(self, index):
        b, _ = self.new_buffer(CAP, index)
        self.sys.ioctl(self.fd, uapi.VIDIOC_QBUF, b)

    def vp9_frame_control(self, req_fd, flags=0):
        """A profile-0 frame control: 8-bit 4:2:0, what the control core accepts."""
        frame = minimal_vp9_frame()
        frame.flags |= flags
        ctrl = ffi.new("struct v4l2_ext_control[1]")
        ctrl[0].id = uapi.V4L2_CID_STATELESS_VP9_FRAME
        ctrl[0].size = ffi.sizeof(frame[0])
        ctrl[0].ptr = frame
        ctrls = ffi.new("struct v4l2_ext_controls *")
        ctrls.which, ctrls.count, ctrls.request_fd, ctrls.controls = (
            uapi.V4L2_CTRL_WHICH_REQUEST_VAL, 1, req_fd, ctrl)
        self.sys.ioctl(self.fd, uapi.VIDIOC_S_EXT_CTRLS, ctrls)

    def set_controls(self, req_fd, controls: dict, which=uapi.V4L2_CTRL_WHICH_REQUEST_VAL):
        """S_EXT_CTRLS of {cid: bytes (compound) or int (menu)}."""
        array = ffi.new("struct v4l2_ext_control[]", len(controls))
        keep = []
        for ctrl, (cid, value) in zip(array, controls.items()):
            ctrl.id = cid
            if isinstance(value, int):
                ctrl.value = value
            else:
                buf = ffi.new("char[]", value)
                keep.append(buf)
                ctrl.size, ctrl.ptr = len(value), buf
        ctrls = ffi.new("struct v4l2_ext_controls *")
        ctrls.which, ctrls.count, ctrls.request_fd, ctrls.controls = (
            which, len(controls), req_fd, array)
        self.sys.ioctl(self.fd, uapi.VIDIOC_S_EXT_CTRLS, ctrls)
        return [array[i].size for i in range(len(controls))]

    def alloc_request(self):
        fdp = ffi.new("int *")
        self.sys.ioctl(self.media, uapi.MEDIA_IOC_REQUEST_ALLOC, fdp)
        return fdp[0]

    def queue_output(self, index, data: bytes, timestamp_ns: int, hold=False, controls=True,
                     queue_request=True) -> int:
        """Fill OUTPUT buffer ``index``, bind it and its controls (True: a zeroed VP9
        frame; a dict: those, see set_controls; False: none) to a fresh request, queue
        the request.  Returns the request fd."""
        self.out_maps[index][:len(data)] = data
        req_fd = self.alloc_request()
        if controls is True:
            self.vp9_frame_control(req_fd)
        elif controls:
            self.set_controls(req_fd, controls)
        b, planes = self.new_buffer(OUT, index)
        planes[0].bytesused = len(data)
        b.timestamp.tv_sec, b.timestamp.tv_usec = divmod(timestamp_ns // 1000, 1_000_000)
        b.flags = uapi.V4L2_BUF_FLAG_REQUEST_FD | (
            uapi.V4L2_BUF_FLAG_M2M_HOLD_CAPTURE_BUF if hold else 0)
        b.request_fd = req_fd
        self.sys.ioctl(self.fd, uapi.VIDIOC_QBUF, b)
        if queue_request:
            self.sys.ioctl(req_fd, uapi.MEDIA_REQUEST_IOC_QUEUE)
        self.requests[index] = req_fd
        return req_fd

    def dqbuf(self, buf_type) -> Dequeued:
        b, planes = self.new_buffer(buf_type)
        self.sys.ioctl(self.fd, uapi.VIDIOC_DQBUF, b)
        if buf_type == OUT and b.index in self.requests:
            self.sys.close(self.requests.pop(b.index))
        ts = b.timestamp.tv_sec * 1_000_000_000 + b.timestamp.tv_usec * 1000
        return Dequeued(b.index, b.flags, ts, b.sequence, planes[0].bytesused, b.field)

    def flush(self):
        cmd = ffi.new("struct v4l2_decoder_cmd *", {"cmd": uapi.V4L2_DEC_CMD_FLUSH})
        self.sys.ioctl(self.fd, uapi.VIDIOC_DECODER_CMD, cmd)

    def close(self):
        for req_fd in self.requests.values():
            self.sys.close(req_fd)
        self.requests.clear()
        for m in self.out_maps + self.cap_maps:
            self.sys.munmap(m)
        self.sys.close(self.fd)
        self.sys.close(self.media)


def marker(cookie: int) -> bytes:
    """What ScriptedDaemon writes at the start of a picture: which job made it."""
    return struct.pack("<4sQ", b"PIC!", cookie)


@dataclass
class ScriptedDaemon:
    """A daemon whose answers a test scripts.  ``policy(msg)`` returns one of
    "pixels" (consume + pixels), "consume" (consume now, pixels later: parking),
    "slice" (consume only, for a HOLD slice: no pixels will follow), "error",
    "none" (never answer); default "pixels"."""
    transport: object
    policy: Callable[[proto.DecodeRequest], str] = lambda msg: "pixels"
    received: list = field(default_factory=list)
    decodes: dict = field(default_factory=dict)     # cookie -> DecodeRequest
    parked: list = field(default_factory=list)      # cookies consumed without pixels
    refused: list = field(default_factory=list)     # OSErrors the kernel answered with

    def attach(self, kernel) -> "ScriptedDaemon":
        kernel.attach_daemon(self.step)
        return self

    def step(self) -> bool:
        msg = self.transport.receive(0)
        if msg is None:
            return False
        self.received.append(msg)
        if msg.type == proto.MSG_DECODE:
            self.decodes[msg.cookie] = msg
            try:
                self.answer(msg, self.policy(msg))
            except OSError as exc:          # e.g. a job cancelled before we read it
                self.refused.append(exc)
        elif msg.type == proto.MSG_FLUSH:
            for cookie in list(self.parked):
                self.send_pixels(cookie)
            self.transport.send(proto.Message(proto.MSG_FLUSH_DONE, stream_id=msg.stream_id))
        return True

    def answer(self, msg, action: str) -> None:
        if action == "pixels":
            self.send_pixels(msg.cookie, consumed=True)
        elif action == "consume":
            self.transport.send(self.frame(msg.cookie, proto.FRAME_SRC_CONSUMED))
            self.parked.append(msg.cookie)
        elif action == "slice":
            self.transport.send(self.frame(msg.cookie, proto.FRAME_SRC_CONSUMED))
        elif action == "error":
            self.transport.send(self.frame(msg.cookie, proto.FRAME_SRC_CONSUMED | proto.FRAME_ERROR,
                                           reason="scripted error"))

    def send_pixels(self, cookie: int, consumed: bool = False) -> None:
        msg = self.decodes[cookie]
        mem = self.transport.capture_memory(msg)
        mem[:12] = marker(cookie)
        if cookie in self.parked:
            self.parked.remove(cookie)
        flags = proto.FRAME_HAS_PIXELS | (proto.FRAME_SRC_CONSUMED if consumed else 0)
        self.transport.send(self.frame(cookie, flags, plane_bytes=[msg.capture_size]))

    def frame(self, cookie, flags, plane_bytes=(), reason=""):
        return proto.FrameResponse(stream_id=self.decodes[cookie].stream_id, cookie=cookie,
                                   flags=flags, plane_bytes=list(plane_bytes), reason=reason)
