// SPDX-License-Identifier: GPL-2.0
/*
 * daedalus-v4l2: /dev/daedalus-v4l2, the daemon's side.
 *
 * One opener. read() returns exactly one whole message from a bounded FIFO
 * (FIONREAD tells its size, for a DECODE larger than the reader's buffer);
 * write() takes exactly one whole message, checked field by field against
 * include/daedalus_v4l2_proto.h; mmap at a DECODE's capture_offset maps
 * that job's CAPTURE buffer for the daemon to write the picture into.
 */

#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <asm/ioctls.h>
#include <media/videobuf2-core.h>

#include "dv.h"

static struct dv_dev *dv_misc_to_dev(struct file *file)
{
	/* misc_open() leaves the struct miscdevice in private_data */
	return container_of(file->private_data, struct dv_dev, misc);
}

struct dv_msg *dv_msg_alloc(u16 type, u64 cookie, u32 stream_id, u32 payload_len)
{
	struct dv4l2_msg_header *hdr;
	size_t len = sizeof(*hdr) + payload_len;
	struct dv_msg *msg;

	if (payload_len > DV4L2_MAX_PAYLOAD)
		return NULL;

	/* a DECODE carries a whole bitstream: up to the OUTPUT buffer size */
	msg = kvmalloc(struct_size(msg, data, len), GFP_KERNEL);
	if (!msg)
		return NULL;

	msg->len = len;
	hdr = (struct dv4l2_msg_header *)msg->data;
	memset(hdr, 0, sizeof(*hdr));
	hdr->magic = DV4L2_MAGIC;
	hdr->version = DV4L2_VERSION;
	hdr->type = type;
	hdr->payload_len = payload_len;
	hdr->cookie = cookie;
	hdr->stream_id = stream_id;
	/* small payloads are zeroed here; a DECODE fills its own */
	if (type != DV4L2_MSG_DECODE)
		memset(dv_msg_payload(msg), 0, payload_len);
	return msg;
}

/* Queue a message for read(); false (caller keeps it) when the FIFO is full. */
bool dv_queue_msg_locked(struct dv_dev *dev, struct dv_msg *msg)
{
	lockdep_assert_held(&dev->lock);
	if (dev->outq_len >= DV_OUTQ_MAX)
		return false;

	list_add_tail(&msg->list, &dev->outq);
	dev->outq_len++;
	wake_up_interruptible(&dev->read_wait);
	return true;
}

void dv_free_msgs(struct list_head *msgs)
{
	struct dv_msg *msg, *tmp;

	list_for_each_entry_safe(msg, tmp, msgs, list) {
		list_del(&msg->list);
		kvfree(msg);
	}
}

static int dv_chr_open(struct inode *inode, struct file *file)
{
	struct dv_dev *dev = dv_misc_to_dev(file);
	unsigned long flags;
	int ret = 0;

	spin_lock_irqsave(&dev->lock, flags);
	if (dev->daemon_attached) {
		ret = -EBUSY;
	} else {
		dev->daemon_attached = true;
		/* every context sends STREAM_OPEN again to this daemon */
		dev->daemon_gen++;
	}
	spin_unlock_irqrestore(&dev->lock, flags);

	if (!ret)
		dev_info(dev->v4l2_dev.dev, "daemon attached (pid %d)\n",
			 task_pid_nr(current));
	return ret ?: stream_open(inode, file);
}

static int dv_chr_release(struct inode *inode, struct file *file)
{
	struct dv_dev *dev = dv_misc_to_dev(file);
	unsigned long flags;
	LIST_HEAD(dropped);
	unsigned int n;

	spin_lock_irqsave(&dev->lock, flags);
	dev->daemon_attached = false;
	list_splice_init(&dev->outq, &dropped);
	n = dev->outq_len;
	dev->outq_len = 0;
	dv_fail_all(dev);
	spin_unlock_irqrestore(&dev->lock, flags);

	dv_free_msgs(&dropped);
	dev_info(dev->v4l2_dev.dev,
		 "daemon detached; in-flight jobs failed, %u queued messages dropped\n",
		 n);
	return 0;
}

/* Take the next message if it fits in count bytes. */
static struct dv_msg *dv_outq_pop(struct dv_dev *dev, size_t count, int *err)
{
	struct dv_msg *msg;
	unsigned long flags;

	spin_lock_irqsave(&dev->lock, flags);
	msg = list_first_entry_or_null(&dev->outq, struct dv_msg, list);
	if (!msg) {
		*err = -EAGAIN;
	} else if (msg->len > count) {
		/* the message stays queued for a bigger buffer */
		*err = -EMSGSIZE;
		msg = NULL;
	} else {
		list_del(&msg->list);
		dev->outq_len--;
	}
	spin_unlock_irqrestore(&dev->lock, flags);
	return msg;
}

static bool dv_outq_empty(struct dv_dev *dev)
{
	unsigned long flags;
	bool empty;

	spin_lock_irqsave(&dev->lock, flags);
	empty = list_empty(&dev->outq);
	spin_unlock_irqrestore(&dev->lock, flags);
	return empty;
}

static void dv_outq_push_front(struct dv_dev *dev, struct dv_msg *msg)
{
	unsigned long flags;

	spin_lock_irqsave(&dev->lock, flags);
	list_add(&msg->list, &dev->outq);
	dev->outq_len++;
	spin_unlock_irqrestore(&dev->lock, flags);
}

static ssize_t dv_chr_read(struct file *file, char __user *buf, size_t count,
			   loff_t *ppos)
{
	struct dv_dev *dev = dv_misc_to_dev(file);
	struct dv_msg *msg;
	ssize_t ret;
	int err;

	if (mutex_lock_interruptible(&dev->read_mutex))
		return -ERESTARTSYS;

	while (!(msg = dv_outq_pop(dev, count, &err))) {
		ret = err;
		if (err != -EAGAIN || (file->f_flags & O_NONBLOCK))
			goto unlock;
		ret = wait_event_interruptible(dev->read_wait, !dv_outq_empty(dev));
		if (ret)
			goto unlock;
	}

	if (copy_to_user(buf, msg->data, msg->len)) {
		/* not lost: the next read gets it again */
		dv_outq_push_front(dev, msg);
		ret = -EFAULT;
		goto unlock;
	}
	ret = msg->len;
	kvfree(msg);
unlock:
	mutex_unlock(&dev->read_mutex);
	return ret;
}

/* Every message the daemon may send fits this. */
struct dv_in_msg {
	struct dv4l2_msg_header hdr;
	union {
		struct dv4l2_frame_resp frame;
	} p;
};

static void dv_count_rejected(struct dv_dev *dev)
{
	unsigned long flags;

	spin_lock_irqsave(&dev->lock, flags);
	dev->cnt.rejected_messages++;
	spin_unlock_irqrestore(&dev->lock, flags);
}

#define dv_reject(dev, fmt, arg...)					\
	({								\
		dv_count_rejected(dev);					\
		dev_warn_ratelimited((dev)->v4l2_dev.dev,		\
				     "rejected message: " fmt, ## arg);	\
		-EINVAL;						\
	})

static u32 dv_in_payload_len(u16 type)
{
	switch (type) {
	case DV4L2_MSG_FRAME:
		return sizeof(struct dv4l2_frame_resp);
	case DV4L2_MSG_PING:
	case DV4L2_MSG_PONG:
	case DV4L2_MSG_FLUSH_DONE:
		return 0;
	default:
		return U32_MAX;	/* the kernel sends these, never takes them */
	}
}

static int dv_check_header(struct dv_dev *dev, const struct dv4l2_msg_header *hdr,
			   size_t count)
{
	u32 want;

	if (hdr->magic != DV4L2_MAGIC)
		return dv_reject(dev, "magic %#x\n", hdr->magic);
	if (hdr->version != DV4L2_VERSION)
		return dv_reject(dev, "version %u, driver speaks %u\n",
				 hdr->version, DV4L2_VERSION);
	if (hdr->flags || hdr->reserved)
		return dv_reject(dev, "type %u: flags %#x reserved %#x must be 0\n",
				 hdr->type, hdr->flags, hdr->reserved);
	want = dv_in_payload_len(hdr->type);
	if (want == U32_MAX)
		return dv_reject(dev, "type %u is not a daemon-to-kernel message\n",
				 hdr->type);
	if (hdr->payload_len != want || count != sizeof(*hdr) + want)
		return dv_reject(dev, "type %u: payload_len %u, write of %zu bytes, expected %u\n",
				 hdr->type, hdr->payload_len, count, want);
	return 0;
}

static int dv_check_frame(struct dv_dev *dev, const struct dv4l2_msg_header *hdr,
			  const struct dv4l2_frame_resp *r)
{
	const u32 known = DV4L2_FRAME_SRC_CONSUMED | DV4L2_FRAME_HAS_PIXELS |
			  DV4L2_FRAME_ERROR;
	unsigned int i;

	if (!r->flags || (r->flags & ~known))
		return dv_reject(dev, "cookie %llu: FRAME flags %#x\n",
				 hdr->cookie, r->flags);
	if (r->status > 0 || r->status < -MAX_ERRNO)
		return dv_reject(dev, "cookie %llu: FRAME status %d\n",
				 hdr->cookie, r->status);
	if (r->num_planes > DV4L2_MAX_PLANES || r->reserved)
		return dv_reject(dev, "cookie %llu: FRAME num_planes %u reserved %#x\n",
				 hdr->cookie, r->num_planes, r->reserved);
	if ((r->flags & DV4L2_FRAME_HAS_PIXELS) && r->num_planes < 1)
		return dv_reject(dev, "cookie %llu: FRAME with pixels but no plane\n",
				 hdr->cookie);
	for (i = r->num_planes; i < DV4L2_MAX_PLANES; i++)
		if (r->plane_bytes[i])
			return dv_reject(dev, "cookie %llu: FRAME plane_bytes[%u] past num_planes\n",
					 hdr->cookie, i);
	if (!memchr(r->reason, '\0', sizeof(r->reason)))
		return dv_reject(dev, "cookie %llu: FRAME reason not NUL-terminated\n",
				 hdr->cookie);
	return 0;
}

static int dv_send_pong(struct dv_dev *dev, const struct dv4l2_msg_header *ping)
{
	struct dv_msg *msg;
	unsigned long flags;
	bool queued;

	msg = dv_msg_alloc(DV4L2_MSG_PONG, ping->cookie, ping->stream_id, 0);
	if (!msg)
		return -ENOMEM;

	spin_lock_irqsave(&dev->lock, flags);
	queued = dv_queue_msg_locked(dev, msg);
	spin_unlock_irqrestore(&dev->lock, flags);

	if (!queued) {
		kvfree(msg);
		return -ENOSPC;
	}
	return 0;
}

static int dv_dispatch(struct dv_dev *dev, const struct dv_in_msg *m)
{
	int ret;

	switch (m->hdr.type) {
	case DV4L2_MSG_PING:
		return dv_send_pong(dev, &m->hdr);
	case DV4L2_MSG_PONG:
		return 0;
	case DV4L2_MSG_FLUSH_DONE:
		dprintk(dev, "stream %u: flush done\n", m->hdr.stream_id);
		return 0;
	case DV4L2_MSG_FRAME:
		ret = dv_check_frame(dev, &m->hdr, &m->p.frame);
		if (ret)
			return ret;
		return dv_handle_frame(dev, &m->hdr, &m->p.frame);
	}
	return -EINVAL;	/* dv_check_header() let no other type through */
}

static ssize_t dv_chr_write(struct file *file, const char __user *buf,
			    size_t count, loff_t *ppos)
{
	struct dv_dev *dev = dv_misc_to_dev(file);
	struct dv_in_msg m;
	int ret;

	if (count < sizeof(m.hdr) || count > sizeof(m))
		return dv_reject(dev, "write of %zu bytes is no message\n", count);

	memset(&m, 0, sizeof(m));
	if (copy_from_user(&m, buf, count))
		return -EFAULT;

	ret = dv_check_header(dev, &m.hdr, count);
	if (ret)
		return ret;

	ret = dv_dispatch(dev, &m);
	return ret ? ret : count;
}

/* FIONREAD: the size of the next message, 0 if none. */
static long dv_chr_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct dv_dev *dev = dv_misc_to_dev(file);
	struct dv_msg *msg;
	unsigned long flags;
	int len = 0;

	if (cmd != FIONREAD)
		return -ENOTTY;

	spin_lock_irqsave(&dev->lock, flags);
	msg = list_first_entry_or_null(&dev->outq, struct dv_msg, list);
	if (msg)
		len = msg->len;
	spin_unlock_irqrestore(&dev->lock, flags);

	return put_user(len, (int __user *)arg);
}

static __poll_t dv_chr_poll(struct file *file, poll_table *wait)
{
	struct dv_dev *dev = dv_misc_to_dev(file);
	__poll_t mask = EPOLLOUT | EPOLLWRNORM;

	poll_wait(file, &dev->read_wait, wait);
	if (!dv_outq_empty(dev))
		mask |= EPOLLIN | EPOLLRDNORM;
	return mask;
}

/*
 * Map the CAPTURE buffer of the in-flight job whose cookie is the page
 * offset (capture_offset = cookie << PAGE_SHIFT). vb2's own mmap op does
 * the work: for vmalloc (and dma-contig) its VMA holds a reference on the
 * buffer's memory, so a mapping that outlives the job or the buffer never
 * points at freed pages; writes after FRAME only spoil a picture the client
 * owns again. buf_lock keeps stop_streaming, the only way to a buffer
 * being freed, out while mem_priv is in use.
 */
static int dv_chr_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct dv_dev *dev = dv_misc_to_dev(file);
	unsigned long len = vma->vm_end - vma->vm_start;
	u64 cookie = vma->vm_pgoff;
	struct vb2_buffer *vb = NULL;
	unsigned long flags;
	struct dv_entry *e;
	int ret;

	/* a private mapping would copy on write: the client would see nothing */
	if (!(vma->vm_flags & VM_SHARED))
		return dv_reject(dev, "cookie %llu: mmap must be MAP_SHARED\n", cookie);

	mutex_lock(&dev->buf_lock);
	spin_lock_irqsave(&dev->lock, flags);
	e = dv_find_entry(dev, cookie);
	if (e && e->dst)
		vb = &e->dst->vb2_buf;
	else
		dev->cnt.unknown_cookie++;
	spin_unlock_irqrestore(&dev->lock, flags);

	/*
	 * A job that is not in flight (any more) is what a FRAME for a finished
	 * cookie meets: a daemon whose picture came out after STREAMOFF cancelled
	 * its job, on every seek. The same quiet ENOENT, not a rejection.
	 */
	if (!vb) {
		dprintk(dev, "mmap at cookie %llu: no such job in flight\n", cookie);
		ret = -ENOENT;
		goto unlock;
	}
	if (len > PAGE_ALIGN(vb2_plane_size(vb, 0))) {
		ret = dv_reject(dev, "cookie %llu: mmap of %lu bytes, buffer has %lu\n",
				cookie, len, vb2_plane_size(vb, 0));
		goto unlock;
	}

	/* the offset chose the buffer; the mapping starts at its beginning */
	vma->vm_pgoff = 0;
	ret = vb->vb2_queue->mem_ops->mmap(vb->planes[0].mem_priv, vma);
unlock:
	mutex_unlock(&dev->buf_lock);
	return ret;
}

static const struct file_operations dv_chr_fops = {
	.owner		= THIS_MODULE,
	.open		= dv_chr_open,
	.release	= dv_chr_release,
	.read		= dv_chr_read,
	.write		= dv_chr_write,
	.poll		= dv_chr_poll,
	.unlocked_ioctl	= dv_chr_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.mmap		= dv_chr_mmap,
	/* stream_open(): no seeking, no pread/pwrite */
};

int dv_chardev_register(struct dv_dev *dev)
{
	int ret;

	dev->misc.minor = MISC_DYNAMIC_MINOR;
	dev->misc.name = DV_CHARDEV_NAME;
	dev->misc.fops = &dv_chr_fops;
	dev->misc.mode = 0600;
	dev->misc.parent = dev->v4l2_dev.dev;

	ret = misc_register(&dev->misc);
	if (ret)
		v4l2_err(&dev->v4l2_dev, "Failed to register /dev/%s: %d\n",
			 DV_CHARDEV_NAME, ret);
	return ret;
}

void dv_chardev_unregister(struct dv_dev *dev)
{
	misc_deregister(&dev->misc);
}
