"""The rig itself: scripts/vm-run boots the test kernel, runs a command, and
hands back its output and exit status. These run on the host (vm_host) and
boot a small VM without the project's module, the daemon or Python."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vmrig import CACHE, ROOT, VM_RUN, require_host

pytestmark = [pytest.mark.vm, pytest.mark.vm_host]


@pytest.fixture(scope="module")
def rig_run():
    require_host()
    out = CACHE / "runs" / "pytest-rig"
    inner = "uname -r; echo to-stderr >&2; test -w /run/vm-share && echo share-writable; exit 7"
    p = subprocess.run(
        [str(VM_RUN), "--quiet", "--no-module", "--no-daemon", "--out", str(out), "--", "sh", "-c", inner],
        capture_output=True, text=True, cwd=ROOT, timeout=3600,
        env=dict(os.environ, DAEDALUS_VENV=os.environ.get("DAEDALUS_VENV", sys.prefix)),
    )
    return p, out


def test_command_output_comes_back(rig_run):
    p, out = rig_run
    lines = p.stdout.splitlines()
    assert lines and lines[0].startswith("6.12."), f"stdout={p.stdout!r}\nstderr={p.stderr[-3000:]}"
    assert "share-writable" in lines
    assert "to-stderr" in p.stderr


def test_exit_status_comes_back(rig_run):
    p, out = rig_run
    assert p.returncode == 7, p.stderr[-3000:]
    assert (out / "exit-status").read_text().strip() == "7"


def test_dmesg_is_copied_out(rig_run):
    p, out = rig_run
    dmesg = (out / "dmesg.txt").read_text()
    assert "Linux version 6.12" in dmesg
    assert "DAEDALUS-VM-EXIT-STATUS=7" in (out / "serial.log").read_text()
