"""The in-flight table: one row per job, from device_run until its CAPTURE buffer is done.

A line widget (``lines.LinesWidget``), keyed by cookie: a snapshot is turned
into one *line key* per screen line (the strings each column shows, plus the
row's look), and only the lines whose key changed are repainted; a line's
``Strip`` is built once per key and width and cached.  The columns have fixed
widths, numbers right-aligned under right-aligned headers, text (codec,
state) left-aligned under left-aligned headers, all padded by the same code,
so headers and values cannot drift apart.

Why not ``DataTable`` (keyed rows, ``update_cell``): tried first and measured
with benchmarks/tui_overhead.py, a row added and one removed per picture:
``remove_row`` asks for a new layout of the whole screen on every update, and
every changed cell (the ages change each time) goes through Rich's console;
the UI thread took ~36 ms per update with it, ~19 ms with this widget (the
rest of the screen unchanged).  The rows never need
a layout: the table's size comes from the CSS, and rows that do not fit are
summed up in a last "+N more" line instead of a scrollbar.
"""
from __future__ import annotations

from textual.reactive import reactive

from .lines import LinesWidget
from .model import InflightRow
from .styles import ENTRY_STYLE

# key, header, width (cells), right-aligned
COLUMNS = (
    ("cookie", "cookie", 7, True),
    ("ctx", "ctx", 3, True),
    ("codec", "codec", 5, False),
    ("frame", "frame", 5, True),
    ("out", "out", 3, True),
    ("cap", "cap", 3, True),
    ("state", "state", 8, False),
    ("age", "age ms", 7, True),
)
KEYS = tuple(key for key, *_ in COLUMNS)
GAP = 1                       # cells between two columns
STATE_COLUMN = KEYS.index("state")

# A line key: ("header",), ("row", values, state, dim), ("more", n), ("idle",)
LineKey = tuple


def row_values(row: InflightRow) -> tuple[str, ...]:
    """What each column shows, as plain strings."""
    return (str(row.cookie), str(row.ctx), row.codec,
            "-" if row.frame is None else str(row.frame),
            "-" if row.out_index is None else str(row.out_index),
            str(row.cap_index), row.state, str(row.age_ms))


def finished(row: InflightRow) -> bool:
    """Done and its OUTPUT buffer returned: kept on screen for a moment, dimmed."""
    return row.state == "done" and row.out_index is None


def fit(value: str, width: int, right: bool) -> str:
    """``value`` in exactly ``width`` cells (ASCII), cut with an ellipsis if longer."""
    if len(value) > width:
        return value[:width - 1] + "…"
    return value.rjust(width) if right else value.ljust(width)


def line_text(key: LineKey) -> str:
    """The plain text of a line (what tests and the strip cache build on)."""
    kind = key[0]
    if kind == "header":
        cells = [fit(header, width, right) for _, header, width, right in COLUMNS]
    elif kind == "row":
        cells = [fit(value, width, right)
                 for value, (_, _, width, right) in zip(key[1], COLUMNS)]
    elif kind == "more":
        return f"{fit(f'+{key[1]}', COLUMNS[0][2], True)} more"
    else:
        return fit("idle", COLUMNS[0][2], True)
    return (" " * GAP).join(cells)


class InflightTable(LinesWidget):
    DEFAULT_CSS = """
    InflightTable { height: 1fr; min-height: 4; border: round $primary-darken-2;
                    border-title-color: $text-muted;
                    padding: 0 1; }
    """

    # (not ``rows``: the table is keyed by cookie; entries are the snapshot's rows)
    entries: reactive[tuple[InflightRow, ...]] = reactive(tuple, always_update=True,
                                                          repaint=False)
    ctx_filter: reactive[int | None] = reactive(None, repaint=False)

    def on_mount(self) -> None:
        self.border_title = "in flight"
        self._sync()

    @property
    def shown_cookies(self) -> list[int]:
        return [int(key[1][0]) for key in self._keys if key[0] == "row"]

    def watch_entries(self) -> None:
        self._sync()

    def watch_ctx_filter(self) -> None:
        self._sync()

    def on_resize(self) -> None:
        super().on_resize()
        self._sync()
        self.refresh()

    def _sync(self) -> None:
        rows = [r for r in self.entries if self.ctx_filter in (None, r.ctx)]
        room = max(1, self.size.height - 1) if self.size.height else len(rows) or 1
        more = 0
        if len(rows) > room:
            rows, more = rows[:room - 1], len(rows) - room + 1
        keys: list[LineKey] = [("header",)]
        keys.extend(("row", row_values(r), r.state, finished(r)) for r in rows)
        if more:
            keys.append(("more", more))
        elif not rows:
            keys.append(("idle",))
        self.show(keys)

    def spans(self, key: LineKey) -> list[tuple[str, str]]:
        kind = key[0]
        if kind == "row":
            _, values, state, dim = key
            look = "dim" if dim else ""
            out = []
            for i, (value, (_, _, cells, right)) in enumerate(zip(values, COLUMNS)):
                if i:
                    out.append((" " * GAP, look))
                name = f"{ENTRY_STYLE.get(state, '')} {look}".strip() if i == STATE_COLUMN \
                    else look
                out.append((fit(value, cells, right), name))
            return out
        look = {"header": "bold", "more": "italic"}.get(kind, "italic grey50")
        return [(line_text(key), look)]
