"""Shared fixtures: generated test clips (see tests/clips.py)."""
from __future__ import annotations

import pytest

from .clips import cached_clip


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    """One directory per test session for generated clips."""
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def clip(clip_dir):
    """``clip(suffix=".ivf", **make_clip_params) -> Path``, encoded once per
    session for each distinct set of parameters."""
    def get(suffix=".ivf", **params):
        return cached_clip(clip_dir, suffix, **params)
    return get
