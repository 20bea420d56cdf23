"""How a test run inside the VM guest reports each test to the host's pytest.

Both tests/vm/conftest.py and tests/contract/conftest.py call this from their
``pytest_runtest_logreport`` (conftest hooks are path-local, and the host
proxies the guest tests of both directories): one JSON line per report phase,
appended to ``$DAEDALUS_VM_RESULTS``.
"""
from __future__ import annotations

import json
import os

import pytest

IN_GUEST = os.environ.get("DAEDALUS_IN_VM") == "1"


def write_guest_result(report: pytest.TestReport) -> None:
    path = os.environ.get("DAEDALUS_VM_RESULTS")
    if not (IN_GUEST and path):
        return
    entry = {
        "nodeid": report.nodeid,
        "when": report.when,
        "outcome": report.outcome,
        "duration": report.duration,
        "longrepr": report.longreprtext if report.longrepr is not None else "",
        "sections": [[title, text] for title, text in report.sections],
    }
    if report.skipped and isinstance(report.longrepr, tuple):
        entry["longrepr"] = str(report.longrepr[2])
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")
        f.flush()
