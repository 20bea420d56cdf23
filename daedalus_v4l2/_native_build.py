"""cffi (API mode) builder of ``daedalus_v4l2._native``: the daemon's pixel hot loops.

Built at ``pip install`` through ``setup.py`` (``cffi_modules``); cffi's
setuptools hook runs this file by path, so it must not import the package.

The C code copies a decoded picture into a CAPTURE buffer (a row at a time,
honouring the buffer's strides) and hashes the tightly packed picture on the
way, so the daemon touches every byte once.  It never *reads* the destination:
a CAPTURE buffer may be write-combined or uncached memory.  Interleaving and
16-bit shifting go through a small on-stack scratch chunk that is hashed and
then copied out; with no digest to compute (``st`` NULL: the kernel sent
``DV4L2_DECODE_NO_DIGEST``) they write straight into the destination, in
loops the compiler vectorizes, or for P010 in SSE2 or AVX2 ones (AVX2 chosen
at run time when the CPU has it; ``dv_set_simd`` caps the choice for tests).

The digest (``dv4l2_frame_resp.digest``) is FNV-1a 64 defined word-wise: the
tight picture is read as little-endian 64-bit words, ``h ^= word; h *=
0x100000001b3`` from ``h = 0xcbf29ce484222325``, and a final tail of fewer
than 8 bytes is folded in byte by byte the same way.  The state carries up to
7 bytes between calls, so the result does not depend on how the picture is
split into rows or chunks.  ``daedalus_v4l2.pixels.fnv1a64_words_py`` is the
pure-Python reference.

It also holds the AV1 client's per-frame header work (``native/``): the
sequence and frame headers read in C, the reference slots kept in C, and the
V4L2 AV1 frame and film grain controls filled from them
(:mod:`daedalus_v4l2.codecs.av1_native`; the Python reader stays the oracle
the tests hold it to), and the H.264 client's: slice headers read from the
escaped NAL units as they are, and Annex B start codes found with ``memchr``
(:mod:`daedalus_v4l2.codecs.h264_native`).  The AV1 files see the uAPI
structs as cffi declares them (``v4l2/uapi_cdef.py``) and the ``V4L2_AV1_*``
values of ``codecs/av1_controls.py``: one definition of each, read here by path.
"""
import re
import runpy
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
NATIVE = HERE / "native"


def _av1_flag_defines() -> str:
    """``#define`` lines for the ``V4L2_AV1_*`` values codecs/av1_controls.py holds."""
    text = (HERE / "codecs" / "av1_controls.py").read_text()
    pairs = re.findall(r"^(V4L2_AV1_[A-Z0-9_]+) = (0x[0-9a-fA-F]+|\d+)$", text, re.M)
    if not pairs:
        raise RuntimeError("no V4L2_AV1_* values found in codecs/av1_controls.py")
    return "".join(f"#define {name} {value}u\n" for name, value in pairs)


def _av1_source() -> str:
    """The uAPI AV1 structs and values, then native/av1_headers.c and av1_controls.c."""
    cdef_av1 = runpy.run_path(str(HERE / "v4l2" / "uapi_cdef.py"))["CDEF_AV1"]
    # the kernel's own __u8..__s64 (cdefs.KERNEL_TYPES says the same for cffi)
    return "\n".join(["#include <linux/types.h>", cdef_av1, _av1_flag_defines(),
                      (NATIVE / "av1_headers.c").read_text(),
                      (NATIVE / "av1_controls.c").read_text()])


CDEF = r"""
typedef struct {
    uint64_t h;         /* running hash over the whole words consumed so far */
    uint8_t carry[8];   /* bytes of a partial word (ncarry < 8) */
    uint32_t ncarry;
    uint32_t reserved;
} dv_fnv_state;

void dv_fnv_init(dv_fnv_state *st);
void dv_fnv_update(dv_fnv_state *st, const uint8_t *p, size_t n);
uint64_t dv_fnv_digest(const dv_fnv_state *st);
uint64_t dv_fnv1a64(const uint8_t *p, size_t n);

void dv_hash_rows(const uint8_t *src, size_t src_stride, size_t width_bytes, size_t rows,
                  dv_fnv_state *st);
void dv_copy_rows(uint8_t *dst, size_t dst_stride, const uint8_t *src, size_t src_stride,
                  size_t width_bytes, size_t rows, dv_fnv_state *st);
void dv_interleave_uv8(uint8_t *dst, size_t dst_stride,
                       const uint8_t *u, size_t u_stride, const uint8_t *v, size_t v_stride,
                       size_t cw, size_t rows, dv_fnv_state *st);
void dv_shift_rows16(uint8_t *dst, size_t dst_stride, const uint8_t *src, size_t src_stride,
                     size_t samples, size_t rows, unsigned shift, dv_fnv_state *st);
void dv_interleave_uv16(uint8_t *dst, size_t dst_stride,
                        const uint8_t *u, size_t u_stride, const uint8_t *v, size_t v_stride,
                        size_t cw, size_t rows, unsigned shift, dv_fnv_state *st);
int dv_simd(void);
int dv_set_simd(int level);
int dv_set_streaming(int on);
int dv_set_prefetch(int bytes);

void *dv_zeroed(size_t size);
void free(void *ptr);
""" + (NATIVE / "av1_headers.h").read_text() + (NATIVE / "h264_headers.h").read_text() + r"""
int dv_av1_frame_control(const dv_av1_frame_header *h, const uint64_t *reference_ts,
                         unsigned char *out, size_t len);
int dv_av1_film_grain_control(const dv_av1_frame_header *h, unsigned char *out, size_t len);
"""

C_SOURCE = r"""
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* AVX2 loops compiled for their functions alone (target attribute) and chosen
 * at run time, so the module still runs on an x86-64 without AVX2. */
#include <immintrin.h>
#define DV_X86_DISPATCH 1
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "daedalus_v4l2._native assumes a little-endian host (as the wire protocol does)"
#endif

typedef struct {
    uint64_t h;
    uint8_t carry[8];
    uint32_t ncarry;
    uint32_t reserved;
} dv_fnv_state;

#define DV_FNV_OFFSET 0xcbf29ce484222325ULL
#define DV_FNV_PRIME 0x100000001b3ULL
/* Scratch chunk for interleaving/shifting: hashed, then copied out. */
#define DV_CHUNK 4096
/* yuv420p10le -> P010: 10 bits moved to the top of 16 */
#define DV_P010_SHIFT 6

/* The vector loops P010's rows use: 2 AVX2, 1 SSE2, 0 plain C (-1: not chosen
 * yet).  The best the CPU has, unless dv_set_simd lowered it (tests pin each). */
static int simd_chosen = -1;

static int simd_level(void)
{
    if (simd_chosen < 0) {
#if defined(DV_X86_DISPATCH)
        simd_chosen = __builtin_cpu_supports("avx2") ? 2 : 1;
#elif defined(__SSE2__)
        simd_chosen = 1;
#else
        simd_chosen = 0;
#endif
    }
    return simd_chosen;
}

int dv_simd(void)
{
    return simd_level();
}

/* Zeroed memory from the C heap, for the simulated kernel's buffers: calloc leaves
 * fresh pages to the OS to zero when first touched and clears reused ones (glibc),
 * and free gives them back to the heap for the next buffer (see backends/sim/vb2.py). */
void *dv_zeroed(size_t size)
{
    return calloc(1, size ? size : 1);
}

/* Use at most `level` (-1: the best the CPU has); returns the level in use. */
int dv_set_simd(int level)
{
    int best;

    simd_chosen = -1;
    best = simd_level();
    if (level >= 0 && level < best)
        simd_chosen = level;
    return simd_chosen;
}

static inline uint64_t ld64(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

static inline uint16_t ld16(const uint8_t *p)
{
    uint16_t s;
    memcpy(&s, p, 2);
    return s;
}

void dv_fnv_init(dv_fnv_state *st)
{
    st->h = DV_FNV_OFFSET;
    st->ncarry = 0;
    st->reserved = 0;
    memset(st->carry, 0, sizeof(st->carry));
}

void dv_fnv_update(dv_fnv_state *st, const uint8_t *p, size_t n)
{
    uint64_t h = st->h;

    if (st->ncarry) {
        /* finish the partial word left by the previous call first */
        while (st->ncarry < 8 && n) {
            st->carry[st->ncarry++] = *p++;
            n--;
        }
        if (st->ncarry < 8)
            return;
        h = (h ^ ld64(st->carry)) * DV_FNV_PRIME;
        st->ncarry = 0;
    }
    while (n >= 32) {
        h = (h ^ ld64(p)) * DV_FNV_PRIME;
        h = (h ^ ld64(p + 8)) * DV_FNV_PRIME;
        h = (h ^ ld64(p + 16)) * DV_FNV_PRIME;
        h = (h ^ ld64(p + 24)) * DV_FNV_PRIME;
        p += 32;
        n -= 32;
    }
    while (n >= 8) {
        h = (h ^ ld64(p)) * DV_FNV_PRIME;
        p += 8;
        n -= 8;
    }
    memcpy(st->carry, p, n);
    st->ncarry = (uint32_t)n;
    st->h = h;
}

/* The digest of everything fed so far; the state stays usable. */
uint64_t dv_fnv_digest(const dv_fnv_state *st)
{
    uint64_t h = st->h;
    uint32_t i;

    for (i = 0; i < st->ncarry; i++)
        h = (h ^ st->carry[i]) * DV_FNV_PRIME;
    return h;
}

uint64_t dv_fnv1a64(const uint8_t *p, size_t n)
{
    dv_fnv_state st;

    dv_fnv_init(&st);
    dv_fnv_update(&st, p, n);
    return dv_fnv_digest(&st);
}

void dv_hash_rows(const uint8_t *src, size_t src_stride, size_t width_bytes, size_t rows,
                  dv_fnv_state *st)
{
    size_t y;

    for (y = 0; y < rows; y++)
        dv_fnv_update(st, src + y * src_stride, width_bytes);
}

/* NV12's rows go out with streaming (non-temporal) stores where the CPU has them:
 * the CAPTURE buffer's lines are written without being fetched first, and 3 MB of
 * them do not push libavcodec's working set out of the shared cache while the next
 * picture decodes on the other cores.  In the decode (AMD EPYC VM, 1080p AV1 and
 * H.264) the writer's pack_frame took 0.08-0.13 ms less a picture; alone, in a
 * loop with warm caches, the same either way.  (P010's rows keep plain stores: see
 * below.)  dv_set_streaming(0) turns them off (tests, benchmarks). */
#if defined(__SSE2__)
static int streaming = 1;
#else
static int streaming = 0;
#endif

/* Streaming stores on (1) or off (0), where the CPU has them; -1 only asks.
 * Returns the setting before the call. */
int dv_set_streaming(int on)
{
    int was = streaming;

#if defined(__SSE2__)
    if (on >= 0)
        streaming = on ? 1 : 0;
#else
    (void)on;
#endif
    return was;
}

/* How far ahead of the streaming copies' loads to prefetch the source, in bytes
 * (0: not at all).  The hardware prefetcher stops at every 4 KiB page, so each
 * page of libavcodec's picture began with a stall; asking for the line 2 KiB
 * ahead hides part of it.  In the decode (AMD EPYC VM, 1080p, interleaved A/Bs of
 * 30-60 rounds against 0) the writer used 13-48 us less CPU a picture in all six
 * (AV1, H.264, VP9), 512 B and 1 KiB less so; fps moved within the noise (paired
 * sim/bare AV1 -0.006 +- 0.014, H.264 +0.021 +- 0.016, VP9 -0.013 +- 0.018).
 * A prefetch never faults, so reaching past the end of a plane is harmless (the
 * address is formed as an integer: no pointer past its object).
 * dv_set_prefetch changes it (benchmarks). */
#define DV_PREFETCH_AHEAD 2048
static int prefetch_ahead = DV_PREFETCH_AHEAD;

/* Sets the prefetch distance (0 turns it off; clamped to 0..65536); -1 only
 * asks.  Returns the distance before the call. */
int dv_set_prefetch(int bytes)
{
    int was = prefetch_ahead;

    if (bytes >= 0)
        prefetch_ahead = bytes > 65536 ? 65536 : bytes;
    return was;
}

#if defined(__SSE2__)
/* One row's bytes with streaming stores, as many 16-byte stores as fit (none
 * unless the row starts 16-byte aligned); the caller copies the rest. */
static size_t copy_row_stream(uint8_t *d, const uint8_t *s, size_t n)
{
    size_t i = 0;

    if (!streaming || ((uintptr_t)d & 15))
        return 0;
    for (; i + 64 <= n; i += 64) {
        __m128i a, b, c, e;

        if (prefetch_ahead)
            _mm_prefetch((const char *)((uintptr_t)s + i + prefetch_ahead), _MM_HINT_T0);
        a = _mm_loadu_si128((const __m128i *)(s + i));
        b = _mm_loadu_si128((const __m128i *)(s + i + 16));
        c = _mm_loadu_si128((const __m128i *)(s + i + 32));
        e = _mm_loadu_si128((const __m128i *)(s + i + 48));

        _mm_stream_si128((__m128i *)(d + i), a);
        _mm_stream_si128((__m128i *)(d + i + 16), b);
        _mm_stream_si128((__m128i *)(d + i + 32), c);
        _mm_stream_si128((__m128i *)(d + i + 48), e);
    }
    for (; i + 16 <= n; i += 16)
        _mm_stream_si128((__m128i *)(d + i), _mm_loadu_si128((const __m128i *)(s + i)));
    return i;
}

/* One NV12 CbCr row's samples, interleaved with streaming stores (as above). */
static size_t interleave_row8_stream(uint8_t *d, const uint8_t *ur, const uint8_t *vr, size_t cw)
{
    size_t i = 0;

    if (!streaming || ((uintptr_t)d & 15))
        return 0;
    for (; i + 16 <= cw; i += 16) {
        __m128i a, b;

        /* one line of each plane every 64 samples; each plane feeds half the
         * bytes stored, so half the distance keeps pace with copy_row_stream */
        if (prefetch_ahead && !(i & 63)) {
            _mm_prefetch((const char *)((uintptr_t)ur + i + prefetch_ahead / 2), _MM_HINT_T0);
            _mm_prefetch((const char *)((uintptr_t)vr + i + prefetch_ahead / 2), _MM_HINT_T0);
        }
        a = _mm_loadu_si128((const __m128i *)(ur + i));
        b = _mm_loadu_si128((const __m128i *)(vr + i));

        _mm_stream_si128((__m128i *)(d + 2 * i), _mm_unpacklo_epi8(a, b));
        _mm_stream_si128((__m128i *)(d + 2 * i + 16), _mm_unpackhi_epi8(a, b));
    }
    return i;
}
#else
static size_t copy_row_stream(uint8_t *d, const uint8_t *s, size_t n)
{
    (void)d; (void)s; (void)n;
    return 0;
}

static size_t interleave_row8_stream(uint8_t *d, const uint8_t *ur, const uint8_t *vr, size_t cw)
{
    (void)d; (void)ur; (void)vr; (void)cw;
    return 0;
}
#endif

/* Streaming stores are weakly ordered: fenced before the picture is reported
 * done, so that whoever reads the buffer next sees every byte. */
static void stores_done(void)
{
#if defined(__SSE2__)
    if (streaming)
        _mm_sfence();
#endif
}

/* Copy rows (st may be NULL: copy only).  Hashes the source, never reads dst. */
void dv_copy_rows(uint8_t *dst, size_t dst_stride, const uint8_t *src, size_t src_stride,
                  size_t width_bytes, size_t rows, dv_fnv_state *st)
{
    size_t y;

    if (!st && dst_stride == width_bytes && src_stride == width_bytes) {
        size_t done = copy_row_stream(dst, src, width_bytes * rows);

        memcpy(dst + done, src + done, width_bytes * rows - done);
        stores_done();
        return;
    }
    for (y = 0; y < rows; y++) {
        const uint8_t *s = src + y * src_stride;
        uint8_t *d = dst + y * dst_stride;
        size_t done = 0;

        if (st)
            dv_fnv_update(st, s, width_bytes);
        else
            done = copy_row_stream(d, s, width_bytes);
        memcpy(d + done, s + done, width_bytes - done);
    }
    stores_done();
}

/* NV12 CbCr rows from 8-bit U and V planes of cw samples a row. */
void dv_interleave_uv8(uint8_t *dst, size_t dst_stride,
                       const uint8_t *u, size_t u_stride, const uint8_t *v, size_t v_stride,
                       size_t cw, size_t rows, dv_fnv_state *st)
{
    uint8_t buf[DV_CHUNK];
    size_t y, x, i, n;

    if (!st) {
        /* no digest: straight into dst, a loop the compiler vectorizes */
        for (y = 0; y < rows; y++) {
            const uint8_t *restrict ur = u + y * u_stride, *restrict vr = v + y * v_stride;
            uint8_t *restrict d = dst + y * dst_stride;

            for (i = interleave_row8_stream(d, ur, vr, cw); i < cw; i++) {
                d[2 * i] = ur[i];
                d[2 * i + 1] = vr[i];
            }
        }
        stores_done();
        return;
    }
    for (y = 0; y < rows; y++) {
        const uint8_t *ur = u + y * u_stride, *vr = v + y * v_stride;
        uint8_t *d = dst + y * dst_stride;

        for (x = 0; x < cw; x += n) {
            n = cw - x < DV_CHUNK / 2 ? cw - x : DV_CHUNK / 2;
            for (i = 0; i < n; i++) {
                buf[2 * i] = ur[x + i];
                buf[2 * i + 1] = vr[x + i];
            }
            if (st)
                dv_fnv_update(st, buf, 2 * n);
            memcpy(d + 2 * x, buf, 2 * n);
        }
    }
}

/* One row's worth of P010 vector work: each returns how many samples it did (a
 * whole number of vectors); the caller finishes the row in plain C.  Plain
 * stores: streaming ones (which skip fetching the CAPTURE lines) were faster on
 * an AMD EPYC VM but 1.4x slower on an Intel Xeon one, in a loop with warm
 * caches; unlike NV12's, never measured inside a decode (no 10-bit bench clip). */
#if defined(DV_X86_DISPATCH)
__attribute__((target("avx2")))
static size_t shift_row16_avx2(uint8_t *d, const uint8_t *s, size_t samples)
{
    size_t i;

    for (i = 0; i + 16 <= samples; i += 16)
        _mm256_storeu_si256((__m256i *)(d + 2 * i),
                            _mm256_slli_epi16(_mm256_loadu_si256((const __m256i *)(s + 2 * i)),
                                              DV_P010_SHIFT));
    return i;
}

__attribute__((target("avx2")))
static size_t interleave_row16_avx2(uint8_t *d, const uint8_t *ur, const uint8_t *vr, size_t cw)
{
    size_t i;

    for (i = 0; i + 16 <= cw; i += 16) {
        __m256i a = _mm256_slli_epi16(_mm256_loadu_si256((const __m256i *)(ur + 2 * i)),
                                      DV_P010_SHIFT);
        __m256i b = _mm256_slli_epi16(_mm256_loadu_si256((const __m256i *)(vr + 2 * i)),
                                      DV_P010_SHIFT);
        /* unpack works within each 128-bit lane: lo = pairs 0-3 and 8-11, hi = 4-7 and 12-15 */
        __m256i lo = _mm256_unpacklo_epi16(a, b), hi = _mm256_unpackhi_epi16(a, b);

        _mm256_storeu_si256((__m256i *)(d + 4 * i), _mm256_permute2x128_si256(lo, hi, 0x20));
        _mm256_storeu_si256((__m256i *)(d + 4 * i + 32), _mm256_permute2x128_si256(lo, hi, 0x31));
    }
    return i;
}
#endif

#if defined(__SSE2__)
static size_t shift_row16_sse2(uint8_t *d, const uint8_t *s, size_t samples)
{
    size_t i;

    for (i = 0; i + 8 <= samples; i += 8)
        _mm_storeu_si128((__m128i *)(d + 2 * i),
                         _mm_slli_epi16(_mm_loadu_si128((const __m128i *)(s + 2 * i)), DV_P010_SHIFT));
    return i;
}

static size_t interleave_row16_sse2(uint8_t *d, const uint8_t *ur, const uint8_t *vr, size_t cw)
{
    size_t i;

    for (i = 0; i + 8 <= cw; i += 8) {
        __m128i a = _mm_slli_epi16(_mm_loadu_si128((const __m128i *)(ur + 2 * i)), DV_P010_SHIFT);
        __m128i b = _mm_slli_epi16(_mm_loadu_si128((const __m128i *)(vr + 2 * i)), DV_P010_SHIFT);

        _mm_storeu_si128((__m128i *)(d + 4 * i), _mm_unpacklo_epi16(a, b));
        _mm_storeu_si128((__m128i *)(d + 4 * i + 16), _mm_unpackhi_epi16(a, b));
    }
    return i;
}
#endif

static size_t shift_row16_vector(uint8_t *d, const uint8_t *s, size_t samples, int level)
{
#if defined(DV_X86_DISPATCH)
    if (level >= 2)
        return shift_row16_avx2(d, s, samples);
#endif
#if defined(__SSE2__)
    if (level >= 1)
        return shift_row16_sse2(d, s, samples);
#endif
    (void)d; (void)s; (void)samples; (void)level;
    return 0;
}

static size_t interleave_row16_vector(uint8_t *d, const uint8_t *ur, const uint8_t *vr,
                                      size_t cw, int level)
{
#if defined(DV_X86_DISPATCH)
    if (level >= 2)
        return interleave_row16_avx2(d, ur, vr, cw);
#endif
#if defined(__SSE2__)
    if (level >= 1)
        return interleave_row16_sse2(d, ur, vr, cw);
#endif
    (void)d; (void)ur; (void)vr; (void)cw; (void)level;
    return 0;
}

/* 16-bit little-endian samples shifted left (yuv420p10le Y -> P010 Y: shift 6). */
void dv_shift_rows16(uint8_t *dst, size_t dst_stride, const uint8_t *src, size_t src_stride,
                     size_t samples, size_t rows, unsigned shift, dv_fnv_state *st)
{
    uint16_t buf[DV_CHUNK / 2];
    size_t y, x, i, n;

    if (!st) {
        int level = simd_level();

        for (y = 0; y < rows; y++) {
            const uint8_t *restrict s = src + y * src_stride;
            uint8_t *restrict d = dst + y * dst_stride;

            if (shift == DV_P010_SHIFT) {   /* a constant shift: vectorized */
                for (i = shift_row16_vector(d, s, samples, level); i < samples; i++) {
                    uint16_t w = (uint16_t)(ld16(s + 2 * i) << DV_P010_SHIFT);

                    memcpy(d + 2 * i, &w, 2);
                }
                continue;
            }
            for (i = 0; i < samples; i++) {
                uint16_t w = (uint16_t)(ld16(s + 2 * i) << shift);

                memcpy(d + 2 * i, &w, 2);
            }
        }
        return;
    }
    for (y = 0; y < rows; y++) {
        const uint8_t *s = src + y * src_stride;
        uint8_t *d = dst + y * dst_stride;

        for (x = 0; x < samples; x += n) {
            n = samples - x < DV_CHUNK / 2 ? samples - x : DV_CHUNK / 2;
            for (i = 0; i < n; i++)
                buf[i] = (uint16_t)(ld16(s + 2 * (x + i)) << shift);
            if (st)
                dv_fnv_update(st, (const uint8_t *)buf, 2 * n);
            memcpy(d + 2 * x, buf, 2 * n);
        }
    }
}

/* P010 CbCr rows from 16-bit U and V planes (yuv420p10le: shift 6). */
void dv_interleave_uv16(uint8_t *dst, size_t dst_stride,
                        const uint8_t *u, size_t u_stride, const uint8_t *v, size_t v_stride,
                        size_t cw, size_t rows, unsigned shift, dv_fnv_state *st)
{
    uint16_t buf[DV_CHUNK / 2];
    size_t y, x, i, n;

    if (!st) {
        int level = simd_level();

        for (y = 0; y < rows; y++) {
            const uint8_t *restrict ur = u + y * u_stride, *restrict vr = v + y * v_stride;
            uint8_t *restrict d = dst + y * dst_stride;

            if (shift == DV_P010_SHIFT) {
                for (i = interleave_row16_vector(d, ur, vr, cw, level); i < cw; i++) {
                    uint16_t w[2] = {(uint16_t)(ld16(ur + 2 * i) << DV_P010_SHIFT),
                                     (uint16_t)(ld16(vr + 2 * i) << DV_P010_SHIFT)};

                    memcpy(d + 4 * i, w, 4);
                }
                continue;
            }
            for (i = 0; i < cw; i++) {
                uint32_t w = (uint32_t)(uint16_t)(ld16(ur + 2 * i) << shift) |
                             (uint32_t)(uint16_t)(ld16(vr + 2 * i) << shift) << 16;

                memcpy(d + 4 * i, &w, 4);
            }
        }
        return;
    }
    for (y = 0; y < rows; y++) {
        const uint8_t *ur = u + y * u_stride, *vr = v + y * v_stride;
        uint8_t *d = dst + y * dst_stride;

        for (x = 0; x < cw; x += n) {
            n = cw - x < DV_CHUNK / 4 ? cw - x : DV_CHUNK / 4;
            for (i = 0; i < n; i++) {
                buf[2 * i] = (uint16_t)(ld16(ur + 2 * (x + i)) << shift);
                buf[2 * i + 1] = (uint16_t)(ld16(vr + 2 * (x + i)) << shift);
            }
            if (st)
                dv_fnv_update(st, (const uint8_t *)buf, 4 * n);
            memcpy(d + 4 * x, buf, 4 * n);
        }
    }
}
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source("daedalus_v4l2._native",
                      C_SOURCE + _av1_source() + (NATIVE / "h264_headers.c").read_text(),
                      include_dirs=[str(NATIVE)], extra_compile_args=["-O3"])

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
