"""SimSyscalls: open/close/ioctl/mmap/poll against the simulated kernel.

The ioctl handlers read and fill the client's cffi structs in place, the way
the kernel's handlers copy_from_user/copy_to_user them, and fail with
OSError(errno).  Every call holds the kernel's lock.  Blocking calls wait
until they can return (SimKernel.progress: stepping the simulation, or
waiting for the daemon's thread); if nothing can ever happen, DQBUF raises
SimDeadlock.
"""
from __future__ import annotations

import errno
import math
import os
import select
import struct
from dataclasses import dataclass

from ...v4l2 import uapi
from ...v4l2.syscalls import Syscalls, raise_errno
from . import formats, validate
from .entry import kernel_entry
from .kernel import SimDeadlock
from .request import MediaRequest, ReqState, release_request
from .vb2 import DST_QUEUE_OFF_BASE, MAX_BUFFERS, PAGE_SIZE, BufState

ffi = uapi.ffi
DRIVER, CARD, BUS_INFO = b"daedalus_v4l2", b"daedalus-v4l2", b"platform:daedalus_v4l2"
KERNEL_VERSION = (6 << 16) | (12 << 8)
DEVICE_CAPS = uapi.V4L2_CAP_VIDEO_M2M_MPLANE | uapi.V4L2_CAP_STREAMING
OUTPUT_CAPS = (uapi.V4L2_BUF_CAP_SUPPORTS_MMAP | uapi.V4L2_BUF_CAP_SUPPORTS_REQUESTS
               | uapi.V4L2_BUF_CAP_SUPPORTS_M2M_HOLD_CAPTURE_BUF)
CAPTURE_CAPS = uapi.V4L2_BUF_CAP_SUPPORTS_MMAP
# OUTPUT offsets must stay below DST_QUEUE_OFF_BASE or they would name CAPTURE buffers.
OUTPUT_OFFSET_SPACE = DST_QUEUE_OFF_BASE
POLL_IN = select.POLLIN | select.POLLRDNORM
POLL_OUT = select.POLLOUT | select.POLLWRNORM


@dataclass
class VideoFile:
    ctx: object
    nonblock: bool


@dataclass
class MediaFile:
    pass


@dataclass
class RequestFile:
    req: MediaRequest


def _set_str(field, text: bytes) -> None:
    n = min(len(text), ffi.sizeof(field) - 1)
    ffi.memmove(field, text[:n], n)


# the flags a buffer's state shows in QUERYBUF/DQBUF (the rest: QUEUED)
_STATE_FLAGS = {BufState.IN_REQUEST: uapi.V4L2_BUF_FLAG_IN_REQUEST,
                BufState.DONE: uapi.V4L2_BUF_FLAG_DONE,
                BufState.ERROR: uapi.V4L2_BUF_FLAG_DONE | uapi.V4L2_BUF_FLAG_ERROR,
                BufState.DEQUEUED: 0}


class SimSyscalls(Syscalls):
    """One process's view of the simulated devices: its own fd table."""

    def __init__(self, kernel) -> None:
        self.kernel = kernel
        self.files: dict[int, object] = {}
        self._video_ioctls = {
            uapi.VIDIOC_QUERYCAP: self._querycap, uapi.VIDIOC_ENUM_FMT: self._enum_fmt,
            uapi.VIDIOC_ENUM_FRAMESIZES: self._enum_framesizes, uapi.VIDIOC_G_FMT: self._g_fmt,
            uapi.VIDIOC_S_FMT: self._s_fmt, uapi.VIDIOC_TRY_FMT: self._try_fmt,
            uapi.VIDIOC_REQBUFS: self._reqbufs, uapi.VIDIOC_QUERYBUF: self._querybuf,
            uapi.VIDIOC_QBUF: self._qbuf, uapi.VIDIOC_DQBUF: self._dqbuf,
            uapi.VIDIOC_STREAMON: self._streamon, uapi.VIDIOC_STREAMOFF: self._streamoff,
            uapi.VIDIOC_S_EXT_CTRLS: self._s_ext_ctrls, uapi.VIDIOC_G_EXT_CTRLS: self._g_ext_ctrls,
            uapi.VIDIOC_TRY_EXT_CTRLS: self._try_ext_ctrls,
            uapi.VIDIOC_QUERY_EXT_CTRL: self._query_ext_ctrl,
            uapi.VIDIOC_DECODER_CMD: self._decoder_cmd,
            uapi.VIDIOC_TRY_DECODER_CMD: self._try_decoder_cmd,
            uapi.VIDIOC_SUBSCRIBE_EVENT: self._subscribe_event,
            uapi.VIDIOC_DQEVENT: self._dqevent,
        }

    # ------------------------------------------------------------------ files

    def _new_fd(self, obj) -> int:
        fd = 3
        while fd in self.files:
            fd += 1
        self.files[fd] = obj
        return fd

    def _file(self, fd: int):
        try:
            return self.files[fd]
        except KeyError:
            raise_errno(errno.EBADF, f"fd {fd}")

    @kernel_entry
    def open(self, path: str, flags: int = os.O_RDWR) -> int:
        if path == self.kernel.video_path:
            return self._new_fd(VideoFile(self.kernel.new_context(), bool(flags & os.O_NONBLOCK)))
        if path == self.kernel.media_path:
            return self._new_fd(MediaFile())
        raise_errno(errno.ENOENT, path)

    @kernel_entry
    def close(self, fd: int) -> None:
        f = self._file(fd)
        del self.files[fd]
        if isinstance(f, VideoFile):
            self.kernel.close_context(f.ctx)
        elif isinstance(f, RequestFile) and self._fds_of(f.req) == 0:
            self._request_release(f.req)

    def _fds_of(self, req: MediaRequest) -> int:
        return sum(isinstance(f, RequestFile) and f.req is req for f in self.files.values())

    def _request_release(self, req: MediaRequest) -> None:
        """Last fd of an unqueued request closed: its buffer goes back to userspace."""
        buf = req.buffer
        if req.state is ReqState.IDLE and buf is not None and buf.state is BufState.IN_REQUEST:
            release_request(buf)
            buf.set_state(BufState.DEQUEUED)
            self.kernel.ledger.returned(buf, "request released")

    # ------------------------------------------------------------------ ioctl

    @kernel_entry
    def ioctl(self, fd: int, request: int, arg=None) -> int:
        f = self._file(fd)
        if isinstance(f, VideoFile):
            handler = self._video_ioctls.get(request)
            if handler is None:
                raise_errno(errno.ENOTTY, f"ioctl 0x{request:x} on the video node")
            return handler(f, arg) or 0
        if isinstance(f, MediaFile):
            if request == uapi.MEDIA_IOC_DEVICE_INFO:
                return self._media_info(arg)
            if request == uapi.MEDIA_IOC_REQUEST_ALLOC:
                arg[0] = self._new_fd(RequestFile(MediaRequest(next(self.kernel._request_ids))))
                return 0
        if isinstance(f, RequestFile):
            if request == uapi.MEDIA_REQUEST_IOC_QUEUE:
                return self._request_queue(f.req)
            if request == uapi.MEDIA_REQUEST_IOC_REINIT:
                return self._request_reinit(f.req)
        raise_errno(errno.ENOTTY, f"ioctl 0x{request:x} on fd {fd}")

    def _queue(self, f: VideoFile, buf_type: int):
        q = f.ctx.queue(buf_type)
        if q is None:
            raise_errno(errno.EINVAL, f"buffer type {buf_type}")
        return q

    # ---- capabilities and formats

    def _querycap(self, f, cap):
        _set_str(cap.driver, DRIVER)
        _set_str(cap.card, CARD)
        _set_str(cap.bus_info, BUS_INFO)
        cap.version = KERNEL_VERSION
        cap.device_caps = DEVICE_CAPS
        cap.capabilities = DEVICE_CAPS | uapi.V4L2_CAP_DEVICE_CAPS

    def _enum_fmt(self, f, desc):
        table = formats.CODED if self._queue(f, desc.type).is_output else formats.DECODED
        if desc.index >= len(table):
            raise_errno(errno.EINVAL, f"format index {desc.index}")
        fourcc, (_, name) = list(table.items())[desc.index]
        desc.pixelformat = fourcc
        desc.flags = formats.V4L2_FMT_FLAG_COMPRESSED if table is formats.CODED else 0
        _set_str(desc.description, name.encode())

    def _enum_framesizes(self, f, fs):
        if fs.index != 0 or (fs.pixel_format not in formats.CODED
                             and fs.pixel_format not in formats.DECODED):
            raise_errno(errno.EINVAL, "frame size enumeration")
        fs.type = formats.V4L2_FRMSIZE_TYPE_STEPWISE
        sw = fs.stepwise
        sw.min_width, sw.max_width, sw.step_width = formats.MIN_SIZE, formats.MAX_SIZE, 1
        sw.min_height, sw.max_height, sw.step_height = formats.MIN_SIZE, formats.MAX_SIZE, 1

    def _g_fmt(self, f, fmt):
        q = self._queue(f, fmt.type)
        formats.write_format(fmt, f.ctx.out_fmt if q.is_output else f.ctx.cap_fmt)

    def _adjust_fmt(self, f, fmt) -> formats.Format:
        q = self._queue(f, fmt.type)
        want = formats.read_format(fmt)
        if q.is_output:
            return formats.coded_format(want.pixelformat, want.width, want.height, want.sizeimage)
        out = f.ctx.out_fmt
        return formats.decoded_format(want.pixelformat, out.width, out.height)

    def _try_fmt(self, f, fmt):
        formats.write_format(fmt, self._adjust_fmt(f, fmt))

    def _s_fmt(self, f, fmt):
        ctx = f.ctx
        new = self._adjust_fmt(f, fmt)
        if ctx.queue(fmt.type).is_output:
            # The CAPTURE format follows OUTPUT, so neither queue may have buffers.
            if ctx.out_q.busy() or ctx.cap_q.busy():
                raise_errno(errno.EBUSY, "S_FMT on OUTPUT with buffers allocated")
            ctx.out_fmt = new
            ctx.cap_fmt = formats.decoded_format(uapi.V4L2_PIX_FMT_NV12, new.width, new.height)
            ctx.session_open = False    # the next job opens the daemon session anew
        else:
            if ctx.cap_q.busy():
                raise_errno(errno.EBUSY, "S_FMT on CAPTURE with buffers allocated")
            ctx.cap_fmt = new
        formats.write_format(fmt, new)

    # ---- buffers

    def _reqbufs(self, f, rb):
        ctx, q = f.ctx, self._queue(f, rb.type)
        if rb.memory != uapi.V4L2_MEMORY_MMAP:
            raise_errno(errno.EINVAL, "only V4L2_MEMORY_MMAP")
        if q.streaming:
            raise_errno(errno.EBUSY, "REQBUFS while streaming")
        self.kernel.stop_streaming(ctx, q, "reqbufs")     # queued buffers come back first
        count = 0 if rb.count == 0 else max(1, min(rb.count, MAX_BUFFERS))
        size = (ctx.out_fmt if q.is_output else ctx.cap_fmt).sizeimage
        if q.is_output and count:
            aligned = -(-size // PAGE_SIZE) * PAGE_SIZE
            count = max(1, min(count, OUTPUT_OFFSET_SPACE // aligned))
        q.allocate(count, size)
        rb.count = count
        rb.capabilities = OUTPUT_CAPS if q.is_output else CAPTURE_CAPS

    def _buffer(self, f, b):
        q = self._queue(f, b.type)
        if b.memory != uapi.V4L2_MEMORY_MMAP:
            raise_errno(errno.EINVAL, "only V4L2_MEMORY_MMAP")
        if b.index >= len(q.buffers):
            raise_errno(errno.EINVAL, f"buffer index {b.index} of {len(q.buffers)}")
        if b.m.planes == ffi.NULL or b.length < 1:
            raise_errno(errno.EINVAL, "multi-planar API: planes[] with length >= 1 needed")
        return q, q.buffers[b.index]

    def _fill(self, b, buf) -> None:
        """What QUERYBUF/QBUF/DQBUF give back (vb2's __fill_v4l2_buffer)."""
        flags = uapi.V4L2_BUF_FLAG_TIMESTAMP_COPY | (buf.flags if buf.queue.is_output else 0)
        flags |= _STATE_FLAGS.get(buf.state, uapi.V4L2_BUF_FLAG_QUEUED)
        b.flags = flags
        b.field = uapi.V4L2_FIELD_NONE
        b.timestamp.tv_sec, rem = divmod(buf.timestamp_ns, 1_000_000_000)
        b.timestamp.tv_usec = rem // 1000
        b.sequence = buf.sequence
        b.length = 1
        plane = b.m.planes[0]
        plane.bytesused, plane.length = buf.bytesused, buf.length
        plane.m.mem_offset, plane.data_offset = buf.mem_offset, 0

    def _querybuf(self, f, b):
        _, buf = self._buffer(f, b)
        self._fill(b, buf)

    def _qbuf(self, f, b):
        q, buf = self._buffer(f, b)
        if buf.state is not BufState.DEQUEUED:
            raise_errno(errno.EINVAL, f"{buf.name} is already queued")
        if q.is_output:
            self._qbuf_output(f, b, buf)
        else:
            if b.flags & uapi.V4L2_BUF_FLAG_REQUEST_FD:
                raise_errno(errno.EBADR, "CAPTURE buffers are not queued through requests")
            buf.set_state(BufState.QUEUED)
            q.ready.add_tail(buf)
            self.kernel.ledger.queued(buf)
            self.kernel.emit("qbuf", None, f.ctx, lambda: buf.name)
            self.kernel.try_schedule(f.ctx)
        self._fill(b, buf)

    def _qbuf_output(self, f, b, buf):
        if not b.flags & uapi.V4L2_BUF_FLAG_REQUEST_FD:
            raise_errno(errno.EBADR, "OUTPUT buffers need a request (V4L2_BUF_FLAG_REQUEST_FD)")
        req = self._request(b.request_fd)
        if req.state is not ReqState.IDLE or req.buffer is not None:
            raise_errno(errno.EBUSY, f"request {req.id} is {req.state.value} or has a buffer")
        bytesused = b.m.planes[0].bytesused
        if bytesused > buf.length:
            raise_errno(errno.EINVAL, f"bytesused {bytesused} > length {buf.length}")
        buf.bytesused = bytesused or buf.length    # vb2: 0 means the whole buffer
        buf.flags = b.flags & uapi.V4L2_BUF_FLAG_M2M_HOLD_CAPTURE_BUF
        buf.timestamp_ns = b.timestamp.tv_sec * 1_000_000_000 + b.timestamp.tv_usec * 1000
        buf.set_state(BufState.IN_REQUEST)
        req.bind_buffer(buf)
        req.ctx = f.ctx
        buf.request, buf.request_fd = req, b.request_fd
        self.kernel.ledger.queued(buf)
        self.kernel.emit("qbuf", None, f.ctx, lambda: f"{buf.name} in request {req.id}")

    def _dqbuf(self, f, b):
        q = self._queue(f, b.type)
        if b.memory != uapi.V4L2_MEMORY_MMAP:
            raise_errno(errno.EINVAL, "only V4L2_MEMORY_MMAP")
        if b.m.planes == ffi.NULL or b.length < 1:
            raise_errno(errno.EINVAL, "multi-planar API: planes[] with length >= 1 needed")
        while True:
            if not q.streaming:
                raise_errno(errno.EINVAL, "DQBUF: streaming off, will not wait for buffers")
            if len(q.done):
                break
            if f.nonblock:
                raise_errno(errno.EAGAIN, "DQBUF: no buffer done")
            if not self.kernel.progress():
                raise SimDeadlock(self.kernel.describe_wait(f.ctx, q))
        buf = q.done.first()
        q.done.del_(buf)
        self._fill(b, buf)
        b.index = buf.index
        if q.is_output and buf.request_fd >= 0:
            b.flags |= uapi.V4L2_BUF_FLAG_REQUEST_FD
            b.request_fd = buf.request_fd
        buf.set_state(BufState.DEQUEUED)
        release_request(buf)
        self.kernel.ledger.returned(buf, "dqbuf")
        self.kernel.emit("dqbuf", None, f.ctx, lambda: buf.name)

    def _streamon(self, f, arg):
        ctx, q = f.ctx, self._queue(f, arg[0])
        if not q.buffers:
            raise_errno(errno.EINVAL, "STREAMON without buffers")
        if not q.streaming:
            q.streaming, q.sequence = True, 0
            self.kernel.emit("streamon", None, ctx, "OUTPUT" if q.is_output else "CAPTURE")
            self.kernel.try_schedule(ctx)

    def _streamoff(self, f, arg):
        self.kernel.stop_streaming(f.ctx, self._queue(f, arg[0]))

    # ---- controls

    def _request(self, fd: int) -> MediaRequest:
        f = self.files.get(fd)
        if not isinstance(f, RequestFile):
            raise_errno(errno.EINVAL, f"fd {fd} is not a request")
        return f.req

    def _check_ctrls(self, c) -> dict[int, bytes]:
        """Every control's payload, or the error with error_idx at the bad one."""
        out = {}
        for i in range(c.count):
            ctrl = c.controls[i]
            try:
                out[ctrl.id] = self._ctrl_value(ctrl)
            except OSError:
                c.error_idx = i
                raise
        return out

    def _ctrl_value(self, ctrl) -> bytes:
        """A control's payload as bytes (menus as s32).  Like the 6.12 core: a payload
        smaller than the control is EFAULT, a larger one is accepted and size rewritten."""
        size = formats.control_size(ctrl.id)
        if size is None:
            raise_errno(errno.EINVAL, f"unknown control 0x{ctrl.id:x}")
        menu = formats.menu_values(ctrl.id)
        if menu:
            if ctrl.value not in menu:
                raise_errno(errno.ERANGE, f"control 0x{ctrl.id:x} value {ctrl.value}")
            return struct.pack("<i", ctrl.value)
        elem = formats.dynamic_element_size(ctrl.id)
        if elem is not None:
            # A dynamic array takes 1..dims whole elements (the 6.12 core: a size
            # that is no multiple of the element is EFAULT, a larger one is clipped).
            if ctrl.size < elem or ctrl.size % elem:
                raise_errno(errno.EFAULT, f"control 0x{ctrl.id:x}: {ctrl.size} bytes is not "
                                          f"1 or more {elem}-byte elements")
            size = min(ctrl.size, size)
        elif ctrl.size < size:
            raise_errno(errno.EFAULT, f"control 0x{ctrl.id:x}: {ctrl.size} bytes, needs {size}")
        if ctrl.ptr == ffi.NULL:
            raise_errno(errno.EFAULT, f"control 0x{ctrl.id:x}: NULL ptr")
        ctrl.size = size
        payload = bytes(ffi.buffer(ffi.cast("char *", ctrl.ptr), size))
        why = validate.refusal(ctrl.id, payload)
        if why:
            raise_errno(errno.EINVAL, f"control 0x{ctrl.id:x}: {why}")
        return payload

    def _s_ext_ctrls(self, f, c):
        target = f.ctx.cur_controls
        if c.which == uapi.V4L2_CTRL_WHICH_REQUEST_VAL:
            req = self._request(c.request_fd)
            if req.state is not ReqState.IDLE:
                raise_errno(errno.EBUSY, f"request {req.id} is {req.state.value}")
            target = req.controls
            req.ctx = req.ctx or f.ctx
        target.update(self._check_ctrls(c))

    def _try_ext_ctrls(self, f, c):
        self._check_ctrls(c)

    def _g_ext_ctrls(self, f, c):
        source = f.ctx.cur_controls
        if c.which == uapi.V4L2_CTRL_WHICH_REQUEST_VAL:
            req = self._request(c.request_fd)
            if req.state is not ReqState.COMPLETE:
                raise_errno(errno.EACCES, f"request {req.id} is not complete")
            source = req.controls
        for i in range(c.count):
            ctrl = c.controls[i]
            c.error_idx = i
            size = formats.control_size(ctrl.id)
            if size is None:
                raise_errno(errno.EINVAL, f"unknown control 0x{ctrl.id:x}")
            data = source.get(ctrl.id) or f.ctx.control(ctrl.id)
            size = len(data)      # a dynamic array: as many elements as were set
            if formats.menu_values(ctrl.id):
                ctrl.value = struct.unpack("<i", data)[0]
                continue
            if ctrl.size < size:
                ctrl.size = size
                raise_errno(errno.ENOSPC, f"control 0x{ctrl.id:x} needs {size} bytes")
            ffi.memmove(ffi.cast("char *", ctrl.ptr), data, size)
            ctrl.size = size
        c.error_idx = c.count

    def _query_ext_ctrl(self, f, q):
        size = formats.control_size(q.id)
        if size is None:
            raise_errno(errno.EINVAL, f"unknown control 0x{q.id:x}")
        menu = formats.menu_values(q.id)
        if menu:
            q.minimum, q.maximum, q.step = min(menu), max(menu), 1
            q.default_value = struct.unpack("<i", formats.default_value(q.id))[0]
        dims = formats.control_desc(q.id).dims
        q.elem_size, q.elems = formats.elem_size(q.id), dims
        q.nr_of_dims, q.dims[0] = (1, dims) if dims > 1 else (0, 0)
        if formats.dynamic_element_size(q.id) is not None:
            q.flags |= 0x0800  # V4L2_CTRL_FLAG_DYNAMIC_ARRAY

    # ---- decoder commands and events

    def _check_dec_cmd(self, cmd):
        if cmd.cmd != uapi.V4L2_DEC_CMD_FLUSH or cmd.flags:
            raise_errno(errno.EINVAL, f"decoder command {cmd.cmd} (only FLUSH)")

    def _try_decoder_cmd(self, f, cmd):
        self._check_dec_cmd(cmd)

    def _decoder_cmd(self, f, cmd):
        self._check_dec_cmd(cmd)
        self.kernel.decoder_flush(f.ctx)

    def _subscribe_event(self, f, sub):
        if sub.type not in (uapi.V4L2_EVENT_EOS, uapi.V4L2_EVENT_SOURCE_CHANGE):
            raise_errno(errno.EINVAL, f"event type {sub.type}")
        f.ctx.subscribed.add(sub.type)

    def _dqevent(self, f, ev):
        raise_errno(errno.ENOENT, "no event pending")

    # ---- media device and requests

    def _media_info(self, info):
        _set_str(info.driver, DRIVER)
        _set_str(info.model, CARD)
        _set_str(info.bus_info, BUS_INFO)
        info.media_version = info.driver_version = KERNEL_VERSION
        return 0

    def _request_queue(self, req: MediaRequest) -> int:
        if req.state is not ReqState.IDLE:
            raise_errno(errno.EBUSY, f"request {req.id} is {req.state.value}")
        buf = req.buffer
        if buf is None:
            raise_errno(errno.ENOENT, f"request {req.id} has no OUTPUT buffer")
        ctx = buf.queue.ctx
        if not req.controls:
            raise_errno(errno.EINVAL, f"request {req.id} has no controls")
        missing = [c for c in formats.required_controls(ctx.codec) if c not in req.controls]
        if missing:
            raise_errno(errno.EINVAL, "request lacks controls " +
                        ", ".join(f"0x{c:x}" for c in missing))
        req.state = ReqState.QUEUED
        buf.set_state(BufState.QUEUED)
        ctx.out_q.ready.add_tail(buf)
        self.kernel.emit("request_queue", None, ctx, lambda: f"request {req.id} {buf.name}")
        self.kernel.try_schedule(ctx)
        return 0

    def _request_reinit(self, req: MediaRequest) -> int:
        if req.state is ReqState.QUEUED:
            raise_errno(errno.EBUSY, f"request {req.id} is queued")
        self._request_release(req)
        req.reinit()
        return 0

    # ------------------------------------------------------------------ mmap, poll

    @kernel_entry
    def mmap(self, fd: int, length: int, offset: int) -> memoryview:
        f = self._file(fd)
        if not isinstance(f, VideoFile):
            raise_errno(errno.ENODEV, f"mmap of fd {fd}")
        q = f.ctx.cap_q if offset & DST_QUEUE_OFF_BASE else f.ctx.out_q
        buf = q.by_offset(offset)
        if buf is None or length > buf.length:
            raise_errno(errno.EINVAL, f"mmap offset 0x{offset:x} length {length}")
        return memoryview(buf.mem)[:length]

    @kernel_entry
    def munmap(self, mapping: memoryview) -> None:
        mapping.release()

    def _revents(self, fd: int, events: int) -> int:
        f = self.files.get(fd)
        if f is None:
            return select.POLLNVAL
        ready = 0
        if isinstance(f, VideoFile):
            ready |= POLL_IN if len(f.ctx.cap_q.done) else 0
            ready |= POLL_OUT if len(f.ctx.out_q.done) else 0
        elif isinstance(f, RequestFile) and f.req.state is ReqState.COMPLETE:
            ready |= select.POLLPRI
        return ready & (events | select.POLLERR | select.POLLHUP)

    @kernel_entry
    def poll(self, fds, timeout):
        """Ready fds now; else run the simulation (virtual time) until some are,
        or until ``timeout`` of virtual time passed, or nothing can happen."""
        if timeout is not None and timeout < 0:
            timeout = None                  # as poll(2): a negative timeout waits forever
        limit = None if timeout is None else self.kernel.clock + math.ceil(timeout * 1000)
        while True:
            ready = [(fd, r) for fd, ev in fds if (r := self._revents(fd, ev))]
            if ready or timeout == 0:
                return ready
            if not self.kernel.progress(until=limit):
                if limit is not None and not self.kernel.threaded:   # virtual time passes
                    self.kernel.clock = max(self.kernel.clock, limit)
                return []

