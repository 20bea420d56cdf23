"""Formats and controls of the decoder, as driver-model.md's "Formats" section says."""
from __future__ import annotations

from dataclasses import dataclass

from ... import proto
from ...v4l2 import uapi

MIN_SIZE, MAX_SIZE = 16, 4096
DEFAULT_WIDTH, DEFAULT_HEIGHT = 1280, 720
MIN_SIZEIMAGE = 1 << 20
MAX_SIZEIMAGE = 64 << 20
V4L2_FMT_FLAG_COMPRESSED = 0x0001
V4L2_FRMSIZE_TYPE_STEPWISE = 3

# OUTPUT (coded) formats: fourcc -> (wire codec, description)
CODED = {
    uapi.V4L2_PIX_FMT_VP9_FRAME: (proto.CODEC_VP9, "VP9 Frame"),
    uapi.V4L2_PIX_FMT_H264_SLICE: (proto.CODEC_H264, "H.264 Parsed Slice Data"),
    uapi.V4L2_PIX_FMT_AV1_FRAME: (proto.CODEC_AV1, "AV1 Frame"),
}
# CAPTURE (decoded) formats: fourcc -> (bytes per sample, description)
DECODED = {
    uapi.V4L2_PIX_FMT_NV12: (1, "Y/UV 4:2:0"),
    uapi.V4L2_PIX_FMT_P010: (2, "10-bit Y/UV 4:2:0"),
}


@dataclass
class Format:
    """The part of v4l2_pix_format_mplane a queue keeps (one plane in both queues)."""
    pixelformat: int
    width: int
    height: int
    bytesperline: int
    sizeimage: int


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def _clamp(v: int) -> int:
    return max(MIN_SIZE, min(MAX_SIZE, v))


def default_sizeimage(width: int, height: int) -> int:
    return max(width * height * 3 // 2 // 2, MIN_SIZEIMAGE)


def coded_format(pixelformat: int, width: int, height: int, sizeimage: int = 0) -> Format:
    """OUTPUT: unknown fourccs fall back to the first; sizes are clamped, not rejected;
    sizeimage may be raised by the client up to 64 MiB (it bounds the bitstream)."""
    if pixelformat not in CODED:
        pixelformat = next(iter(CODED))
    width, height = _clamp(width), _clamp(height)
    size = min(max(sizeimage, default_sizeimage(width, height)), MAX_SIZEIMAGE)
    return Format(pixelformat, width, height, 0, size)


def decoded_format(pixelformat: int, width: int, height: int) -> Format:
    """CAPTURE at the OUTPUT size: Y plane then CbCr plane in one allocation."""
    if pixelformat not in DECODED:
        pixelformat = uapi.V4L2_PIX_FMT_NV12
    bpl = DECODED[pixelformat][0] * _align(width, 16)
    return Format(pixelformat, width, height, bpl, bpl * (height + (height + 1) // 2))


def capture_planes(fmt: Format) -> list[proto.Plane]:
    """The layout the daemon writes: plane 0 = Y, plane 1 = CbCr, same buffer."""
    y_rows, c_rows = fmt.height, (fmt.height + 1) // 2
    return [proto.Plane(0, fmt.bytesperline, y_rows),
            proto.Plane(fmt.bytesperline * y_rows, fmt.bytesperline, c_rows)]


def read_format(f) -> Format:
    pix = f.fmt.pix_mp
    return Format(pix.pixelformat, pix.width, pix.height,
                  pix.plane_fmt[0].bytesperline, pix.plane_fmt[0].sizeimage)


def write_format(f, fmt: Format) -> None:
    pix = f.fmt.pix_mp
    pix.width, pix.height, pix.pixelformat = fmt.width, fmt.height, fmt.pixelformat
    pix.field = uapi.V4L2_FIELD_NONE
    pix.colorspace = uapi.V4L2_COLORSPACE_REC709
    pix.num_planes = 1
    pix.flags = 0
    pix.plane_fmt[0].bytesperline = fmt.bytesperline
    pix.plane_fmt[0].sizeimage = fmt.sizeimage


# ---- controls -------------------------------------------------------------------------

# H.264 integer menu controls (set on the device, not per request): allowed values.
MENU_CONTROLS = {
    uapi.V4L2_CID_STATELESS_H264_DECODE_MODE: (0, 1),   # SLICE_BASED, FRAME_BASED
    uapi.V4L2_CID_STATELESS_H264_START_CODE: (0, 1),    # NONE, ANNEX_B
}
MENU_DEFAULTS = {
    uapi.V4L2_CID_STATELESS_H264_DECODE_MODE: 1,
    uapi.V4L2_CID_STATELESS_H264_START_CODE: 1,
}
# The controls a request must carry, by codec.  Looked up by name so that codecs
# whose control structs are not in uapi.CONTROL_STRUCTS yet require nothing.
_REQUIRED_NAMES = {
    proto.CODEC_VP9: ("V4L2_CID_STATELESS_VP9_FRAME",),
    proto.CODEC_H264: ("V4L2_CID_STATELESS_H264_SPS", "V4L2_CID_STATELESS_H264_PPS",
                       "V4L2_CID_STATELESS_H264_DECODE_PARAMS"),
    proto.CODEC_AV1: ("V4L2_CID_STATELESS_AV1_SEQUENCE", "V4L2_CID_STATELESS_AV1_FRAME"),
}


def control_size(cid: int) -> int | None:
    """The payload size of a compound stateless control, None if it is not one."""
    ctype = uapi.CONTROL_STRUCTS.get(cid)
    return None if ctype is None else uapi.ffi.sizeof(ctype)


def required_controls(codec: int) -> list[int]:
    cids = (getattr(uapi, name, None) for name in _REQUIRED_NAMES.get(codec, ()))
    return [cid for cid in cids if cid in uapi.CONTROL_STRUCTS]
