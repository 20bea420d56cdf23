// SPDX-License-Identifier: GPL-2.0
/*
 * dv-selftest: exercises daedalus_v4l2.ko on a real kernel (the test VM)
 * by playing both the V4L2 client and the daemon, in one thread, with
 * fake pictures. It checks the driver-model.md rules the module owns:
 * claiming and parking, decode order per context, hold, FLUSH, watchdog,
 * daemon close, STREAMOFF, protocol checks, chardev mmap, big bitstreams.
 *
 * Needs root, debugfs, no other daemon on /dev/daedalus-v4l2 and the
 * default watchdog_ms (2000):
 *   make -C kernel selftest
 *   scripts/vm-run --no-daemon -- kernel/selftest/dv-selftest
 * Last line: "N passed, N failed"; exit status 0 when none failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/media.h>
#include <linux/videodev2.h>
#include "daedalus_v4l2_proto.h"

static int failures, checks;
#define CHECK(cond, ...) do { checks++; if (!(cond)) { failures++; printf("FAIL %s:%d: ", __func__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)
#define MUST(cond, ...) do { if (!(cond)) { printf("FATAL %s:%d: ", __func__, __LINE__); printf(__VA_ARGS__); printf(" (errno %d %s)\n", errno, strerror(errno)); exit(2); } } while (0)

static int vfd, mfd;
static void *outmem[8]; static unsigned outlen[8];
static unsigned nout = 4, ncap = 4;
static unsigned cap_sizeimage;

static int find_node(const char *pattern, int media)
{
	glob_t g; int fd = -1;
	glob(pattern, 0, NULL, &g);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		int f = open(g.gl_pathv[i], O_RDWR | O_NONBLOCK);
		if (f < 0) continue;
		if (media) {
			struct media_device_info mi = {0};
			if (!ioctl(f, MEDIA_IOC_DEVICE_INFO, &mi) && !strcmp(mi.bus_info, "platform:daedalus_v4l2")) { fd = f; break; }
		} else {
			struct v4l2_capability cap = {0};
			if (!ioctl(f, VIDIOC_QUERYCAP, &cap) && !strcmp((char *)cap.driver, "daedalus_v4l2")) { fd = f; break; }
		}
		close(f);
	}
	globfree(&g);
	return fd;
}

static void setup(unsigned w, unsigned h)
{
	struct v4l2_format f = {0};
	f.type = V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE;
	f.fmt.pix_mp.pixelformat = V4L2_PIX_FMT_VP9_FRAME;
	f.fmt.pix_mp.width = w; f.fmt.pix_mp.height = h;
	MUST(!ioctl(vfd, VIDIOC_S_FMT, &f), "S_FMT out");
	CHECK(f.fmt.pix_mp.plane_fmt[0].sizeimage == 1 << 20, "out sizeimage %u", f.fmt.pix_mp.plane_fmt[0].sizeimage);
	memset(&f, 0, sizeof f);
	f.type = V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE;
	MUST(!ioctl(vfd, VIDIOC_G_FMT, &f), "G_FMT cap");
	CHECK(f.fmt.pix_mp.pixelformat == V4L2_PIX_FMT_NV12, "cap fmt");
	unsigned bpl = (w + 15) & ~15u;
	CHECK(f.fmt.pix_mp.plane_fmt[0].bytesperline == bpl, "bpl %u", f.fmt.pix_mp.plane_fmt[0].bytesperline);
	CHECK(f.fmt.pix_mp.plane_fmt[0].sizeimage == bpl * (h + (h + 1) / 2), "sizeimage %u", f.fmt.pix_mp.plane_fmt[0].sizeimage);
	cap_sizeimage = f.fmt.pix_mp.plane_fmt[0].sizeimage;

	struct v4l2_requestbuffers rb = { .count = nout, .type = V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE, .memory = V4L2_MEMORY_MMAP };
	MUST(!ioctl(vfd, VIDIOC_REQBUFS, &rb), "reqbufs out");
	CHECK(rb.capabilities & V4L2_BUF_CAP_SUPPORTS_REQUESTS, "caps requests");
	CHECK(rb.capabilities & V4L2_BUF_CAP_SUPPORTS_M2M_HOLD_CAPTURE_BUF, "caps hold");
	for (unsigned i = 0; i < nout; i++) {
		struct v4l2_plane pl[1] = {0};
		struct v4l2_buffer b = { .index = i, .type = rb.type, .memory = V4L2_MEMORY_MMAP, .m.planes = pl, .length = 1 };
		MUST(!ioctl(vfd, VIDIOC_QUERYBUF, &b), "querybuf");
		outlen[i] = pl[0].length;
		outmem[i] = mmap(NULL, pl[0].length, PROT_READ | PROT_WRITE, MAP_SHARED, vfd, pl[0].m.mem_offset);
		MUST(outmem[i] != MAP_FAILED, "mmap out");
	}
	struct v4l2_requestbuffers rc = { .count = ncap, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE, .memory = V4L2_MEMORY_MMAP };
	MUST(!ioctl(vfd, VIDIOC_REQBUFS, &rc), "reqbufs cap");
	int t = V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE;
	MUST(!ioctl(vfd, VIDIOC_STREAMON, &t), "streamon out");
	t = V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE;
	MUST(!ioctl(vfd, VIDIOC_STREAMON, &t), "streamon cap");
}

static int qcap(unsigned i)
{
	struct v4l2_plane pl[1] = {0};
	struct v4l2_buffer b = { .index = i, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE, .memory = V4L2_MEMORY_MMAP, .m.planes = pl, .length = 1 };
	return ioctl(vfd, VIDIOC_QBUF, &b);
}

/* Queue one OUTPUT buffer in a request with a VP9 frame control; returns the request fd. */
static int qout(unsigned i, uint64_t ts_us, unsigned bytes, unsigned flags, int with_ctrl)
{
	int req;
	MUST(!ioctl(mfd, MEDIA_IOC_REQUEST_ALLOC, &req), "req alloc");
	if (with_ctrl) {
		struct v4l2_ctrl_vp9_frame fr = {0};
		fr.bit_depth = 8;
		fr.flags = V4L2_VP9_FRAME_FLAG_X_SUBSAMPLING | V4L2_VP9_FRAME_FLAG_Y_SUBSAMPLING;
		fr.frame_width_minus_1 = 319;
		struct v4l2_ext_control c = { .id = V4L2_CID_STATELESS_VP9_FRAME, .size = sizeof fr, .ptr = &fr };
		struct v4l2_ext_controls cs = { .which = V4L2_CTRL_WHICH_REQUEST_VAL, .count = 1, .request_fd = req, .controls = &c };
		MUST(!ioctl(vfd, VIDIOC_S_EXT_CTRLS, &cs), "s_ext_ctrls");
	}
	memset(outmem[i], 0xA0 + i, bytes);
	struct v4l2_plane pl[1] = {{ .bytesused = bytes }};
	struct v4l2_buffer b = { .index = i, .type = V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE, .memory = V4L2_MEMORY_MMAP,
				 .m.planes = pl, .length = 1, .flags = V4L2_BUF_FLAG_REQUEST_FD | flags, .request_fd = req };
	b.timestamp.tv_sec = ts_us / 1000000; b.timestamp.tv_usec = ts_us % 1000000;
	MUST(!ioctl(vfd, VIDIOC_QBUF, &b), "qbuf out");
	return req;
}

static int queue_req(int req) { return ioctl(req, MEDIA_REQUEST_IOC_QUEUE); }

struct deq { int ok; unsigned index, flags, bytesused, seq; uint64_t ts_us; };
static struct deq dq(int type, int timeout_ms)
{
	struct deq d = {0};
	struct pollfd p = { .fd = vfd, .events = POLLIN | POLLOUT };
	struct v4l2_plane pl[1] = {0};
	struct v4l2_buffer b = { .type = type, .memory = V4L2_MEMORY_MMAP, .m.planes = pl, .length = 1 };
	struct timespec t0; clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (!ioctl(vfd, VIDIOC_DQBUF, &b)) break;
		if (errno != EAGAIN) return d;
		struct timespec t1; clock_gettime(CLOCK_MONOTONIC, &t1);
		int el = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
		if (el >= timeout_ms) return d;
		poll(&p, 1, 10);
	}
	d.ok = 1; d.index = b.index; d.flags = b.flags; d.bytesused = pl[0].bytesused; d.seq = b.sequence;
	d.ts_us = b.timestamp.tv_sec * 1000000ull + b.timestamp.tv_usec;
	return d;
}

/* ---- daemon side ---- */
static int cfd = -1;
static uint8_t msgbuf[16 << 20];

static int rd(int timeout_ms)
{
	struct pollfd p = { .fd = cfd, .events = POLLIN };
	if (poll(&p, 1, timeout_ms) <= 0) return -ETIMEDOUT;
	int n = read(cfd, msgbuf, sizeof msgbuf);
	return n < 0 ? -errno : n;
}
static struct dv4l2_msg_header *H(void) { return (void *)msgbuf; }
static struct dv4l2_decode_req *D(void) { return (void *)(msgbuf + sizeof(struct dv4l2_msg_header)); }

/* read until a DECODE arrives; returns its cookie, 0 on timeout */
static uint64_t read_decode(struct dv4l2_decode_req *out, uint32_t *stream)
{
	for (;;) {
		int n = rd(2000);
		if (n < 0) return 0;
		if (H()->type == DV4L2_MSG_DECODE) {
			CHECK(n == (int)(32 + H()->payload_len), "decode len");
			CHECK(H()->payload_len == sizeof(struct dv4l2_decode_req) + D()->ctrl_len + D()->bitstream_len, "payload_len sum");
			if (out) *out = *D();
			if (stream) *stream = H()->stream_id;
			return H()->cookie;
		}
	}
}

static int wr_frame(uint64_t cookie, uint32_t stream, uint32_t flags, uint32_t bytes, int status)
{
	struct { struct dv4l2_msg_header h; struct dv4l2_frame_resp r; } m = {0};
	m.h.magic = DV4L2_MAGIC; m.h.version = DV4L2_VERSION; m.h.type = DV4L2_MSG_FRAME;
	m.h.payload_len = sizeof m.r; m.h.cookie = cookie; m.h.stream_id = stream;
	m.r.flags = flags; m.r.status = status; m.r.num_planes = 1; m.r.plane_bytes[0] = bytes;
	if (status) strcpy(m.r.reason, "test error");
	int n = write(cfd, &m, sizeof m);
	return n < 0 ? -errno : n;
}

static void paint(const struct dv4l2_decode_req *r, uint8_t val)
{
	void *p = mmap(NULL, r->capture_size, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, r->capture_offset);
	CHECK(p != MAP_FAILED, "mmap capture errno %d", errno);
	if (p == MAP_FAILED) return;
	memset(p, val, r->capture_size);
	munmap(p, r->capture_size);
}

static void counters(const char *tag)
{
	char buf[512]; FILE *f = fopen("/sys/kernel/debug/daedalus_v4l2/counters", "r");
	if (!f) { printf("no counters\n"); return; }
	size_t n = fread(buf, 1, sizeof buf - 1, f); buf[n] = 0; fclose(f);
	for (char *p = buf; *p; p++) if (*p == '\n') *p = ' ';
	printf("[%s] counters: %s\n", tag, buf);
}

static unsigned counter(const char *name)
{
	char line[128]; unsigned long long v = 0; FILE *f = fopen("/sys/kernel/debug/daedalus_v4l2/counters", "r");
	if (!f) return ~0u;
	while (fgets(line, sizeof line, f)) { char k[64]; unsigned long long x; if (sscanf(line, "%63s %llu", k, &x) == 2 && !strcmp(k, name)) v = x; }
	fclose(f); return v;
}

/* ---- tests ---- */
static void test_basic(void)
{
	uint32_t stream;
	struct dv4l2_decode_req r;
	for (unsigned i = 0; i < 4; i++) MUST(!qcap(i), "qcap");
	for (unsigned k = 0; k < 6; k++) {
		unsigned i = k % 4;
		int req = qout(i, 1000 + k, 1000 + k, 0, 1);
		MUST(!queue_req(req), "queue req");
		uint64_t c = read_decode(&r, &stream);
		CHECK(c, "decode %u arrived", k);
		if (!c) return;
		CHECK(r.bitstream_len == 1000 + k, "bitstream_len %u", r.bitstream_len);
		uint8_t *bs = (uint8_t *)D() + sizeof(r) + r.ctrl_len;
		CHECK(bs[0] == 0xA0 + i && bs[r.bitstream_len - 1] == 0xA0 + i, "bitstream bytes");
		CHECK(r.codec == DV4L2_CODEC_VP9 && r.num_planes == 2 && r.planes[1].offset == r.planes[0].bytesperline * 240, "planes");
		CHECK(r.flags & DV4L2_DECODE_FIRST_SLICE, "first slice");
		CHECK(r.timestamp == (1000 + k) * 1000ull, "ts %llu", (unsigned long long)r.timestamp);
		struct dv4l2_ctrl_rec *rec = (void *)((uint8_t *)D() + sizeof(r));
		CHECK(rec->id == V4L2_CID_STATELESS_VP9_FRAME && rec->size == sizeof(struct v4l2_ctrl_vp9_frame), "ctrl rec %#x %u", rec->id, rec->size);
		struct v4l2_ctrl_vp9_frame *fr = (void *)(rec + 1);
		CHECK(fr->frame_width_minus_1 == 319, "ctrl payload");
		paint(&r, 0x10 + k);
		CHECK(wr_frame(c, stream, DV4L2_FRAME_SRC_CONSUMED | DV4L2_FRAME_HAS_PIXELS, cap_sizeimage, 0) > 0, "frame write");
		struct deq o = dq(V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE, 1000);
		struct deq d = dq(V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE, 1000);
		CHECK(o.ok && !(o.flags & V4L2_BUF_FLAG_ERROR), "out done");
		CHECK(d.ok && !(d.flags & V4L2_BUF_FLAG_ERROR) && d.bytesused == cap_sizeimage && d.ts_us == 1000 + k, "cap done ok=%d flags %#x bu %u ts %llu", d.ok, d.flags, d.bytesused, (unsigned long long)d.ts_us);
		struct pollfd p = { .fd = req, .events = POLLPRI };
		CHECK(poll(&p, 1, 100) == 1, "request completed");
		close(req);
		if (d.ok) MUST(!qcap(d.index), "requeue cap");
	}
}

/* pipelined: SRC_CONSUMED alone parks; pixels out of order still complete in order */
static void test_parked(void)
{
	uint32_t stream; struct dv4l2_decode_req r;
	uint64_t c[3];
	for (unsigned k = 0; k < 3; k++) {
		int req = qout(k, 5000 + k, 100, 0, 1);
		MUST(!queue_req(req), "queue");
		c[k] = read_decode(&r, &stream);
		CHECK(c[k], "decode");
		CHECK(wr_frame(c[k], stream, DV4L2_FRAME_SRC_CONSUMED, 0, 0) > 0, "consume");
		struct deq o = dq(V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE, 1000);
		CHECK(o.ok, "out back while parked");
		close(req);
	}
	CHECK(counter("parked_now") == 3, "parked_now %u", counter("parked_now"));
	system("cat /sys/kernel/debug/daedalus_v4l2/inflight");
	struct deq d = dq(V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE, 100);
	CHECK(!d.ok, "nothing yet");
	/* duplicate SRC_CONSUMED */
	CHECK(wr_frame(c[0], stream, DV4L2_FRAME_SRC_CONSUMED, 0, 0) == -EALREADY, "dup");
	/* pixels for 2 then 1: nothing may come out before 0 */
	CHECK(wr_frame(c[2], stream, DV4L2_FRAME_HAS_PIXELS, 50, 0) > 0, "px2");
	CHECK(wr_frame(c[1], stream, DV4L2_FRAME_HAS_PIXELS, 60, 0) > 0, "px1");
	d = dq(V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE, 100);
	CHECK(!d.ok, "still nothing before 0");
	CHECK(wr_frame(c[0], stream, DV4L2_FRAME_HAS_PIXELS | DV4L2_FRAME_ERROR, 70, -5) > 0, "px0 err");
	uint64_t want[3] = { 5000, 5001, 5002 };
	for (int k = 0; k < 3; k++) {
		d = dq(V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE, 500);
		CHECK(d.ok && d.ts_us == want[k], "order %d: ok %d ts %llu", k, d.ok, (unsigned long long)d.ts_us);
		CHECK(k == 0 ? !!(d.flags & V4L2_BUF_FLAG_ERROR) : (!(d.flags & V4L2_BUF_FLAG_ERROR) && d.bytesused == (k == 1 ? 60u : 50u)), "flags %d", k);
		if (d.ok) qcap(d.index);
	}
	CHECK(wr_frame(c[1], stream, DV4L2_FRAME_HAS_PIXELS, 60, 0) == -ENOENT, "late");
	CHECK(counter("parked_now") == 0, "parked_now 0");
}

static void test_hold(void)
{
	uint32_t stream; struct dv4l2_decode_req r;
	int req = qout(0, 7000, 10, V4L2_BUF_FLAG_M2M_HOLD_CAPTURE_BUF, 1);
	MUST(!queue_req(req), "q");
	uint64_t c0 = read_decode(&r, &stream);
	CHECK(r.flags == (DV4L2_DECODE_FIRST_SLICE | DV4L2_DECODE_HOLD_CAPTURE), "flags %#x", r.flags);
	unsigned cap0 = r.capture_index;
	CHECK(wr_frame(c0, stream, DV4L2_FRAME_SRC_CONSUMED, 0, 0) > 0, "consume");
	CHECK(dq(V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE, 500).ok, "out0");
	close(req);
	req = qout(1, 7000, 10, 0, 1);
	MUST(!queue_req(req), "q");
	uint64_t c1 = read_decode(&r, &stream);
	CHECK(r.flags == 0 && r.capture_index == cap0, "second slice reuses: flags %#x cap %u/%u", r.flags, r.capture_index, cap0);
	CHECK(wr_frame(c1, stream, DV4L2_FRAME_SRC_CONSUMED | DV4L2_FRAME_HAS_PIXELS, 99, 0) > 0, "done");
	struct deq d = dq(V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE, 500);
	CHECK(d.ok && d.index == cap0 && d.bytesused == 99 && d.ts_us == 7000, "held done");
	CHECK(dq(V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE, 500).ok, "out1");
	close(req);
	if (d.ok) qcap(d.index);
	/* hold then new timestamp releases */
	req = qout(2, 7100, 10, V4L2_BUF_FLAG_M2M_HOLD_CAPTURE_BUF, 1);
	MUST(!queue_req(req), "q");
	c0 = read_decode(&r, &stream);
	CHECK(wr_frame(c0, stream, DV4L2_FRAME_SRC_CONSUMED, 0, 0) > 0, "consume");
	CHECK(dq(V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE, 500).ok, "out2");
	close(req);
	/* FLUSH releases the held */
	struct v4l2_decoder_cmd dc = { .cmd = V4L2_DEC_CMD_FLUSH };
	CHECK(!ioctl(vfd, VIDIOC_DECODER_CMD, &dc), "flush");
	d = dq(V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE, 500);
	CHECK(d.ok && d.ts_us == 7100 && !(d.flags & V4L2_BUF_FLAG_ERROR), "flush released held ok=%d", d.ok);
	if (d.ok) qcap(d.index);
	int n = rd(500);
	CHECK(n == 32 && H()->type == DV4L2_MSG_FLUSH, "FLUSH message n=%d type %u", n, n > 0 ? H()->type : 0);
}

static void test_protocol(void)
{
	CHECK(open("/dev/daedalus-v4l2", O_RDWR) < 0 && errno == EBUSY, "second open EBUSY");
	struct { struct dv4l2_msg_header h; } m = {{ .magic = DV4L2_MAGIC, .version = DV4L2_VERSION, .type = DV4L2_MSG_PING, .cookie = 77 }};
	CHECK(write(cfd, &m, sizeof m) == sizeof m, "ping");
	char small[8];
	CHECK(read(cfd, small, sizeof small) < 0 && errno == EMSGSIZE, "EMSGSIZE");
	int n = rd(100);
	CHECK(n == 32 && H()->type == DV4L2_MSG_PONG && H()->cookie == 77, "pong");
	unsigned rej = counter("rejected_messages");
	m.h.magic = 1;
	CHECK(write(cfd, &m, sizeof m) < 0 && errno == EINVAL, "bad magic");
	m.h.magic = DV4L2_MAGIC; m.h.type = DV4L2_MSG_DECODE;
	CHECK(write(cfd, &m, sizeof m) < 0 && errno == EINVAL, "bad type");
	m.h.type = DV4L2_MSG_FRAME;
	CHECK(write(cfd, &m, sizeof m) < 0 && errno == EINVAL, "short frame");
	CHECK(write(cfd, &m, 5) < 0 && errno == EINVAL, "tiny");
	CHECK(counter("rejected_messages") == rej + 4, "rejected counted");
	CHECK(wr_frame(123456, 1, DV4L2_FRAME_SRC_CONSUMED, 0, 0) == -ENOENT, "unknown cookie");
	CHECK(wr_frame(123456, 1, 0x80, 0, 0) == -EINVAL, "bad flags");
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 4096 * 99999);
	CHECK(p == MAP_FAILED, "mmap unknown cookie refused");
}

static void test_watchdog_and_overflow(void)
{
	uint32_t stream; struct dv4l2_decode_req r;
	int req = qout(0, 9000, 10, 0, 1);
	MUST(!queue_req(req), "q");
	uint64_t c = read_decode(&r, &stream);
	CHECK(c, "decode");
	unsigned wd = counter("watchdog_expiries");
	struct deq o = dq(V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE, 4000);
	struct deq d = dq(V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE, 500);
	CHECK(o.ok && (o.flags & V4L2_BUF_FLAG_ERROR) && d.ok && (d.flags & V4L2_BUF_FLAG_ERROR), "watchdog errors");
	CHECK(counter("watchdog_expiries") == wd + 1, "watchdog counted");
	CHECK(wr_frame(c, stream, DV4L2_FRAME_SRC_CONSUMED | DV4L2_FRAME_HAS_PIXELS, 1, 0) == -ENOENT, "late after watchdog");
	close(req);
	if (d.ok) qcap(d.index);
	/* overflow */
	req = qout(1, 9100, 10, 0, 1);
	MUST(!queue_req(req), "q");
	c = read_decode(&r, &stream);
	CHECK(wr_frame(c, stream, DV4L2_FRAME_SRC_CONSUMED | DV4L2_FRAME_HAS_PIXELS, r.capture_size + 1, 0) == -EOVERFLOW, "overflow");
	d = dq(V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE, 500);
	CHECK(d.ok && (d.flags & V4L2_BUF_FLAG_ERROR), "overflow -> ERROR");
	o = dq(V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE, 500);
	CHECK(o.ok, "out back");
	close(req);
	if (d.ok) qcap(d.index);
}

static void test_validation(void)
{
	int req = qout(0, 11000, 10, 0, 0);
	CHECK(queue_req(req) < 0 && errno == EINVAL, "missing control -> EINVAL (%d)", errno);
	CHECK(!ioctl(req, MEDIA_REQUEST_IOC_REINIT), "reinit unqueued request");
	close(req);
	/* reclaim buffer 0: it went back to dequeued state? */
	MUST(!ioctl(mfd, MEDIA_IOC_REQUEST_ALLOC, &req), "alloc");
	CHECK(queue_req(req) < 0 && errno == ENOENT, "empty request ENOENT (%d)", errno);
	close(req);
	struct v4l2_plane pl[1] = {0};
	struct v4l2_buffer b = { .index = 0, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE, .memory = V4L2_MEMORY_MMAP, .m.planes = pl, .length = 1, .flags = V4L2_BUF_FLAG_REQUEST_FD, .request_fd = 0 };
	CHECK(ioctl(vfd, VIDIOC_QBUF, &b) < 0 && errno == EBADR, "cap with request EBADR (%d)", errno);
	struct v4l2_buffer bo = { .index = 1, .type = V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE, .memory = V4L2_MEMORY_MMAP, .m.planes = pl, .length = 1 };
	CHECK(ioctl(vfd, VIDIOC_QBUF, &bo) < 0 && errno == EBADR, "out without request EBADR (%d)", errno);
}

static void test_no_daemon(void)
{
	int req = qout(2, 12000, 10, 0, 1);
	MUST(!queue_req(req), "q");
	struct deq o = dq(V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE, 500);
	struct deq d = dq(V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE, 500);
	CHECK(o.ok && (o.flags & V4L2_BUF_FLAG_ERROR) && d.ok && (d.flags & V4L2_BUF_FLAG_ERROR), "no daemon: immediate error");
	close(req);
	if (d.ok) qcap(d.index);
}

static void test_daemon_close_inflight(void)
{
	uint32_t stream;
	int req = qout(3, 13000, 10, 0, 1);
	MUST(!queue_req(req), "q");
	uint64_t c = read_decode(NULL, &stream);
	CHECK(c, "decode");
	close(cfd); cfd = -1;
	struct deq o = dq(V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE, 300);
	struct deq d = dq(V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE, 300);
	CHECK(o.ok && (o.flags & V4L2_BUF_FLAG_ERROR) && d.ok && (d.flags & V4L2_BUF_FLAG_ERROR), "daemon close fails in-flight at once");
	close(req);
	if (d.ok) qcap(d.index);
}

static void test_streamoff_inflight(void)
{
	uint32_t stream;
	int req = qout(0, 14000, 10, 0, 1);
	MUST(!queue_req(req), "q");
	uint64_t c = read_decode(NULL, &stream);
	CHECK(c, "decode");
	struct timespec t0, t1; clock_gettime(CLOCK_MONOTONIC, &t0);
	int t = V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE;
	CHECK(!ioctl(vfd, VIDIOC_STREAMOFF, &t), "streamoff out");
	t = V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE;
	CHECK(!ioctl(vfd, VIDIOC_STREAMOFF, &t), "streamoff cap");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 200, "streamoff fast");
	CHECK(wr_frame(c, stream, DV4L2_FRAME_SRC_CONSUMED | DV4L2_FRAME_HAS_PIXELS, 1, 0) == -ENOENT, "late after streamoff");
	close(req);
	system("cat /sys/kernel/debug/daedalus_v4l2/inflight");
}


/* ---- multi-context and format tests: ctx-local helpers ---- */
struct cx { int fd; void *out[4]; unsigned outlen[4]; unsigned sizeimage; };

static void cx_setup(struct cx *x, unsigned fourcc, unsigned capfmt, unsigned w, unsigned h)
{
	int saved = vfd;
	x->fd = find_node("/dev/video*", 0);
	MUST(x->fd >= 0, "open ctx");
	vfd = x->fd;
	struct v4l2_format f = {0};
	f.type = V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE;
	f.fmt.pix_mp.pixelformat = fourcc; f.fmt.pix_mp.width = w; f.fmt.pix_mp.height = h;
	MUST(!ioctl(vfd, VIDIOC_S_FMT, &f), "S_FMT out");
	CHECK(f.fmt.pix_mp.pixelformat == fourcc, "fourcc kept");
	memset(&f, 0, sizeof f);
	f.type = V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE;
	f.fmt.pix_mp.pixelformat = capfmt;
	MUST(!ioctl(vfd, VIDIOC_S_FMT, &f), "S_FMT cap");
	CHECK(f.fmt.pix_mp.pixelformat == capfmt, "capfmt kept");
	unsigned bpl = ((w + 15) & ~15u) * (capfmt == V4L2_PIX_FMT_P010 ? 2 : 1);
	CHECK(f.fmt.pix_mp.plane_fmt[0].bytesperline == bpl && f.fmt.pix_mp.plane_fmt[0].sizeimage == bpl * (h + (h + 1) / 2), "cap layout");
	x->sizeimage = f.fmt.pix_mp.plane_fmt[0].sizeimage;
	struct v4l2_requestbuffers rb = { .count = 4, .type = V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE, .memory = V4L2_MEMORY_MMAP };
	MUST(!ioctl(vfd, VIDIOC_REQBUFS, &rb), "reqbufs out");
	for (unsigned i = 0; i < 4; i++) {
		struct v4l2_plane pl[1] = {0};
		struct v4l2_buffer b = { .index = i, .type = rb.type, .memory = V4L2_MEMORY_MMAP, .m.planes = pl, .length = 1 };
		MUST(!ioctl(vfd, VIDIOC_QUERYBUF, &b), "querybuf");
		x->outlen[i] = pl[0].length;
		x->out[i] = mmap(NULL, pl[0].length, PROT_READ | PROT_WRITE, MAP_SHARED, vfd, pl[0].m.mem_offset);
		outmem[i] = x->out[i];
	}
	struct v4l2_requestbuffers rc = { .count = 4, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE, .memory = V4L2_MEMORY_MMAP };
	MUST(!ioctl(vfd, VIDIOC_REQBUFS, &rc), "reqbufs cap");
	int t = V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE;
	MUST(!ioctl(vfd, VIDIOC_STREAMON, &t), "streamon");
	t = V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE;
	MUST(!ioctl(vfd, VIDIOC_STREAMON, &t), "streamon");
	for (unsigned i = 0; i < 4; i++) MUST(!qcap(i), "qcap");
	vfd = saved;
}

static void cx_use(struct cx *x) { vfd = x->fd; for (int i = 0; i < 4; i++) outmem[i] = x->out[i]; }

static void cx_close(struct cx *x)
{
	for (int i = 0; i < 4; i++) munmap(x->out[i], x->outlen[i]);
	close(x->fd);
}

static void test_two_contexts(void)
{
	struct cx a, b; uint32_t sa, sb; struct dv4l2_decode_req r;
	cx_setup(&a, V4L2_PIX_FMT_VP9_FRAME, V4L2_PIX_FMT_NV12, 64, 48);
	cx_setup(&b, V4L2_PIX_FMT_VP9_FRAME, V4L2_PIX_FMT_P010, 100, 50);
	uint64_t ca[2], cb[2];
	int reqs[4];
	for (int k = 0; k < 2; k++) {
		cx_use(&a); reqs[2 * k] = qout(k, 100 + k, 10, 0, 1); MUST(!queue_req(reqs[2 * k]), "qa");
		ca[k] = read_decode(&r, &sa);
		CHECK(r.capture_fourcc == V4L2_PIX_FMT_NV12, "a fourcc");
		CHECK(wr_frame(ca[k], sa, DV4L2_FRAME_SRC_CONSUMED, 0, 0) > 0, "park a");
		cx_use(&b); reqs[2 * k + 1] = qout(k, 200 + k, 10, 0, 1); MUST(!queue_req(reqs[2 * k + 1]), "qb");
		cb[k] = read_decode(&r, &sb);
		CHECK(r.capture_fourcc == V4L2_PIX_FMT_P010 && r.planes[0].bytesperline == 224 && r.capture_size == b.sizeimage, "b layout");
		CHECK(wr_frame(cb[k], sb, DV4L2_FRAME_SRC_CONSUMED, 0, 0) > 0, "park b");
	}
	CHECK(sa != sb, "distinct stream ids");
	CHECK(wr_frame(ca[1], sb, DV4L2_FRAME_HAS_PIXELS, 1, 0) == -EINVAL, "wrong stream id rejected");
	/* finish b's second, then a's first: a0 comes out, b stays blocked behind b0 */
	CHECK(wr_frame(cb[1], sb, DV4L2_FRAME_HAS_PIXELS, 7, 0) > 0, "b1");
	CHECK(wr_frame(ca[0], sa, DV4L2_FRAME_HAS_PIXELS, 5, 0) > 0, "a0");
	cx_use(&a);
	struct deq d = dq(V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE, 300);
	CHECK(d.ok && d.ts_us == 100 && d.bytesused == 5, "a0 out");
	cx_use(&b);
	d = dq(V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE, 100);
	CHECK(!d.ok, "b1 waits for b0");
	/* close b with b0 parked and b1 ready: everything returns, nothing leaks */
	for (int k = 0; k < 2; k++) dq(V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE, 100);
	cx_close(&b);
	system("echo inflight after closing b:; cat /sys/kernel/debug/daedalus_v4l2/inflight");
	int n, closes = 0;
	while ((n = rd(100)) > 0) if (H()->type == DV4L2_MSG_STREAM_CLOSE && H()->stream_id == sb) closes++;
	CHECK(closes == 1, "STREAM_CLOSE for b");
	CHECK(wr_frame(cb[0], sb, DV4L2_FRAME_HAS_PIXELS, 7, 0) == -ENOENT, "b0 gone");
	/* a1 still parked: map it, close a, then write through the mapping (pages stay alive) */
	cx_use(&a);
	CHECK(wr_frame(ca[1], sa, DV4L2_FRAME_SRC_CONSUMED, 0, 0) == -EALREADY, "dup consume");
	struct dv4l2_decode_req fake = { .capture_offset = ca[1] * 4096, .capture_size = a.sizeimage };
	uint8_t *p = mmap(NULL, a.sizeimage, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, fake.capture_offset);
	CHECK(p != MAP_FAILED, "map a1");
	void *priv = mmap(NULL, a.sizeimage, PROT_READ | PROT_WRITE, MAP_PRIVATE, cfd, fake.capture_offset);
	CHECK(priv == MAP_FAILED, "private map refused");
	void *big = mmap(NULL, a.sizeimage + 8192, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, fake.capture_offset);
	CHECK(big == MAP_FAILED, "oversized map refused");
	for (int k = 0; k < 2; k++) dq(V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE, 100);
	cx_close(&a);
	if (p != MAP_FAILED) { memset(p, 0x5a, a.sizeimage); munmap(p, a.sizeimage); }
	for (int k = 0; k < 4; k++) close(reqs[k]);
	system("echo inflight after closing a:; cat /sys/kernel/debug/daedalus_v4l2/inflight");
	while (rd(100) > 0) ;
}

static void test_h264_ctrls(void)
{
	struct cx h; uint32_t s = 0; struct dv4l2_decode_req r = {0};
	cx_setup(&h, V4L2_PIX_FMT_H264_SLICE, V4L2_PIX_FMT_NV12, 176, 144);
	cx_use(&h);
	int req;
	MUST(!ioctl(mfd, MEDIA_IOC_REQUEST_ALLOC, &req), "alloc");
	struct v4l2_ctrl_h264_sps sps = { .profile_idc = 66, .level_idc = 30, .chroma_format_idc = 1, .pic_width_in_mbs_minus1 = 10, .pic_height_in_map_units_minus1 = 8, .max_num_ref_frames = 1, .log2_max_frame_num_minus4 = 0 };
	struct v4l2_ctrl_h264_pps pps = { 0 };
	struct v4l2_ctrl_h264_decode_params dp = { .flags = V4L2_H264_DECODE_PARAM_FLAG_IDR_PIC };
	struct v4l2_ext_control c[3] = {
		{ .id = V4L2_CID_STATELESS_H264_SPS, .size = sizeof sps, .ptr = &sps },
		{ .id = V4L2_CID_STATELESS_H264_PPS, .size = sizeof pps, .ptr = &pps },
		{ .id = V4L2_CID_STATELESS_H264_DECODE_PARAMS, .size = sizeof dp, .ptr = &dp },
	};
	struct v4l2_ext_controls cs = { .which = V4L2_CTRL_WHICH_REQUEST_VAL, .count = 3, .request_fd = req, .controls = c };
	CHECK(!ioctl(vfd, VIDIOC_S_EXT_CTRLS, &cs), "h264 ctrls (errno %d, error_idx %u)", errno, cs.error_idx);
	c[0].size = 3; cs.count = 1;
	int rr = ioctl(vfd, VIDIOC_S_EXT_CTRLS, &cs);
	printf("short size: ret %d errno %d size now %u error_idx %u\n", rr, errno, c[0].size, cs.error_idx);
	c[0].size = sizeof sps + 16;
	rr = ioctl(vfd, VIDIOC_S_EXT_CTRLS, &cs);
	printf("long size: ret %d errno %d size now %u error_idx %u\n", rr, rr ? errno : 0, c[0].size, cs.error_idx);
	c[0].id = 0x00a40999; c[0].size = sizeof sps;
	CHECK(ioctl(vfd, VIDIOC_S_EXT_CTRLS, &cs) < 0 && errno == EINVAL, "unknown id EINVAL");
	memset(outmem[0], 0, 100);
	struct v4l2_plane pl[1] = {{ .bytesused = 100 }};
	struct v4l2_buffer b = { .index = 0, .type = V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE, .memory = V4L2_MEMORY_MMAP, .m.planes = pl, .length = 1, .flags = V4L2_BUF_FLAG_REQUEST_FD, .request_fd = req };
	MUST(!ioctl(vfd, VIDIOC_QBUF, &b), "qbuf");
	CHECK(!queue_req(req), "queue h264 (errno %d)", errno);
	CHECK(ioctl(req, MEDIA_REQUEST_IOC_REINIT) < 0 && errno == EBUSY, "reinit queued EBUSY");
	int saw_open = 0;
	for (;;) {
		int n = rd(1000);
		if (n <= 0) break;
		if (H()->type == DV4L2_MSG_STREAM_OPEN) {
			struct dv4l2_stream_open *so = (void *)(msgbuf + 32);
			saw_open = so->codec == DV4L2_CODEC_H264 && so->coded_width == 176 && so->capture_fourcc == V4L2_PIX_FMT_NV12;
		}
		if (H()->type == DV4L2_MSG_DECODE) { r = *D(); s = H()->stream_id; break; }
	}
	CHECK(saw_open, "STREAM_OPEN h264");
	uint8_t *p = (uint8_t *)D() + sizeof r, *end = p + r.ctrl_len;
	unsigned nids = 0;
	while (p < end && nids < 16) {
		struct dv4l2_ctrl_rec *rec = (void *)p;
		nids++;
		if (rec->id == V4L2_CID_STATELESS_H264_SPS) CHECK(rec->size == sizeof sps && ((struct v4l2_ctrl_h264_sps *)(rec + 1))->pic_width_in_mbs_minus1 == 10, "sps rec");
		if (rec->id == V4L2_CID_STATELESS_H264_DECODE_MODE) CHECK(rec->size == 4 && *(int *)(rec + 1) == V4L2_STATELESS_H264_DECODE_MODE_FRAME_BASED, "decode mode rec");
		p += sizeof *rec + ((rec->size + 7) & ~7u);
	}
	CHECK(p == end && nids == 8, "8 h264 ctrl records, got %u", nids);
	CHECK(r.codec == DV4L2_CODEC_H264 && r.bitstream_len == 100, "h264 decode");
	CHECK(wr_frame(H()->cookie, s, DV4L2_FRAME_SRC_CONSUMED | DV4L2_FRAME_HAS_PIXELS, h.sizeimage, 0) > 0, "frame");
	struct deq d = dq(V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE, 300);
	CHECK(d.ok && !(d.flags & V4L2_BUF_FLAG_ERROR), "h264 done");
	close(req);
	cx_close(&h);
	while (rd(100) > 0) ;
}

static void test_enum(void)
{
	int fd = find_node("/dev/video*", 0);
	struct v4l2_fmtdesc fd_ = { .type = V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE };
	unsigned n = 0;
	while (!ioctl(fd, VIDIOC_ENUM_FMT, &fd_)) { printf("OUTPUT fmt %.4s\n", (char *)&fd_.pixelformat); fd_.index = ++n; }
	CHECK(n >= 2, "output fmts %u", n);
	struct v4l2_frmsizeenum fs = { .pixel_format = V4L2_PIX_FMT_VP9_FRAME };
	CHECK(!ioctl(fd, VIDIOC_ENUM_FRAMESIZES, &fs) && fs.type == V4L2_FRMSIZE_TYPE_STEPWISE && fs.stepwise.min_width == 16 && fs.stepwise.max_width == 4096, "framesizes");
	struct v4l2_format f = { .type = V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE };
	f.fmt.pix_mp.pixelformat = V4L2_PIX_FMT_VP9_FRAME; f.fmt.pix_mp.width = 9000; f.fmt.pix_mp.height = 2; f.fmt.pix_mp.plane_fmt[0].sizeimage = 100 << 20;
	CHECK(!ioctl(fd, VIDIOC_TRY_FMT, &f) && f.fmt.pix_mp.width == 4096 && f.fmt.pix_mp.height == 16 && f.fmt.pix_mp.plane_fmt[0].sizeimage == 64 << 20, "clamped %ux%u %u", f.fmt.pix_mp.width, f.fmt.pix_mp.height, f.fmt.pix_mp.plane_fmt[0].sizeimage);
	struct v4l2_capability cap = {0};
	ioctl(fd, VIDIOC_QUERYCAP, &cap);
	printf("querycap: card '%s' bus '%s' caps %#x dcaps %#x\n", cap.card, cap.bus_info, cap.capabilities, cap.device_caps);
	CHECK(!strcmp((char *)cap.card, "daedalus-v4l2") && !strcmp((char *)cap.bus_info, "platform:daedalus_v4l2") && (cap.device_caps & ~V4L2_CAP_EXT_PIX_FORMAT) == (V4L2_CAP_VIDEO_M2M_MPLANE | V4L2_CAP_STREAMING), "querycap");
	close(fd);
}

static void test_big(void)
{
	int fd = find_node("/dev/video*", 0);
	struct v4l2_format f = { .type = V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE };
	f.fmt.pix_mp.pixelformat = V4L2_PIX_FMT_VP9_FRAME; f.fmt.pix_mp.width = 64; f.fmt.pix_mp.height = 64;
	f.fmt.pix_mp.plane_fmt[0].sizeimage = 8 << 20;
	MUST(!ioctl(fd, VIDIOC_S_FMT, &f), "s_fmt");
	CHECK(f.fmt.pix_mp.plane_fmt[0].sizeimage == 8 << 20, "8 MiB sizeimage");
	struct v4l2_requestbuffers rb = { .count = 1, .type = V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE, .memory = V4L2_MEMORY_MMAP };
	MUST(!ioctl(fd, VIDIOC_REQBUFS, &rb), "reqbufs");
	struct v4l2_plane pl[1] = {0};
	struct v4l2_buffer b = { .index = 0, .type = rb.type, .memory = V4L2_MEMORY_MMAP, .m.planes = pl, .length = 1 };
	MUST(!ioctl(fd, VIDIOC_QUERYBUF, &b), "querybuf");
	uint8_t *m = mmap(NULL, pl[0].length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, pl[0].m.mem_offset);
	MUST(m != MAP_FAILED, "mmap");
	for (unsigned i = 0; i < (6u << 20); i++) m[i] = i * 7;
	struct v4l2_requestbuffers rc = { .count = 1, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE, .memory = V4L2_MEMORY_MMAP };
	MUST(!ioctl(fd, VIDIOC_REQBUFS, &rc), "reqbufs cap");
	int t = V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE; MUST(!ioctl(fd, VIDIOC_STREAMON, &t), "on");
	t = V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE; MUST(!ioctl(fd, VIDIOC_STREAMON, &t), "on");
	int saved = vfd; vfd = fd;
	MUST(!qcap(0), "qcap");
	int req; MUST(!ioctl(mfd, MEDIA_IOC_REQUEST_ALLOC, &req), "alloc");
	struct v4l2_ctrl_vp9_frame fr = { .bit_depth = 8, .flags = V4L2_VP9_FRAME_FLAG_X_SUBSAMPLING | V4L2_VP9_FRAME_FLAG_Y_SUBSAMPLING };
	struct v4l2_ext_control c = { .id = V4L2_CID_STATELESS_VP9_FRAME, .size = sizeof fr, .ptr = &fr };
	struct v4l2_ext_controls cs = { .which = V4L2_CTRL_WHICH_REQUEST_VAL, .count = 1, .request_fd = req, .controls = &c };
	MUST(!ioctl(fd, VIDIOC_S_EXT_CTRLS, &cs), "ctrls");
	pl[0].bytesused = 6 << 20; b.flags = V4L2_BUF_FLAG_REQUEST_FD; b.request_fd = req;
	MUST(!ioctl(fd, VIDIOC_QBUF, &b), "qbuf");
	MUST(!queue_req(req), "queue");
	int len = 0, n = -1;
	for (;;) {
		struct pollfd p = { .fd = cfd, .events = POLLIN };
		if (poll(&p, 1, 1000) <= 0) break;
		CHECK(!ioctl(cfd, FIONREAD, &len), "FIONREAD");
		uint8_t hb[64];
		n = read(cfd, hb, sizeof hb);
		if (n < 0 && errno == EMSGSIZE) { n = read(cfd, msgbuf, len); break; }
	}
	CHECK(n == len && H()->type == DV4L2_MSG_DECODE && D()->bitstream_len == 6u << 20, "big decode n=%d len=%d", n, len);
	uint8_t *bs = (uint8_t *)D() + sizeof(struct dv4l2_decode_req) + D()->ctrl_len;
	int same = 1;
	for (unsigned i = 0; i < (6u << 20); i += 4093) same &= bs[i] == (uint8_t)(i * 7);
	CHECK(same, "big bitstream bytes");
	CHECK(!ioctl(cfd, FIONREAD, &len) && len == 0, "FIONREAD empty");
	CHECK(wr_frame(H()->cookie, H()->stream_id, DV4L2_FRAME_SRC_CONSUMED | DV4L2_FRAME_HAS_PIXELS, 100, 0) > 0, "frame");
	struct deq d = dq(V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE, 300);
	CHECK(d.ok && !(d.flags & V4L2_BUF_FLAG_ERROR), "big done");
	vfd = saved;
	munmap(m, pl[0].length); close(req); close(fd);
	while (rd(100) > 0) ;
}

/* ---- stress: a daemon thread answering in random order, a client thread
 * streaming with random STREAMOFF/close; checks decode order and no hang ---- */
#include <pthread.h>
static volatile int stress_stop;
static unsigned stress_rand(unsigned *seed) { *seed = *seed * 1103515245 + 12345; return *seed >> 8; }

static void *stress_daemon(void *arg)
{
	unsigned seed = 1234;
	uint64_t parked[64]; uint32_t pstream[64]; int np = 0;
	static uint8_t buf[2 << 20];
	while (!stress_stop) {
		struct pollfd p = { .fd = cfd, .events = POLLIN };
		if (poll(&p, 1, 20) > 0) {
			int n = read(cfd, buf, sizeof buf);
			struct dv4l2_msg_header *h = (void *)buf;
			if (n > 0 && h->type == DV4L2_MSG_DECODE) {
				struct dv4l2_decode_req *r = (void *)(buf + 32);
				unsigned c = stress_rand(&seed) % 10;
				if (c < 5 || np == 64) {
					if (c == 0) {
						void *m = mmap(NULL, r->capture_size, PROT_WRITE, MAP_SHARED, cfd, r->capture_offset);
						if (m != MAP_FAILED) { memset(m, 1, r->capture_size); munmap(m, r->capture_size); }
					}
					wr_frame(h->cookie, h->stream_id, DV4L2_FRAME_SRC_CONSUMED | DV4L2_FRAME_HAS_PIXELS, 16, 0);
				} else if (c < 9) {
					wr_frame(h->cookie, h->stream_id, DV4L2_FRAME_SRC_CONSUMED, 0, 0);
					parked[np] = h->cookie; pstream[np++] = h->stream_id;
				} /* else: ignore, the watchdog fails it */
			}
		}
		/* answer some parked ones, in random order */
		while (np && stress_rand(&seed) % 3 == 0) {
			int i = stress_rand(&seed) % np;
			wr_frame(parked[i], pstream[i], DV4L2_FRAME_HAS_PIXELS | (stress_rand(&seed) % 8 ? 0 : DV4L2_FRAME_ERROR), 8, 0);
			parked[i] = parked[--np]; pstream[i] = pstream[np];
		}
	}
	return NULL;
}

static void test_stress(unsigned iterations)
{
	FILE *f = fopen("/sys/module/daedalus_v4l2/parameters/watchdog_ms", "w");
	if (f) { fputs("300", f); fclose(f); }
	pthread_t th;
	stress_stop = 0;
	pthread_create(&th, NULL, stress_daemon, NULL);
	unsigned seed = 99, frames = 0, order_bad = 0, hangs = 0;
	uint64_t ts = 1;
	for (unsigned it = 0; it < iterations; it++) {
		struct cx x;
		cx_setup(&x, V4L2_PIX_FMT_VP9_FRAME, V4L2_PIX_FMT_NV12, 64, 32);
		cx_use(&x);
		int outq[4] = {0}, reqs[4] = {-1, -1, -1, -1};
		uint64_t last = 0;
		for (unsigned step = 0; step < 60; step++) {
			for (int i = 0; i < 4; i++)
				if (!outq[i]) { reqs[i] = qout(i, ts++, 64, 0, 1); if (!queue_req(reqs[i])) outq[i] = 1; }
			struct deq o = dq(V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE, 50);
			if (o.ok) { outq[o.index] = 0; close(reqs[o.index]); reqs[o.index] = -1; }
			struct deq d = dq(V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE, 50);
			if (d.ok) {
				frames++;
				if (d.ts_us <= last) order_bad++;
				last = d.ts_us;
				qcap(d.index);
			}
			if (!o.ok && !d.ok) hangs++;
			if (stress_rand(&seed) % 40 == 0) {
				struct timespec t0, t1; clock_gettime(CLOCK_MONOTONIC, &t0);
				int t = stress_rand(&seed) % 2 ? V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE : V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE;
				ioctl(vfd, VIDIOC_STREAMOFF, &t);
				clock_gettime(CLOCK_MONOTONIC, &t1);
				CHECK((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 500, "streamoff bounded");
				if (t == V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE) {
					for (int i = 0; i < 4; i++) { outq[i] = 0; if (reqs[i] >= 0) { ioctl(reqs[i], MEDIA_REQUEST_IOC_REINIT); close(reqs[i]); reqs[i] = -1; } }
				} else {
					for (int i = 0; i < 4; i++) qcap(i);	/* all back to userspace */
				}
				ioctl(vfd, VIDIOC_STREAMON, &t);
				last = 0;
			}
		}
		for (int i = 0; i < 4; i++) if (reqs[i] >= 0) close(reqs[i]);
		cx_close(&x);	/* close with jobs in flight */
	}
	stress_stop = 1;
	pthread_join(th, NULL);
	usleep(400000);
	char line[256] = ""; f = fopen("/sys/kernel/debug/daedalus_v4l2/inflight", "r");
	int left = f && fgets(line, sizeof line, f) != NULL;
	if (f) fclose(f);
	printf("stress: %u iterations, %u pictures, %u idle steps\n", iterations, frames, hangs);
	CHECK(!order_bad, "decode order violated %u times", order_bad);
	CHECK(frames > iterations * 10, "pictures flowed (%u)", frames);
	CHECK(!left, "in-flight left after stress: %s", line);
	f = fopen("/sys/module/daedalus_v4l2/parameters/watchdog_ms", "w");
	if (f) { fputs("2000", f); fclose(f); }
	while (rd(100) > 0) ;
}

int main(int argc, char **argv)
{
	vfd = find_node("/dev/video*", 0);
	mfd = find_node("/dev/media*", 1);
	MUST(vfd >= 0 && mfd >= 0, "nodes");
	cfd = open("/dev/daedalus-v4l2", O_RDWR);
	MUST(cfd >= 0, "chardev");
	setup(320, 240);
	test_protocol();
	test_basic();
	test_parked();
	test_hold();
	test_validation();
	test_watchdog_and_overflow();
	test_daemon_close_inflight();
	test_no_daemon();
	cfd = open("/dev/daedalus-v4l2", O_RDWR);
	MUST(cfd >= 0, "chardev reopen");
	test_streamoff_inflight();
	counters("end");
	/* close of video fd with a session: STREAM_CLOSE (mappings pin the file) */
	for (unsigned i = 0; i < nout; i++) munmap(outmem[i], outlen[i]);
	close(vfd);
	int n, seen_close = 0;
	while ((n = rd(200)) > 0)
		if (H()->type == DV4L2_MSG_STREAM_CLOSE) seen_close = 1;
	CHECK(seen_close, "STREAM_CLOSE on close");
	test_enum();
	test_two_contexts();
	test_h264_ctrls();
	test_big();
	test_stress(argc > 1 ? atoi(argv[1]) : 20);
	system("cat /sys/kernel/debug/daedalus_v4l2/counters");
	close(cfd);
	printf("%d passed, %d failed\n", checks - failures, failures);
	return failures != 0;
}
