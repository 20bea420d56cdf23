"""Every layout cffi uses, checked against the C compiler.

For each struct, cffi's type information is walked (nested structs, unions,
anonymous unions, arrays) and a C program is generated that prints the
compiler's ``sizeof``/``_Alignof`` of the struct and ``offsetof``/``sizeof`` of
every field path, and the value of every checked constant.  gcc builds it
against the real headers (the protocol header, and the system's
``<linux/videodev2.h>``/``<linux/media.h>``), it runs, and every number is
compared with cffi's.  A missing gcc is a failure, not a skip.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import cffi
import pytest

from daedalus_v4l2 import cdefs, proto
from daedalus_v4l2.v4l2 import uapi

_STRUCT = re.compile(r"^\s*struct\s+(dv4l2_\w+)\s*\{", re.M)
_DEFINE = re.compile(r"^\s*#\s*define\s+(DV4L2_\w+)\s+(?:0x[0-9a-fA-F]+|\d+)\b", re.M)

# Members cffi needs that the kernel's headers do not have: stand-ins that give
# a union the kernel's alignment (pointer/64-bit members of types not declared
# here).  They still count in the enclosing struct's sizeof/alignof checks.
CFFI_ONLY_FIELDS = {
    ("struct v4l2_format", "fmt._align"),
    ("struct v4l2_event", "u._align"),
}

# Constants uapi.py defines but does not list in CHECKED_CONSTANTS (#defines that
# older headers may lack, e.g. AV1 before Linux 6.5): checked when the system
# header has them, reported when it does not.
OPTIONAL_CONSTANTS = sorted(
    name for name in dir(uapi)
    if name.startswith(("V4L2_", "VIDIOC_", "MEDIA_")) and name not in uapi.CHECKED_CONSTANTS
    and isinstance(getattr(uapi, name), int))


# --------------------------------------------------------------------------- the generator

@dataclass
class Expectation:
    key: str          # what the C program prints before the value
    c_expr: str       # a C expression of the value
    value: int        # what cffi says
    optional_macro: str | None = None  # only if this macro is defined


def field_paths(ffi: cffi.FFI, ctype, prefix: str = "", base: int = 0):
    """(path, offset, size) of every member, recursively: nested structs and
    unions by name (anonymous unions are flattened by cffi, as C11 allows in
    offsetof), arrays through their first element."""
    for name, field in ctype.fields:
        path = prefix + name
        offset = base + field.offset
        yield path, offset, ffi.sizeof(field.type)
        yield from _member_paths(ffi, field.type, path, offset)


def _member_paths(ffi, ctype, path, offset):
    if ctype.kind in ("struct", "union"):
        yield from field_paths(ffi, ctype, path + ".", offset)
    elif ctype.kind == "array":
        item = ctype.item
        yield f"{path}[0]", offset, ffi.sizeof(item)
        if ctype.length and ctype.length > 1:
            last = f"{path}[{ctype.length - 1}]"
            yield last, offset + (ctype.length - 1) * ffi.sizeof(item), ffi.sizeof(item)
        yield from _member_paths(ffi, item, f"{path}[0]", offset)


def struct_expectations(ffi: cffi.FFI, struct: str, skip=frozenset()) -> list[Expectation]:
    ctype = ffi.typeof(struct)
    out = [Expectation(f"sizeof {struct}", f"sizeof({struct})", ffi.sizeof(ctype)),
           Expectation(f"alignof {struct}", f"_Alignof({struct})", ffi.alignof(ctype))]
    for path, offset, size in field_paths(ffi, ctype):
        if (struct, path) in skip or any(path.startswith(s + ".") for t, s in skip if t == struct):
            continue
        out.append(Expectation(f"offsetof {struct} {path}", f"offsetof({struct}, {path})", offset))
        out.append(Expectation(f"sizeof {struct} {path}", f"sizeof(((({struct} *)0)->{path}))", size))
    return out


def constant_expectations(values: dict[str, int], optional=()) -> list[Expectation]:
    return [Expectation(f"value {name}", f"({name})", value & 0xFFFFFFFFFFFFFFFF,
                        name if name in optional else None)
            for name, value in sorted(values.items())]


def c_program(includes: list[str], expectations: list[Expectation]) -> str:
    lines = ["#include <stddef.h>", "#include <stdio.h>", *[f"#include {inc}" for inc in includes],
             "int main(void)", "{"]
    for e in expectations:
        stmt = f'\tprintf("%s %llu\\n", "{e.key}", (unsigned long long){e.c_expr});'
        if e.optional_macro:
            lines += [f"#ifdef {e.optional_macro}", stmt, "#else",
                      f'\tprintf("%s absent\\n", "{e.key}");', "#endif"]
        else:
            lines.append(stmt)
    lines += ["\treturn 0;", "}", ""]
    return "\n".join(lines)


def gcc() -> str:
    path = shutil.which("gcc")
    if not path:
        pytest.fail("gcc is needed to check the struct layouts against the C headers "
                    "(apt install gcc linux-libc-dev); this check is never skipped")
    return path


def compile_and_compare(workdir: Path, includes: list[str], expectations: list[Expectation],
                        include_dirs=()) -> tuple[list[str], list[str]]:
    """Build and run the generated program; returns (mismatches, absent optional keys)."""
    src = workdir / "layouts.c"
    exe = workdir / "layouts"
    src.write_text(c_program(includes, expectations))
    cmd = [gcc(), "-std=gnu11", "-Wall", "-o", str(exe), str(src)]
    cmd += [f"-I{d}" for d in include_dirs]
    built = subprocess.run(cmd, capture_output=True, text=True)
    assert built.returncode == 0, f"gcc failed on the generated {src}:\n{built.stderr[-4000:]}"
    ran = subprocess.run([str(exe)], capture_output=True, text=True, check=True)
    got = {}
    for line in ran.stdout.splitlines():
        key, _, value = line.rpartition(" ")
        got[key] = value
    mismatches, absent = [], []
    for e in expectations:
        value = got.get(e.key)
        if value == "absent":
            absent.append(e.key)
        elif value is None or int(value) != e.value:
            mismatches.append(f"{e.key}: cffi {e.value}, gcc {value}")
    return mismatches, absent


# --------------------------------------------------------------------------- protocol header

def proto_structs(text: str) -> list[str]:
    return [f"struct {name}" for name in _STRUCT.findall(text)]


def proto_expectations(ffi: cffi.FFI, text: str, lib=None) -> list[Expectation]:
    out = []
    for struct in proto_structs(text):
        out += struct_expectations(ffi, struct)
    if lib is not None:
        out += constant_expectations({name: getattr(lib, name) for name in _DEFINE.findall(text)})
    return out


def ffi_from_header_text(text: str) -> cffi.FFI:
    """What proto.py does, for any header text."""
    return cdefs.declare(cffi.FFI(), cdefs.header_declarations(text))


@pytest.fixture(scope="module")
def header():
    path = proto.header_path()
    return path, path.read_text()


def test_protocol_header_lists_its_structs(header):
    _, text = header
    structs = proto_structs(text)
    assert {"struct dv4l2_msg_header", "struct dv4l2_decode_req", "struct dv4l2_frame_resp",
            "struct dv4l2_plane", "struct dv4l2_stream_open", "struct dv4l2_ctrl_rec"} <= set(structs)
    assert len(_DEFINE.findall(text)) >= 20


def test_protocol_layouts_match_gcc(header, tmp_path):
    path, text = header
    expectations = proto_expectations(proto.ffi, text, proto.lib)
    mismatches, absent = compile_and_compare(
        tmp_path, [f'"{path.name}"'], expectations, include_dirs=[path.parent])
    assert not mismatches, "\n".join(mismatches)
    assert not absent
    assert len(expectations) > 100


def test_protocol_structs_have_explicit_padding(header):
    _, text = header
    for struct in proto_structs(text):
        ctype = proto.ffi.typeof(struct)
        size = proto.ffi.sizeof(ctype)
        fields = sum(proto.ffi.sizeof(f.type) for _, f in ctype.fields)
        assert size % 8 == 0, f"{struct} is {size} bytes, not a multiple of 8"
        assert fields == size, f"{struct}: fields add up to {fields} bytes, sizeof is {size} " \
                               f"(implicit padding)"
        end = 0
        for name, f in ctype.fields:  # and each field starts where the previous ended
            assert f.offset == end, f"{struct}.{name} at {f.offset}, previous field ends at {end}"
            end = f.offset + proto.ffi.sizeof(f.type)


def test_altered_header_is_caught(header, tmp_path):
    """The check can fail: cffi reads a header where one __u32 became __u16 and
    a #define changed, gcc compiles the real one."""
    path, text = header
    altered = text.replace("__u32 payload_len;", "__u16 payload_len;", 1)
    altered = altered.replace("#define DV4L2_MSG_FRAME\t\t\t6", "#define DV4L2_MSG_FRAME\t\t\t60", 1)
    assert altered.count("__u16 payload_len;") == 1 and "DV4L2_MSG_FRAME\t\t\t60" in altered
    ffi = ffi_from_header_text(altered)
    lib = ffi.dlopen(None)
    mismatches, _ = compile_and_compare(
        tmp_path, [f'"{path.name}"'], proto_expectations(ffi, altered, lib), include_dirs=[path.parent])
    joined = "\n".join(mismatches)
    assert "sizeof struct dv4l2_msg_header payload_len: cffi 2, gcc 4" in joined
    assert "value DV4L2_MSG_FRAME: cffi 60, gcc 6" in joined
    # sizeof and the later offsets stay the same (cffi pads after the u16), so
    # only the per-field check sees it; the explicit-padding rule does too
    unchanged = ("sizeof struct dv4l2_msg_header:", "offsetof struct dv4l2_msg_header cookie")
    assert not any(m.startswith(unchanged) for m in mismatches), joined
    ctype = ffi.typeof("struct dv4l2_msg_header")
    assert sum(ffi.sizeof(f.type) for _, f in ctype.fields) != ffi.sizeof(ctype)


def test_generator_sees_nested_and_anonymous_members():
    paths = {p for p, _, _ in field_paths(uapi.ffi, uapi.ffi.typeof("struct v4l2_buffer"))}
    assert {"timestamp.tv_usec", "timecode.userbits[0]", "m.planes", "request_fd", "reserved"} <= paths
    paths = {p for p, _, _ in field_paths(uapi.ffi, uapi.ffi.typeof("struct v4l2_vp9_segmentation"))}
    assert {"feature_data[0][0]", "feature_data[7]", "feature_data[0][3]"} <= paths
    paths = {p for p, _, _ in field_paths(proto.ffi, proto.ffi.typeof("struct dv4l2_decode_req"))}
    assert {"planes[2]", "planes[0].bytesperline"} <= paths


# --------------------------------------------------------------------------- V4L2 uAPI

def test_uapi_layouts_and_constants_match_system_headers(tmp_path):
    expectations = []
    for name in uapi.CHECKED_STRUCTS:
        expectations += struct_expectations(uapi.ffi, f"struct {name}", CFFI_ONLY_FIELDS)
    constants = {name: getattr(uapi, name) for name in uapi.CHECKED_CONSTANTS + OPTIONAL_CONSTANTS}
    expectations += constant_expectations(constants, optional=OPTIONAL_CONSTANTS)
    mismatches, absent = compile_and_compare(
        tmp_path, ["<linux/videodev2.h>", "<linux/media.h>"], expectations)
    assert not mismatches, "\n".join(mismatches)
    # only optional constants may be missing from an older header, and they are named
    assert all(key.split()[-1] in OPTIONAL_CONSTANTS for key in absent), absent
    if absent:
        print("not in this system's headers (not checked):", ", ".join(k.split()[-1] for k in absent))
    assert "value V4L2_PIX_FMT_NV12" not in absent and "value V4L2_PIX_FMT_P010" not in absent


def test_cffi_only_fields_exist_in_cffi():
    """The exemption list names real cffi members (a stale entry would hide nothing
    but would mislead)."""
    for struct, path in CFFI_ONLY_FIELDS:
        assert path in {p for p, _, _ in field_paths(uapi.ffi, uapi.ffi.typeof(struct))}


# --------------------------------------------------------------------------- AV1 (Linux 6.5+)

LINUX_612_TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")
V4L2_CONTROLS_612 = "linux-source-6.12/include/uapi/linux/v4l2-controls.h"


@pytest.fixture(scope="session")
def linux_612_include() -> Path:
    """An include directory whose <linux/v4l2-controls.h> is the 6.12 source's
    (the system's 6.1 headers have no AV1 uAPI); the rest of <linux/*.h> comes
    from the system.  Extracted once and cached outside the checkout, keyed by
    the tarball's size and mtime (the extraction takes ~10 s)."""
    if not LINUX_612_TARBALL.exists():
        pytest.fail(f"{LINUX_612_TARBALL} is needed to check the AV1 control layouts "
                    "(apt install linux-source-6.12); this check is never skipped")
    stat = LINUX_612_TARBALL.stat()
    cache = Path.home() / ".cache" / "daedalus-v4l2" / f"uapi-6.12-{stat.st_size}-{int(stat.st_mtime)}"
    header = cache / "include" / "linux" / "v4l2-controls.h"
    if not header.exists():
        work = cache / "extract"
        work.mkdir(parents=True, exist_ok=True)
        # --occurrence stops reading the archive once the member is out
        subprocess.run(["tar", "-xf", str(LINUX_612_TARBALL), "-C", str(work), "--occurrence=1",
                        V4L2_CONTROLS_612], check=True)
        header.parent.mkdir(parents=True, exist_ok=True)
        (work / V4L2_CONTROLS_612).rename(header)
    return cache / "include"


def av1_constants() -> dict[str, int]:
    from daedalus_v4l2.codecs import av1_controls
    values = {name: getattr(av1_controls, name) for name in dir(av1_controls)
              if name.startswith("V4L2_AV1_")}
    values.update({name: getattr(uapi, name) for name in dir(uapi)
                   if name.startswith(("V4L2_AV1_", "V4L2_CID_STATELESS_AV1"))})
    return values


def test_av1_layouts_and_constants_match_the_612_header(tmp_path, linux_612_include):
    expectations = []
    for name in uapi.CHECKED_STRUCTS_AV1:
        expectations += struct_expectations(uapi.ffi, f"struct {name}")
    constants = av1_constants()
    expectations += constant_expectations(constants)
    mismatches, absent = compile_and_compare(
        tmp_path, ["<linux/v4l2-controls.h>"], expectations, include_dirs=[linux_612_include])
    assert not mismatches, "\n".join(mismatches)
    assert not absent
    assert len(constants) > 60 and len(expectations) > 500
    assert "V4L2_CID_STATELESS_AV1_FRAME" in constants


def test_the_av1_check_uses_the_612_header_not_the_system_one(linux_612_include):
    """A silent fall-back to the 6.1 system header would make the check vacuous."""
    text = (linux_612_include / "linux" / "v4l2-controls.h").read_text()
    assert "struct v4l2_ctrl_av1_frame {" in text
    system = Path("/usr/include/linux/v4l2-controls.h")
    assert not system.exists() or "struct v4l2_ctrl_av1_frame {" not in system.read_text(), \
        "the system header has the AV1 uAPI now: check against it instead"
