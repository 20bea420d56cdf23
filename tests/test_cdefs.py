"""The protocol's and the uAPI's cffi declarations: parsed at install time, used
only when built from exactly what the package declares (daedalus_v4l2/cdefs.py)."""
from __future__ import annotations

import logging
import sys

import cffi
import pytest

from daedalus_v4l2 import cdefs, proto
from daedalus_v4l2.v4l2 import uapi
from daedalus_v4l2.v4l2.uapi_cdef import DECLARATIONS as UAPI_DECLARATIONS

INSTALLED = [
    (proto, cdefs.header_declarations(proto.header_path().read_text())),
    (uapi, cdefs.with_kernel_types(UAPI_DECLARATIONS)),
]


@pytest.mark.parametrize("module,declarations", INSTALLED, ids=["proto", "uapi"])
def test_the_install_built_what_the_package_declares_and_it_is_used(module, declarations):
    built = cdefs.built_ffi(module.DEFS_MODULE)
    assert built is not None, f"{module.DEFS_MODULE} is missing: `pip install -e .` writes it (setup.py)"
    assert getattr(built.dlopen(None), cdefs.FINGERPRINT) == cdefs.fingerprint(declarations), \
        f"{module.DEFS_MODULE} is older than the declarations: reinstall (`pip install -e .`)"
    assert module.ffi is built


def _write_built_module(directory, name: str, declarations) -> None:
    cdefs.builder(name, declarations).emit_python_code(str(directory / f"{name}.py"))


A = [("struct dv_probe { uint32_t a; };", False)]
B = [("struct dv_probe { uint32_t a; uint64_t b; };", False)]


@pytest.fixture
def built_a(tmp_path, monkeypatch):
    name = f"dv_probe_defs_{tmp_path.name.replace('-', '_')}"
    _write_built_module(tmp_path, name, A)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_a_build_of_the_same_declarations_is_used(built_a):
    ffi = cdefs.load(built_a, A)
    assert ffi is sys.modules[built_a].ffi
    assert ffi.sizeof("struct dv_probe") == 4


def test_a_build_of_other_declarations_is_not_used(built_a, caplog):
    with caplog.at_level(logging.INFO, logger="daedalus_v4l2.cdefs"):
        ffi = cdefs.load(built_a, B)
    assert ffi is not sys.modules[built_a].ffi
    assert ffi.sizeof("struct dv_probe") == 16   # B's layout, parsed now
    assert "built from other declarations" in caplog.text


def test_no_build_at_all_parses_at_import():
    ffi = cdefs.load("dv_probe_defs_never_built", B)
    assert isinstance(ffi, cffi.FFI) and ffi.sizeof("struct dv_probe") == 16


def test_the_fingerprint_sees_text_and_packing():
    assert cdefs.fingerprint(A) != cdefs.fingerprint(B)
    assert cdefs.fingerprint(A) != cdefs.fingerprint([(A[0][0], True)])
