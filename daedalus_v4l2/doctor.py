"""``daedalus-v4l2 doctor``: is this machine ready to decode, and if not, what to fix.

Each check gives OK, WARN (works, but something is off), FAIL (decoding will
not work) or SKIP (cannot be judged because an earlier check failed), with a
``fix`` line for everything that is not OK. The exit status is 1 when any
check FAILs.

"Is the daemon running?" is answered without touching the chardev: opening
it would *become* the daemon for a moment (the kernel takes the first
opener, and on close fails its in-flight jobs). Instead /proc/*/fd is read
for a process holding /dev/daedalus-v4l2 -- the way the VM rig waits for the
daemon. Another user's fds are only readable by root; when nothing is found
and some were unreadable, systemd's view of the unit is asked, and if that is
not available either the answer is "unknown", said as such.
"""
from __future__ import annotations

import glob
import os
import platform
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from . import devices

UNIT = "daedalus-v4l2.service"
CHARDEV = "/dev/daedalus-v4l2"
CHARDEV_GROUP = "daedalus-v4l2"
OK, WARN, FAIL, SKIP, INFO = "OK", "WARN", "FAIL", "SKIP", "INFO"


@dataclass
class Check:
    name: str
    status: str
    message: str
    fix: str = ""


@dataclass
class Facts:
    """Everything the checks look at, gathered once (tests substitute their own)."""
    module_loaded: bool
    module_file: str | None          # the .ko modprobe would load, or None
    m2m_available: bool | None       # None: cannot tell
    nodes: list[devices.Node]
    holders: list[tuple[int, str]]   # (pid, command line) holding the chardev
    holders_complete: bool           # every /proc/*/fd could be read
    unit_state: str | None           # systemctl is-active, or None
    codecs: dict[str, bool]          # libavcodec decoder -> available
    supported: list[str]             # codecs the daemon has sessions for
    dispatch: str
    installed: dict[str, str | None] = field(default_factory=dict)  # packaging file -> path


# --------------------------------------------------------------------------- facts

def _release() -> str:
    return platform.release()


def find_module_file(release: str | None = None) -> str | None:
    release = release or _release()
    for pattern in (f"/lib/modules/{release}/**/daedalus_v4l2.ko*",):
        hits = glob.glob(pattern, recursive=True)
        if hits:
            return sorted(hits)[0]
    return None


def m2m_available(release: str | None = None) -> bool | None:
    """Does the running kernel have v4l2-mem2mem (loaded, a module, or built in)?"""
    release = release or _release()
    if os.path.isdir("/sys/module/v4l2_mem2mem"):
        return True
    base = f"/lib/modules/{release}"
    if not os.path.isdir(base):
        return None
    if glob.glob(f"{base}/kernel/drivers/media/v4l2-core/v4l2-mem2mem.ko*"):
        return True
    try:
        with open(f"{base}/modules.builtin") as f:
            return any("v4l2-mem2mem.ko" in line for line in f)
    except OSError:
        return None


def chardev_holders(path: str = CHARDEV, proc: str = "/proc") -> tuple[list[tuple[int, str]], bool]:
    """Processes with ``path`` open, and whether every process's fds could be read."""
    holders, complete = [], True
    target = os.path.realpath(path)
    for pid_dir in glob.glob(f"{proc}/[0-9]*"):
        try:
            fds = os.listdir(f"{pid_dir}/fd")
        except PermissionError:
            complete = False
            continue
        except OSError:
            continue  # gone meanwhile
        for fd in fds:
            try:
                if os.readlink(f"{pid_dir}/fd/{fd}") in (path, target):
                    holders.append((int(os.path.basename(pid_dir)), _cmdline(pid_dir)))
                    break
            except OSError:
                continue
    return sorted(holders), complete


def _cmdline(pid_dir: str) -> str:
    try:
        with open(f"{pid_dir}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def unit_state() -> str | None:
    """``systemctl is-active`` of the unit, or None when systemd is not running here."""
    if not os.path.isdir("/run/systemd/system") or shutil.which("systemctl") is None:
        return None
    try:
        out = subprocess.run(["systemctl", "is-active", UNIT], capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def codecs_available(names=("vp9", "h264", "av1")) -> dict[str, bool]:
    import av
    result = {}
    for name in names:
        try:
            av.codec.Codec(name, "r")
            result[name] = True
        except Exception:  # UnknownCodecError and friends
            result[name] = False
    return result


def supported_codecs() -> list[str]:
    from . import proto
    from .session import SESSIONS
    return [proto.CODEC_NAMES.get(codec, str(codec)) for codec in SESSIONS]


PACKAGING = {
    "udev rule": ("/etc/udev/rules.d/70-daedalus-v4l2.rules", "/run/udev/rules.d/70-daedalus-v4l2.rules",
                  "/usr/lib/udev/rules.d/70-daedalus-v4l2.rules",
                  "/lib/udev/rules.d/70-daedalus-v4l2.rules"),
    "systemd unit": ("/etc/systemd/system/daedalus-v4l2.service", "/usr/lib/systemd/system/daedalus-v4l2.service",
                     "/lib/systemd/system/daedalus-v4l2.service"),
    "modules-load.d entry": ("/etc/modules-load.d/daedalus-v4l2.conf", "/usr/lib/modules-load.d/daedalus-v4l2.conf"),
}


def installed_files() -> dict[str, str | None]:
    return {what: next((p for p in paths if os.path.exists(p)), None) for what, paths in PACKAGING.items()}


def gather() -> Facts:
    from . import dispatch
    holders, complete = chardev_holders()
    return Facts(
        module_loaded=devices.module_loaded(), module_file=find_module_file(),
        m2m_available=m2m_available(), nodes=devices.find(), holders=holders,
        holders_complete=complete, unit_state=unit_state(), codecs=codecs_available(),
        supported=supported_codecs(), dispatch=dispatch.describe(), installed=installed_files())


# --------------------------------------------------------------------------- checks

def check_module(f: Facts) -> Check:
    if f.module_loaded:
        return Check("module", OK, f"{devices.MODULE} is loaded")
    if f.m2m_available is False:
        return Check("module", FAIL, f"{devices.MODULE} is not loaded, and kernel {_release()} has no "
                     "v4l2-mem2mem (CONFIG_V4L2_MEM2MEM_DEV), which the module needs",
                     "run a kernel with CONFIG_V4L2_MEM2MEM_DEV (Raspberry Pi OS's kernels have it)")
    if f.module_file is None:
        return Check("module", FAIL, f"{devices.MODULE} is not loaded, and not installed for "
                     f"kernel {_release()}",
                     "install it: sudo dkms install daedalus-v4l2/<version> (docs/pi5.md)")
    return Check("module", FAIL, f"{devices.MODULE} is installed ({f.module_file}) but not loaded",
                 f"sudo modprobe {devices.MODULE}")


def check_nodes(f: Facts) -> list[Check]:
    if not f.module_loaded and not f.nodes:
        return [Check("nodes", SKIP, "no nodes: the module is not loaded")]
    kinds = {n.kind: n for n in f.nodes}
    missing = [k for k in devices.KINDS if k not in kinds]
    checks = []
    if missing:
        checks.append(Check("nodes", FAIL, f"missing: {', '.join(missing)}",
                            "see dmesg for the module's errors; reload it: "
                            f"sudo modprobe -r {devices.MODULE} && sudo modprobe {devices.MODULE}"))
    else:
        checks.append(Check("nodes", OK, ", ".join(f"{n.kind} {n.path}" for n in f.nodes)))
    links = {os.path.basename(link) for n in f.nodes for link in n.links}
    want = [name for name in ("video-dec0", "media-dec0") if name not in links]
    if not missing and want:
        checks.append(Check("symlinks", WARN, f"no /dev/{' or /dev/'.join(want)} (Chromium looks for "
                            "/dev/video-dec0)",
                            "install packaging/udev/70-daedalus-v4l2.rules into /etc/udev/rules.d, "
                            "then: sudo udevadm control --reload && sudo udevadm trigger"))
    elif not missing:
        checks.append(Check("symlinks", OK, "/dev/video-dec0 and /dev/media-dec0"))
    return checks


def check_permissions(f: Facts) -> list[Check]:
    checks = []
    for node in f.nodes:
        if node.error:
            checks.append(Check(f"{node.kind} permissions", FAIL, f"{node.path}: {node.error}",
                                "sudo udevadm trigger (or reload the module)"))
            continue
        desc = f"{node.path} is {node.mode} {node.owner}:{node.group}"
        if node.kind == "chardev":
            if node.perm & 0o006:
                checks.append(Check("chardev permissions", FAIL, desc + ": any user could read "
                                    "every stream's bitstream and write its pictures",
                                    "install the udev rule (mode 0660, group daedalus-v4l2)"))
            elif node.group != CHARDEV_GROUP:
                checks.append(Check("chardev permissions", WARN, desc + ": only root can run the "
                                    "daemon (the udev rule gives it to group daedalus-v4l2)",
                                    "install packaging/udev/70-daedalus-v4l2.rules and "
                                    "packaging/sysusers.d/daedalus-v4l2.conf (docs/pi5.md)"))
            else:
                checks.append(Check("chardev permissions", OK, desc))
        else:
            usable = os.access(node.path, os.R_OK | os.W_OK)
            if usable:
                checks.append(Check(f"{node.kind} permissions", OK, desc + ", usable by you"))
            else:
                checks.append(Check(f"{node.kind} permissions", WARN, desc + ": you cannot open it, "
                                    "so neither can your browser or GStreamer",
                                    f"sudo usermod -aG {node.group} $USER, then log in again"))
    return checks


def check_daemon(f: Facts) -> Check:
    if not f.module_loaded:
        return Check("daemon", SKIP, "not checked: the module is not loaded")
    if f.holders:
        pid, cmd = f.holders[0]
        return Check("daemon", OK, f"pid {pid} holds {CHARDEV}: {cmd}")
    if f.unit_state == "active":
        return Check("daemon", OK, f"{UNIT} is active (its process is not visible to you)")
    if not f.holders_complete and f.unit_state is None:
        return Check("daemon", WARN, "unknown: no process of yours holds the chardev, and other "
                     "users' processes cannot be inspected", "run doctor as root: sudo daedalus-v4l2 doctor")
    state = f" ({UNIT} is {f.unit_state})" if f.unit_state else ""
    return Check("daemon", FAIL, f"no process holds {CHARDEV}: nothing will decode{state}",
                 f"sudo systemctl enable --now {UNIT}  (or run: daedalus-v4l2 daemon --backend hw)")


def check_codecs(f: Facts) -> list[Check]:
    checks = []
    for name, ok in f.codecs.items():
        needed = name in f.supported
        if ok:
            checks.append(Check(f"libavcodec {name}", OK, "decoder available"
                                + ("" if needed else " (the daemon has no session for it yet)")))
        else:
            checks.append(Check(f"libavcodec {name}", FAIL if needed else WARN,
                                "no decoder in the FFmpeg that PyAV uses",
                                "pip install --force-reinstall av (its wheels include vp9, h264, av1)"))
    return checks


def check_packaging(f: Facts) -> list[Check]:
    checks = []
    for what, path in f.installed.items():
        if path:
            checks.append(Check(what, OK, path))
        else:
            checks.append(Check(what, WARN, "not installed", "see docs/pi5.md, 'Install'"))
    return checks


CHECKS: list[Callable[[Facts], Check | list[Check]]] = [
    check_module, check_nodes, check_permissions, check_daemon, check_codecs, check_packaging,
]


def run_checks(facts: Facts) -> list[Check]:
    results: list[Check] = []
    for check in CHECKS:
        got = check(facts)
        results.extend(got if isinstance(got, list) else [got])
    results.append(Check("decoding on", INFO, facts.dispatch))
    return results


def report(results: list[Check]) -> str:
    lines = ["daedalus-v4l2 doctor"]
    for c in results:
        lines.append(f"  [{c.status:^4}] {c.name}: {c.message}")
        if c.fix and c.status in (WARN, FAIL):
            lines.append(f"         fix: {c.fix}")
    failed = sum(c.status == FAIL for c in results)
    warned = sum(c.status == WARN for c in results)
    if failed:
        lines.append(f"{failed} problem{'s' * (failed != 1)} to fix"
                     + (f", {warned} warning{'s' * (warned != 1)}" if warned else "") + ".")
    else:
        lines.append("ready to decode" + (f" ({warned} warning{'s' * (warned != 1)})" if warned else "") + ".")
    return "\n".join(lines)


def main(out=None) -> int:
    import sys
    results = run_checks(gather())
    print(report(results), file=out or sys.stdout)
    return 1 if any(c.status == FAIL for c in results) else 0
