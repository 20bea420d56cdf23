/* H.264 slice headers and Annex B start codes in C (spec 7.3.3, B.2): the
 * per-picture half of the H.264 client that codecs/h264.py does in Python.
 * The Python reader stays the oracle: tests/test_h264_native.py holds the two
 * to the same fields and the same refusals, slice by slice.  Built into
 * daedalus_v4l2._native (_native_build.py); codecs/h264_native.py is the
 * Python side.
 *
 * The reader reads the escaped NAL unit as it is: an emulation prevention byte
 * is skipped when the byte after it is first read, so nothing is unescaped or
 * copied, and the header's size in NAL unit bits comes out as V4L2 wants it.
 * Every read is bounds-checked: past the end a read gives 0 and marks the
 * reader failed, and the first failure's message is what the caller gets.
 * Loops are bounded by the spec's maxima, never by a value read alone.
 * This file is also pasted into cffi's cdef, so it has no #include, no macro
 * and no initializer. */

/* What a slice header's syntax depends on, from its PPS and that PPS's SPS. */
typedef struct {
    int log2_max_frame_num;
    int separate_colour_plane_flag;
    int frame_mbs_only_flag;
    int pic_order_cnt_type;
    int log2_max_pic_order_cnt_lsb;
    int delta_pic_order_always_zero_flag;
    int chroma_array_type;
    long long pic_size_in_mbs;           /* PicWidthInMbs * FrameHeightInMbs */
    long long pic_size_in_map_units;     /* PicWidthInMbs * PicHeightInMapUnits */
    int bottom_field_pic_order_in_frame_present_flag;
    int redundant_pic_cnt_present_flag;
    int num_ref_idx_l0_default_active_minus1;
    int num_ref_idx_l1_default_active_minus1;
    int weighted_pred_flag;
    int weighted_bipred_idc;
    int entropy_coding_mode_flag;
    int deblocking_filter_control_present_flag;
    int num_slice_groups_minus1;
    int slice_group_map_type;
    long long slice_group_change_rate_minus1;
} dv_h264_parameters;

typedef struct {
    int idc;            /* modification_of_pic_nums_idc: 0, 1 (short-term), 2 (long-term) */
    long long value;    /* abs_diff_pic_num_minus1 or long_term_pic_num */
} dv_h264_modification;

typedef struct {
    int op;
    long long difference_of_pic_nums_minus1;
    long long long_term_pic_num;
    int long_term_frame_idx;
    int max_long_term_frame_idx_plus1;
} dv_h264_mmco;

/* The fields up to header_bit_size are all long long, so that Python reads them
 * in one go (codecs/h264_native.py takes their names from this struct). */
typedef struct {
    long long nal_ref_idc;
    long long nal_unit_type;
    long long first_mb_in_slice;
    long long slice_type;                /* slice_type % 5 */
    long long pic_parameter_set_id;
    long long colour_plane_id;
    long long frame_num;
    long long field_pic_flag;
    long long bottom_field_flag;
    long long idr_pic_id;
    long long pic_order_cnt_lsb;
    long long delta_pic_order_cnt_bottom;
    long long redundant_pic_cnt;
    long long direct_spatial_mv_pred_flag;
    long long num_ref_idx_l0_active_minus1;
    long long num_ref_idx_l1_active_minus1;
    long long no_output_of_prior_pics_flag;
    long long long_term_reference_flag;
    long long adaptive_ref_pic_marking_mode_flag;
    long long cabac_init_idc;
    long long slice_qp_delta;
    long long sp_for_switch_flag;
    long long slice_qs_delta;
    long long disable_deblocking_filter_idc;
    long long slice_alpha_c0_offset_div2;
    long long slice_beta_offset_div2;
    long long slice_group_change_cycle;
    long long pic_order_cnt_bit_size;    /* RBSP bits of the POC syntax elements */
    long long dec_ref_pic_marking_bit_size;
    long long header_bit_size;           /* NAL unit bits before slice_data(), header byte included */
    long long delta_pic_order_cnt[2];
    int num_modifications[2];
    dv_h264_modification modifications[2][34];
    int has_pred_weight_table;
    int luma_log2_weight_denom;
    int chroma_log2_weight_denom;
    int pred_weight_count[2];            /* entries in each list's weights below */
    int luma_weight[2][32][2];           /* [list][ref] (weight, offset) */
    int chroma_weight[2][32][2][2];      /* [list][ref][cb, cr] (weight, offset) */
    int num_mmcos;
    dv_h264_mmco mmcos[67];
} dv_h264_slice_header;

/* The PPS a coded slice NAL unit (header byte included) names; 0, or -1 with
 * the reason in err. */
int dv_h264_slice_pps_id(const unsigned char *nal, size_t len, int *pps_id,
                         char *err, size_t errlen);
/* The slice header of a coded slice NAL unit, read against the parameters of
 * the PPS it names; 0, or -1 with the reason in err. */
int dv_h264_parse_slice_header(const unsigned char *nal, size_t len,
                               const dv_h264_parameters *p, dv_h264_slice_header *out,
                               char *err, size_t errlen);
/* The NAL units of an Annex B byte stream as (start, end) byte offsets in
 * bounds[2n], bounds[2n + 1], start codes and the zero bytes before the next
 * one left out: the number of units, which may be more than max_units (call
 * again with room for them all). */
size_t dv_h264_split_annexb(const unsigned char *data, size_t len, size_t *bounds,
                            size_t max_units);
