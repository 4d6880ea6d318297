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
        raise self.error(rc, context)

    def error(self, err: int | str, context: str = "") -> TcError:
        """The typed exception of a tc_err_t, by code (-14) or name ("CLOSED"), with C's name and message (tc_err.h):
        ``raise native.error("CLOSED", "server is stopped")``."""
        code = int(getattr(self.lib, f"TC_E{err}")) if isinstance(err, str) else err
        name = self.text(self.lib.tc_err_name(code))
        return BY_NAME.get(name, TcError)(code, name, self.text(self.lib.tc_strerror(code)), context)

    def text(self, ptr: Any) -> str:
        """A C string (const char *) as str; "" for NULL."""
        return "" if ptr == self.ffi.NULL else str(self.ffi.string(ptr).decode("utf-8", "replace"))

    def names(self, fn: Any, count: int) -> dict[int, str]:
        """A C name table (tc_role_name, tc_kind_name, ...) for the values 0..count-1, without C's "?" entries."""
        out = {v: self.text(fn(v)) for v in range(count)}
        return {v: n for v, n in out.items() if n != "?"}


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
