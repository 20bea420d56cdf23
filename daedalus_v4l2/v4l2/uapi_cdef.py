"""The uAPI declarations of ``uapi.py``, as cffi cdef text and nothing else.

Kept apart so that the install-time build (``daedalus_v4l2/_defs_build.py``)
can read them by path without importing the package; ``uapi.py`` loads them
through ``daedalus_v4l2.cdefs``.
"""

CDEF = r"""
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

# (cdef text, packed), in the order cffi reads them, after cdefs.KERNEL_TYPES.
DECLARATIONS = [(CDEF, False), (CDEF_PACKED, True), (CDEF_AV1, False)]
