"""Last in the guest run (tests/vm/conftest.py puts it there): the kernel printed
no report (KASAN, lockdep, list debugging, debug objects, WARN, BUG) during any
test of this boot (compliance, decode, GStreamer, the TUI, bad input, faults,
fuzzing), and kmemleak finds no leak."""
from __future__ import annotations

import pytest

from fuzz import rig
from fuzz.report import record

pytestmark = pytest.mark.vm


@pytest.mark.debug_kernel
def test_no_kernel_reports_in_this_boot():
    leaks = rig.kmemleak_scan()
    text = rig.dmesg()
    (rig.SHARE / "dmesg-before-unload.txt").write_text(text)
    reports = rig.reports(text) + leaks
    record("kernel reports", "whole guest run (dmesg + kmemleak)", dmesg_reports=len(reports),
           kasan="KernelAddressSanitizer initialized" in text,
           kmemleak=bool(leaks) or "kmemleak" in text.lower())
    assert not reports, "\n".join(reports[:40])
