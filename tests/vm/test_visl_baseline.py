"""Baseline in the guest, without our module: visl (the kernel's virtual stateless
decoder) under v4l2-compliance and GStreamer, and a clean dmesg around it.

The compliance result is saved in the share dir ($DAEDALUS_VM_SHARE, the run
directory on the host) so a later test can compare our driver's failures with
visl's: visl-compliance-failures.txt (one test name a line),
visl-compliance-summary.txt and visl-compliance.log.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from vmrig import guest_tool, module_loaded, run_compliance, sh

pytestmark = pytest.mark.vm

# Debian's v4l-utils 1.22.1 against this 6.12 kernel (DESIGN.md): 54 tests, 48 pass.
VISL_BASELINE_TOTAL = 54
VISL_BASELINE_SUCCEEDED = 48

BAD_DMESG = re.compile(
    r"WARNING:|BUG:|Oops|Call Trace:|general protection fault|kernel BUG|"
    r"possible circular locking|possible recursive locking|inconsistent lock state|"
    r"list_(add|del) corruption|refcount_t:|INFO: task .* blocked|UBSAN|KASAN|"
    r"sleeping function called from invalid context|Unable to handle"
)


def dmesg_lines() -> list[str]:
    return subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout.splitlines()


def test_visl_compliance_baseline(visl, share_dir):
    version = sh("v4l2-compliance --version").stdout
    c = run_compliance("-m platform:visl")
    (share_dir / "visl-compliance.log").write_text(c.output)
    (share_dir / "visl-compliance-summary.txt").write_text(c.summary + "\n" + version)
    (share_dir / "visl-compliance-failures.txt").write_text("".join(f + "\n" for f in c.failures))
    print(c.summary)
    print("failing:", *c.failures, sep="\n  ")
    assert c.total is not None, f"no summary line in v4l2-compliance output:\n{c.output[-3000:]}"
    assert c.total == c.succeeded + c.failed
    assert len(c.failures) == c.failed
    if "1.22.1" in version:
        assert (c.total, c.succeeded) == (VISL_BASELINE_TOTAL, VISL_BASELINE_SUCCEEDED), c.summary
    else:
        assert c.succeeded >= VISL_BASELINE_SUCCEEDED, c.summary


def test_gstreamer_runs_in_guest(tmp_path):
    inspect = guest_tool("gst-inspect-1.0")
    launch = guest_tool("gst-launch-1.0")
    env = f"GST_REGISTRY={tmp_path}/registry.bin"
    r = sh(f"{env} {launch} -q fakesrc num-buffers=3 ! fakesink")
    assert r.returncode == 0, r.output
    r = sh(f"{env} {inspect} v4l2codecs")
    if r.returncode != 0:
        pytest.fail(f"gst-inspect-1.0 v4l2codecs failed (gstreamer1.0-plugins-bad installed?):\n{r.output}")


def test_gstreamer_lists_visl_decoders(visl, tmp_path):
    guest_tool("gst-inspect-1.0")
    r = sh(f"GST_REGISTRY={tmp_path}/registry.bin gst-inspect-1.0")
    assert r.returncode == 0, r.output
    names = sorted(set(re.findall(r"\b(v4l2sl\w+dec)\b", r.stdout)))
    print("v4l2 stateless decoders:", names)
    assert "v4l2slvp9dec" in names and "v4l2slh264dec" in names, names


def test_gstreamer_decodes_through_visl(visl, tmp_path):
    env = f"GST_REGISTRY={tmp_path}/registry.bin"
    if sh(f"{env} gst-inspect-1.0 vp9enc").returncode != 0:
        pytest.skip("vp9enc (gstreamer1.0-plugins-good) not available to make a clip")
    r = sh(f"{env} gst-launch-1.0 -q videotestsrc num-buffers=4 ! video/x-raw,width=320,height=240 "
           f"! vp9enc deadline=1 ! vp9parse ! v4l2slvp9dec ! fakesink", timeout=600)
    assert r.returncode == 0, r.output


def test_visl_load_unload_leaves_dmesg_clean():
    if module_loaded("visl"):
        assert sh("modprobe -r visl").returncode == 0
    before = len(dmesg_lines())
    for _ in range(2):
        r = sh("set -e; modprobe visl; v4l2-ctl --list-devices; "
               "for d in $(ls /sys/bus/platform/devices/visl*/video4linux); do "
               "v4l2-ctl -d /dev/$d --all >/dev/null; done; modprobe -r visl")
        assert r.returncode == 0, r.output
    assert not module_loaded("visl")
    new = dmesg_lines()[before:]
    bad = [line for line in new if BAD_DMESG.search(line)]
    assert not bad, "\n".join(new)
