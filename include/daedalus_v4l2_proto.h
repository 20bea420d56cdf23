/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * daedalus-v4l2 wire protocol: the messages between the kernel module
 * (or its in-process model, backends/sim) and the userspace decoder daemon
 * over /dev/daedalus-v4l2.
 *
 * This file is the one definition of the layout. The kernel includes it;
 * Python reads it through cffi (daedalus_v4l2/proto.py), so it keeps to what
 * cffi's parser understands: fixed-width fields, explicit padding, integer
 * literal #defines, no __packed, no expressions in #defines.
 *
 * Every message is a struct dv4l2_msg_header followed by payload_len bytes.
 * All fields are little-endian host order (the kernel and the daemon run on
 * the same machine).  Pixels never travel in a message: the daemon maps the
 * CAPTURE buffer (mmap of the chardev at decode_req.capture_offset) and
 * writes the picture straight into it.
 */
#ifndef _UAPI_DAEDALUS_V4L2_PROTO_H
#define _UAPI_DAEDALUS_V4L2_PROTO_H

#include <linux/types.h>

#define DV4L2_MAGIC			0x4c345644	/* "DV4L" */
#define DV4L2_VERSION			1
#define DV4L2_MAX_PLANES		3
#define DV4L2_REASON_LEN		64
/*
 * Upper bound on one message's payload, to bound what a reader allocates
 * for a corrupt length.  Not a cap on frames: the real check is against
 * the OUTPUT buffer a bitstream came from.
 */
#define DV4L2_MAX_PAYLOAD		0x10000000	/* 256 MiB */

/* dv4l2_msg_header.type */
#define DV4L2_MSG_PING			1	/* either way; answered by PONG, same cookie */
#define DV4L2_MSG_PONG			2
#define DV4L2_MSG_STREAM_OPEN		3	/* kernel -> daemon: struct dv4l2_stream_open */
#define DV4L2_MSG_STREAM_CLOSE		4	/* kernel -> daemon: no payload */
#define DV4L2_MSG_DECODE		5	/* kernel -> daemon: struct dv4l2_decode_req + ctrls + bitstream */
#define DV4L2_MSG_FRAME			6	/* daemon -> kernel: struct dv4l2_frame_resp */
#define DV4L2_MSG_FLUSH			7	/* kernel -> daemon: drain the session */
#define DV4L2_MSG_FLUSH_DONE		8	/* daemon -> kernel: every picture of the stream was sent */

/* Codecs, dv4l2_stream_open.codec and dv4l2_decode_req.codec */
#define DV4L2_CODEC_VP9			1
#define DV4L2_CODEC_H264		2
#define DV4L2_CODEC_AV1			3

/* dv4l2_decode_req.flags */
#define DV4L2_DECODE_HOLD_CAPTURE	0x00000001	/* more slices of this picture follow */
#define DV4L2_DECODE_FIRST_SLICE	0x00000002	/* first OUTPUT buffer of its picture */
#define DV4L2_DECODE_NO_DIGEST		0x00000004	/* the kernel will not read dv4l2_frame_resp.digest: the daemon may skip it (0) */
/*
 * Another job of this stream was ready (OUTPUT and CAPTURE buffers queued)
 * when this one was sent: its DECODE will follow without the client doing
 * anything. The daemon may answer SRC_CONSUMED now and send this picture
 * with a later request (a frame-threaded decoder); without the flag it must
 * answer this request with its picture (or an error) before it waits again.
 */
#define DV4L2_DECODE_MORE_QUEUED	0x00000008

/* dv4l2_frame_resp.flags */
#define DV4L2_FRAME_SRC_CONSUMED	0x00000001	/* bitstream used: the OUTPUT buffer may be returned */
#define DV4L2_FRAME_HAS_PIXELS		0x00000002	/* the picture is in the CAPTURE buffer */
#define DV4L2_FRAME_ERROR		0x00000004	/* this job failed: CAPTURE gets V4L2_BUF_FLAG_ERROR */

struct dv4l2_msg_header {
	__u32 magic;		/* DV4L2_MAGIC */
	__u16 version;		/* DV4L2_VERSION */
	__u16 type;		/* DV4L2_MSG_* */
	__u32 flags;		/* none defined yet; must be 0 */
	__u32 payload_len;	/* bytes after this header, <= DV4L2_MAX_PAYLOAD */
	__u64 cookie;		/* DECODE/FRAME: the job; PING/PONG: echoed */
	__u32 stream_id;	/* the V4L2 context (one per open of /dev/videoN) */
	__u32 reserved;		/* must be 0 */
};

struct dv4l2_stream_open {
	__u32 codec;		/* DV4L2_CODEC_* */
	__u32 output_fourcc;	/* V4L2 OUTPUT pixelformat, e.g. VP9F */
	__u32 coded_width;
	__u32 coded_height;
	__u32 capture_fourcc;	/* NV12 or P010 */
	__u32 reserved;
};

/* One plane of the CAPTURE picture inside its (single) buffer. */
struct dv4l2_plane {
	__u32 offset;		/* bytes from the start of the CAPTURE buffer */
	__u32 bytesperline;
	__u32 height;		/* rows of this plane */
	__u32 reserved;
};

/*
 * DV4L2_MSG_DECODE payload: this struct, then ctrl_len bytes of control
 * records (struct dv4l2_ctrl_rec, each followed by its payload and padded to
 * 8 bytes), then bitstream_len bytes of bitstream.
 * payload_len == sizeof(struct dv4l2_decode_req) + ctrl_len + bitstream_len.
 */
struct dv4l2_decode_req {
	__u64 timestamp;	/* OUTPUT buffer timestamp, ns; copied to CAPTURE */
	__u64 capture_offset;	/* mmap offset of the CAPTURE buffer on the chardev */
	__u32 codec;		/* DV4L2_CODEC_* */
	__u32 flags;		/* DV4L2_DECODE_* */
	__u32 coded_width;
	__u32 coded_height;
	__u32 capture_fourcc;
	__u32 capture_index;	/* vb2 index, for logs and debugfs */
	__u32 capture_size;	/* bytes of the CAPTURE buffer the daemon may write */
	__u32 output_index;
	__u32 num_planes;	/* <= DV4L2_MAX_PLANES */
	__u32 ctrl_len;		/* multiple of 8 */
	__u32 bitstream_len;
	__u32 reserved;
	struct dv4l2_plane planes[3];	/* DV4L2_MAX_PLANES */
};

/* A stateless control bound to the request, as the kernel's own struct. */
struct dv4l2_ctrl_rec {
	__u32 id;		/* V4L2_CID_STATELESS_* */
	__u32 size;		/* payload bytes that follow (before padding to 8) */
};

/* DV4L2_MSG_FRAME payload. header.cookie names the job. */
struct dv4l2_frame_resp {
	__s32 status;		/* 0 or a negative errno */
	__u32 flags;		/* DV4L2_FRAME_* */
	__u32 width;		/* visible picture size */
	__u32 height;
	__u32 fourcc;		/* pixel format written */
	__u32 num_planes;
	__u32 plane_bytes[3];	/* bytesused per V4L2 plane; single allocation: [0] only */
	__u32 reserved;
	__u64 digest;		/* FNV-1a 64 of the tight visible picture (Y rows, then CbCr rows) read as little-endian 64-bit words: h = 0xcbf29ce484222325; per word h ^= w, h *= 0x100000001b3; a last tail of < 8 bytes byte by byte the same way */
	char reason[64];	/* DV4L2_REASON_LEN: NUL-terminated, why ERROR was set */
};

#endif /* _UAPI_DAEDALUS_V4L2_PROTO_H */
