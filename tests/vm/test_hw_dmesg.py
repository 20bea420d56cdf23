"""dmesg stays clean across load, decode and unload (host side).

The guest cannot unload the module while the rig's daemon holds its chardev,
so this test reads what the rig saves after the guest's command: /init stops
the daemon, unloads the modules (unload-status) and then writes dmesg.txt. It
uses the same guest run as the other guest tests of this pytest session (the
decodes of test_hw_decode.py, test_hw_gstreamer.py and tests/contract run in
it); when no guest test was selected it boots one of its own that decodes.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vmrig import CACHE, ROOT, VM_RUN, require_host

from test_hw_decode import BAD_DMESG

pytestmark = [pytest.mark.vm, pytest.mark.vm_host]


def guest_run_dir(request) -> Path:
    """The run directory of this session's guest batch (booting it if needed)."""
    batch = next((it.batch for it in request.session.items if hasattr(it, "batch")), None)
    if batch is not None:
        batch.ensure()
        if batch.out is None:
            pytest.skip(f"the guest batch did not run: {batch.error}")
        return batch.out
    out = CACHE / "runs" / "pytest-dmesg"
    p = subprocess.run(
        [str(VM_RUN), "--quiet", "--out", str(out), "--", "python", "-m", "pytest", "-p",
         "no:cacheprovider", "-m", "vm", "-q", "tests/vm/test_hw_decode.py"],
        capture_output=True, text=True, cwd=ROOT, timeout=3600,
        env=dict(os.environ, DAEDALUS_VENV=os.environ.get("DAEDALUS_VENV", sys.prefix)))
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    return out


def test_dmesg_clean_across_load_decode_and_unload(request):
    require_host()
    out = guest_run_dir(request)
    dmesg_path = out / "dmesg.txt"
    assert dmesg_path.is_file(), f"the rig saved no dmesg.txt in {out} (see serial.log)"
    lines = dmesg_path.read_text(errors="replace").splitlines()
    text = "\n".join(lines)
    assert "daedalus_v4l2" in text and "registered /dev/video" in text, "module never loaded"
    assert "daemon attached" in text, "the daemon never attached"
    assert "removing daedalus_v4l2" in text, f"module not unloaded; dmesg ends:\n{text[-3000:]}"
    assert (out / "unload-status").read_text().strip() == "0", "the rig failed to unload a module"
    bad = [line for line in lines if BAD_DMESG.search(line)]
    assert not bad, "\n".join(bad)
