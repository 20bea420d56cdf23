"""DKMS: `dkms add` + `dkms build` from the repository as shipped (docs/pi5.md).

"As shipped" = the files git would ship (tracked, plus untracked files that
are not ignored: no build products), copied to a temporary directory. dkms
runs with its trees (--sourcetree, --dkmstree) in tmp_path, so nothing is
registered on the machine.

Two 6.12 kernels:
* the VM rig's tree (scripts/build-test-kernel), which has v4l2-mem2mem:
  dkms builds a real daedalus_v4l2.ko against it;
* Debian's linux-headers-6.12.*-amd64, which lacks CONFIG_V4L2_MEM2MEM_DEV: the
  module could never load there, and dkms.conf's BUILD_EXCLUSIVE_CONFIG makes
  dkms say so and skip (status 77) instead of failing in modpost.

Needs root (dkms refuses otherwise) and dkms; missing prerequisites skip,
and fail under CI=true.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .prereqs import IN_CI, debian_headers, missing

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("DAEDALUS_CACHE", Path.home() / ".cache" / "daedalus-v4l2"))


def conf() -> dict[str, str]:
    values = {}
    for line in (ROOT / "dkms.conf").read_text().splitlines():
        m = re.match(r'^([A-Z_]+(?:\[\d+\])?)="?(.*?)"?$', line.strip())
        if m:
            values[m.group(1)] = m.group(2)
    return values


def test_dkms_conf_has_the_conventional_fields():
    c = conf()
    assert c["PACKAGE_NAME"] == "daedalus-v4l2"
    assert c["BUILT_MODULE_NAME[0]"] == "daedalus_v4l2"
    assert c["BUILT_MODULE_LOCATION[0]"] == "kernel/"
    assert c["DEST_MODULE_LOCATION[0]"].startswith("/updates")
    assert c["AUTOINSTALL"] == "yes"
    assert "KDIR=${kernel_source_dir}" in c["MAKE[0]"]
    assert "CONFIG_V4L2_MEM2MEM_DEV" in c["BUILD_EXCLUSIVE_CONFIG"]


def test_dkms_version_is_the_package_version():
    pyproject = (ROOT / "pyproject.toml").read_text()
    version = re.search(r'^version = "(.+)"', pyproject, re.M).group(1)
    assert conf()["PACKAGE_VERSION"] == version


@pytest.fixture(scope="module")
def dkms():
    tool = shutil.which("dkms") or ("/usr/sbin/dkms" if os.path.exists("/usr/sbin/dkms") else None)
    if tool is None:
        missing("dkms not found (apt-get install --no-install-recommends dkms)")
    if os.geteuid() != 0:
        missing("dkms add/build need root")
    return tool


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> Path:
    """The repository as a user gets it: what git would ship, no build products."""
    out = tmp_path_factory.mktemp("shipped") / "daedalus-v4l2"
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / os.fsdecode(name)
        if src.is_file():
            dst = out / os.fsdecode(name)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    assert not list(out.glob("kernel/*.ko")), "build products would be shipped"
    return out


@pytest.fixture
def trees(tmp_path, dkms, shipped):
    src, tree = tmp_path / "src", tmp_path / "dkms"
    src.mkdir()
    tree.mkdir()
    args = ["--sourcetree", str(src), "--dkmstree", str(tree)]

    def run(*cmd, env=None):
        return subprocess.run([dkms, *cmd, *args], capture_output=True, text=True, timeout=900,
                              env={**os.environ, **(env or {})})
    added = run("add", str(shipped))
    assert added.returncode == 0, added.stdout + added.stderr
    assert (src / f"daedalus-v4l2-{conf()['PACKAGE_VERSION']}" / "dkms.conf").is_file()
    # dkms copies "<path>/*": the protocol header the module includes comes along
    assert (src / f"daedalus-v4l2-{conf()['PACKAGE_VERSION']}" / "include" / "daedalus_v4l2_proto.h").is_file()
    return run, tree


def _rig_tree() -> tuple[str, str]:
    """(kernel release, tree) of the VM rig's 6.12 kernel; built if CI needs it."""
    built = glob.glob(str(CACHE / "kernel-*" / ".built"))
    if not built and not IN_CI:
        pytest.skip("the VM rig's kernel is not built (scripts/build-test-kernel, ~5 min)")
    if not Path(os.environ.get("DAEDALUS_KERNEL_TARBALL", "/usr/src/linux-source-6.12.tar.xz")).exists():
        missing("linux-source-6.12 not installed (apt-get install linux-source-6.12)")
    out = subprocess.run([str(ROOT / "scripts" / "build-test-kernel")], capture_output=True,
                         text=True, timeout=3600)
    assert out.returncode == 0, out.stderr[-3000:]
    values = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    return values["KERNELRELEASE"], values["KDIR"]


def test_dkms_add_and_build_against_a_6_12_tree_with_mem2mem(trees):
    run, tree = trees
    release, kdir = _rig_tree()
    assert release.startswith("6.12")
    version = conf()["PACKAGE_VERSION"]
    built = run("build", f"daedalus-v4l2/{version}", "-k", release, "--kernelsourcedir", kdir)
    log = tree / "daedalus-v4l2" / version / "build" / "make.log"
    assert built.returncode == 0, built.stdout + built.stderr + (log.read_text() if log.exists() else "")
    [ko] = glob.glob(str(tree / "daedalus-v4l2" / version / release / "*" / "module" / "daedalus_v4l2.ko*"))
    info = subprocess.run(["modinfo", "-F", "vermagic", ko], capture_output=True, text=True)
    assert info.stdout.startswith(release + " "), info.stdout + info.stderr
    status = run("status", "daedalus-v4l2")
    assert f"daedalus-v4l2/{version}, {release}" in status.stdout and "built" in status.stdout


def test_dkms_skips_debian_kernel_without_mem2mem(trees):
    """Debian's stock 6.12 headers: dkms says the kernel does not fit, status 77."""
    run, tree = trees
    headers = debian_headers("6.12")
    release = headers.name.removeprefix("linux-headers-")
    if not Path(f"/lib/modules/{release}/build").exists():
        missing(f"/lib/modules/{release}/build missing (reinstall linux-headers-{release})")
    config = Path(headers, ".config").read_text()
    if "CONFIG_V4L2_MEM2MEM_DEV=" in config:
        pytest.skip(f"{release} has CONFIG_V4L2_MEM2MEM_DEV: this check is about kernels without it")
    had_key = Path("/var/lib/dkms/mok.key").exists()
    try:
        built = run("build", f"daedalus-v4l2/{conf()['PACKAGE_VERSION']}", "-k", release)
    finally:
        # dkms makes a signing key for kernels with sign-file; leave none behind
        if not had_key:
            for name in ("mok.key", "mok.pub"):
                Path("/var/lib/dkms", name).unlink(missing_ok=True)
    assert built.returncode == 77, built.stdout + built.stderr
    assert "BUILD_EXCLUSIVE directive which does not match" in built.stdout + built.stderr
