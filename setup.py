"""Build hook: setuptools needs setup.py for cffi_modules; everything else is in pyproject.toml.

The Linux-socket extension is always built. The lwIP-over-TAP one is built when liblwip-dev is installed
(pkg-config finds `lwip`) and its backend file exists; set TCP_CORE_REQUIRE_LWIP=1 to make its absence an error.
"""

import os
import sys

from setuptools import setup

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "python"))
from tcp_core_build.build import lwip_available

modules = ["python/tcp_core_build/build.py:ffi_linux", "python/tcp_core_build/build.py:ffi_linux_device"]
ok, why = lwip_available()
if ok:
    modules += ["python/tcp_core_build/build.py:ffi_lwip", "python/tcp_core_build/build.py:ffi_lwip_device"]
elif os.environ.get("TCP_CORE_REQUIRE_LWIP") == "1":
    raise SystemExit(f"tcp_core: the lwip backend was required but cannot be built: {why}")
else:
    print(f"tcp_core: building without the lwip backend ({why})", file=sys.stderr)

# One wheel for every CPython from 3.10 on: cffi's generated modules use only the stable ABI (Py_LIMITED_API).
# The extensions (2 or 4, each the whole core) are compiled side by side, one per core.
setup(
    cffi_modules=modules,
    options={"bdist_wheel": {"py_limited_api": "cp310"}, "build_ext": {"parallel": os.cpu_count() or 1}},
)
