"""The chardev fuzzer against the real module (guest side): random and mutated
messages and mmaps on /dev/daedalus-v4l2 while a client keeps jobs in flight.
The module refuses each with the documented errno, counts each, and prints no
oops, warning or leak; the daemon afterwards serves streams as before."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from vmrig import ROOT, missing, module_loaded

from fuzz import rig
from fuzz.report import record

pytestmark = pytest.mark.vm
SECONDS = float(os.environ.get("DAEDALUS_CHARDEV_FUZZ_SECONDS", "20"))


@pytest.mark.debug_kernel
def test_chardev_fuzzer():
    if not module_loaded("daedalus_v4l2"):
        missing("the daedalus_v4l2 module is not loaded")
    rig.wait_daemon()
    watch = rig.DmesgWatch()
    with rig.daemon_held_off():
        p = subprocess.run([sys.executable, "-m", "fuzz.chardev", "--seconds", str(SECONDS)],
                           capture_output=True, text=True, cwd=ROOT, timeout=SECONDS * 4 + 120)
        assert p.returncode == 0, p.stdout + p.stderr[-4000:]
        summary = json.loads(p.stdout.strip().splitlines()[-1])
        leaks = rig.kmemleak_scan()
    (rig.SHARE / "chardev-fuzz.json").write_text(json.dumps(summary, indent=1))
    assert summary["writes"] > 100 and not summary["unexpected"], summary
    assert summary["accounted"] == {"rejected_messages": 0, "unknown_cookie": 0,
                                    "duplicate_response": 0}, summary
    # a picture out after STREAMOFF cancelled its job: quietly ENOENT, not a rejection
    assert summary["finished_mmap"] == "ENOENT", summary
    assert not summary["client_hung"] and not summary["client_errors"], summary
    assert summary["client_requests"] > 0 and summary["counters"]["jobs"] > 0, summary
    rig.wait_for(lambda: not rig.inflight(), 5)
    lost = len(rig.inflight())
    reports = watch.reports() + leaks
    # the kernel's own refusals are rate-limited warnings, not reports
    assert not reports, reports
    record("fuzzing", "chardev fuzzer (module)", inputs=summary["writes"] + summary["mmaps"],
           buffers_lost=lost, hangs=int(summary["client_hung"]), dmesg_reports=len(reports))
