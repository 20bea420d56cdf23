"""The decode dispatch seam: libavcodec by default, libdaedalus_core when it loads.

libdaedalus_core (daedalus-fourier) is not available here, so a test double
that implements its C ABI (docs/pi5.md) is compiled with gcc: it "decodes" a
made-up bitstream ``w:u16le h:u16le seed:u8`` into an NV12 picture with a
known pattern and padded strides. Built in variants: another ABI version, a
decoder that holds each picture back one packet (pipelined, drained by
send(NULL)). Both paths are tested: the library is loaded and used, and every
way it can be missing or unusable falls back to the CPU.
"""
from __future__ import annotations

import dataclasses
import errno
import shutil
import subprocess

import av
import pytest

from daedalus_v4l2 import dispatch, pixels, proto
from daedalus_v4l2.errors import UnsupportedError
from daedalus_v4l2.session import DecoderSession

DOUBLE_C = r"""
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef FAKE_ABI
#define FAKE_ABI 1
#endif
#ifndef DELAY
#define DELAY 0
#endif

struct dcore_picture {
    int64_t pts;
    uint32_t width, height, fourcc, reserved;
    const uint8_t *plane[2];
    uint32_t stride[2];
};
struct pic { int64_t pts; uint32_t w, h; uint8_t *y, *uv; uint32_t stride; };
struct dcore_decoder { struct pic q[4]; int n; int draining; char err[64]; int released; };

uint32_t dcore_abi_version(void) { return FAKE_ABI; }
const char *dcore_version(void) { return "0.0-test-double"; }
/* offers the made-up codec, and h264 whose decoder never opens; not vp9 */
int dcore_probe(const char *codec)
{
    return !strcmp(codec, "fake") || !strcmp(codec, "h264");
}
struct dcore_decoder *dcore_open(const char *codec, uint32_t flags)
{
    (void)flags;
    if (strcmp(codec, "fake"))
        return NULL;
    return calloc(1, sizeof(struct dcore_decoder));
}
const char *dcore_last_error(struct dcore_decoder *d) { return d->err; }
int dcore_send(struct dcore_decoder *d, const uint8_t *data, size_t size, int64_t pts)
{
    struct pic *p;
    uint32_t x, y;
    if (!data) { d->draining = 1; return 0; }
    if (size < 5) { strcpy(d->err, "packet shorter than 5 bytes"); return -EINVAL; }
    if (d->n == 4) return -EAGAIN;
    p = &d->q[d->n++];
    p->pts = pts;
    p->w = data[0] | data[1] << 8;
    p->h = data[2] | data[3] << 8;
    p->stride = p->w + 7;                  /* padded rows: strides are honoured */
    p->y = malloc((size_t)p->stride * p->h);
    p->uv = malloc((size_t)p->stride * ((p->h + 1) / 2));
    for (y = 0; y < p->h; y++)
        for (x = 0; x < p->stride; x++)
            p->y[y * p->stride + x] = x < p->w ? (uint8_t)(data[4] + x + 2 * y) : 0xEE;
    for (y = 0; y < (p->h + 1) / 2; y++)
        for (x = 0; x < p->stride; x++)
            p->uv[y * p->stride + x] = x < 2 * ((p->w + 1) / 2) ? (uint8_t)(data[4] * 3 + x + y) : 0xEE;
    return 0;
}
int dcore_receive(struct dcore_decoder *d, struct dcore_picture *out)
{
    struct pic p;
    if (d->n == 0) return d->draining ? -ENODATA : -EAGAIN;
    if (d->n <= DELAY && !d->draining) return -EAGAIN;
    p = d->q[0];
    memmove(&d->q[0], &d->q[1], sizeof(d->q[0]) * --d->n);
    memset(out, 0, sizeof(*out));
    out->pts = p.pts; out->width = p.w; out->height = p.h;
    out->fourcc = 0x3231564E;
    out->plane[0] = p.y; out->plane[1] = p.uv;
    out->stride[0] = out->stride[1] = p.stride;
    return 0;
}
void dcore_release(struct dcore_decoder *d, struct dcore_picture *pic)
{
    free((void *)pic->plane[0]); free((void *)pic->plane[1]);
    d->released++;
}
void dcore_flush(struct dcore_decoder *d)
{
    while (d->n) { d->n--; free(d->q[d->n].y); free(d->q[d->n].uv); }
    d->draining = 0;
}
void dcore_close(struct dcore_decoder *d) { dcore_flush(d); free(d); }
"""


def _build(tmp_path_factory, name: str, *defines: str) -> str:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not found (apt-get install gcc)")
    out = tmp_path_factory.mktemp(name)
    src = out / "double.c"
    src.write_text(DOUBLE_C)
    lib = out / "libdaedalus_core.so.1"
    subprocess.run([gcc, "-shared", "-fPIC", "-O1", "-Wall", "-Werror", *defines, "-o", str(lib),
                    str(src)], check=True)
    return str(lib)


@pytest.fixture(scope="module")
def double(tmp_path_factory):
    return _build(tmp_path_factory, "double")


@pytest.fixture(scope="module")
def delayed_double(tmp_path_factory):
    return _build(tmp_path_factory, "delayed", "-DDELAY=1")


@pytest.fixture(scope="module")
def wrong_abi_double(tmp_path_factory):
    return _build(tmp_path_factory, "abi2", "-DFAKE_ABI=2")


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv("DAEDALUS_DISPATCH", raising=False)
    monkeypatch.delenv("DAEDALUS_FOURIER_LIB", raising=False)
    dispatch.reset_cache()
    yield
    dispatch.reset_cache()


def fake_packet(w: int, h: int, seed: int, pts: int) -> av.Packet:
    packet = av.Packet(bytes([w & 0xFF, w >> 8, h & 0xFF, h >> 8, seed]))
    packet.pts = pts
    return packet


def expected_nv12(w: int, h: int, seed: int) -> bytes:
    """The tightly packed picture the double makes (what the digest covers)."""
    cw = 2 * ((w + 1) // 2)
    y = bytes((seed + x + 2 * r) & 0xFF for r in range(h) for x in range(w))
    uv = bytes((seed * 3 + x + r) & 0xFF for r in range((h + 1) // 2) for x in range(cw))
    return y + uv


# --------------------------------------------------------------------------- fallback


def test_not_installed_here_means_cpu():
    """This machine has no libdaedalus_core: the default search finds nothing."""
    ctx, provider = dispatch.open_decoder("vp9", env={})
    assert isinstance(ctx, av.CodecContext) and ctx.name == "vp9"
    assert provider == dispatch.Provider("cpu", "libdaedalus_core not installed")
    assert dispatch.describe(env={}) == \
        "CPU (libavcodec); daedalus-fourier: libdaedalus_core not installed"


def test_named_library_missing_means_cpu(tmp_path):
    env = {"DAEDALUS_FOURIER_LIB": str(tmp_path / "libdaedalus_core.so.1")}
    ctx, provider = dispatch.open_decoder("vp9", env=env)
    assert isinstance(ctx, av.CodecContext)
    assert provider.name == "cpu" and "libdaedalus_core.so.1" in provider.detail


def test_not_our_library_is_bypassed():
    """A library without the ABI's symbols (libc here) is not used."""
    env = {"DAEDALUS_FOURIER_LIB": "libc.so.6"}
    ctx, provider = dispatch.open_decoder("vp9", env=env)
    assert provider.name == "cpu" and "not a libdaedalus_core" in provider.detail


def test_other_abi_version_is_bypassed(wrong_abi_double):
    env = {"DAEDALUS_FOURIER_LIB": wrong_abi_double}
    ctx, provider = dispatch.open_decoder("vp9", env=env)
    assert provider.name == "cpu"
    assert "ABI version 2, this daemon speaks 1" in provider.detail


def test_codec_not_offered_stays_on_cpu(double):
    ctx, provider = dispatch.open_decoder("vp9", env={"DAEDALUS_FOURIER_LIB": double})
    assert isinstance(ctx, av.CodecContext)
    assert provider.name == "cpu" and "does not offer vp9" in provider.detail


def test_decoder_that_will_not_open_falls_back(double, caplog):
    # the double offers h264 (dcore_probe) but dcore_open returns NULL for it
    ctx, provider = dispatch.open_decoder("h264", env={"DAEDALUS_FOURIER_LIB": double})
    assert isinstance(ctx, av.CodecContext) and ctx.name == "h264"
    assert provider == dispatch.Provider("cpu", "libdaedalus_core would not open a h264 decoder")
    assert "would not open a h264 decoder; this stream decodes on the CPU" in caplog.text


def test_forced_cpu_ignores_the_library(double):
    env = {"DAEDALUS_FOURIER_LIB": double, "DAEDALUS_DISPATCH": "cpu"}
    ctx, provider = dispatch.open_decoder("vp9", env=env)
    assert isinstance(ctx, av.CodecContext) and provider.name == "cpu"


def test_forced_fourier_without_library_is_an_error(tmp_path):
    env = {"DAEDALUS_FOURIER_LIB": str(tmp_path / "nope.so"), "DAEDALUS_DISPATCH": "fourier"}
    with pytest.raises(UnsupportedError, match="DAEDALUS_DISPATCH=fourier"):
        dispatch.open_decoder("vp9", env=env)


def test_bad_mode_is_an_error():
    with pytest.raises(UnsupportedError, match="expected auto, cpu or fourier"):
        dispatch.open_decoder("vp9", env={"DAEDALUS_DISPATCH": "gpu"})


# --------------------------------------------------------------------------- load path


def test_library_loads_and_decodes(double):
    env = {"DAEDALUS_FOURIER_LIB": double}
    dec, provider = dispatch.open_decoder("fake", env=env)
    assert provider.name == "fourier" and "0.0-test-double" in provider.detail
    assert "daedalus-fourier libdaedalus_core 0.0-test-double" in dispatch.describe(env=env)
    frames = dec.decode(fake_packet(37, 21, 5, pts=1234))
    assert len(frames) == 1
    frame = frames[0]
    assert (frame.width, frame.height, frame.format.name, frame.pts) == (37, 21, "nv12", 1234)
    planes, size = pixels.capture_layout(pixels.NV12, 37, 21)
    dst = bytearray(size)
    packed = pixels.pack_frame(frame, pixels.NV12, planes, dst)
    tight = expected_nv12(37, 21, 5)
    assert packed.digest == pixels.fnv1a64(tight)
    assert pixels.unpack_picture(dst, pixels.NV12, planes, 37, 21) == tight


def test_library_errors_are_decode_errors(double):
    dec, _ = dispatch.open_decoder("fake", env={"DAEDALUS_FOURIER_LIB": double})
    with pytest.raises(ValueError, match="packet shorter than 5 bytes"):
        dec.decode(av.Packet(b"\x01"))


def _request(cookie: int, w: int, h: int, seed: int):
    planes, size = pixels.capture_layout(pixels.NV12, w, h)
    return proto.DecodeRequest(
        stream_id=3, cookie=cookie, timestamp=cookie * 1000, codec=0, coded_width=w,
        coded_height=h, capture_fourcc=pixels.NV12, capture_index=cookie, capture_size=size,
        output_index=cookie, planes=planes, controls={},
        bitstream=bytes([w & 0xFF, w >> 8, h & 0xFF, h >> 8, seed]))


class FakeSession(DecoderSession):
    codec_name = "fake"


def _capture():
    memory: dict[int, bytearray] = {}

    def map_capture(req):
        return memoryview(memory.setdefault(req.cookie, bytearray(req.capture_size)))
    return memory, map_capture


def test_session_decodes_through_the_library(double, monkeypatch):
    """The daemon's path: session -> dispatch -> cffi -> C -> CAPTURE memory."""
    monkeypatch.setenv("DAEDALUS_FOURIER_LIB", double)
    session = FakeSession(3)
    memory, map_capture = _capture()
    for cookie, seed in ((1, 9), (2, 200)):
        [resp] = session.decode(_request(cookie, 64, 48, seed), map_capture)
        assert resp.cookie == cookie and not resp.is_error
        assert resp.flags & proto.FRAME_HAS_PIXELS and resp.flags & proto.FRAME_SRC_CONSUMED
        assert resp.digest == pixels.fnv1a64(expected_nv12(64, 48, seed))
    assert session.provider.name == "fourier"
    [bad] = session.decode(dataclasses.replace(_request(3, 64, 48, 0), bitstream=b"x"), map_capture)
    assert bad.is_error and "packet shorter than 5 bytes" in bad.reason


def test_pipelined_library_parks_and_drains(delayed_double, monkeypatch):
    """A library that holds a picture back: the request parks, then completes in order."""
    monkeypatch.setenv("DAEDALUS_FOURIER_LIB", delayed_double)
    session = FakeSession(3)
    memory, map_capture = _capture()
    [first] = session.decode(_request(1, 32, 16, 1), map_capture)
    assert first.flags == proto.FRAME_SRC_CONSUMED  # parked
    assert session.parked == 1
    second = session.decode(_request(2, 32, 16, 2), map_capture)
    assert [(r.cookie, bool(r.flags & proto.FRAME_HAS_PIXELS)) for r in second] == [(1, True), (2, False)]
    drained = session.drain(map_capture)
    assert [(r.cookie, bool(r.flags & proto.FRAME_HAS_PIXELS)) for r in drained] == [(2, True)]
    assert drained[0].digest == pixels.fnv1a64(expected_nv12(32, 16, 2))


def test_vp9_sessions_stay_on_cpu_with_the_library(double, monkeypatch):
    """The library does not offer vp9 here: the real VP9 session uses libavcodec."""
    from daedalus_v4l2.session import open_session

    monkeypatch.setenv("DAEDALUS_FOURIER_LIB", double)
    session = open_session(1, proto.CODEC_VP9)
    assert isinstance(session._context(), av.CodecContext)
    assert session.provider.name == "cpu" and "does not offer vp9" in session.provider.detail


def test_errno_values_the_abi_uses():
    # The ABI's status codes are negative Linux errno values (docs/pi5.md).
    assert (errno.EAGAIN, errno.ENODATA, errno.EINVAL) == (11, 61, 22)
