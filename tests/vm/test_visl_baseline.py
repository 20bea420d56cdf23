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
from pathlib import Path

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


def stateless_decoders(registry) -> list[str]:
    r = sh(f"GST_REGISTRY={registry} gst-inspect-1.0")
    assert r.returncode == 0, r.output
    return sorted(set(re.findall(r"\b(v4l2sl\w*dec)\b", r.stdout)))


def visl_element(codec: str, decoders: list[str]) -> str:
    """The GStreamer element that drives visl for `codec`.

    GStreamer names the first stateless decoder of a codec it finds
    `v4l2sl<codec>dec` and later ones `v4l2sl<videoN><codec>dec`; our module
    may be loaded (and found first) too."""
    nodes = [p.name for p in Path("/sys/bus/platform/devices").glob("visl*/video4linux/video*")]
    assert nodes, "visl has no video node"
    specific = f"v4l2sl{nodes[0]}{codec}dec"
    if specific in decoders:
        return specific
    plain = f"v4l2sl{codec}dec"
    assert plain in decoders, f"no {codec} decoder for visl ({nodes[0]}) in {decoders}"
    return plain


def test_gstreamer_lists_visl_decoders(visl, tmp_path):
    guest_tool("gst-inspect-1.0")
    decoders = stateless_decoders(tmp_path / "registry.bin")
    print("v4l2 stateless decoders:", decoders)
    for codec in ("vp9", "h264"):
        print(codec, "on visl:", visl_element(codec, decoders))


def test_gstreamer_decodes_through_visl(visl, tmp_path):
    registry = tmp_path / "registry.bin"
    env = f"GST_REGISTRY={registry}"
    if sh(f"{env} gst-inspect-1.0 vp9enc").returncode != 0:
        pytest.skip("vp9enc (gstreamer1.0-plugins-good) not available to make a clip")
    dec = visl_element("vp9", stateless_decoders(registry))
    r = sh(f"{env} gst-launch-1.0 -q videotestsrc num-buffers=4 "
           f"! video/x-raw,format=I420,width=320,height=240 "
           f"! vp9enc deadline=1 ! vp9parse ! {dec} ! fakesink", timeout=600)
    assert r.returncode == 0, f"{dec}: {r.output}"


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
