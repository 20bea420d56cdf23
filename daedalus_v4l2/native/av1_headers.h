/* AV1 sequence and frame headers in C (spec 5.5, 5.9, 7.20): the per-frame
 * half of the AV1 client that codecs/av1_syntax.py does in Python.  The
 * Python reader stays the oracle: tests/test_av1_native.py holds the two to
 * the same fields, frame by frame.  Built into daedalus_v4l2._native
 * (_native_build.py); codecs/av1_native.py is the Python side.
 *
 * Every read is bounds-checked: past the end of the payload a read gives 0 and
 * marks the reader failed, and the first failure's message is what the caller
 * gets.  Loops are bounded by the spec's maxima, never by a value read alone.
 * This file is also pasted into cffi's cdef, so it has no #include, no macro
 * and no initializer. */

typedef struct {
    int idc;
    int seq_level_idx;
    int seq_tier;
    int decoder_model_present;
    int initial_display_delay_present;
} dv_av1_operating_point;

typedef struct {
    int seq_profile;
    int still_picture;
    int reduced_still_picture_header;
    int timing_info_present_flag;
    int equal_picture_interval;
    int decoder_model_info_present_flag;
    int buffer_removal_time_length_minus_1;
    int frame_presentation_time_length_minus_1;
    int initial_display_delay_present_flag;
    int operating_points_cnt;
    dv_av1_operating_point operating_points[32];
    int frame_width_bits_minus_1;
    int frame_height_bits_minus_1;
    int max_frame_width_minus_1;
    int max_frame_height_minus_1;
    int frame_id_numbers_present_flag;
    int delta_frame_id_length_minus_2;
    int additional_frame_id_length_minus_1;
    int use_128x128_superblock;
    int enable_filter_intra;
    int enable_intra_edge_filter;
    int enable_interintra_compound;
    int enable_masked_compound;
    int enable_warped_motion;
    int enable_dual_filter;
    int enable_order_hint;
    int enable_jnt_comp;
    int enable_ref_frame_mvs;
    int seq_force_screen_content_tools;
    int seq_force_integer_mv;
    int order_hint_bits;
    int enable_superres;
    int enable_cdef;
    int enable_restoration;
    int bit_depth;
    int mono_chrome;
    int color_description_present_flag;
    int color_primaries;
    int transfer_characteristics;
    int matrix_coefficients;
    int color_range;
    int subsampling_x;
    int subsampling_y;
    int chroma_sample_position;
    int separate_uv_delta_q;
    int film_grain_params_present;
} dv_av1_sequence;

typedef struct {
    int apply_grain;
    int grain_seed;
    int update_grain;
    int film_grain_params_ref_idx;
    int num_y_points;
    int point_y_value[14];
    int point_y_scaling[14];
    int chroma_scaling_from_luma;
    int num_cb_points;
    int point_cb_value[10];
    int point_cb_scaling[10];
    int num_cr_points;
    int point_cr_value[10];
    int point_cr_scaling[10];
    int grain_scaling_minus_8;
    int ar_coeff_lag;
    int num_ar_coeffs_y;
    int ar_coeffs_y_plus_128[24];
    int num_ar_coeffs_cb;
    int ar_coeffs_cb_plus_128[25];
    int num_ar_coeffs_cr;
    int ar_coeffs_cr_plus_128[25];
    int ar_coeff_shift_minus_6;
    int grain_scale_shift;
    int cb_mult;
    int cb_luma_mult;
    int cb_offset;
    int cr_mult;
    int cr_luma_mult;
    int cr_offset;
    int overlap_flag;
    int clip_to_restricted_range;
} dv_av1_film_grain;

/* What the reference frame update process (spec 7.20) saves in a slot. */
typedef struct {
    int valid;
    int frame_id;
    int frame_type;
    int upscaled_width;
    int frame_width;
    int frame_height;
    int render_width;
    int render_height;
    int order_hint;
    int saved_order_hints[8];
    int gm_params[8][6];
    int lf_ref_deltas[8];
    int lf_mode_deltas[2];
    int seg_feature_enabled[8][8];
    int seg_feature_data[8][8];
    dv_av1_film_grain film_grain;
    int showable;
} dv_av1_slot;

typedef struct {
    int show_existing_frame;
    int frame_to_show_map_idx;
    int frame_type;
    int show_frame;
    int showable_frame;
    int error_resilient_mode;
    int disable_cdf_update;
    int allow_screen_content_tools;
    int force_integer_mv;
    int current_frame_id;
    int frame_size_override_flag;
    int order_hint;
    int primary_ref_frame;
    int buffer_removal_time_present_flag;
    int buffer_removal_time[32];
    int refresh_frame_flags;
    int allow_intrabc;
    int frame_refs_short_signaling;
    int ref_frame_idx[7];
    int allow_high_precision_mv;
    int interpolation_filter;
    int is_motion_mode_switchable;
    int use_ref_frame_mvs;
    int disable_frame_end_update_cdf;
    int order_hints[8];
    int ref_frame_sign_bias[8];
    int frame_width;
    int frame_height;
    int upscaled_width;
    int render_width;
    int render_height;
    int use_superres;
    int superres_denom;
    int mi_cols;
    int mi_rows;
    /* tile_info() */
    int tile_uniform;
    int tile_cols;
    int tile_rows;
    int tile_cols_log2;
    int tile_rows_log2;
    int mi_col_starts[65];
    int mi_row_starts[65];
    int context_update_tile_id;
    int tile_size_bytes;
    int sb_shift;
    /* quantization_params() */
    int base_q_idx;
    int delta_q_y_dc;
    int diff_uv_delta;
    int delta_q_u_dc;
    int delta_q_u_ac;
    int delta_q_v_dc;
    int delta_q_v_ac;
    int using_qmatrix;
    int qm_y;
    int qm_u;
    int qm_v;
    /* segmentation_params() */
    int seg_enabled;
    int seg_update_map;
    int seg_temporal_update;
    int seg_update_data;
    int seg_feature_enabled[8][8];
    int seg_feature_data[8][8];
    int seg_id_pre_skip;
    int last_active_seg_id;
    int delta_q_present;
    int delta_q_res;
    int delta_lf_present;
    int delta_lf_res;
    int delta_lf_multi;
    int coded_lossless;
    int all_lossless;
    /* loop_filter_params() */
    int lf_level[4];
    int lf_sharpness;
    int lf_delta_enabled;
    int lf_delta_update;
    int lf_ref_deltas[8];
    int lf_mode_deltas[2];
    /* cdef_params() */
    int cdef_damping_minus_3;
    int cdef_bits;
    int cdef_y_pri_strength[8];
    int cdef_y_sec_strength[8];
    int cdef_uv_pri_strength[8];
    int cdef_uv_sec_strength[8];
    /* lr_params() */
    int frame_restoration_type[3];
    int uses_lr;
    int uses_chroma_lr;
    int lr_unit_shift;
    int lr_uv_shift;
    int loop_restoration_size[3];
    int tx_mode;
    int reference_select;
    int skip_mode_present;
    int skip_mode_frame[2];
    int allow_warped_motion;
    int reduced_tx_set;
    int gm_type[8];
    int gm_params[8][6];
    dv_av1_film_grain film_grain;
    int header_bits;
} dv_av1_frame_header;

/* 0 on success; else -1 and the reason in err (NUL-terminated, errlen bytes). */
int dv_av1_parse_sequence(const unsigned char *payload, size_t len, dv_av1_sequence *seq,
                          char *err, size_t errlen);
int dv_av1_parse_frame_header(const unsigned char *payload, size_t len,
                              const dv_av1_sequence *seq, const dv_av1_slot *slots,
                              int temporal_id, int spatial_id, dv_av1_frame_header *h,
                              char *err, size_t errlen);
/* The reference frame update process (spec 7.20) for a frame just read. */
void dv_av1_update_slots(dv_av1_slot *slots, const dv_av1_frame_header *h);

/* One frame of a temporal unit read by dv_av1_temporal_unit: its OBUs, copied
 * into the caller's buffer at data_offset, and its tiles, tiles[first_tile]
 * onwards (offsets in the frame's bytes). */
typedef struct {
    size_t data_offset;
    size_t data_size;
    int first_tile;
    int tile_count;
    int temporal_id;
    int spatial_id;
} dv_av1_unit_frame;

typedef struct {
    uint32_t offset;
    uint32_t size;
    uint32_t row;
    uint32_t col;
} dv_av1_unit_tile;

/* The frames of a temporal unit (codecs/av1.py's walk over its OBUs), read against
 * the sequence header in force (seq_payload: its OBU's payload) and the slots,
 * which it updates: how many frames, or -1 with nothing changed for a unit to read
 * the Python way (a new sequence header, OBU extensions, an error, full arrays).
 * out must hold len bytes. */
int dv_av1_temporal_unit(const unsigned char *data, size_t len,
                         const unsigned char *seq_payload, size_t seq_len,
                         const dv_av1_sequence *seq, dv_av1_slot *slots,
                         dv_av1_frame_header *headers, dv_av1_unit_frame *frames, int max_frames,
                         dv_av1_unit_tile *tiles, int max_tiles,
                         unsigned char *out, size_t out_size);
