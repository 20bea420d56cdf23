"""Entry points for the CLI: run the app on a source, with logging kept off the screen."""
from __future__ import annotations

import contextlib
import logging

from .app import SIM_SWITCH_INTERVAL, UI_NICE, DaedalusTui


@contextlib.contextmanager
def quiet_stderr_logging():
    """Log handlers that write to the terminal would scribble over the screen: the
    sim's log lines reach the event log instead (SimSource installs a handler)."""
    root = logging.getLogger()
    streams = [h for h in root.handlers if isinstance(h, logging.StreamHandler)
               and not isinstance(h, logging.FileHandler)]
    for handler in streams:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in streams:
            root.addHandler(handler)


def run_app(source) -> int:
    # a simulation decoding in a thread of this process shares the GIL with the
    # screen (see SIM_SWITCH_INTERVAL); one in a child process (ProcessSource) does not
    shares_gil = source.kind == "sim" and source.in_process
    app = DaedalusTui(source, switch_interval=SIM_SWITCH_INTERVAL if shares_gil else None,
                      ui_nice=UI_NICE)
    with quiet_stderr_logging():
        result = app.run()
    source.stop()
    if isinstance(result, int):
        return result
    return app.return_code or 0     # an app that crashed returns no value, but a code


def sim_source_for_file(path, *, loop: bool, pace_fps: float | None, depth: int = 2,
                        output: str | None = None, daemon_options: dict | None = None):
    """The file decoding in a child process (ProcessSource); its pictures go to
    ``output`` ("-": standard output) when given."""
    from daedalus_v4l2 import container

    from .process_source import PictureWriter, ProcessSource
    container.probe(path)     # a file it cannot read fails here, before the screen opens
    return ProcessSource(str(path), loop=loop, pace_fps=pace_fps or None, depth=depth,
                         on_picture=PictureWriter(output) if output else None,
                         daemon_options=daemon_options)
