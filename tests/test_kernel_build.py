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

import glob
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .prereqs import missing

ROOT = Path(__file__).resolve().parents[1]
SERIES = {"6.12": "linux-headers-6.12-amd64", "6.1": "linux-headers-amd64"}
# modpost's one allowed complaint: a v4l2-mem2mem symbol Debian's kernel does not have
# (it names the first ten and counts the rest)
MEM2MEM_UNDEFINED = re.compile(r'^WARNING: modpost: ("v4l2_m2m_\w+" \[.*\] undefined!|'
                               r'suppressed \d+ unresolved symbol warnings because there were too many\))$')


def debian_headers(series: str) -> Path:
    trees = sorted(glob.glob(f"/usr/src/linux-headers-{series}.*-amd64"),
                   key=lambda p: [int(n) for n in re.findall(r"\d+", Path(p).name)])
    if not trees or not Path(trees[-1], "Makefile").exists():
        missing(f"no Debian {series} kernel headers (scripts/install-prereqs deploy: "
                f"apt-get install {SERIES[series]})")
    return Path(trees[-1])


def build(tree: Path, workdir: Path) -> subprocess.CompletedProcess:
    for part in ("kernel", "include"):
        shutil.copytree(ROOT / part, workdir / part,
                        ignore=shutil.ignore_patterns("*.o", "*.ko", "*.mod*", ".*.cmd"))
    return subprocess.run(["make", "-C", str(workdir / "kernel"), f"KDIR={tree}", "W=1",
                           "KBUILD_MODPOST_WARN=1", "-j2"],
                          capture_output=True, text=True, timeout=600)


def complaints(output: str) -> list[str]:
    """Compiler and modpost warnings or errors other than the mem2mem symbols."""
    return [line for line in output.splitlines()
            if re.search(r": (warning|error|fatal error):|^(WARNING|ERROR|make.*Error)", line)
            and not MEM2MEM_UNDEFINED.match(line)]


@pytest.mark.parametrize("series", ["6.12", "6.1"])
def test_module_builds_warning_free_against_debian_headers(series, tmp_path):
    tree = debian_headers(series)
    done = build(tree, tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert complaints(output) == [], output[-4000:]
    assert (tmp_path / "kernel" / "daedalus_v4l2.ko").is_file()


def test_av1_is_compiled_out_on_6_1_only(tmp_path):
    """6.1's uAPI has no AV1 stateless format: the module leaves it out there
    (its fourcc, 'AV1F', is in the 6.12 module only)."""
    for series, has_av1 in (("6.1", False), ("6.12", True)):
        workdir = tmp_path / series
        done = build(debian_headers(series), workdir)
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        module = (workdir / "kernel" / "daedalus_v4l2.ko").read_bytes()
        assert (b"AV1F" in module) == has_av1, series
