"""Argument types of the command line and of the benchmark scripts.

Each one turns a bad value into argparse's usage error (exit status 2, the
option named) before any work starts: a benchmark handed ``--repeat 0`` used
to encode and decode for a minute before it failed on an empty median, and a
negative ``--warmup`` ran to the end as if it meant something.
"""
from __future__ import annotations

import argparse

# The sizes the simulated device accepts (backends/sim/formats.py: MIN_SIZE, MAX_SIZE).
MIN_SIZE, MAX_SIZE = 16, 4096


def size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT``, each from 16 to 4096."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if not (MIN_SIZE <= w <= MAX_SIZE and MIN_SIZE <= h <= MAX_SIZE):
        raise argparse.ArgumentTypeError(
            f"sizes go from {MIN_SIZE}x{MIN_SIZE} to {MAX_SIZE}x{MAX_SIZE}, got {text!r}")
    return w, h


def positive(text: str) -> int:
    """A count of at least one."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative(text: str) -> int:
    """A count that may be zero."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def non_negative_number(text: str) -> float:
    """A rate or a time that may be zero (not negative, not inf or nan)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (0 <= value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a number, 0 or more, got {text!r}")
    return value


def choices_list(choices: tuple[str, ...]):
    """A comma-separated list of some of ``choices``, in the order given, each once."""
    def parse(text: str) -> tuple[str, ...]:
        picked = tuple(dict.fromkeys(c.strip() for c in text.split(",") if c.strip()))
        unknown = [c for c in picked if c not in choices]
        if unknown or not picked:
            raise argparse.ArgumentTypeError(
                f"{'unknown: ' + ', '.join(unknown) + '; ' if unknown else ''}"
                f"choose one or more of {','.join(choices)}, got {text!r}")
        return picked
    parse.__name__ = "list"   # argparse names the type in its messages
    return parse


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
