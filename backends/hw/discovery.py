"""Finding our video, media and chardev nodes by driver name, with pyudev.

No udev daemon is needed: pyudev enumerates sysfs.  ``wait_for_nodes``
covers the moment right after ``insmod`` when the nodes are not there yet.
"""
from __future__ import annotations

import errno
import time
from dataclasses import dataclass

from daedalus_v4l2.errors import DeviceError

DRIVER = "daedalus_v4l2"
CHARDEV_NAME = "daedalus-v4l2"


@dataclass(frozen=True)
class DeviceNodes:
    video: str
    media: str
    chardev: str


def _context():
    import pyudev  # imported here: the sim backend never needs it
    return pyudev.Context()


def _ours(device) -> bool:
    parent = device
    while parent is not None:
        if parent.driver == DRIVER:
            return True
        parent = parent.parent
    return False


def _node(context, subsystem: str) -> str | None:
    for device in context.list_devices(subsystem=subsystem):
        if device.device_node and _ours(device):
            return device.device_node
    return None


def _chardev(context) -> str | None:
    for device in context.list_devices(subsystem="misc", sys_name=CHARDEV_NAME):
        if device.device_node:
            return device.device_node
    return None


def find_nodes() -> DeviceNodes:
    """Our nodes, or DeviceError saying which are missing and what to do."""
    context = _context()
    found = {"video": _node(context, "video4linux"), "media": _node(context, "media"),
             "chardev": _chardev(context)}
    missing = [name for name, node in found.items() if node is None]
    if missing:
        raise DeviceError(errno.ENODEV, f"no {DRIVER} {', '.join(missing)} node: is the module "
                                        f"loaded? (modprobe {DRIVER})")
    return DeviceNodes(**found)


def wait_for_nodes(timeout: float = 10.0, interval: float = 0.1) -> DeviceNodes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return find_nodes()
        except DeviceError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(interval)
