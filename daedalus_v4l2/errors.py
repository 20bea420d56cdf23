"""Errors of daedalus-v4l2.

Like PyAV's, each error subclasses the builtin it means, so callers can catch
``ValueError`` for bad data or ``OSError`` for device trouble without knowing
this package's names.
"""
from __future__ import annotations


class DaedalusError(Exception):
    """Base of every error this package raises on purpose."""


class ProtocolError(DaedalusError, ValueError):
    """A wire-protocol message is malformed (magic, version, type or lengths)."""


class BitstreamError(DaedalusError, ValueError):
    """A bitstream or container could not be parsed."""


class UnsupportedError(DaedalusError, ValueError):
    """Valid input that this decoder does not handle (codec, profile, format)."""


class DecodeError(DaedalusError, ValueError):
    """libavcodec rejected a bitstream, or a request came back with an error."""


class DeviceError(DaedalusError, OSError):
    """A V4L2 device, real or simulated, refused an operation."""


class InvariantError(DaedalusError, AssertionError):
    """The simulated kernel caught a broken rule (a buffer on two lists, a
    cookie completed twice, a buffer returned twice).  Always a bug."""
