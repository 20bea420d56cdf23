// SPDX-License-Identifier: GPL-2.0
/*
 * daedalus-v4l2: module, platform device, V4L2/media registration, contexts
 * and controls. Modelled on visl (drivers/media/test-drivers/visl).
 */

#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/slab.h>
#include <linux/version.h>
#include <media/v4l2-ctrls.h>
#include <media/v4l2-device.h>
#include <media/v4l2-ioctl.h>
#include <media/v4l2-mem2mem.h>
#include <media/videobuf2-v4l2.h>

#include "dv.h"

unsigned int dv_debug;
module_param_named(debug, dv_debug, uint, 0644);
MODULE_PARM_DESC(debug, " activates debug info (dprintk)");

/* Nothing here reads the digest; hashing a 1080p picture costs the daemon more than copying it. */
bool dv_digest;
module_param_named(digest, dv_digest, bool, 0644);
MODULE_PARM_DESC(digest, " ask the daemon for every picture's digest (debugging)");

unsigned int dv_watchdog_ms = 2000;
module_param_named(watchdog_ms, dv_watchdog_ms, uint, 0644);
MODULE_PARM_DESC(watchdog_ms,
		 " an in-flight job older than this completes with ERROR");

/*
 * Every control of every codec is registered on each context, as visl does;
 * the OUTPUT format picks which ones travel in a DECODE message and which
 * are required by request validation.
 */
const struct dv_ctrl_desc dv_ctrl_descs[] = {
	{
		.fourcc = V4L2_PIX_FMT_VP9_FRAME,
		.required = true,
		.cfg.id = V4L2_CID_STATELESS_VP9_FRAME,
	},
	{
		.fourcc = V4L2_PIX_FMT_VP9_FRAME,
		.cfg.id = V4L2_CID_STATELESS_VP9_COMPRESSED_HDR,
	},
	{
		/*
		 * Not required in every request: a request without it keeps the
		 * current value, and GStreamer's v4l2slh264dec sets the SPS only
		 * when the sequence changes.
		 */
		.fourcc = V4L2_PIX_FMT_H264_SLICE,
		.cfg.id = V4L2_CID_STATELESS_H264_SPS,
	},
	{
		.fourcc = V4L2_PIX_FMT_H264_SLICE,
		.required = true,
		.cfg.id = V4L2_CID_STATELESS_H264_PPS,
	},
	{
		.fourcc = V4L2_PIX_FMT_H264_SLICE,
		.cfg.id = V4L2_CID_STATELESS_H264_SCALING_MATRIX,
	},
	{
		.fourcc = V4L2_PIX_FMT_H264_SLICE,
		.required = true,
		.cfg.id = V4L2_CID_STATELESS_H264_DECODE_PARAMS,
	},
	{
		.fourcc = V4L2_PIX_FMT_H264_SLICE,
		.cfg.id = V4L2_CID_STATELESS_H264_SLICE_PARAMS,
	},
	{
		.fourcc = V4L2_PIX_FMT_H264_SLICE,
		.cfg.id = V4L2_CID_STATELESS_H264_PRED_WEIGHTS,
	},
	{
		.fourcc = V4L2_PIX_FMT_H264_SLICE,
		.cfg.id = V4L2_CID_STATELESS_H264_DECODE_MODE,
		.cfg.min = V4L2_STATELESS_H264_DECODE_MODE_SLICE_BASED,
		.cfg.max = V4L2_STATELESS_H264_DECODE_MODE_FRAME_BASED,
		.cfg.def = V4L2_STATELESS_H264_DECODE_MODE_FRAME_BASED,
	},
	{
		.fourcc = V4L2_PIX_FMT_H264_SLICE,
		.cfg.id = V4L2_CID_STATELESS_H264_START_CODE,
		.cfg.min = V4L2_STATELESS_H264_START_CODE_NONE,
		.cfg.max = V4L2_STATELESS_H264_START_CODE_ANNEX_B,
		.cfg.def = V4L2_STATELESS_H264_START_CODE_ANNEX_B,
	},
#ifdef V4L2_PIX_FMT_AV1_FRAME
	{
		.fourcc = V4L2_PIX_FMT_AV1_FRAME,
		.required = true,
		.cfg.id = V4L2_CID_STATELESS_AV1_SEQUENCE,
	},
	{
		.fourcc = V4L2_PIX_FMT_AV1_FRAME,
		.required = true,
		.cfg.id = V4L2_CID_STATELESS_AV1_FRAME,
	},
	{
		.fourcc = V4L2_PIX_FMT_AV1_FRAME,
		.cfg.id = V4L2_CID_STATELESS_AV1_TILE_GROUP_ENTRY,
		.cfg.dims = { V4L2_AV1_MAX_TILE_COUNT },
	},
	{
		.fourcc = V4L2_PIX_FMT_AV1_FRAME,
		.cfg.id = V4L2_CID_STATELESS_AV1_FILM_GRAIN,
	},
#endif
};

const unsigned int dv_num_ctrls = ARRAY_SIZE(dv_ctrl_descs);

static int dv_init_ctrls(struct dv_ctx *ctx)
{
	struct v4l2_ctrl_handler *hdl = &ctx->hdl;
	unsigned int i;

	v4l2_ctrl_handler_init(hdl, dv_num_ctrls);
	for (i = 0; i < dv_num_ctrls; i++)
		ctx->ctrls[i] = v4l2_ctrl_new_custom(hdl, &dv_ctrl_descs[i].cfg,
						     NULL);

	if (hdl->error) {
		int ret = hdl->error;

		v4l2_err(&ctx->dev->v4l2_dev,
			 "Failed to initialize control handler: %d\n", ret);
		v4l2_ctrl_handler_free(hdl);
		return ret;
	}

	ctx->fh.ctrl_handler = hdl;
	return v4l2_ctrl_handler_setup(hdl);
}

/* The context that owns the (single) buffer of a request, if any. */
static struct dv_ctx *dv_request_ctx(struct media_request *req)
{
	struct media_request_object *obj;
	struct vb2_buffer *vb;

	list_for_each_entry(obj, &req->objects, list) {
		if (vb2_request_object_is_buffer(obj)) {
			vb = container_of(obj, struct vb2_buffer, req_obj);
			return vb2_get_drv_priv(vb->vb2_queue);
		}
	}
	return NULL;
}

static int dv_check_required_ctrls(struct dv_ctx *ctx,
				   struct media_request *req)
{
	struct v4l2_ctrl_handler *hdl;
	unsigned int i;
	int ret = 0;

	hdl = v4l2_ctrl_request_hdl_find(req, &ctx->hdl);
	if (!hdl) {
		dev_warn_ratelimited(ctx->dev->v4l2_dev.dev,
				     "stream %u: request has no controls\n",
				     ctx->stream_id);
		return -EINVAL;
	}

	for (i = 0; i < dv_num_ctrls; i++) {
		const struct dv_ctrl_desc *desc = &dv_ctrl_descs[i];

		if (desc->fourcc != ctx->coded_desc->fourcc || !desc->required)
			continue;
		if (!v4l2_ctrl_request_hdl_ctrl_find(hdl, desc->cfg.id)) {
			dev_warn_ratelimited(ctx->dev->v4l2_dev.dev,
					     "stream %u: request lacks required control %#x\n",
					     ctx->stream_id, desc->cfg.id);
			ret = -EINVAL;
			break;
		}
	}

	v4l2_ctrl_request_hdl_put(hdl);
	return ret;
}

static int dv_request_validate(struct media_request *req)
{
	struct dv_ctx *ctx = dv_request_ctx(req);
	unsigned int count;
	int ret;

	if (!ctx)
		return -ENOENT;

	count = vb2_request_buffer_cnt(req);
	if (!count) {
		dev_warn_ratelimited(ctx->dev->v4l2_dev.dev,
				     "stream %u: request without an OUTPUT buffer\n",
				     ctx->stream_id);
		return -ENOENT;
	}
	if (count > 1) {
		dev_warn_ratelimited(ctx->dev->v4l2_dev.dev,
				     "stream %u: request with %u buffers\n",
				     ctx->stream_id, count);
		return -EINVAL;
	}

	ret = dv_check_required_ctrls(ctx, req);
	if (ret)
		return ret;

	return vb2_request_validate(req);
}

static int dv_open(struct file *file)
{
	struct dv_dev *dev = video_drvdata(file);
	struct dv_ctx *ctx;
	int ret;

	if (mutex_lock_interruptible(&dev->dev_mutex))
		return -ERESTARTSYS;

	ctx = kzalloc(sizeof(*ctx), GFP_KERNEL);
	if (!ctx) {
		ret = -ENOMEM;
		goto unlock;
	}
	ctx->ctrls = kcalloc(dv_num_ctrls, sizeof(*ctx->ctrls), GFP_KERNEL);
	if (!ctx->ctrls) {
		ret = -ENOMEM;
		goto free_ctx;
	}

	v4l2_fh_init(&ctx->fh, video_devdata(file));
	file->private_data = &ctx->fh;
	ctx->dev = dev;
	ctx->stream_id = ++dev->next_stream_id;
	mutex_init(&ctx->vb_mutex);

	ret = dv_init_ctrls(ctx);
	if (ret)
		goto exit_fh;

	ctx->fh.m2m_ctx = v4l2_m2m_ctx_init(dev->m2m_dev, ctx, dv_queue_init);
	if (IS_ERR(ctx->fh.m2m_ctx)) {
		ret = PTR_ERR(ctx->fh.m2m_ctx);
		goto free_hdl;
	}
	/*
	 * A held CAPTURE buffer is not on the ready queue (device_run claims
	 * buffers), so a job may be ready without a queued CAPTURE buffer:
	 * dv_job_ready() decides.
	 */
	v4l2_m2m_set_dst_buffered(ctx->fh.m2m_ctx, true);

	dv_set_default_format(ctx);
	v4l2_fh_add(&ctx->fh);
	dprintk(dev, "stream %u: opened, ctx %p\n", ctx->stream_id, ctx);
	mutex_unlock(&dev->dev_mutex);
	return 0;

free_hdl:
	v4l2_ctrl_handler_free(&ctx->hdl);
exit_fh:
	mutex_destroy(&ctx->vb_mutex);
	v4l2_fh_exit(&ctx->fh);
	kfree(ctx->ctrls);
free_ctx:
	kfree(ctx);
unlock:
	mutex_unlock(&dev->dev_mutex);
	return ret;
}

static int dv_release(struct file *file)
{
	struct dv_dev *dev = video_drvdata(file);
	struct dv_ctx *ctx = dv_file_to_ctx(file);

	dprintk(dev, "stream %u: releasing\n", ctx->stream_id);

	/* debugfs "queues" walks the open contexts under dev_mutex */
	mutex_lock(&dev->dev_mutex);
	v4l2_fh_del(&ctx->fh);
	mutex_unlock(&dev->dev_mutex);
	/*
	 * Cancels the running job (job_abort) and stops both queues, which
	 * returns every buffer; vb2 expects the queue lock here.
	 */
	mutex_lock(&ctx->vb_mutex);
	v4l2_m2m_ctx_release(ctx->fh.m2m_ctx);
	mutex_unlock(&ctx->vb_mutex);

	dv_stream_close(ctx);

	v4l2_ctrl_handler_free(&ctx->hdl);
	v4l2_fh_exit(&ctx->fh);
	mutex_destroy(&ctx->vb_mutex);
	kfree(ctx->ctrls);
	kfree(ctx);
	return 0;
}

static const struct v4l2_file_operations dv_fops = {
	.owner		= THIS_MODULE,
	.open		= dv_open,
	.release	= dv_release,
	.poll		= v4l2_m2m_fop_poll,
	.unlocked_ioctl	= video_ioctl2,
	.mmap		= v4l2_m2m_fop_mmap,
};

static void dv_device_release(struct video_device *vdev)
{
	struct dv_dev *dev = container_of(vdev, struct dv_dev, vfd);

	v4l2_device_unregister(&dev->v4l2_dev);
	v4l2_m2m_release(dev->m2m_dev);
	media_device_cleanup(&dev->mdev);
	mutex_destroy(&dev->read_mutex);
	mutex_destroy(&dev->buf_lock);
	mutex_destroy(&dev->dev_mutex);
	kfree(dev);
}

static const struct video_device dv_videodev = {
	.name		= DV_NAME,
	.vfl_dir	= VFL_DIR_M2M,
	.fops		= &dv_fops,
	.ioctl_ops	= &dv_ioctl_ops,
	.minor		= -1,
	.release	= dv_device_release,
	.device_caps	= V4L2_CAP_VIDEO_M2M_MPLANE | V4L2_CAP_STREAMING,
};

static const struct v4l2_m2m_ops dv_m2m_ops = {
	.device_run	= dv_device_run,
	.job_ready	= dv_job_ready,
	.job_abort	= dv_job_abort,
};

static const struct media_device_ops dv_media_ops = {
	.req_validate	= dv_request_validate,
	.req_queue	= v4l2_m2m_request_queue,
};

static void dv_dev_init_state(struct dv_dev *dev)
{
	mutex_init(&dev->dev_mutex);
	mutex_init(&dev->buf_lock);
	mutex_init(&dev->read_mutex);
	spin_lock_init(&dev->lock);
	init_waitqueue_head(&dev->read_wait);
	INIT_LIST_HEAD(&dev->inflight);
	INIT_LIST_HEAD(&dev->outq);
	INIT_DELAYED_WORK(&dev->watchdog, dv_watchdog_work);
	dev->next_cookie = 1;
}

static void dv_media_init(struct dv_dev *dev, struct platform_device *pdev)
{
	dev->mdev.dev = &pdev->dev;
	strscpy(dev->mdev.model, DV_CARD, sizeof(dev->mdev.model));
	strscpy(dev->mdev.bus_info, "platform:" DV_NAME,
		sizeof(dev->mdev.bus_info));
	media_device_init(&dev->mdev);
	dev->mdev.ops = &dv_media_ops;
	dev->v4l2_dev.mdev = &dev->mdev;
}

/*
 * Everything after the video node. On failure the video node is
 * unregistered too, and dv_device_release() then frees dev.
 */
static int dv_register_nodes(struct dv_dev *dev)
{
	int ret;

	ret = v4l2_m2m_register_media_controller(dev->m2m_dev, &dev->vfd,
						 MEDIA_ENT_F_PROC_VIDEO_DECODER);
	if (ret) {
		v4l2_err(&dev->v4l2_dev, "Failed to init mem2mem media controller\n");
		goto unreg_video;
	}

	ret = media_device_register(&dev->mdev);
	if (ret) {
		v4l2_err(&dev->v4l2_dev, "Failed to register media device\n");
		goto unreg_m2m_mc;
	}

	ret = dv_chardev_register(dev);
	if (ret)
		goto unreg_media;

	return 0;

unreg_media:
	media_device_unregister(&dev->mdev);
unreg_m2m_mc:
	v4l2_m2m_unregister_media_controller(dev->m2m_dev);
unreg_video:
	video_unregister_device(&dev->vfd);
	return ret;
}

static int dv_probe(struct platform_device *pdev)
{
	struct dv_dev *dev;
	int ret;

	dev = kzalloc(sizeof(*dev), GFP_KERNEL);
	if (!dev)
		return -ENOMEM;

	dv_dev_init_state(dev);

	ret = v4l2_device_register(&pdev->dev, &dev->v4l2_dev);
	if (ret)
		goto free_dev;

	dev->vfd = dv_videodev;
	dev->vfd.lock = &dev->dev_mutex;
	dev->vfd.v4l2_dev = &dev->v4l2_dev;
	video_set_drvdata(&dev->vfd, dev);
	platform_set_drvdata(pdev, dev);

	dev->m2m_dev = v4l2_m2m_init(&dv_m2m_ops);
	if (IS_ERR(dev->m2m_dev)) {
		v4l2_err(&dev->v4l2_dev, "Failed to init mem2mem device\n");
		ret = PTR_ERR(dev->m2m_dev);
		goto unreg_v4l2;
	}

	dv_media_init(dev, pdev);

	ret = video_register_device(&dev->vfd, VFL_TYPE_VIDEO, -1);
	if (ret) {
		v4l2_err(&dev->v4l2_dev, "Failed to register video device\n");
		goto cleanup_media;
	}

	ret = dv_register_nodes(dev);
	if (ret)
		return ret;	/* dev is gone with the video node */

	dv_debugfs_init(dev);
	v4l2_info(&dev->v4l2_dev, "registered /dev/video%d and /dev/%s\n",
		  dev->vfd.num, DV_CHARDEV_NAME);
	return 0;

cleanup_media:
	media_device_cleanup(&dev->mdev);
	v4l2_m2m_release(dev->m2m_dev);
unreg_v4l2:
	v4l2_device_unregister(&dev->v4l2_dev);
free_dev:
	kfree(dev);
	return ret;
}

static void dv_remove(struct platform_device *pdev)
{
	struct dv_dev *dev = platform_get_drvdata(pdev);

	v4l2_info(&dev->v4l2_dev, "removing " DV_NAME "\n");

	/*
	 * Both the chardev and the video node pin the module while open, so
	 * no daemon and no context is left here; the watchdog may still be
	 * armed from the last job.
	 */
	dv_chardev_unregister(dev);
	cancel_delayed_work_sync(&dev->watchdog);
	dv_debugfs_exit(dev);

	if (media_devnode_is_registered(dev->mdev.devnode)) {
		media_device_unregister(&dev->mdev);
		v4l2_m2m_unregister_media_controller(dev->m2m_dev);
	}
	/* dv_device_release() frees dev */
	video_unregister_device(&dev->vfd);
}

#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 11, 0)
static int dv_remove_int(struct platform_device *pdev)
{
	dv_remove(pdev);
	return 0;
}
#endif

static struct platform_driver dv_pdrv = {
	.probe		= dv_probe,
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 11, 0)
	.remove		= dv_remove,
#else
	.remove		= dv_remove_int,
#endif
	.driver		= {
		.name	= DV_NAME,
		/* unbinding under an open daemon or context is not supported */
		.suppress_bind_attrs = true,
	},
};

static void dv_pdev_release(struct device *dev) {}

static struct platform_device dv_pdev = {
	.name		= DV_NAME,
	.id		= PLATFORM_DEVID_NONE,
	.dev.release	= dv_pdev_release,
};

/* The layouts Python reads through cffi; a mismatch must not build. */
static void __init dv_check_proto_layout(void)
{
	BUILD_BUG_ON(sizeof(struct dv4l2_msg_header) != 32);
	BUILD_BUG_ON(sizeof(struct dv4l2_stream_open) != 24);
	BUILD_BUG_ON(sizeof(struct dv4l2_plane) != 16);
	BUILD_BUG_ON(sizeof(struct dv4l2_decode_req) != 112);
	BUILD_BUG_ON(sizeof(struct dv4l2_ctrl_rec) != 8);
	BUILD_BUG_ON(sizeof(struct dv4l2_frame_resp) != 112);
	BUILD_BUG_ON(offsetof(struct dv4l2_msg_header, cookie) != 16);
	BUILD_BUG_ON(offsetof(struct dv4l2_decode_req, planes) != 64);
	BUILD_BUG_ON(offsetof(struct dv4l2_frame_resp, digest) != 40);
	BUILD_BUG_ON(offsetof(struct dv4l2_frame_resp, reason) != 48);
	BUILD_BUG_ON(DV4L2_REASON_LEN !=
		     sizeof_field(struct dv4l2_frame_resp, reason));
	BUILD_BUG_ON(DV4L2_MAX_PLANES !=
		     ARRAY_SIZE(((struct dv4l2_decode_req *)0)->planes));
}

static int __init dv_init(void)
{
	int ret;

	dv_check_proto_layout();

	ret = platform_device_register(&dv_pdev);
	if (ret)
		return ret;

	ret = platform_driver_register(&dv_pdrv);
	if (ret)
		platform_device_unregister(&dv_pdev);

	return ret;
}

static void __exit dv_exit(void)
{
	platform_driver_unregister(&dv_pdrv);
	platform_device_unregister(&dv_pdev);
}

module_init(dv_init);
module_exit(dv_exit);

MODULE_DESCRIPTION("V4L2 stateless decoder backed by a userspace daemon");
MODULE_LICENSE("GPL");
