"""The module builds warning-free out of tree against Debian's own kernel
headers, 6.12 and 6.1 (where AV1 is compiled out), with W=1.

Debian's kernels are built without v4l2-mem2mem (CONFIG_V4L2_MEM2MEM_DEV), so
modpost cannot resolve the v4l2_m2m_* symbols there: KBUILD_MODPOST_WARN=1
turns that into warnings, and only those are allowed.  A real build and load
against a 6.12 tree with mem2mem is the VM rig's (tests/vm) and dkms's
(tests/test_deploy_dkms.py) job; this one catches uses of kernel APIs that
changed between 6.1 and 6.12 (vb2's max_num_buffers came in 6.8) in seconds.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .prereqs import debian_headers

ROOT = Path(__file__).resolve().parents[1]
# modpost's one allowed complaint: a v4l2-mem2mem symbol Debian's kernel does not have
# (it names the first ten and counts the rest)
MEM2MEM_UNDEFINED = re.compile(r'^WARNING: modpost: ("v4l2_m2m_\w+" \[.*\] undefined!|'
                               r'suppressed \d+ unresolved symbol warnings because there were too many\))$')


def build(tree: Path, workdir: Path) -> subprocess.CompletedProcess:
    for part in ("kernel", "include"):
        shutil.copytree(ROOT / part, workdir / part,
                        ignore=shutil.ignore_patterns("*.o", "*.ko", "*.mod*", ".*.cmd"))
    return subprocess.run(["make", "-C", str(workdir / "kernel"), f"KDIR={tree}", "W=1",
                           "KBUILD_MODPOST_WARN=1", "-j2"],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """build() per series, once for the tests of this module: (result, workdir)."""
    done = {}

    def get(series: str) -> tuple[subprocess.CompletedProcess, Path]:
        if series not in done:
            workdir = tmp_path_factory.mktemp(f"linux-{series}")
            done[series] = build(debian_headers(series), workdir), workdir
        return done[series]
    return get


def complaints(output: str) -> list[str]:
    """Compiler and modpost warnings or errors other than the mem2mem symbols."""
    return [line for line in output.splitlines()
            if re.search(r": (warning|error|fatal error):|^(WARNING|ERROR|make.*Error)", line)
            and not MEM2MEM_UNDEFINED.match(line)]


@pytest.mark.parametrize("series", ["6.12", "6.1"])
def test_module_builds_warning_free_against_debian_headers(series, built):
    done, workdir = built(series)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert complaints(output) == [], output[-4000:]
    assert (workdir / "kernel" / "daedalus_v4l2.ko").is_file()


def test_av1_is_compiled_out_on_6_1_only(built):
    """6.1's uAPI has no AV1 stateless format: the module leaves it out there
    (its fourcc, 'AV1F', is in the 6.12 module only)."""
    for series, has_av1 in (("6.1", False), ("6.12", True)):
        done, workdir = built(series)
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        module = (workdir / "kernel" / "daedalus_v4l2.ko").read_bytes()
        assert (b"AV1F" in module) == has_av1, series
