"""Formats and controls of the decoder, as driver-model.md's "Formats" section says."""
from __future__ import annotations

import functools
import struct
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

@dataclass(frozen=True)
class CtrlDesc:
    """One control of a codec, as the module's dv_ctrl_descs[]."""
    name: str                 # the uapi constant, looked up when used
    required: bool = False    # a request without it fails validation
    dims: int = 1             # array controls: at most this many elements
    dynamic: bool = False     # V4L2_CTRL_FLAG_DYNAMIC_ARRAY: 1..dims elements, as many as set
    menu: tuple = ()          # integer menu controls: allowed values (s32 payload)
    default: int = 0


# The module's table, in its order: the OUTPUT format picks which controls a DECODE
# carries and which a request needs.  A compound control whose struct is not in
# uapi.CONTROL_STRUCTS yet is skipped (the sim cannot size it, no client can set it).
CODEC_CONTROLS = {
    proto.CODEC_VP9: (CtrlDesc("V4L2_CID_STATELESS_VP9_FRAME", required=True),
                      CtrlDesc("V4L2_CID_STATELESS_VP9_COMPRESSED_HDR")),
    # The SPS is not required in every request (it keeps its current value):
    # GStreamer's v4l2slh264dec sets it only when the sequence changes.
    proto.CODEC_H264: (CtrlDesc("V4L2_CID_STATELESS_H264_SPS"),
                       CtrlDesc("V4L2_CID_STATELESS_H264_PPS", required=True),
                       CtrlDesc("V4L2_CID_STATELESS_H264_SCALING_MATRIX"),
                       CtrlDesc("V4L2_CID_STATELESS_H264_DECODE_PARAMS", required=True),
                       CtrlDesc("V4L2_CID_STATELESS_H264_SLICE_PARAMS"),
                       CtrlDesc("V4L2_CID_STATELESS_H264_PRED_WEIGHTS"),
                       CtrlDesc("V4L2_CID_STATELESS_H264_DECODE_MODE", menu=(0, 1), default=1),
                       CtrlDesc("V4L2_CID_STATELESS_H264_START_CODE", menu=(0, 1), default=1)),
    proto.CODEC_AV1: (CtrlDesc("V4L2_CID_STATELESS_AV1_SEQUENCE", required=True),
                      CtrlDesc("V4L2_CID_STATELESS_AV1_FRAME", required=True),
                      CtrlDesc("V4L2_CID_STATELESS_AV1_TILE_GROUP_ENTRY",
                               dims=getattr(uapi, "V4L2_AV1_MAX_TILE_COUNT", 512), dynamic=True),
                      CtrlDesc("V4L2_CID_STATELESS_AV1_FILM_GRAIN")),
}


def _cid(desc: CtrlDesc) -> int | None:
    return getattr(uapi, desc.name, None)


def _usable(desc: CtrlDesc) -> bool:
    cid = _cid(desc)
    return cid is not None and (bool(desc.menu) or cid in uapi.CONTROL_STRUCTS)


@functools.cache
def _controls_by_id() -> dict[int, CtrlDesc]:
    # the tables are constant: built once (every S_EXT_CTRLS and DECODE looks here)
    return {_cid(d): d for descs in CODEC_CONTROLS.values() for d in descs if _usable(d)}


@functools.cache
def _codec_controls(codec: int) -> tuple[int, ...]:
    return tuple(_cid(d) for d in CODEC_CONTROLS.get(codec, ()) if _usable(d))


def all_controls() -> dict[int, CtrlDesc]:
    """Every control the device registers (every codec's, as visl does), by id."""
    return dict(_controls_by_id())


def codec_controls(codec: int) -> list[int]:
    """The ids a DECODE of this codec carries, in the module's order."""
    return list(_codec_controls(codec))


def required_controls(codec: int) -> list[int]:
    return [_cid(d) for d in CODEC_CONTROLS.get(codec, ()) if d.required and _usable(d)]


# The per-control lookups below are cached too: the tables are constant, and every
# S_EXT_CTRLS and DECODE asks them for each control it carries (~20 times a picture).
@functools.cache
def control_desc(cid: int) -> CtrlDesc | None:
    return _controls_by_id().get(cid)


@functools.cache
def elem_size(cid: int) -> int | None:
    """Bytes of one element: a menu's s32 or the control's struct; None if the device
    has no such control."""
    desc = control_desc(cid)
    if desc is None:
        return None
    return 4 if desc.menu else uapi.ffi.sizeof(uapi.CONTROL_STRUCTS[cid])


@functools.cache
def dynamic_element_size(cid: int) -> int | None:
    """The element size of a dynamic array control, None for any other control."""
    desc = control_desc(cid)
    return elem_size(cid) if desc is not None and desc.dynamic else None


@functools.cache
def control_size(cid: int) -> int | None:
    """Payload bytes of a control (the most, for a dynamic array)."""
    size = elem_size(cid)
    return None if size is None else size * control_desc(cid).dims


@functools.cache
def menu_values(cid: int) -> tuple:
    desc = control_desc(cid)
    return desc.menu if desc is not None else ()


@functools.cache
def default_value(cid: int) -> bytes:
    desc = control_desc(cid)
    if desc is not None and desc.menu:
        return struct.pack("<i", desc.default)
    if desc is not None and desc.dynamic:
        return bytes(elem_size(cid))          # one zeroed element
    return bytes(control_size(cid) or 0)
