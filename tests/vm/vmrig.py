"""Helpers shared by the VM tests and their conftest (see conftest.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.guest_results import IN_GUEST
from tests.prereqs import missing

ROOT = Path(__file__).resolve().parents[2]
VM_RUN = ROOT / "scripts" / "vm-run"
KERNEL_TARBALL = os.environ.get("DAEDALUS_KERNEL_TARBALL", "/usr/src/linux-source-6.12.tar.xz")
BUSYBOX = os.environ.get("DAEDALUS_BUSYBOX", "/bin/busybox")
QEMU = os.environ.get("DAEDALUS_QEMU", "qemu-system-x86_64")
CACHE = Path(os.environ.get("DAEDALUS_CACHE", Path.home() / ".cache" / "daedalus-v4l2"))


def also_under_debug_kernel(values, chosen) -> list:
    """Parameters for ``parametrize``, those in ``chosen`` marked ``debug_kernel`` (CI
    runs them under the debug kernel too; tuples are several arguments)."""
    return [pytest.param(*(v if isinstance(v, tuple) else (v,)),
                         marks=[pytest.mark.debug_kernel] if v in chosen else [])
            for v in values]


def require_host() -> None:
    """For vm_host tests' fixtures: wider-scoped fixtures run before the autouse
    placement check, so they must skip in the guest themselves."""
    if IN_GUEST:
        pytest.skip("runs on the host (it drives scripts/vm-run)")
    why = host_prerequisites()
    if why is not None:
        missing(why)


def host_prerequisites() -> str | None:
    """Why the rig cannot run on this host, or None."""
    if shutil.which(QEMU) is None:
        return f"{QEMU} not found (apt-get install qemu-system-x86)"
    if not Path(KERNEL_TARBALL).is_file():
        return f"{KERNEL_TARBALL} not found (apt-get install linux-source-6.12)"
    if not os.access(BUSYBOX, os.X_OK):
        return f"{BUSYBOX} not found (apt-get install busybox-static)"
    for tool in ("make", "gcc", "flex", "bison", "bc", "cpio"):
        if shutil.which(tool) is None:
            return f"{tool} not found (needed to build the test kernel)"
    return None


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def sh(cmd: str, timeout: float = 600) -> Run:
    """Run a shell command (in the guest), capture its output."""
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=timeout)
    return Run(p.returncode, p.stdout, p.stderr)


def guest_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(f"{name} not found in the guest (the host root): install it on the host")
    return path


def module_loaded(name: str) -> bool:
    return Path("/sys/module", name.replace("-", "_")).is_dir()


# --------------------------------------------------------------------------- v4l2-compliance

@dataclass
class Compliance:
    """A parsed `v4l2-compliance` run."""

    returncode: int
    output: str
    total: int | None
    succeeded: int | None
    failed: int | None
    warnings: int | None
    failures: list[str]  # names of the tests that printed FAIL, in order

    @property
    def summary(self) -> str:
        return (f"total {self.total}, succeeded {self.succeeded}, failed {self.failed}, "
                f"warnings {self.warnings}")


_TOTAL_RE = re.compile(
    r"^(?:Grand )?Total(?: for [^:]*)?: (\d+), Succeeded: (\d+), Failed: (\d+), Warnings: (\d+)", re.M)
_FAIL_RE = re.compile(r"^\s*test (.+?): FAIL\s*$", re.M)


def parse_compliance(returncode: int, output: str) -> Compliance:
    totals = _TOTAL_RE.findall(output)
    t = [int(x) for x in totals[-1]] if totals else [None] * 4
    return Compliance(returncode, output, *t, failures=_FAIL_RE.findall(output))


def run_compliance(args: str, timeout: float = 900) -> Compliance:
    """Run `v4l2-compliance <args>` in the guest and parse its summary."""
    tool = guest_tool("v4l2-compliance")
    r = sh(f"{tool} {args}", timeout=timeout)
    return parse_compliance(r.returncode, r.output)
