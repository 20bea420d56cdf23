"""The simulated kernel against docs/driver-model.md, driven by a scripted daemon."""
from __future__ import annotations

import errno
import select
import struct
import tracemalloc

import pytest

from daedalus_v4l2 import proto
from daedalus_v4l2.backends.sim import EntryState, SimDeadlock, SimKernel, SimTransport
from daedalus_v4l2.backends.sim.testing import CAP, OUT, ScriptedDaemon, SimClient
from daedalus_v4l2.backends.sim.vb2 import BufList, BufState, Vb2Queue
from daedalus_v4l2.backends.sim.validate import minimal_vp9_frame
from daedalus_v4l2.errors import DeviceError, InvariantError
from daedalus_v4l2.transport import Transport
from daedalus_v4l2.v4l2 import uapi


ffi = uapi.ffi
SEC = 1_000_000_000


def make(policy=None, daemon=True, **client_kw):
    """A kernel, its chardev with a scripted daemon attached (unless daemon=False), a
    client streaming on both queues."""
    kernel = SimKernel(seed=1)
    d = None
    if daemon:
        d = ScriptedDaemon(kernel.open_chardev(), **({"policy": policy} if policy else {}))
        d.attach(kernel)
    client = SimClient(kernel, **client_kw)
    client.streamon()
    return kernel, d, client


def cookie_in(client, index) -> int:
    magic, cookie = struct.unpack("<4sQ", bytes(client.cap_maps[index][:12]))
    assert magic == b"PIC!"
    return cookie


def finish(kernel, client):
    client.streamoff()
    client.close()
    kernel.ledger.check_all_returned()
    assert kernel.inflight == []


# ------------------------------------------------------------------ the basics

def test_querycap_and_media_info():
    kernel = SimKernel()
    sys = kernel.syscalls()
    fd = sys.open(kernel.video_path)
    cap = ffi.new("struct v4l2_capability *")
    sys.ioctl(fd, uapi.VIDIOC_QUERYCAP, cap)
    assert ffi.string(cap.driver) == b"daedalus_v4l2"
    assert ffi.string(cap.card) == b"daedalus-v4l2"
    assert ffi.string(cap.bus_info) == b"platform:daedalus_v4l2"
    assert cap.device_caps == uapi.V4L2_CAP_VIDEO_M2M_MPLANE | uapi.V4L2_CAP_STREAMING
    media = sys.open(kernel.media_path)
    info = ffi.new("struct media_device_info *")
    sys.ioctl(media, uapi.MEDIA_IOC_DEVICE_INFO, info)
    assert ffi.string(info.driver) == b"daedalus_v4l2"
    with pytest.raises(OSError) as exc:
        sys.open("/dev/video7")
    assert exc.value.errno == errno.ENOENT
    sys.close(fd)
    sys.close(media)
    with pytest.raises(OSError) as exc:
        sys.close(fd)
    assert exc.value.errno == errno.EBADF


def test_formats_sizes_and_layout():
    kernel = SimKernel()
    sys = kernel.syscalls()
    fd = sys.open(kernel.video_path)
    fmts = []
    for i in range(10):
        desc = ffi.new("struct v4l2_fmtdesc *", {"index": i, "type": OUT})
        try:
            sys.ioctl(fd, uapi.VIDIOC_ENUM_FMT, desc)
        except OSError as exc:
            assert exc.errno == errno.EINVAL
            break
        fmts.append(uapi.fourcc_str(desc.pixelformat))
    assert fmts == ["VP9F", "S264", "AV1F"]
    fs = ffi.new("struct v4l2_frmsizeenum *", {"pixel_format": uapi.V4L2_PIX_FMT_VP9_FRAME})
    sys.ioctl(fd, uapi.VIDIOC_ENUM_FRAMESIZES, fs)
    assert (fs.stepwise.min_width, fs.stepwise.max_width) == (16, 4096)

    f = ffi.new("struct v4l2_format *", {"type": OUT})
    sys.ioctl(fd, uapi.VIDIOC_G_FMT, f)
    assert (f.fmt.pix_mp.width, f.fmt.pix_mp.height) == (1280, 720)
    assert f.fmt.pix_mp.plane_fmt[0].sizeimage == 1 << 20
    # Sizes are clamped, not rejected; an unknown fourcc falls back to VP9F.
    f.fmt.pix_mp.width, f.fmt.pix_mp.height, f.fmt.pix_mp.pixelformat = 9000, 5, 0x12345678
    sys.ioctl(fd, uapi.VIDIOC_S_FMT, f)
    assert (f.fmt.pix_mp.width, f.fmt.pix_mp.height) == (4096, 16)
    assert f.fmt.pix_mp.pixelformat == uapi.V4L2_PIX_FMT_VP9_FRAME
    # S_FMT(OUTPUT) resets CAPTURE to NV12 at the same size: ALIGN(W,16), H + ceil(H/2) rows.
    f.fmt.pix_mp.width, f.fmt.pix_mp.height = 100, 51
    sys.ioctl(fd, uapi.VIDIOC_S_FMT, f)
    c = ffi.new("struct v4l2_format *", {"type": CAP})
    sys.ioctl(fd, uapi.VIDIOC_G_FMT, c)
    assert c.fmt.pix_mp.pixelformat == uapi.V4L2_PIX_FMT_NV12
    assert c.fmt.pix_mp.plane_fmt[0].bytesperline == 112
    assert c.fmt.pix_mp.plane_fmt[0].sizeimage == 112 * (51 + 26)
    c.fmt.pix_mp.pixelformat = uapi.V4L2_PIX_FMT_P010
    sys.ioctl(fd, uapi.VIDIOC_S_FMT, c)
    assert c.fmt.pix_mp.plane_fmt[0].bytesperline == 224
    assert c.fmt.pix_mp.num_planes == 1
    # Buffers allocated: the format is fixed.
    rb = ffi.new("struct v4l2_requestbuffers *", {"count": 40, "type": CAP, "memory": 1})
    sys.ioctl(fd, uapi.VIDIOC_REQBUFS, rb)
    assert rb.count == 32
    assert rb.capabilities & uapi.V4L2_BUF_CAP_SUPPORTS_MMAP
    with pytest.raises(OSError) as exc:
        sys.ioctl(fd, uapi.VIDIOC_S_FMT, f)
    assert exc.value.errno == errno.EBUSY
    sys.close(fd)


def test_querybuf_offsets_are_distinct_and_capture_has_bit30():
    kernel, _, client = make()
    offsets = set()
    for buf_type, n in ((OUT, client.n_output), (CAP, client.n_capture)):
        for i in range(n):
            b, planes = client.new_buffer(buf_type, i)
            client.sys.ioctl(client.fd, uapi.VIDIOC_QUERYBUF, b)
            off = planes[0].m.mem_offset
            assert bool(off & (1 << 30)) == (buf_type == CAP)
            offsets.add(off)
    assert len(offsets) == client.n_output + client.n_capture
    finish(kernel, client)


def test_output_capabilities():
    kernel = SimKernel()
    sys = kernel.syscalls()
    fd = sys.open(kernel.video_path)
    rb = ffi.new("struct v4l2_requestbuffers *", {"count": 2, "type": OUT, "memory": 1})
    sys.ioctl(fd, uapi.VIDIOC_REQBUFS, rb)
    for cap in (uapi.V4L2_BUF_CAP_SUPPORTS_MMAP, uapi.V4L2_BUF_CAP_SUPPORTS_REQUESTS,
                uapi.V4L2_BUF_CAP_SUPPORTS_M2M_HOLD_CAPTURE_BUF):
        assert rb.capabilities & cap
    rb.memory = uapi.V4L2_MEMORY_DMABUF
    with pytest.raises(OSError):
        sys.ioctl(fd, uapi.VIDIOC_REQBUFS, rb)
    sys.close(fd)



def test_buffers_are_zero_when_allocated_even_in_memory_another_context_wrote():
    """vb2-vmalloc's memory is zeroed: a new context never sees what a closed one
    left in its buffers.  The sim's buffers come from the C heap and reuse the
    memory of freed ones (vb2.zeroed_memory), so this is calloc's clearing at work."""
    kernel = SimKernel(seed=1)
    for _ in range(4):
        client = SimClient(kernel, n_output=4, n_capture=8)
        maps = client.out_maps + client.cap_maps
        for m in maps:
            assert bytes(m).count(0) == len(m), "a new buffer holds another's bytes"
            m[:] = b"\xab" * len(m)
        client.close()
        del client, maps, m   # nothing views the buffers: their memory goes back to the heap


# ------------------------------------------------------------------ decoding

def test_one_frame_round_trip_and_timestamps_copied():
    kernel, d, client = make()
    client.queue_capture(0)
    ts = 1_700_000_123 * SEC + 456_789_000          # tv_sec large, tv_usec = 456789
    client.queue_output(0, b"\x11" * 100, ts)
    cap = client.dqbuf(CAP)
    assert cap.timestamp_ns == ts and not cap.error
    assert cap.flags & uapi.V4L2_BUF_FLAG_TIMESTAMP_COPY
    assert cap.field == uapi.V4L2_FIELD_NONE
    assert cap.bytesused == client.cap_fmt.fmt.pix_mp.plane_fmt[0].sizeimage
    assert cookie_in(client, cap.index) == 1
    out = client.dqbuf(OUT)
    assert out.timestamp_ns == ts and out.bytesused == 100 and not out.error
    decode = d.decodes[1]
    assert decode.timestamp == ts                    # ns precision on the wire
    assert bytes(decode.bitstream) == b"\x11" * 100
    assert decode.flags & proto.DECODE_FIRST_SLICE
    assert uapi.V4L2_CID_STATELESS_VP9_FRAME in decode.controls
    assert [p.offset for p in decode.planes] == [0, 64 * 48]
    assert d.received[0].type == proto.MSG_STREAM_OPEN
    assert kernel.stats.jobs == kernel.stats.done == 1
    finish(kernel, client)


def test_parked_buffers_complete_in_decode_order_and_their_requests_with_them():
    # Cookie 1 is consumed without pixels (parked); cookie 2 gets its pixels first.
    kernel, d, client = make(policy=lambda m: "consume" if m.cookie == 1 else "pixels")
    for i in range(3):
        client.queue_capture(i)
    requests = [client.queue_output(0, b"a", 1 * SEC), client.queue_output(1, b"b", 2 * SEC)]
    kernel.run_until(lambda: not d.transport.pending())
    states = {e.cookie: e.state for e in kernel.inflight}
    assert states == {1: EntryState.PARKED, 2: EntryState.READY}
    assert kernel.stats.parked_now == 1
    # A parked job still returns its OUTPUT buffer (contract 2) ...
    assert client.sys.poll([(client.fd, select.POLLOUT)], 0) == [(client.fd, select.POLLOUT)]
    # ... but cookie 2 is ready and must wait for cookie 1: nothing to DQBUF yet, and
    # neither request is complete: a request completes with its picture (GStreamer's
    # v4l2codecs take a completed request for a decoded picture and DQBUF it at once).
    assert client.sys.poll([(client.fd, select.POLLIN)], 0) == []
    assert client.sys.poll([(req, select.POLLPRI) for req in requests], 0) == []
    # The parked dst is on no ready queue.
    parked = kernel.inflight[0].dst
    assert parked.state is BufState.PARKED and parked.list is None
    d.send_pixels(1)
    assert client.sys.poll([(req, select.POLLPRI) for req in requests], 0) == \
        [(req, select.POLLPRI) for req in requests]
    assert [client.dqbuf(OUT).index for _ in requests] == [0, 1]
    first, second = client.dqbuf(CAP), client.dqbuf(CAP)
    assert (cookie_in(client, first.index), cookie_in(client, second.index)) == (1, 2)
    assert (first.timestamp_ns, second.timestamp_ns) == (1 * SEC, 2 * SEC)
    assert first.sequence < second.sequence
    assert kernel.stats.parked_max == 1 and kernel.stats.parked_now == 0
    finish(kernel, client)


def test_error_response_gives_error_flag_and_stream_goes_on():
    kernel, _, client = make(policy=lambda m: "error" if m.cookie == 1 else "pixels")
    for i in range(2):
        client.queue_capture(i)
    client.queue_output(0, b"a", 1 * SEC)
    client.queue_output(1, b"b", 2 * SEC)
    first, second = client.dqbuf(CAP), client.dqbuf(CAP)
    assert first.error and not second.error
    assert client.dqbuf(OUT).error
    assert not client.dqbuf(OUT).error
    assert (kernel.stats.errors, kernel.stats.done) == (1, 1)
    finish(kernel, client)


def test_request_completes_with_its_output_buffer():
    kernel, d, client = make()
    client.queue_capture(0)
    req = client.queue_output(0, b"x", SEC)
    # Queued, not completed yet: the daemon has not run.
    assert client.sys.poll([(req, select.POLLPRI)], 0) == []
    with pytest.raises(OSError) as exc:
        client.sys.ioctl(req, uapi.MEDIA_REQUEST_IOC_REINIT)
    assert exc.value.errno == errno.EBUSY
    assert client.sys.poll([(req, select.POLLPRI)], None) == [(req, select.POLLPRI)]
    # The video fd reports both queues done.
    (fd, rev), = client.sys.poll([(client.fd, select.POLLIN | select.POLLOUT)], 0)
    assert rev & select.POLLIN and rev & select.POLLOUT
    # Controls of a completed request can be read back.
    frame = ffi.new("struct v4l2_ctrl_vp9_frame *")
    ctrl = ffi.new("struct v4l2_ext_control[1]")
    ctrl[0].id, ctrl[0].size, ctrl[0].ptr = (uapi.V4L2_CID_STATELESS_VP9_FRAME,
                                             ffi.sizeof(frame[0]), frame)
    ctrls = ffi.new("struct v4l2_ext_controls *", {"which": uapi.V4L2_CTRL_WHICH_REQUEST_VAL,
                                                   "count": 1, "request_fd": req})
    ctrls.controls = ctrl
    client.sys.ioctl(client.fd, uapi.VIDIOC_G_EXT_CTRLS, ctrls)
    client.dqbuf(OUT)
    client.dqbuf(CAP)
    finish(kernel, client)


def test_request_and_qbuf_errors():
    kernel, _, client = make()
    sys, fd = client.sys, client.fd

    def err(call):
        with pytest.raises(OSError) as exc:
            call()
        return exc.value.errno

    # OUTPUT without a request, CAPTURE with one.
    b, planes = client.new_buffer(OUT, 0)
    assert err(lambda: sys.ioctl(fd, uapi.VIDIOC_QBUF, b)) == errno.EBADR
    req = client.alloc_request()
    b, _ = client.new_buffer(CAP, 0)
    b.flags, b.request_fd = uapi.V4L2_BUF_FLAG_REQUEST_FD, req
    assert err(lambda: sys.ioctl(fd, uapi.VIDIOC_QBUF, b)) == errno.EBADR
    # bytesused > length.
    b, planes = client.new_buffer(OUT, 0)
    b.flags, b.request_fd = uapi.V4L2_BUF_FLAG_REQUEST_FD, req
    planes[0].bytesused = client.out_fmt.fmt.pix_mp.plane_fmt[0].sizeimage + 1
    assert err(lambda: sys.ioctl(fd, uapi.VIDIOC_QBUF, b)) == errno.EINVAL
    # A request without a buffer; then one with a buffer but without any control.
    assert err(lambda: sys.ioctl(req, uapi.MEDIA_REQUEST_IOC_QUEUE)) == errno.ENOENT
    client.queue_output(0, b"x", SEC, controls=False, queue_request=False)
    req0 = client.requests[0]
    assert err(lambda: sys.ioctl(req0, uapi.MEDIA_REQUEST_IOC_QUEUE)) == errno.EINVAL
    # A second OUTPUT buffer in the same request.
    b, planes = client.new_buffer(OUT, 1)
    b.flags, b.request_fd = uapi.V4L2_BUF_FLAG_REQUEST_FD, req0
    assert err(lambda: sys.ioctl(fd, uapi.VIDIOC_QBUF, b)) == errno.EBUSY
    # A buffer queued twice.
    b, planes = client.new_buffer(OUT, 0)
    b.flags, b.request_fd = uapi.V4L2_BUF_FLAG_REQUEST_FD, req
    assert err(lambda: sys.ioctl(fd, uapi.VIDIOC_QBUF, b)) == errno.EINVAL
    # Controls: too small a payload is EFAULT (error_idx points at it), as the 6.12 core
    # answers; a larger one is accepted and its size rewritten; an unknown id is EINVAL.
    frame = minimal_vp9_frame()
    ctrl = ffi.new("struct v4l2_ext_control[2]")
    ctrl[0].id, ctrl[0].size, ctrl[0].ptr = (uapi.V4L2_CID_STATELESS_VP9_FRAME,
                                             ffi.sizeof(frame[0]), frame)
    ctrl[1].id, ctrl[1].size, ctrl[1].ptr = (uapi.V4L2_CID_STATELESS_VP9_FRAME, 3, frame)
    ctrls = ffi.new("struct v4l2_ext_controls *", {"which": uapi.V4L2_CTRL_WHICH_REQUEST_VAL,
                                                   "count": 2, "request_fd": req})
    ctrls.controls = ctrl
    assert err(lambda: sys.ioctl(fd, uapi.VIDIOC_S_EXT_CTRLS, ctrls)) == errno.EFAULT
    assert ctrls.error_idx == 1
    big = ffi.new("char[]", bytes(ffi.buffer(frame)) + bytes(16))   # a valid frame, and more
    ctrl[1].size, ctrl[1].ptr = ffi.sizeof(big), big
    sys.ioctl(fd, uapi.VIDIOC_TRY_EXT_CTRLS, ctrls)
    assert ctrl[1].size == ffi.sizeof(frame[0])
    ctrl[1].id = 0x00A40FFF
    assert err(lambda: sys.ioctl(fd, uapi.VIDIOC_TRY_EXT_CTRLS, ctrls)) == errno.EINVAL
    # H.264 menu controls are integers.
    menu = ffi.new("struct v4l2_ext_control[1]")
    menu[0].id, menu[0].value = uapi.V4L2_CID_STATELESS_H264_START_CODE, 0
    mc = ffi.new("struct v4l2_ext_controls *", {"count": 1})
    mc.controls = menu
    sys.ioctl(fd, uapi.VIDIOC_S_EXT_CTRLS, mc)
    menu[0].value = 7
    assert err(lambda: sys.ioctl(fd, uapi.VIDIOC_S_EXT_CTRLS, mc)) == errno.ERANGE
    # REINIT of the idle request gives its buffer back.
    sys.ioctl(req0, uapi.MEDIA_REQUEST_IOC_REINIT)
    assert [e.name for e in kernel.ledger.outstanding()] == []
    finish(kernel, client)


def test_large_bitstream_goes_through():
    size = 4 << 20
    kernel, d, client = make(sizeimage=size + 4096, n_output=1, n_capture=1)
    assert client.out_fmt.fmt.pix_mp.plane_fmt[0].sizeimage >= size
    data = bytes(range(256)) * (size // 256)
    client.queue_capture(0)
    client.queue_output(0, data, SEC)
    assert not client.dqbuf(CAP).error
    assert bytes(d.decodes[1].bitstream) == data
    finish(kernel, client)


def test_sizeimage_is_capped_at_64mib():
    kernel = SimKernel()
    client = SimClient(kernel, n_output=1, n_capture=1, sizeimage=1 << 30)
    assert client.out_fmt.fmt.pix_mp.plane_fmt[0].sizeimage == 64 << 20
    client.close()


def test_hold_capture_slices_share_one_capture_buffer():
    def policy(msg):
        return "slice" if msg.flags & proto.DECODE_HOLD_CAPTURE else "pixels"
    kernel, d, client = make(policy=policy)
    for i in range(3):
        client.queue_capture(i)
    client.queue_output(0, b"s1", 1 * SEC, hold=True)
    client.queue_output(1, b"s2", 1 * SEC)           # last slice of picture 1
    picture = client.dqbuf(CAP)
    assert picture.timestamp_ns == 1 * SEC and not picture.error
    assert client.dqbuf(OUT).index == 0 and client.dqbuf(OUT).index == 1
    first, second = d.decodes[1], d.decodes[2]
    assert first.flags == proto.DECODE_HOLD_CAPTURE | proto.DECODE_FIRST_SLICE
    assert second.flags == 0 and second.capture_index == first.capture_index
    # A held picture is released by the next picture's timestamp.
    client.queue_output(2, b"p2", 2 * SEC, hold=True)
    kernel.run_until(lambda: not d.transport.pending())
    assert kernel.contexts[0].held is not None
    assert client.sys.poll([(client.fd, select.POLLIN)], 0) == []
    client.dqbuf(OUT)
    client.queue_output(0, b"p3", 3 * SEC)
    released = client.dqbuf(CAP)
    assert released.timestamp_ns == 2 * SEC
    assert client.dqbuf(CAP).timestamp_ns == 3 * SEC
    finish(kernel, client)


def test_flush_releases_held_capture_and_reaches_the_daemon():
    kernel, d, client = make(policy=lambda m: "slice")
    client.queue_capture(0)
    client.queue_output(0, b"s1", SEC, hold=True)
    client.dqbuf(OUT)
    assert kernel.contexts[0].held is not None
    cmd = ffi.new("struct v4l2_decoder_cmd *", {"cmd": uapi.V4L2_DEC_CMD_STOP})
    with pytest.raises(OSError):
        client.sys.ioctl(client.fd, uapi.VIDIOC_TRY_DECODER_CMD, cmd)
    client.flush()
    assert client.dqbuf(CAP).timestamp_ns == SEC
    kernel.run_until(lambda: not d.transport.pending())
    assert proto.MSG_FLUSH in [m.type for m in d.received]
    finish(kernel, client)


def zeroed(cid) -> bytes:
    return bytes(ffi.sizeof(uapi.CONTROL_STRUCTS[cid]))


def test_h264_stream_carries_its_eight_controls():
    kernel = SimKernel()
    d = ScriptedDaemon(kernel.open_chardev()).attach(kernel)
    client = SimClient(kernel, pixelformat=uapi.V4L2_PIX_FMT_H264_SLICE)
    client.streamon()
    client.queue_capture(0)
    sps, pps, params = (uapi.V4L2_CID_STATELESS_H264_SPS, uapi.V4L2_CID_STATELESS_H264_PPS,
                        uapi.V4L2_CID_STATELESS_H264_DECODE_PARAMS)
    # Without DECODE_PARAMS the request does not validate.
    with pytest.raises(OSError) as exc:
        client.queue_output(0, b"\0\0\1slice", SEC, controls={sps: zeroed(sps)})
    assert exc.value.errno == errno.EINVAL
    # (OUTPUT 0 stays bound to that request until STREAMOFF gives it back.)
    # The START_CODE menu may be set per request, like any control.
    client.queue_output(1, b"\0\0\1slice", SEC, controls={
        sps: zeroed(sps), pps: zeroed(pps), params: zeroed(params),
        uapi.V4L2_CID_STATELESS_H264_START_CODE: 0})
    assert not client.dqbuf(CAP).error
    opened, decode = d.received[0], d.decodes[1]
    assert opened.codec == proto.CODEC_H264 and decode.codec == proto.CODEC_H264
    assert len(decode.controls) == 8                  # every control of the codec travels
    assert decode.controls[uapi.V4L2_CID_STATELESS_H264_START_CODE] == struct.pack("<i", 0)
    assert decode.controls[uapi.V4L2_CID_STATELESS_H264_DECODE_MODE] == struct.pack("<i", 1)
    assert decode.controls[sps] == zeroed(sps)
    finish(kernel, client)


def test_av1_tile_groups_are_a_dynamic_array():
    kernel = SimKernel()
    d = ScriptedDaemon(kernel.open_chardev()).attach(kernel)
    client = SimClient(kernel, pixelformat=uapi.V4L2_PIX_FMT_AV1_FRAME)
    client.streamon()
    client.queue_capture(0)
    seq, frame, tiles = (uapi.V4L2_CID_STATELESS_AV1_SEQUENCE, uapi.V4L2_CID_STATELESS_AV1_FRAME,
                         uapi.V4L2_CID_STATELESS_AV1_TILE_GROUP_ENTRY)
    three = b"\1" * (3 * ffi.sizeof(uapi.CONTROL_STRUCTS[tiles]))
    client.queue_output(0, b"obu", SEC, controls={seq: zeroed(seq), frame: zeroed(frame),
                                                  tiles: three})
    assert not client.dqbuf(CAP).error
    assert d.decodes[1].controls[tiles] == three
    assert len(d.decodes[1].controls) == 4
    req = client.alloc_request()
    with pytest.raises(OSError) as exc:
        client.set_controls(req, {tiles: three[:-1]})  # not a whole number of entries
    assert exc.value.errno == errno.EFAULT
    finish(kernel, client)


def test_decode_carries_the_codec_controls():
    """The request's values, and the codec's other controls at their current values."""
    kernel, d, client = make()
    client.queue_capture(0)
    client.queue_capture(1)
    req = client.alloc_request()
    frame = minimal_vp9_frame()
    frame.profile, frame.bit_depth = 2, 10
    ctrl = ffi.new("struct v4l2_ext_control[1]")
    ctrl[0].id, ctrl[0].size, ctrl[0].ptr = (uapi.V4L2_CID_STATELESS_VP9_FRAME,
                                             ffi.sizeof(frame[0]), frame)
    ctrls = ffi.new("struct v4l2_ext_controls *", {"which": uapi.V4L2_CTRL_WHICH_REQUEST_VAL,
                                                   "count": 1, "request_fd": req})
    ctrls.controls = ctrl
    client.sys.ioctl(client.fd, uapi.VIDIOC_S_EXT_CTRLS, ctrls)
    b, planes = client.new_buffer(OUT, 0)
    planes[0].bytesused, b.flags, b.request_fd = 1, uapi.V4L2_BUF_FLAG_REQUEST_FD, req
    client.sys.ioctl(client.fd, uapi.VIDIOC_QBUF, b)
    client.sys.ioctl(req, uapi.MEDIA_REQUEST_IOC_QUEUE)
    client.requests[0] = req
    client.dqbuf(CAP)
    sent = d.decodes[1].controls[uapi.V4L2_CID_STATELESS_VP9_FRAME]
    assert sent == bytes(ffi.buffer(frame))
    assert set(d.decodes[1].controls) == {
        cid for cid in (uapi.V4L2_CID_STATELESS_VP9_FRAME,
                        uapi.V4L2_CID_STATELESS_VP9_COMPRESSED_HDR)
        if cid in uapi.CONTROL_STRUCTS}
    finish(kernel, client)


def test_p010_capture_layout_reaches_the_daemon():
    kernel = SimKernel()
    d = ScriptedDaemon(kernel.open_chardev()).attach(kernel)
    client = SimClient(kernel, n_capture=0, width=100, height=51)
    client.reqbufs(CAP, 0)
    client.s_fmt(CAP, uapi.V4L2_PIX_FMT_P010, 0, 0)
    client.n_capture = client.reqbufs(CAP, 2)
    client.cap_maps = [client.map(CAP, i) for i in range(2)]
    client.streamon()
    client.queue_capture(1)
    client.queue_output(0, b"x", SEC)
    assert client.dqbuf(CAP).index == 1
    decode = d.decodes[1]
    assert decode.capture_fourcc == uapi.V4L2_PIX_FMT_P010
    assert [(p.offset, p.bytesperline, p.height) for p in decode.planes] == \
        [(0, 224, 51), (224 * 51, 224, 26)]
    assert decode.capture_size == 224 * 77 and decode.capture_index == 1
    finish(kernel, client)


def test_flush_with_srcs_queued_follows_the_last_decode():
    kernel, d, client = make(policy=lambda m: "none")
    for i in range(2):
        client.queue_capture(i)
    client.queue_output(0, b"a", 1 * SEC, hold=True)
    client.queue_output(1, b"b", 2 * SEC, hold=True)
    client.flush()                       # OUTPUT 1 is still queued: FLUSH waits for it
    kernel.run_until(lambda: not d.transport.pending())
    assert [m.type for m in d.received] == [proto.MSG_STREAM_OPEN, proto.MSG_DECODE]
    d.transport.send(d.frame(1, proto.FRAME_SRC_CONSUMED))      # slice 1 held
    kernel.run_until(lambda: not d.transport.pending())
    assert [m.type for m in d.received][2:] == [proto.MSG_DECODE, proto.MSG_FLUSH]
    # The last src lost its HOLD flag: its dst completes when the daemon answers.
    assert not d.decodes[2].flags & proto.DECODE_HOLD_CAPTURE
    d.transport.send(d.frame(2, proto.FRAME_SRC_CONSUMED | proto.FRAME_HAS_PIXELS,
                             plane_bytes=[1]))
    assert client.dqbuf(CAP).timestamp_ns == 1 * SEC     # slice 1's picture, released
    assert client.dqbuf(CAP).timestamp_ns == 2 * SEC
    finish(kernel, client)


def test_a_daemon_that_does_not_read_fails_jobs_at_once():
    kernel, d, client = make()
    kernel.faults.stall_daemon = True
    for _ in range(64):                  # fill the chardev's queue with PONGs
        d.transport.send(proto.Message(proto.MSG_PING))
    with pytest.raises(OSError) as exc:
        d.transport.send(proto.Message(proto.MSG_PING))
    assert exc.value.errno == errno.ENOSPC
    client.queue_capture(0)
    client.queue_output(0, b"a", SEC)
    assert client.dqbuf(CAP).error and kernel.clock == 0
    finish(kernel, client)


# ------------------------------------------------------------------ failures

def test_streamoff_mid_flight_returns_everything():
    kernel, d, client = make(policy=lambda m: "none")
    for i in range(3):
        client.queue_capture(i)
    client.queue_output(0, b"a", 1 * SEC)
    client.queue_output(1, b"b", 2 * SEC)
    kernel.step()                       # STREAM_OPEN
    kernel.step()                       # DECODE cookie 1, never answered
    assert [e.cookie for e in kernel.inflight] == [1]
    assert len(kernel.ledger.outstanding()) == 5
    # STREAMOFF of OUTPUT: the job is cancelled; its CAPTURE comes back with ERROR.
    client.streamoff(OUT)
    assert kernel.inflight == [] and kernel.running is None
    cap = client.dqbuf(CAP)
    assert cap.error and cap.timestamp_ns == 1 * SEC
    with pytest.raises(OSError) as exc:
        client.dqbuf(OUT)                # the queue is off: nothing to wait for
    assert exc.value.errno == errno.EINVAL
    client.streamoff(CAP)
    assert kernel.ledger.outstanding() == []
    assert kernel.clock == 0             # nothing waited
    # A late answer for the cancelled cookie is counted and refused with ENOENT.
    with pytest.raises(OSError) as exc:
        d.transport.send(proto.FrameResponse(stream_id=client.ctx.id, cookie=1,
                                             flags=proto.FRAME_SRC_CONSUMED))
    assert exc.value.errno == errno.ENOENT
    assert kernel.stats.unknown_cookie == 1
    finish(kernel, client)


def test_watchdog_fails_a_dropped_response():
    kernel, d, client = make()
    kernel.faults.drop_responses = 1
    for i in range(2):
        client.queue_capture(i)
    client.queue_output(0, b"a", 1 * SEC)
    client.queue_output(1, b"b", 2 * SEC)
    first = client.dqbuf(CAP)            # blocks: the virtual clock runs to the watchdog
    assert first.error and kernel.clock == 2000
    assert kernel.stats.watchdog_expiries == 1
    assert client.dqbuf(OUT).error
    second = client.dqbuf(CAP)           # the next job ran after the expiry and decoded
    assert not second.error and cookie_in(client, second.index) == 2
    finish(kernel, client)


def test_stalled_daemon_poll_times_out_in_virtual_time():
    kernel, d, client = make()
    kernel.faults.stall_daemon = True
    client.queue_capture(0)
    client.queue_output(0, b"a", SEC)
    assert client.sys.poll([(client.fd, select.POLLIN)], 0.5) == []
    assert kernel.clock == 500 and kernel.stats.watchdog_expiries == 0
    assert client.sys.poll([(client.fd, select.POLLIN)], None) == [(client.fd, select.POLLIN)]
    assert kernel.stats.watchdog_expiries == 1
    assert client.dqbuf(CAP).error
    assert d.transport.pending() == 2     # STREAM_OPEN and the cancelled job's DECODE
    kernel.faults.stall_daemon = False
    kernel.run_until(lambda: not d.transport.pending())
    # its CAPTURE cannot be mapped: the job is gone (ENOENT, an unknown cookie, not a rejection)
    assert [e.errno for e in d.refused] == [errno.ENOENT]
    assert kernel.stats.rejected_messages == 0 and kernel.stats.unknown_cookie == 1
    finish(kernel, client)


def test_no_daemon_fails_at_once():
    kernel, _, client = make(daemon=False)
    client.queue_capture(0)
    client.queue_output(0, b"a", SEC)
    assert client.dqbuf(CAP).error and client.dqbuf(OUT).error
    assert kernel.clock == 0 and kernel.stats.errors == 1
    finish(kernel, client)


def test_killed_daemon_fails_in_flight_at_once_and_can_come_back():
    kernel, d, client = make(policy=lambda m: "consume")
    for i in range(3):
        client.queue_capture(i)
    client.queue_output(0, b"a", 1 * SEC)
    client.queue_output(1, b"b", 2 * SEC)
    client.dqbuf(OUT)
    client.dqbuf(OUT)
    assert kernel.stats.parked_now == 2
    kernel.faults.kill_daemon()
    assert kernel.inflight == [] and kernel.clock == 0
    errored = [client.dqbuf(CAP), client.dqbuf(CAP)]
    assert all(c.error for c in errored)
    with pytest.raises(OSError) as exc:
        d.transport.send(proto.FrameResponse(stream_id=1, cookie=1, flags=proto.FRAME_HAS_PIXELS))
    assert exc.value.errno == errno.EBADF
    # Jobs after that fail at once; a new daemon gets a fresh STREAM_OPEN.
    client.queue_output(0, b"c", 3 * SEC)
    assert client.dqbuf(CAP).error
    d2 = ScriptedDaemon(kernel.open_chardev()).attach(kernel)
    client.dqbuf(OUT)
    client.queue_capture(errored[0].index)
    client.queue_output(1, b"d", 4 * SEC)
    assert not client.dqbuf(CAP).error
    assert d2.received[0].type == proto.MSG_STREAM_OPEN
    finish(kernel, client)


def test_second_chardev_open_is_ebusy():
    kernel = SimKernel()
    t = kernel.open_chardev()
    assert isinstance(t, SimTransport) and isinstance(t, Transport)
    with pytest.raises(OSError) as exc:
        kernel.open_chardev()
    assert exc.value.errno == errno.EBUSY
    t.close()
    kernel.open_chardev().close()


@pytest.mark.parametrize("mangle", ["magic", "short", "length", "direction", "flags"])
def test_bad_messages_are_rejected_and_counted(mangle):
    kernel, d, client = make(policy=lambda m: "none")
    client.queue_capture(0)
    client.queue_output(0, b"a", SEC)
    kernel.run_until(lambda: not d.transport.pending())
    good = proto.encode(proto.FrameResponse(stream_id=1, cookie=1,
                                            flags=proto.FRAME_SRC_CONSUMED))
    bad = {
        "magic": b"XXXX" + good[4:],
        "short": good[:10],
        "length": good + b"\0\0\0\0",
        "direction": proto.encode(proto.Message(proto.MSG_STREAM_CLOSE, stream_id=1)),
        "flags": good[:proto.HEADER_SIZE] + struct.pack("<iI", 0, 0x80) +
                 good[proto.HEADER_SIZE + 8:],
    }[mangle]
    with pytest.raises(OSError) as exc:
        d.transport._send_internal(bad)
    assert exc.value.errno == errno.EINVAL
    assert kernel.stats.rejected_messages == 1
    assert [e.cookie for e in kernel.inflight] == [1]   # nothing else changed
    finish(kernel, client)


def test_wrong_stream_id_is_rejected():
    kernel, d, client = make(policy=lambda m: "none")
    client.queue_capture(0)
    client.queue_output(0, b"a", SEC)
    kernel.run_until(lambda: not d.transport.pending())
    with pytest.raises(OSError):
        d.transport.send(proto.FrameResponse(stream_id=99, cookie=1, flags=proto.FRAME_ERROR))
    assert kernel.stats.rejected_messages == 1
    finish(kernel, client)


def test_duplicate_and_unknown_responses_are_counted_not_fatal():
    kernel, d, client = make(policy=lambda m: "consume")
    client.queue_capture(0)
    client.queue_output(0, b"a", SEC)
    client.dqbuf(OUT)
    with pytest.raises(OSError) as exc:
        d.transport.send(d.frame(1, proto.FRAME_SRC_CONSUMED))    # a second SRC_CONSUMED
    assert exc.value.errno == errno.EALREADY
    assert kernel.stats.duplicate_response == 1
    with pytest.raises(OSError) as exc:
        d.transport.send(proto.FrameResponse(stream_id=1, cookie=77, flags=proto.FRAME_ERROR))
    assert exc.value.errno == errno.ENOENT
    assert kernel.stats.unknown_cookie == 1
    d.send_pixels(1)
    assert not client.dqbuf(CAP).error
    with pytest.raises(OSError) as exc:                           # a finished cookie
        d.transport.send(d.frame(1, proto.FRAME_HAS_PIXELS, plane_bytes=[1]))
    assert exc.value.errno == errno.ENOENT
    assert kernel.stats.unknown_cookie == 2
    assert kernel.stats.rejected_messages == 0
    finish(kernel, client)


def test_capture_map_only_for_jobs_in_flight():
    kernel, d, client = make(policy=lambda m: "none")
    client.queue_capture(0)
    client.queue_output(0, b"a", SEC)
    kernel.run_until(lambda: not d.transport.pending())
    req = d.decodes[1]
    assert len(d.transport.capture_memory(req)) == req.capture_size
    client.streamoff()
    with pytest.raises(OSError) as exc:
        d.transport.capture_memory(req)
    # as a FRAME for a finished cookie: ENOENT, counted, not a rejection
    assert exc.value.errno == errno.ENOENT
    assert (kernel.stats.unknown_cookie, kernel.stats.rejected_messages) == (1, 0)
    finish(kernel, client)


def test_bytesused_larger_than_the_buffer_is_an_error():
    kernel, d, client = make(policy=lambda m: "none")
    client.queue_capture(0)
    client.queue_output(0, b"a", SEC)
    kernel.run_until(lambda: not d.transport.pending())
    with pytest.raises(OSError) as exc:
        d.transport.send(d.frame(1, proto.FRAME_SRC_CONSUMED | proto.FRAME_HAS_PIXELS,
                                 plane_bytes=[d.decodes[1].capture_size + 1]))
    assert exc.value.errno == errno.EOVERFLOW
    assert kernel.stats.rejected_messages == 1
    assert client.dqbuf(CAP).error             # the job completed with ERROR
    finish(kernel, client)


def test_corrupt_bitstream_fault():
    kernel, d, client = make()
    kernel.faults.corrupt_bitstreams = 1
    client.queue_capture(0)
    client.queue_output(0, b"\0" * 64, SEC)
    client.dqbuf(CAP)
    assert bytes(d.decodes[1].bitstream) != b"\0" * 64
    assert bytes(client.out_maps[0][:64]) == b"\0" * 64     # the OUTPUT buffer is untouched
    finish(kernel, client)


# ------------------------------------------------------------------ blocking and scheduling

def test_dqbuf_without_capture_buffers_is_a_detected_deadlock():
    kernel, _, client = make()
    client.queue_output(0, b"a", SEC)
    with pytest.raises(SimDeadlock) as exc:
        client.dqbuf(CAP)
    assert isinstance(exc.value, DeviceError)
    assert "CAPTURE" in str(exc.value) and "0 CAPTURE buffers ready" in str(exc.value)
    nb = SimClient(kernel, nonblock=True)
    nb.streamon()
    with pytest.raises(OSError) as exc:
        nb.dqbuf(CAP)
    assert exc.value.errno == errno.EAGAIN
    nb.streamoff()
    nb.close()
    finish(kernel, client)


def test_two_contexts_take_turns_one_job_at_a_time():
    kernel = SimKernel()
    d = ScriptedDaemon(kernel.open_chardev(), policy=lambda m: "none").attach(kernel)
    a, b = SimClient(kernel), SimClient(kernel)
    for c in (a, b):
        c.streamon()
        c.queue_capture(0)
        c.queue_capture(1)
    a.queue_output(0, b"a0", SEC)
    a.queue_output(1, b"a1", 2 * SEC)
    b.queue_output(0, b"b0", SEC)
    assert [e.ctx_id for e in kernel.inflight] == [a.ctx.id]     # one job per device
    kernel.run_until(lambda: not d.transport.pending())
    d.send_pixels(1, consumed=True)
    assert [e.ctx_id for e in kernel.inflight] == [b.ctx.id]     # b was waiting: its turn
    kernel.run_until(lambda: not d.transport.pending())
    d.send_pixels(2, consumed=True)
    assert [e.ctx_id for e in kernel.inflight] == [a.ctx.id]
    assert [m.stream_id for m in d.received if m.type == proto.MSG_STREAM_OPEN] == [1, 2]
    for c in (a, b):
        c.streamoff()
        c.close()
    kernel.ledger.check_all_returned()


def test_close_returns_everything_and_closes_the_session():
    kernel, d, client = make(policy=lambda m: "consume")
    client.queue_capture(0)
    client.queue_output(0, b"a", SEC)
    client.queue_output(1, b"b", SEC * 2)
    client.dqbuf(OUT)
    client.close()                       # no STREAMOFF first
    kernel.ledger.check_all_returned()
    assert kernel.inflight == [] and kernel.contexts == []
    kernel.run_until(lambda: not d.transport.pending())
    assert d.received[-1].type == proto.MSG_STREAM_CLOSE


def test_events_are_published():
    kernel = SimKernel()
    events = []
    kernel.subscribe(events.append)
    ScriptedDaemon(kernel.open_chardev()).attach(kernel)
    client = SimClient(kernel)
    client.streamon()
    client.queue_capture(0)
    client.queue_output(0, b"a", SEC)
    client.dqbuf(CAP)
    kinds = [e.kind for e in events]
    for kind in ("ctx_open", "streamon", "qbuf", "request_queue", "device_run", "send", "frame",
                 "job_finish", "buf_done", "complete", "dqbuf"):
        assert kind in kinds
    run = next(e for e in events if e.kind == "device_run")
    assert (run.cookie, run.ctx_id, run.clock) == (1, client.ctx.id, 0)
    finish(kernel, client)


def test_subscribe_event_and_ping():
    kernel, d, client = make()
    sub = ffi.new("struct v4l2_event_subscription *", {"type": uapi.V4L2_EVENT_EOS})
    client.sys.ioctl(client.fd, uapi.VIDIOC_SUBSCRIBE_EVENT, sub)
    sub.type = 1234
    with pytest.raises(OSError):
        client.sys.ioctl(client.fd, uapi.VIDIOC_SUBSCRIBE_EVENT, sub)
    d.transport.send(proto.Message(proto.MSG_PING, cookie=42))
    assert d.transport.receive(0).type == proto.MSG_PONG
    finish(kernel, client)


# ------------------------------------------------------------------ the checks themselves

def test_list_and_state_checks_raise():
    q = Vb2Queue(1, CAP)
    q.ctx = None
    q.allocate(1, 4096)
    buf = q.buffers[0]
    q.ready.add_tail(buf)
    with pytest.raises(InvariantError, match="two lists"):
        q.done.add_tail(buf)
    q.ready.del_(buf)
    with pytest.raises(InvariantError, match="second list_del"):
        q.ready.del_(buf)
    with pytest.raises(InvariantError, match="queued while not owned"):
        buf.state = BufState.QUEUED
        buf.set_state(BufState.QUEUED)
    buf.set_state(BufState.DONE)
    with pytest.raises(InvariantError, match="returned twice"):
        buf.set_state(BufState.DONE)
    assert isinstance(BufList("x"), BufList)


def test_the_ledger_keeps_only_the_buffers_out():
    """A decode that runs for hours queues millions of buffers: the ledger holds
    the ones not back yet, not a record of every QBUF so far."""
    kernel, _, client = make()
    buf = client.ctx.cap_q.buffers[0]
    kernel.ledger.queued(buf)
    kernel.ledger.returned(buf, "dqbuf")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20_000):
            kernel.ledger.queued(buf)
            kernel.ledger.returned(buf, "dqbuf")
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024
    assert kernel.ledger.outstanding() == []


def test_ledger_catches_a_buffer_returned_twice():
    kernel, _, client = make()
    buf = client.ctx.cap_q.buffers[0]
    kernel.ledger.queued(buf)
    kernel.ledger.returned(buf, "dqbuf")
    with pytest.raises(InvariantError, match="returned twice"):
        kernel.ledger.returned(buf, "dqbuf")
    kernel.ledger.queued(buf)
    with pytest.raises(InvariantError, match="never returned"):
        kernel.ledger.check_all_returned()
