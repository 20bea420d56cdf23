"""A client of the V4L2 stateless decoder interface.

Written once against ``Syscalls``: the same code drives the simulated kernel
(``daedalus_v4l2.backends.sim``) and a real /dev/videoN.  It speaks the uAPI
of ``Documentation/userspace-api/media/v4l/dev-stateless-decoder.rst``:
formats, REQBUFS, media requests, controls bound to a request, QBUF with a
request fd, DQBUF, STREAMON/OFF and the FLUSH decoder command.  Codec
knowledge (which controls to send, references, display order) lives in the
callers, not here.
"""
from __future__ import annotations

import errno
import os
import select
from dataclasses import dataclass

from ..errors import DeviceError
from . import uapi
from .syscalls import Syscalls
from .uapi import ffi

OUTPUT = uapi.V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE
CAPTURE = uapi.V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE
QUEUE_NAMES = {OUTPUT: "OUTPUT", CAPTURE: "CAPTURE"}


@dataclass(frozen=True)
class Capability:
    driver: str
    card: str
    bus_info: str
    device_caps: int


@dataclass(frozen=True)
class Format:
    buf_type: int
    pixelformat: int
    width: int
    height: int
    bytesperline: int
    sizeimage: int

    @property
    def fourcc(self) -> str:
        return uapi.fourcc_str(self.pixelformat)


@dataclass
class MappedBuffer:
    index: int
    length: int
    memory: memoryview


@dataclass(frozen=True)
class Dequeued:
    """A buffer handed back by DQBUF."""
    buf_type: int
    index: int
    flags: int
    timestamp: int  # ns
    bytesused: int
    sequence: int

    @property
    def error(self) -> bool:
        return bool(self.flags & uapi.V4L2_BUF_FLAG_ERROR)


def _cstr(raw) -> str:
    return ffi.string(ffi.cast("char *", raw)).decode("utf-8", "replace")


def ns_to_timeval(ns: int) -> tuple[int, int]:
    """V4L2 carries timestamps as timeval; vb2 turns them into ns (usec*1000)."""
    if ns % 1000:
        raise ValueError(f"timestamp {ns} ns is not a whole number of microseconds")
    return ns // 1_000_000_000, (ns // 1000) % 1_000_000


class Request:
    """A media request: one OUTPUT buffer and the controls that go with it."""

    def __init__(self, sys: Syscalls, fd: int) -> None:
        self.sys, self.fd = sys, fd

    def queue(self) -> None:
        self.sys.ioctl(self.fd, uapi.MEDIA_REQUEST_IOC_QUEUE)

    def reinit(self) -> None:
        self.sys.ioctl(self.fd, uapi.MEDIA_REQUEST_IOC_REINIT)

    def wait(self, timeout: float | None = None) -> bool:
        """True once the request completed (its OUTPUT buffer came back, and with
        our module its picture is done)."""
        return bool(self.sys.poll([(self.fd, select.POLLPRI)], timeout))

    def close(self) -> None:
        if self.fd >= 0:
            self.sys.close(self.fd)
            self.fd = -1


# the types of every picture's ioctls, looked up once (ffi.new parses a string each call)
_BUFFER_P = ffi.typeof("struct v4l2_buffer *")
_PLANE_1 = ffi.typeof("struct v4l2_plane[1]")
_EXT_CONTROL_ARRAY = ffi.typeof("struct v4l2_ext_control[]")
_EXT_CONTROLS_P = ffi.typeof("struct v4l2_ext_controls *")


class StatelessDecoder:
    """One open of a stateless decoder: a video node and its media node."""

    def __init__(self, sys: Syscalls, video_path: str, media_path: str) -> None:
        self.sys = sys
        # non-blocking, as GStreamer's v4l2codecs open it: DQBUF looks, poll waits (dequeue)
        self.video_fd = sys.open(video_path, os.O_RDWR | os.O_NONBLOCK)
        try:
            self.media_fd = sys.open(media_path, os.O_RDWR)
        except OSError:
            sys.close(self.video_fd)
            raise
        self.buffers: dict[int, list[MappedBuffer]] = {OUTPUT: [], CAPTURE: []}

    # ------------------------------------------------------------------ helpers
    def _ioctl(self, request: int, arg, what: str):
        try:
            return self.sys.ioctl(self.video_fd, request, arg)
        except OSError as exc:
            raise DeviceError(exc.errno, f"{what}: {os.strerror(exc.errno or 0)}") from exc

    # ------------------------------------------------------------------ queries
    def querycap(self) -> Capability:
        cap = ffi.new("struct v4l2_capability *")
        self._ioctl(uapi.VIDIOC_QUERYCAP, cap, "VIDIOC_QUERYCAP")
        caps = cap.device_caps if cap.capabilities & uapi.V4L2_CAP_DEVICE_CAPS else cap.capabilities
        return Capability(_cstr(cap.driver), _cstr(cap.card), _cstr(cap.bus_info), caps)

    def enum_formats(self, buf_type: int) -> list[int]:
        formats = []
        desc = ffi.new("struct v4l2_fmtdesc *")
        while True:
            desc.index, desc.type = len(formats), buf_type
            try:
                self.sys.ioctl(self.video_fd, uapi.VIDIOC_ENUM_FMT, desc)
            except OSError as exc:
                if exc.errno == errno.EINVAL:
                    return formats
                raise DeviceError(exc.errno, f"VIDIOC_ENUM_FMT: {exc.strerror}") from exc
            formats.append(desc.pixelformat)

    def get_format(self, buf_type: int) -> Format:
        fmt = ffi.new("struct v4l2_format *")
        fmt.type = buf_type
        self._ioctl(uapi.VIDIOC_G_FMT, fmt, f"VIDIOC_G_FMT {QUEUE_NAMES[buf_type]}")
        return self._format_of(fmt)

    def set_format(self, buf_type: int, pixelformat: int, width: int = 0, height: int = 0,
                   sizeimage: int = 0) -> Format:
        fmt = ffi.new("struct v4l2_format *")
        fmt.type = buf_type
        self._ioctl(uapi.VIDIOC_G_FMT, fmt, f"VIDIOC_G_FMT {QUEUE_NAMES[buf_type]}")
        pix = fmt.fmt.pix_mp
        pix.pixelformat = pixelformat
        if width and height:
            pix.width, pix.height = width, height
        pix.num_planes = 1
        if sizeimage:
            pix.plane_fmt[0].sizeimage = sizeimage
        self._ioctl(uapi.VIDIOC_S_FMT, fmt, f"VIDIOC_S_FMT {QUEUE_NAMES[buf_type]} "
                                            f"{uapi.fourcc_str(pixelformat)} {width}x{height}")
        result = self._format_of(fmt)
        if result.pixelformat != pixelformat:
            raise DeviceError(errno.EINVAL, f"device does not take {uapi.fourcc_str(pixelformat)} "
                                            f"on {QUEUE_NAMES[buf_type]} (got {result.fourcc})")
        return result

    @staticmethod
    def _format_of(fmt) -> Format:
        pix = fmt.fmt.pix_mp
        return Format(fmt.type, pix.pixelformat, pix.width, pix.height,
                      pix.plane_fmt[0].bytesperline, pix.plane_fmt[0].sizeimage)

    # ------------------------------------------------------------------ buffers
    def request_buffers(self, buf_type: int, count: int) -> int:
        """REQBUFS with MMAP; maps every buffer.  Returns the buffer capabilities."""
        self._unmap(buf_type)
        req = ffi.new("struct v4l2_requestbuffers *")
        req.count, req.type, req.memory = count, buf_type, uapi.V4L2_MEMORY_MMAP
        self._ioctl(uapi.VIDIOC_REQBUFS, req, f"VIDIOC_REQBUFS {QUEUE_NAMES[buf_type]} x{count}")
        for index in range(req.count):
            self.buffers[buf_type].append(self._map(buf_type, index))
        return req.capabilities

    def _map(self, buf_type: int, index: int) -> MappedBuffer:
        buf, planes = self._new_buffer(buf_type, index)
        self._ioctl(uapi.VIDIOC_QUERYBUF, buf, f"VIDIOC_QUERYBUF {QUEUE_NAMES[buf_type]} {index}")
        length = planes[0].length
        memory = self.sys.mmap(self.video_fd, length, planes[0].m.mem_offset)
        return MappedBuffer(index, length, memory)

    def _unmap(self, buf_type: int) -> None:
        for mapped in self.buffers[buf_type]:
            self.sys.munmap(mapped.memory)
        self.buffers[buf_type] = []

    @staticmethod
    def _new_buffer(buf_type: int, index: int):
        buf = ffi.new(_BUFFER_P)
        planes = ffi.new(_PLANE_1)
        buf.type, buf.index, buf.memory = buf_type, index, uapi.V4L2_MEMORY_MMAP
        buf.length, buf.m.planes = 1, planes
        return buf, planes

    def alloc_request(self) -> Request:
        fd = ffi.new("int *")
        try:
            self.sys.ioctl(self.media_fd, uapi.MEDIA_IOC_REQUEST_ALLOC, fd)
        except OSError as exc:
            raise DeviceError(exc.errno, f"MEDIA_IOC_REQUEST_ALLOC: {exc.strerror}") from exc
        return Request(self.sys, fd[0])

    def set_controls(self, controls: dict[int, bytes], request: Request | None = None) -> None:
        """Bind compound controls (each the bytes of its uAPI struct) to a request."""
        if not controls:
            return
        array = ffi.new(_EXT_CONTROL_ARRAY, len(controls))
        keep = []  # the payloads must outlive the ioctl
        for ctrl, (cid, payload) in zip(array, controls.items()):
            data = ffi.from_buffer(payload)
            keep.append(data)
            ctrl.id, ctrl.size, ctrl.ptr = cid, len(payload), data
        ctrls = ffi.new(_EXT_CONTROLS_P)
        ctrls.count, ctrls.controls = len(controls), array
        if request is not None:
            ctrls.which, ctrls.request_fd = uapi.V4L2_CTRL_WHICH_REQUEST_VAL, request.fd
        try:
            self.sys.ioctl(self.video_fd, uapi.VIDIOC_S_EXT_CTRLS, ctrls)
        except OSError as exc:
            bad = list(controls)[ctrls.error_idx] if ctrls.error_idx < len(controls) else None
            what = f" (control 0x{bad:x})" if bad is not None else ""
            raise DeviceError(exc.errno, f"VIDIOC_S_EXT_CTRLS{what}: {exc.strerror}") from exc

    def queue_output(self, index: int, data: bytes | memoryview, timestamp: int,
                     request: Request, hold_capture: bool = False) -> None:
        """Copy a bitstream into OUTPUT buffer ``index`` and bind it to ``request``."""
        mapped = self.buffers[OUTPUT][index]
        if len(data) > mapped.length:
            raise DeviceError(errno.ENOSPC, f"bitstream of {len(data)} bytes does not fit the "
                                            f"{mapped.length}-byte OUTPUT buffer")
        mapped.memory[:len(data)] = data
        buf, planes = self._new_buffer(OUTPUT, index)
        planes[0].bytesused = len(data)
        buf.timestamp.tv_sec, buf.timestamp.tv_usec = ns_to_timeval(timestamp)
        buf.flags = uapi.V4L2_BUF_FLAG_REQUEST_FD
        if hold_capture:
            buf.flags |= uapi.V4L2_BUF_FLAG_M2M_HOLD_CAPTURE_BUF
        buf.request_fd = request.fd
        self._ioctl(uapi.VIDIOC_QBUF, buf, f"VIDIOC_QBUF OUTPUT {index}")

    def queue_capture(self, index: int) -> None:
        buf, _ = self._new_buffer(CAPTURE, index)
        self._ioctl(uapi.VIDIOC_QBUF, buf, f"VIDIOC_QBUF CAPTURE {index}")

    def dequeue(self, buf_type: int, timeout: float | None = None, *,
                look_first: bool = False) -> Dequeued | None:
        """The next done buffer of a queue; None if none came within ``timeout``
        (0 = just look).  Waits with poll, so it never blocks past the timeout.
        ``look_first``: for a queue whose buffer is most likely done already (a
        pipeline's OUTPUT buffers come back long before their pictures), DQBUF comes
        first and poll only if it found nothing: one call into the kernel, not two."""
        if look_first or timeout == 0:
            done = self._dqbuf(buf_type)
            if done is not None or timeout == 0:
                return done
        event = select.POLLIN if buf_type == CAPTURE else select.POLLOUT
        if not self.sys.poll([(self.video_fd, event)], timeout):
            return None
        return self._dqbuf(buf_type)

    def _dqbuf(self, buf_type: int) -> Dequeued | None:
        """A non-blocking DQBUF: None if no buffer is done (EAGAIN)."""
        buf, planes = self._new_buffer(buf_type, 0)
        try:
            self.sys.ioctl(self.video_fd, uapi.VIDIOC_DQBUF, buf)
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                return None
            raise DeviceError(exc.errno, f"VIDIOC_DQBUF {QUEUE_NAMES[buf_type]}: {exc.strerror}") from exc
        ts = buf.timestamp.tv_sec * 1_000_000_000 + buf.timestamp.tv_usec * 1000
        return Dequeued(buf_type, buf.index, buf.flags, ts, planes[0].bytesused, buf.sequence)

    def streamon(self, buf_type: int) -> None:
        self._ioctl(uapi.VIDIOC_STREAMON, ffi.new("int *", buf_type),
                    f"VIDIOC_STREAMON {QUEUE_NAMES[buf_type]}")

    def streamoff(self, buf_type: int) -> None:
        self._ioctl(uapi.VIDIOC_STREAMOFF, ffi.new("int *", buf_type),
                    f"VIDIOC_STREAMOFF {QUEUE_NAMES[buf_type]}")

    def flush(self) -> None:
        """V4L2_DEC_CMD_FLUSH: release a held CAPTURE buffer (slice-based decoding)."""
        cmd = ffi.new("struct v4l2_decoder_cmd *")
        cmd.cmd = uapi.V4L2_DEC_CMD_FLUSH
        self._ioctl(uapi.VIDIOC_DECODER_CMD, cmd, "VIDIOC_DECODER_CMD FLUSH")

    def close(self) -> None:
        if self.video_fd < 0:
            return
        for buf_type in (OUTPUT, CAPTURE):
            self._unmap(buf_type)
        self.sys.close(self.media_fd)
        self.sys.close(self.video_fd)
        self.video_fd = self.media_fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
