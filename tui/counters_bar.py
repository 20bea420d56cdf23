"""Two lines at the top: the source's state, then the counters."""
from __future__ import annotations

from textual.reactive import reactive

from .lines import LinesWidget
from .model import Counters


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


class CountersBar(LinesWidget):
    DEFAULT_CSS = """
    CountersBar { height: 2; padding: 0 1; background: $boost; }
    """

    counters: reactive[Counters] = reactive(Counters, repaint=False)
    running: reactive[bool] = reactive(True, repaint=False)
    source: reactive[str] = reactive("", repaint=False)
    clock_ms: reactive[int] = reactive(0, repaint=False)
    events_total: reactive[int] = reactive(0, repaint=False)
    status: reactive[str] = reactive("", repaint=False)

    def on_mount(self) -> None:
        self.update()

    def set(self, counters: Counters, running: bool, source: str, clock_ms: int,
            events_total: int, status: str) -> None:
        """All at once (one repaint of what changed), from a snapshot."""
        self.set_reactive(CountersBar.counters, counters)
        self.set_reactive(CountersBar.running, running)
        self.set_reactive(CountersBar.source, source)
        self.set_reactive(CountersBar.clock_ms, clock_ms)
        self.set_reactive(CountersBar.events_total, events_total)
        self.set_reactive(CountersBar.status, status)
        self.update()

    def update(self) -> None:
        self.show([("state", self.running, self.source, self.clock_ms, self.events_total,
                    self.status), ("counters", self.counters)])

    def watch_counters(self) -> None:
        self.update()

    def watch_running(self) -> None:
        self.update()

    def watch_status(self) -> None:
        self.update()

    def spans(self, key: tuple) -> list[tuple[str, str]]:
        if key[0] == "state":
            _, running, source, clock_ms, events_total, status = key
            state = (" RUNNING ", "bold black on green") if running else \
                (" PAUSED ", "bold black on yellow")
            return [state, (f" {source}  t={clock_ms} ms  ev {events_total}  ", ""),
                    (status, "italic")]
        c: Counters = key[1]
        return [
            (f"fps {c.fps:.1f} lat p50/p99 {_ms(c.latency_p50_ms)}/{_ms(c.latency_p99_ms)} ms "
             f"jobs {c.jobs} done {c.done} ", ""),
            (f"err {c.errors}", "bold red" if c.errors else ""), (" ", ""),
            (f"wdog {c.watchdog_expiries}", "bold red" if c.watchdog_expiries else ""), (" ", ""),
            (f"parked {c.parked_now} max {c.parked_max}", "bold magenta" if c.parked_now else ""),
        ]
