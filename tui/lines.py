"""A widget drawn line by line from hashable line keys, repainting only what changed.

The views update ten times a second or more while the decoder runs in
another thread of the same process: every millisecond the UI thread spends
holding the GIL is a millisecond the decode does not get.  Building Rich
``Text``/``Table`` renderables per update and letting Textual lay them out
again cost the most; here a widget describes each screen line as a *key*
(a tuple of the values it shows), ``spans(key)`` turns a key into
``(text, style)`` pieces, and the line's ``Strip`` is built once per key and
width and cached.  ``show(keys)`` repaints only the lines whose key changed,
and asks for a new layout only when the number of lines changes and the
widget's height follows it (``height: auto``).
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from functools import lru_cache

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget

STRIP_CACHE = 512


@lru_cache(maxsize=256)
def style(name: str) -> Style:
    """A Rich style from its text form (``"bold white on red"``), parsed once."""
    return Style.parse(name) if name else Style.null()


class LinesWidget(Widget):
    """Subclasses implement ``spans(key) -> [(text, style name), ...]``."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._keys: list[Hashable] = []
        self._strips: dict[tuple[Hashable, int], Strip] = {}
        self._base: Style | None = None
        self.lines_repainted = 0            # for tests and the benchmark

    # ------------------------------------------------------------------ subclass API
    def spans(self, key: Hashable) -> Sequence[tuple[str, str]]:
        raise NotImplementedError

    def show(self, keys: list[Hashable]) -> None:
        """Make ``keys`` the lines on screen; repaint the ones that changed."""
        old, self._keys = self._keys, keys
        if len(old) != len(keys) and self.styles.height is not None and \
                self.styles.height.is_auto:
            self.refresh(layout=True)
            return
        width = self.size.width
        if not width:
            self.refresh()
            return
        for y in range(max(len(old), len(keys))):
            if y >= len(old) or y >= len(keys) or old[y] != keys[y]:
                self.refresh(Region(0, y, width, 1))
                self.lines_repainted += 1

    @property
    def lines(self) -> list[str]:
        """The lines as plain text (for tests)."""
        return ["".join(text for text, _ in self.spans(key)) for key in self._keys]

    # ------------------------------------------------------------------ Textual
    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._keys)

    def notify_style_update(self) -> None:
        self._base = None
        self._strips.clear()
        super().notify_style_update()

    def on_resize(self) -> None:
        self._strips.clear()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if self._base is None:
            self._base = self.rich_style      # walks the ancestors: not once per line
        base = self._base
        if y >= len(self._keys):
            return Strip.blank(width, base)
        key = self._keys[y]
        strip = self._strips.get((key, width))
        if strip is None:
            if len(self._strips) >= STRIP_CACHE:
                self._strips.clear()
            segments = [Segment(text, base + style(name) if name else base)
                        for text, name in self.spans(key) if text]
            strip = Strip(segments).crop_extend(0, width, base)
            self._strips[(key, width)] = strip
        return strip
