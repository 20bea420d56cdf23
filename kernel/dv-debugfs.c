// SPDX-License-Identifier: GPL-2.0
/*
 * daedalus-v4l2: debugfs daedalus_v4l2/{inflight,counters,queues}, for the TUI
 * and for tests that check nothing is left behind.
 */

#include <linux/debugfs.h>
#include <linux/jiffies.h>
#include <linux/seq_file.h>
#include <linux/version.h>

#include "dv.h"

static const char *dv_codec_name(u32 codec)
{
	switch (codec) {
	case DV4L2_CODEC_VP9:
		return "vp9";
	case DV4L2_CODEC_H264:
		return "h264";
	case DV4L2_CODEC_AV1:
		return "av1";
	}
	return "?";
}

/*
 * A READY entry's dst waits for earlier entries of its context; say whether it
 * will complete with ERROR, so that a stuck stream shows which picture failed.
 */
static const char *dv_entry_shown_state(const struct dv_entry *e)
{
	if (e->state == DV_ENTRY_READY && e->error)
		return "error";
	return dv_entry_state_name(e->state);
}

/* One line per entry: cookie ctx codec out_idx cap_idx state age_ms */
static int dv_inflight_show(struct seq_file *s, void *unused)
{
	struct dv_dev *dev = s->private;
	unsigned long flags, now = jiffies;
	struct dv_entry *e;

	spin_lock_irqsave(&dev->lock, flags);
	list_for_each_entry(e, &dev->inflight, list)
		seq_printf(s, "%llu %u %s %u %u %s %u\n", e->cookie,
			   e->ctx->stream_id, dv_codec_name(e->codec),
			   e->out_idx, e->cap_idx, dv_entry_shown_state(e),
			   jiffies_to_msecs(now - e->sent_at));
	spin_unlock_irqrestore(&dev->lock, flags);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(dv_inflight);

static int dv_counters_show(struct seq_file *s, void *unused)
{
	struct dv_dev *dev = s->private;
	struct dv_counters c;
	unsigned long flags;

	spin_lock_irqsave(&dev->lock, flags);
	c = dev->cnt;
	spin_unlock_irqrestore(&dev->lock, flags);

	seq_printf(s, "jobs %llu\n", c.jobs);
	seq_printf(s, "done %llu\n", c.done);
	seq_printf(s, "errors %llu\n", c.errors);
	seq_printf(s, "watchdog_expiries %llu\n", c.watchdog_expiries);
	seq_printf(s, "unknown_cookie %llu\n", c.unknown_cookie);
	seq_printf(s, "duplicate_response %llu\n", c.duplicate_response);
	seq_printf(s, "rejected_messages %llu\n", c.rejected_messages);
	seq_printf(s, "parked %llu\n", c.parked);
	seq_printf(s, "parked_now %u\n", c.parked_now);
	seq_printf(s, "parked_max %u\n", c.parked_max);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(dv_counters);

static const char *dv_vb2_state_name(enum vb2_buffer_state state)
{
	switch (state) {
	case VB2_BUF_STATE_DEQUEUED:
		return "dequeued";
	case VB2_BUF_STATE_IN_REQUEST:
		return "in_request";
	case VB2_BUF_STATE_PREPARING:
	case VB2_BUF_STATE_QUEUED:
		return "queued";
	case VB2_BUF_STATE_ACTIVE:
		return "active";
	case VB2_BUF_STATE_DONE:
		return "done";
	case VB2_BUF_STATE_ERROR:
		return "error";
	}
	return "?";
}

/* Buffer indexes to look at: vb2 queues grew past VB2_MAX_FRAME in 6.8. */
static unsigned int dv_queue_slots(struct vb2_queue *q)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 8, 0)
	return q->max_num_buffers;
#else
	return q->num_buffers;
#endif
}

/* " OUT on 0:dequeued 1:queued ..." : a queue's streaming state and buffers */
static void dv_queue_show(struct seq_file *s, const char *name,
			  struct vb2_queue *q)
{
	struct vb2_buffer *vb;
	unsigned int i;

	seq_printf(s, " %s %s", name, vb2_is_streaming(q) ? "on" : "off");
	for (i = 0; i < dv_queue_slots(q); i++) {
		vb = vb2_get_buffer(q, i);
		if (vb)
			seq_printf(s, " %u:%s", i, dv_vb2_state_name(vb->state));
	}
	seq_putc(s, '\n');
}

/*
 * Two lines per open context: "ctx <stream> <codec>" + the OUTPUT queue, then
 * "ctx <stream> <codec>" + the CAPTURE queue.  dev_mutex keeps the context
 * list still (open adds and release removes under it) and each context's
 * vb_mutex its queues, as the ioctls that change them hold it.
 */
static int dv_queues_show(struct seq_file *s, void *unused)
{
	struct dv_dev *dev = s->private;
	struct v4l2_m2m_ctx *m2m;
	struct v4l2_fh *fh;
	struct dv_ctx *ctx;
	const char *codec;
	int ret;

	ret = mutex_lock_interruptible(&dev->dev_mutex);
	if (ret)
		return ret;
	list_for_each_entry(fh, &dev->vfd.fh_list, list) {
		ctx = container_of(fh, struct dv_ctx, fh);
		m2m = ctx->fh.m2m_ctx;
		codec = dv_codec_name(ctx->coded_desc->codec);
		mutex_lock(&ctx->vb_mutex);
		seq_printf(s, "ctx %u %s", ctx->stream_id, codec);
		dv_queue_show(s, "OUT", &m2m->out_q_ctx.q);
		seq_printf(s, "ctx %u %s", ctx->stream_id, codec);
		dv_queue_show(s, "CAP", &m2m->cap_q_ctx.q);
		mutex_unlock(&ctx->vb_mutex);
	}
	mutex_unlock(&dev->dev_mutex);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(dv_queues);

/* Without debugfs the driver works the same; nothing here can fail it. */
void dv_debugfs_init(struct dv_dev *dev)
{
	dev->debugfs_root = debugfs_create_dir(DV_NAME, NULL);
	debugfs_create_file("inflight", 0444, dev->debugfs_root, dev,
			    &dv_inflight_fops);
	debugfs_create_file("counters", 0444, dev->debugfs_root, dev,
			    &dv_counters_fops);
	debugfs_create_file("queues", 0444, dev->debugfs_root, dev,
			    &dv_queues_fops);
}

void dv_debugfs_exit(struct dv_dev *dev)
{
	debugfs_remove_recursive(dev->debugfs_root);
	dev->debugfs_root = NULL;
}
