"""Damaging VP9 frames on their way to the device, for the error-path tests."""
from __future__ import annotations

from daedalus_v4l2.codecs import vp9
from daedalus_v4l2.decode import Vp9Client


class Damaging(Vp9Client):
    """A VP9 client that damages some decoded frames (by index) on their way to
    the device; their controls stay those of the intact frame."""

    def __init__(self, damage):
        super().__init__()
        self.damage, self.count = damage, 0
        self.shadow = vp9.Vp9Parser()  # sees every intact frame, to know header sizes
        self.damaged_timestamps = []

    def jobs(self, packet, next_timestamp):
        jobs = super().jobs(packet, next_timestamp)
        for job in jobs:
            if job.show_timestamp is None:
                header = self.shadow.parse(job.data)
                if self.count in self.damage:
                    job.data = self.damage[self.count](job.data, header)
                    self.damaged_timestamps.append(job.timestamp)
                self.count += 1
        return jobs


def zeros(frame, header):
    """Not even a frame marker: the daemon's header parser refuses it."""
    return bytes(len(frame))


def garbage_after_the_header(frame, header):
    """The uncompressed header intact, the rest 0xff: libavcodec refuses it."""
    keep = header.uncompressed_header_size
    return frame[:keep] + b"\xff" * (len(frame) - keep)
