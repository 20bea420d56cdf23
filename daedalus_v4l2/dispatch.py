"""The decode dispatch seam: where a session's bitstream becomes pictures.

Every decoder session asks :func:`open_decoder` for its frame decoder and
then only calls ``decode(packet)`` (``None`` drains) and ``flush_buffers()``
on it: the slice of ``av.CodecContext`` the sessions use. Two providers:

``cpu``
    libavcodec through PyAV: the default, always there, the reference every
    other path must match byte for byte (DESIGN.md, contract 4).
``fourier``
    ``libdaedalus_core`` from the sibling daedalus-fourier project (V3D
    compute + NEON kernels on the Pi 5), loaded with cffi in ABI mode when it
    is installed. Its C ABI is below and in docs/pi5.md. Anything wrong --
    not installed, another ABI version, the codec not offered, a decoder that
    will not open -- bypasses it for the CPU with one log line; nothing here
    ever stops a stream from decoding.

Selection: ``$DAEDALUS_DISPATCH`` = ``auto`` (default: fourier where it
offers the codec, else cpu), ``cpu``, or ``fourier`` (required: a stream
fails with UnsupportedError rather than silently running on the CPU).
``$DAEDALUS_FOURIER_LIB`` names the library file; otherwise the loader's
search path is tried (``libdaedalus_core.so.1``, ``libdaedalus_core.so``).
"""
from __future__ import annotations

import ctypes.util
import errno
import logging
import os
import threading
from dataclasses import dataclass

import av

from .errors import DecodeError, UnsupportedError

log = logging.getLogger(__name__)

ABI_VERSION = 1
LIBRARY_NAMES = ("libdaedalus_core.so.1", "libdaedalus_core.so")

# The ABI of libdaedalus_core, version 1 (docs/pi5.md has the commented header).
CDEF = """
struct dcore_decoder;
struct dcore_picture {
    int64_t pts;
    uint32_t width;
    uint32_t height;
    uint32_t fourcc;
    uint32_t reserved;
    const uint8_t *plane[2];
    uint32_t stride[2];
};
uint32_t dcore_abi_version(void);
const char *dcore_version(void);
int dcore_probe(const char *codec);
struct dcore_decoder *dcore_open(const char *codec, uint32_t flags);
int dcore_send(struct dcore_decoder *dec, const uint8_t *data, size_t size, int64_t pts);
int dcore_receive(struct dcore_decoder *dec, struct dcore_picture *pic);
void dcore_release(struct dcore_decoder *dec, struct dcore_picture *pic);
void dcore_flush(struct dcore_decoder *dec);
void dcore_close(struct dcore_decoder *dec);
const char *dcore_last_error(struct dcore_decoder *dec);
"""
FOURCC_NV12 = 0x3231564E  # 'NV12'
FOURCC_P010 = 0x30313050  # 'P010'
_AV_FORMATS = {FOURCC_NV12: ("nv12", 1), FOURCC_P010: ("p010le", 2)}


@dataclass(frozen=True)
class Provider:
    """What a session decodes on, for logs, ``doctor`` and STATUS."""
    name: str         # "cpu" or "fourier"
    detail: str       # version or why the other provider is not used


# --------------------------------------------------------------------------- the library

class FourierLibrary:
    """``libdaedalus_core`` loaded through cffi; :func:`load_fourier` makes one."""

    def __init__(self, path: str) -> None:
        import cffi  # a dependency of the package already (the native helpers)

        self.ffi = cffi.FFI()
        self.ffi.cdef(CDEF)
        self.path = path
        self.lib = self.ffi.dlopen(path)  # OSError if it cannot be loaded
        try:
            abi = int(self.lib.dcore_abi_version())
        except AttributeError as exc:  # a symbol missing: not our library
            raise OSError(f"{path}: not a libdaedalus_core ({exc})") from exc
        if abi != ABI_VERSION:
            raise OSError(f"{path}: ABI version {abi}, this daemon speaks {ABI_VERSION}")
        self.version = self.ffi.string(self.lib.dcore_version()).decode(errors="replace")

    def probe(self, codec: str) -> bool:
        return self.lib.dcore_probe(codec.encode()) == 1

    def open(self, codec: str) -> FourierDecoder:
        handle = self.lib.dcore_open(codec.encode(), 0)
        if handle == self.ffi.NULL:
            raise DecodeError(f"libdaedalus_core would not open a {codec} decoder")
        return FourierDecoder(self, handle, codec)


class FourierDecoder:
    """A libdaedalus_core decoder with the CodecContext surface sessions use.

    Pictures are copied out into ``av.VideoFrame``s (NV12 or P010) so that
    pixels.pack_frame writes them into CAPTURE exactly like libavcodec's.
    """

    def __init__(self, library: FourierLibrary, handle, codec: str) -> None:
        self._lib, self._ffi = library.lib, library.ffi
        self._handle = self._ffi.gc(handle, library.lib.dcore_close)
        self.codec = codec
        self._lock = threading.Lock()

    def _error(self, what: str, status: int) -> DecodeError:
        detail = self._ffi.string(self._lib.dcore_last_error(self._handle)).decode(errors="replace")
        return DecodeError(f"libdaedalus_core {what}: {os.strerror(-status)}"
                           + (f": {detail}" if detail else ""))

    def decode(self, packet: av.Packet | None = None) -> list[av.VideoFrame]:
        with self._lock:
            if packet is None:
                status = self._lib.dcore_send(self._handle, self._ffi.NULL, 0, 0)
            else:
                data = bytes(packet)
                pts = packet.pts if packet.pts is not None else -1
                status = self._lib.dcore_send(self._handle, data, len(data), pts)
            if status < 0:
                raise self._error("rejected the bitstream", status)
            return self._receive_all()

    def _receive_all(self) -> list[av.VideoFrame]:
        frames = []
        pic = self._ffi.new("struct dcore_picture *")
        while True:
            status = self._lib.dcore_receive(self._handle, pic)
            if status in (-errno.EAGAIN, -errno.ENODATA):
                return frames
            if status < 0:
                raise self._error("failed a picture", status)
            try:
                frames.append(self._to_frame(pic))
            finally:
                self._lib.dcore_release(self._handle, pic)

    def _to_frame(self, pic) -> av.VideoFrame:
        try:
            fmt, bps = _AV_FORMATS[pic.fourcc]
        except KeyError:
            raise DecodeError(f"libdaedalus_core returned fourcc {pic.fourcc:#x}, not NV12/P010") from None
        w, h = int(pic.width), int(pic.height)
        frame = av.VideoFrame(w, h, fmt)
        for index, rows in ((0, h), (1, (h + 1) // 2)):
            row_bytes = (w if index == 0 else 2 * ((w + 1) // 2)) * bps
            src_stride = int(pic.stride[index])
            if src_stride < row_bytes or pic.plane[index] == self._ffi.NULL:
                raise DecodeError(f"libdaedalus_core plane {index}: stride {src_stride} "
                                  f"< {row_bytes} bytes a row")
            src = self._ffi.buffer(pic.plane[index], src_stride * (rows - 1) + row_bytes)
            plane = frame.planes[index]
            dst = memoryview(plane)
            for row in range(rows):
                dst[row * plane.line_size: row * plane.line_size + row_bytes] = \
                    src[row * src_stride: row * src_stride + row_bytes]
        frame.pts = int(pic.pts)
        return frame

    def flush_buffers(self) -> None:
        with self._lock:
            self._lib.dcore_flush(self._handle)

    def close(self) -> None:
        pass  # the gc'd handle closes it


# --------------------------------------------------------------------------- selection

_cache_lock = threading.Lock()
_cache: dict[str, tuple[FourierLibrary | None, str]] = {}


def library_candidates(env: dict[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    if env.get("DAEDALUS_FOURIER_LIB"):
        return [env["DAEDALUS_FOURIER_LIB"]]
    found = ctypes.util.find_library("daedalus_core")
    return ([found] if found else []) + list(LIBRARY_NAMES)


def load_fourier(env: dict[str, str] | None = None) -> tuple[FourierLibrary | None, str]:
    """(the library, its description) or (None, why it is not used). Looked up
    once per $DAEDALUS_FOURIER_LIB value (find_library runs ldconfig)."""
    key = (os.environ if env is None else env).get("DAEDALUS_FOURIER_LIB", "")
    with _cache_lock:
        if key not in _cache:
            _cache[key] = _load(library_candidates(env))
        return _cache[key]


def _load(candidates: list[str]) -> tuple[FourierLibrary | None, str]:
    errors = []
    for path in candidates:
        try:
            library = FourierLibrary(path)
        except OSError as exc:
            errors.append(str(exc))
            continue
        log.info("daedalus-fourier: loaded %s (libdaedalus_core %s)", path, library.version)
        return library, f"libdaedalus_core {library.version} ({path})"
    # One line at startup, at info: running without it is the normal case off a Pi.
    why = "libdaedalus_core not installed"
    if any("ABI version" in e or "not a libdaedalus_core" in e for e in errors):
        why = "; ".join(e for e in errors if "ABI" in e or "not a" in e)
    elif errors and len(candidates) == 1:
        why = errors[0]
    log.info("daedalus-fourier: %s; decoding on the CPU (libavcodec)", why)
    return None, why


def reset_cache() -> None:
    """Forget loaded libraries (tests switch $DAEDALUS_FOURIER_LIB)."""
    with _cache_lock:
        _cache.clear()


def mode(env: dict[str, str] | None = None) -> str:
    value = (os.environ if env is None else env).get("DAEDALUS_DISPATCH", "auto").strip().lower()
    if value not in ("auto", "cpu", "fourier"):
        raise UnsupportedError(f"DAEDALUS_DISPATCH={value!r}: expected auto, cpu or fourier")
    return value


def _cpu_context(codec: str, thread_count: int, thread_type: str) -> av.CodecContext:
    ctx = av.CodecContext.create(codec, "r")
    ctx.thread_type = thread_type
    ctx.thread_count = thread_count
    return ctx


def open_decoder(codec: str, *, thread_count: int = 0, thread_type: str = "SLICE",
                 env: dict[str, str] | None = None):
    """A frame decoder for ``codec`` (a libavcodec decoder name: vp9, h264, av1)
    and the provider it runs on."""
    wanted = mode(env)
    if wanted != "cpu":
        library, detail = load_fourier(env)
        why = detail
        if library is not None:
            if library.probe(codec):
                try:
                    return library.open(codec), Provider("fourier", detail)
                except DecodeError as exc:
                    why = str(exc)
                    log.warning("daedalus-fourier: %s; this stream decodes on the CPU", exc)
            else:
                why = f"{detail} does not offer {codec}"
        if wanted == "fourier":
            raise UnsupportedError(f"DAEDALUS_DISPATCH=fourier but {why}")
        return _cpu_context(codec, thread_count, thread_type), Provider("cpu", why)
    return _cpu_context(codec, thread_count, thread_type), Provider("cpu", "DAEDALUS_DISPATCH=cpu")


def describe(env: dict[str, str] | None = None) -> str:
    """One line for ``doctor``: what decoding runs on here."""
    try:
        wanted = mode(env)
    except UnsupportedError as exc:
        return str(exc)
    if wanted == "cpu":
        return "CPU (libavcodec), forced by DAEDALUS_DISPATCH=cpu"
    library, detail = load_fourier(env)
    if library is None:
        return f"CPU (libavcodec); daedalus-fourier: {detail}"
    offered = [c for c in ("vp9", "h264", "av1") if library.probe(c)]
    return (f"daedalus-fourier {detail} for {', '.join(offered) or 'no codec'}; "
            f"CPU (libavcodec) for the rest")
