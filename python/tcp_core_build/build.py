"""cffi out-of-line API builder: one extension module per host socket backend, from the component's one source list.

    _tcp_core_linux   portable core + the linux backend (kernel sockets)
    _tcp_core_lwip    portable core + the lwip backend (the chips' lwIP source over upstream lwIP and a TAP device,
                      needs liblwip-dev)
    _tcp_core_linux_device, _tcp_core_lwip_device
                      the same with the device's limits: every numeric default of components/tcp_core/Kconfig that
                      include/tc_config.h reads, defined as the CONFIG_TCP_CORE_* macro a device build would have
                      (read buffer 4 KiB, high water 8 KiB, queue 32 KiB, ...). TCP_CORE_LIMITS=device selects them.

A backend's sources come from components/tcp_core/port/backends.txt. Every module also carries the demo firmware's
services (main/sources.txt: tc_app.c, the dashboard, the demo frames), the C that `tcp-core serve` runs; they are not
part of the component.

Extra C flags come from TCP_CORE_CFLAGS (e.g. "-O0 -g"); the core is always built with -Wall -Wextra -Werror.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from cffi import FFI

from tcp_core_build import cdefgen

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
COMPONENT = ROOT / "components" / "tcp_core"
DEMO = ROOT / "main"


def portable_sources() -> list[str]:
    """The lines of components/tcp_core/sources.txt as paths relative to the project root (setuptools wants that)."""
    out = []
    for line in (COMPONENT / "sources.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(os.path.relpath(COMPONENT / line, ROOT))
    return out


def demo_sources() -> list[str]:
    """The lines of main/sources.txt (the device's services, shared with the firmware) relative to the project root."""
    out = []
    for line in (DEMO / "sources.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(os.path.relpath(DEMO / line, ROOT))
    return out


def backend_sources(backend: str) -> list[str]:
    """A backend's C sources (components/tcp_core/port/backends.txt) as paths relative to the project root."""
    for line in (COMPONENT / "port" / "backends.txt").read_text().splitlines():
        words = line.split()
        if words and words[0] == backend:
            return [os.path.relpath(COMPONENT / w, ROOT) for w in words[1:]]
    raise ValueError(f"no backend {backend!r} in components/tcp_core/port/backends.txt")


def _pkg_config(*args: str) -> list[str]:
    res = subprocess.run(["pkg-config", *args, "lwip"], capture_output=True, text=True, check=True)
    return shlex.split(res.stdout)


def lwip_available() -> tuple[bool, str]:
    """Whether the lwip backend can be built here, and why not."""
    missing = [src for src in backend_sources("lwip") if not (ROOT / src).exists()]
    if missing:
        return False, f"{', '.join(missing)} missing"
    if shutil.which("pkg-config") is None:
        return False, "pkg-config is not installed"
    try:
        _pkg_config("--exists")
    except (subprocess.CalledProcessError, OSError):
        return False, "liblwip-dev is not installed (apt-get install liblwip-dev)"
    return True, ""


# C helpers of the extension (their declarations: glue.h): cffi cannot read designated-initialiser macros.
GLUE = """
static void tcpy_server_defaults(tc_server_config_t *c) { tc_server_config_t d = TC_SERVER_DEFAULT_CONFIG(); *c = d; }
static void tcpy_client_defaults(tc_client_config_t *c) { tc_client_config_t d = TC_CLIENT_DEFAULT_CONFIG(); *c = d; }
static void tcpy_app_defaults(tc_app_config_t *c) { tc_app_config_t d = TC_APP_DEFAULT_CONFIG(); *c = d; }
static tc_conn_cb tcpy_echo_cb(void) { return tc_echo_cb; }
static void tcpy_console_defaults(tc_console_config_t *c)
{
    tc_console_config_t d = TC_CONSOLE_DEFAULT_CONFIG();
    *c = d;
}
static const char *tcpy_console_prompt(void) { return TC_CONSOLE_PROMPT; }
"""


def declare(ffi: FFI, include_dirs: list[str], macros: list[tuple[str, str | None]], cflags: list[str]) -> str:
    """Give ffi the declarations generated from the bound headers (one cdef each) and glue.h; return the C source
    that the extension starts with (the headers and the glue helpers)."""
    try:
        headers = cdefgen.generate(include_dirs, macros, cflags)
    except cdefgen.CdefError as exc:
        raise SystemExit(f"tcp_core: cannot generate the Python bindings: {exc}") from None
    for h in headers:
        try:
            ffi.cdef(h.text)
        except Exception as exc:  # cffi's CDefError and pycparser's ParseError: say which header
            raise SystemExit(
                f"tcp_core: cffi cannot read the declarations generated from {h.name}: {exc}\n"
                f"(see them with: python3 python/tcp_core_build/cdefgen.py)"
            ) from None
    ffi.cdef((HERE / "glue.h").read_text())
    includes = "".join(f'#include "{name}"\n' for name in cdefgen.BOUND_HEADERS)
    return includes + GLUE


def kconfig_defaults() -> list[tuple[str, str]]:
    """The Kconfig defaults a device build gets, for the macros tc_config.h reads: [("CONFIG_TCP_CORE_X", "N")].

    Read from components/tcp_core/Kconfig itself (an unconditional numeric `default` of each `config`), so the
    device profile cannot drift from the menu."""
    wanted = set(re.findall(r"CONFIG_TCP_CORE_[A-Z0-9_]+\b", (COMPONENT / "include" / "tc_config.h").read_text()))
    out: dict[str, str] = {}
    name = ""
    for line in (COMPONENT / "Kconfig").read_text().splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "config":
            name = "CONFIG_" + words[1]
        elif name and len(words) == 2 and words[0] == "default" and words[1].isdigit() and name not in out:
            out[name] = words[1]
    if name := ",".join(sorted(wanted - set(out) - {"CONFIG_TCP_CORE_CLOSE_POLICY"})):
        raise SystemExit(f"tcp_core: no numeric Kconfig default for {name}")
    return sorted((k, v) for k, v in out.items() if k in wanted)


def _make_ffi(module: str, backend: str, device: bool = False) -> FFI:
    ffi = FFI()
    sources = [*portable_sources(), *demo_sources(), *backend_sources(backend)]
    cflags = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-Wno-unused-function"]
    cflags += shlex.split(os.environ.get("TCP_CORE_CFLAGS", ""))
    ldflags: list[str] = shlex.split(os.environ.get("TCP_CORE_LDFLAGS", ""))
    include_dirs = cdefgen.host_include_dirs()
    libraries = ["pthread"]
    if backend == "lwip":
        cflags += _pkg_config("--cflags")
        libraries += [flag[2:] for flag in _pkg_config("--libs") if flag.startswith("-l")]
    macros: list[tuple[str, str | None]] = [("_GNU_SOURCE", None), *(kconfig_defaults() if device else [])]
    preamble = declare(ffi, include_dirs, macros, [f for f in cflags if f.startswith(("-D", "-U", "-I"))])
    ffi.set_source(
        module,
        preamble,
        sources=sources,
        include_dirs=include_dirs,
        define_macros=macros,
        extra_compile_args=cflags,
        extra_link_args=ldflags,
        libraries=libraries,
    )
    return ffi


ffi_linux = _make_ffi("tcp_core._tcp_core_linux", "linux")
ffi_lwip = _make_ffi("tcp_core._tcp_core_lwip", "lwip") if lwip_available()[0] else None
ffi_linux_device = _make_ffi("tcp_core._tcp_core_linux_device", "linux", device=True)
ffi_lwip_device = _make_ffi("tcp_core._tcp_core_lwip_device", "lwip", device=True) if lwip_available()[0] else None
