"""The event log: requests, responses, completions, errors; filterable by context.

At full decode speed the simulation emits thousands of events a second, far
more than anyone reads, and a log that scrolls repaints every visible line.
So new events are written at most ``WRITE_HZ`` times a second (the counters,
queues and in-flight table update with every snapshot), each write at most
``PER_UPDATE`` lines (the newest, plus any errors and faults; a marker line
says how many were left out), and the log keeps the last ``KEEP`` lines.
When events come slowly (paused, stepping) each one is written at once.
All events stay available (``events``) for re-filtering.
"""
from __future__ import annotations

import time
from collections import deque

from rich.style import Style
from textual.geometry import Size
from textual.reactive import Reactive, reactive
from textual.strip import Strip
from textual.widgets import Log

from .model import LogEvent

KEEP = 1000            # lines in the log (and events kept for re-filtering)
PER_UPDATE = 200       # lines written per write at most
WRITE_HZ = 2           # writes a second at most


class EventLog(Log):
    DEFAULT_CSS = """
    EventLog { height: 1fr; min-height: 4; border: round $primary-darken-2;
               border-title-color: $text-muted; overflow-x: hidden;
               scrollbar-size-vertical: 1; }
    """

    ctx_filter: reactive[int | None] = reactive(None)
    # Log sets ``virtual_size`` on every write while it fills up, and on Widget that
    # asks for a layout of the whole screen: each one re-rendered every widget.  More
    # lines never move or resize the log (its vertical scrollbar is always there: Log's
    # overflow-y is scroll), they only change the scrollbar's thumb, so here a new size
    # updates the scrollbar alone.
    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False)

    def __init__(self, **kwargs) -> None:
        super().__init__(max_lines=KEEP, auto_scroll=False, **kwargs)
        self.events: deque[LogEvent] = deque(maxlen=KEEP)
        self.left_out = 0          # events not written as lines (more than PER_UPDATE at once)
        self._pending: list[LogEvent] = []
        self._last_write = 0.0
        self._timer = None
        self._base: Style | None = None
        self.following = True      # keep the newest line in view (until the user scrolls up)

    def on_mount(self) -> None:
        self._retitle()

    def _wanted(self, event: LogEvent) -> bool:
        # Events without a context (daemon, faults, log lines) show under every filter.
        return self.ctx_filter is None or event.ctx in (None, self.ctx_filter)

    def add_events(self, events: tuple[LogEvent, ...]) -> None:
        if not events:
            return
        self.events.extend(events)
        self._pending.extend(e for e in events if self._wanted(e))
        wait = self._last_write + 1 / WRITE_HZ - time.monotonic()
        if wait <= 0:
            self.flush()
        elif self._timer is None and self._pending:
            self._timer = self.set_timer(wait, self.flush)

    @property
    def caught_up(self) -> bool:
        """Every event added so far is written (for tests)."""
        return not self._pending

    def flush(self) -> None:
        """Write what is pending now."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        pending, self._pending = self._pending, []
        self._last_write = time.monotonic()
        self._write(pending)

    def _write(self, events: list[LogEvent], limit: int = PER_UPDATE) -> None:
        if not events:
            return
        lines = []
        if len(events) > limit:
            skipped = len(events) - limit
            self.left_out += skipped
            # errors and faults are what one looks for: never left out
            keep = [e for e in events[:skipped] if e.is_error or e.kind == "fault"]
            lines.append(f"{'':>7} {'':<5} {'…':<13} {'':<6} {skipped} events not shown"
                         + (f" ({len(keep)} errors/faults below)" if keep else ""))
            lines.extend(e.line() for e in keep)
            events = events[skipped:]
        lines.extend(e.line() for e in events)
        self.write_lines(lines, scroll_end=False)
        if self.following:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def watch_virtual_size(self, size: Size) -> None:
        self._scroll_update(size)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        # Scrolled up (by the user): stay put; back at the end: follow again.  Lines
        # written do not move scroll_y, so they do not change this.
        self.following = new >= self.max_scroll_y

    def on_resize(self) -> None:
        if self.following:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    # Log works out rich_style (a walk over the ancestors' styles) for every line it
    # renders; it only changes with the styles.
    def notify_style_update(self) -> None:
        self._base = None
        super().notify_style_update()

    def _render_line(self, y: int, scroll_x: int, width: int) -> Strip:
        if self._base is None:
            self._base = self.rich_style
        base = self._base
        if y >= len(self._lines):
            return Strip.blank(width, base)
        line = self._render_line_strip(y, base)
        return line.crop_extend(scroll_x, scroll_x + width, base).apply_offsets(scroll_x, y)

    def watch_ctx_filter(self) -> None:
        self._pending.clear()
        self.clear()
        self.following = True
        self._write([e for e in self.events if self._wanted(e)], limit=KEEP)
        self._retitle()

    def _retitle(self) -> None:
        which = "all contexts" if self.ctx_filter is None else f"ctx {self.ctx_filter}"
        self.border_title = f"events · {which}"
