"""The part of the V4L2 and media-controller uAPI this project uses, for cffi.

These are the kernel's ABI-stable userspace structs (``<linux/videodev2.h>``,
``<linux/v4l2-controls.h>``, ``<linux/media.h>``), declared for cffi's ABI
mode (in ``uapi_cdef.py``; parsed at install time, see ``daedalus_v4l2.cdefs``)
so that no compiler is needed at run time.  ``tests/test_layouts.py``
compiles the system headers with gcc and checks every size and offset here
against them, so a slip in this file fails the test suite.

The same structs are used against a real /dev/videoN (fcntl.ioctl on the
struct's buffer) and against the simulated kernel, which reads them the
way the kernel's ioctl handlers do.
"""
from __future__ import annotations

from .. import cdefs
from .uapi_cdef import DECLARATIONS

DEFS_MODULE = "daedalus_v4l2.v4l2._uapi_defs"   # built by setup.py (_defs_build.py)

CHECKED_STRUCTS_AV1 = [
    "v4l2_ctrl_av1_sequence", "v4l2_ctrl_av1_tile_group_entry", "v4l2_av1_global_motion",
    "v4l2_av1_loop_restoration", "v4l2_av1_cdef", "v4l2_av1_segmentation", "v4l2_av1_loop_filter",
    "v4l2_av1_quantization", "v4l2_av1_tile_info", "v4l2_ctrl_av1_frame",
    "v4l2_ctrl_av1_film_grain",
]

# Parsed at install time when these declarations are unchanged since (cdefs.py says how).
ffi = cdefs.load(DEFS_MODULE, cdefs.with_kernel_types(DECLARATIONS))

# Structs whose layout tests/test_layouts.py checks against the system headers.
CHECKED_STRUCTS = [
    "v4l2_capability", "v4l2_fmtdesc", "v4l2_frmsizeenum", "v4l2_plane_pix_format",
    "v4l2_pix_format_mplane", "v4l2_format", "v4l2_requestbuffers", "v4l2_timecode",
    "v4l2_plane", "v4l2_buffer", "v4l2_exportbuffer", "v4l2_ext_control", "v4l2_ext_controls",
    "v4l2_query_ext_ctrl", "v4l2_decoder_cmd", "v4l2_event_subscription", "v4l2_event",
    "media_device_info", "v4l2_vp9_loop_filter", "v4l2_vp9_quantization",
    "v4l2_vp9_segmentation", "v4l2_ctrl_vp9_frame",
    "v4l2_ctrl_h264_sps", "v4l2_ctrl_h264_pps", "v4l2_ctrl_h264_scaling_matrix",
    "v4l2_h264_weight_factors", "v4l2_ctrl_h264_pred_weights", "v4l2_h264_reference",
    "v4l2_ctrl_h264_slice_params", "v4l2_h264_dpb_entry", "v4l2_ctrl_h264_decode_params",
]


def flag_mask(conditions_and_bits) -> int:
    """A flags word from ``(condition, bit)`` pairs: each bit whose condition holds."""
    mask = 0
    for condition, bit in conditions_and_bits:
        if condition:
            mask |= bit
    return mask


def struct_from_bytes(ctype: str, data) -> object:
    """A typed pointer to a private copy of the first sizeof(ctype) bytes of ``data``
    (a control's payload), for reading its fields.

    Typed ``from_buffer`` keeps the copy alive with the pointer: casting a
    temporary ``from_buffer`` would leave the pointer on freed memory once the
    temporary is collected.  Too few bytes is a BitstreamError (a ValueError).
    """
    from ..errors import BitstreamError  # errors imports nothing from here; keep uapi light

    size = ffi.sizeof(ctype)
    if len(data) < size:
        raise BitstreamError(f"{ctype}: {len(data)} bytes, needs {size}")
    return ffi.from_buffer(f"{ctype} *", bytes(data[:size]))


def fourcc(code: str) -> int:
    a, b, c, d = (ord(ch) for ch in code)
    return a | (b << 8) | (c << 16) | (d << 24)


def fourcc_str(value: int) -> str:
    return (value & 0xFFFFFFFF).to_bytes(4, "little").decode("latin-1")


# ---- ioctl numbers, from the kernel's _IOC encoding (asm-generic) ----
_IOC_NONE, _IOC_WRITE, _IOC_READ = 0, 1, 2


def _ioc(direction: int, group: str, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord(group) << 8) | nr


def _iowr(group, nr, ctype):
    return _ioc(_IOC_READ | _IOC_WRITE, group, nr, ffi.sizeof(ctype))


def _ior(group, nr, ctype):
    return _ioc(_IOC_READ, group, nr, ffi.sizeof(ctype))


def _iow(group, nr, ctype):
    return _ioc(_IOC_WRITE, group, nr, ffi.sizeof(ctype))


VIDIOC_QUERYCAP = _ior("V", 0, "struct v4l2_capability")
VIDIOC_ENUM_FMT = _iowr("V", 2, "struct v4l2_fmtdesc")
VIDIOC_G_FMT = _iowr("V", 4, "struct v4l2_format")
VIDIOC_S_FMT = _iowr("V", 5, "struct v4l2_format")
VIDIOC_REQBUFS = _iowr("V", 8, "struct v4l2_requestbuffers")
VIDIOC_QUERYBUF = _iowr("V", 9, "struct v4l2_buffer")
VIDIOC_QBUF = _iowr("V", 15, "struct v4l2_buffer")
VIDIOC_EXPBUF = _iowr("V", 16, "struct v4l2_exportbuffer")
VIDIOC_DQBUF = _iowr("V", 17, "struct v4l2_buffer")
VIDIOC_STREAMON = _iow("V", 18, "int")
VIDIOC_STREAMOFF = _iow("V", 19, "int")
VIDIOC_G_EXT_CTRLS = _iowr("V", 71, "struct v4l2_ext_controls")
VIDIOC_S_EXT_CTRLS = _iowr("V", 72, "struct v4l2_ext_controls")
VIDIOC_TRY_EXT_CTRLS = _iowr("V", 73, "struct v4l2_ext_controls")
VIDIOC_ENUM_FRAMESIZES = _iowr("V", 74, "struct v4l2_frmsizeenum")
VIDIOC_TRY_FMT = _iowr("V", 64, "struct v4l2_format")
VIDIOC_DQEVENT = _ior("V", 89, "struct v4l2_event")
VIDIOC_SUBSCRIBE_EVENT = _iow("V", 90, "struct v4l2_event_subscription")
VIDIOC_DECODER_CMD = _iowr("V", 96, "struct v4l2_decoder_cmd")
VIDIOC_TRY_DECODER_CMD = _iowr("V", 97, "struct v4l2_decoder_cmd")
VIDIOC_QUERY_EXT_CTRL = _iowr("V", 103, "struct v4l2_query_ext_ctrl")
MEDIA_IOC_DEVICE_INFO = _iowr("|", 0x00, "struct media_device_info")
MEDIA_IOC_REQUEST_ALLOC = _ior("|", 0x05, "int")
MEDIA_REQUEST_IOC_QUEUE = _ioc(_IOC_NONE, "|", 0x80, 0)
MEDIA_REQUEST_IOC_REINIT = _ioc(_IOC_NONE, "|", 0x81, 0)

# ---- constants (values from videodev2.h / v4l2-controls.h; checked by the layout test) ----
V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE = 9
V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE = 10
V4L2_MEMORY_MMAP = 1
V4L2_MEMORY_DMABUF = 4
V4L2_FIELD_NONE = 1
V4L2_COLORSPACE_REC709 = 3
V4L2_COLORSPACE_DEFAULT = 0

V4L2_CAP_VIDEO_M2M_MPLANE = 0x00004000
V4L2_CAP_STREAMING = 0x04000000
V4L2_CAP_DEVICE_CAPS = 0x80000000

V4L2_BUF_CAP_SUPPORTS_MMAP = 1 << 0
V4L2_BUF_CAP_SUPPORTS_DMABUF = 1 << 2
V4L2_BUF_CAP_SUPPORTS_REQUESTS = 1 << 3
V4L2_BUF_CAP_SUPPORTS_ORPHANED_BUFS = 1 << 4
V4L2_BUF_CAP_SUPPORTS_M2M_HOLD_CAPTURE_BUF = 1 << 5

V4L2_BUF_FLAG_MAPPED = 0x00000001
V4L2_BUF_FLAG_QUEUED = 0x00000002
V4L2_BUF_FLAG_DONE = 0x00000004
V4L2_BUF_FLAG_KEYFRAME = 0x00000008
V4L2_BUF_FLAG_ERROR = 0x00000040
V4L2_BUF_FLAG_IN_REQUEST = 0x00000080
V4L2_BUF_FLAG_M2M_HOLD_CAPTURE_BUF = 0x00000200
V4L2_BUF_FLAG_TIMESTAMP_COPY = 0x00004000
V4L2_BUF_FLAG_LAST = 0x00100000
V4L2_BUF_FLAG_REQUEST_FD = 0x00800000

V4L2_DEC_CMD_START = 0
V4L2_DEC_CMD_STOP = 1
V4L2_DEC_CMD_FLUSH = 4

V4L2_EVENT_EOS = 2
V4L2_EVENT_SOURCE_CHANGE = 5

V4L2_CTRL_WHICH_CUR_VAL = 0
V4L2_CTRL_WHICH_REQUEST_VAL = 0x0F010000

V4L2_CTRL_CLASS_CODEC_STATELESS = 0x00A40000
V4L2_CID_CODEC_STATELESS_BASE = V4L2_CTRL_CLASS_CODEC_STATELESS | 0x900
V4L2_CID_STATELESS_H264_DECODE_MODE = V4L2_CID_CODEC_STATELESS_BASE + 0
V4L2_CID_STATELESS_H264_START_CODE = V4L2_CID_CODEC_STATELESS_BASE + 1
V4L2_CID_STATELESS_H264_SPS = V4L2_CID_CODEC_STATELESS_BASE + 2
V4L2_CID_STATELESS_H264_PPS = V4L2_CID_CODEC_STATELESS_BASE + 3
V4L2_CID_STATELESS_H264_SCALING_MATRIX = V4L2_CID_CODEC_STATELESS_BASE + 4
V4L2_CID_STATELESS_H264_PRED_WEIGHTS = V4L2_CID_CODEC_STATELESS_BASE + 5
V4L2_CID_STATELESS_H264_SLICE_PARAMS = V4L2_CID_CODEC_STATELESS_BASE + 6
V4L2_CID_STATELESS_H264_DECODE_PARAMS = V4L2_CID_CODEC_STATELESS_BASE + 7
V4L2_CID_STATELESS_VP9_FRAME = V4L2_CID_CODEC_STATELESS_BASE + 300
V4L2_CID_STATELESS_VP9_COMPRESSED_HDR = V4L2_CID_CODEC_STATELESS_BASE + 301
V4L2_CID_STATELESS_AV1_SEQUENCE = V4L2_CID_CODEC_STATELESS_BASE + 500
V4L2_CID_STATELESS_AV1_TILE_GROUP_ENTRY = V4L2_CID_CODEC_STATELESS_BASE + 501
V4L2_CID_STATELESS_AV1_FRAME = V4L2_CID_CODEC_STATELESS_BASE + 502
V4L2_CID_STATELESS_AV1_FILM_GRAIN = V4L2_CID_CODEC_STATELESS_BASE + 505

V4L2_VP9_FRAME_FLAG_KEY_FRAME = 0x001
V4L2_VP9_FRAME_FLAG_SHOW_FRAME = 0x002
V4L2_VP9_FRAME_FLAG_ERROR_RESILIENT = 0x004
V4L2_VP9_FRAME_FLAG_INTRA_ONLY = 0x008
V4L2_VP9_FRAME_FLAG_ALLOW_HIGH_PREC_MV = 0x010
V4L2_VP9_FRAME_FLAG_REFRESH_FRAME_CTX = 0x020
V4L2_VP9_FRAME_FLAG_PARALLEL_DEC_MODE = 0x040
V4L2_VP9_FRAME_FLAG_X_SUBSAMPLING = 0x080
V4L2_VP9_FRAME_FLAG_Y_SUBSAMPLING = 0x100
V4L2_VP9_FRAME_FLAG_COLOR_RANGE_FULL_SWING = 0x200
V4L2_VP9_LOOP_FILTER_FLAG_DELTA_ENABLED = 0x1
V4L2_VP9_LOOP_FILTER_FLAG_DELTA_UPDATE = 0x2
V4L2_VP9_SEGMENTATION_FLAG_ENABLED = 0x01
V4L2_VP9_SEGMENTATION_FLAG_UPDATE_MAP = 0x02
V4L2_VP9_SEGMENTATION_FLAG_TEMPORAL_UPDATE = 0x04
V4L2_VP9_SEGMENTATION_FLAG_UPDATE_DATA = 0x08
V4L2_VP9_SEGMENTATION_FLAG_ABS_OR_DELTA_UPDATE = 0x10

V4L2_STATELESS_H264_DECODE_MODE_SLICE_BASED = 0
V4L2_STATELESS_H264_DECODE_MODE_FRAME_BASED = 1
V4L2_STATELESS_H264_START_CODE_NONE = 0
V4L2_STATELESS_H264_START_CODE_ANNEX_B = 1
V4L2_H264_SPS_CONSTRAINT_SET0_FLAG = 0x01
V4L2_H264_SPS_CONSTRAINT_SET1_FLAG = 0x02
V4L2_H264_SPS_CONSTRAINT_SET2_FLAG = 0x04
V4L2_H264_SPS_CONSTRAINT_SET3_FLAG = 0x08
V4L2_H264_SPS_CONSTRAINT_SET4_FLAG = 0x10
V4L2_H264_SPS_CONSTRAINT_SET5_FLAG = 0x20
V4L2_H264_SPS_FLAG_SEPARATE_COLOUR_PLANE = 0x01
V4L2_H264_SPS_FLAG_QPPRIME_Y_ZERO_TRANSFORM_BYPASS = 0x02
V4L2_H264_SPS_FLAG_DELTA_PIC_ORDER_ALWAYS_ZERO = 0x04
V4L2_H264_SPS_FLAG_GAPS_IN_FRAME_NUM_VALUE_ALLOWED = 0x08
V4L2_H264_SPS_FLAG_FRAME_MBS_ONLY = 0x10
V4L2_H264_SPS_FLAG_MB_ADAPTIVE_FRAME_FIELD = 0x20
V4L2_H264_SPS_FLAG_DIRECT_8X8_INFERENCE = 0x40
V4L2_H264_PPS_FLAG_ENTROPY_CODING_MODE = 0x0001
V4L2_H264_PPS_FLAG_BOTTOM_FIELD_PIC_ORDER_IN_FRAME_PRESENT = 0x0002
V4L2_H264_PPS_FLAG_WEIGHTED_PRED = 0x0004
V4L2_H264_PPS_FLAG_DEBLOCKING_FILTER_CONTROL_PRESENT = 0x0008
V4L2_H264_PPS_FLAG_CONSTRAINED_INTRA_PRED = 0x0010
V4L2_H264_PPS_FLAG_REDUNDANT_PIC_CNT_PRESENT = 0x0020
V4L2_H264_PPS_FLAG_TRANSFORM_8X8_MODE = 0x0040
V4L2_H264_PPS_FLAG_SCALING_MATRIX_PRESENT = 0x0080
V4L2_H264_SLICE_TYPE_P = 0
V4L2_H264_SLICE_TYPE_B = 1
V4L2_H264_SLICE_TYPE_I = 2
V4L2_H264_SLICE_TYPE_SP = 3
V4L2_H264_SLICE_TYPE_SI = 4
V4L2_H264_SLICE_FLAG_DIRECT_SPATIAL_MV_PRED = 0x01
V4L2_H264_SLICE_FLAG_SP_FOR_SWITCH = 0x02
V4L2_H264_TOP_FIELD_REF = 0x1
V4L2_H264_BOTTOM_FIELD_REF = 0x2
V4L2_H264_FRAME_REF = 0x3
V4L2_H264_NUM_DPB_ENTRIES = 16
V4L2_H264_REF_LIST_LEN = 32
V4L2_H264_DPB_ENTRY_FLAG_VALID = 0x01
V4L2_H264_DPB_ENTRY_FLAG_ACTIVE = 0x02
V4L2_H264_DPB_ENTRY_FLAG_LONG_TERM = 0x04
V4L2_H264_DPB_ENTRY_FLAG_FIELD = 0x08
V4L2_H264_DECODE_PARAM_FLAG_IDR_PIC = 0x01
V4L2_H264_DECODE_PARAM_FLAG_FIELD_PIC = 0x02
V4L2_H264_DECODE_PARAM_FLAG_BOTTOM_FIELD = 0x04
V4L2_H264_DECODE_PARAM_FLAG_PFRAME = 0x08
V4L2_H264_DECODE_PARAM_FLAG_BFRAME = 0x10

V4L2_PIX_FMT_VP9_FRAME = fourcc("VP9F")
V4L2_PIX_FMT_H264_SLICE = fourcc("S264")
V4L2_PIX_FMT_AV1_FRAME = fourcc("AV1F")
V4L2_PIX_FMT_NV12 = fourcc("NV12")
V4L2_PIX_FMT_P010 = fourcc("P010")

# Which control struct each stateless control carries.
CONTROL_STRUCTS = {
    V4L2_CID_STATELESS_VP9_FRAME: "struct v4l2_ctrl_vp9_frame",
    V4L2_CID_STATELESS_AV1_SEQUENCE: "struct v4l2_ctrl_av1_sequence",
    V4L2_CID_STATELESS_AV1_TILE_GROUP_ENTRY: "struct v4l2_ctrl_av1_tile_group_entry",
    V4L2_CID_STATELESS_AV1_FRAME: "struct v4l2_ctrl_av1_frame",
    V4L2_CID_STATELESS_AV1_FILM_GRAIN: "struct v4l2_ctrl_av1_film_grain",
    V4L2_CID_STATELESS_H264_SPS: "struct v4l2_ctrl_h264_sps",
    V4L2_CID_STATELESS_H264_PPS: "struct v4l2_ctrl_h264_pps",
    V4L2_CID_STATELESS_H264_SCALING_MATRIX: "struct v4l2_ctrl_h264_scaling_matrix",
    V4L2_CID_STATELESS_H264_PRED_WEIGHTS: "struct v4l2_ctrl_h264_pred_weights",
    V4L2_CID_STATELESS_H264_SLICE_PARAMS: "struct v4l2_ctrl_h264_slice_params",
    V4L2_CID_STATELESS_H264_DECODE_PARAMS: "struct v4l2_ctrl_h264_decode_params",
}

# Constants the layout test checks against the system headers, by C name.
CHECKED_CONSTANTS = [name for name in dir() if name.startswith(("V4L2_", "VIDIOC_", "MEDIA_"))
                     and not name.startswith(("V4L2_PIX_FMT_", "V4L2_CID_STATELESS_AV1", "V4L2_AV1_"))]
