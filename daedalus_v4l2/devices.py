"""``daedalus-v4l2 devices``: our video, media and chardev nodes, found with pyudev.

pyudev enumerates sysfs, so no udev daemon is needed to *find* the nodes.
Their symlinks (``/dev/video-dec0`` ...) are read from /dev itself as well as
from udev's database: whatever made them, they are shown if they exist.
"""
from __future__ import annotations

import grp
import json
import os
import pwd
import stat
from dataclasses import asdict, dataclass, field

DRIVER = "daedalus_v4l2"
CHARDEV_NAME = "daedalus-v4l2"
MODULE = "daedalus_v4l2"
KINDS = ("video", "media", "chardev")


@dataclass
class Node:
    kind: str                 # video, media or chardev
    path: str                 # /dev/videoN
    sys_path: str
    mode: str = ""            # crw-rw----
    owner: str = ""
    group: str = ""
    links: list[str] = field(default_factory=list)
    error: str = ""           # why the node could not be stat()ed
    perm: int = 0             # permission bits, 0o660


def module_loaded(sys_root: str = "/sys") -> bool:
    try:
        with open(os.path.join(sys_root, "module", MODULE, "initstate")) as f:
            return f.read().strip() == "live"
    except OSError:
        return os.path.isdir(os.path.join(sys_root, "module", MODULE))


def _ours(device) -> bool:
    while device is not None:
        if device.driver == DRIVER:
            return True
        device = device.parent
    return False


def _name(ident: int, lookup, attr: str) -> str:
    try:
        return getattr(lookup(ident), attr)
    except KeyError:
        return str(ident)


def _links(path: str, udev_links, dev_root: str = "/dev") -> list[str]:
    """Symlinks to ``path``: udev's own list plus any found in /dev and /dev/v4l/*."""
    links = set(udev_links)
    dirs = [dev_root] + [os.path.join(dev_root, "v4l", d) for d in ("by-path", "by-id")]
    real = os.path.realpath(path)
    for directory in dirs:
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            if entry.is_symlink() and os.path.realpath(entry.path) == real:
                links.add(entry.path)
    return sorted(links)


def describe_node(kind: str, path: str, sys_path: str = "", udev_links=()) -> Node:
    node = Node(kind, path, sys_path)
    try:
        st = os.stat(path)
    except OSError as exc:
        node.error = exc.strerror or str(exc)
        return node
    node.mode = stat.filemode(st.st_mode)
    node.perm = stat.S_IMODE(st.st_mode)
    node.owner = _name(st.st_uid, pwd.getpwuid, "pw_name")
    node.group = _name(st.st_gid, grp.getgrgid, "gr_name")
    node.links = _links(path, udev_links)
    return node


def find(context=None) -> list[Node]:
    """Our nodes, video first; an empty list when the module is not loaded."""
    if context is None:
        import pyudev
        context = pyudev.Context()
    nodes: list[Node] = []
    for kind, subsystem in (("video", "video4linux"), ("media", "media")):
        for device in context.list_devices(subsystem=subsystem):
            if device.device_node and _ours(device):
                nodes.append(describe_node(kind, device.device_node, device.sys_path,
                                           device.device_links))
    for device in context.list_devices(subsystem="misc", sys_name=CHARDEV_NAME):
        if device.device_node:
            nodes.append(describe_node("chardev", device.device_node, device.sys_path,
                                       device.device_links))
    return nodes


def format_nodes(nodes: list[Node], loaded: bool) -> str:
    if not nodes:
        if loaded:
            return (f"no {DRIVER} devices, although the module is loaded: its nodes are "
                    f"missing from sysfs (see dmesg)")
        return (f"no {DRIVER} devices: the module is not loaded "
                f"(load it with: sudo modprobe {MODULE})")
    width = max(len(n.path) for n in nodes)
    lines = [f"{DRIVER} devices:"]
    for n in nodes:
        if n.error:
            lines.append(f"  {n.kind:<8} {n.path:<{width}}  ({n.error})")
            continue
        line = f"  {n.kind:<8} {n.path:<{width}}  {n.mode} {n.owner}:{n.group}"
        if n.links:
            line += "  links: " + " ".join(n.links)
        lines.append(line)
    missing = [k for k in KINDS if k not in {n.kind for n in nodes}]
    if missing:
        lines.append(f"missing: {', '.join(missing)} (see dmesg)")
    return "\n".join(lines)


def main(as_json: bool = False, out=None) -> int:
    import sys
    out = out or sys.stdout
    loaded = module_loaded()
    nodes = find()
    if as_json:
        json.dump({"module_loaded": loaded, "nodes": [asdict(n) for n in nodes]}, out, indent=2)
        out.write("\n")
    else:
        print(format_nodes(nodes, loaded), file=out)
    return 0 if nodes else 1
