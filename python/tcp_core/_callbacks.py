"""The extern "Python" callbacks of an extension module. C calls them on the loop thread; each ``user`` pointer is
an ``ffi.new_handle`` kept alive by its owner (Loop, Server, Client) for as long as C may call back."""

from __future__ import annotations

import sys
import traceback
from typing import Any

from ._native import Native


def _report(exc_type: Any, exc: Any, tb: Any) -> None:
    # An exception must not unwind into C: print it, as threading does for a failing thread.
    print("tcp_core: exception in a callback on the loop thread:", file=sys.stderr)
    traceback.print_exception(exc_type, exc, tb, file=sys.stderr)


def register(native: Native) -> None:
    """Attach the Python implementations to one extension module's extern "Python" declarations."""
    ffi = native.ffi

    @ffi.def_extern(onerror=_report)  # type: ignore[untyped-decorator]
    def tcpy_post_cb(loop: Any, user: Any) -> None:
        ffi.from_handle(user).run()

    @ffi.def_extern(onerror=_report)  # type: ignore[untyped-decorator]
    def tcpy_conn_cb(conn: Any, ev: int, data: Any, length: int, user: Any) -> None:
        ffi.from_handle(user)._event(conn, ev, data, length)

    @ffi.def_extern(onerror=_report)  # type: ignore[untyped-decorator]
    def tcpy_stop_cb(handle: Any, report: Any, user: Any) -> None:
        # The one stop callback of every handle (tc_handle.h): the object is freed, the report is valid now.
        ffi.from_handle(user)._stopped(report)

    @ffi.def_extern(onerror=_report)  # type: ignore[untyped-decorator]
    def tcpy_app_stop_request_cb(app: Any, user: Any) -> None:
        ffi.from_handle(user)._stop_requested()

    # The console's callbacks run on the thread that called tc_console_exec(); the Console turns exceptions into
    # tc_err_t codes itself, so these never raise. If one does anyway, C gets TC_EIO (onerror's return value).
    eio = int(native.lib.TC_EIO)

    def _report_io(exc_type: Any, exc: Any, tb: Any) -> int:
        print("tcp_core: exception in a console callback:", file=sys.stderr)
        traceback.print_exception(exc_type, exc, tb, file=sys.stderr)
        return eio

    @ffi.def_extern(onerror=_report_io)  # type: ignore[untyped-decorator]
    def tcpy_console_wifi_cb(ssid: Any, password: Any, user: Any) -> int:
        return int(ffi.from_handle(user)._wifi(ssid, password))

    @ffi.def_extern(onerror=_report_io)  # type: ignore[untyped-decorator]
    def tcpy_console_ota_cb(deadline_ms: int, result: Any, user: Any) -> int:
        return int(ffi.from_handle(user)._ota_prepare(deadline_ms, result))

    @ffi.def_extern(onerror=_report_io)  # type: ignore[untyped-decorator]
    def tcpy_console_info_cb(buf: Any, cap: int, user: Any) -> int:
        return int(ffi.from_handle(user)._info(buf, cap))
