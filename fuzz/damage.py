"""The four kinds of bitstream damage the bad-input tests apply, in the sim
(tests/test_bad_input.py) and on the real module (tests/vm/test_reliability_faults.py)."""
from __future__ import annotations

import random

KINDS = ("flip", "truncate", "garbage", "zeros")


def mutate(payload: bytes, how: str, rng: random.Random) -> bytes:
    """``payload`` damaged one way: every 16th byte (on average) inverted, cut to a
    third, replaced by random bytes of the same length, or zeroed."""
    if how not in KINDS:
        raise ValueError(f"unknown damage {how!r}; one of {', '.join(KINDS)}")
    b = bytearray(payload)
    if how == "flip":
        for _ in range(max(1, len(b) // 16)):
            b[rng.randrange(len(b))] ^= 0xFF
    elif how == "truncate":
        b = b[:max(1, len(b) // 3)]
    elif how == "garbage":
        b = bytearray(rng.randbytes(len(b)))
    else:
        b = bytearray(len(b))
    return bytes(b)
