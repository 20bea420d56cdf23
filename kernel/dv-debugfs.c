// SPDX-License-Identifier: GPL-2.0
/*
 * daedalus-v4l2: debugfs daedalus_v4l2/{inflight,counters}, for the TUI and
 * for tests that check nothing is left behind.
 */

#include <linux/debugfs.h>
#include <linux/jiffies.h>
#include <linux/seq_file.h>

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
			   e->out_idx, e->cap_idx, dv_entry_state_name(e->state),
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
	seq_printf(s, "parked_now %u\n", c.parked_now);
	seq_printf(s, "parked_max %u\n", c.parked_max);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(dv_counters);

/* Without debugfs the driver works the same; nothing here can fail it. */
void dv_debugfs_init(struct dv_dev *dev)
{
	dev->debugfs_root = debugfs_create_dir(DV_NAME, NULL);
	debugfs_create_file("inflight", 0444, dev->debugfs_root, dev,
			    &dv_inflight_fops);
	debugfs_create_file("counters", 0444, dev->debugfs_root, dev,
			    &dv_counters_fops);
}

void dv_debugfs_exit(struct dv_dev *dev)
{
	debugfs_remove_recursive(dev->debugfs_root);
	dev->debugfs_root = NULL;
}
