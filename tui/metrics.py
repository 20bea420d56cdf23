"""Frame rate and latency over a sliding window, cheap enough for a decode loop."""
from __future__ import annotations

from collections import deque


class RateMeter:
    """Events per second over the last ``window`` seconds of the given clock."""

    def __init__(self, window: float = 2.0) -> None:
        self.window = window
        self._times: deque[float] = deque()

    def tick(self, now: float) -> None:
        self._times.append(now)

    def rate(self, now: float) -> float:
        times = self._times
        while times and times[0] < now - self.window:
            times.popleft()
        if len(times) < 2:
            return 0.0
        span = max(now - times[0], times[-1] - times[0])
        return (len(times) - 1) / span if span > 0 else 0.0


class LatencyWindow:
    """The last ``size`` latencies (seconds); percentiles in ms."""

    def __init__(self, size: int = 256) -> None:
        self._values: deque[float] = deque(maxlen=size)

    def add(self, seconds: float) -> None:
        self._values.append(seconds)

    def __len__(self) -> int:
        return len(self._values)

    def percentile(self, p: float) -> float | None:
        if not self._values:
            return None
        ordered = sorted(self._values)
        k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
        return ordered[k] * 1000.0
