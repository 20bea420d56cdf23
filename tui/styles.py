"""Colours for buffer and in-flight states, shared by the widgets."""
from __future__ import annotations

BUFFER_STYLE = {
    "dequeued": ("d", "grey50"),
    "in_request": ("r", "cyan"),
    "queued": ("q", "bold cyan"),
    "claimed": ("c", "bold black on yellow"),
    "parked": ("p", "bold white on magenta"),
    "held": ("h", "bold white on blue"),
    "done": ("D", "bold green"),
    "error": ("E", "bold white on red"),
}

ENTRY_STYLE = {
    "sent": "cyan",
    "decoding": "bold yellow",
    "parked": "bold magenta",
    "held": "bold blue",
    "ready": "green",
    "done": "green",
    "error": "bold red",
}
