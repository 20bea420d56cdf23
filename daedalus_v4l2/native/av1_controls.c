// SPDX-License-Identifier: BSD-2-Clause
/* struct v4l2_ctrl_av1_frame and v4l2_ctrl_av1_film_grain from a frame header
 * read by av1_headers.c: what codecs/av1_controls.py's frame_control() and
 * film_grain_control() build from the Python reader's FrameHeader, byte for
 * byte (tests/test_av1_native.py compares the two).
 *
 * The structs and the V4L2_AV1_* values are not written here: _native_build.py
 * puts in front of this file the uAPI declarations cffi reads (v4l2/uapi_cdef.py)
 * and the flag values of codecs/av1_controls.py, each checked against the
 * kernel's <linux/v4l2-controls.h> by tests/test_layouts.py. */

static uint32_t bit_if(int on, uint32_t bit)
{
    return on ? bit : 0;
}

static uint32_t frame_flags(const dv_av1_frame_header *h)
{
    return bit_if(h->show_frame, V4L2_AV1_FRAME_FLAG_SHOW_FRAME) |
           bit_if(h->showable_frame, V4L2_AV1_FRAME_FLAG_SHOWABLE_FRAME) |
           bit_if(h->error_resilient_mode, V4L2_AV1_FRAME_FLAG_ERROR_RESILIENT_MODE) |
           bit_if(h->disable_cdf_update, V4L2_AV1_FRAME_FLAG_DISABLE_CDF_UPDATE) |
           bit_if(h->allow_screen_content_tools, V4L2_AV1_FRAME_FLAG_ALLOW_SCREEN_CONTENT_TOOLS) |
           bit_if(h->force_integer_mv, V4L2_AV1_FRAME_FLAG_FORCE_INTEGER_MV) |
           bit_if(h->allow_intrabc, V4L2_AV1_FRAME_FLAG_ALLOW_INTRABC) |
           bit_if(h->use_superres, V4L2_AV1_FRAME_FLAG_USE_SUPERRES) |
           bit_if(h->allow_high_precision_mv, V4L2_AV1_FRAME_FLAG_ALLOW_HIGH_PRECISION_MV) |
           bit_if(h->is_motion_mode_switchable, V4L2_AV1_FRAME_FLAG_IS_MOTION_MODE_SWITCHABLE) |
           bit_if(h->use_ref_frame_mvs, V4L2_AV1_FRAME_FLAG_USE_REF_FRAME_MVS) |
           bit_if(h->disable_frame_end_update_cdf,
                  V4L2_AV1_FRAME_FLAG_DISABLE_FRAME_END_UPDATE_CDF) |
           bit_if(h->allow_warped_motion, V4L2_AV1_FRAME_FLAG_ALLOW_WARPED_MOTION) |
           bit_if(h->reference_select, V4L2_AV1_FRAME_FLAG_REFERENCE_SELECT) |
           bit_if(h->reduced_tx_set, V4L2_AV1_FRAME_FLAG_REDUCED_TX_SET) |
           bit_if(h->skip_mode_frame[0] != 0, V4L2_AV1_FRAME_FLAG_SKIP_MODE_ALLOWED) |
           bit_if(h->skip_mode_present, V4L2_AV1_FRAME_FLAG_SKIP_MODE_PRESENT) |
           bit_if(h->frame_size_override_flag, V4L2_AV1_FRAME_FLAG_FRAME_SIZE_OVERRIDE) |
           bit_if(h->buffer_removal_time_present_flag,
                  V4L2_AV1_FRAME_FLAG_BUFFER_REMOVAL_TIME_PRESENT) |
           bit_if(h->frame_refs_short_signaling, V4L2_AV1_FRAME_FLAG_FRAME_REFS_SHORT_SIGNALING);
}

static void fill_tile_info(struct v4l2_av1_tile_info *ti, const dv_av1_frame_header *h)
{
    int sb = 1 << h->sb_shift, i;

    ti->flags = bit_if(h->tile_uniform, V4L2_AV1_TILE_INFO_FLAG_UNIFORM_TILE_SPACING);
    ti->context_update_tile_id = h->context_update_tile_id;
    ti->tile_cols = h->tile_cols;
    ti->tile_rows = h->tile_rows;
    for (i = 0; i <= h->tile_cols; i++)
        ti->mi_col_starts[i] = h->mi_col_starts[i];
    for (i = 0; i <= h->tile_rows; i++)
        ti->mi_row_starts[i] = h->mi_row_starts[i];
    for (i = 0; i < h->tile_cols; i++)
        ti->width_in_sbs_minus_1[i] =
            ((h->mi_col_starts[i + 1] - h->mi_col_starts[i] + sb - 1) >> h->sb_shift) - 1;
    for (i = 0; i < h->tile_rows; i++)
        ti->height_in_sbs_minus_1[i] =
            ((h->mi_row_starts[i + 1] - h->mi_row_starts[i] + sb - 1) >> h->sb_shift) - 1;
    ti->tile_size_bytes = h->tile_size_bytes;
}

static void fill_quantization(struct v4l2_av1_quantization *q, const dv_av1_frame_header *h)
{
    q->flags = bit_if(h->diff_uv_delta, V4L2_AV1_QUANTIZATION_FLAG_DIFF_UV_DELTA) |
               bit_if(h->using_qmatrix, V4L2_AV1_QUANTIZATION_FLAG_USING_QMATRIX) |
               bit_if(h->delta_q_present, V4L2_AV1_QUANTIZATION_FLAG_DELTA_Q_PRESENT);
    q->base_q_idx = h->base_q_idx;
    q->delta_q_y_dc = h->delta_q_y_dc;
    q->delta_q_u_dc = h->delta_q_u_dc;
    q->delta_q_u_ac = h->delta_q_u_ac;
    q->delta_q_v_dc = h->delta_q_v_dc;
    q->delta_q_v_ac = h->delta_q_v_ac;
    q->qm_y = h->qm_y;
    q->qm_u = h->qm_u;
    q->qm_v = h->qm_v;
    q->delta_q_res = h->delta_q_res;
}

static void fill_segmentation(struct v4l2_av1_segmentation *seg, const dv_av1_frame_header *h)
{
    int i, j;

    seg->flags = bit_if(h->seg_enabled, V4L2_AV1_SEGMENTATION_FLAG_ENABLED) |
                 bit_if(h->seg_update_map, V4L2_AV1_SEGMENTATION_FLAG_UPDATE_MAP) |
                 bit_if(h->seg_temporal_update, V4L2_AV1_SEGMENTATION_FLAG_TEMPORAL_UPDATE) |
                 bit_if(h->seg_update_data, V4L2_AV1_SEGMENTATION_FLAG_UPDATE_DATA) |
                 bit_if(h->seg_id_pre_skip, V4L2_AV1_SEGMENTATION_FLAG_SEG_ID_PRE_SKIP);
    seg->last_active_seg_id = h->last_active_seg_id;
    for (i = 0; i < 8; i++) {
        seg->feature_enabled[i] = 0;
        for (j = 0; j < 8; j++) {
            /* V4L2_AV1_SEGMENT_FEATURE_ENABLED(id) = 1 << id */
            if (h->seg_feature_enabled[i][j])
                seg->feature_enabled[i] |= 1u << j;
            seg->feature_data[i][j] = h->seg_feature_data[i][j];
        }
    }
}

static void fill_loop_filter(struct v4l2_av1_loop_filter *lf, const dv_av1_frame_header *h)
{
    int i;

    lf->flags = bit_if(h->lf_delta_enabled, V4L2_AV1_LOOP_FILTER_FLAG_DELTA_ENABLED) |
                bit_if(h->lf_delta_update, V4L2_AV1_LOOP_FILTER_FLAG_DELTA_UPDATE) |
                bit_if(h->delta_lf_present, V4L2_AV1_LOOP_FILTER_FLAG_DELTA_LF_PRESENT) |
                bit_if(h->delta_lf_multi, V4L2_AV1_LOOP_FILTER_FLAG_DELTA_LF_MULTI);
    for (i = 0; i < 4; i++)
        lf->level[i] = h->lf_level[i];
    lf->sharpness = h->lf_sharpness;
    for (i = 0; i < 8; i++)
        lf->ref_deltas[i] = h->lf_ref_deltas[i];
    lf->mode_deltas[0] = h->lf_mode_deltas[0];
    lf->mode_deltas[1] = h->lf_mode_deltas[1];
    lf->delta_lf_res = h->delta_lf_res;
}

static void fill_cdef(struct v4l2_av1_cdef *cdef, const dv_av1_frame_header *h)
{
    int i;

    cdef->damping_minus_3 = h->cdef_damping_minus_3;
    cdef->bits = h->cdef_bits;
    for (i = 0; i < 8; i++) {
        cdef->y_pri_strength[i] = h->cdef_y_pri_strength[i];
        cdef->y_sec_strength[i] = h->cdef_y_sec_strength[i];
        cdef->uv_pri_strength[i] = h->cdef_uv_pri_strength[i];
        cdef->uv_sec_strength[i] = h->cdef_uv_sec_strength[i];
    }
}

static void fill_loop_restoration(struct v4l2_av1_loop_restoration *lr,
                                  const dv_av1_frame_header *h)
{
    int i;

    lr->flags = bit_if(h->uses_lr, V4L2_AV1_LOOP_RESTORATION_FLAG_USES_LR) |
                bit_if(h->uses_chroma_lr, V4L2_AV1_LOOP_RESTORATION_FLAG_USES_CHROMA_LR);
    lr->lr_unit_shift = h->lr_unit_shift;
    lr->lr_uv_shift = h->lr_uv_shift;
    for (i = 0; i < 3; i++) {
        lr->frame_restoration_type[i] = h->frame_restoration_type[i];
        lr->loop_restoration_size[i] = h->loop_restoration_size[i];
    }
}

static void fill_global_motion(struct v4l2_av1_global_motion *gm, const dv_av1_frame_header *h)
{
    int ref, j;

    /* invalid (warpValid, spec 7.11.3.6) stays 0: a decoder that warps computes
     * it; the daemon never reads it */
    for (ref = 1; ref < 8; ref++) {  /* LAST_FRAME .. ALTREF_FRAME */
        int kind = h->gm_type[ref];

        gm->flags[ref] = bit_if(kind != 0, V4L2_AV1_GLOBAL_MOTION_FLAG_IS_GLOBAL) |
                         bit_if(kind == 2, V4L2_AV1_GLOBAL_MOTION_FLAG_IS_ROT_ZOOM) |
                         bit_if(kind == 1, V4L2_AV1_GLOBAL_MOTION_FLAG_IS_TRANSLATION);
        gm->type[ref] = kind;
        for (j = 0; j < 6; j++)
            gm->params[ref][j] = h->gm_params[ref][j];
    }
}

int dv_av1_frame_control(const dv_av1_frame_header *h, const uint64_t *reference_ts,
                         unsigned char *out, size_t len)
{
    struct v4l2_ctrl_av1_frame *ctrl = (struct v4l2_ctrl_av1_frame *)out;
    int i;

    if (len != sizeof(*ctrl) || h->show_existing_frame)
        return -1;
    memset(ctrl, 0, sizeof(*ctrl));
    fill_tile_info(&ctrl->tile_info, h);
    fill_quantization(&ctrl->quantization, h);
    ctrl->superres_denom = h->superres_denom;
    fill_segmentation(&ctrl->segmentation, h);
    fill_loop_filter(&ctrl->loop_filter, h);
    fill_cdef(&ctrl->cdef, h);
    ctrl->skip_mode_frame[0] = h->skip_mode_frame[0];
    ctrl->skip_mode_frame[1] = h->skip_mode_frame[1];
    ctrl->primary_ref_frame = h->primary_ref_frame;
    fill_loop_restoration(&ctrl->loop_restoration, h);
    fill_global_motion(&ctrl->global_motion, h);
    ctrl->flags = frame_flags(h);
    ctrl->frame_type = h->frame_type;
    ctrl->order_hint = h->order_hint;
    ctrl->upscaled_width = h->upscaled_width;
    ctrl->interpolation_filter = h->interpolation_filter;
    ctrl->tx_mode = h->tx_mode;
    ctrl->frame_width_minus_1 = h->frame_width - 1;
    ctrl->frame_height_minus_1 = h->frame_height - 1;
    ctrl->render_width_minus_1 = h->render_width - 1;
    ctrl->render_height_minus_1 = h->render_height - 1;
    ctrl->current_frame_id = h->current_frame_id;
    for (i = 0; i < 32; i++)
        ctrl->buffer_removal_time[i] = h->buffer_removal_time[i];
    for (i = 0; i < 8; i++) {
        ctrl->order_hints[i] = h->order_hints[i];
        ctrl->reference_frame_ts[i] = reference_ts[i];
    }
    for (i = 0; i < 7; i++)
        ctrl->ref_frame_idx[i] = h->ref_frame_idx[i];
    ctrl->refresh_frame_flags = h->refresh_frame_flags;
    return 0;
}

int dv_av1_film_grain_control(const dv_av1_frame_header *h, unsigned char *out, size_t len)
{
    struct v4l2_ctrl_av1_film_grain *ctrl = (struct v4l2_ctrl_av1_film_grain *)out;
    const dv_av1_film_grain *fg = &h->film_grain;
    int i;

    if (len != sizeof(*ctrl))
        return -1;
    memset(ctrl, 0, sizeof(*ctrl));
    ctrl->flags = bit_if(fg->apply_grain, V4L2_AV1_FILM_GRAIN_FLAG_APPLY_GRAIN) |
                  bit_if(fg->update_grain, V4L2_AV1_FILM_GRAIN_FLAG_UPDATE_GRAIN) |
                  bit_if(fg->chroma_scaling_from_luma,
                         V4L2_AV1_FILM_GRAIN_FLAG_CHROMA_SCALING_FROM_LUMA) |
                  bit_if(fg->overlap_flag, V4L2_AV1_FILM_GRAIN_FLAG_OVERLAP) |
                  bit_if(fg->clip_to_restricted_range,
                         V4L2_AV1_FILM_GRAIN_FLAG_CLIP_TO_RESTRICTED_RANGE);
    ctrl->grain_seed = fg->grain_seed;
    ctrl->film_grain_params_ref_idx = fg->film_grain_params_ref_idx;
    ctrl->num_y_points = fg->num_y_points;
    for (i = 0; i < fg->num_y_points; i++) {
        ctrl->point_y_value[i] = fg->point_y_value[i];
        ctrl->point_y_scaling[i] = fg->point_y_scaling[i];
    }
    ctrl->num_cb_points = fg->num_cb_points;
    for (i = 0; i < fg->num_cb_points; i++) {
        ctrl->point_cb_value[i] = fg->point_cb_value[i];
        ctrl->point_cb_scaling[i] = fg->point_cb_scaling[i];
    }
    ctrl->num_cr_points = fg->num_cr_points;
    for (i = 0; i < fg->num_cr_points; i++) {
        ctrl->point_cr_value[i] = fg->point_cr_value[i];
        ctrl->point_cr_scaling[i] = fg->point_cr_scaling[i];
    }
    for (i = 0; i < fg->num_ar_coeffs_y; i++)
        ctrl->ar_coeffs_y_plus_128[i] = fg->ar_coeffs_y_plus_128[i];
    for (i = 0; i < fg->num_ar_coeffs_cb; i++)
        ctrl->ar_coeffs_cb_plus_128[i] = fg->ar_coeffs_cb_plus_128[i];
    for (i = 0; i < fg->num_ar_coeffs_cr; i++)
        ctrl->ar_coeffs_cr_plus_128[i] = fg->ar_coeffs_cr_plus_128[i];
    ctrl->grain_scaling_minus_8 = fg->grain_scaling_minus_8;
    ctrl->ar_coeff_lag = fg->ar_coeff_lag;
    ctrl->ar_coeff_shift_minus_6 = fg->ar_coeff_shift_minus_6;
    ctrl->grain_scale_shift = fg->grain_scale_shift;
    ctrl->cb_mult = fg->cb_mult;
    ctrl->cb_luma_mult = fg->cb_luma_mult;
    ctrl->cb_offset = fg->cb_offset;
    ctrl->cr_mult = fg->cr_mult;
    ctrl->cr_luma_mult = fg->cr_luma_mult;
    ctrl->cr_offset = fg->cr_offset;
    return 0;
}
