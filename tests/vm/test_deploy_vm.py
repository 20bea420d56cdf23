"""Deployment in the real kernel (guest side): ``devices`` and ``doctor`` with the
module loaded and the rig's daemon running, and the udev rule applied by a
real systemd-udevd.

The rig boots without udev (busybox /init), so this test starts the host's
systemd-udevd in the guest with packaging/udev/70-daedalus-v4l2.rules in
/run/udev/rules.d (the guest's /run is a tmpfs), the daemon's group added to
a copy of /etc/group bind-mounted over the read-only one, then `udevadm
trigger`s the module's devices and checks the nodes' mode, group and symlinks.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vmrig import ROOT, missing, module_loaded, sh

pytestmark = pytest.mark.vm

RULES = ROOT / "packaging" / "udev" / "70-daedalus-v4l2.rules"
GROUP = "daedalus-v4l2"
# The rig's /init chroots into the host root; udevadm and udevd notice and ignore
# every request ("Running in chroot, ignoring request") unless told not to.
UDEV_ENV = "SYSTEMD_IGNORE_CHROOT=1 "


@pytest.fixture(scope="module")
def our_module():
    if not module_loaded("daedalus_v4l2"):
        missing("the daedalus_v4l2 module is not loaded (scripts/vm-run without --no-module)")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "daedalus_v4l2", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def test_devices_lists_our_nodes(our_module, share_dir):
    out = cli("devices", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    found = json.loads(out.stdout)
    assert found["module_loaded"] is True
    kinds = {n["kind"]: n for n in found["nodes"]}
    assert set(kinds) == {"video", "media", "chardev"}
    assert kinds["chardev"]["path"] == "/dev/daedalus-v4l2"
    assert kinds["video"]["path"].startswith("/dev/video")
    assert kinds["media"]["path"].startswith("/dev/media")
    # the kernel's own mode for the chardev, before any udev rule: root only
    assert kinds["chardev"]["mode"] == "crw-------" and kinds["chardev"]["owner"] == "root"
    text = cli("devices")
    (share_dir / "devices.txt").write_text(text.stdout)
    assert text.returncode == 0 and text.stdout.startswith("daedalus_v4l2 devices:\n")


def test_doctor_with_the_module_and_daemon(our_module, share_dir):
    out = cli("doctor")
    (share_dir / "doctor-before-udev.txt").write_text(out.stdout + out.stderr)
    assert "[ OK ] module: daedalus_v4l2 is loaded" in out.stdout
    assert "[ OK ] nodes: video /dev/video" in out.stdout
    if os.environ.get("DAEDALUS_RIG_DAEMON", "1") == "1" and _daemon_pid() is not None:
        assert "[ OK ] daemon: pid " in out.stdout, out.stdout
        assert out.returncode == 0, out.stdout  # warnings only: no udev rule yet
    # without udev: no symlinks, and the chardev is root's alone
    assert "[WARN] symlinks: no /dev/video-dec0" in out.stdout
    assert "[WARN] chardev permissions: /dev/daedalus-v4l2 is crw------- root:root" in out.stdout


def _daemon_pid() -> int | None:
    from daedalus_v4l2.doctor import chardev_holders
    holders, _ = chardev_holders()
    return holders[0][0] if holders else None


@pytest.fixture
def udevd(tmp_path):
    """systemd-udevd running in the guest with our rule; stopped afterwards."""
    binary = next((p for p in ("/lib/systemd/systemd-udevd", "/usr/lib/systemd/systemd-udevd")
                   if os.access(p, os.X_OK)), None)
    if binary is None or shutil.which("udevadm") is None:
        missing("systemd-udevd/udevadm not found on the host (apt-get install udev)")
    rules_dir = Path("/run/udev/rules.d")
    rules_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(RULES, rules_dir / RULES.name)
    group = tmp_path / "group"
    text = Path("/etc/group").read_text()
    if f"\n{GROUP}:" not in "\n" + text:
        text += f"{GROUP}:x:989:\n"
    group.write_text(text)
    assert sh(f"mount --bind {group} /etc/group").returncode == 0
    log = open(tmp_path / "udevd.log", "w")
    env = {**os.environ, "SYSTEMD_IGNORE_CHROOT": "1", "SYSTEMD_LOG_TARGET": "console"}
    proc = subprocess.Popen([binary, "--debug"], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 30
        while not Path("/run/udev/control").exists():
            assert proc.poll() is None, (tmp_path / "udevd.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "systemd-udevd did not create /run/udev/control"
            time.sleep(0.1)
        # The control socket exists before the rules and hwdb are loaded (slow over 9p
        # under TCG); a ping is answered only by the running event loop.
        ping = sh(UDEV_ENV + "udevadm control --ping --timeout=300", timeout=330)
        assert ping.returncode == 0, ping.stderr + (tmp_path / "udevd.log").read_text()[-3000:]
        yield tmp_path / "udevd.log"
    finally:
        subprocess.run(["udevadm", "control", "--exit"], timeout=30, capture_output=True, env=env)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        sh("umount /etc/group")


def test_udev_rule_gives_mode_group_and_symlinks(our_module, udevd, share_dir):
    trig = sh(UDEV_ENV + "udevadm trigger --settle --action=add --subsystem-match=misc "
              "--subsystem-match=video4linux --subsystem-match=media && "
              + UDEV_ENV + "udevadm settle --timeout=120", timeout=300)
    assert trig.returncode == 0, trig.stdout + trig.stderr
    shutil.copy(udevd, share_dir / "udevd.log")

    st = os.stat("/dev/daedalus-v4l2")
    import grp
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
    assert st.st_uid == 0 and grp.getgrgid(st.st_gid).gr_name == GROUP

    nodes = {n["kind"]: n["path"] for n in json.loads(cli("devices", "--json").stdout)["nodes"]}
    assert os.path.realpath("/dev/video-dec0") == nodes["video"]
    assert os.path.realpath("/dev/media-dec0") == nodes["media"]
    assert os.path.realpath("/dev/daedalus-v4l2-video") == nodes["video"]
    props = sh(UDEV_ENV + "udevadm info --query=property --name=/dev/daedalus-v4l2").stdout
    assert ":systemd:" in props, props  # a systemd device unit: the service is WantedBy it

    out = cli("devices")
    (share_dir / "devices-after-udev.txt").write_text(out.stdout)
    assert "links: /dev/daedalus-v4l2-video" in out.stdout and "/dev/video-dec0" in out.stdout
    assert f"crw-rw---- root:{GROUP}" in out.stdout
    doc = cli("doctor")
    (share_dir / "doctor-after-udev.txt").write_text(doc.stdout + doc.stderr)
    assert "[ OK ] symlinks: /dev/video-dec0 and /dev/media-dec0" in doc.stdout
    assert f"[ OK ] chardev permissions: /dev/daedalus-v4l2 is crw-rw---- root:{GROUP}" in doc.stdout
