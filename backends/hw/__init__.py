"""The hw backend: the daedalus_v4l2 kernel module's real device nodes."""
from .discovery import DeviceNodes, find_nodes, wait_for_nodes
from .transport import CHARDEV, HwTransport

__all__ = ["CHARDEV", "DeviceNodes", "HwTransport", "find_nodes", "wait_for_nodes"]
