"""The contract suite's fixtures: one ``backend`` fixture over both backends.

``sim`` runs in the default tier. ``hw`` carries the ``vm`` marker: on the
host, ``pytest -m vm tests/vm tests/contract`` hands it to the rig's guest
(tests/vm/conftest.py proxies every ``vm`` test that is not ``vm_host``),
where it drives the real module and the daemon the rig started.
"""
from __future__ import annotations

import os

import pytest

from ..guest_results import IN_GUEST, write_guest_result
from ..reference import ffmpeg_nv12, frame_md5s
from .backends import VP9_CLIPS, HwBackend, SimBackend, daemon_attached


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """In the guest, report to the host as tests/vm/conftest.py does for tests/vm:
    its hook only sees tests under tests/vm (conftest hooks are path-local), while
    its host side proxies every selected ``vm`` test, these included."""
    write_guest_result(report)


@pytest.fixture(params=["sim", "sim-behind", pytest.param("hw", marks=pytest.mark.vm)])
def backend(request):
    if request.param.startswith("sim"):
        return SimBackend(write_behind=request.param == "sim-behind")
    if not IN_GUEST:
        pytest.skip("the hw backend runs in the VM guest: pytest -m vm tests/vm tests/contract")
    if os.environ.get("DAEDALUS_MODULE_LOADED") == "0":
        pytest.fail("the rig did not load the daedalus_v4l2 module", pytrace=False)
    if not daemon_attached():
        pytest.fail("no daemon holds /dev/daedalus-v4l2 (the rig starts one; see daemon.log)",
                    pytrace=False)
    return HwBackend()


@pytest.fixture(scope="session")
def vp9_clip(clip):
    """``vp9_clip(name) -> Path`` for a name of ``VP9_CLIPS``, made once per session."""
    return lambda name: clip(".ivf", **VP9_CLIPS[name])


@pytest.fixture(scope="session")
def reference_md5s(vp9_clip):
    """``reference_md5s(name)``: per-frame MD5s of Debian's ffmpeg decode (NV12)."""
    cache: dict[str, list[str]] = {}

    def get(name: str) -> list[str]:
        if name not in cache:
            spec = VP9_CLIPS[name]
            cache[name] = frame_md5s(ffmpeg_nv12(vp9_clip(name)), spec["width"], spec["height"])
        return cache[name]
    return get
