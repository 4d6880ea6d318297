"""One handle model (tc_handle.h): servers, clients and the app stop through tc_handle_stop() and report in one shape;
bytes_freed is exact and belongs to the stopped object's loop, whatever another loop in the process is doing."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest

import tcp_core
from tcp_core import Loop, Server
from tcp_core.app import App
from tcp_core.testing import connect, recv_exact, wait_until


def _stop_measured(loop: Loop, srv: Server, deadline_ms: int, backend: str) -> tuple[int, int]:
    """Stop srv through the one C entry and return (report.bytes_freed, the process heap's decrease over the stop).

    The heap is read on the loop thread right before the request, and again once the stop has reported: with no other
    loop allocating meanwhile, the two figures must be equal to the byte."""
    native = loop.native
    lib = native.lib
    box: dict[str, int] = {}

    def go() -> None:
        box["before"] = tcp_core.alloc_stats(backend).bytes_in_use
        native.check(lib.tc_handle_stop(lib.tc_server_handle(srv._ptr), deadline_ms, lib.tcpy_stop_cb, srv._handle))

    loop.call(go)
    assert srv._stop_done.wait(deadline_ms / 1000 + 10)
    report = srv._report
    assert report is not None
    return report.bytes_freed, box["before"] - tcp_core.alloc_stats(backend).bytes_in_use


def _server_with_peers(loop: Loop, host: str, n: int) -> tuple[Server, list[socket.socket]]:
    srv = Server(loop, host, 0, name="echo")
    peers = [connect(host, srv.port) for _ in range(n)]
    for s in peers:
        s.sendall(b"x")
        assert recv_exact(s, 1) == b"x"
    assert wait_until(lambda: srv.conn_count == n)
    return srv, peers


def test_bytes_freed_is_the_exact_heap_released(loop: Loop, server_host: str, backend: str) -> None:
    for deadline_ms in (0, 150):  # aborted at once; or FIN, linger deadlines, then reset at the stop's deadline
        srv, peers = _server_with_peers(loop, server_host, 8)
        freed, decrease = _stop_measured(loop, srv, deadline_ms, backend)
        assert freed == decrease and freed > 0, (deadline_ms, freed, decrease)
        for s in peers:
            s.close()


def test_another_loop_does_not_skew_the_figure(loop: Loop, backend: str) -> None:
    if backend != "linux":
        pytest.skip("one lwIP stack per process: the two-loop case runs on Linux sockets")
    host = "127.0.0.1"
    figures = []
    for _ in range(2):  # the first stop of a loop differs (by what its first connections grew), so take the second
        srv, peers = _server_with_peers(loop, host, 8)
        alone, decrease = _stop_measured(loop, srv, 0, backend)
        assert alone == decrease
        figures.append(alone)
        for s in peers:
            s.close()
    # The same stop while a second loop in the process allocates and frees (connections come and go, echo traffic).
    other = Loop(backend)
    busy = Server(other, host, 0, name="busy")
    stop = threading.Event()
    churned = [0]

    def churn() -> None:
        while not stop.is_set():  # bounded by stop, set right after the measured stop
            with connect(host, busy.port) as c:
                c.sendall(b"y" * 3000)
                recv_exact(c, 3000)
            churned[0] += 1

    t = threading.Thread(target=churn)
    srv, peers = _server_with_peers(loop, host, 8)
    t.start()
    assert wait_until(lambda: churned[0] >= 5)
    with_other, _ = _stop_measured(loop, srv, 0, backend)
    stop.set()
    t.join(10)
    for s in peers:
        s.close()
    busy.stop(500)
    other.close(500)
    assert with_other == alone, (with_other, alone)


def test_one_report_shape_for_every_handle(loop: Loop, server_host: str, backend: str) -> None:
    """Server, client and app reports come from the same C callback and struct; the app carries its parts."""
    app = App(loop, server_host, echo_port=0, http_port=0, connect=(server_host, 1))
    report = app.stop(200)
    assert report.echo.graceful == 0 and report.http.graceful == 0 and not report.client_closed
    assert report.bytes_freed > 0 and report.http.bytes_freed > 0 and report.echo.bytes_freed > 0, report
    assert report.bytes_freed >= report.echo.bytes_freed + report.http.bytes_freed, report
    srv = Server(loop, server_host, 0)
    cl = tcp_core.Client(loop, server_host, srv.port)
    assert wait_until(lambda: cl.stats().connected)
    r = cl.stop(300)
    assert (r.graceful, r.forced) == (1, 0) and r.bytes_freed > 0, r
    rs = srv.stop(300)
    assert rs.forced == 0 and rs.bytes_freed > 0, rs  # its side of the connection closed with the client
    # A second stop of the same object reports what the first one did (the Python objects keep their report).
    assert cl.stop(300) == r and srv.stop(300) == rs


def test_a_stop_inside_a_callback_and_stop_wait_refuses_there(loop: Loop, server_host: str) -> None:
    native = loop.native
    lib, ffi = native.lib, native.ffi
    srv = Server(loop, server_host, 0)
    rc: list[Any] = []

    def inside() -> None:
        rep = ffi.new("tc_stop_report_t *")
        rc.append(lib.tc_handle_stop_wait(lib.tc_server_handle(srv._ptr), 0, rep))  # TC_EBUSY: inside the loop
        rc.append(lib.tc_handle_kind(lib.tc_server_handle(srv._ptr)))

    loop.call(inside)
    assert rc == [-15, lib.TC_HANDLE_SERVER]  # TC_EBUSY
    srv.stop(0)
