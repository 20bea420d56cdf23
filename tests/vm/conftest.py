"""Real-kernel tests: how one host pytest run drives the QEMU guest.

Every test in tests/vm/ is marked ``vm`` (deselected by default; run with
``pytest -m vm tests/vm``). A test is written as if it runs *inside* the guest
(root, the rig's 6.12 kernel, ``/dev/video*``, ``modprobe``), unless it also
carries ``vm_host``, which means it runs on the host and drives
``scripts/vm-run`` itself.

* In the guest (``DAEDALUS_IN_VM=1``, set by the rig's /init) tests run as
  usual; ``vm_host`` tests are skipped. With ``DAEDALUS_VM_RESULTS`` set, each
  test's report is also appended to that file as a JSON line.
* On the host, the selected guest tests are replaced by proxies. The first
  proxy to run boots the VM *once* (``scripts/vm-run --out <dir> -- python -m
  pytest <the same node ids>``), and each proxy then reports its guest test's
  outcome, with the guest's traceback and captured output. The run directory
  (serial log, dmesg, the guest's pytest output, files tests left in
  ``$DAEDALUS_VM_SHARE``) is kept and printed in the report header.

Missing prerequisites (qemu, the kernel source tarball, busybox-static,
v4l2-compliance, GStreamer) skip with a reason, except under ``CI=true`` where
they fail.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.guest_results import write_guest_result
from vmrig import (
    CACHE, IN_GUEST, ROOT, VM_RUN, Run, host_prerequisites, missing, module_loaded, sh,
)

def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vm_host: a vm test that runs on the host and drives scripts/vm-run")


# --------------------------------------------------------------------------- guest side


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    write_guest_result(report)


@pytest.fixture(autouse=True)
def _vm_placement(request: pytest.FixtureRequest) -> None:
    """vm_host tests only run on the host; other vm tests only in the guest."""
    if request.node.get_closest_marker("vm_host"):
        if IN_GUEST:
            pytest.skip("runs on the host (it drives scripts/vm-run)")
    elif request.node.get_closest_marker("vm") and not IN_GUEST:
        # Normally replaced by a GuestProxy; reached only if someone calls it oddly.
        pytest.skip("runs inside the VM guest")


@pytest.fixture(scope="session")
def share_dir() -> Path:
    """The directory shared with the host for this run ($DAEDALUS_VM_SHARE)."""
    return Path(os.environ.get("DAEDALUS_VM_SHARE", "/run/vm-share"))


@pytest.fixture
def visl():
    """visl loaded for the test, unloaded after (GStreamer picks the first decoder it finds)."""
    if not module_loaded("visl"):
        r = sh("modprobe visl")
        assert r.returncode == 0, f"modprobe visl failed: {r.output}"
    deadline = time.monotonic() + 10
    while not list(Path("/sys/bus/platform/devices").glob("visl*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    yield
    r = sh("modprobe -r visl")
    assert r.returncode == 0, f"modprobe -r visl failed: {r.output}"


# --------------------------------------------------------------------------- host side


@dataclass
class GuestOutcome:
    outcome: str  # passed / failed / skipped / error
    text: str


class GuestBatch:
    """One VM boot running the selected guest tests; results by node id."""

    def __init__(self, config: pytest.Config, nodeids: list[str]) -> None:
        self.config = config
        self.nodeids = nodeids
        self.results: dict[str, GuestOutcome] | None = None
        self.run: Run | None = None
        self.out: Path | None = None
        self.error: str | None = None

    def ensure(self) -> None:
        if self.results is not None or self.error is not None:
            return
        why = host_prerequisites()
        if why is not None:
            self.error = "missing:" + why
            return
        old = sorted((CACHE / "runs").glob("pytest-2*"), key=lambda p: p.stat().st_mtime)
        for d in old[:-10]:  # keep the 10 newest guest runs
            shutil.rmtree(d, ignore_errors=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.out = CACHE / "runs" / f"pytest-{stamp}-{os.getpid()}"
        self.out.mkdir(parents=True, exist_ok=True)
        results = self.out / "guest-results.jsonl"
        results.unlink(missing_ok=True)
        # In the guest the share dir is mounted at /run/vm-share.
        env = dict(os.environ, DAEDALUS_VM_RESULTS="/run/vm-share/guest-results.jsonl")
        env.setdefault("DAEDALUS_VENV", sys.prefix)  # the guest uses this pytest's venv
        args = [str(VM_RUN), "--quiet", "--out", str(self.out)]
        if not (ROOT / "kernel" / "Makefile").is_file():
            args.append("--no-module")
        inner = [
            "python", "-m", "pytest", "-p", "no:cacheprovider", "-m", "vm",
            "-o", "console_output_style=classic", "-rA", *self.nodeids,
        ]
        args += ["--", *inner]
        started = time.monotonic()
        p = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=env)
        self.run = Run(p.returncode, p.stdout, p.stderr)
        (self.out / "host-vm-run.log").write_text(
            f"$ {shlex.join(args)}\n--- stdout\n{p.stdout}\n--- stderr\n{p.stderr}\n"
            f"--- exit {p.returncode} after {time.monotonic() - started:.1f}s\n"
        )
        self.results = self._parse(results)

    @staticmethod
    def _parse(path: Path) -> dict[str, GuestOutcome]:
        by_id: dict[str, list[dict]] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                e = json.loads(line)
                by_id.setdefault(e["nodeid"], []).append(e)
        out: dict[str, GuestOutcome] = {}
        for nodeid, entries in by_id.items():
            text = ""
            outcome = "passed"
            for e in entries:
                sections = "".join(f"\n----- {t} -----\n{s}" for t, s in e["sections"])
                if e["outcome"] == "failed":
                    outcome = "failed" if e["when"] == "call" else "error"
                    text = f"[guest, {e['when']}]\n{e['longrepr']}{sections}"
                    break
                if e["outcome"] == "skipped":
                    outcome, text = "skipped", e["longrepr"]
                    break
            out[nodeid] = GuestOutcome(outcome, text)
        return out

    def tail(self) -> str:
        if self.run is None:
            return ""
        daemon_log = self.out / "daemon.log"
        daemon = daemon_log.read_text(errors="replace")[-3000:] if daemon_log.is_file() else ""
        return (
            f"vm-run exit status {self.run.returncode}; run dir {self.out}\n"
            + (f"--- daemon.log (tail) ---\n{daemon}\n" if daemon else "") +
            f"--- guest pytest output (tail) ---\n{self.run.stdout[-6000:]}\n"
            f"--- vm-run stderr (tail) ---\n{self.run.stderr[-4000:]}"
        )


class GuestProxy(pytest.Item):
    """Stands for a guest test on the host: reports what it did in the VM."""

    def __init__(self, *, batch: GuestBatch, **kwargs) -> None:
        super().__init__(**kwargs)
        self.batch = batch

    def runtest(self) -> None:
        b = self.batch
        b.ensure()
        if b.error is not None and b.error.startswith("missing:"):
            missing(b.error[len("missing:"):])
        assert b.results is not None
        r = b.results.get(self.nodeid)
        if r is None:
            pytest.fail(f"{self.nodeid} did not report from the guest\n{b.tail()}", pytrace=False)
        if r.outcome == "skipped":
            pytest.skip(f"[guest] {r.text.removeprefix('Skipped: ')}")
        if r.outcome in ("failed", "error"):
            pytest.fail(f"{r.text}\n(run dir {b.out})", pytrace=False)

    def reportinfo(self):
        return self.path, None, f"[vm] {self.name}"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    if IN_GUEST:
        # The kernel-report check covers everything this boot ran, so it runs last
        # (by name it would sort before test_rig, test_tui_vm, test_visl_baseline).
        items.sort(key=lambda it: it.path.name == DMESG_CHECK)
        return
    guest = [
        it for it in items
        if it.get_closest_marker("vm") and not it.get_closest_marker("vm_host")
        and isinstance(it, pytest.Function)
    ]
    if not guest:
        return
    batch = GuestBatch(config, [it.nodeid for it in guest])
    config.stash[_BATCH] = batch
    replaced = {}
    for it in guest:
        proxy = GuestProxy.from_parent(it.parent, name=it.name, batch=batch)
        proxy.own_markers.extend(it.own_markers)  # module/class marks come via the parent
        replaced[id(it)] = proxy
    items[:] = [replaced.get(id(it), it) for it in items]


_BATCH = pytest.StashKey[GuestBatch]()
DMESG_CHECK = "test_reliability_zz_dmesg.py"


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    batch = config.stash.get(_BATCH, None)
    if batch is not None and batch.out is not None:
        terminalreporter.write_line(f"VM guest run: {batch.out} (serial.log, dmesg.txt, command.stdout)")
