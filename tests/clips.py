"""Test clips: the package's synthesizer (daedalus_v4l2.synth), cached per session."""
from __future__ import annotations

import hashlib
import json
import pathlib

from daedalus_v4l2.synth import (  # noqa: F401  (re-exported for the tests)
    VP9_GOOD, VP9_REALTIME, container_for, encoder_name, make_clip, pattern_frame)


def cached_clip(directory, suffix=".ivf", **params) -> pathlib.Path:
    """:func:`make_clip` into ``directory``, reusing a clip made earlier with
    the same parameters (the file name is a hash of them)."""
    key = json.dumps({"suffix": suffix, **params}, sort_keys=True, default=str)
    name = hashlib.sha1(key.encode()).hexdigest()[:16] + suffix
    path = pathlib.Path(directory) / name
    if not path.exists():
        partial = path.with_name("partial-" + name)
        make_clip(partial, container=params.pop("container", None) or container_for(path),
                  **params)
        partial.rename(path)
    return path
