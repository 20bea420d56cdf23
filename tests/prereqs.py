"""Missing prerequisites (a tool, a package, a kernel tree): skip on a
developer's machine, fail under CI=true, where .ci/run installs everything and
a skip would quietly stand in for the check."""
from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true and a prerequisite is missing: {reason}", pytrace=False)
    pytest.skip(reason)
