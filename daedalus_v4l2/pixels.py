"""Pictures in and out of CAPTURE buffers: NV12 and P010, single allocation.

The daemon writes each decoded picture straight into the CAPTURE buffer with
:func:`pack_frame`, in the layout the kernel sent (``dv4l2_decode_req.planes``:
plane 0 = Y, plane 1 = interleaved CbCr, both inside one buffer), and hashes
the tightly packed picture on the way (``dv4l2_frame_resp.digest``).  A client
does the inverse with :func:`unpack_picture` to write a tightly packed raw file.

Every layout comes from the kernel (or from a client) and is checked against
the real size of the buffer before a single byte is written.

The digest is FNV-1a 64 read word-wise: the tight picture (Y rows of the
visible width, then CbCr rows of 2*ceil(w/2) samples; P010 in little-endian
16-bit samples) is consumed as little-endian 64-bit words, ``h ^= word;
h *= 0x100000001b3`` from ``h = 0xcbf29ce484222325``, and a final tail of fewer
than 8 bytes byte by byte the same way.  See :func:`fnv1a64_words_py`.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import av

from . import proto
from .errors import DecodeError, UnsupportedError
from .v4l2 import uapi

try:
    from ._native import ffi, lib
except ImportError as exc:  # pragma: no cover - a broken install
    raise ImportError(
        "daedalus_v4l2._native is not built; reinstall the package "
        "(pip install -e . in the checkout) so its C helpers get compiled") from exc

NV12 = uapi.V4L2_PIX_FMT_NV12
P010 = uapi.V4L2_PIX_FMT_P010

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
_MASK64 = 0xFFFFFFFFFFFFFFFF

# fourcc -> (bytes per sample, PyAV format the slow path converts to, max bits)
_FOURCCS = {NV12: (1, "nv12", 8), P010: (2, "p010le", 10)}
# PyAV formats the fast path takes, per fourcc
_DIRECT = {NV12: {"yuv420p", "yuvj420p", "nv12"}, P010: {"yuv420p10le", "p010le"}}
_P010_SHIFT = 6  # yuv420p10le sample -> P010 (10 bits in the high end of 16)
# The vector loops P010 packing can use, by the native module's level (dv_simd)
SIMD_NAMES = ("plain C", "SSE2", "AVX2")


@dataclass
class PackedPicture:
    width: int
    height: int
    fourcc: int
    plane_bytes: list[int]
    digest: int


# --------------------------------------------------------------------------- digest

class Fnv1a64:
    """Incremental digest (native): the result is independent of how the data
    is split across :meth:`update` calls."""

    def __init__(self) -> None:
        self._state = ffi.new("dv_fnv_state *")
        lib.dv_fnv_init(self._state)

    def update(self, data) -> None:
        view = memoryview(data)
        if view.nbytes:
            lib.dv_fnv_update(self._state, ffi.from_buffer("uint8_t[]", view), view.nbytes)

    def digest(self) -> int:
        return lib.dv_fnv_digest(self._state)


def fnv1a64(data) -> int:
    """The word-wise FNV-1a 64 of a whole contiguous buffer (native)."""
    view = memoryview(data)
    return lib.dv_fnv1a64(ffi.from_buffer("uint8_t[]", view), view.nbytes)


def fnv1a64_words_py(data) -> int:
    """Pure-Python reference of the digest's definition (slow; for tests)."""
    raw = bytes(data)
    h = FNV_OFFSET
    whole = len(raw) - len(raw) % 8
    for (word,) in struct.iter_unpack("<Q", raw[:whole]):
        h = ((h ^ word) * FNV_PRIME) & _MASK64
    for b in raw[whole:]:
        h = ((h ^ b) * FNV_PRIME) & _MASK64
    return h


# --------------------------------------------------------------------------- layouts

def _geometry(fourcc: int, width: int, height: int) -> tuple[int, list[tuple[int, int]]]:
    """(bytes per sample, [(row bytes, rows) of Y, of CbCr]) of the tight picture."""
    try:
        bps = _FOURCCS[fourcc][0]
    except KeyError:
        raise UnsupportedError(f"capture format {uapi.fourcc_str(fourcc)!r} is not NV12 or P010") from None
    if width <= 0 or height <= 0:
        raise DecodeError(f"picture size {width}x{height} is empty")
    cw, ch = (width + 1) // 2, (height + 1) // 2
    return bps, [(width * bps, height), (2 * cw * bps, ch)]


def tight_size(fourcc: int, width: int, height: int) -> int:
    """Bytes of the tightly packed picture: NV12 w*h + 2*ceil(w/2)*ceil(h/2), P010 twice that."""
    _, rows = _geometry(fourcc, width, height)
    return sum(row_bytes * n for row_bytes, n in rows)


def _check_layout(fourcc: int, width: int, height: int, planes, size: int, what: str) -> list[int]:
    """Check that the picture fits the plane layout inside a buffer of ``size``
    bytes; returns the bytes used (the end of the furthest plane)."""
    _, rows = _geometry(fourcc, width, height)
    name = uapi.fourcc_str(fourcc)
    if len(planes) < len(rows):
        raise DecodeError(f"{name} needs {len(rows)} planes in the {what} layout, got {len(planes)}")
    extents = []
    for i, ((row_bytes, nrows), plane) in enumerate(zip(rows, planes)):
        off, bpl, prows = int(plane.offset), int(plane.bytesperline), int(plane.height)
        if off < 0 or bpl < 0 or prows < 0:
            raise DecodeError(f"{what} plane {i} has a negative field: {plane}")
        if bpl < row_bytes:
            raise DecodeError(f"{what} plane {i}: bytesperline {bpl} < {row_bytes} bytes of a "
                              f"{width}-pixel {name} row")
        if prows < nrows:
            raise DecodeError(f"{what} plane {i} has {prows} rows, a {width}x{height} {name} "
                              f"picture needs {nrows}")
        last_row_end = off + bpl * (nrows - 1) + row_bytes
        if last_row_end > size:
            raise DecodeError(f"{what} plane {i} (offset {off}, bytesperline {bpl}, {nrows} rows) "
                              f"ends at byte {last_row_end}, past the {size}-byte buffer")
        extents.append((off, off + bpl * (nrows - 1) + row_bytes, off + bpl * prows))
    (a0, a1, _), (b0, b1, _) = extents[0], extents[1]
    if a0 < b1 and b0 < a1:
        raise DecodeError(f"{what} planes 0 [{a0}, {a1}) and 1 [{b0}, {b1}) overlap")
    used = max(end for _, _, end in extents[:len(rows)])
    if used > size:
        raise DecodeError(f"{what} layout uses {used} bytes, the buffer has {size}")
    return [used]


def _nbytes(buf) -> int:
    return memoryview(buf).nbytes


# --------------------------------------------------------------------------- pack

def simd_name() -> str:
    """The vector loops P010 packing uses on this CPU (AVX2 when it has them)."""
    return SIMD_NAMES[lib.dv_simd()]


def _source_frame(frame: av.VideoFrame, fourcc: int) -> av.VideoFrame:
    """The frame itself if the fast path takes its format, else a converted
    copy; UnsupportedError if ``fourcc`` cannot hold the picture."""
    bps, target, max_bits = _FOURCCS[fourcc]
    fmt = frame.format
    if fmt.name in _DIRECT[fourcc]:
        return frame
    w, h = frame.width, frame.height
    comps = [c for c in fmt.components if not c.is_alpha]
    gray = len(comps) == 1  # no chroma: NV12/P010 hold it with neutral chroma
    why = None
    if fmt.is_rgb or fmt.has_palette or fmt.is_bayer or fmt.is_bit_stream:
        why = "it is not a YUV format"
    elif max((c.bits for c in comps), default=0) > max_bits:
        why = f"it has {max(c.bits for c in comps)}-bit samples"
    elif not gray and (fmt.chroma_width(), fmt.chroma_height()) != ((w + 1) // 2, (h + 1) // 2):
        why = "its chroma is not 4:2:0"
    if why:
        raise UnsupportedError(f"cannot write a {fmt.name} picture as {uapi.fourcc_str(fourcc)}: {why}")
    return frame.reformat(format=target)


def _src_plane(frame: av.VideoFrame, frame_planes, index: int, row_bytes: int, rows: int):
    """``frame_planes``: ``frame.planes``, asked for once (PyAV builds the list anew
    at every access)."""
    plane = frame_planes[index]
    stride = plane.line_size
    if stride < row_bytes or plane.buffer_size < stride * (rows - 1) + row_bytes:
        raise DecodeError(f"{frame.format.name} frame plane {index} (line_size {stride}, "
                          f"{plane.buffer_size} bytes) is too small for {rows} rows of {row_bytes}")
    return ffi.from_buffer("uint8_t[]", plane), stride


# Layouts checked already, with the bytes they use: a stream packs every picture
# into the same layout, and the check is a good part of a picture's Python.
_checked_layouts: dict[tuple, list[int]] = {}
_CHECKED_LAYOUTS_MAX = 64


def _checked_capture_layout(fourcc: int, width: int, height: int, planes, size: int) -> list[int]:
    key = (fourcc, width, height, size,
           tuple((plane.offset, plane.bytesperline, plane.height) for plane in planes))
    used = _checked_layouts.get(key)
    if used is None:
        used = _check_layout(fourcc, width, height, planes, size, "CAPTURE")
        if len(_checked_layouts) >= _CHECKED_LAYOUTS_MAX:
            _checked_layouts.clear()
        _checked_layouts[key] = used
    return list(used)


def pack_frame(frame: av.VideoFrame, fourcc: int, planes: list[proto.Plane],
               dst, digest: bool = True) -> PackedPicture:
    """Write the visible picture of ``frame`` into ``dst`` (a writable buffer,
    e.g. the mmap of a CAPTURE buffer) per ``planes``; return what the FRAME
    response reports.  Nothing is written unless the whole picture fits.

    ``digest=False`` skips the digest (``PackedPicture.digest`` is 0): the
    kernel asks for none with ``DV4L2_DECODE_NO_DIGEST``, and hashing costs
    several times the copy (FNV-1a is one serial multiply per 8 bytes)."""
    if fourcc not in _FOURCCS:
        raise UnsupportedError(f"capture format {uapi.fourcc_str(fourcc)!r} is not NV12 or P010")
    src = _source_frame(frame, fourcc)
    w, h = src.width, src.height
    bps, rows = _geometry(fourcc, w, h)
    size = _nbytes(dst)
    plane_bytes = _checked_capture_layout(fourcc, w, h, planes, size)
    (y_bytes, y_rows), (c_bytes, c_rows) = rows
    cw = (w + 1) // 2
    name = src.format.name
    interleave = name in ("yuv420p", "yuvj420p", "yuv420p10le")

    # every source plane is checked before anything is written
    src_planes = src.planes
    sy, sy_stride = _src_plane(src, src_planes, 0, y_bytes, y_rows)
    if interleave:
        su, su_stride = _src_plane(src, src_planes, 1, cw * bps, c_rows)
        sv, sv_stride = _src_plane(src, src_planes, 2, cw * bps, c_rows)
    else:
        suv, suv_stride = _src_plane(src, src_planes, 1, c_bytes, c_rows)

    d = ffi.from_buffer("uint8_t[]", dst, require_writable=True)
    py, pc = planes[0], planes[1]
    dy, dc = d + int(py.offset), d + int(pc.offset)
    st = ffi.NULL
    if digest:
        st = ffi.new("dv_fnv_state *")
        lib.dv_fnv_init(st)
    if name == "yuv420p10le":
        lib.dv_shift_rows16(dy, py.bytesperline, sy, sy_stride, w, y_rows, _P010_SHIFT, st)
        lib.dv_interleave_uv16(dc, pc.bytesperline, su, su_stride, sv, sv_stride, cw, c_rows,
                               _P010_SHIFT, st)
    else:
        lib.dv_copy_rows(dy, py.bytesperline, sy, sy_stride, y_bytes, y_rows, st)
        if interleave:
            lib.dv_interleave_uv8(dc, pc.bytesperline, su, su_stride, sv, sv_stride, cw, c_rows, st)
        else:
            lib.dv_copy_rows(dc, pc.bytesperline, suv, suv_stride, c_bytes, c_rows, st)
    return PackedPicture(w, h, fourcc, plane_bytes, lib.dv_fnv_digest(st) if digest else 0)


# --------------------------------------------------------------------------- unpack

def unpack_picture_into(src, fourcc: int, planes: list[proto.Plane], width: int, height: int,
                        out, digest: bool = False) -> int | None:
    """Copy the picture in ``src`` (laid out per ``planes``) tightly packed into
    the writable buffer ``out``; with ``digest``, returns the tight picture's digest."""
    _, rows = _geometry(fourcc, width, height)
    _check_layout(fourcc, width, height, planes, _nbytes(src), "source")
    need = sum(b * n for b, n in rows)
    if _nbytes(out) < need:
        raise DecodeError(f"output buffer of {_nbytes(out)} bytes, the tight picture needs {need}")
    s = ffi.from_buffer("uint8_t[]", src)
    o = ffi.from_buffer("uint8_t[]", out, require_writable=True)
    st = ffi.NULL
    if digest:
        st = ffi.new("dv_fnv_state *")
        lib.dv_fnv_init(st)
    pos = 0
    for (row_bytes, nrows), plane in zip(rows, planes):
        lib.dv_copy_rows(o + pos, row_bytes, s + int(plane.offset), plane.bytesperline,
                         row_bytes, nrows, st)
        pos += row_bytes * nrows
    return lib.dv_fnv_digest(st) if digest else None


def tight_prefix(fourcc: int, planes: list[proto.Plane], width: int, height: int) -> int | None:
    """The size of the tight picture when a buffer laid out per ``planes`` starts
    with it (every plane where the tight picture has it, rows unpadded); None if not."""
    _, rows = _geometry(fourcc, width, height)
    pos = 0
    for (row_bytes, nrows), plane in zip(rows, planes):
        if int(plane.offset) != pos or int(plane.bytesperline) != row_bytes:
            return None
        pos += row_bytes * nrows
    return pos


def unpack_picture(src, fourcc: int, planes: list[proto.Plane], width: int,
                   height: int) -> bytearray:
    """The tightly packed picture (what ``ffmpeg -f rawvideo -pix_fmt nv12|p010le``
    writes) from a buffer laid out per ``planes``.

    A bytearray rather than bytes: converting would be a second allocation and
    copy of the whole picture (for a 1080p P010 frame it costs more than the
    unpacking itself, mostly page faults); it compares equal to bytes and
    writes to a file the same way."""
    _check_layout(fourcc, width, height, planes, _nbytes(src), "source")
    size = tight_prefix(fourcc, planes, width, height)
    if size is not None:
        # the buffer holds the tight picture already (e.g. 1080p: 1920 is 16-aligned):
        # one copy, without zeroing a new buffer first
        return bytearray(memoryview(src).cast("B")[:size])
    out = bytearray(tight_size(fourcc, width, height))
    unpack_picture_into(src, fourcc, planes, width, height, out)
    return out


def picture_digest(src, fourcc: int, planes: list[proto.Plane], width: int, height: int) -> int:
    """The digest of the picture in ``src`` without unpacking it."""
    _, rows = _geometry(fourcc, width, height)
    _check_layout(fourcc, width, height, planes, _nbytes(src), "source")
    s = ffi.from_buffer("uint8_t[]", src)
    st = ffi.new("dv_fnv_state *")
    lib.dv_fnv_init(st)
    for (row_bytes, nrows), plane in zip(rows, planes):
        lib.dv_hash_rows(s + int(plane.offset), plane.bytesperline, row_bytes, nrows, st)
    return lib.dv_fnv_digest(st)


def capture_layout(fourcc: int, width: int, height: int, align: int = 16) -> tuple[list[proto.Plane], int]:
    """The driver's CAPTURE layout (docs/driver-model.md): bytesperline =
    ALIGN(width, align) samples (never less than a CbCr row, 2*ceil(w/2)),
    Y then CbCr; returns (planes, sizeimage)."""
    bps, rows = _geometry(fourcc, width, height)
    samples = width + (width & 1)
    bpl = ((samples + align - 1) // align * align) * bps
    (_, y_rows), (_, c_rows) = rows
    planes = [proto.Plane(0, bpl, y_rows), proto.Plane(bpl * y_rows, bpl, c_rows)]
    return planes, bpl * (y_rows + c_rows)
