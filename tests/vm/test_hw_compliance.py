"""v4l2-compliance on our device, against visl with the same tool in the same boot.

Issue 3's bar: no failure on ``platform:daedalus_v4l2`` that visl (the
kernel's own virtual stateless decoder) does not also have. Debian's
v4l-utils 1.22.1 is older than the 6.12 kernel, so some tests fail on both;
both runs happen here, in one test, so the comparison never depends on a
baseline file from another test or another boot.
"""
from __future__ import annotations

import pytest

from vmrig import missing, module_loaded, run_compliance, sh

pytestmark = pytest.mark.vm


@pytest.mark.debug_kernel
def test_compliance_has_no_failure_that_visl_does_not_have(visl, share_dir):
    if not module_loaded("daedalus_v4l2"):
        missing("the daedalus_v4l2 module is not loaded (scripts/vm-run without --no-module)")
    version = sh("v4l2-compliance --version").stdout.strip()
    ours = run_compliance("-m platform:daedalus_v4l2")
    theirs = run_compliance("-m platform:visl")
    for tag, c in (("ours", ours), ("visl", theirs)):
        (share_dir / f"compliance-{tag}.log").write_text(c.output)
    summary = (f"v4l2-compliance {version}\n"
               f"daedalus_v4l2: {ours.summary}\n  failing: {ours.failures}\n"
               f"visl:          {theirs.summary}\n  failing: {theirs.failures}\n")
    (share_dir / "compliance-summary.txt").write_text(summary)
    print(summary)
    for c in (ours, theirs):
        assert c.total is not None, f"no summary line in v4l2-compliance output:\n{c.output[-3000:]}"
        assert c.total == c.succeeded + c.failed and len(c.failures) == c.failed, c.summary
    new = [f for f in ours.failures if f not in theirs.failures]
    assert not new, f"failures visl does not have: {new}\n{summary}"
    assert ours.total >= theirs.total, summary  # the same tests ran (no early abort)
    assert ours.warnings <= theirs.warnings, summary
