""":mod:`daedalus_v4l2._native` for the codecs' C header readers
(:mod:`.av1_native`, :mod:`.h264_native`): the error a broken or stale install
gets, and the buffer a reader's first failure is written into."""
from __future__ import annotations

ERROR_BYTES = 256


def load(symbol: str, what: str):
    """(ffi, lib) of the native module, which must have ``symbol`` (``what`` it is for)."""
    try:
        from .._native import ffi, lib
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ImportError("daedalus_v4l2._native is not built; reinstall the package "
                          "(pip install .)") from exc
    if not hasattr(lib, symbol):  # pragma: no cover - a stale build
        raise ImportError(f"daedalus_v4l2._native was built before its {what}; "
                          "reinstall the package (pip install .)")
    return ffi, lib


def error_buffer(ffi):
    """Where a C reader writes why it refused its input."""
    return ffi.new(f"char[{ERROR_BYTES}]")


def message(ffi, buffer) -> str:
    return ffi.string(buffer).decode("ascii", "replace")
