"""Install-time builders of the parsed cffi declarations (``cdefs.py``): the
protocol header's, into ``daedalus_v4l2._proto_defs``, and the uAPI's, into
``daedalus_v4l2.v4l2._uapi_defs``.  Out-of-line ABI mode: each is a small
generated Python module, nothing is compiled.

``setup.py`` names them in ``cffi_modules``; cffi's setuptools hook runs this
file by path, so it loads the few modules it needs by path too and imports
nothing from the package (whose dependencies the build may not have).
"""
import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _load(relative: str):
    path = HERE / relative
    spec = importlib.util.spec_from_file_location(f"_dv_build_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cdefs = _load("cdefs.py")
uapi_cdef = _load("v4l2/uapi_cdef.py")

# The package's copy of the header first, as proto.header_path() (in a checkout
# it links to include/; in an sdist it is the file itself).
HEADER = next(path for path in (HERE / "daedalus_v4l2_proto.h",
                                HERE.parent / "include" / "daedalus_v4l2_proto.h")
              if path.is_file())

# The same module names and declarations proto.py and v4l2/uapi.py load.
proto_builder = cdefs.builder("daedalus_v4l2._proto_defs",
                              cdefs.header_declarations(HEADER.read_text()))
uapi_builder = cdefs.builder(
    "daedalus_v4l2.v4l2._uapi_defs", cdefs.with_kernel_types(uapi_cdef.DECLARATIONS))
