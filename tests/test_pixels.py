"""Packing decoded pictures into CAPTURE buffers and back (daedalus_v4l2.pixels).

References are PyAV's own conversion (``frame.reformat``) and the ffmpeg CLI's
rawvideo output; frames are generated, clips are encoded by the tests.
"""
from __future__ import annotations

import hashlib
import platform
import shutil
import subprocess

import av
import numpy as np
import pytest

from daedalus_v4l2 import pixels, proto
from daedalus_v4l2.bench import _median_ms, _reformat_and_copy  # the benchmark's own baseline
from daedalus_v4l2.errors import DecodeError, UnsupportedError
from daedalus_v4l2.pixels import NV12, P010

SIZES = [(321, 181), (2, 2), (1, 1), (322, 182), (17, 3)]
FFMPEG = "/usr/bin/ffmpeg"


# --------------------------------------------------------------------------- helpers

def random_frame(fmt: str, width: int, height: int, seed: int = 0) -> av.VideoFrame:
    """A frame with random samples in every plane, line padding included."""
    rng = np.random.default_rng(seed)
    frame = av.VideoFrame(width, height, fmt)
    ten_bit = fmt in ("yuv420p10le",)
    for plane in frame.planes:
        if ten_bit:
            data = rng.integers(0, 1024, plane.buffer_size // 2, dtype=np.uint16)
        elif fmt == "p010le":
            data = (rng.integers(0, 1024, plane.buffer_size // 2, dtype=np.uint16) << 6).astype("<u2")
        else:
            data = rng.integers(0, 256, plane.buffer_size, dtype=np.uint8)
        plane.update(data.tobytes())
    return frame


def tight_bytes(frame: av.VideoFrame) -> bytes:
    """An nv12 or p010le PyAV frame's visible picture, tightly packed."""
    bps = 2 if frame.format.name == "p010le" else 1
    w, h = frame.width, frame.height
    rows = [(w * bps, h), (2 * ((w + 1) // 2) * bps, (h + 1) // 2)]
    out = []
    for plane, (row_bytes, nrows) in zip(frame.planes, rows):
        flat = np.frombuffer(plane, np.uint8)
        ls = plane.line_size
        padded = np.zeros(ls * nrows, np.uint8)
        padded[:min(flat.size, padded.size)] = flat[:padded.size]
        out.append(padded.reshape(nrows, ls)[:, :row_bytes].tobytes())
    return b"".join(out)


def numpy_tight(frame: av.VideoFrame) -> bytes:
    """Independent reference for planar sources: Y rows, then U/V interleaved
    (10-bit samples shifted into the high bits of 16, as P010)."""
    ten = frame.format.name == "yuv420p10le"
    dtype = np.dtype("<u2") if ten else np.dtype(np.uint8)
    w, h = frame.width, frame.height
    cw, ch = (w + 1) // 2, (h + 1) // 2

    def plane(i, cols, rows):
        p = frame.planes[i]
        a = np.frombuffer(p, np.uint8)[:p.line_size * rows].reshape(rows, p.line_size)
        return a[:, :cols * dtype.itemsize].copy().view(dtype)

    y, u, v = plane(0, w, h), plane(1, cw, ch), plane(2, cw, ch)
    uv = np.empty((ch, 2 * cw), dtype)
    uv[:, 0::2], uv[:, 1::2] = u, v
    if ten:
        y, uv = (y << 6).astype("<u2"), (uv << 6).astype("<u2")
    return y.tobytes() + uv.tobytes()


def swscale_p010_defect_mask(width: int, height: int) -> np.ndarray:
    """Bytes where libswscale's yuv420p10le -> p010le output is known wrong:
    at odd widths it leaves the last CbCr pair of every row 0 (seen with the
    ffmpeg 5.1 CLI and PyAV 18's libswscale 9.5).  True = compare."""
    mask = np.ones(pixels.tight_size(P010, width, height), bool)
    if width % 2:
        y_bytes, row = 2 * width * height, 4 * ((width + 1) // 2)
        for r in range((height + 1) // 2):
            end = y_bytes + (r + 1) * row
            mask[end - 4:end] = False
    return mask


def layout(fourcc: int, width: int, height: int):
    """The driver's layout: bytesperline = ALIGN(w, 16) samples."""
    planes, size = pixels.capture_layout(fourcc, width, height)
    bps = 2 if fourcc == P010 else 1
    assert planes[0].bytesperline == ((width + 15) // 16 * 16) * bps
    assert size == planes[0].bytesperline * (height + (height + 1) // 2)
    return planes, size


def pack(frame, fourcc, planes=None, size=None, fill=0xAB):
    if planes is None:
        planes, size = layout(fourcc, frame.width, frame.height)
    dst = bytearray([fill]) * size
    packed = pixels.pack_frame(frame, fourcc, planes, memoryview(dst))
    return packed, dst, planes


# --------------------------------------------------------------------------- digest

def test_reference_digest_known_values():
    # empty input: the offset basis; < 8 bytes: plain byte-wise FNV-1a 64
    assert pixels.fnv1a64_words_py(b"") == 0xCBF29CE484222325
    assert pixels.fnv1a64_words_py(b"a") == 0xAF63DC4C8601EC8C
    assert pixels.fnv1a64(b"") == 0xCBF29CE484222325
    assert pixels.fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    # one whole word: a single step with the little-endian word
    word = int.from_bytes(b"abcdefgh", "little")
    assert pixels.fnv1a64(b"abcdefgh") == ((0xCBF29CE484222325 ^ word) * 0x100000001B3) % 2**64


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 15, 16, 31, 32, 33, 1000, 4099])
def test_native_digest_equals_reference(n):
    data = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes()
    assert pixels.fnv1a64(data) == pixels.fnv1a64_words_py(data)


def test_digest_does_not_depend_on_row_splitting():
    rng = np.random.default_rng(7)
    data = rng.integers(0, 256, 5003, dtype=np.uint8).tobytes()
    whole = pixels.fnv1a64_words_py(data)
    for trial in range(30):
        cuts = sorted(rng.integers(0, len(data) + 1, int(rng.integers(0, 40))))
        h = pixels.Fnv1a64()
        prev = 0
        for cut in [*cuts, len(data)]:
            h.update(data[prev:cut])
            prev = cut
        assert h.digest() == whole, cuts
    h = pixels.Fnv1a64()
    for b in data:  # one byte at a time
        h.update(bytes([b]))
    assert h.digest() == whole


@pytest.mark.parametrize("fourcc", [NV12, P010])
def test_digest_does_not_depend_on_stride(fourcc):
    fmt = "yuv420p" if fourcc == NV12 else "yuv420p10le"
    frame = random_frame(fmt, 37, 11)
    digests = set()
    for align in (1, 2, 16, 64):  # ALIGN(w + (w & 1), align)
        planes, size = pixels.capture_layout(fourcc, 37, 11, align=align)
        packed, dst, _ = pack(frame, fourcc, planes, size)
        assert pixels.picture_digest(dst, fourcc, planes, 37, 11) == packed.digest
        digests.add(packed.digest)
    assert len(digests) == 1


# --------------------------------------------------------------------------- pack/unpack

@pytest.mark.parametrize("fmt", ["yuv420p", "yuvj420p", "nv12"])
@pytest.mark.parametrize("width,height", SIZES)
def test_pack_nv12_matches_pyav(fmt, width, height):
    frame = random_frame(fmt, width, height, seed=width * height)
    packed, dst, planes = pack(frame, NV12)
    tight = pixels.unpack_picture(dst, NV12, planes, width, height)
    # samples are copied verbatim: no range conversion for full-range yuvj420p
    expected = tight_bytes(frame.reformat(format="nv12", src_color_range="JPEG",
                                          dst_color_range="JPEG")
                           if fmt == "yuvj420p" else frame.reformat(format="nv12"))
    if fmt != "nv12":
        assert numpy_tight(frame) == expected
    assert len(tight) == pixels.tight_size(NV12, width, height)
    assert tight == expected
    assert packed.digest == pixels.fnv1a64_words_py(expected)
    assert (packed.width, packed.height, packed.fourcc) == (width, height, NV12)
    assert packed.plane_bytes == [len(dst)]


@pytest.mark.parametrize("fmt", ["yuv420p10le", "p010le"])
@pytest.mark.parametrize("width,height", SIZES)
def test_pack_p010_matches_pyav(fmt, width, height):
    frame = random_frame(fmt, width, height, seed=width + height)
    packed, dst, planes = pack(frame, P010)
    tight = pixels.unpack_picture(dst, P010, planes, width, height)
    swscale = tight_bytes(frame.reformat(format="p010le"))
    assert len(tight) == pixels.tight_size(P010, width, height) == 2 * pixels.tight_size(NV12, width, height)
    if fmt == "p010le":
        expected = swscale
    else:
        expected = numpy_tight(frame)
        mask = swscale_p010_defect_mask(width, height)
        ours = np.frombuffer(tight, np.uint8)
        assert np.array_equal(ours[mask], np.frombuffer(swscale, np.uint8)[mask])
    assert tight == expected
    assert packed.digest == pixels.fnv1a64_words_py(expected)


def test_tight_size():
    assert pixels.tight_size(NV12, 321, 181) == 321 * 181 + 2 * 161 * 91
    assert pixels.tight_size(P010, 321, 181) == 2 * (321 * 181 + 2 * 161 * 91)
    assert pixels.tight_size(NV12, 1, 1) == 3
    with pytest.raises(UnsupportedError):
        pixels.tight_size(proto.CODEC_VP9, 2, 2)


def test_pack_1080p_once():
    frame = random_frame("yuv420p", 1920, 1080, seed=3)
    packed, dst, planes = pack(frame, NV12)
    tight = pixels.unpack_picture(dst, NV12, planes, 1920, 1080)
    assert tight == tight_bytes(frame.reformat(format="nv12"))
    assert packed.digest == pixels.fnv1a64(tight) == pixels.fnv1a64_words_py(tight)
    assert packed.plane_bytes == [1920 * 1080 * 3 // 2]


def test_padding_and_gaps_are_not_written():
    frame = random_frame("yuv420p", 21, 5)
    planes = [proto.Plane(8, 40, 5), proto.Plane(8 + 40 * 5 + 16, 32, 3)]
    size = planes[1].offset + 32 * 3 + 4
    packed, dst, _ = pack(frame, NV12, planes, size, fill=0xEE)
    untouched = bytearray(dst)
    for plane, (row_bytes, rows) in zip(planes, [(21, 5), (22, 3)]):
        for r in range(rows):
            start = plane.offset + r * plane.bytesperline
            untouched[start:start + row_bytes] = bytes([0xEE]) * row_bytes
    assert untouched == bytearray([0xEE]) * size
    assert packed.plane_bytes == [planes[1].offset + 32 * 3]


def test_slow_path_formats():
    frame = random_frame("nv21", 33, 9)
    packed, dst, planes = pack(frame, NV12)
    assert pixels.unpack_picture(dst, NV12, planes, 33, 9) == tight_bytes(frame.reformat(format="nv12"))
    # 8-bit into P010. An even width: at odd widths swscale's own p010le output
    # is not deterministic in the last CbCr pair (see the P010 tests above), so
    # it cannot serve as the reference there.
    frame = random_frame("yuv420p", 34, 9)
    packed, dst, planes = pack(frame, P010)
    assert pixels.unpack_picture(dst, P010, planes, 34, 9) == tight_bytes(frame.reformat(format="p010le"))


@pytest.mark.parametrize("fmt,fourcc", [
    ("yuv420p10le", NV12), ("p010le", NV12), ("yuv444p", NV12), ("yuv422p", NV12),
    ("rgb24", NV12), ("yuv410p", NV12), ("yuv440p", NV12), ("yuv420p12le", P010),
    ("yuv444p10le", P010)])
def test_unrepresentable_formats_raise(fmt, fourcc):
    frame = av.VideoFrame(16, 16, fmt)
    planes, size = layout(fourcc, 16, 16)
    dst = bytearray(size)
    with pytest.raises(UnsupportedError, match=fmt):
        pixels.pack_frame(frame, fourcc, planes, memoryview(dst))
    assert dst == bytearray(size)


def test_unknown_fourcc_raises():
    frame = av.VideoFrame(16, 16, "yuv420p")
    with pytest.raises(UnsupportedError):
        pixels.pack_frame(frame, proto.CODEC_VP9, [proto.Plane(0, 16, 16)] * 2, memoryview(bytearray(1024)))


# --------------------------------------------------------------------------- bounds

def _bad_layouts(fourcc, w, h):
    planes, size = layout(fourcc, w, h)
    y, c = planes
    bpl = y.bytesperline
    P = proto.Plane
    yield "buffer one byte short", planes, size - 1
    yield "empty buffer", planes, 0
    yield "stride below the row", [P(0, w - 1, h), P((w - 1) * h, bpl, c.height)], size
    yield "CbCr stride below the row", [y, P(c.offset, 2 * ((w + 1) // 2) - 1, c.height)], size
    yield "Y offset past the end", [P(size, bpl, h), c], size
    yield "CbCr offset past the end", [y, P(size + 4096, bpl, c.height)], size
    yield "CbCr offset near 2**32", [y, P(2**32 - 1, bpl, c.height)], size
    yield "too few Y rows", [P(0, bpl, h - 1), c], size
    yield "too few CbCr rows", [y, P(c.offset, bpl, c.height - 1)], size
    yield "one plane", [y], size
    yield "overlapping planes", [y, P(bpl, bpl, c.height)], size


@pytest.mark.parametrize("fourcc", [NV12, P010])
def test_bad_layouts_raise_without_writing(fourcc):
    w, h = 64, 36
    frame = random_frame("yuv420p" if fourcc == NV12 else "yuv420p10le", w, h)
    for what, planes, size in _bad_layouts(fourcc, w, h):
        dst = bytearray([0x5A]) * size
        with pytest.raises(DecodeError) as info:
            pixels.pack_frame(frame, fourcc, planes, memoryview(dst))
        assert dst == bytearray([0x5A]) * size, what
        assert "plane" in str(info.value) or "bytes" in str(info.value), what
        with pytest.raises(DecodeError):
            pixels.unpack_picture(bytes(size), fourcc, planes, w, h)


def test_a_layout_is_checked_once_and_every_other_one_again(monkeypatch):
    """A stream packs every picture into the same layout: checked at the first one;
    any other layout (the bad ones above among them) is checked when it comes."""
    checks = []
    check = pixels._check_layout
    monkeypatch.setattr(pixels, "_check_layout", lambda *args: checks.append(args) or check(*args))
    monkeypatch.setattr(pixels, "_checked_layouts", {})
    frame = random_frame("yuv420p", 64, 36)
    planes, size = layout(NV12, 64, 36)
    first = pack(frame, NV12, planes, size)
    for _ in range(3):
        assert pack(frame, NV12, [proto.Plane(p.offset, p.bytesperline, p.height) for p in planes],
                    size) == first
    assert len(checks) == 1
    for what, bad, bad_size in _bad_layouts(NV12, 64, 36):
        for _ in range(2):
            with pytest.raises(DecodeError):
                pixels.pack_frame(frame, NV12, bad, memoryview(bytearray(bad_size)))
    assert len(checks) == 1 + 2 * len(list(_bad_layouts(NV12, 64, 36)))


def test_bad_layout_message_is_clear():
    frame = random_frame("yuv420p", 64, 36)
    planes, size = layout(NV12, 64, 36)
    with pytest.raises(DecodeError, match=r"plane 1 .* past the 3455-byte buffer"):
        pixels.pack_frame(frame, NV12, planes, memoryview(bytearray(size - 1)))
    with pytest.raises(DecodeError, match=r"bytesperline 63 < 64"):
        pixels.pack_frame(frame, NV12, [proto.Plane(0, 63, 36), planes[1]], memoryview(bytearray(size)))


def test_read_only_destination_is_refused():
    frame = random_frame("yuv420p", 16, 16)
    planes, size = layout(NV12, 16, 16)
    with pytest.raises((TypeError, BufferError, ValueError)):
        pixels.pack_frame(frame, NV12, planes, memoryview(bytes(size)))


# --------------------------------------------------------------------------- against ffmpeg

def _ffmpeg(*args) -> bytes:
    if not shutil.which(FFMPEG):
        pytest.fail(f"{FFMPEG} is needed to generate reference clips (apt install ffmpeg)")
    return subprocess.run([FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", *args],
                          check=True, capture_output=True).stdout


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Tiny generated clips at an odd size: VP9 8-bit and FFV1 10-bit."""
    d = tmp_path_factory.mktemp("pixel-clips")
    src = "testsrc2=size=320x180:rate=25,scale=321:181,format={}"  # testsrc2 makes even sizes only
    vp9 = d / "clip8.webm"
    _ffmpeg("-f", "lavfi", "-i", src.format("yuv420p"), "-frames:v", "3",
            "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "200k", str(vp9))
    ffv1 = d / "clip10.mkv"
    _ffmpeg("-f", "lavfi", "-i", src.format("yuv420p10le"), "-frames:v", "3", "-c:v", "ffv1", str(ffv1))
    return {NV12: vp9, P010: ffv1}


@pytest.mark.parametrize("fourcc", [NV12, P010])
def test_pack_matches_ffmpeg_rawvideo(clips, fourcc):
    clip = clips[fourcc]
    pix_fmt = "nv12" if fourcc == NV12 else "p010le"
    raw = _ffmpeg("-i", str(clip), "-f", "rawvideo", "-pix_fmt", pix_fmt, "-")
    frame_size = pixels.tight_size(fourcc, 321, 181)
    assert len(raw) == 3 * frame_size
    with av.open(str(clip)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 3
    for i, frame in enumerate(frames):
        assert frame.format.name == ("yuv420p" if fourcc == NV12 else "yuv420p10le")
        packed, dst, planes = pack(frame, fourcc)
        tight = pixels.unpack_picture(dst, fourcc, planes, 321, 181)
        expected = raw[i * frame_size:(i + 1) * frame_size]
        if fourcc == NV12:
            assert hashlib.md5(tight).hexdigest() == hashlib.md5(expected).hexdigest(), f"frame {i}"
        else:  # the CLI's swscale has the odd-width P010 defect too; the rest must match
            mask = swscale_p010_defect_mask(321, 181)
            assert np.array_equal(np.frombuffer(tight, np.uint8)[mask],
                                  np.frombuffer(expected, np.uint8)[mask]), f"frame {i}"
            assert tight == numpy_tight(frame)
        assert packed.digest == pixels.fnv1a64_words_py(tight)


# --------------------------------------------------------------------------- timing (printed)

def test_report_pack_times(capsys):
    lines = []
    for fmt, fourcc, target in [("yuv420p", NV12, "nv12"), ("yuv420p10le", P010, "p010le")]:
        frame = random_frame(fmt, 1920, 1080, seed=11)
        planes, size = layout(fourcc, 1920, 1080)
        dst = memoryview(bytearray(size))
        t_pack = _median_ms(lambda: pixels.pack_frame(frame, fourcc, planes, dst), 50)
        t_ref = _median_ms(lambda: _reformat_and_copy(frame, target, planes, dst), 50)
        t_unpack = _median_ms(lambda: pixels.unpack_picture(dst, fourcc, planes, 1920, 1080), 50)
        tight = pixels.unpack_picture(dst, fourcc, planes, 1920, 1080)
        t_digest = _median_ms(lambda: pixels.fnv1a64(tight), 50)
        lines.append(f"1080p {fmt} -> {target}: pack_frame (copy+digest) {t_pack:.2f} ms "
                     f"[digest alone {t_digest:.2f} ms], reformat+copy (no digest) {t_ref:.2f} ms, "
                     f"unpack_picture {t_unpack:.2f} ms (medians of 50)")
    with capsys.disabled():
        print("\n" + "\n".join(lines))


# --------------------------------------------------------------------------- vector loops

@pytest.fixture(params=[0, 1, 2], ids=pixels.SIMD_NAMES)
def simd_level(request):
    """P010 packing capped at each level of vector loops (the CPU's best is the default)."""
    from daedalus_v4l2._native import lib

    if lib.dv_set_simd(request.param) != request.param:
        lib.dv_set_simd(-1)
        pytest.skip(f"this CPU has no {pixels.SIMD_NAMES[request.param]}")
    yield request.param
    lib.dv_set_simd(-1)


# widths around the vector sizes (8 and 16 samples), so every loop's tail is used too
VECTOR_SIZES = [(1920, 4), (64, 2), (47, 5), (33, 3), (16, 2), (15, 2), (2, 2)]


@pytest.mark.parametrize("digest", [False, True], ids=["straight", "digest"])
@pytest.mark.parametrize("width,height", VECTOR_SIZES)
def test_pack_p010_vector_loops_match_reference(simd_level, width, height, digest):
    frame = random_frame("yuv420p10le", width, height, seed=width * 7 + height)
    planes, size = layout(P010, width, height)
    dst = bytearray([0xAB]) * size
    packed = pixels.pack_frame(frame, P010, planes, memoryview(dst), digest=digest)
    assert pixels.unpack_picture(dst, P010, planes, width, height) == numpy_tight(frame)
    assert packed.digest == (pixels.fnv1a64(numpy_tight(frame)) if digest else 0)


def test_pack_p010_levels_write_the_same_bytes(simd_level):
    """Padding included: no level writes where another does not."""
    frame = random_frame("yuv420p10le", 1926, 6, seed=11)
    planes, size = layout(P010, 1926, 6)
    dst = bytearray([0xAB]) * size
    pixels.pack_frame(frame, P010, planes, memoryview(dst), digest=False)
    baseline = bytearray([0xAB]) * size
    pixels.pack_frame(frame, P010, planes, memoryview(baseline), digest=True)
    assert dst == baseline


@pytest.fixture(params=[0, 1], ids=["plain-stores", "streaming-stores"])
def streaming(request):
    """NV12 packing with plain stores, and with streaming ones where the CPU has them."""
    from daedalus_v4l2._native import lib

    was = lib.dv_set_streaming(request.param)
    if lib.dv_set_streaming(-1) != request.param:
        pytest.skip("this CPU has no streaming stores")
    yield request.param
    lib.dv_set_streaming(was)


@pytest.mark.parametrize("offset", [0, 1, 8], ids=["aligned", "off-by-1", "off-by-8"])
@pytest.mark.parametrize("fmt", ["yuv420p", "nv12"])
@pytest.mark.parametrize("width,height", VECTOR_SIZES)
def test_pack_nv12_stores_write_the_same_bytes(streaming, fmt, width, height, offset):
    """Streaming stores where the CAPTURE buffer's rows are 16-byte aligned, plain ones
    where not: the picture right, the padding untouched, as the digest's plain path."""
    frame = random_frame(fmt, width, height, seed=width * 5 + height)
    planes, size = layout(NV12, width, height)
    dst = memoryview(bytearray([0xAB]) * (size + offset))[offset:]
    pixels.pack_frame(frame, NV12, planes, dst, digest=False)
    baseline = bytearray([0xAB]) * size
    pixels.pack_frame(frame, NV12, planes, memoryview(baseline), digest=True)
    expected = numpy_tight(frame) if fmt == "yuv420p" else tight_bytes(frame)
    assert pixels.unpack_picture(dst, NV12, planes, width, height) == expected
    assert dst == baseline


@pytest.mark.parametrize("ahead", [0, 64, 2048, 65536])
@pytest.mark.parametrize("fmt", ["yuv420p", "nv12"])
def test_prefetching_ahead_writes_the_same_bytes(fmt, ahead):
    """The streaming copies prefetch the source ahead of their loads, past the end
    of a plane too (a prefetch never faults): the bytes are the same at any distance.
    (Plain stores never prefetch: nothing to compare there.)"""
    from daedalus_v4l2._native import lib

    if not lib.dv_set_streaming(-1):
        pytest.skip("this CPU has no streaming stores, so the copies do not prefetch")
    width, height = 1920, 8    # rows longer than the distance, and a plane end to reach past
    frame = random_frame(fmt, width, height, seed=ahead + width)
    planes, size = layout(NV12, width, height)
    expected = numpy_tight(frame) if fmt == "yuv420p" else tight_bytes(frame)
    was = lib.dv_set_prefetch(ahead)
    try:
        dst = bytearray([0xAB]) * size
        pixels.pack_frame(frame, NV12, planes, memoryview(dst), digest=False)
    finally:
        lib.dv_set_prefetch(was)
    assert pixels.unpack_picture(memoryview(dst), NV12, planes, width, height) == expected


def test_prefetch_distance_is_2_kib_and_bounded():
    from daedalus_v4l2._native import lib

    assert lib.dv_set_prefetch(-1) == 2048          # -1 only asks
    was = lib.dv_set_prefetch(1 << 20)
    try:
        assert lib.dv_set_prefetch(-1) == 65536     # clamped: a prefetch that far is a typo
        lib.dv_set_prefetch(0)
        assert lib.dv_set_prefetch(-1) == 0
    finally:
        lib.dv_set_prefetch(was)


def test_nv12_packing_streams_where_the_cpu_can():
    from daedalus_v4l2._native import lib

    assert lib.dv_set_streaming(-1) == (1 if platform.machine() in ("x86_64", "AMD64") else 0)


def test_simd_name_is_the_cpus_best():
    from daedalus_v4l2._native import lib

    assert pixels.simd_name() == pixels.SIMD_NAMES[lib.dv_set_simd(-1)]
