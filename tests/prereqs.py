"""Missing prerequisites (a tool, a package, a kernel tree): skip on a
developer's machine, fail under CI=true, where .ci/run installs everything and
a skip would quietly stand in for the check."""
from __future__ import annotations

import glob
import os
import re
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true and a prerequisite is missing: {reason}", pytrace=False)
    pytest.skip(reason)


# Debian's kernel header packages, by series: the meta package that installs each
DEBIAN_HEADERS = {"6.12": "linux-headers-6.12-amd64", "6.1": "linux-headers-amd64"}


def debian_headers(series: str) -> Path:
    """The newest /usr/src/linux-headers-<series>.*-amd64 tree (scripts/install-prereqs deploy)."""
    trees = sorted(glob.glob(f"/usr/src/linux-headers-{series}.*-amd64"),
                   key=lambda p: [int(n) for n in re.findall(r"\d+", Path(p).name)])
    if not trees or not Path(trees[-1], "Makefile").exists():
        missing(f"no Debian {series} kernel headers (scripts/install-prereqs deploy: "
                f"apt-get install {DEBIAN_HEADERS[series]})")
    return Path(trees[-1])
