// SPDX-License-Identifier: BSD-2-Clause
/* H.264 slice headers and Annex B start codes (see h264_headers.h).  The
 * functions follow codecs/h264.py's _SliceHeaderReader one for one, with the
 * spec's names, so that the two can be read side by side; the messages are
 * its messages.  Names are prefixed: this file shares a translation unit with
 * av1_headers.c. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdarg.h>
#include <string.h>

#include "h264_headers.h"
#include "reader_failure.h"

enum {
    H264_NAL_SLICE = 1, H264_NAL_IDR_SLICE = 5,
    H264_SLICE_P = 0, H264_SLICE_B = 1, H264_SLICE_I = 2, H264_SLICE_SP = 3, H264_SLICE_SI = 4,
    H264_MAX_PPS_ID = 255,
    /* ue(v) codes with more zeros than this fit no syntax element (bitreader.py) */
    H264_MAX_LEADING_ZEROS = 32,
    H264_MAX_MODIFICATIONS = 33, H264_MAX_MMCOS = 66,
};

/* ------------------------------------------------------------------ bits */

typedef struct {
    const uint8_t *data;    /* the NAL unit's payload, escaped, after its header byte */
    size_t len;
    size_t next;            /* the next byte of data to read from */
    int zeros;              /* zero bytes just read: two, and a 0x03 next is dropped */
    size_t escapes;         /* 0x03 bytes dropped in front of bytes read from */
    uint8_t byte;           /* the byte being read */
    size_t pos;             /* RBSP bits read */
    int failed;
    char *err;
    size_t errlen;
} h264_bits_t;

static void h264_fail(h264_bits_t *b, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    dv_first_failure(&b->failed, b->err, b->errlen, fmt, ap);
    va_end(ap);
}

/* One bit.  A byte is fetched when its first bit is read, never before, so the
 * escapes counted are those in front of bytes the header has bits in: what
 * h264.Rbsp.nal_bit_position counts. */
static int h264_bit(h264_bits_t *b, const char *what)
{
    if (b->failed)
        return 0;
    if ((b->pos & 7) == 0) {
        if (b->zeros >= 2 && b->next < b->len && b->data[b->next] == 3) {
            b->next++;          /* 7.4.1: emulation_prevention_three_byte */
            b->escapes++;
            b->zeros = 0;
        }
        if (b->next >= b->len) {
            h264_fail(b, "truncated: reading %s at bit %zu, past the end of the NAL unit",
                      what, b->pos);
            return 0;
        }
        b->byte = b->data[b->next++];
        b->zeros = b->byte ? 0 : b->zeros + 1;
    }
    return (b->byte >> (7 - (b->pos++ & 7))) & 1;
}

/* u(n), n <= 32 */
static uint32_t h264_u(h264_bits_t *b, int n, const char *what)
{
    uint32_t v = 0;

    while (n-- > 0)
        v = v << 1 | (uint32_t)h264_bit(b, what);
    return v;
}

/* ue(v) (9.1): up to 2^33 - 2 */
static long long h264_ue(h264_bits_t *b, const char *what)
{
    int leading_zeros = 0;

    while (!b->failed && !h264_bit(b, what)) {
        if (++leading_zeros > H264_MAX_LEADING_ZEROS) {
            h264_fail(b, "%s: Exp-Golomb code longer than 32 bits", what);
            return 0;
        }
    }
    if (b->failed)
        return 0;
    return (long long)((1ULL << leading_zeros) - 1) + (long long)h264_u(b, leading_zeros, what);
}

/* se(v): codes 1, 2, 3, 4 ... are 1, -1, 2, -2 ... (Table 9-3) */
static long long h264_se(h264_bits_t *b, const char *what)
{
    long long code = h264_ue(b, what);

    return code % 2 ? (code + 1) / 2 : -(code / 2);
}

static long long h264_ue_max(h264_bits_t *b, long long maximum, const char *what)
{
    long long value = h264_ue(b, what);

    if (!b->failed && value > maximum)
        h264_fail(b, "%s %lld is larger than %lld", what, value, maximum);
    return value;
}

static int h264_se_range(h264_bits_t *b, int low, int high, const char *what)
{
    long long value = h264_se(b, what);

    if (!b->failed && (value < low || value > high))
        h264_fail(b, "%s %lld outside %d..%d", what, value, low, high);
    return (int)value;
}

/* ------------------------------------------------------------------ slice header (7.3.3) */

typedef struct {
    h264_bits_t b;
    const dv_h264_parameters *p;
    dv_h264_slice_header *sh;
} h264_reader_t;

static int h264_is_idr(const dv_h264_slice_header *sh)
{
    return sh->nal_unit_type == H264_NAL_IDR_SLICE;
}

static int h264_nal_header(h264_bits_t *b, const unsigned char *nal, size_t len,
                           dv_h264_slice_header *sh)
{
    if (!len) {
        h264_fail(b, "empty NAL unit");
        return -1;
    }
    if (nal[0] & 0x80) {
        h264_fail(b, "NAL unit with forbidden_zero_bit set");
        return -1;
    }
    sh->nal_ref_idc = (nal[0] >> 5) & 3;
    sh->nal_unit_type = nal[0] & 0x1f;
    if (sh->nal_unit_type != H264_NAL_SLICE && sh->nal_unit_type != H264_NAL_IDR_SLICE) {
        h264_fail(b, "NAL unit type %d is not a coded slice", sh->nal_unit_type);
        return -1;
    }
    b->data = nal + 1;
    b->len = len - 1;
    return 0;
}

/* first_mb_in_slice, slice_type and pic_parameter_set_id: what picks the PPS */
static void h264_slice_start(h264_bits_t *b, dv_h264_slice_header *sh)
{
    long long slice_type;

    sh->first_mb_in_slice = h264_ue(b, "first_mb_in_slice");
    slice_type = h264_ue_max(b, 9, "slice_type");
    if (b->failed)
        return;
    sh->slice_type = slice_type % 5;
    if (h264_is_idr(sh) && sh->slice_type != H264_SLICE_I && sh->slice_type != H264_SLICE_SI) {
        h264_fail(b, "IDR slice that is not intra");
        return;
    }
    sh->pic_parameter_set_id = h264_ue_max(b, H264_MAX_PPS_ID, "pic_parameter_set_id");
}

static void h264_pic_order_cnt(h264_reader_t *r)
{
    h264_bits_t *b = &r->b;
    dv_h264_slice_header *sh = r->sh;
    const dv_h264_parameters *p = r->p;
    size_t start = b->pos;
    int both_fields = p->bottom_field_pic_order_in_frame_present_flag && !sh->field_pic_flag;

    if (p->pic_order_cnt_type == 0) {
        sh->pic_order_cnt_lsb = h264_u(b, p->log2_max_pic_order_cnt_lsb, "pic_order_cnt_lsb");
        if (both_fields)
            sh->delta_pic_order_cnt_bottom = h264_se(b, "delta_pic_order_cnt_bottom");
    }
    if (p->pic_order_cnt_type == 1 && !p->delta_pic_order_always_zero_flag) {
        sh->delta_pic_order_cnt[0] = h264_se(b, "delta_pic_order_cnt[0]");
        if (both_fields)
            sh->delta_pic_order_cnt[1] = h264_se(b, "delta_pic_order_cnt[1]");
    }
    sh->pic_order_cnt_bit_size = (long long)(b->pos - start);
}

static int h264_is_p_or_sp(int slice_type)
{
    return slice_type == H264_SLICE_P || slice_type == H264_SLICE_SP;
}

static void h264_num_ref_idx_active(h264_reader_t *r)
{
    h264_bits_t *b = &r->b;
    dv_h264_slice_header *sh = r->sh;
    int limit = sh->field_pic_flag ? 31 : 15;

    sh->num_ref_idx_l0_active_minus1 = r->p->num_ref_idx_l0_default_active_minus1;
    sh->num_ref_idx_l1_active_minus1 = r->p->num_ref_idx_l1_default_active_minus1;
    if (h264_is_p_or_sp(sh->slice_type) || sh->slice_type == H264_SLICE_B) {
        if (h264_bit(b, "num_ref_idx_active_override_flag")) {
            sh->num_ref_idx_l0_active_minus1 =
                h264_ue_max(b, limit, "num_ref_idx_l0_active_minus1");
            if (sh->slice_type == H264_SLICE_B)
                sh->num_ref_idx_l1_active_minus1 =
                    h264_ue_max(b, limit, "num_ref_idx_l1_active_minus1");
        }
    }
    if (!b->failed && !sh->field_pic_flag &&
        (sh->num_ref_idx_l0_active_minus1 > 15 || sh->num_ref_idx_l1_active_minus1 > 15))
        h264_fail(b, "more than 16 active references in a frame slice");
}

static void h264_modifications(h264_reader_t *r, int list)
{
    h264_bits_t *b = &r->b;
    dv_h264_slice_header *sh = r->sh;
    long long idc;

    if (!h264_bit(b, "ref_pic_list_modification_flag"))
        return;
    while (!b->failed) {
        dv_h264_modification *m;

        idc = h264_ue_max(b, 5, "modification_of_pic_nums_idc");
        if (b->failed || idc == 3)
            return;
        if (idc > 3) {
            h264_fail(b, "modification_of_pic_nums_idc %lld (MVC) in a plain slice", idc);
            return;
        }
        m = &sh->modifications[list][sh->num_modifications[list]++];
        m->idc = (int)idc;
        m->value = h264_ue(b, "pic num");
        if (sh->num_modifications[list] > H264_MAX_MODIFICATIONS)
            h264_fail(b, "more reference list modifications than list entries");
    }
}

static void h264_ref_pic_list_modification(h264_reader_t *r)
{
    int type = r->sh->slice_type;

    if (h264_is_p_or_sp(type) || type == H264_SLICE_B)
        h264_modifications(r, 0);
    if (type == H264_SLICE_B)
        h264_modifications(r, 1);
}

static void h264_pred_weight_table(h264_reader_t *r)
{
    h264_bits_t *b = &r->b;
    dv_h264_slice_header *sh = r->sh;
    int chroma = r->p->chroma_array_type != 0;
    int lists = sh->slice_type == H264_SLICE_B ? 2 : 1;
    int list, ref, c, luma_default, chroma_default;

    sh->has_pred_weight_table = 1;
    sh->luma_log2_weight_denom = (int)h264_ue_max(b, 7, "luma_log2_weight_denom");
    if (chroma)
        sh->chroma_log2_weight_denom = (int)h264_ue_max(b, 7, "chroma_log2_weight_denom");
    if (b->failed)
        return;
    luma_default = 1 << sh->luma_log2_weight_denom;
    chroma_default = 1 << sh->chroma_log2_weight_denom;
    for (list = 0; list < lists; list++) {
        long long count = 1 + (list ? sh->num_ref_idx_l1_active_minus1
                                    : sh->num_ref_idx_l0_active_minus1);

        if (count > 32) {  /* checked by the caller: a guard for the arrays */
            h264_fail(b, "%lld weights in a list of at most 32", count);
            return;
        }
        for (ref = 0; ref < count && !b->failed; ref++) {
            int *luma = sh->luma_weight[list][ref];

            luma[0] = luma_default;
            luma[1] = 0;
            if (h264_bit(b, "luma_weight_flag")) {
                luma[0] = h264_se_range(b, -128, 127, "luma_weight");
                luma[1] = h264_se_range(b, -128, 127, "luma_offset");
            }
            for (c = 0; c < 2; c++) {
                sh->chroma_weight[list][ref][c][0] = chroma_default;
                sh->chroma_weight[list][ref][c][1] = 0;
            }
            if (chroma && h264_bit(b, "chroma_weight_flag")) {
                for (c = 0; c < 2; c++) {
                    sh->chroma_weight[list][ref][c][0] =
                        h264_se_range(b, -128, 127, "chroma_weight");
                    sh->chroma_weight[list][ref][c][1] =
                        h264_se_range(b, -128, 127, "chroma_offset");
                }
            }
            sh->pred_weight_count[list] = ref + 1;
        }
    }
}

static void h264_dec_ref_pic_marking(h264_reader_t *r)
{
    h264_bits_t *b = &r->b;
    dv_h264_slice_header *sh = r->sh;

    if (h264_is_idr(sh)) {
        sh->no_output_of_prior_pics_flag = h264_bit(b, "no_output_of_prior_pics_flag");
        sh->long_term_reference_flag = h264_bit(b, "long_term_reference_flag");
        return;
    }
    sh->adaptive_ref_pic_marking_mode_flag = h264_bit(b, "adaptive_ref_pic_marking_mode_flag");
    if (!sh->adaptive_ref_pic_marking_mode_flag)
        return;
    while (!b->failed) {
        int op = (int)h264_ue_max(b, 6, "memory_management_control_operation");
        dv_h264_mmco *m;

        if (b->failed || op == 0)
            return;
        m = &sh->mmcos[sh->num_mmcos++];
        m->op = op;
        if (op == 1 || op == 3)
            m->difference_of_pic_nums_minus1 = h264_ue(b, "difference_of_pic_nums_minus1");
        if (op == 2)
            m->long_term_pic_num = h264_ue(b, "long_term_pic_num");
        if (op == 3 || op == 6)
            m->long_term_frame_idx = (int)h264_ue_max(b, 31, "long_term_frame_idx");
        if (op == 4)
            m->max_long_term_frame_idx_plus1 =
                (int)h264_ue_max(b, 16, "max_long_term_frame_idx_plus1");
        if (sh->num_mmcos > H264_MAX_MMCOS)
            h264_fail(b, "too many memory management control operations");
    }
}

static void h264_deblocking(h264_reader_t *r)
{
    h264_bits_t *b = &r->b;
    dv_h264_slice_header *sh = r->sh;

    sh->disable_deblocking_filter_idc = h264_ue_max(b, 2, "disable_deblocking_filter_idc");
    if (!b->failed && sh->disable_deblocking_filter_idc != 1) {
        sh->slice_alpha_c0_offset_div2 = h264_se_range(b, -6, 6, "slice_alpha_c0_offset_div2");
        sh->slice_beta_offset_div2 = h264_se_range(b, -6, 6, "slice_beta_offset_div2");
    }
}

/* Ceil(Log2(PicSizeInMapUnits / SliceGroupChangeRate + 1)), "/" exact (7.4.3) */
static int h264_change_cycle_bits(long long size, long long rate)
{
    int n = 0;

    while ((rate << n) < size + rate)
        n++;
    return n;
}

static void h264_slice_header(h264_reader_t *r)
{
    h264_bits_t *b = &r->b;
    dv_h264_slice_header *sh = r->sh;
    const dv_h264_parameters *p = r->p;
    size_t start;

    h264_slice_start(b, sh);
    if (b->failed)
        return;
    if (sh->first_mb_in_slice >= p->pic_size_in_mbs) {
        h264_fail(b, "first_mb_in_slice %lld past the picture", sh->first_mb_in_slice);
        return;
    }
    if (p->separate_colour_plane_flag)
        sh->colour_plane_id = h264_u(b, 2, "colour_plane_id");
    sh->frame_num = h264_u(b, p->log2_max_frame_num, "frame_num");
    if (!p->frame_mbs_only_flag) {
        sh->field_pic_flag = h264_bit(b, "field_pic_flag");
        if (sh->field_pic_flag)
            sh->bottom_field_flag = h264_bit(b, "bottom_field_flag");
    }
    if (h264_is_idr(sh))
        sh->idr_pic_id = h264_ue_max(b, 65535, "idr_pic_id");
    h264_pic_order_cnt(r);
    if (p->redundant_pic_cnt_present_flag)
        sh->redundant_pic_cnt = h264_ue_max(b, 127, "redundant_pic_cnt");
    if (sh->slice_type == H264_SLICE_B)
        sh->direct_spatial_mv_pred_flag = h264_bit(b, "direct_spatial_mv_pred_flag");
    h264_num_ref_idx_active(r);
    h264_ref_pic_list_modification(r);
    if (b->failed)
        return;
    if ((p->weighted_pred_flag && h264_is_p_or_sp(sh->slice_type)) ||
        (p->weighted_bipred_idc == 1 && sh->slice_type == H264_SLICE_B))
        h264_pred_weight_table(r);
    if (sh->nal_ref_idc) {
        start = b->pos;
        h264_dec_ref_pic_marking(r);
        sh->dec_ref_pic_marking_bit_size = (long long)(b->pos - start);
    }
    if (p->entropy_coding_mode_flag && sh->slice_type != H264_SLICE_I &&
        sh->slice_type != H264_SLICE_SI)
        sh->cabac_init_idc = h264_ue_max(b, 2, "cabac_init_idc");
    sh->slice_qp_delta = h264_se_range(b, -87, 77, "slice_qp_delta");
    if (sh->slice_type == H264_SLICE_SP || sh->slice_type == H264_SLICE_SI) {
        if (sh->slice_type == H264_SLICE_SP)
            sh->sp_for_switch_flag = h264_bit(b, "sp_for_switch_flag");
        sh->slice_qs_delta = h264_se_range(b, -51, 51, "slice_qs_delta");
    }
    if (p->deblocking_filter_control_present_flag)
        h264_deblocking(r);
    if (p->num_slice_groups_minus1 && p->slice_group_map_type >= 3 && p->slice_group_map_type <= 5)
        sh->slice_group_change_cycle = h264_u(
            b, h264_change_cycle_bits(p->pic_size_in_map_units,
                                      p->slice_group_change_rate_minus1 + 1),
            "slice_group_change_cycle");
}

static void h264_bits_init(h264_bits_t *b, char *err, size_t errlen)
{
    memset(b, 0, sizeof(*b));
    b->err = err;
    b->errlen = errlen;
    if (errlen)
        err[0] = 0;
}

int dv_h264_slice_pps_id(const unsigned char *nal, size_t len, int *pps_id,
                         char *err, size_t errlen)
{
    h264_bits_t b;
    dv_h264_slice_header sh;

    h264_bits_init(&b, err, errlen);
    memset(&sh, 0, sizeof(sh));
    if (h264_nal_header(&b, nal, len, &sh))
        return -1;
    h264_slice_start(&b, &sh);
    *pps_id = (int)sh.pic_parameter_set_id;
    return b.failed ? -1 : 0;
}

int dv_h264_parse_slice_header(const unsigned char *nal, size_t len,
                               const dv_h264_parameters *p, dv_h264_slice_header *out,
                               char *err, size_t errlen)
{
    h264_reader_t r;

    h264_bits_init(&r.b, err, errlen);
    memset(out, 0, sizeof(*out));
    r.p = p;
    r.sh = out;
    if (h264_nal_header(&r.b, nal, len, out))
        return -1;
    h264_slice_header(&r);
    if (r.b.failed)
        return -1;
    out->header_bit_size = (long long)(r.b.pos + 8 * (r.b.escapes + 1));
    return 0;
}

/* ------------------------------------------------------------------ Annex B (B.2) */

/* The first 0x000001 at or after from, or len. */
static size_t h264_find_start_code(const unsigned char *data, size_t len, size_t from)
{
    const unsigned char *one;
    size_t at = from + 2;

    while (at < len && (one = memchr(data + at, 1, len - at)) != NULL) {
        at = (size_t)(one - data);
        if (data[at - 1] == 0 && data[at - 2] == 0)
            return at - 2;
        at++;
    }
    return len;
}

size_t dv_h264_split_annexb(const unsigned char *data, size_t len, size_t *bounds,
                            size_t max_units)
{
    size_t units = 0, start, next, end;

    next = h264_find_start_code(data, len, 0);
    while (next < len) {
        start = next + 3;
        next = h264_find_start_code(data, len, start);
        end = next;
        if (next < len)
            while (end > start && data[end - 1] == 0)
                end--;  /* the zero bytes in front of a start code belong to no unit */
        if (end > start) {
            if (units < max_units) {
                bounds[2 * units] = start;
                bounds[2 * units + 1] = end;
            }
            units++;
        }
    }
    return units;
}
