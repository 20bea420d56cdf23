"""The part of the V4L2 and media-controller uAPI this project uses, for cffi.

These are the kernel's ABI-stable userspace structs (``<linux/videodev2.h>``,
``<linux/v4l2-controls.h>``, ``<linux/media.h>``), declared for cffi's ABI
mode so that no compiler is needed at run time.  ``tests/test_layouts.py``
compiles the system headers with gcc and checks every size and offset here
against them, so a slip in this file fails the test suite.

The same structs are used against a real /dev/videoN (fcntl.ioctl on the
struct's buffer) and against the simulated kernel, which reads them the
way the kernel's ioctl handlers do.
"""
from __future__ import annotations

import cffi

CDEF = r"""
typedef uint8_t __u8; typedef uint16_t __u16; typedef uint32_t __u32; typedef uint64_t __u64;
typedef int8_t __s8; typedef int16_t __s16; typedef int32_t __s32; typedef int64_t __s64;

struct v4l2_capability {
    __u8 driver[16]; __u8 card[32]; __u8 bus_info[32];
    __u32 version; __u32 capabilities; __u32 device_caps; __u32 reserved[3];
};

struct v4l2_fmtdesc {
    __u32 index; __u32 type; __u32 flags; __u8 description[32];
    __u32 pixelformat; __u32 mbus_code; __u32 reserved[3];
};

struct v4l2_frmsize_discrete { __u32 width; __u32 height; };
struct v4l2_frmsize_stepwise {
    __u32 min_width; __u32 max_width; __u32 step_width;
    __u32 min_height; __u32 max_height; __u32 step_height;
};
struct v4l2_frmsizeenum {
    __u32 index; __u32 pixel_format; __u32 type;
    union { struct v4l2_frmsize_discrete discrete; struct v4l2_frmsize_stepwise stepwise; };
    __u32 reserved[2];
};

struct v4l2_format {
    __u32 type;
    union {
        struct v4l2_pix_format_mplane pix_mp;
        __u8 raw_data[200];
        void *_align;               /* struct v4l2_window has pointers */
    } fmt;
};

struct v4l2_requestbuffers {
    __u32 count; __u32 type; __u32 memory; __u32 capabilities; __u8 flags; __u8 reserved[3];
};

struct v4l2_timeval { long tv_sec; long tv_usec; };
struct v4l2_timecode {
    __u32 type; __u32 flags; __u8 frames; __u8 seconds; __u8 minutes; __u8 hours; __u8 userbits[4];
};

struct v4l2_plane {
    __u32 bytesused; __u32 length;
    union { __u32 mem_offset; unsigned long userptr; __s32 fd; } m;
    __u32 data_offset; __u32 reserved[11];
};

struct v4l2_buffer {
    __u32 index; __u32 type; __u32 bytesused; __u32 flags; __u32 field;
    struct v4l2_timeval timestamp;
    struct v4l2_timecode timecode;
    __u32 sequence; __u32 memory;
    union { __u32 offset; unsigned long userptr; struct v4l2_plane *planes; __s32 fd; } m;
    __u32 length; __u32 reserved2;
    union { __s32 request_fd; __u32 reserved; };
};

struct v4l2_exportbuffer {
    __u32 type; __u32 index; __u32 plane; __u32 flags; __s32 fd; __u32 reserved[11];
};

struct v4l2_ext_controls {
    __u32 which; __u32 count; __u32 error_idx; __s32 request_fd; __u32 reserved[1];
    struct v4l2_ext_control *controls;
};

struct v4l2_query_ext_ctrl {
    __u32 id; __u32 type; char name[32];
    __s64 minimum; __s64 maximum; __u64 step; __s64 default_value;
    __u32 flags; __u32 elem_size; __u32 elems; __u32 nr_of_dims; __u32 dims[4];
    __u32 reserved[32];
};

struct v4l2_decoder_cmd {
    __u32 cmd; __u32 flags;
    union {
        struct { __u64 pts; } stop;
        struct { __s32 speed; __u32 format; } start;
        struct { __u32 data[16]; } raw;
    };
};

struct v4l2_event_subscription { __u32 type; __u32 id; __u32 flags; __u32 reserved[5]; };

struct v4l2_timespec_ { long tv_sec; long tv_nsec; };
struct v4l2_event {
    __u32 type;
    union { __u8 data[64]; __s64 _align; } u;
    __u32 pending; __u32 sequence;
    struct v4l2_timespec_ timestamp;
    __u32 id; __u32 reserved[8];
};

struct media_device_info {
    char driver[16]; char model[32]; char serial[40]; char bus_info[32];
    __u32 media_version; __u32 hw_revision; __u32 driver_version; __u32 reserved[31];
};

/* ---- VP9 stateless controls ---- */
struct v4l2_vp9_loop_filter {
    __s8 ref_deltas[4]; __s8 mode_deltas[2]; __u8 level; __u8 sharpness; __u8 flags; __u8 reserved[7];
};
struct v4l2_vp9_quantization {
    __u8 base_q_idx; __s8 delta_q_y_dc; __s8 delta_q_uv_dc; __s8 delta_q_uv_ac; __u8 reserved[4];
};
struct v4l2_vp9_segmentation {
    __s16 feature_data[8][4]; __u8 feature_enabled[8]; __u8 tree_probs[7]; __u8 pred_probs[3];
    __u8 flags; __u8 reserved[5];
};
struct v4l2_ctrl_vp9_frame {
    struct v4l2_vp9_loop_filter lf;
    struct v4l2_vp9_quantization quant;
    struct v4l2_vp9_segmentation seg;
    __u32 flags;
    __u16 compressed_header_size; __u16 uncompressed_header_size;
    __u16 frame_width_minus_1; __u16 frame_height_minus_1;
    __u16 render_width_minus_1; __u16 render_height_minus_1;
    __u64 last_frame_ts; __u64 golden_frame_ts; __u64 alt_frame_ts;
    __u8 ref_frame_sign_bias; __u8 reset_frame_context; __u8 frame_context_idx;
    __u8 profile; __u8 bit_depth; __u8 interpolation_filter;
    __u8 tile_cols_log2; __u8 tile_rows_log2; __u8 reference_mode;
    __u8 reserved[7];
};

/* ---- H.264 stateless controls ---- */
struct v4l2_ctrl_h264_sps {
    __u8 profile_idc; __u8 constraint_set_flags; __u8 level_idc; __u8 seq_parameter_set_id;
    __u8 chroma_format_idc; __u8 bit_depth_luma_minus8; __u8 bit_depth_chroma_minus8;
    __u8 log2_max_frame_num_minus4; __u8 pic_order_cnt_type; __u8 log2_max_pic_order_cnt_lsb_minus4;
    __u8 max_num_ref_frames; __u8 num_ref_frames_in_pic_order_cnt_cycle;
    __s32 offset_for_ref_frame[255]; __s32 offset_for_non_ref_pic; __s32 offset_for_top_to_bottom_field;
    __u16 pic_width_in_mbs_minus1; __u16 pic_height_in_map_units_minus1; __u32 flags;
};
struct v4l2_ctrl_h264_pps {
    __u8 pic_parameter_set_id; __u8 seq_parameter_set_id; __u8 num_slice_groups_minus1;
    __u8 num_ref_idx_l0_default_active_minus1; __u8 num_ref_idx_l1_default_active_minus1;
    __u8 weighted_bipred_idc; __s8 pic_init_qp_minus26; __s8 pic_init_qs_minus26;
    __s8 chroma_qp_index_offset; __s8 second_chroma_qp_index_offset; __u16 flags;
};
struct v4l2_ctrl_h264_scaling_matrix { __u8 scaling_list_4x4[6][16]; __u8 scaling_list_8x8[6][64]; };
struct v4l2_h264_weight_factors {
    __s16 luma_weight[32]; __s16 luma_offset[32]; __s16 chroma_weight[32][2]; __s16 chroma_offset[32][2];
};
struct v4l2_ctrl_h264_pred_weights {
    __u16 luma_log2_weight_denom; __u16 chroma_log2_weight_denom;
    struct v4l2_h264_weight_factors weight_factors[2];
};
struct v4l2_h264_reference { __u8 fields; __u8 index; };
struct v4l2_ctrl_h264_slice_params {
    __u32 header_bit_size; __u32 first_mb_in_slice;
    __u8 slice_type; __u8 colour_plane_id; __u8 redundant_pic_cnt; __u8 cabac_init_idc;
    __s8 slice_qp_delta; __s8 slice_qs_delta; __u8 disable_deblocking_filter_idc;
    __s8 slice_alpha_c0_offset_div2; __s8 slice_beta_offset_div2;
    __u8 num_ref_idx_l0_active_minus1; __u8 num_ref_idx_l1_active_minus1; __u8 reserved;
    struct v4l2_h264_reference ref_pic_list0[32]; struct v4l2_h264_reference ref_pic_list1[32];
    __u32 flags;
};
struct v4l2_h264_dpb_entry {
    __u64 reference_ts; __u32 pic_num; __u16 frame_num; __u8 fields; __u8 reserved[5];
    __s32 top_field_order_cnt; __s32 bottom_field_order_cnt; __u32 flags;
};
struct v4l2_ctrl_h264_decode_params {
    struct v4l2_h264_dpb_entry dpb[16];
    __u16 nal_ref_idc; __u16 frame_num; __s32 top_field_order_cnt; __s32 bottom_field_order_cnt;
    __u16 idr_pic_id; __u16 pic_order_cnt_lsb; __s32 delta_pic_order_cnt_bottom;
    __s32 delta_pic_order_cnt0; __s32 delta_pic_order_cnt1;
    __u32 dec_ref_pic_marking_bit_size; __u32 pic_order_cnt_bit_size; __u32 slice_group_change_cycle;
    __u32 reserved; __u32 flags;
};
"""

# v4l2_ext_control is __attribute__((packed)) in the kernel: its union sits at
# offset 12 and the struct is 20 bytes on 64-bit.  cffi needs a packed cdef.
# v4l2_plane_pix_format and v4l2_pix_format_mplane are packed too (same offsets,
# but alignment 1, which tests/test_layouts.py checks).
CDEF_PACKED = r"""
struct v4l2_plane_pix_format { __u32 sizeimage; __u32 bytesperline; __u16 reserved[6]; };

struct v4l2_pix_format_mplane {
    __u32 width; __u32 height; __u32 pixelformat; __u32 field; __u32 colorspace;
    struct v4l2_plane_pix_format plane_fmt[8];
    __u8 num_planes; __u8 flags; __u8 ycbcr_enc; __u8 quantization; __u8 xfer_func;
    __u8 reserved[7];
};

struct v4l2_ext_control {
    __u32 id; __u32 size; __u32 reserved2[1];
    union { __s32 value; __s64 value64; void *ptr; };
};
"""

# The AV1 controls (Linux 6.5+): these machines' system headers are 6.1, so
# tests/test_layouts.py checks these layouts against the 6.12 source's
# <linux/v4l2-controls.h>.  Enum members are int-sized: __u32 here.
CDEF_AV1 = r"""
struct v4l2_ctrl_av1_sequence {
    __u32 flags; __u8 seq_profile; __u8 order_hint_bits; __u8 bit_depth; __u8 reserved;
    __u16 max_frame_width_minus_1; __u16 max_frame_height_minus_1;
};
struct v4l2_ctrl_av1_tile_group_entry { __u32 tile_offset; __u32 tile_size; __u32 tile_row; __u32 tile_col; };
struct v4l2_av1_global_motion {
    __u8 flags[8]; __u32 type[8]; __s32 params[8][6]; __u8 invalid; __u8 reserved[3];
};
struct v4l2_av1_loop_restoration {
    __u8 flags; __u8 lr_unit_shift; __u8 lr_uv_shift; __u8 reserved;
    __u32 frame_restoration_type[3]; __u32 loop_restoration_size[3];
};
struct v4l2_av1_cdef {
    __u8 damping_minus_3; __u8 bits; __u8 y_pri_strength[8]; __u8 y_sec_strength[8];
    __u8 uv_pri_strength[8]; __u8 uv_sec_strength[8];
};
struct v4l2_av1_segmentation {
    __u8 flags; __u8 last_active_seg_id; __u8 feature_enabled[8]; __s16 feature_data[8][8];
};
struct v4l2_av1_loop_filter {
    __u8 flags; __u8 level[4]; __u8 sharpness; __s8 ref_deltas[8]; __s8 mode_deltas[2]; __u8 delta_lf_res;
};
struct v4l2_av1_quantization {
    __u8 flags; __u8 base_q_idx; __s8 delta_q_y_dc; __s8 delta_q_u_dc; __s8 delta_q_u_ac;
    __s8 delta_q_v_dc; __s8 delta_q_v_ac; __u8 qm_y; __u8 qm_u; __u8 qm_v; __u8 delta_q_res;
};
struct v4l2_av1_tile_info {
    __u8 flags; __u8 context_update_tile_id; __u8 tile_cols; __u8 tile_rows;
    __u32 mi_col_starts[65]; __u32 mi_row_starts[65];
    __u32 width_in_sbs_minus_1[64]; __u32 height_in_sbs_minus_1[64];
    __u8 tile_size_bytes; __u8 reserved[3];
};
struct v4l2_ctrl_av1_frame {
    struct v4l2_av1_tile_info tile_info;
    struct v4l2_av1_quantization quantization;
    __u8 superres_denom;
    struct v4l2_av1_segmentation segmentation;
    struct v4l2_av1_loop_filter loop_filter;
    struct v4l2_av1_cdef cdef;
    __u8 skip_mode_frame[2];
    __u8 primary_ref_frame;
    struct v4l2_av1_loop_restoration loop_restoration;
    struct v4l2_av1_global_motion global_motion;
    __u32 flags; __u32 frame_type; __u32 order_hint; __u32 upscaled_width;
    __u32 interpolation_filter; __u32 tx_mode;
    __u32 frame_width_minus_1; __u32 frame_height_minus_1;
    __u16 render_width_minus_1; __u16 render_height_minus_1;
    __u32 current_frame_id;
    __u32 buffer_removal_time[32];
    __u8 reserved[4];
    __u32 order_hints[8];
    __u64 reference_frame_ts[8];
    __s8 ref_frame_idx[7];
    __u8 refresh_frame_flags;
};
struct v4l2_ctrl_av1_film_grain {
    __u8 flags; __u8 cr_mult; __u16 grain_seed; __u8 film_grain_params_ref_idx;
    __u8 num_y_points; __u8 point_y_value[16]; __u8 point_y_scaling[16];
    __u8 num_cb_points; __u8 point_cb_value[16]; __u8 point_cb_scaling[16];
    __u8 num_cr_points; __u8 point_cr_value[16]; __u8 point_cr_scaling[16];
    __u8 grain_scaling_minus_8; __u8 ar_coeff_lag;
    __u8 ar_coeffs_y_plus_128[25]; __u8 ar_coeffs_cb_plus_128[25]; __u8 ar_coeffs_cr_plus_128[25];
    __u8 ar_coeff_shift_minus_6; __u8 grain_scale_shift; __u8 cb_mult; __u8 cb_luma_mult;
    __u8 cr_luma_mult; __u16 cb_offset; __u16 cr_offset; __u8 reserved[4];
};
"""
CHECKED_STRUCTS_AV1 = [
    "v4l2_ctrl_av1_sequence", "v4l2_ctrl_av1_tile_group_entry", "v4l2_av1_global_motion",
    "v4l2_av1_loop_restoration", "v4l2_av1_cdef", "v4l2_av1_segmentation", "v4l2_av1_loop_filter",
    "v4l2_av1_quantization", "v4l2_av1_tile_info", "v4l2_ctrl_av1_frame",
    "v4l2_ctrl_av1_film_grain",
]

ffi = cffi.FFI()
ffi.cdef(CDEF)
ffi.cdef(CDEF_PACKED, packed=True)
ffi.cdef(CDEF_AV1)

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
    return "".join(chr((value >> s) & 0xFF) for s in (0, 8, 16, 24))


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
