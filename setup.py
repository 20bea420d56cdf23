"""Build hook for the native helpers; all other metadata is in pyproject.toml.

``cffi_modules`` makes cffi's setuptools integration compile
``daedalus_v4l2/_native_build.py:ffibuilder`` into ``daedalus_v4l2._native``
(API mode, a C extension) during ``pip install``, editable or not.
"""
from setuptools import setup

setup(cffi_modules=["daedalus_v4l2/_native_build.py:ffibuilder"])
