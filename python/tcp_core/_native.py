"""Loading the compiled extensions: one per host socket backend, each a full copy of the C core."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any

from .errors import BY_NAME, TcError

BACKENDS = ("linux", "lwip")


@dataclass(frozen=True)
class Native:
    """An extension module's ``ffi`` and ``lib`` for one backend."""

    backend: str
    ffi: Any
    lib: Any

    def check(self, rc: int, context: str = "") -> int:
        """Return rc if it is not negative, else raise the typed exception for the tc_err_t code."""
        if rc >= 0:
            return rc
        name = self.ffi.string(self.lib.tc_err_name(rc)).decode()
        message = self.ffi.string(self.lib.tc_strerror(rc)).decode()
        cls = BY_NAME.get(name, TcError)
        raise cls(rc, name, message, context)


_loaded: dict[str, Native] = {}


def available_backends() -> list[str]:
    """The backends whose extension module was built (``linux`` always; ``lwip`` with liblwip-dev)."""
    out = []
    for name in BACKENDS:
        try:
            load(name)
        except ImportError:
            continue
        out.append(name)
    return out


def load(backend: str) -> Native:
    """Import the extension of ``backend`` and register its Python callbacks (once)."""
    if backend in _loaded:
        return _loaded[backend]
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    # TCP_CORE_LIMITS=device: the same C built with the device's Kconfig default sizes (tcp_core_build/build.py).
    suffix = "_device" if os.environ.get("TCP_CORE_LIMITS") == "device" else ""
    try:
        mod = importlib.import_module(f"tcp_core._tcp_core_{backend}{suffix}")
    except ImportError as exc:
        hint = " (install liblwip-dev and reinstall: pip install -e .)" if backend == "lwip" else ""
        raise ImportError(f"tcp_core backend {backend!r} is not built{hint}: {exc}") from exc
    native = Native(backend, mod.ffi, mod.lib)
    from . import _callbacks

    _callbacks.register(native)
    _loaded[backend] = native
    return native
