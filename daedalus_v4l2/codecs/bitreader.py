"""An MSB-first bit reader for codec headers.

VP9's uncompressed header (VP9 spec section 4.9, "Descriptors": f(n), su(n))
and H.264's RBSP syntax (u(n), ue(v), se(v)) both read bits most significant
first.  Headers are a few dozen bytes, so clarity wins over speed here; the
reader never looks past ``len(data)`` and every read past the end raises
:class:`~daedalus_v4l2.errors.BitstreamError`, which is what callers catch for
any malformed input.
"""
from __future__ import annotations

from daedalus_v4l2.errors import BitstreamError

# ue(v) codes with more than 32 leading zeros do not fit any H.264 syntax
# element; stopping there keeps garbage input from building huge integers.
_MAX_EXP_GOLOMB_LEADING_ZEROS = 32


class BitReader:
    """Reads bits MSB-first from ``data``, starting at byte ``offset``."""

    def __init__(self, data: bytes, offset: int = 0) -> None:
        self._data = bytes(data)
        self._total_bits = len(self._data) * 8
        if not 0 <= offset <= len(self._data):
            raise BitstreamError(f"start offset {offset} outside {len(self._data)} bytes")
        self._pos = offset * 8

    # ---- position ----
    @property
    def bit_position(self) -> int:
        """Bits consumed since the start of ``data``."""
        return self._pos

    @property
    def byte_position(self) -> int:
        """Bytes touched so far: the bit position rounded up to a whole byte."""
        return (self._pos + 7) // 8

    @property
    def bits_left(self) -> int:
        return self._total_bits - self._pos

    def byte_aligned(self) -> bool:
        return self._pos % 8 == 0

    def align(self) -> None:
        """Skip to the next byte boundary (VP9 trailing_bits, H.264 byte alignment)."""
        self._pos = min(self.byte_position * 8, self._total_bits)

    def skip(self, n: int) -> None:
        self._need(n, "skip")
        self._pos += n

    # ---- fixed-width reads ----
    def read_bits(self, n: int, what: str = "bits") -> int:
        """f(n) / u(n): an n-bit unsigned value, most significant bit first."""
        # the codec clients read ~100 fields a picture: the bounds check is inline
        pos = self._pos
        end = pos + n
        if n <= 0 or end > self._total_bits:
            if n < 0:
                raise ValueError(f"negative bit count {n}")
            if n == 0:
                return 0
            self._need(n, what)
        last_byte = (end + 7) >> 3
        chunk = int.from_bytes(self._data[pos >> 3:last_byte], "big")
        self._pos = end
        # bits after the field inside the last byte are shifted out
        return (chunk >> ((last_byte << 3) - end)) & ((1 << n) - 1)

    def read_bool(self, what: str = "flag") -> bool:
        pos = self._pos
        if pos >= self._total_bits:
            self._need(1, what)
        self._pos = pos + 1
        return bool((self._data[pos >> 3] >> (7 - (pos & 7))) & 1)

    def read_su(self, n: int, what: str = "signed value") -> int:
        """VP9 su(n): n magnitude bits, then a sign bit (VP9 spec "Descriptors", su(n))."""
        value = self.read_bits(n, what)
        return -value if self.read_bits(1, what) else value

    def read_delta(self, n: int, what: str = "delta") -> int:
        """A VP9 "delta": a presence flag, then su(n); 0 when absent
        (read_delta_q in VP9 spec "Quantization params syntax")."""
        return self.read_su(n, what) if self.read_bool(what) else 0

    # ---- Exp-Golomb (H.264 spec 9.1, "Parsing process for Exp-Golomb codes") ----
    def read_ue(self, what: str = "ue(v)") -> int:
        leading_zeros = 0
        while not self.read_bool(what):
            leading_zeros += 1
            if leading_zeros > _MAX_EXP_GOLOMB_LEADING_ZEROS:
                raise BitstreamError(f"{what}: Exp-Golomb code longer than 32 bits")
        return (1 << leading_zeros) - 1 + self.read_bits(leading_zeros, what)

    def read_se(self, what: str = "se(v)") -> int:
        code = self.read_ue(what)
        # 1, 2, 3, 4 ... map to 1, -1, 2, -2 ... (H.264 Table 9-3).
        return (code + 1) // 2 if code % 2 else -(code // 2)

    # ---- internals ----
    def _need(self, n: int, what: str) -> None:
        if self._pos + n > self._total_bits:
            raise BitstreamError(
                f"truncated: reading {what} needs {n} bit(s) at bit {self._pos}, "
                f"only {self._total_bits - self._pos} left")
