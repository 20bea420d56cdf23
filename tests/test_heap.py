"""Freed picture memory stays mapped for the next picture (daedalus_v4l2.heap)."""
import json
import subprocess
import sys

import pytest

# In a fresh interpreter, a 16 MB picture-sized buffer in the main thread, then one in a
# thread: is it in the [heap] mapping (not a mapping of its own, which a fresh picture
# page-faults into and which is unmapped when freed), and is the heap still as large
# once the buffer is freed.
PROBE = """
import ctypes, json, sys, threading
from daedalus_v4l2.heap import keep_freed_memory

def heap_range():
    for line in open("/proc/self/maps"):
        if line.rstrip().endswith("[heap]"):
            return tuple(int(x, 16) for x in line.split()[0].split("-"))
    return (0, 0)

def picture(out):
    picture = bytearray(16 << 20)
    address = ctypes.addressof(ctypes.c_char.from_buffer(picture))
    start, end = heap_range()
    out["in_heap"] = start <= address < end
    del picture
    out["kept"] = heap_range()[1] - start >= 16 << 20

fixed = keep_freed_memory() if sys.argv[1] == "fixed" else None
main, thread = {}, {}
picture(main)
worker = threading.Thread(target=picture, args=(thread,))
worker.start()
worker.join()
print(json.dumps({"fixed": fixed, "main": main, "thread": thread}))
"""


def probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc, /proc/self/maps")
def test_a_freed_picture_stays_in_the_heap_for_the_next_one_in_any_thread():
    fixed = probe("fixed")
    assert fixed["fixed"] is True
    assert fixed["main"] == {"in_heap": True, "kept": True}
    assert fixed["thread"] == {"in_heap": True, "kept": True}
    # glibc's defaults, for contrast: a mapping of its own for the main thread's picture,
    # an arena of its own for the thread's
    default = probe("default")
    assert not default["main"]["in_heap"] and not default["thread"]["in_heap"]
