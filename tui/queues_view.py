"""Per context: the OUTPUT and CAPTURE queues, one cell per buffer, and streaming state.

Three lines per context (its header, OUTPUT, CAPTURE) and a legend, each a
line key of the values it shows (``lines.LinesWidget``): a queue line is
repainted only when a buffer of that queue changed state.
"""
from __future__ import annotations

from textual.reactive import reactive

from .lines import LinesWidget
from .model import ContextView, QueueView
from .styles import BUFFER_STYLE

LEGEND = ("dequeued", "in_request", "queued", "claimed", "parked", "held", "done", "error")


def queue_key(q: QueueView) -> tuple:
    return ("queue", q.name[:3], q.streaming, tuple((b.index, b.state) for b in q.buffers))


class QueuesView(LinesWidget):
    DEFAULT_CSS = """
    QueuesView { height: auto; max-height: 12; border: round $primary-darken-2;
                 border-title-color: $text-muted; padding: 0 1; }
    """

    contexts: reactive[tuple[ContextView, ...]] = reactive(tuple, repaint=False)
    ctx_filter: reactive[int | None] = reactive(None, repaint=False)

    def on_mount(self) -> None:
        self.border_title = "queues"
        self._sync()

    def watch_contexts(self) -> None:
        self._sync()

    def watch_ctx_filter(self) -> None:
        self._sync()

    def _sync(self) -> None:
        keys: list[tuple] = []
        for ctx in self.contexts:
            if self.ctx_filter in (None, ctx.id):
                keys.append(("ctx", ctx.id, ctx.codec, ctx.frame))
                keys.append(queue_key(ctx.output))
                keys.append(queue_key(ctx.capture))
        if not keys:
            keys.append(("none",))
        keys.append(("legend",))
        self.show(keys)

    def spans(self, key: tuple) -> list[tuple[str, str]]:
        kind = key[0]
        if kind == "ctx":
            _, ctx_id, codec, frame = key
            return [(f"ctx {ctx_id}", "bold"), (f" {codec} frame {frame}", "")]
        if kind == "queue":
            _, name, streaming, buffers = key
            out = [(f" {name} ", ""), ("on " if streaming else "off", "green" if streaming else "red"),
                   (" ", "")]
            for index, state in buffers:
                letter, look = BUFFER_STYLE.get(state, ("?", "red"))
                out += [(f"{index:>2}", "grey62"), (letter, look), (" ", "")]
            if not buffers:
                out.append(("no buffers", "italic grey50"))
            return out
        if kind == "none":
            return [("no open contexts", "italic grey50")]
        out = []
        for state in LEGEND:
            letter, look = BUFFER_STYLE[state]
            out += [(letter, look), (f"={state} ", "grey62")]
        return out
