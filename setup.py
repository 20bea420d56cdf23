"""Build hooks of cffi; all other metadata is in pyproject.toml.

``cffi_modules`` makes cffi's setuptools integration, during ``pip install``
(editable or not):
- compile ``daedalus_v4l2/_native_build.py:ffibuilder`` into
  ``daedalus_v4l2._native`` (API mode, a C extension: the pixel hot loops);
- write the protocol's and the uAPI's declarations, parsed, into
  ``daedalus_v4l2._proto_defs`` and ``daedalus_v4l2.v4l2._uapi_defs``
  (out-of-line ABI mode, Python modules: imported without parsing, see
  ``daedalus_v4l2/cdefs.py``).
"""
from setuptools import setup

setup(cffi_modules=[
    "daedalus_v4l2/_native_build.py:ffibuilder",
    "daedalus_v4l2/_defs_build.py:proto_builder",
    "daedalus_v4l2/_defs_build.py:uapi_builder",
])
