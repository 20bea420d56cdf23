"""The atheris (libFuzzer) harness: ``python -m fuzz.run TARGET [libFuzzer flags] [CORPUS...]``.

    python -m fuzz.run proto -max_total_time=600              # the longer manual run
    python -m fuzz.run daemon -max_total_time=3600 -rss_limit_mb=2048 /tmp/corpus-daemon
    python -m fuzz.run --list

Targets are ``fuzz.targets.TARGETS``; a target raises only on a bug, so any
exception atheris reports is a finding (the input is saved as crash-*).
libFuzzer's -timeout (per input, default here 20 s) catches hangs and
-rss_limit_mb (default here 2048) unbounded memory.  With no corpus directory
the seeds (real DECODE messages, fuzz/corpus.py) go to a temporary one.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path


def main() -> None:
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help", "--list"):
        from fuzz.targets import TARGETS
        print(__doc__)
        print("targets:", " ".join(TARGETS))
        sys.exit(0)
    name, rest = args[0], args[1:]
    import atheris
    import logging
    logging.disable(logging.CRITICAL)   # the daemon logs every refusal: keep the output readable
    with atheris.instrument_imports(include=["daedalus_v4l2", "fuzz"]):
        from fuzz import corpus, targets
    target = targets.TARGETS[name]
    if name.startswith("daemon"):
        targets.seeds()                 # made before fuzzing starts, not inside an input
    if not any(not a.startswith("-") for a in rest):
        seed_dir = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
        corpus.write_corpus(name, seed_dir)
        rest.append(str(seed_dir))
    flags = [a for a in rest if a.startswith("-")]
    if not any(f.startswith("-timeout=") for f in flags):
        rest.insert(0, "-timeout=20")
    if not any(f.startswith("-rss_limit_mb=") for f in flags):
        rest.insert(0, "-rss_limit_mb=2048")
    atheris.Setup([sys.argv[0], *rest], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
