"""A one-line progress report on stderr, only when stderr is a terminal."""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int = 0, label: str = "decoded", stream=None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.total, self.label = total, label
        self.count = 0
        self.start = time.monotonic()
        self._last_draw = 0.0

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.monotonic()
        if self.enabled and now - self._last_draw >= 0.1:
            self._last_draw = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        fps = self.count / max(now - self.start, 1e-9)
        if self.total:
            width = 30
            filled = min(width, width * self.count // self.total)
            bar = "#" * filled + "-" * (width - filled)
            text = f"\r[{bar}] {self.count}/{self.total} frames {self.label}, {fps:.1f} fps"
        else:
            text = f"\r{self.count} frames {self.label}, {fps:.1f} fps"
        self.stream.write(text)
        self.stream.flush()

    @property
    def fps(self) -> float:
        return self.count / max(time.monotonic() - self.start, 1e-9)

    def close(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
