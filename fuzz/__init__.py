"""Fuzz targets of daedalus-v4l2 (docs/reliability.md).

``fuzz.targets`` holds the targets: plain functions of one ``bytes`` argument
that raise only on a bug.  The hypothesis tests (tests/test_fuzz_*.py) and the
atheris harness (``python -m fuzz.run TARGET``) call the same functions.
"""
