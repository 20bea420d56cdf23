// SPDX-License-Identifier: GPL-2.0
/*
 * daedalus-v4l2: jobs. device_run claims the OUTPUT (src) and CAPTURE (dst)
 * buffers, records an in-flight entry keyed by cookie and sends DECODE to
 * the daemon; FRAME responses, the watchdog, STREAMOFF and the daemon
 * going away complete the entries.
 *
 * Rules (docs/driver-model.md): the m2m job ends when the src is returned;
 * dst buffers complete strictly in cookie order per context, each request
 * with its dst; every buffer comes back exactly once; nothing waits for the
 * daemon.
 *
 * Locking: dev->lock (a spinlock, so completion may run anywhere) protects
 * the in-flight list, the message queue, the counters and the per-context
 * job state. v4l2_m2m_buf_done() and v4l2_m2m_job_finish() are called under
 * it; both only take m2m's own irq-safe locks. job_ready runs under m2m's
 * job lock and so must not take dev->lock.
 */

#include <linux/jiffies.h>
#include <linux/slab.h>
#include <media/v4l2-mem2mem.h>
#include <media/videobuf2-v4l2.h>

#include "dv.h"

static const char * const dv_state_names[] = {
	[DV_ENTRY_SENT]		= "sent",
	[DV_ENTRY_PARKED]	= "parked",
	[DV_ENTRY_HELD]		= "held",
	[DV_ENTRY_READY]	= "ready",
};

const char *dv_entry_state_name(enum dv_entry_state state)
{
	return state < ARRAY_SIZE(dv_state_names) ? dv_state_names[state] : "?";
}

struct dv_entry *dv_find_entry(struct dv_dev *dev, u64 cookie)
{
	struct dv_entry *e;

	lockdep_assert_held(&dev->lock);
	list_for_each_entry(e, &dev->inflight, list)
		if (e->cookie == cookie)
			return e;
	return NULL;
}

static void dv_set_state(struct dv_dev *dev, struct dv_entry *e,
			 enum dv_entry_state state)
{
	bool was_parked = e->state == DV_ENTRY_PARKED;

	if (was_parked && state != DV_ENTRY_PARKED)
		dev->cnt.parked_now--;
	if (!was_parked && state == DV_ENTRY_PARKED) {
		dev->cnt.parked++;
		dev->cnt.parked_now++;
		dev->cnt.parked_max = max(dev->cnt.parked_max, dev->cnt.parked_now);
	}
	e->state = state;
}

static void dv_set_held(struct dv_ctx *ctx, struct dv_entry *e)
{
	ctx->held = e;
	WRITE_ONCE(ctx->held_valid, !!e);
}

/*
 * The job ends with its src. device_run may still be building the
 * message when a response or a cancel returns the src; then it finishes
 * the job itself on its way out, so that m2m (and a release waiting on
 * it) never sees the context idle while device_run still uses it.
 */
static void dv_src_done(struct dv_ctx *ctx, struct vb2_v4l2_buffer *src,
			enum vb2_buffer_state state)
{
	src->sequence = ctx->out_seq++;
	v4l2_m2m_buf_done(src, state);

	if (ctx->in_run)
		ctx->finish_pending = true;
	else
		v4l2_m2m_job_finish(ctx->dev->m2m_dev, ctx->fh.m2m_ctx);
}

static void dv_picture_release(struct media_request_object *obj)
{
	kfree(obj);
}

static const struct media_request_object_ops dv_picture_ops = {
	.release = dv_picture_release,
};

/*
 * A request completes when all its objects do: its src (returned when the
 * daemon has consumed it, for a parked job long before its picture), its
 * controls (device_run), and this object of ours, completed with the dst.
 * GStreamer's v4l2codecs take a completed request for a decoded picture and
 * DQBUF its CAPTURE buffer at once. A src that holds its dst is a slice: its
 * request completes with it. Without the object (no memory) the request
 * completes with its src. Called under dev->lock; binding takes only the
 * request's spinlock.
 */
static void dv_bind_picture(struct dv_entry *e, struct media_request *req,
			    struct media_request_object **obj)
{
	if (!req || e->hold || !*obj)
		return;
	media_request_object_init(*obj);
	if (media_request_object_bind(req, &dv_picture_ops, NULL, false, *obj))
		return;
	e->picture = *obj;
	*obj = NULL;	/* the request's now: released when it is cleaned */
}

static void dv_dst_done(struct dv_dev *dev, struct dv_entry *e)
{
	struct vb2_v4l2_buffer *dst = e->dst;

	e->dst = NULL;
	dst->field = V4L2_FIELD_NONE;
	dst->sequence = e->ctx->cap_seq++;
	vb2_set_plane_payload(&dst->vb2_buf, 0, e->error ? 0 : e->bytesused);
	if (e->error)
		dev->cnt.errors++;
	else
		dev->cnt.done++;
	v4l2_m2m_buf_done(dst, e->error ? VB2_BUF_STATE_ERROR : VB2_BUF_STATE_DONE);
	/* dst first: the completed request tells the client its picture is there */
	if (e->picture) {
		media_request_object_complete(e->picture);
		e->picture = NULL;
	}
}

/*
 * Complete every READY dst that has no earlier unfinished entry of its
 * context: decode order per context, whatever order the daemon answers in.
 */
static void dv_complete_ready(struct dv_dev *dev)
{
	struct dv_entry *e, *tmp;

	list_for_each_entry(e, &dev->inflight, list)
		e->ctx->blocked = false;

	list_for_each_entry_safe(e, tmp, &dev->inflight, list) {
		if (e->ctx->blocked)
			continue;
		if (e->state != DV_ENTRY_READY || e->src) {
			e->ctx->blocked = true;
			continue;
		}
		dv_dst_done(dev, e);
		list_del(&e->list);
		kfree(e);
	}
}

/* Make an entry complete with ERROR: its src now, its dst in order. */
static void dv_fail_entry(struct dv_dev *dev, struct dv_entry *e)
{
	struct dv_ctx *ctx = e->ctx;

	if (ctx->held == e)
		dv_set_held(ctx, NULL);
	e->error = true;
	dv_set_state(dev, e, DV_ENTRY_READY);
	if (e->src) {
		struct vb2_v4l2_buffer *src = e->src;

		e->src = NULL;
		dv_src_done(ctx, src, VB2_BUF_STATE_ERROR);
	}
}

static void dv_arm_watchdog(struct dv_dev *dev)
{
	unsigned long timeout = msecs_to_jiffies(max(dv_watchdog_ms, 1U));
	unsigned long now = jiffies, next = now + timeout;
	bool armed = false;
	struct dv_entry *e;

	list_for_each_entry(e, &dev->inflight, list) {
		/* a held dst waits for the client's next slice, not the daemon */
		if (e->state != DV_ENTRY_SENT && e->state != DV_ENTRY_PARKED)
			continue;
		if (!armed || time_before(e->sent_at + timeout, next))
			next = e->sent_at + timeout;
		armed = true;
	}
	if (armed)
		mod_delayed_work(system_wq, &dev->watchdog,
				 time_after(next, now) ? next - now : 0);
}

void dv_watchdog_work(struct work_struct *work)
{
	struct dv_dev *dev = container_of(to_delayed_work(work), struct dv_dev,
					  watchdog);
	unsigned long timeout = msecs_to_jiffies(max(dv_watchdog_ms, 1U));
	unsigned long flags;
	struct dv_entry *e;

	spin_lock_irqsave(&dev->lock, flags);
	list_for_each_entry(e, &dev->inflight, list) {
		if (e->state != DV_ENTRY_SENT && e->state != DV_ENTRY_PARKED)
			continue;
		if (time_before(jiffies, e->sent_at + timeout))
			continue;
		dev_warn_ratelimited(dev->v4l2_dev.dev,
				     "stream %u: cookie %llu %s for more than %u ms, failing it\n",
				     e->ctx->stream_id, e->cookie,
				     dv_entry_state_name(e->state), dv_watchdog_ms);
		dev->cnt.watchdog_expiries++;
		dv_fail_entry(dev, e);
	}
	dv_complete_ready(dev);
	dv_arm_watchdog(dev);
	spin_unlock_irqrestore(&dev->lock, flags);
}

/* Called with dev->lock held: STREAMOFF, close, job_abort. */
static void dv_cancel_ctx_locked(struct dv_ctx *ctx)
{
	struct dv_dev *dev = ctx->dev;
	struct dv_entry *e;

	list_for_each_entry(e, &dev->inflight, list)
		if (e->ctx == ctx)
			dv_fail_entry(dev, e);
	dv_set_held(ctx, NULL);
	ctx->flush_pending = false;
	dv_complete_ready(dev);
}

void dv_cancel_ctx(struct dv_ctx *ctx)
{
	unsigned long flags;

	spin_lock_irqsave(&ctx->dev->lock, flags);
	dv_cancel_ctx_locked(ctx);
	spin_unlock_irqrestore(&ctx->dev->lock, flags);
}

/*
 * m2m cancels a running job (STREAMOFF, close) by calling this and then
 * waiting for job_finish: fail the context's jobs now rather than wait for
 * the daemon.
 */
void dv_job_abort(void *priv)
{
	dv_cancel_ctx(priv);
}

/* The daemon closed the chardev: every in-flight job fails at once. */
void dv_fail_all(struct dv_dev *dev)
{
	struct dv_entry *e;

	lockdep_assert_held(&dev->lock);
	list_for_each_entry(e, &dev->inflight, list) {
		e->ctx->flush_pending = false;
		dv_fail_entry(dev, e);
	}
	dv_complete_ready(dev);
}

/*
 * Held dsts are claimed, so m2m cannot see them: a job is ready with a src
 * and either a held dst (to reuse or to release) or a queued dst.
 * Runs under m2m's job lock: no dev->lock here, a stale held_valid only
 * makes device_run find nothing to do.
 */
int dv_job_ready(void *priv)
{
	struct dv_ctx *ctx = priv;

	if (!v4l2_m2m_num_src_bufs_ready(ctx->fh.m2m_ctx))
		return 0;
	if (READ_ONCE(ctx->held_valid))
		return 1;
	return v4l2_m2m_num_dst_bufs_ready(ctx->fh.m2m_ctx) > 0;
}

static void dv_release_held_locked(struct dv_dev *dev, struct dv_ctx *ctx)
{
	struct dv_entry *e = ctx->held;

	if (!e)
		return;
	dv_set_held(ctx, NULL);
	dv_set_state(dev, e, DV_ENTRY_READY);
	dv_complete_ready(dev);
}

/*
 * Pick the dst for src: the held one when src continues its picture (same
 * timestamp), else a queued one after releasing any held dst. Returns the
 * held entry whose dst was taken over in *from, NULL if none is available.
 */
static struct vb2_v4l2_buffer *dv_claim_dst(struct dv_dev *dev,
					    struct dv_ctx *ctx,
					    struct vb2_v4l2_buffer *src,
					    struct dv_entry **from)
{
	struct dv_entry *held = ctx->held;

	*from = NULL;
	if (held && held->dst->vb2_buf.timestamp == src->vb2_buf.timestamp) {
		*from = held;
		return held->dst;
	}
	dv_release_held_locked(dev, ctx);
	return v4l2_m2m_dst_buf_remove(ctx->fh.m2m_ctx);
}

/*
 * Claim src and dst off the ready queues before anything else (amphion's
 * way): a dst parked on an entry is then never also on a ready queue.
 * False when there is no dst for the src after all.
 */
static bool dv_claim(struct dv_dev *dev, struct dv_ctx *ctx, struct dv_entry *e,
		     bool *first_slice)
{
	struct v4l2_m2m_ctx *m2m_ctx = ctx->fh.m2m_ctx;
	struct vb2_v4l2_buffer *src, *dst;
	struct dv_entry *from;

	src = v4l2_m2m_next_src_buf(m2m_ctx);
	if (!src)
		return false;
	dst = dv_claim_dst(dev, ctx, src, &from);
	if (!dst)
		return false;

	v4l2_m2m_src_buf_remove(m2m_ctx);
	*first_slice = !from;
	if (from) {
		/* the held entry's src is long gone: it only carried the dst */
		e->error = from->error;
		from->dst = NULL;
		dv_set_held(ctx, NULL);
		list_del(&from->list);
		kfree(from);
	}

	v4l2_m2m_buf_copy_metadata(src, dst, true);
	e->ctx = ctx;
	e->src = src;
	e->dst = dst;
	e->hold = src->flags & V4L2_BUF_FLAG_M2M_HOLD_CAPTURE_BUF;
	/*
	 * With src and dst claimed, whatever is still queued makes the next
	 * job: the daemon may hold this picture until that job arrives. A
	 * held dst continues into the next src, so holding says nothing.
	 */
	e->more_queued = !e->hold && v4l2_m2m_num_src_bufs_ready(m2m_ctx) &&
			 v4l2_m2m_num_dst_bufs_ready(m2m_ctx);
	e->codec = ctx->coded_desc->codec;
	e->out_idx = src->vb2_buf.index;
	e->cap_idx = dst->vb2_buf.index;
	e->bytesused = vb2_plane_size(&dst->vb2_buf, 0);
	e->cookie = dev->next_cookie++;
	e->sent_at = jiffies;
	e->state = DV_ENTRY_SENT;
	list_add_tail(&e->list, &dev->inflight);
	dev->cnt.jobs++;
	return true;
}

/* Bytes the codec's controls take as dv4l2_ctrl_rec records. */
static u32 dv_ctrls_len(struct dv_ctx *ctx)
{
	u32 len = 0;
	unsigned int i;

	for (i = 0; i < dv_num_ctrls; i++) {
		struct v4l2_ctrl *ctrl = ctx->ctrls[i];

		if (dv_ctrl_descs[i].fourcc != ctx->coded_desc->fourcc || !ctrl)
			continue;
		len += sizeof(struct dv4l2_ctrl_rec) +
		       ALIGN(ctrl->elems * ctrl->elem_size, 8);
	}
	return len;
}

static void dv_ctrls_fill(struct dv_ctx *ctx, u8 *p)
{
	unsigned int i;

	for (i = 0; i < dv_num_ctrls; i++) {
		struct v4l2_ctrl *ctrl = ctx->ctrls[i];
		struct dv4l2_ctrl_rec *rec = (struct dv4l2_ctrl_rec *)p;
		u32 size;

		if (dv_ctrl_descs[i].fourcc != ctx->coded_desc->fourcc || !ctrl)
			continue;
		size = ctrl->elems * ctrl->elem_size;
		rec->id = ctrl->id;
		rec->size = size;
		memcpy(p + sizeof(*rec), ctrl->p_cur.p, size);
		p += sizeof(*rec) + ALIGN(size, 8);
	}
}

static void dv_fill_decode_req(struct dv_ctx *ctx, const struct dv_entry *e,
			       struct dv4l2_decode_req *req, u32 ctrl_len,
			       u32 bs_len, bool first_slice)
{
	const struct v4l2_pix_format_mplane *cap = &ctx->decoded_fmt.fmt.pix_mp;
	u32 bpl = cap->plane_fmt[0].bytesperline;

	req->timestamp = e->dst->vb2_buf.timestamp;
	req->capture_offset = (u64)e->cookie << PAGE_SHIFT;
	req->codec = e->codec;
	req->flags = (e->hold ? DV4L2_DECODE_HOLD_CAPTURE : 0) |
		     (first_slice ? DV4L2_DECODE_FIRST_SLICE : 0) |
		     (dv_digest ? 0 : DV4L2_DECODE_NO_DIGEST) |
		     (e->more_queued ? DV4L2_DECODE_MORE_QUEUED : 0);
	req->coded_width = ctx->coded_fmt.fmt.pix_mp.width;
	req->coded_height = ctx->coded_fmt.fmt.pix_mp.height;
	req->capture_fourcc = cap->pixelformat;
	req->capture_index = e->cap_idx;
	req->capture_size = vb2_plane_size(&e->dst->vb2_buf, 0);
	req->output_index = e->out_idx;
	req->num_planes = 2;
	req->ctrl_len = ctrl_len;
	req->bitstream_len = bs_len;
	req->planes[0].bytesperline = bpl;
	req->planes[0].height = cap->height;
	req->planes[1].offset = bpl * cap->height;
	req->planes[1].bytesperline = bpl;
	req->planes[1].height = DIV_ROUND_UP(cap->height, 2);
}

/*
 * The DECODE message: request, the codec's controls as the request set
 * them (v4l2_ctrl_request_setup() made them current), then the bitstream
 * copied out of the OUTPUT buffer; no size cap but the buffer's.
 */
static struct dv_msg *dv_build_decode(struct dv_ctx *ctx,
				      const struct dv_entry *e, bool first_slice)
{
	struct vb2_buffer *src = &e->src->vb2_buf;
	u32 bs_len = vb2_get_plane_payload(src, 0);
	void *bs = vb2_plane_vaddr(src, 0);
	struct dv4l2_decode_req *req;
	struct dv_msg *msg;
	u32 ctrl_len;

	if (!bs)
		return ERR_PTR(-EFAULT);

	mutex_lock(ctx->hdl.lock);
	ctrl_len = dv_ctrls_len(ctx);
	msg = dv_msg_alloc(DV4L2_MSG_DECODE, e->cookie, ctx->stream_id,
			   sizeof(*req) + ctrl_len + bs_len);
	if (!msg) {
		mutex_unlock(ctx->hdl.lock);
		return ERR_PTR(-ENOMEM);
	}
	req = dv_msg_payload(msg);
	memset(req, 0, sizeof(*req) + ctrl_len);
	dv_fill_decode_req(ctx, e, req, ctrl_len, bs_len, first_slice);
	dv_ctrls_fill(ctx, (u8 *)(req + 1));
	mutex_unlock(ctx->hdl.lock);

	memcpy((u8 *)(req + 1) + ctrl_len, bs, bs_len);
	return msg;
}

static struct dv_msg *dv_build_stream_open(struct dv_ctx *ctx)
{
	struct dv4l2_stream_open *so;
	struct dv_msg *msg;

	msg = dv_msg_alloc(DV4L2_MSG_STREAM_OPEN, 0, ctx->stream_id, sizeof(*so));
	if (!msg)
		return NULL;
	so = dv_msg_payload(msg);
	so->codec = ctx->coded_desc->codec;
	so->output_fourcc = ctx->coded_desc->fourcc;
	so->coded_width = ctx->coded_fmt.fmt.pix_mp.width;
	so->coded_height = ctx->coded_fmt.fmt.pix_mp.height;
	so->capture_fourcc = ctx->decoded_fmt.fmt.pix_mp.pixelformat;
	return msg;
}

/* What device_run prepared outside the lock, to send under it. */
struct dv_run {
	/*
	 * The entry as claimed. The entry itself may be cancelled and freed
	 * while device_run builds the message; its buffers stay allocated, as
	 * m2m's job (and so STREAMOFF or close) lasts until device_run ends.
	 */
	struct dv_entry		snap;
	struct media_request	*req;
	u64			gen;
	bool			need_open;
	bool			first_slice;
	struct dv_msg		*open;
	struct dv_msg		*decode;
	struct dv_msg		*flush;
	int			error;
};

static int dv_run_build(struct dv_ctx *ctx, struct dv_run *run)
{
	int ret;

	ret = v4l2_ctrl_request_setup(run->req, &ctx->hdl);
	if (ret)
		return ret;

	if (run->need_open) {
		run->open = dv_build_stream_open(ctx);
		if (!run->open)
			return -ENOMEM;
	}
	if (READ_ONCE(ctx->flush_pending)) {
		run->flush = dv_msg_alloc(DV4L2_MSG_FLUSH, 0, ctx->stream_id, 0);
		if (!run->flush)
			return -ENOMEM;
	}

	run->decode = dv_build_decode(ctx, &run->snap, run->first_slice);
	if (IS_ERR(run->decode)) {
		ret = PTR_ERR(run->decode);
		run->decode = NULL;
		return ret;
	}
	return 0;
}

/* Queue the STREAM_OPEN and DECODE (and FLUSH), all or nothing. */
static bool dv_run_send_locked(struct dv_dev *dev, struct dv_ctx *ctx,
			       struct dv_run *run)
{
	unsigned int need = !!run->open + 1;

	if (!run->decode || !dev->daemon_attached || dev->daemon_gen != run->gen ||
	    dev->outq_len + need > DV_OUTQ_MAX)
		return false;

	if (run->open) {
		dv_queue_msg_locked(dev, run->open);
		run->open = NULL;
		ctx->session_gen = run->gen;
	}
	dv_queue_msg_locked(dev, run->decode);
	run->decode = NULL;

	/* DECODER_CMD(FLUSH) came with srcs queued: flush after the last one */
	if (run->flush && ctx->flush_pending &&
	    !v4l2_m2m_num_src_bufs_ready(ctx->fh.m2m_ctx)) {
		ctx->flush_pending = false;
		dv_queue_msg_locked(dev, run->flush);
		run->flush = NULL;
	}
	return true;
}

static void dv_run_fail_log(struct dv_dev *dev, struct dv_ctx *ctx,
			    struct dv_run *run)
{
	if (run->error)
		dev_warn_ratelimited(dev->v4l2_dev.dev,
				     "stream %u: cookie %llu: cannot build the request: %d\n",
				     ctx->stream_id, run->snap.cookie, run->error);
	else if (!dev->daemon_attached)
		dev_warn_ratelimited(dev->v4l2_dev.dev,
				     "stream %u: cookie %llu: no daemon on /dev/%s, job fails\n",
				     ctx->stream_id, run->snap.cookie, DV_CHARDEV_NAME);
	else
		dev_warn_ratelimited(dev->v4l2_dev.dev,
				     "stream %u: cookie %llu: daemon is not reading (%u messages queued), job fails\n",
				     ctx->stream_id, run->snap.cookie, dev->outq_len);
}

/* Send what dv_run_build() made, or fail the job; end device_run. */
static void dv_run_finish(struct dv_dev *dev, struct dv_ctx *ctx,
			  struct dv_run *run)
{
	unsigned long flags;
	struct dv_entry *e;

	spin_lock_irqsave(&dev->lock, flags);
	/* gone if STREAMOFF or the daemon's close cancelled it meanwhile */
	e = dv_find_entry(dev, run->snap.cookie);
	if (e && e->src) {
		if (!run->error && dv_run_send_locked(dev, ctx, run)) {
			e->sent_at = jiffies;
			dv_arm_watchdog(dev);
		} else {
			dv_run_fail_log(dev, ctx, run);
			dv_fail_entry(dev, e);
			dv_complete_ready(dev);
		}
	}

	ctx->in_run = false;
	if (ctx->finish_pending) {
		ctx->finish_pending = false;
		v4l2_m2m_job_finish(dev->m2m_dev, ctx->fh.m2m_ctx);
	}
	spin_unlock_irqrestore(&dev->lock, flags);
}

static void dv_run_cleanup(struct dv_run *run)
{
	/* vmalloc'd messages are freed here, outside the spinlock */
	kvfree(run->open);
	kvfree(run->decode);
	kvfree(run->flush);
	if (run->req)
		media_request_put(run->req);
}

/* Claim under the lock; false when there is nothing to run after all. */
static bool dv_run_start(struct dv_dev *dev, struct dv_ctx *ctx,
			 struct dv_entry *e, struct dv_run *run,
			 struct media_request_object **picture)
{
	unsigned long flags;
	bool claimed;

	spin_lock_irqsave(&dev->lock, flags);
	claimed = dv_claim(dev, ctx, e, &run->first_slice);
	if (claimed) {
		ctx->in_run = true;
		run->snap = *e;
		run->gen = dev->daemon_gen;
		run->req = e->src->vb2_buf.req_obj.req;
		/* completing the src drops the request; keep it for its controls */
		if (run->req)
			media_request_get(run->req);
		dv_bind_picture(e, run->req, picture);
		run->need_open = ctx->session_gen != dev->daemon_gen;
	}
	spin_unlock_irqrestore(&dev->lock, flags);
	return claimed;
}

void dv_device_run(void *priv)
{
	struct dv_ctx *ctx = priv;
	struct dv_dev *dev = ctx->dev;
	struct media_request_object *picture;
	struct dv_run run = {};
	unsigned long flags;
	struct dv_entry *e;
	bool claimed;

	e = kzalloc(sizeof(*e), GFP_KERNEL);
	picture = kzalloc(sizeof(*picture), GFP_KERNEL);
	claimed = e && dv_run_start(dev, ctx, e, &run, &picture);
	kfree(picture);		/* NULL if the request took it */
	if (!claimed) {
		/* nothing claimed: m2m runs the job again when it is ready */
		if (!e)
			dev_warn_ratelimited(dev->v4l2_dev.dev,
					     "stream %u: out of memory for a job\n",
					     ctx->stream_id);
		kfree(e);
		/* under the lock, like every other job_finish (see dv_cancel_ctx) */
		spin_lock_irqsave(&dev->lock, flags);
		v4l2_m2m_job_finish(dev->m2m_dev, ctx->fh.m2m_ctx);
		spin_unlock_irqrestore(&dev->lock, flags);
		return;
	}

	/* requires_requests: every OUTPUT buffer came with one */
	if (WARN_ON_ONCE(!run.req))
		run.error = -EINVAL;
	else if (READ_ONCE(dev->daemon_attached))
		run.error = dv_run_build(ctx, &run);

	/* the request's controls are done with; its src completes later */
	if (run.req)
		v4l2_ctrl_request_complete(run.req, &ctx->hdl);

	dv_run_finish(dev, ctx, &run);
	dv_run_cleanup(&run);
}

int dv_flush(struct dv_ctx *ctx)
{
	struct dv_dev *dev = ctx->dev;
	struct vb2_v4l2_buffer *last;
	struct dv_msg *msg;
	unsigned long flags;
	struct dv_entry *e;

	msg = dv_msg_alloc(DV4L2_MSG_FLUSH, 0, ctx->stream_id, 0);
	if (!msg)
		return -ENOMEM;

	spin_lock_irqsave(&dev->lock, flags);
	last = v4l2_m2m_last_src_buf(ctx->fh.m2m_ctx);
	if (last) {
		/* that src releases the held dst; FLUSH follows its DECODE */
		last->flags &= ~V4L2_BUF_FLAG_M2M_HOLD_CAPTURE_BUF;
		ctx->flush_pending = true;
	} else {
		/* a job still running must not hold its dst either */
		list_for_each_entry(e, &dev->inflight, list)
			if (e->ctx == ctx && e->state == DV_ENTRY_SENT)
				e->hold = false;
		dv_release_held_locked(dev, ctx);
		if (dev->daemon_attached && ctx->session_gen == dev->daemon_gen &&
		    dv_queue_msg_locked(dev, msg))
			msg = NULL;
	}
	spin_unlock_irqrestore(&dev->lock, flags);

	kvfree(msg);
	return 0;
}

/* The next job opens the daemon's session again, with the new formats. */
void dv_reset_session(struct dv_ctx *ctx)
{
	unsigned long flags;

	spin_lock_irqsave(&ctx->dev->lock, flags);
	ctx->session_gen = 0;
	spin_unlock_irqrestore(&ctx->dev->lock, flags);
}

void dv_stream_close(struct dv_ctx *ctx)
{
	struct dv_dev *dev = ctx->dev;
	struct dv_msg *msg;
	unsigned long flags;

	msg = dv_msg_alloc(DV4L2_MSG_STREAM_CLOSE, 0, ctx->stream_id, 0);

	spin_lock_irqsave(&dev->lock, flags);
	if (dev->daemon_attached && ctx->session_gen == dev->daemon_gen) {
		if (msg && dv_queue_msg_locked(dev, msg))
			msg = NULL;
		else
			dev_warn_ratelimited(dev->v4l2_dev.dev,
					     "stream %u: STREAM_CLOSE lost (daemon not reading)\n",
					     ctx->stream_id);
	}
	spin_unlock_irqrestore(&dev->lock, flags);

	kvfree(msg);
}

/*
 * A FRAME for a job whose src is still claimed consumes it (HAS_PIXELS and
 * ERROR imply SRC_CONSUMED). Without pixels or error the dst is parked, or
 * held if the src asked to hold it; an error on a held picture is sticky
 * and the dst stays held, as v4l2_m2m_buf_done_and_job_finish() does.
 */
static int dv_apply_frame(struct dv_dev *dev, struct dv_entry *e,
			  const struct dv4l2_frame_resp *resp)
{
	bool pixels = resp->flags & DV4L2_FRAME_HAS_PIXELS;
	bool error = (resp->flags & DV4L2_FRAME_ERROR) || resp->status;
	bool consumes = e->src != NULL;
	int ret = 0;

	if (e->state == DV_ENTRY_READY || (!consumes && !pixels && !error))
		return -EALREADY;	/* reported already, or a second SRC_CONSUMED */

	if (pixels) {
		if (resp->plane_bytes[0] > vb2_plane_size(&e->dst->vb2_buf, 0)) {
			error = true;
			ret = -EOVERFLOW;
		} else {
			e->bytesused = resp->plane_bytes[0];
		}
	}
	e->error |= error;

	if (pixels || (error && !e->hold)) {
		if (e->ctx->held == e)
			dv_set_held(e->ctx, NULL);
		dv_set_state(dev, e, DV_ENTRY_READY);
	} else if (consumes && e->hold) {
		dv_set_state(dev, e, DV_ENTRY_HELD);
		dv_set_held(e->ctx, e);
	} else if (consumes) {
		dv_set_state(dev, e, DV_ENTRY_PARKED);
	}
	return ret;
}

static void dv_frame_log(struct dv_dev *dev, struct dv_entry *e,
			 const struct dv4l2_frame_resp *resp, int ret)
{
	if (ret == -EOVERFLOW)
		dev_warn_ratelimited(dev->v4l2_dev.dev,
				     "stream %u: cookie %llu: %u bytes do not fit CAPTURE buffer %u (%lu bytes)\n",
				     e->ctx->stream_id, e->cookie, resp->plane_bytes[0],
				     e->cap_idx, vb2_plane_size(&e->dst->vb2_buf, 0));
	else if (resp->flags & DV4L2_FRAME_ERROR || resp->status)
		dev_info_ratelimited(dev->v4l2_dev.dev,
				     "stream %u: cookie %llu failed (%d): %s\n",
				     e->ctx->stream_id, e->cookie, resp->status,
				     resp->reason);
}

/* Count a FRAME that does not apply, or log one that reports a failure. */
static void dv_frame_account(struct dv_dev *dev, struct dv_entry *e,
			     const struct dv4l2_frame_resp *resp, int ret)
{
	if (ret == -EALREADY) {
		dev->cnt.duplicate_response++;
		dprintk(dev, "cookie %llu: duplicate response, dropped\n", e->cookie);
		return;
	}
	if (ret)
		dev->cnt.rejected_messages++;
	dv_frame_log(dev, e, resp, ret);
}

int dv_handle_frame(struct dv_dev *dev, const struct dv4l2_msg_header *hdr,
		    const struct dv4l2_frame_resp *resp)
{
	bool src_error = (resp->flags & DV4L2_FRAME_ERROR) || resp->status;
	struct vb2_v4l2_buffer *src;
	unsigned long flags;
	struct dv_entry *e;
	struct dv_ctx *ctx;
	int ret;

	spin_lock_irqsave(&dev->lock, flags);
	e = dv_find_entry(dev, hdr->cookie);
	if (!e) {
		dev->cnt.unknown_cookie++;
		spin_unlock_irqrestore(&dev->lock, flags);
		dprintk(dev, "cookie %llu: unknown or finished, dropped\n",
			hdr->cookie);
		return -ENOENT;
	}
	ctx = e->ctx;
	if (ctx->stream_id != hdr->stream_id) {
		dev->cnt.rejected_messages++;
		spin_unlock_irqrestore(&dev->lock, flags);
		dev_warn_ratelimited(dev->v4l2_dev.dev,
				     "cookie %llu: FRAME names stream %u, job is on stream %u\n",
				     hdr->cookie, hdr->stream_id, ctx->stream_id);
		return -EINVAL;
	}

	src = e->src;
	ret = dv_apply_frame(dev, e, resp);
	dv_frame_account(dev, e, resp, ret);
	if (ret == -EALREADY)
		src = NULL;
	else
		e->src = NULL;

	/* dst first: completing the src signals the request to the client */
	dv_complete_ready(dev);
	if (src)
		dv_src_done(ctx, src, src_error ? VB2_BUF_STATE_ERROR :
						  VB2_BUF_STATE_DONE);
	dv_arm_watchdog(dev);
	spin_unlock_irqrestore(&dev->lock, flags);
	return ret;
}
