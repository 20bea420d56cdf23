"""cffi declarations that import fast: parsed at install time, checked at import.

cffi reads a cdef with pycparser, and the protocol's and the uAPI's
declarations took about 0.12 s to parse at every import: a quarter of the
daemon's start, and seconds of it in the kernel rig's emulated guest.  So
``pip install`` runs each set through cffi's out-of-line ABI mode
(``setup.py``, ``_defs_build.py``), which writes a small Python module holding
the parsed types; importing it needs no parser and no compiler.

Such a module is used only when it was built from the very declarations this
package has: a fingerprint of their text is compiled into it, as a
``#define``, and compared at import.  After an edit without a reinstall (or
with no build at all) the declarations are parsed at import, as before, so
nothing can go stale.

This module imports nothing from the package: the build hook loads it by path.
"""
from __future__ import annotations

import importlib
import logging
import re
import zlib

import cffi

log = logging.getLogger(__name__)

# What the kernel's headers take from <linux/types.h>; cffi runs no preprocessor.
KERNEL_TYPES = """
typedef uint8_t __u8; typedef uint16_t __u16; typedef uint32_t __u32; typedef uint64_t __u64;
typedef int8_t __s8; typedef int16_t __s16; typedef int32_t __s32; typedef int64_t __s64;
"""

# The #define a built module carries: the fingerprint of what it was built from.
FINGERPRINT = "DV_DECLARATIONS_FINGERPRINT"

# (cdef text, packed): cffi reads them in order.
Declarations = list[tuple[str, bool]]

_DEFINE = re.compile(r"^\s*#\s*define\s+\w+\s+(0x[0-9a-fA-F]+|\d+)\b")


def header_cdef(text: str) -> str:
    """A C header reduced to what cffi's cdef accepts: integer #defines stay,
    every other preprocessor line goes, and trailing comments on #defines go."""
    kept = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            if _DEFINE.match(line):
                kept.append(line.split("/*")[0].rstrip())
            continue
        kept.append(line)
    return "\n".join(kept)


def with_kernel_types(declarations: Declarations) -> Declarations:
    return [(KERNEL_TYPES, False)] + declarations


def header_declarations(text: str) -> Declarations:
    """What cffi reads of a kernel-style C header (the protocol's)."""
    return with_kernel_types([(header_cdef(text), False)])


def fingerprint(declarations: Declarations) -> int:
    crc = 0
    for text, packed in declarations:
        crc = zlib.crc32(f"{int(packed)}\0{text}\0".encode(), crc)
    return crc


def declare(ffi: cffi.FFI, declarations: Declarations) -> cffi.FFI:
    for text, packed in declarations:
        ffi.cdef(text, packed=packed)
    return ffi


def builder(module_name: str, declarations: Declarations) -> cffi.FFI:
    """The out-of-line ABI-mode builder of ``module_name`` (for setup.py's cffi_modules)."""
    ffi = declare(cffi.FFI(), declarations)
    ffi.cdef(f"#define {FINGERPRINT} {fingerprint(declarations)}")
    ffi.set_source(module_name, None)
    return ffi


def load(module_name: str, declarations: Declarations) -> cffi.FFI:
    """The FFI of ``declarations``: the one built into ``module_name`` at install
    time if it was built from exactly these, else parsed now."""
    built = built_ffi(module_name)
    if built is not None:
        if getattr(built.dlopen(None), FINGERPRINT, None) == fingerprint(declarations):
            return built
        log.info("%s was built from other declarations (edited since the install): "
                 "parsing them at import", module_name)
    return declare(cffi.FFI(), declarations)


def built_ffi(module_name: str) -> cffi.FFI | None:
    """The FFI the install built into ``module_name``; None if there is none."""
    try:
        return importlib.import_module(module_name).ffi
    except ImportError:
        return None
