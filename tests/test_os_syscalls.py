"""The real kernel's syscalls (daedalus_v4l2.v4l2.syscalls.OsSyscalls) on a plain file."""
import os

from daedalus_v4l2.v4l2.syscalls import OsSyscalls


def test_munmap_leaves_a_mapping_a_caller_still_views_until_that_view_goes(tmp_path):
    """A consumer that kept a view of a borrowed picture (decode_through(borrow=True))
    must not make closing the decoder fail: the mapping outlives the close."""
    path = tmp_path / "buffer"
    path.write_bytes(bytes(range(256)) * 16)
    syscalls = OsSyscalls()
    fd = os.open(path, os.O_RDWR)
    try:
        mapping = syscalls.mmap(fd, 4096, 0)
        kept = memoryview(mapping)[:16].toreadonly()   # what a borrowed picture is
        syscalls.munmap(mapping)
        assert bytes(kept) == bytes(range(16))
        kept.release()
    finally:
        os.close(fd)
