#!/usr/bin/env python3
"""The 1080p decode benchmark: bare PyAV against the whole simulated device.

    .venv/bin/python benchmarks/decode_1080p.py           # full: 150-frame clips, 5 runs,
                                                          # RSS over 1,000 frames (~2-4 min)
    .venv/bin/python benchmarks/decode_1080p.py --short   # CI: 16-frame clips, 1 run,
                                                          # RSS over 100 frames (< 2 min)
    .venv/bin/python benchmarks/decode_1080p.py --hw      # also in the kernel rig's VM
                                                          # (scripts/vm-run; TCG, slow)
    .venv/bin/python benchmarks/decode_1080p.py --short --json report.json

Run it with the project's venv (the one scripts/test makes): it needs PyAV and
the package's native helpers.

The same as ``daedalus-v4l2 bench`` (daedalus_v4l2/bench.py has the details).
Clips are encoded once and cached in ~/.cache/daedalus-v4l2/bench
($DAEDALUS_BENCH_CACHE to move them); CI keeps that directory between runs.
It reports, never fails on a timing: the exit status is 0 unless something broke.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from daedalus_v4l2.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
