"""Deployment files and commands: systemd unit, udev rule, modules-load.d,
sd_notify, journal log lines, ``devices`` and ``doctor`` (docs/pi5.md).

Prerequisites (systemd-analyze) skip with a reason outside CI and fail under
CI=true. The real-kernel side (udev applying the rule, the commands with the
module loaded) is tests/vm/test_deploy_vm.py.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from daedalus_v4l2 import cli, devices, doctor, sdnotify

from .prereqs import missing

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
UNIT = PACKAGING / "systemd" / "daedalus-v4l2.service"
RULES = PACKAGING / "udev" / "70-daedalus-v4l2.rules"


# --------------------------------------------------------------------------- systemd unit


def _unit_settings(path: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_unit_is_notify_and_restarts():
    s = _unit_settings(UNIT)
    assert s["Type"] == ["notify"]
    assert s["Restart"] == ["on-failure"]
    assert s["ExecStart"][0].split()[:4] == ["/opt/daedalus-v4l2/bin/daedalus-v4l2", "-v", "daemon",
                                             "--backend"]
    assert "DeviceAllow" in s and "/dev/daedalus-v4l2 rw" in s["DeviceAllow"]
    assert s["User"] == ["daedalus-v4l2"]


def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    """`systemd-analyze verify`, with ExecStart pointed at this checkout's
    console script (the unit's /opt path exists only on an installed Pi)."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        missing("systemd-analyze not found (apt-get install systemd)")
    script = Path(sys.prefix) / "bin" / "daedalus-v4l2"
    if not script.exists():
        pytest.skip(f"{script} not installed (pip install -e .)")
    unit = tmp_path / "daedalus-v4l2.service"
    unit.write_text(UNIT.read_text().replace("/opt/daedalus-v4l2/bin/daedalus-v4l2", str(script)))
    out = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=120)
    # verify exits 0 on unknown keys but prints them: any line naming the unit is a finding
    findings = [line for line in (out.stdout + out.stderr).splitlines() if "daedalus-v4l2" in line]
    assert out.returncode == 0 and not findings, out.stdout + out.stderr


def test_systemd_analyze_verify_catches_a_broken_unit(tmp_path):
    """The check above really looks: a misspelt key is reported."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        missing("systemd-analyze not found (apt-get install systemd)")
    unit = tmp_path / "daedalus-v4l2.service"
    unit.write_text(UNIT.read_text().replace("Restart=on-failure", "Restrat=on-failure")
                    .replace("/opt/daedalus-v4l2/bin/daedalus-v4l2", "/bin/true"))
    out = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=120)
    assert "Restrat" in out.stdout + out.stderr


# --------------------------------------------------------------------------- udev, modules-load.d


def test_udev_rule_matches_our_nodes():
    rules = RULES.read_text().replace("\\\n", " ")
    lines = [line for line in rules.splitlines() if line.strip() and not line.startswith("#")]
    chardev = next(line for line in lines if 'KERNEL=="daedalus-v4l2"' in line)
    assert 'SUBSYSTEM=="misc"' in chardev and 'MODE="0660"' in chardev
    assert 'GROUP="daedalus-v4l2"' in chardev and 'TAG+="systemd"' in chardev
    video = next(line for line in lines if 'SUBSYSTEM=="video4linux"' in line)
    media = next(line for line in lines if 'SUBSYSTEM=="media"' in line)
    for line, link in ((video, "video-dec0"), (media, "media-dec0")):
        assert 'DRIVERS=="daedalus_v4l2"' in line and link in line


def test_the_unit_is_wanted_by_the_tagged_device():
    """udev's TAG+="systemd" on /dev/daedalus-v4l2 makes dev-daedalus\\x2dv4l2.device."""
    s = _unit_settings(UNIT)
    assert s["WantedBy"] == ["dev-daedalus\\x2dv4l2.device"]
    assert s["BindsTo"] == ["dev-daedalus\\x2dv4l2.device"]


def test_modules_load_d_and_sysusers():
    conf = (PACKAGING / "modules-load.d" / "daedalus-v4l2.conf").read_text().split("\n")
    assert [line for line in conf if line and not line.startswith("#")] == ["daedalus_v4l2"]
    users = (PACKAGING / "sysusers.d" / "daedalus-v4l2.conf").read_text()
    assert re.search(r"^u daedalus-v4l2 ", users, re.M)


# --------------------------------------------------------------------------- sd_notify, journal


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield str(path), sock
    sock.close()


def test_notify_sends_to_the_socket(notify_socket):
    path, sock = notify_socket
    assert sdnotify.notify("READY=1", "STATUS=hi", env={"NOTIFY_SOCKET": path})
    assert sock.recv(4096) == b"READY=1\nSTATUS=hi"


def test_notify_abstract_socket():
    name = f"daedalus-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"READY=1"


def test_notify_without_systemd_is_a_no_op(tmp_path):
    assert not sdnotify.notify("READY=1", env={})
    assert not sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert not sdnotify.Notifier(env={}).enabled


def test_notifier_status_only_when_changed(notify_socket):
    path, sock = notify_socket
    n = sdnotify.Notifier(env={"NOTIFY_SOCKET": path})
    assert n.ready("starting")
    assert sock.recv(4096) == f"READY=1\nMAINPID={os.getpid()}\nSTATUS=starting".encode()
    assert n.status("1 streams") and not n.status("1 streams")
    assert sock.recv(4096) == b"STATUS=1 streams"


def test_journal_formatter_priorities():
    f = sdnotify.JournalFormatter()

    def line(level, msg):
        return f.format(logging.LogRecord("daedalus_v4l2.daemon", level, __file__, 1, msg, None, None))
    assert line(logging.INFO, "stream 1 opened") == "<6>daedalus_v4l2.daemon: stream 1 opened"
    assert line(logging.WARNING, "x").startswith("<4>")
    assert line(logging.ERROR, "a\nb") == "<3>daedalus_v4l2.daemon: a\n<3>b"
    assert line(logging.DEBUG, "d").startswith("<7>")


def test_journal_stream_detection(tmp_path):
    with open(tmp_path / "f", "w") as f:
        st = os.fstat(f.fileno())
        assert sdnotify.journal_stream_is_stderr({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, f.fileno())
        assert not sdnotify.journal_stream_is_stderr({"JOURNAL_STREAM": "1:2"}, f.fileno())
        assert not sdnotify.journal_stream_is_stderr({}, f.fileno())


def test_daemon_status_and_ready(notify_socket, monkeypatch):
    """The daemon command's systemd side: READY=1 with a STATUS of queue depths,
    then STATUS updates, STOPPING=1 at the end (on the sim backend's transport)."""
    from daedalus_v4l2.backends.sim import SimKernel
    from daedalus_v4l2.daemon import Daemon

    path, sock = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setattr(cli, "STATUS_INTERVAL", 0.05)
    kernel = SimKernel(seed=1)
    transport = kernel.open_chardev()
    daemon = Daemon(transport)
    stop = threading.Event()
    stopping = cli._notify_systemd(daemon, transport, stop)
    first = sock.recv(4096).decode()
    assert first.startswith("READY=1\n")
    assert "STATUS=0 streams; in decoder 0 (parked 0); requests 0, pictures 0, errors 0" in first
    daemon.stats.requests = 7
    assert "requests 7" in sock.recv(4096).decode()
    stop.set()
    stopping()
    while (msg := sock.recv(4096)) != b"STOPPING=1":
        assert msg.startswith(b"STATUS=")


def test_daemon_command_under_systemd(notify_socket, tmp_path):
    """`daedalus-v4l2 daemon` as systemd runs it: READY=1 with its pid once the
    chardev is open (a FIFO stands in for it here), <N> journal prefixes on
    stderr, STOPPING=1 and status 0 on SIGTERM."""
    import signal

    path, sock = notify_socket
    fifo = tmp_path / "chardev"
    os.mkfifo(fifo)
    err = tmp_path / "stderr"
    with open(err, "w") as stderr:
        st = os.fstat(stderr.fileno())
        env = {**os.environ, "NOTIFY_SOCKET": path, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}",
               "DAEDALUS_V4L2_STATE_SOCKET": str(tmp_path / "state.sock")}
        proc = subprocess.Popen([sys.executable, "-m", "daedalus_v4l2", "-v", "daemon",
                                 "--chardev", str(fifo)], cwd=ROOT, env=env, stderr=stderr)
        try:
            ready = sock.recv(4096).decode().split("\n")
            assert ready[:2] == ["READY=1", f"MAINPID={proc.pid}"]
            assert ready[2].startswith("STATUS=0 streams; in decoder 0 (parked 0)")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            proc.kill()
    assert sock.recv(4096) == b"STOPPING=1"
    lines = err.read_text().splitlines()
    assert (f"<6>daedalus-v4l2: daemon attached to {fifo} (pid {proc.pid}; pictures written "
            f"behind)") in lines, lines


# --------------------------------------------------------------------------- devices, doctor


def test_devices_here_says_there_are_none():
    """This machine has no module: said plainly, status 1 (truthful output)."""
    if devices.module_loaded():
        pytest.skip("the daedalus_v4l2 module is loaded on this machine")
    out = subprocess.run([sys.executable, "-m", "daedalus_v4l2", "devices"], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 1
    assert out.stdout.strip() == ("no daedalus_v4l2 devices: the module is not loaded "
                                  "(load it with: sudo modprobe daedalus_v4l2)")
    js = subprocess.run([sys.executable, "-m", "daedalus_v4l2", "devices", "--json"],
                        capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert json.loads(js.stdout) == {"module_loaded": False, "nodes": []}


def test_doctor_here_fails_on_the_module_and_says_why():
    if devices.module_loaded():
        pytest.skip("the daedalus_v4l2 module is loaded on this machine")
    out = subprocess.run([sys.executable, "-m", "daedalus_v4l2", "doctor"], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 1, out.stdout
    assert re.search(r"\[FAIL\] module: daedalus_v4l2 is not loaded", out.stdout)
    assert "[SKIP] nodes: no nodes: the module is not loaded" in out.stdout
    assert "[SKIP] daemon: not checked" in out.stdout
    assert "[ OK ] libavcodec vp9: decoder available" in out.stdout
    assert "fix: " in out.stdout
    assert "decoding on: CPU (libavcodec)" in out.stdout


class FakeDevice:
    def __init__(self, node, driver=None, parent=None, sys_path="/sys/x", links=()):
        self.device_node, self.driver, self.parent = node, driver, parent
        self.sys_path, self.device_links = sys_path, list(links)


class FakeContext:
    def __init__(self, by_subsystem):
        self.by_subsystem = by_subsystem

    def list_devices(self, subsystem, sys_name=None):
        return self.by_subsystem.get(subsystem, [])


def test_devices_finds_ours_and_not_others(tmp_path):
    """Nodes are ours by the driver of an ancestor (the platform device)."""
    for name in ("video3", "video0", "media1", "dv"):
        (tmp_path / name).write_text("")
    pdev = FakeDevice(None, driver="daedalus_v4l2")
    other = FakeDevice(None, driver="visl")
    ctx = FakeContext({
        "video4linux": [FakeDevice(str(tmp_path / "video0"), parent=other),
                        FakeDevice(str(tmp_path / "video3"), parent=pdev, links=["/dev/video-dec0"])],
        "media": [FakeDevice(str(tmp_path / "media1"), parent=pdev)],
        "misc": [FakeDevice(str(tmp_path / "dv"))],
    })
    nodes = devices.find(ctx)
    assert [(n.kind, Path(n.path).name) for n in nodes] == [("video", "video3"), ("media", "media1"),
                                                            ("chardev", "dv")]
    assert nodes[0].links == ["/dev/video-dec0"]
    text = devices.format_nodes(nodes, loaded=True)
    assert text.startswith("daedalus_v4l2 devices:\n  video ")
    assert "links: /dev/video-dec0" in text
    assert "missing" not in text
    assert "missing: chardev" in devices.format_nodes(nodes[:2], loaded=True)


def _facts(**changes) -> doctor.Facts:
    node = lambda kind, path, mode, perm, group, links=(): devices.Node(  # noqa: E731
        kind, path, "/sys/x", mode, "root", group, list(links), perm=perm)
    facts = doctor.Facts(
        module_loaded=True, module_file="/lib/modules/x/updates/dkms/daedalus_v4l2.ko.xz",
        m2m_available=True,
        nodes=[node("video", "/dev/null", "crw-rw-rw-", 0o666, "video", ["/dev/video-dec0"]),
               node("media", "/dev/null", "crw-rw-rw-", 0o666, "video", ["/dev/media-dec0"]),
               node("chardev", "/dev/daedalus-v4l2", "crw-rw----", 0o660, "daedalus-v4l2")],
        holders=[(42, "/opt/daedalus-v4l2/bin/python daedalus-v4l2 daemon")], holders_complete=True,
        unit_state="active", codecs={"vp9": True, "h264": True, "av1": False}, supported=["vp9"],
        dispatch="CPU (libavcodec)", installed={"udev rule": "/etc/udev/rules.d/x.rules"})
    for key, value in changes.items():
        setattr(facts, key, value)
    return facts


def _statuses(facts):
    return {c.name: c.status for c in doctor.run_checks(facts)}


def test_doctor_all_good():
    results = doctor.run_checks(_facts())
    assert not [c for c in results if c.status == doctor.FAIL]
    text = doctor.report(results)
    assert "[ OK ] daemon: pid 42 holds /dev/daedalus-v4l2" in text
    assert "[WARN] libavcodec av1" in text  # not needed yet: a warning, not a failure
    assert text.endswith("ready to decode (1 warning).")


def test_doctor_daemon_not_running():
    st = _statuses(_facts(holders=[], unit_state="failed"))
    assert st["daemon"] == doctor.FAIL
    text = doctor.report(doctor.run_checks(_facts(holders=[], unit_state="failed")))
    assert "(daedalus-v4l2.service is failed)" in text
    assert "fix: sudo systemctl enable --now daedalus-v4l2.service" in text


def test_doctor_daemon_unknown_without_root():
    assert _statuses(_facts(holders=[], holders_complete=False, unit_state=None))["daemon"] == doctor.WARN


def test_doctor_world_writable_chardev_fails():
    facts = _facts()
    facts.nodes[2].perm, facts.nodes[2].mode = 0o666, "crw-rw-rw-"
    assert _statuses(facts)["chardev permissions"] == doctor.FAIL
    facts.nodes[2].perm, facts.nodes[2].mode, facts.nodes[2].group = 0o600, "crw-------", "root"
    assert _statuses(facts)["chardev permissions"] == doctor.WARN


def test_doctor_missing_symlinks_and_nodes():
    facts = _facts()
    for n in facts.nodes:
        n.links = []
    assert _statuses(facts)["symlinks"] == doctor.WARN
    assert _statuses(_facts(nodes=_facts().nodes[:1]))["nodes"] == doctor.FAIL


def test_doctor_module_states():
    assert "sudo modprobe" in doctor.check_module(_facts(module_loaded=False)).fix
    assert "dkms install" in doctor.check_module(_facts(module_loaded=False, module_file=None)).fix
    assert "CONFIG_V4L2_MEM2MEM_DEV" in doctor.check_module(
        _facts(module_loaded=False, m2m_available=False)).message


def test_doctor_needed_codec_missing_fails():
    assert _statuses(_facts(codecs={"vp9": False}))["libavcodec vp9"] == doctor.FAIL


def test_chardev_holders_finds_an_open_file(tmp_path):
    target = tmp_path / "fake-chardev"
    target.write_text("")
    with open(target):
        holders, _ = doctor.chardev_holders(str(target))
    assert [pid for pid, _ in holders] == [os.getpid()]
    assert doctor.chardev_holders(str(tmp_path / "nobody"))[0] == []


def test_cli_has_the_commands():
    parser = cli.build_parser()
    assert parser.parse_args(["devices", "--json"]).json
    assert parser.parse_args(["doctor"]).command == "doctor"
    assert devices.format_nodes([], loaded=True).startswith("no daedalus_v4l2 devices, although")
