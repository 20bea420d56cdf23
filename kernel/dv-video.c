// SPDX-License-Identifier: GPL-2.0
/*
 * daedalus-v4l2: formats, ioctls and vb2 queues of the stateless decoder.
 */

#include <media/v4l2-event.h>
#include <media/v4l2-ioctl.h>
#include <media/v4l2-mem2mem.h>
#include <media/videobuf2-v4l2.h>
#include <media/videobuf2-vmalloc.h>

#include "dv.h"

const struct dv_coded_fmt dv_coded_fmts[] = {
	{
		.fourcc = V4L2_PIX_FMT_VP9_FRAME,
		.codec = DV4L2_CODEC_VP9,
		.name = "vp9",
	},
	{
		.fourcc = V4L2_PIX_FMT_H264_SLICE,
		.codec = DV4L2_CODEC_H264,
		.name = "h264",
	},
#ifdef V4L2_PIX_FMT_AV1_FRAME
	{
		.fourcc = V4L2_PIX_FMT_AV1_FRAME,
		.codec = DV4L2_CODEC_AV1,
		.name = "av1",
	},
#endif
};

const unsigned int dv_num_coded_fmts = ARRAY_SIZE(dv_coded_fmts);

static const u32 dv_decoded_fmts[] = {
	V4L2_PIX_FMT_NV12,
	V4L2_PIX_FMT_P010,
};

static const struct v4l2_frmsize_stepwise dv_frmsize = {
	.min_width = DV_MIN_DIM,
	.max_width = DV_MAX_DIM,
	.step_width = 1,
	.min_height = DV_MIN_DIM,
	.max_height = DV_MAX_DIM,
	.step_height = 1,
};

const struct dv_coded_fmt *dv_find_coded_fmt(u32 fourcc)
{
	unsigned int i;

	for (i = 0; i < dv_num_coded_fmts; i++)
		if (dv_coded_fmts[i].fourcc == fourcc)
			return &dv_coded_fmts[i];
	return NULL;
}

static bool dv_is_decoded_fmt(u32 fourcc)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(dv_decoded_fmts); i++)
		if (dv_decoded_fmts[i] == fourcc)
			return true;
	return false;
}

/* max(W×H×3/2 / 2, 1 MiB): room for a keyframe at a sane bitrate */
static u32 dv_default_coded_size(u32 width, u32 height)
{
	return max_t(u32, width * height * 3 / 2 / 2, DV_MIN_CODED_SIZE);
}

/*
 * One allocation: Y (H rows) then interleaved CbCr (ceil(H/2) rows), rows
 * of ALIGN(W, 16) pixels, 2 bytes a sample for P010 (driver-model.md).
 */
static void dv_fill_decoded(struct v4l2_pix_format_mplane *pix_mp, u32 fourcc,
			    u32 width, u32 height)
{
	u32 bpl = ALIGN(width, 16) * (fourcc == V4L2_PIX_FMT_P010 ? 2 : 1);

	pix_mp->pixelformat = fourcc;
	pix_mp->width = width;
	pix_mp->height = height;
	pix_mp->field = V4L2_FIELD_NONE;
	pix_mp->num_planes = 1;
	pix_mp->plane_fmt[0].bytesperline = bpl;
	pix_mp->plane_fmt[0].sizeimage = bpl * (height + DIV_ROUND_UP(height, 2));
}

static void dv_init_fmt(struct v4l2_format *f, enum v4l2_buf_type type,
			u32 fourcc)
{
	memset(f, 0, sizeof(*f));
	f->type = type;
	f->fmt.pix_mp.pixelformat = fourcc;
	f->fmt.pix_mp.field = V4L2_FIELD_NONE;
	f->fmt.pix_mp.colorspace = V4L2_COLORSPACE_REC709;
	f->fmt.pix_mp.ycbcr_enc = V4L2_YCBCR_ENC_DEFAULT;
	f->fmt.pix_mp.quantization = V4L2_QUANTIZATION_DEFAULT;
	f->fmt.pix_mp.xfer_func = V4L2_XFER_FUNC_DEFAULT;
}

/* S_FMT on OUTPUT resets CAPTURE to NV12 at the coded size. */
static void dv_reset_decoded_fmt(struct dv_ctx *ctx)
{
	const struct v4l2_pix_format_mplane *coded = &ctx->coded_fmt.fmt.pix_mp;
	struct v4l2_pix_format_mplane *pix_mp = &ctx->decoded_fmt.fmt.pix_mp;

	dv_init_fmt(&ctx->decoded_fmt, V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE,
		    V4L2_PIX_FMT_NV12);
	dv_fill_decoded(pix_mp, V4L2_PIX_FMT_NV12, coded->width, coded->height);
	pix_mp->colorspace = coded->colorspace;
	pix_mp->xfer_func = coded->xfer_func;
	pix_mp->ycbcr_enc = coded->ycbcr_enc;
	pix_mp->quantization = coded->quantization;
}

void dv_set_default_format(struct dv_ctx *ctx)
{
	struct v4l2_pix_format_mplane *pix_mp = &ctx->coded_fmt.fmt.pix_mp;

	ctx->coded_desc = &dv_coded_fmts[0];
	dv_init_fmt(&ctx->coded_fmt, V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE,
		    ctx->coded_desc->fourcc);
	pix_mp->width = DV_DEF_WIDTH;
	pix_mp->height = DV_DEF_HEIGHT;
	pix_mp->num_planes = 1;
	pix_mp->plane_fmt[0].sizeimage =
		dv_default_coded_size(DV_DEF_WIDTH, DV_DEF_HEIGHT);

	dv_reset_decoded_fmt(ctx);
}

static int dv_querycap(struct file *file, void *priv,
		       struct v4l2_capability *cap)
{
	strscpy(cap->driver, DV_NAME, sizeof(cap->driver));
	strscpy(cap->card, DV_CARD, sizeof(cap->card));
	strscpy(cap->bus_info, "platform:" DV_NAME, sizeof(cap->bus_info));
	return 0;
}

static int dv_enum_fmt_vid_cap(struct file *file, void *priv,
			       struct v4l2_fmtdesc *f)
{
	if (f->index >= ARRAY_SIZE(dv_decoded_fmts))
		return -EINVAL;

	f->pixelformat = dv_decoded_fmts[f->index];
	return 0;
}

static int dv_enum_fmt_vid_out(struct file *file, void *priv,
			       struct v4l2_fmtdesc *f)
{
	if (f->index >= dv_num_coded_fmts)
		return -EINVAL;

	f->pixelformat = dv_coded_fmts[f->index].fourcc;
	/* each buffer is one whole frame (VP9/AV1) or slices of one (H.264) */
	return 0;
}

static int dv_g_fmt_vid_cap(struct file *file, void *priv,
			    struct v4l2_format *f)
{
	f->fmt.pix_mp = dv_file_to_ctx(file)->decoded_fmt.fmt.pix_mp;
	return 0;
}

static int dv_g_fmt_vid_out(struct file *file, void *priv,
			    struct v4l2_format *f)
{
	f->fmt.pix_mp = dv_file_to_ctx(file)->coded_fmt.fmt.pix_mp;
	return 0;
}

static int dv_try_fmt_vid_cap(struct file *file, void *priv,
			      struct v4l2_format *f)
{
	struct dv_ctx *ctx = dv_file_to_ctx(file);
	const struct v4l2_pix_format_mplane *coded = &ctx->coded_fmt.fmt.pix_mp;
	struct v4l2_pix_format_mplane *pix_mp = &f->fmt.pix_mp;
	u32 fourcc = pix_mp->pixelformat;

	if (!dv_is_decoded_fmt(fourcc))
		fourcc = dv_decoded_fmts[0];

	/* the picture size is the coded size; CAPTURE cannot scale */
	dv_fill_decoded(pix_mp, fourcc, coded->width, coded->height);
	pix_mp->flags = 0;
	pix_mp->colorspace = coded->colorspace;
	pix_mp->xfer_func = coded->xfer_func;
	pix_mp->ycbcr_enc = coded->ycbcr_enc;
	pix_mp->quantization = coded->quantization;
	return 0;
}

static int dv_try_fmt_vid_out(struct file *file, void *priv,
			      struct v4l2_format *f)
{
	struct v4l2_pix_format_mplane *pix_mp = &f->fmt.pix_mp;
	u32 *sizeimage = &pix_mp->plane_fmt[0].sizeimage;

	if (!dv_find_coded_fmt(pix_mp->pixelformat))
		pix_mp->pixelformat = dv_coded_fmts[0].fourcc;

	v4l2_apply_frmsize_constraints(&pix_mp->width, &pix_mp->height,
				       &dv_frmsize);

	pix_mp->field = V4L2_FIELD_NONE;
	pix_mp->num_planes = 1;
	pix_mp->flags = 0;
	pix_mp->plane_fmt[0].bytesperline = 0;
	if (pix_mp->colorspace == V4L2_COLORSPACE_DEFAULT)
		pix_mp->colorspace = V4L2_COLORSPACE_REC709;
	/* the client may ask for more room, up to 64 MiB, never less */
	*sizeimage = clamp_t(u32, *sizeimage,
			     dv_default_coded_size(pix_mp->width, pix_mp->height),
			     DV_MAX_CODED_SIZE);
	return 0;
}

static int dv_s_fmt_vid_out(struct file *file, void *priv,
			    struct v4l2_format *f)
{
	struct dv_ctx *ctx = dv_file_to_ctx(file);
	struct v4l2_m2m_ctx *m2m_ctx = ctx->fh.m2m_ctx;
	int ret;

	/* the OUTPUT format also decides the CAPTURE one */
	if (vb2_is_busy(v4l2_m2m_get_vq(m2m_ctx, f->type)) ||
	    vb2_is_busy(v4l2_m2m_get_vq(m2m_ctx,
					V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE)))
		return -EBUSY;

	ret = dv_try_fmt_vid_out(file, priv, f);
	if (ret)
		return ret;

	ctx->coded_desc = dv_find_coded_fmt(f->fmt.pix_mp.pixelformat);
	ctx->coded_fmt.fmt.pix_mp = f->fmt.pix_mp;
	dv_reset_decoded_fmt(ctx);
	dv_reset_session(ctx);

	dprintk(ctx->dev, "stream %u: OUTPUT %p4cc %ux%u sizeimage %u\n",
		ctx->stream_id, &f->fmt.pix_mp.pixelformat, f->fmt.pix_mp.width,
		f->fmt.pix_mp.height, f->fmt.pix_mp.plane_fmt[0].sizeimage);
	return 0;
}

static int dv_s_fmt_vid_cap(struct file *file, void *priv,
			    struct v4l2_format *f)
{
	struct dv_ctx *ctx = dv_file_to_ctx(file);
	int ret;

	if (vb2_is_busy(v4l2_m2m_get_vq(ctx->fh.m2m_ctx, f->type)))
		return -EBUSY;

	ret = dv_try_fmt_vid_cap(file, priv, f);
	if (ret)
		return ret;

	ctx->decoded_fmt.fmt.pix_mp = f->fmt.pix_mp;
	dv_reset_session(ctx);
	dprintk(ctx->dev, "stream %u: CAPTURE %p4cc\n", ctx->stream_id,
		&f->fmt.pix_mp.pixelformat);
	return 0;
}

static int dv_enum_framesizes(struct file *file, void *priv,
			      struct v4l2_frmsizeenum *fsize)
{
	if (fsize->index != 0)
		return -EINVAL;
	if (!dv_find_coded_fmt(fsize->pixel_format))
		return -EINVAL;

	fsize->type = V4L2_FRMSIZE_TYPE_STEPWISE;
	fsize->stepwise = dv_frmsize;
	return 0;
}

/*
 * The queues do not set VB2_V4L2_FL_SUPPORTS_M2M_HOLD_CAPTURE_BUF: with it
 * v4l2_m2m_job_finish() WARNs, since the helpers it pairs with
 * (v4l2_m2m_buf_done_and_job_finish) keep src and dst on the ready queues
 * until the job is done, which is the order that crashed (driver-model.md).
 * The driver claims both at device_run and keeps the flag itself: it is
 * noted per buffer index from the v4l2_buffer here and put back in
 * buf_out_validate, after vb2 has masked it; the capability is reported by
 * the wrappers below.
 */
static void dv_note_hold(struct dv_ctx *ctx, const struct v4l2_buffer *b)
{
	if (!V4L2_TYPE_IS_OUTPUT(b->type) || b->index >= VB2_MAX_FRAME)
		return;	/* vb2 rejects such an index itself */
	if (b->flags & V4L2_BUF_FLAG_M2M_HOLD_CAPTURE_BUF)
		set_bit(b->index, ctx->hold_bits);
	else
		clear_bit(b->index, ctx->hold_bits);
}

static int dv_qbuf(struct file *file, void *priv, struct v4l2_buffer *b)
{
	struct dv_ctx *ctx = dv_file_to_ctx(file);

	/* v4l2-mem2mem says EPERM; the stateless uAPI documents EBADR */
	if (V4L2_TYPE_IS_CAPTURE(b->type) && (b->flags & V4L2_BUF_FLAG_REQUEST_FD))
		return -EBADR;

	dv_note_hold(ctx, b);
	return v4l2_m2m_ioctl_qbuf(file, priv, b);
}

static int dv_prepare_buf(struct file *file, void *priv, struct v4l2_buffer *b)
{
	struct dv_ctx *ctx = dv_file_to_ctx(file);

	dv_note_hold(ctx, b);
	return v4l2_m2m_ioctl_prepare_buf(file, priv, b);
}

static int dv_reqbufs(struct file *file, void *priv,
		      struct v4l2_requestbuffers *rb)
{
	int ret = v4l2_m2m_ioctl_reqbufs(file, priv, rb);

	if (V4L2_TYPE_IS_OUTPUT(rb->type))
		rb->capabilities |= V4L2_BUF_CAP_SUPPORTS_M2M_HOLD_CAPTURE_BUF;
	return ret;
}

static int dv_create_bufs(struct file *file, void *priv,
			  struct v4l2_create_buffers *cb)
{
	int ret = v4l2_m2m_ioctl_create_bufs(file, priv, cb);

	if (V4L2_TYPE_IS_OUTPUT(cb->format.type))
		cb->capabilities |= V4L2_BUF_CAP_SUPPORTS_M2M_HOLD_CAPTURE_BUF;
	return ret;
}

static int dv_decoder_cmd(struct file *file, void *priv,
			  struct v4l2_decoder_cmd *dc)
{
	int ret;

	ret = v4l2_m2m_ioctl_stateless_try_decoder_cmd(file, priv, dc);
	if (ret)
		return ret;

	return dv_flush(dv_file_to_ctx(file));
}

/*
 * No VIDIOC_REMOVE_BUFS: it frees a dequeued buffer while streaming, which
 * the chardev mmap of CAPTURE buffers relies on not happening.
 */
const struct v4l2_ioctl_ops dv_ioctl_ops = {
	.vidioc_querycap		= dv_querycap,
	.vidioc_enum_framesizes		= dv_enum_framesizes,

	.vidioc_enum_fmt_vid_cap	= dv_enum_fmt_vid_cap,
	.vidioc_g_fmt_vid_cap_mplane	= dv_g_fmt_vid_cap,
	.vidioc_try_fmt_vid_cap_mplane	= dv_try_fmt_vid_cap,
	.vidioc_s_fmt_vid_cap_mplane	= dv_s_fmt_vid_cap,

	.vidioc_enum_fmt_vid_out	= dv_enum_fmt_vid_out,
	.vidioc_g_fmt_vid_out_mplane	= dv_g_fmt_vid_out,
	.vidioc_try_fmt_vid_out_mplane	= dv_try_fmt_vid_out,
	.vidioc_s_fmt_vid_out_mplane	= dv_s_fmt_vid_out,

	.vidioc_reqbufs			= dv_reqbufs,
	.vidioc_querybuf		= v4l2_m2m_ioctl_querybuf,
	.vidioc_qbuf			= dv_qbuf,
	.vidioc_dqbuf			= v4l2_m2m_ioctl_dqbuf,
	.vidioc_prepare_buf		= dv_prepare_buf,
	.vidioc_create_bufs		= dv_create_bufs,
	.vidioc_expbuf			= v4l2_m2m_ioctl_expbuf,

	.vidioc_streamon		= v4l2_m2m_ioctl_streamon,
	.vidioc_streamoff		= v4l2_m2m_ioctl_streamoff,

	.vidioc_decoder_cmd		= dv_decoder_cmd,
	.vidioc_try_decoder_cmd		= v4l2_m2m_ioctl_stateless_try_decoder_cmd,

	.vidioc_subscribe_event		= v4l2_ctrl_subscribe_event,
	.vidioc_unsubscribe_event	= v4l2_event_unsubscribe,
};

static const struct v4l2_format *dv_queue_fmt(struct dv_ctx *ctx,
					      const struct vb2_queue *vq)
{
	return V4L2_TYPE_IS_OUTPUT(vq->type) ? &ctx->coded_fmt : &ctx->decoded_fmt;
}

static int dv_queue_setup(struct vb2_queue *vq, unsigned int *nbuffers,
			  unsigned int *num_planes, unsigned int sizes[],
			  struct device *alloc_devs[])
{
	struct dv_ctx *ctx = vb2_get_drv_priv(vq);
	u32 sizeimage = dv_queue_fmt(ctx, vq)->fmt.pix_mp.plane_fmt[0].sizeimage;

	if (*num_planes) {
		if (*num_planes != 1 || sizes[0] < sizeimage)
			return -EINVAL;
	} else {
		*num_planes = 1;
		sizes[0] = sizeimage;
	}

	dprintk(ctx->dev, "stream %u: %s: %u buffers of %u bytes\n",
		ctx->stream_id, V4L2_TYPE_IS_OUTPUT(vq->type) ? "OUTPUT" : "CAPTURE",
		*nbuffers, sizes[0]);
	return 0;
}

static int dv_buf_out_validate(struct vb2_buffer *vb)
{
	struct vb2_v4l2_buffer *vbuf = to_vb2_v4l2_buffer(vb);
	struct dv_ctx *ctx = vb2_get_drv_priv(vb->vb2_queue);

	vbuf->field = V4L2_FIELD_NONE;
	/*
	 * Runs at QBUF and again when the request is queued; vb2 cleared the
	 * flag when it copied the v4l2_buffer in, so only ever set it here.
	 */
	if (vb->index < VB2_MAX_FRAME && test_bit(vb->index, ctx->hold_bits))
		vbuf->flags |= V4L2_BUF_FLAG_M2M_HOLD_CAPTURE_BUF;
	return 0;
}

static int dv_buf_prepare(struct vb2_buffer *vb)
{
	struct vb2_queue *vq = vb->vb2_queue;
	struct dv_ctx *ctx = vb2_get_drv_priv(vq);
	u32 sizeimage = dv_queue_fmt(ctx, vq)->fmt.pix_mp.plane_fmt[0].sizeimage;

	if (vb2_plane_size(vb, 0) < sizeimage) {
		dev_warn_ratelimited(ctx->dev->v4l2_dev.dev,
				     "stream %u: buffer %u has %lu bytes, format needs %u\n",
				     ctx->stream_id, vb->index,
				     vb2_plane_size(vb, 0), sizeimage);
		return -EINVAL;
	}

	if (V4L2_TYPE_IS_CAPTURE(vq->type))
		vb2_set_plane_payload(vb, 0, sizeimage);
	return 0;
}

static void dv_buf_queue(struct vb2_buffer *vb)
{
	struct dv_ctx *ctx = vb2_get_drv_priv(vb->vb2_queue);

	v4l2_m2m_buf_queue(ctx->fh.m2m_ctx, to_vb2_v4l2_buffer(vb));
}

static void dv_buf_request_complete(struct vb2_buffer *vb)
{
	struct dv_ctx *ctx = vb2_get_drv_priv(vb->vb2_queue);

	v4l2_ctrl_request_complete(vb->req_obj.req, &ctx->hdl);
}

static int dv_start_streaming(struct vb2_queue *vq, unsigned int count)
{
	struct dv_ctx *ctx = vb2_get_drv_priv(vq);

	if (V4L2_TYPE_IS_OUTPUT(vq->type))
		ctx->out_seq = 0;
	else
		ctx->cap_seq = 0;
	return 0;
}

/* Buffers still on the ready queue never reached the daemon. */
static void dv_return_ready_bufs(struct dv_ctx *ctx, struct vb2_queue *vq)
{
	struct vb2_v4l2_buffer *vbuf;

	for (;;) {
		if (V4L2_TYPE_IS_OUTPUT(vq->type))
			vbuf = v4l2_m2m_src_buf_remove(ctx->fh.m2m_ctx);
		else
			vbuf = v4l2_m2m_dst_buf_remove(ctx->fh.m2m_ctx);
		if (!vbuf)
			break;

		v4l2_ctrl_request_complete(vbuf->vb2_buf.req_obj.req, &ctx->hdl);
		v4l2_m2m_buf_done(vbuf, VB2_BUF_STATE_ERROR);
	}
}

/*
 * STREAMOFF of either queue cancels the context's in-flight jobs (src and
 * dst ERROR) without waiting on the daemon, then returns this queue's
 * ready buffers.
 */
static void dv_stop_streaming(struct vb2_queue *vq)
{
	struct dv_ctx *ctx = vb2_get_drv_priv(vq);

	dprintk(ctx->dev, "stream %u: stop %s\n", ctx->stream_id,
		V4L2_TYPE_IS_OUTPUT(vq->type) ? "OUTPUT" : "CAPTURE");

	mutex_lock(&ctx->dev->buf_lock);
	dv_cancel_ctx(ctx);
	mutex_unlock(&ctx->dev->buf_lock);

	dv_return_ready_bufs(ctx, vq);
}

static const struct vb2_ops dv_qops = {
	.queue_setup		= dv_queue_setup,
	.buf_out_validate	= dv_buf_out_validate,
	.buf_prepare		= dv_buf_prepare,
	.buf_queue		= dv_buf_queue,
	.buf_request_complete	= dv_buf_request_complete,
	.start_streaming	= dv_start_streaming,
	.stop_streaming		= dv_stop_streaming,
	.wait_prepare		= vb2_ops_wait_prepare,
	.wait_finish		= vb2_ops_wait_finish,
};

/*
 * vmalloc memory: the bitstream is copied out through its kernel address,
 * and the daemon maps CAPTURE buffers through vb2's own mmap op, whose
 * mapping holds a reference on the pages (see dv-chardev.c).
 */
static void dv_queue_common_init(struct dv_ctx *ctx, struct vb2_queue *vq,
				 enum v4l2_buf_type type)
{
	vq->type = type;
	vq->io_modes = VB2_MMAP;
	vq->drv_priv = ctx;
	vq->buf_struct_size = sizeof(struct v4l2_m2m_buffer);
	vq->ops = &dv_qops;
	vq->mem_ops = &vb2_vmalloc_memops;
	vq->timestamp_flags = V4L2_BUF_FLAG_TIMESTAMP_COPY;
	vq->lock = &ctx->vb_mutex;
	vq->dev = ctx->dev->v4l2_dev.dev;
}

int dv_queue_init(void *priv, struct vb2_queue *src_vq, struct vb2_queue *dst_vq)
{
	struct dv_ctx *ctx = priv;
	int ret;

	dv_queue_common_init(ctx, src_vq, V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE);
	src_vq->supports_requests = true;
	src_vq->requires_requests = true;
	ret = vb2_queue_init(src_vq);
	if (ret)
		return ret;

	dv_queue_common_init(ctx, dst_vq, V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE);
	return vb2_queue_init(dst_vq);
}
