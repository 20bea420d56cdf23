"""An MSB-first bit writer: the inverse of :class:`~daedalus_v4l2.codecs.bitreader.BitReader`.

The daemon writes back what a stateless client sent as controls: H.264's SPS
and PPS (descriptors u(n), ue(v), se(v)) and AV1's sequence and frame headers
(f(n), which is u(n) by another name).  The bits accumulate in one integer, so
a header of a few hundred bits costs a few shifts, not a list of ints.
"""
from __future__ import annotations


class BitWriter:
    """Bits most significant first, with the descriptors u(n), ue(v) and se(v)."""

    __slots__ = ("_value", "_bits")

    def __init__(self) -> None:
        self._value = 0
        self._bits = 0

    @property
    def bit_length(self) -> int:
        return self._bits

    def u(self, n: int, value: int) -> None:
        """u(n) (H.264 7.2), f(n) (AV1 4.10.2): ``value`` in ``n`` bits."""
        if n < 0 or value < 0 or value >> n:
            raise ValueError(f"{value} does not fit {n} bits")
        self._value = (self._value << n) | value
        self._bits += n

    def flag(self, value: bool) -> None:
        self.u(1, 1 if value else 0)

    def ue(self, value: int) -> None:
        """ue(v): Exp-Golomb, unsigned."""
        if value < 0:
            raise ValueError(f"ue(v) of negative {value}")
        code = value + 1
        self.u(code.bit_length() - 1, 0)
        self.u(code.bit_length(), code)

    def se(self, value: int) -> None:
        """se(v): Exp-Golomb, signed (positive values first)."""
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def trailing_bits(self) -> None:
        """A one, then zeros to the byte boundary: H.264's rbsp_trailing_bits(),
        AV1's trailing_bits() (spec 5.3.4)."""
        self.u(1, 1)
        self.u(-self._bits % 8, 0)

    def to_bytes(self) -> bytes:
        if self._bits % 8:
            raise ValueError(f"{self._bits} bits is not a whole number of bytes")
        return self._value.to_bytes(self._bits // 8, "big")
