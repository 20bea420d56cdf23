// SPDX-License-Identifier: BSD-2-Clause
/* AV1 sequence and frame headers (see av1_headers.h).  The functions follow
 * codecs/av1_syntax.py one for one, with the spec's names, so that the two can
 * be read side by side. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdarg.h>
#include <string.h>

#include "av1_headers.h"
#include "reader_failure.h"

enum {
    NUM_REF_FRAMES = 8, REFS_PER_FRAME = 7, PRIMARY_REF_NONE = 7,
    MAX_SEGMENTS = 8, SEG_LVL_MAX = 8, SEG_LVL_REF_FRAME = 5,
    MAX_TILE_WIDTH = 4096, MAX_TILE_AREA = 4096 * 2304, MAX_TILE_ROWS = 64, MAX_TILE_COLS = 64,
    SUPERRES_NUM = 8, SUPERRES_DENOM_MIN = 9, SUPERRES_DENOM_BITS = 3,
    SELECT_SCREEN_CONTENT_TOOLS = 2, SELECT_INTEGER_MV = 2,
    RESTORATION_TILESIZE_MAX = 256, WARPEDMODEL_PREC_BITS = 16,
    GM_ABS_TRANS_BITS = 12, GM_TRANS_PREC_BITS = 6,
    GM_ABS_TRANS_ONLY_BITS = 9, GM_TRANS_ONLY_PREC_BITS = 3,
    GM_ABS_ALPHA_BITS = 12, GM_ALPHA_PREC_BITS = 15, ALL_FRAMES = 0xff,
    KEY_FRAME = 0, INTER_FRAME = 1, INTRA_ONLY_FRAME = 2, SWITCH_FRAME = 3,
    INTRA_FRAME = 0, LAST_FRAME = 1, LAST2_FRAME = 2, LAST3_FRAME = 3, GOLDEN_FRAME = 4,
    BWDREF_FRAME = 5, ALTREF2_FRAME = 6, ALTREF_FRAME = 7,
    IDENTITY = 0, TRANSLATION = 1, ROTZOOM = 2, AFFINE = 3,
    RESTORE_NONE = 0, RESTORE_WIENER = 1, RESTORE_SGRPROJ = 2, RESTORE_SWITCHABLE = 3,
    ONLY_4X4 = 0, TX_MODE_LARGEST = 1, TX_MODE_SELECT = 2, INTERP_SWITCHABLE = 4,
    CP_BT_709 = 1, TC_SRGB = 13, MC_IDENTITY = 0, UNSPECIFIED = 2,
};

static const int seg_feature_bits[SEG_LVL_MAX] = {8, 6, 6, 6, 6, 3, 0, 0};
static const int seg_feature_signed[SEG_LVL_MAX] = {1, 1, 1, 1, 1, 0, 0, 0};
static const int seg_feature_max[SEG_LVL_MAX] = {255, 63, 63, 63, 63, 7, 0, 0};
static const int remap_lr_type[4] = {RESTORE_NONE, RESTORE_SWITCHABLE, RESTORE_WIENER,
                                     RESTORE_SGRPROJ};
static const int default_lf_ref_deltas[8] = {1, 0, 0, 0, -1, 0, -1, -1};
static const int default_gm_params[6] = {0, 0, 1 << WARPEDMODEL_PREC_BITS, 0, 0,
                                         1 << WARPEDMODEL_PREC_BITS};
static const int ref_frame_list[5] = {LAST2_FRAME, LAST3_FRAME, BWDREF_FRAME, ALTREF2_FRAME,
                                      ALTREF_FRAME};

/* ------------------------------------------------------------------ bits */

typedef struct {
    const uint8_t *data;
    size_t nbits, pos;
    int failed;
    char *err;
    size_t errlen;
} bits_t;

static void fail(bits_t *b, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    dv_first_failure(&b->failed, b->err, b->errlen, fmt, ap);
    va_end(ap);
}

/* f(n), n <= 32 */
static uint32_t f(bits_t *b, int n, const char *what)
{
    uint32_t v = 0;
    int i;

    if (n <= 0)
        return 0;
    if (b->failed)
        return 0;
    if (b->pos + (size_t)n > b->nbits) {
        fail(b, "truncated: reading %s needs %d bit(s) at bit %zu, only %zu left",
             what, n, b->pos, b->nbits - b->pos);
        return 0;
    }
    for (i = 0; i < n; i++, b->pos++)
        v = v << 1 | ((b->data[b->pos >> 3] >> (7 - (b->pos & 7))) & 1);
    return v;
}

static int flag(bits_t *b, const char *what)
{
    return (int)f(b, 1, what);
}

static int su(bits_t *b, int n, const char *what)
{
    int value = (int)f(b, n, what);
    int sign = 1 << (n - 1);

    return value & sign ? value - 2 * sign : value;
}

static int floor_log2(uint32_t n)
{
    int s = -1;

    while (n) {
        n >>= 1;
        s++;
    }
    return s;
}

static int ns(bits_t *b, int n, const char *what)
{
    int w = floor_log2((uint32_t)n) + 1;
    int m = (1 << w) - n;
    int v = (int)f(b, w - 1, what);

    if (v < m)
        return v;
    return (v << 1) - m + (int)f(b, 1, what);
}

static void uvlc(bits_t *b, const char *what)
{
    int leading_zeros = 0;

    while (!b->failed && !flag(b, what))
        leading_zeros++;
    if (leading_zeros < 32)
        f(b, leading_zeros, what);
}

static int tile_log2(int blk_size, int target)
{
    int k = 0;

    while ((blk_size << k) < target)
        k++;
    return k;
}

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

/* ------------------------------------------------------------------ sequence */

static void timing_and_operating_points(bits_t *b, dv_av1_sequence *seq)
{
    int buffer_delay_length = 0, i;

    seq->timing_info_present_flag = flag(b, "timing_info_present_flag");
    if (seq->timing_info_present_flag) {
        f(b, 32, "num_units_in_display_tick");
        f(b, 32, "time_scale");
        seq->equal_picture_interval = flag(b, "equal_picture_interval");
        if (seq->equal_picture_interval)
            uvlc(b, "num_ticks_per_picture_minus_1");
        seq->decoder_model_info_present_flag = flag(b, "decoder_model_info_present_flag");
        if (seq->decoder_model_info_present_flag) {
            buffer_delay_length = (int)f(b, 5, "buffer_delay_length_minus_1") + 1;
            f(b, 32, "num_units_in_decoding_tick");
            seq->buffer_removal_time_length_minus_1 = (int)f(b, 5, "buffer_removal_time_length");
            seq->frame_presentation_time_length_minus_1 =
                (int)f(b, 5, "frame_presentation_time_length_minus_1");
        }
    }
    seq->initial_display_delay_present_flag = flag(b, "initial_display_delay_present_flag");
    seq->operating_points_cnt = (int)f(b, 5, "operating_points_cnt_minus_1") + 1;
    for (i = 0; i < seq->operating_points_cnt; i++) {
        dv_av1_operating_point *op = &seq->operating_points[i];

        op->idc = (int)f(b, 12, "operating_point_idc");
        op->seq_level_idx = (int)f(b, 5, "seq_level_idx");
        if (op->seq_level_idx > 7)
            op->seq_tier = (int)f(b, 1, "seq_tier");
        if (seq->decoder_model_info_present_flag) {
            op->decoder_model_present = flag(b, "decoder_model_present_for_this_op");
            if (op->decoder_model_present) {
                f(b, buffer_delay_length, "decoder_buffer_delay");
                f(b, buffer_delay_length, "encoder_buffer_delay");
                f(b, 1, "low_delay_mode_flag");
            }
        }
        if (seq->initial_display_delay_present_flag) {
            op->initial_display_delay_present = flag(b, "initial_display_delay_present_for_op");
            if (op->initial_display_delay_present)
                f(b, 4, "initial_display_delay_minus_1");
        }
    }
}

static void inter_tools(bits_t *b, dv_av1_sequence *seq)
{
    seq->enable_interintra_compound = flag(b, "enable_interintra_compound");
    seq->enable_masked_compound = flag(b, "enable_masked_compound");
    seq->enable_warped_motion = flag(b, "enable_warped_motion");
    seq->enable_dual_filter = flag(b, "enable_dual_filter");
    seq->enable_order_hint = flag(b, "enable_order_hint");
    if (seq->enable_order_hint) {
        seq->enable_jnt_comp = flag(b, "enable_jnt_comp");
        seq->enable_ref_frame_mvs = flag(b, "enable_ref_frame_mvs");
    }
    if (flag(b, "seq_choose_screen_content_tools"))
        seq->seq_force_screen_content_tools = SELECT_SCREEN_CONTENT_TOOLS;
    else
        seq->seq_force_screen_content_tools = (int)f(b, 1, "seq_force_screen_content_tools");
    seq->seq_force_integer_mv = SELECT_INTEGER_MV;
    if (seq->seq_force_screen_content_tools > 0 && !flag(b, "seq_choose_integer_mv"))
        seq->seq_force_integer_mv = (int)f(b, 1, "seq_force_integer_mv");
    if (seq->enable_order_hint)
        seq->order_hint_bits = (int)f(b, 3, "order_hint_bits_minus_1") + 1;
}

static void subsampling(bits_t *b, dv_av1_sequence *seq)
{
    if (seq->seq_profile == 0) {
        seq->subsampling_x = seq->subsampling_y = 1;
    } else if (seq->seq_profile == 1) {
        seq->subsampling_x = seq->subsampling_y = 0;
    } else if (seq->bit_depth == 12) {
        seq->subsampling_x = (int)f(b, 1, "subsampling_x");
        seq->subsampling_y = seq->subsampling_x ? (int)f(b, 1, "subsampling_y") : 0;
    } else {
        seq->subsampling_x = 1;
        seq->subsampling_y = 0;
    }
}

static void color_config(bits_t *b, dv_av1_sequence *seq)
{
    int high_bitdepth = flag(b, "high_bitdepth");

    if (seq->seq_profile == 2 && high_bitdepth)
        seq->bit_depth = flag(b, "twelve_bit") ? 12 : 10;
    else
        seq->bit_depth = high_bitdepth ? 10 : 8;
    seq->mono_chrome = seq->seq_profile == 1 ? 0 : flag(b, "mono_chrome");
    seq->color_description_present_flag = flag(b, "color_description_present_flag");
    if (seq->color_description_present_flag) {
        seq->color_primaries = (int)f(b, 8, "color_primaries");
        seq->transfer_characteristics = (int)f(b, 8, "transfer_characteristics");
        seq->matrix_coefficients = (int)f(b, 8, "matrix_coefficients");
    }
    if (seq->mono_chrome) {
        seq->color_range = flag(b, "color_range");
        seq->subsampling_x = seq->subsampling_y = 1;
        return;
    }
    if (seq->color_primaries == CP_BT_709 && seq->transfer_characteristics == TC_SRGB &&
        seq->matrix_coefficients == MC_IDENTITY) {
        seq->color_range = 1;
        seq->subsampling_x = seq->subsampling_y = 0;
    } else {
        seq->color_range = flag(b, "color_range");
        subsampling(b, seq);
        if (seq->subsampling_x && seq->subsampling_y)
            seq->chroma_sample_position = (int)f(b, 2, "chroma_sample_position");
    }
    seq->separate_uv_delta_q = flag(b, "separate_uv_delta_q");
}

/* Into *seq only when the whole header reads: a bad one leaves the one in force. */
int dv_av1_parse_sequence(const unsigned char *payload, size_t len, dv_av1_sequence *out,
                          char *err, size_t errlen)
{
    bits_t b = {payload, len * 8, 0, 0, err, errlen};
    dv_av1_sequence parsed, *seq = &parsed;

    memset(seq, 0, sizeof(*seq));
    seq->operating_points_cnt = 1;
    seq->seq_force_screen_content_tools = SELECT_SCREEN_CONTENT_TOOLS;
    seq->seq_force_integer_mv = SELECT_INTEGER_MV;
    seq->bit_depth = 8;
    seq->color_primaries = seq->transfer_characteristics = seq->matrix_coefficients = UNSPECIFIED;
    seq->subsampling_x = seq->subsampling_y = 1;

    seq->seq_profile = (int)f(&b, 3, "seq_profile");
    if (seq->seq_profile > 2) {
        fail(&b, "unknown seq_profile %d", seq->seq_profile);
        return -1;
    }
    seq->still_picture = flag(&b, "still_picture");
    seq->reduced_still_picture_header = flag(&b, "reduced_still_picture_header");
    if (seq->reduced_still_picture_header)
        seq->operating_points[0].seq_level_idx = (int)f(&b, 5, "seq_level_idx");
    else
        timing_and_operating_points(&b, seq);
    seq->frame_width_bits_minus_1 = (int)f(&b, 4, "frame_width_bits_minus_1");
    seq->frame_height_bits_minus_1 = (int)f(&b, 4, "frame_height_bits_minus_1");
    seq->max_frame_width_minus_1 = (int)f(&b, seq->frame_width_bits_minus_1 + 1, "max_frame_width");
    seq->max_frame_height_minus_1 = (int)f(&b, seq->frame_height_bits_minus_1 + 1,
                                           "max_frame_height");
    if (!seq->reduced_still_picture_header)
        seq->frame_id_numbers_present_flag = flag(&b, "frame_id_numbers_present_flag");
    if (seq->frame_id_numbers_present_flag) {
        seq->delta_frame_id_length_minus_2 = (int)f(&b, 4, "delta_frame_id_length_minus_2");
        seq->additional_frame_id_length_minus_1 = (int)f(&b, 3, "additional_frame_id_length");
    }
    seq->use_128x128_superblock = flag(&b, "use_128x128_superblock");
    seq->enable_filter_intra = flag(&b, "enable_filter_intra");
    seq->enable_intra_edge_filter = flag(&b, "enable_intra_edge_filter");
    if (!seq->reduced_still_picture_header)
        inter_tools(&b, seq);
    seq->enable_superres = flag(&b, "enable_superres");
    seq->enable_cdef = flag(&b, "enable_cdef");
    seq->enable_restoration = flag(&b, "enable_restoration");
    color_config(&b, seq);
    seq->film_grain_params_present = flag(&b, "film_grain_params_present");
    if (b.failed)
        return -1;
    *out = parsed;
    return 0;
}

/* ------------------------------------------------------------------ frame header */

typedef struct {
    bits_t b;
    const dv_av1_sequence *seq;
    const dv_av1_slot *slots;
    int temporal_id, spatial_id;
    dv_av1_frame_header *h;
    int ref_order_hint[NUM_REF_FRAMES];
} reader_t;

static int frame_is_intra(const dv_av1_frame_header *h)
{
    return h->frame_type == KEY_FRAME || h->frame_type == INTRA_ONLY_FRAME;
}

static void frame_header_defaults(dv_av1_frame_header *h)
{
    int i, j;

    memset(h, 0, sizeof(*h));
    h->frame_type = KEY_FRAME;
    h->show_frame = 1;
    h->primary_ref_frame = PRIMARY_REF_NONE;
    h->disable_frame_end_update_cdf = 1;
    h->superres_denom = SUPERRES_NUM;
    h->tile_uniform = 1;
    h->tile_cols = h->tile_rows = 1;
    h->tile_size_bytes = 4;
    h->sb_shift = 4;
    memcpy(h->lf_ref_deltas, default_lf_ref_deltas, sizeof(h->lf_ref_deltas));
    for (i = 0; i < 3; i++)
        h->frame_restoration_type[i] = RESTORE_NONE;
    h->tx_mode = ONLY_4X4;
    for (i = 0; i < 8; i++) {
        h->gm_type[i] = IDENTITY;
        for (j = 0; j < 6; j++)
            h->gm_params[i][j] = default_gm_params[j];
    }
}

static int relative_dist(reader_t *r, int a, int b)
{
    int diff, m;

    if (!r->seq->enable_order_hint)
        return 0;
    diff = a - b;
    m = 1 << (r->seq->order_hint_bits - 1);
    return (diff & (m - 1)) - (diff & m);
}

static void show_existing_frame(reader_t *r, int id_len)
{
    dv_av1_frame_header *h = r->h;
    const dv_av1_sequence *seq = r->seq;
    const dv_av1_slot *slot;

    h->frame_to_show_map_idx = (int)f(&r->b, 3, "frame_to_show_map_idx");
    if (seq->decoder_model_info_present_flag && !seq->equal_picture_interval)
        f(&r->b, seq->frame_presentation_time_length_minus_1 + 1, "frame_presentation_time");
    if (seq->frame_id_numbers_present_flag)
        f(&r->b, id_len, "display_frame_id");
    slot = &r->slots[h->frame_to_show_map_idx];
    if (!slot->valid) {
        fail(&r->b, "show_existing_frame of empty reference slot %d", h->frame_to_show_map_idx);
        return;
    }
    h->frame_type = slot->frame_type;
    h->refresh_frame_flags = h->frame_type == KEY_FRAME ? ALL_FRAMES : 0;
    h->show_frame = 1;
    h->frame_width = slot->frame_width;
    h->frame_height = slot->frame_height;
    h->upscaled_width = slot->upscaled_width;
    h->render_width = slot->render_width;
    h->render_height = slot->render_height;
    h->order_hint = slot->order_hint;
    if (seq->film_grain_params_present)
        h->film_grain = slot->film_grain;  /* load_grain_params() */
}

static void frame_type_and_show_flags(reader_t *r)
{
    dv_av1_frame_header *h = r->h;
    const dv_av1_sequence *seq = r->seq;

    h->frame_type = (int)f(&r->b, 2, "frame_type");
    h->show_frame = flag(&r->b, "show_frame");
    if (h->show_frame && seq->decoder_model_info_present_flag && !seq->equal_picture_interval)
        f(&r->b, seq->frame_presentation_time_length_minus_1 + 1, "frame_presentation_time");
    if (h->show_frame)
        h->showable_frame = h->frame_type != KEY_FRAME;
    else
        h->showable_frame = flag(&r->b, "showable_frame");
    if (h->frame_type == SWITCH_FRAME || (h->frame_type == KEY_FRAME && h->show_frame))
        h->error_resilient_mode = 1;
    else
        h->error_resilient_mode = flag(&r->b, "error_resilient_mode");
}

static void screen_content_and_integer_mv(reader_t *r)
{
    dv_av1_frame_header *h = r->h;
    const dv_av1_sequence *seq = r->seq;

    if (seq->seq_force_screen_content_tools == SELECT_SCREEN_CONTENT_TOOLS)
        h->allow_screen_content_tools = (int)f(&r->b, 1, "allow_screen_content_tools");
    else
        h->allow_screen_content_tools = seq->seq_force_screen_content_tools;
    if (h->allow_screen_content_tools) {
        if (seq->seq_force_integer_mv == SELECT_INTEGER_MV)
            h->force_integer_mv = (int)f(&r->b, 1, "force_integer_mv");
        else
            h->force_integer_mv = seq->seq_force_integer_mv;
    }
    if (frame_is_intra(h))
        h->force_integer_mv = 1;
}

static void buffer_removal_times(reader_t *r)
{
    dv_av1_frame_header *h = r->h;
    const dv_av1_sequence *seq = r->seq;
    int num;

    h->buffer_removal_time_present_flag = flag(&r->b, "buffer_removal_time_present_flag");
    if (!h->buffer_removal_time_present_flag)
        return;
    for (num = 0; num < seq->operating_points_cnt; num++) {
        const dv_av1_operating_point *op = &seq->operating_points[num];
        int in_temporal = (op->idc >> r->temporal_id) & 1;
        int in_spatial = (op->idc >> (r->spatial_id + 8)) & 1;

        if (!op->decoder_model_present)
            continue;
        if (op->idc == 0 || (in_temporal && in_spatial))
            h->buffer_removal_time[num] = (int)f(&r->b, seq->buffer_removal_time_length_minus_1 + 1,
                                                 "buffer_removal_time");
    }
}

static void superres_params(reader_t *r)
{
    dv_av1_frame_header *h = r->h;
    int denom;

    h->use_superres = r->seq->enable_superres ? flag(&r->b, "use_superres") : 0;
    h->superres_denom = SUPERRES_NUM;
    if (h->use_superres)
        h->superres_denom = (int)f(&r->b, SUPERRES_DENOM_BITS, "coded_denom") + SUPERRES_DENOM_MIN;
    h->upscaled_width = h->frame_width;
    denom = h->superres_denom;
    h->frame_width = (h->upscaled_width * SUPERRES_NUM + denom / 2) / denom;
    h->mi_cols = 2 * ((h->frame_width + 7) >> 3);   /* compute_image_size() */
    h->mi_rows = 2 * ((h->frame_height + 7) >> 3);
}

static void frame_size(reader_t *r)
{
    dv_av1_frame_header *h = r->h;
    const dv_av1_sequence *seq = r->seq;

    if (h->frame_size_override_flag) {
        h->frame_width = (int)f(&r->b, seq->frame_width_bits_minus_1 + 1, "frame_width_minus_1") + 1;
        h->frame_height = (int)f(&r->b, seq->frame_height_bits_minus_1 + 1,
                                 "frame_height_minus_1") + 1;
    } else {
        h->frame_width = seq->max_frame_width_minus_1 + 1;
        h->frame_height = seq->max_frame_height_minus_1 + 1;
    }
    superres_params(r);
}

static void render_size(reader_t *r)
{
    dv_av1_frame_header *h = r->h;

    if (flag(&r->b, "render_and_frame_size_different")) {
        h->render_width = (int)f(&r->b, 16, "render_width_minus_1") + 1;
        h->render_height = (int)f(&r->b, 16, "render_height_minus_1") + 1;
    } else {
        h->render_width = h->upscaled_width;
        h->render_height = h->frame_height;
    }
}

static void frame_size_with_refs(reader_t *r)
{
    dv_av1_frame_header *h = r->h;
    int i;

    for (i = 0; i < REFS_PER_FRAME; i++) {
        if (flag(&r->b, "found_ref")) {
            const dv_av1_slot *slot = &r->slots[h->ref_frame_idx[i]];

            h->upscaled_width = h->frame_width = slot->upscaled_width;
            h->frame_height = slot->frame_height;
            h->render_width = slot->render_width;
            h->render_height = slot->render_height;
            superres_params(r);
            return;
        }
    }
    frame_size(r);
    render_size(r);
}

/* set_frame_refs (spec 7.8): pick over the shifted order hints */
static int pick_ref(const int *shifted, const int *used, int cur, int backward, int latest)
{
    int best = -1, best_hint = 0, i;

    for (i = 0; i < NUM_REF_FRAMES; i++) {
        int hint = shifted[i];

        if (used[i] || (hint >= cur) != backward)
            continue;
        if (best < 0 || (latest ? hint >= best_hint : hint < best_hint)) {
            best = i;
            best_hint = hint;
        }
    }
    return best;
}

static void set_frame_refs(reader_t *r, int last, int gold)
{
    int refs[REFS_PER_FRAME], used[NUM_REF_FRAMES] = {0}, shifted[NUM_REF_FRAMES];
    int cur = 1 << (r->seq->order_hint_bits - 1), i, ref, earliest = 0;
    static const int backward_first[3][3] = {
        {ALTREF_FRAME, 1, 1}, {BWDREF_FRAME, 1, 0}, {ALTREF2_FRAME, 1, 0}};

    for (i = 0; i < REFS_PER_FRAME; i++)
        refs[i] = -1;
    refs[LAST_FRAME - LAST_FRAME] = last;
    refs[GOLDEN_FRAME - LAST_FRAME] = gold;
    used[last] = used[gold] = 1;
    for (i = 0; i < NUM_REF_FRAMES; i++)
        shifted[i] = cur + relative_dist(r, r->ref_order_hint[i], r->h->order_hint);
    for (i = 0; i < 3; i++) {
        ref = pick_ref(shifted, used, cur, backward_first[i][1], backward_first[i][2]);
        if (ref >= 0) {
            refs[backward_first[i][0] - LAST_FRAME] = ref;
            used[ref] = 1;
        }
    }
    for (i = 0; i < 5; i++) {
        if (refs[ref_frame_list[i] - LAST_FRAME] < 0) {
            ref = pick_ref(shifted, used, cur, 0, 1);
            if (ref >= 0) {
                refs[ref_frame_list[i] - LAST_FRAME] = ref;
                used[ref] = 1;
            }
        }
    }
    for (i = 1; i < NUM_REF_FRAMES; i++)
        if (shifted[i] < shifted[earliest])
            earliest = i;
    for (i = 0; i < REFS_PER_FRAME; i++)
        r->h->ref_frame_idx[i] = refs[i] < 0 ? earliest : refs[i];
}

static void inter_frame_setup(reader_t *r)
{
    dv_av1_frame_header *h = r->h;
    const dv_av1_sequence *seq = r->seq;
    int i;

    if (seq->enable_order_hint)
        h->frame_refs_short_signaling = flag(&r->b, "frame_refs_short_signaling");
    if (h->frame_refs_short_signaling) {
        int last = (int)f(&r->b, 3, "last_frame_idx");
        int gold = (int)f(&r->b, 3, "gold_frame_idx");

        set_frame_refs(r, last, gold);
    }
    for (i = 0; i < REFS_PER_FRAME; i++) {
        if (!h->frame_refs_short_signaling)
            h->ref_frame_idx[i] = (int)f(&r->b, 3, "ref_frame_idx");
        if (seq->frame_id_numbers_present_flag)
            f(&r->b, seq->delta_frame_id_length_minus_2 + 2, "delta_frame_id_minus_1");
    }
    for (i = 0; i < REFS_PER_FRAME; i++) {
        if (!r->slots[h->ref_frame_idx[i]].valid) {
            fail(&r->b, "inter frame references empty slot %d", h->ref_frame_idx[i]);
            return;
        }
    }
    if (h->frame_size_override_flag && !h->error_resilient_mode) {
        frame_size_with_refs(r);
    } else {
        frame_size(r);
        render_size(r);
    }
    h->allow_high_precision_mv = h->force_integer_mv ? 0 : flag(&r->b, "allow_high_precision_mv");
    if (flag(&r->b, "is_filter_switchable"))
        h->interpolation_filter = INTERP_SWITCHABLE;
    else
        h->interpolation_filter = (int)f(&r->b, 2, "interpolation_filter");
    h->is_motion_mode_switchable = flag(&r->b, "is_motion_mode_switchable");
    if (!(h->error_resilient_mode || !seq->enable_ref_frame_mvs))
        h->use_ref_frame_mvs = flag(&r->b, "use_ref_frame_mvs");
    for (i = 0; i < REFS_PER_FRAME; i++) {
        int hint = r->ref_order_hint[h->ref_frame_idx[i]];

        h->order_hints[LAST_FRAME + i] = hint;
        h->ref_frame_sign_bias[LAST_FRAME + i] = relative_dist(r, hint, h->order_hint) > 0;
    }
}

static void refresh_and_references(reader_t *r)
{
    dv_av1_frame_header *h = r->h;
    const dv_av1_sequence *seq = r->seq;
    int i;

    if (h->frame_type == SWITCH_FRAME || (h->frame_type == KEY_FRAME && h->show_frame))
        h->refresh_frame_flags = ALL_FRAMES;
    else
        h->refresh_frame_flags = (int)f(&r->b, 8, "refresh_frame_flags");
    if ((!frame_is_intra(h) || h->refresh_frame_flags != ALL_FRAMES) &&
        h->error_resilient_mode && seq->enable_order_hint)
        for (i = 0; i < NUM_REF_FRAMES; i++)
            r->ref_order_hint[i] = (int)f(&r->b, seq->order_hint_bits, "ref_order_hint");
    if (frame_is_intra(h)) {
        frame_size(r);
        render_size(r);
        if (h->allow_screen_content_tools && h->upscaled_width == h->frame_width)
            h->allow_intrabc = flag(&r->b, "allow_intrabc");
    } else {
        inter_frame_setup(r);
    }
}

static void load_previous(reader_t *r, const dv_av1_slot *previous)
{
    dv_av1_frame_header *h = r->h;

    if (!previous)
        return;  /* setup_past_independence(): the defaults */
    memcpy(h->lf_ref_deltas, previous->lf_ref_deltas, sizeof(h->lf_ref_deltas));
    memcpy(h->lf_mode_deltas, previous->lf_mode_deltas, sizeof(h->lf_mode_deltas));
    memcpy(h->seg_feature_enabled, previous->seg_feature_enabled, sizeof(h->seg_feature_enabled));
    memcpy(h->seg_feature_data, previous->seg_feature_data, sizeof(h->seg_feature_data));
}

/* ------------------------------------------------------------------ tile_info (5.9.15) */

static int increments(reader_t *r, int value, int limit, const char *what)
{
    while (value < limit && flag(&r->b, what))
        value++;
    return value;
}

/* Returns the count of starts + 1 (the end), or -1 past MAX_TILE_* tiles. */
static int uniform_starts(reader_t *r, int sbs, int log2, int mis, int *starts)
{
    int size_sb = (sbs + (1 << log2) - 1) >> log2, n = 0, start;

    for (start = 0; start < sbs; start += size_sb) {
        if (n >= MAX_TILE_COLS)
            return -1;
        starts[n++] = start << r->h->sb_shift;
    }
    starts[n++] = mis;
    return n;
}

static int explicit_starts(reader_t *r, int sbs, int max_size, int mis, int *starts,
                           int *widest, const char *what)
{
    int start = 0, n = 0, size;

    *widest = 0;
    while (start < sbs && !r->b.failed) {
        if (n >= MAX_TILE_COLS)
            return -1;
        starts[n++] = start << r->h->sb_shift;
        size = ns(&r->b, imin(sbs - start, max_size), what) + 1;
        *widest = imax(*widest, size);
        start += size;
    }
    starts[n++] = mis;
    return n;
}

static void tile_info(reader_t *r)
{
    dv_av1_frame_header *h = r->h;
    int sb128 = r->seq->use_128x128_superblock;
    int sb_cols, sb_rows, sb_size, max_tile_width_sb, max_tile_area_sb;
    int min_log2_tile_cols, max_log2_tile_cols, max_log2_tile_rows, min_log2_tiles;
    int ncols, nrows, widest;

    h->sb_shift = sb128 ? 5 : 4;
    sb_cols = sb128 ? (h->mi_cols + 31) >> 5 : (h->mi_cols + 15) >> 4;
    sb_rows = sb128 ? (h->mi_rows + 31) >> 5 : (h->mi_rows + 15) >> 4;
    sb_size = h->sb_shift + 2;
    max_tile_width_sb = MAX_TILE_WIDTH >> sb_size;
    max_tile_area_sb = MAX_TILE_AREA >> (2 * sb_size);
    min_log2_tile_cols = tile_log2(max_tile_width_sb, sb_cols);
    max_log2_tile_cols = tile_log2(1, imin(sb_cols, MAX_TILE_COLS));
    max_log2_tile_rows = tile_log2(1, imin(sb_rows, MAX_TILE_ROWS));
    min_log2_tiles = imax(min_log2_tile_cols, tile_log2(max_tile_area_sb, sb_rows * sb_cols));
    h->tile_uniform = flag(&r->b, "uniform_tile_spacing_flag");
    if (h->tile_uniform) {
        h->tile_cols_log2 = increments(r, min_log2_tile_cols, max_log2_tile_cols,
                                       "increment_tile_cols_log2");
        ncols = uniform_starts(r, sb_cols, h->tile_cols_log2, h->mi_cols, h->mi_col_starts);
        h->tile_rows_log2 = increments(r, imax(min_log2_tiles - h->tile_cols_log2, 0),
                                       max_log2_tile_rows, "increment_tile_rows_log2");
        nrows = uniform_starts(r, sb_rows, h->tile_rows_log2, h->mi_rows, h->mi_row_starts);
    } else {
        int max_tile_height_sb;

        ncols = explicit_starts(r, sb_cols, max_tile_width_sb, h->mi_cols, h->mi_col_starts,
                                &widest, "width_in_sbs_minus_1");
        if (min_log2_tiles > 0)
            max_tile_area_sb = (sb_rows * sb_cols) >> (min_log2_tiles + 1);
        else
            max_tile_area_sb = sb_rows * sb_cols;
        max_tile_height_sb = widest ? imax(max_tile_area_sb / widest, 1) : 1;
        nrows = explicit_starts(r, sb_rows, max_tile_height_sb, h->mi_rows, h->mi_row_starts,
                                &widest, "height_in_sbs_minus_1");
        h->tile_cols_log2 = tile_log2(1, ncols - 1);
        h->tile_rows_log2 = tile_log2(1, nrows - 1);
    }
    if (ncols < 0 || nrows < 0) {
        fail(&r->b, "more than 64x64 tiles");
        return;
    }
    h->tile_cols = ncols - 1;
    h->tile_rows = nrows - 1;
    if (h->tile_cols_log2 > 0 || h->tile_rows_log2 > 0) {
        h->context_update_tile_id = (int)f(&r->b, h->tile_rows_log2 + h->tile_cols_log2,
                                           "context_update_tile_id");
        h->tile_size_bytes = (int)f(&r->b, 2, "tile_size_bytes_minus_1") + 1;
        if (h->context_update_tile_id >= h->tile_cols * h->tile_rows)
            fail(&r->b, "context_update_tile_id %d past the %d tiles", h->context_update_tile_id,
                 h->tile_cols * h->tile_rows);
    }
}

/* ------------------------------------------------------------------ quantization, segmentation */

static int read_delta_q(reader_t *r, const char *what)
{
    return flag(&r->b, what) ? su(&r->b, 7, what) : 0;
}

static void quantization_params(reader_t *r)
{
    dv_av1_frame_header *h = r->h;
    const dv_av1_sequence *seq = r->seq;

    h->base_q_idx = (int)f(&r->b, 8, "base_q_idx");
    h->delta_q_y_dc = read_delta_q(r, "delta_q_y_dc");
    if (!seq->mono_chrome) {
        h->diff_uv_delta = seq->separate_uv_delta_q ? flag(&r->b, "diff_uv_delta") : 0;
        h->delta_q_u_dc = read_delta_q(r, "delta_q_u_dc");
        h->delta_q_u_ac = read_delta_q(r, "delta_q_u_ac");
        if (h->diff_uv_delta) {
            h->delta_q_v_dc = read_delta_q(r, "delta_q_v_dc");
            h->delta_q_v_ac = read_delta_q(r, "delta_q_v_ac");
        } else {
            h->delta_q_v_dc = h->delta_q_u_dc;
            h->delta_q_v_ac = h->delta_q_u_ac;
        }
    }
    h->using_qmatrix = flag(&r->b, "using_qmatrix");
    if (h->using_qmatrix) {
        h->qm_y = (int)f(&r->b, 4, "qm_y");
        h->qm_u = (int)f(&r->b, 4, "qm_u");
        h->qm_v = seq->separate_uv_delta_q ? (int)f(&r->b, 4, "qm_v") : h->qm_u;
    }
}

static void segmentation_features(reader_t *r)
{
    dv_av1_frame_header *h = r->h;
    int i, j;

    for (i = 0; i < MAX_SEGMENTS; i++) {
        for (j = 0; j < SEG_LVL_MAX; j++) {
            int enabled = flag(&r->b, "feature_enabled"), value = 0;

            if (enabled) {
                int bits = seg_feature_bits[j], limit = seg_feature_max[j];

                if (seg_feature_signed[j])
                    value = imax(-limit, imin(limit, su(&r->b, 1 + bits, "feature_value")));
                else
                    value = imax(0, imin(limit, (int)f(&r->b, bits, "feature_value")));
            }
            h->seg_feature_enabled[i][j] = enabled;
            h->seg_feature_data[i][j] = value;
        }
    }
}

static void segmentation_params(reader_t *r)
{
    dv_av1_frame_header *h = r->h;
    int i, j;

    h->seg_enabled = flag(&r->b, "segmentation_enabled");
    if (h->seg_enabled) {
        if (h->primary_ref_frame == PRIMARY_REF_NONE) {
            h->seg_update_map = 1;
            h->seg_temporal_update = 0;
            h->seg_update_data = 1;
        } else {
            h->seg_update_map = flag(&r->b, "segmentation_update_map");
            if (h->seg_update_map)
                h->seg_temporal_update = flag(&r->b, "segmentation_temporal_update");
            h->seg_update_data = flag(&r->b, "segmentation_update_data");
        }
        if (h->seg_update_data)
            segmentation_features(r);
    } else {
        memset(h->seg_feature_enabled, 0, sizeof(h->seg_feature_enabled));
        memset(h->seg_feature_data, 0, sizeof(h->seg_feature_data));
    }
    h->seg_id_pre_skip = 0;
    h->last_active_seg_id = 0;
    for (i = 0; i < MAX_SEGMENTS; i++)
        for (j = 0; j < SEG_LVL_MAX; j++)
            if (h->seg_feature_enabled[i][j]) {
                h->last_active_seg_id = i;
                if (j >= SEG_LVL_REF_FRAME)
                    h->seg_id_pre_skip = 1;
            }
}

static void delta_q_and_lf_params(reader_t *r)
{
    dv_av1_frame_header *h = r->h;

    if (h->base_q_idx > 0)
        h->delta_q_present = flag(&r->b, "delta_q_present");
    if (h->delta_q_present) {
        h->delta_q_res = (int)f(&r->b, 2, "delta_q_res");
        if (!h->allow_intrabc)
            h->delta_lf_present = flag(&r->b, "delta_lf_present");
        if (h->delta_lf_present) {
            h->delta_lf_res = (int)f(&r->b, 2, "delta_lf_res");
            h->delta_lf_multi = flag(&r->b, "delta_lf_multi");
        }
    }
}

static int qindex(const dv_av1_frame_header *h, int segment)
{
    if (h->seg_enabled && h->seg_feature_enabled[segment][0])
        return imax(0, imin(255, h->base_q_idx + h->seg_feature_data[segment][0]));
    return h->base_q_idx;
}

static void lossless(reader_t *r)
{
    dv_av1_frame_header *h = r->h;
    int segment;

    h->coded_lossless = !(h->delta_q_y_dc || h->delta_q_u_ac || h->delta_q_u_dc ||
                          h->delta_q_v_ac || h->delta_q_v_dc);
    for (segment = 0; segment < MAX_SEGMENTS && h->coded_lossless; segment++)
        if (qindex(h, segment) != 0)
            h->coded_lossless = 0;
    h->all_lossless = h->coded_lossless && h->frame_width == h->upscaled_width;
}

/* ------------------------------------------------------------------ filters */

static void loop_filter_params(reader_t *r)
{
    dv_av1_frame_header *h = r->h;
    int i;

    if (h->coded_lossless || h->allow_intrabc) {
        memcpy(h->lf_ref_deltas, default_lf_ref_deltas, sizeof(h->lf_ref_deltas));
        h->lf_mode_deltas[0] = h->lf_mode_deltas[1] = 0;
        return;
    }
    h->lf_level[0] = (int)f(&r->b, 6, "loop_filter_level[0]");
    h->lf_level[1] = (int)f(&r->b, 6, "loop_filter_level[1]");
    if (!r->seq->mono_chrome && (h->lf_level[0] || h->lf_level[1])) {
        h->lf_level[2] = (int)f(&r->b, 6, "loop_filter_level[2]");
        h->lf_level[3] = (int)f(&r->b, 6, "loop_filter_level[3]");
    }
    h->lf_sharpness = (int)f(&r->b, 3, "loop_filter_sharpness");
    h->lf_delta_enabled = flag(&r->b, "loop_filter_delta_enabled");
    if (h->lf_delta_enabled) {
        h->lf_delta_update = flag(&r->b, "loop_filter_delta_update");
        if (h->lf_delta_update) {
            for (i = 0; i < 8; i++)
                if (flag(&r->b, "update_delta"))
                    h->lf_ref_deltas[i] = su(&r->b, 7, "loop_filter_delta");
            for (i = 0; i < 2; i++)
                if (flag(&r->b, "update_delta"))
                    h->lf_mode_deltas[i] = su(&r->b, 7, "loop_filter_delta");
        }
    }
}

static int sec_strength(reader_t *r)
{
    int value = (int)f(&r->b, 2, "cdef_sec_strength");

    return value == 3 ? 4 : value;
}

static void cdef_params(reader_t *r)
{
    dv_av1_frame_header *h = r->h;
    int i;

    if (h->coded_lossless || h->allow_intrabc || !r->seq->enable_cdef)
        return;
    h->cdef_damping_minus_3 = (int)f(&r->b, 2, "cdef_damping_minus_3");
    h->cdef_bits = (int)f(&r->b, 2, "cdef_bits");
    for (i = 0; i < (1 << h->cdef_bits); i++) {
        h->cdef_y_pri_strength[i] = (int)f(&r->b, 4, "cdef_y_pri_strength");
        h->cdef_y_sec_strength[i] = sec_strength(r);
        if (!r->seq->mono_chrome) {
            h->cdef_uv_pri_strength[i] = (int)f(&r->b, 4, "cdef_uv_pri_strength");
            h->cdef_uv_sec_strength[i] = sec_strength(r);
        }
    }
}

static void lr_params(reader_t *r)
{
    dv_av1_frame_header *h = r->h;
    const dv_av1_sequence *seq = r->seq;
    int i, planes = seq->mono_chrome ? 1 : 3, luma_size;

    if (h->all_lossless || h->allow_intrabc || !seq->enable_restoration)
        return;
    for (i = 0; i < planes; i++) {
        h->frame_restoration_type[i] = remap_lr_type[f(&r->b, 2, "lr_type")];
        if (h->frame_restoration_type[i] != RESTORE_NONE) {
            h->uses_lr = 1;
            if (i > 0)
                h->uses_chroma_lr = 1;
        }
    }
    if (!h->uses_lr)
        return;
    h->lr_unit_shift = (int)f(&r->b, 1, "lr_unit_shift");
    if (seq->use_128x128_superblock)
        h->lr_unit_shift++;
    else if (h->lr_unit_shift)
        h->lr_unit_shift += (int)f(&r->b, 1, "lr_unit_extra_shift");
    luma_size = RESTORATION_TILESIZE_MAX >> (2 - h->lr_unit_shift);
    if (seq->subsampling_x && seq->subsampling_y && h->uses_chroma_lr)
        h->lr_uv_shift = (int)f(&r->b, 1, "lr_uv_shift");
    h->loop_restoration_size[0] = luma_size;
    h->loop_restoration_size[1] = h->loop_restoration_size[2] = luma_size >> h->lr_uv_shift;
}

static void read_tx_mode(reader_t *r)
{
    dv_av1_frame_header *h = r->h;

    if (h->coded_lossless)
        h->tx_mode = ONLY_4X4;
    else
        h->tx_mode = flag(&r->b, "tx_mode_select") ? TX_MODE_SELECT : TX_MODE_LARGEST;
}

/* skip_mode_params' searches: the reference on one side of anchor closest to it
 * (side < 0: forward, the latest; side > 0: backward, the earliest). */
static int nearest(reader_t *r, const int *hints, int side, int anchor)
{
    int best = -1, i;

    for (i = 0; i < REFS_PER_FRAME; i++) {
        int d = relative_dist(r, hints[i], anchor), dist;

        if (side < 0 ? d >= 0 : d <= 0)
            continue;
        if (best < 0) {
            best = i;
            continue;
        }
        dist = relative_dist(r, hints[i], hints[best]);
        if (side < 0 ? dist > 0 : dist < 0)
            best = i;
    }
    return best;
}

static void skip_mode_params(reader_t *r)
{
    dv_av1_frame_header *h = r->h;
    int hints[REFS_PER_FRAME], forward, backward, second, i, a, b;

    h->skip_mode_frame[0] = h->skip_mode_frame[1] = 0;
    if (frame_is_intra(h) || !h->reference_select || !r->seq->enable_order_hint)
        return;
    for (i = 0; i < REFS_PER_FRAME; i++)
        hints[i] = r->ref_order_hint[h->ref_frame_idx[i]];
    forward = nearest(r, hints, -1, h->order_hint);
    backward = nearest(r, hints, 1, h->order_hint);
    if (forward < 0)
        return;
    if (backward >= 0) {
        second = backward;
    } else {
        second = nearest(r, hints, -1, hints[forward]);
        if (second < 0)
            return;
    }
    a = imin(forward, second);
    b = imax(forward, second);
    h->skip_mode_frame[0] = LAST_FRAME + a;
    h->skip_mode_frame[1] = LAST_FRAME + b;
    h->skip_mode_present = flag(&r->b, "skip_mode_present");
}

/* ------------------------------------------------------------------ global motion */

static int inverse_recenter(int r, int v)
{
    if (v > 2 * r)
        return v;
    if (v & 1)
        return r - ((v + 1) >> 1);
    return r + (v >> 1);
}

static int subexp(reader_t *r, int num_syms)
{
    int i = 0, mk = 0, k = 3;

    /* at most a handful of rounds: mk grows geometrically past num_syms */
    while (!r->b.failed) {
        int b2 = i ? k + i - 1 : k, a = 1 << b2;

        if (num_syms <= mk + 3 * a)
            return ns(&r->b, num_syms - mk, "subexp_final_bits") + mk;
        if (!flag(&r->b, "subexp_more_bits"))
            return (int)f(&r->b, b2, "subexp_bits") + mk;
        i++;
        mk += a;
    }
    return 0;
}

static int unsigned_subexp_with_ref(reader_t *r, int mx, int ref)
{
    int v = subexp(r, mx);

    if ((ref << 1) <= mx)
        return inverse_recenter(ref, v);
    return mx - 1 - inverse_recenter(mx - 1 - ref, v);
}

static int global_param(reader_t *r, int gm_type, int idx, int previous)
{
    int abs_bits = GM_ABS_ALPHA_BITS, prec_bits = GM_ALPHA_PREC_BITS;
    int prec_diff, round_, sub, mx, ref;

    if (idx < 2) {
        if (gm_type == TRANSLATION) {
            int hp = r->h->allow_high_precision_mv ? 0 : 1;

            abs_bits = GM_ABS_TRANS_ONLY_BITS - hp;
            prec_bits = GM_TRANS_ONLY_PREC_BITS - hp;
        } else {
            abs_bits = GM_ABS_TRANS_BITS;
            prec_bits = GM_TRANS_PREC_BITS;
        }
    }
    prec_diff = WARPEDMODEL_PREC_BITS - prec_bits;
    round_ = idx % 3 == 2 ? 1 << WARPEDMODEL_PREC_BITS : 0;
    sub = idx % 3 == 2 ? 1 << prec_bits : 0;
    mx = 1 << abs_bits;
    ref = (previous >> prec_diff) - sub;
    /* signed_subexp_with_ref(-mx, mx + 1, ref) */
    return ((unsigned_subexp_with_ref(r, 2 * mx + 1, ref + mx) - mx) * (1 << prec_diff)) + round_;
}

static void global_motion_params(reader_t *r, const dv_av1_slot *previous)
{
    dv_av1_frame_header *h = r->h;
    int ref, j;
    int prev[8][6];

    if (frame_is_intra(h))
        return;
    for (ref = 0; ref < 8; ref++)
        for (j = 0; j < 6; j++)
            prev[ref][j] = previous ? previous->gm_params[ref][j] : default_gm_params[j];
    for (ref = LAST_FRAME; ref <= ALTREF_FRAME; ref++) {
        int gm_type = IDENTITY;
        int *params = h->gm_params[ref];

        if (flag(&r->b, "is_global")) {
            if (flag(&r->b, "is_rot_zoom"))
                gm_type = ROTZOOM;
            else
                gm_type = flag(&r->b, "is_translation") ? TRANSLATION : AFFINE;
        }
        h->gm_type[ref] = gm_type;
        if (gm_type >= ROTZOOM) {
            params[2] = global_param(r, gm_type, 2, prev[ref][2]);
            params[3] = global_param(r, gm_type, 3, prev[ref][3]);
            if (gm_type == AFFINE) {
                params[4] = global_param(r, gm_type, 4, prev[ref][4]);
                params[5] = global_param(r, gm_type, 5, prev[ref][5]);
            } else {
                params[4] = -params[3];
                params[5] = params[2];
            }
        }
        if (gm_type >= TRANSLATION) {
            params[0] = global_param(r, gm_type, 0, prev[ref][0]);
            params[1] = global_param(r, gm_type, 1, prev[ref][1]);
        }
    }
}

/* ------------------------------------------------------------------ film grain (5.9.30) */

static int points(reader_t *r, int most, int *values, int *scalings, const char *what)
{
    int count = (int)f(&r->b, 4, what), i;

    if (count > most) {
        fail(&r->b, "%s %d is more than %d", what, count, most);
        return 0;
    }
    for (i = 0; i < count; i++) {
        values[i] = (int)f(&r->b, 8, "point_value");
        scalings[i] = (int)f(&r->b, 8, "point_scaling");
    }
    return count;
}

static void film_grain_params(reader_t *r)
{
    dv_av1_frame_header *h = r->h;
    const dv_av1_sequence *seq = r->seq;
    dv_av1_film_grain *fg = &h->film_grain;
    int num_pos_luma, num_pos_chroma, i;

    if (!seq->film_grain_params_present || (!h->show_frame && !h->showable_frame))
        return;  /* reset_grain_params(): the defaults */
    fg->apply_grain = flag(&r->b, "apply_grain");
    if (!fg->apply_grain)
        return;
    fg->grain_seed = (int)f(&r->b, 16, "grain_seed");
    fg->update_grain = h->frame_type == INTER_FRAME ? flag(&r->b, "update_grain") : 1;
    if (!fg->update_grain) {
        int seed = fg->grain_seed;
        int ref_idx = (int)f(&r->b, 3, "film_grain_params_ref_idx");

        *fg = r->slots[ref_idx].film_grain;  /* load_grain_params() */
        fg->grain_seed = seed;
        fg->film_grain_params_ref_idx = ref_idx;
        fg->update_grain = 0;
        return;
    }
    fg->num_y_points = points(r, 14, fg->point_y_value, fg->point_y_scaling, "num_y_points");
    fg->chroma_scaling_from_luma = seq->mono_chrome ? 0 : flag(&r->b, "chroma_scaling_from_luma");
    if (!(seq->mono_chrome || fg->chroma_scaling_from_luma ||
          (seq->subsampling_x == 1 && seq->subsampling_y == 1 && !fg->num_y_points))) {
        fg->num_cb_points = points(r, 10, fg->point_cb_value, fg->point_cb_scaling,
                                   "num_cb_points");
        fg->num_cr_points = points(r, 10, fg->point_cr_value, fg->point_cr_scaling,
                                   "num_cr_points");
    }
    fg->grain_scaling_minus_8 = (int)f(&r->b, 2, "grain_scaling_minus_8");
    fg->ar_coeff_lag = (int)f(&r->b, 2, "ar_coeff_lag");
    num_pos_luma = 2 * fg->ar_coeff_lag * (fg->ar_coeff_lag + 1);
    num_pos_chroma = num_pos_luma;
    if (fg->num_y_points) {
        num_pos_chroma = num_pos_luma + 1;
        fg->num_ar_coeffs_y = num_pos_luma;
        for (i = 0; i < num_pos_luma; i++)
            fg->ar_coeffs_y_plus_128[i] = (int)f(&r->b, 8, "ar_coeffs_y");
    }
    if (fg->chroma_scaling_from_luma || fg->num_cb_points) {
        fg->num_ar_coeffs_cb = num_pos_chroma;
        for (i = 0; i < num_pos_chroma; i++)
            fg->ar_coeffs_cb_plus_128[i] = (int)f(&r->b, 8, "ar_coeffs_cb");
    }
    if (fg->chroma_scaling_from_luma || fg->num_cr_points) {
        fg->num_ar_coeffs_cr = num_pos_chroma;
        for (i = 0; i < num_pos_chroma; i++)
            fg->ar_coeffs_cr_plus_128[i] = (int)f(&r->b, 8, "ar_coeffs_cr");
    }
    fg->ar_coeff_shift_minus_6 = (int)f(&r->b, 2, "ar_coeff_shift_minus_6");
    fg->grain_scale_shift = (int)f(&r->b, 2, "grain_scale_shift");
    if (fg->num_cb_points) {
        fg->cb_mult = (int)f(&r->b, 8, "cb_mult");
        fg->cb_luma_mult = (int)f(&r->b, 8, "cb_luma_mult");
        fg->cb_offset = (int)f(&r->b, 9, "cb_offset");
    }
    if (fg->num_cr_points) {
        fg->cr_mult = (int)f(&r->b, 8, "cr_mult");
        fg->cr_luma_mult = (int)f(&r->b, 8, "cr_luma_mult");
        fg->cr_offset = (int)f(&r->b, 9, "cr_offset");
    }
    fg->overlap_flag = flag(&r->b, "overlap_flag");
    fg->clip_to_restricted_range = flag(&r->b, "clip_to_restricted_range");
}

/* ------------------------------------------------------------------ uncompressed_header (5.9.2) */

static void uncompressed_header(reader_t *r)
{
    dv_av1_frame_header *h = r->h;
    const dv_av1_sequence *seq = r->seq;
    const dv_av1_slot *previous = NULL;
    int id_len = 0, i;

    if (seq->frame_id_numbers_present_flag)
        id_len = seq->additional_frame_id_length_minus_1 + seq->delta_frame_id_length_minus_2 + 3;
    if (seq->reduced_still_picture_header) {
        h->frame_type = KEY_FRAME;
        h->show_frame = 1;
        h->showable_frame = 0;
    } else {
        h->show_existing_frame = flag(&r->b, "show_existing_frame");
        if (h->show_existing_frame) {
            show_existing_frame(r, id_len);
            return;
        }
        frame_type_and_show_flags(r);
    }
    if (h->frame_type == KEY_FRAME && h->show_frame)
        for (i = 0; i < NUM_REF_FRAMES; i++)
            r->ref_order_hint[i] = 0;
    h->disable_cdf_update = flag(&r->b, "disable_cdf_update");
    screen_content_and_integer_mv(r);
    if (seq->frame_id_numbers_present_flag)
        h->current_frame_id = (int)f(&r->b, id_len, "current_frame_id");
    if (h->frame_type == SWITCH_FRAME)
        h->frame_size_override_flag = 1;
    else if (!seq->reduced_still_picture_header)
        h->frame_size_override_flag = flag(&r->b, "frame_size_override_flag");
    h->order_hint = (int)f(&r->b, seq->order_hint_bits, "order_hint");
    if (!(frame_is_intra(h) || h->error_resilient_mode))
        h->primary_ref_frame = (int)f(&r->b, 3, "primary_ref_frame");
    if (seq->decoder_model_info_present_flag)
        buffer_removal_times(r);
    refresh_and_references(r);
    if (r->b.failed)
        return;
    if (seq->reduced_still_picture_header || h->disable_cdf_update)
        h->disable_frame_end_update_cdf = 1;
    else
        h->disable_frame_end_update_cdf = flag(&r->b, "disable_frame_end_update_cdf");
    if (h->primary_ref_frame != PRIMARY_REF_NONE)
        previous = &r->slots[h->ref_frame_idx[h->primary_ref_frame]];
    load_previous(r, previous);
    tile_info(r);
    quantization_params(r);
    segmentation_params(r);
    delta_q_and_lf_params(r);
    lossless(r);
    loop_filter_params(r);
    cdef_params(r);
    lr_params(r);
    read_tx_mode(r);
    h->reference_select = frame_is_intra(h) ? 0 : flag(&r->b, "reference_select");
    skip_mode_params(r);
    if (frame_is_intra(h) || h->error_resilient_mode || !seq->enable_warped_motion)
        h->allow_warped_motion = 0;
    else
        h->allow_warped_motion = flag(&r->b, "allow_warped_motion");
    h->reduced_tx_set = flag(&r->b, "reduced_tx_set");
    global_motion_params(r, previous);
    film_grain_params(r);
}

int dv_av1_parse_frame_header(const unsigned char *payload, size_t len,
                              const dv_av1_sequence *seq, const dv_av1_slot *slots,
                              int temporal_id, int spatial_id, dv_av1_frame_header *h,
                              char *err, size_t errlen)
{
    reader_t r;
    int i;

    memset(&r, 0, sizeof(r));
    r.b.data = payload;
    r.b.nbits = len * 8;
    r.b.err = err;
    r.b.errlen = errlen;
    r.seq = seq;
    r.slots = slots;
    r.temporal_id = temporal_id;
    r.spatial_id = spatial_id;
    r.h = h;
    for (i = 0; i < NUM_REF_FRAMES; i++)
        r.ref_order_hint[i] = slots[i].order_hint;
    frame_header_defaults(h);
    uncompressed_header(&r);
    h->header_bits = (int)r.b.pos;
    return r.b.failed ? -1 : 0;
}

/* ------------------------------------------------------------------ reference update (7.20) */

void dv_av1_update_slots(dv_av1_slot *slots, const dv_av1_frame_header *h)
{
    dv_av1_slot saved;
    int i;

    if (h->show_existing_frame) {
        if (h->frame_type != KEY_FRAME)
            return;
        /* showing a key frame again reloads it into every slot (spec 7.21) */
        saved = slots[h->frame_to_show_map_idx];
        saved.showable = 0;
        for (i = 0; i < NUM_REF_FRAMES; i++)
            slots[i] = saved;
        return;
    }
    memset(&saved, 0, sizeof(saved));
    saved.valid = 1;
    saved.frame_id = h->current_frame_id;
    saved.frame_type = h->frame_type;
    saved.upscaled_width = h->upscaled_width;
    saved.frame_width = h->frame_width;
    saved.frame_height = h->frame_height;
    saved.render_width = h->render_width;
    saved.render_height = h->render_height;
    saved.order_hint = h->order_hint;
    memcpy(saved.saved_order_hints, h->order_hints, sizeof(saved.saved_order_hints));
    memcpy(saved.gm_params, h->gm_params, sizeof(saved.gm_params));
    memcpy(saved.lf_ref_deltas, h->lf_ref_deltas, sizeof(saved.lf_ref_deltas));
    memcpy(saved.lf_mode_deltas, h->lf_mode_deltas, sizeof(saved.lf_mode_deltas));
    memcpy(saved.seg_feature_enabled, h->seg_feature_enabled, sizeof(saved.seg_feature_enabled));
    memcpy(saved.seg_feature_data, h->seg_feature_data, sizeof(saved.seg_feature_data));
    saved.film_grain = h->film_grain;
    saved.showable = h->showable_frame;
    for (i = 0; i < NUM_REF_FRAMES; i++)
        if (h->refresh_frame_flags >> i & 1)
            slots[i] = saved;
}

/* ------------------------------------------------------------------ temporal units */

/* The walk codecs/av1.py's _TemporalUnitReader does over a temporal unit's OBUs,
 * in one call for the units a stream is made of: a client pays this per request.
 * It returns -1, having changed nothing, for whatever it leaves to the Python
 * walk: a sequence header other than the one in force, an OBU extension header
 * (operating points), anything malformed (the Python walk then says what), more
 * frames or tiles than the caller's arrays hold.  So its errors are the Python
 * walk's by construction, and only what it reads has to match (the tests). */

enum { OBU_SEQUENCE_HEADER = 1, OBU_TEMPORAL_DELIMITER = 2, OBU_FRAME_HEADER = 3,
       OBU_TILE_GROUP = 4, OBU_FRAME = 6 };

typedef struct {
    int type, temporal_id, spatial_id, has_extension;
    size_t start, payload, size;
} obu_t;

/* obu_header() and obu_size (spec 5.3), as av1_obu._read_obu */
static int read_obu(const uint8_t *data, size_t len, size_t start, obu_t *o)
{
    uint8_t h = data[start];
    size_t pos = start + 1;
    uint64_t size = 0;
    int i;

    if (h & 0x80)
        return -1;
    o->type = (h >> 3) & 0xF;
    o->has_extension = !!(h & 0x04);
    o->temporal_id = o->spatial_id = 0;
    if (o->has_extension) {
        if (pos >= len)
            return -1;
        o->temporal_id = data[pos] >> 5;
        o->spatial_id = (data[pos] >> 3) & 0x3;
        pos++;
    }
    if (h & 0x02) {
        for (i = 0;; i++) {     /* leb128(): at most 8 bytes, a value of 32 bits */
            if (i == 8 || pos >= len)
                return -1;
            size |= (uint64_t)(data[pos] & 0x7F) << (7 * i);
            if (!(data[pos++] & 0x80))
                break;
        }
        if (size > 0xFFFFFFFFu)
            return -1;
    } else {
        size = len - pos;
    }
    if (size > len - pos)
        return -1;
    o->start = start;
    o->payload = pos;
    o->size = (size_t)size;
    return 0;
}

typedef struct {
    const dv_av1_sequence *seq;
    dv_av1_slot work[NUM_REF_FRAMES];   /* the slots as the unit's frames leave them */
    dv_av1_frame_header *headers;
    dv_av1_unit_frame *frames;
    int max_frames, nframes;            /* frames finished; a pending one is frames[nframes] */
    int pending, next_tile;
    dv_av1_unit_tile *tiles;
    int max_tiles, ntiles;
    unsigned char *out;
    size_t out_size, used;
} unit_t;

static int append_obu(unit_t *u, const uint8_t *data, const obu_t *o)
{
    size_t n = o->payload + o->size - o->start;

    if (n > u->out_size - u->used)
        return -1;
    memcpy(u->out + u->used, data + o->start, n);
    u->used += n;
    u->frames[u->nframes].data_size += n;
    return 0;
}

/* A frame (or frame header) OBU starts frames[nframes]: its header read against
 * the slots as this unit's earlier frames left them. */
static int begin_frame(unit_t *u, const uint8_t *data, const obu_t *o)
{
    dv_av1_unit_frame *fr;
    char scratch[1];

    if (u->nframes >= u->max_frames)
        return -1;
    if (dv_av1_parse_frame_header(data + o->payload, o->size, u->seq, u->work, o->temporal_id,
                                  o->spatial_id, &u->headers[u->nframes], scratch, 0))
        return -1;
    fr = &u->frames[u->nframes];
    fr->data_offset = u->used;
    fr->data_size = 0;
    fr->first_tile = u->ntiles;
    fr->tile_count = 0;
    fr->temporal_id = o->temporal_id;
    fr->spatial_id = o->spatial_id;
    return append_obu(u, data, o);
}

static void finish_frame(unit_t *u)
{
    dv_av1_update_slots(u->work, &u->headers[u->nframes]);
    u->nframes++;
    u->pending = 0;
    u->next_tile = 0;
}

/* tile_group_obu() (spec 5.11.1), as av1.py's _tile_group: each tile's place
 * relative to the frame's bytes (base: where p is in them); the frame ends
 * with its last tile. */
static int tile_group(unit_t *u, const uint8_t *p, size_t len, size_t base)
{
    const dv_av1_frame_header *h = &u->headers[u->nframes];
    dv_av1_unit_frame *fr = &u->frames[u->nframes];
    bits_t b = {p, len * 8, 0, 0, NULL, 0};
    int num = h->tile_cols * h->tile_rows, tbits = h->tile_cols_log2 + h->tile_rows_log2;
    int start = 0, end = num - 1, t, i;
    size_t pos, size;

    if (num > 1 && f(&b, 1, "tile_start_and_end_present_flag")) {
        start = (int)f(&b, tbits, "tg_start");
        end = (int)f(&b, tbits, "tg_end");
    }
    if (b.failed || start != u->next_tile || end < start || end >= num)
        return -1;
    pos = (b.pos + 7) >> 3;
    for (t = start; t <= end; t++) {
        if (t == end) {
            if (pos >= len)
                return -1;
            size = len - pos;
        } else {
            if ((size_t)h->tile_size_bytes > len - pos)
                return -1;
            for (size = 0, i = h->tile_size_bytes - 1; i >= 0; i--)
                size = size << 8 | p[pos + i];
            size += 1;
            pos += h->tile_size_bytes;
            if (size > len - pos)
                return -1;
        }
        if (u->ntiles >= u->max_tiles)
            return -1;
        u->tiles[u->ntiles].offset = (uint32_t)(base + pos);
        u->tiles[u->ntiles].size = (uint32_t)size;
        u->tiles[u->ntiles].row = (uint32_t)(t / h->tile_cols);
        u->tiles[u->ntiles].col = (uint32_t)(t % h->tile_cols);
        u->ntiles++;
        fr->tile_count++;
        pos += size;
    }
    u->next_tile = end + 1;
    if (end == num - 1)
        finish_frame(u);
    return 0;
}

static int unit_obu(unit_t *u, const uint8_t *data, const obu_t *o,
                    const unsigned char *seq_payload, size_t seq_len)
{
    const dv_av1_frame_header *h;
    size_t header_bytes, base;

    switch (o->type) {
    case OBU_SEQUENCE_HEADER:       /* the one in force, repeated; any other: Python */
        return (seq_payload != NULL && o->size == seq_len &&
                !memcmp(data + o->payload, seq_payload, seq_len)) ? 0 : -1;
    case OBU_TEMPORAL_DELIMITER:
        return u->pending ? -1 : 0;
    case OBU_FRAME_HEADER:
        if (u->pending)             /* frame_header_copy() of the frame in progress */
            return 0;
        if (begin_frame(u, data, o))
            return -1;
        if (u->headers[u->nframes].show_existing_frame)
            finish_frame(u);
        else
            u->pending = 1;
        return 0;
    case OBU_FRAME:
        if (u->pending || begin_frame(u, data, o))
            return -1;
        h = &u->headers[u->nframes];
        header_bytes = (size_t)(h->header_bits + 7) >> 3;
        if (h->show_existing_frame || header_bytes > o->size)
            return -1;
        u->pending = 1;
        base = o->payload - o->start + header_bytes;
        return tile_group(u, data + o->payload + header_bytes, o->size - header_bytes, base);
    case OBU_TILE_GROUP:
        if (!u->pending)
            return -1;
        base = u->frames[u->nframes].data_size + o->payload - o->start;
        if (append_obu(u, data, o))
            return -1;
        return tile_group(u, data + o->payload, o->size, base);
    default:                        /* metadata, padding, redundant headers, ... */
        return 0;
    }
}

int dv_av1_temporal_unit(const unsigned char *data, size_t len,
                         const unsigned char *seq_payload, size_t seq_len,
                         const dv_av1_sequence *seq, dv_av1_slot *slots,
                         dv_av1_frame_header *headers, dv_av1_unit_frame *frames, int max_frames,
                         dv_av1_unit_tile *tiles, int max_tiles,
                         unsigned char *out, size_t out_size)
{
    unit_t u;
    size_t pos = 0;
    obu_t o;

    if (seq_payload == NULL)        /* no sequence header yet: the Python walk refuses */
        return -1;
    memset(&u, 0, sizeof(u));
    u.seq = seq;
    memcpy(u.work, slots, sizeof(u.work));
    u.headers = headers;
    u.frames = frames;
    u.max_frames = max_frames;
    u.tiles = tiles;
    u.max_tiles = max_tiles;
    u.out = out;
    u.out_size = out_size;
    while (pos < len) {
        if (read_obu(data, len, pos, &o) || o.has_extension)
            return -1;
        pos = o.payload + o.size;
        if (unit_obu(&u, data, &o, seq_payload, seq_len))
            return -1;
    }
    if (u.pending)
        return -1;
    memcpy(slots, u.work, sizeof(u.work));
    return u.nframes;
}
