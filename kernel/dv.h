/* SPDX-License-Identifier: GPL-2.0 */
/*
 * daedalus-v4l2: a V4L2 stateless decoder whose decoding runs in a
 * userspace daemon reached through /dev/daedalus-v4l2.
 *
 * The behaviour is specified in docs/driver-model.md; the wire protocol is
 * include/daedalus_v4l2_proto.h. The structure follows visl.
 */
#ifndef _DV_H_
#define _DV_H_

#include <linux/list.h>
#include <linux/miscdevice.h>
#include <linux/mutex.h>
#include <linux/sizes.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <media/media-device.h>
#include <media/v4l2-ctrls.h>
#include <media/v4l2-device.h>
#include <media/v4l2-mem2mem.h>
#include <media/videobuf2-core.h>

#include "daedalus_v4l2_proto.h"

#define DV_NAME			"daedalus_v4l2"
#define DV_CARD			"daedalus-v4l2"
#define DV_CHARDEV_NAME		"daedalus-v4l2"

#define DV_MIN_DIM		16
#define DV_MAX_DIM		4096
#define DV_DEF_WIDTH		1280
#define DV_DEF_HEIGHT		720
#define DV_MIN_CODED_SIZE	SZ_1M
#define DV_MAX_CODED_SIZE	SZ_64M
/* Messages waiting for the daemon; more means it stopped reading. */
#define DV_OUTQ_MAX		64

extern unsigned int dv_debug;
extern unsigned int dv_watchdog_ms;
extern bool dv_digest;

#define dprintk(dev, fmt, arg...) \
	v4l2_dbg(1, dv_debug, &(dev)->v4l2_dev, "%s: " fmt, __func__, ## arg)

struct dv_ctrl_desc {
	u32 fourcc;		/* the OUTPUT format this control belongs to */
	bool required;		/* a request without it fails validation */
	struct v4l2_ctrl_config cfg;
};

extern const struct dv_ctrl_desc dv_ctrl_descs[];
extern const unsigned int dv_num_ctrls;

struct dv_coded_fmt {
	u32 fourcc;
	u32 codec;		/* DV4L2_CODEC_* */
	const char *name;
};

extern const struct dv_coded_fmt dv_coded_fmts[];
extern const unsigned int dv_num_coded_fmts;

struct dv_counters {
	u64 jobs;
	u64 done;
	u64 errors;
	u64 watchdog_expiries;
	u64 unknown_cookie;
	u64 duplicate_response;
	u64 rejected_messages;
	u64 parked;		/* entries ever parked (SRC_CONSUMED before their picture) */
	u32 parked_now;
	u32 parked_max;
};

struct dv_dev {
	struct v4l2_device	v4l2_dev;
	struct video_device	vfd;
	struct media_device	mdev;
	struct v4l2_m2m_dev	*m2m_dev;
	struct miscdevice	misc;
	struct dentry		*debugfs_root;
	u32			next_stream_id;	/* under dev_mutex */

	/* vfd->lock: format ioctls, open and release of contexts */
	struct mutex		dev_mutex;
	/*
	 * Held while the daemon maps a CAPTURE buffer and while stop_streaming
	 * hands in-flight buffers back, so a buffer cannot be freed (which
	 * needs stop_streaming first) in the middle of the mapping.
	 */
	struct mutex		buf_lock;
	/* one reader at a time, so a message is never split or reordered */
	struct mutex		read_mutex;
	wait_queue_head_t	read_wait;
	struct delayed_work	watchdog;

	/* Everything below is protected by lock. */
	spinlock_t		lock;
	bool			daemon_attached;
	u64			daemon_gen;	/* bumped at each open of the chardev */
	u64			next_cookie;
	struct list_head	inflight;	/* struct dv_entry, in cookie order */
	struct list_head	outq;		/* struct dv_msg, to the daemon */
	unsigned int		outq_len;
	struct dv_counters	cnt;
};

struct dv_ctx {
	struct v4l2_fh		fh;
	struct dv_dev		*dev;
	struct v4l2_ctrl_handler hdl;
	struct v4l2_ctrl	**ctrls;	/* parallel to dv_ctrl_descs */
	struct mutex		vb_mutex;	/* both vb2 queues */

	const struct dv_coded_fmt *coded_desc;
	struct v4l2_format	coded_fmt;
	struct v4l2_format	decoded_fmt;
	u32			stream_id;
	u32			out_seq;
	u32			cap_seq;
	/* OUTPUT buffers last queued with V4L2_BUF_FLAG_M2M_HOLD_CAPTURE_BUF */
	DECLARE_BITMAP(hold_bits, VB2_MAX_FRAME);

	/* Below: protected by dev->lock. */
	u64			session_gen;	/* daemon_gen STREAM_OPEN went to */
	struct dv_entry		*held;		/* entry whose dst is held */
	/* read without the lock by job_ready, which runs under m2m's lock */
	bool			held_valid;
	bool			in_run;		/* device_run has not returned */
	bool			finish_pending;	/* job_finish deferred to device_run */
	bool			flush_pending;	/* FLUSH after the last queued src */
	bool			blocked;	/* scratch for dv_complete_ready */
};

enum dv_entry_state {
	DV_ENTRY_SENT,		/* DECODE queued to the daemon */
	DV_ENTRY_PARKED,	/* src consumed, picture not ready yet */
	DV_ENTRY_HELD,		/* src consumed, more slices of this picture follow */
	DV_ENTRY_READY,		/* dst may complete once earlier ones have */
};

struct dv_entry {
	struct list_head	list;
	u64			cookie;
	struct dv_ctx		*ctx;
	struct vb2_v4l2_buffer	*src;	/* NULL once returned */
	struct vb2_v4l2_buffer	*dst;
	enum dv_entry_state	state;
	bool			hold;	/* src had V4L2_BUF_FLAG_M2M_HOLD_CAPTURE_BUF */
	bool			more_queued;	/* another job was ready when this one was claimed */
	bool			error;
	u32			bytesused;
	u32			codec;
	u32			out_idx;
	u32			cap_idx;
	unsigned long		sent_at;	/* jiffies */
	/* ours in the src's request, completed with the dst: dv_bind_picture() */
	struct media_request_object *picture;
};

/* A message to the daemon: header and payload as they go to read(). */
struct dv_msg {
	struct list_head	list;
	size_t			len;
	u8			data[] __aligned(8);
};

static inline struct dv_ctx *dv_file_to_ctx(struct file *file)
{
	return container_of(file->private_data, struct dv_ctx, fh);
}

/* dv-video.c */
extern const struct v4l2_ioctl_ops dv_ioctl_ops;
int dv_queue_init(void *priv, struct vb2_queue *src_vq, struct vb2_queue *dst_vq);
void dv_set_default_format(struct dv_ctx *ctx);
const struct dv_coded_fmt *dv_find_coded_fmt(u32 fourcc);

/* dv-bridge.c */
void dv_device_run(void *priv);
int dv_job_ready(void *priv);
void dv_job_abort(void *priv);
void dv_cancel_ctx(struct dv_ctx *ctx);
int dv_flush(struct dv_ctx *ctx);
void dv_stream_close(struct dv_ctx *ctx);
void dv_reset_session(struct dv_ctx *ctx);
int dv_handle_frame(struct dv_dev *dev, const struct dv4l2_msg_header *hdr,
		    const struct dv4l2_frame_resp *resp);
void dv_fail_all(struct dv_dev *dev);
void dv_watchdog_work(struct work_struct *work);
const char *dv_entry_state_name(enum dv_entry_state state);
struct dv_entry *dv_find_entry(struct dv_dev *dev, u64 cookie);

/* dv-chardev.c */
int dv_chardev_register(struct dv_dev *dev);
void dv_chardev_unregister(struct dv_dev *dev);
struct dv_msg *dv_msg_alloc(u16 type, u64 cookie, u32 stream_id, u32 payload_len);
static inline void *dv_msg_payload(struct dv_msg *msg)
{
	return msg->data + sizeof(struct dv4l2_msg_header);
}
bool dv_queue_msg_locked(struct dv_dev *dev, struct dv_msg *msg);
void dv_free_msgs(struct list_head *msgs);

/* dv-debugfs.c */
void dv_debugfs_init(struct dv_dev *dev);
void dv_debugfs_exit(struct dv_dev *dev);

#endif /* _DV_H_ */
