"""The one bit writer (H.264's SPS/PPS and AV1's headers) against the bit reader."""
import random

import pytest

from daedalus_v4l2.codecs.bitreader import BitReader
from daedalus_v4l2.codecs.bitwriter import BitWriter


def test_what_is_written_reads_back():
    rng = random.Random(7)
    fields = [(rng.choice("uues"), rng.randrange(0, 33), rng.randrange(-5000, 5000))
              for _ in range(400)]
    w = BitWriter()
    expected = []
    for kind, n, v in fields:
        if kind == "u":
            value = abs(v) & ((1 << n) - 1)
            w.u(n, value)
        elif kind == "e":
            value = abs(v)
            w.ue(value)
        else:
            value = v
            w.se(value)
        expected.append((kind, n, value))
    w.trailing_bits()
    data = w.to_bytes()
    assert len(data) * 8 == w.bit_length
    r = BitReader(data)
    for kind, n, value in expected:
        got = r.read_bits(n) if kind == "u" else r.read_ue() if kind == "e" else r.read_se()
        assert got == value, (kind, n)
    assert r.read_bits(1) == 1 and not any(r.read_bits(1) for _ in range(r.bits_left))


def test_trailing_bits_end_on_a_byte_boundary():
    w = BitWriter()
    w.u(3, 0b101)
    w.trailing_bits()
    assert w.to_bytes() == bytes([0b10110000])
    w.trailing_bits()   # already aligned: a whole byte 0x80
    assert w.to_bytes() == bytes([0b10110000, 0x80])


@pytest.mark.parametrize("n,value", [(3, 8), (0, 1), (4, -1), (-1, 0)])
def test_a_value_that_does_not_fit_is_refused(n, value):
    with pytest.raises(ValueError, match="does not fit"):
        BitWriter().u(n, value)


def test_unaligned_bits_are_not_bytes_and_ue_refuses_negatives():
    w = BitWriter()
    w.flag(True)
    with pytest.raises(ValueError, match="whole number of bytes"):
        w.to_bytes()
    with pytest.raises(ValueError, match="negative"):
        w.ue(-1)
