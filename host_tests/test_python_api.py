"""The Python layer's own contracts: ``with`` stops every stoppable handle, errors carry C's names and messages,
names come from C's tables, and the one HTTP response-head reader."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

import tcp_core
from conftest import _lwip_env, connect, recv_exact, wait_until
from tcp_core import Client, ClosedError, Loop, Server
from tcp_core.app import App
from tcp_core.core import Stoppable
from tcp_core.httphead import read_response_head
from tcp_core.testing import http_request


def test_with_server_stops_it_and_frees_the_port(loop: Loop, server_host: str) -> None:
    with Server(loop, server_host, 0) as srv:
        s = connect(server_host, srv.port)
        s.sendall(b"ping")
        assert recv_exact(s, 4) == b"ping"
        assert wait_until(lambda: srv.conn_count == 1)
    report = srv.stop()  # the block stopped it: a second stop gives the same report
    assert report.graceful + report.forced == 1, report
    with pytest.raises(ClosedError, match="server is stopped"):
        _ = srv.conn_count
    assert not [e for e in loop.registry() if e.owner == "tcp"]
    s.close()
    with Server(loop, server_host, srv.port) as again:  # the listening port was released
        assert again.port == srv.port


def test_with_stops_on_an_exception_too(loop: Loop, server_host: str) -> None:
    with pytest.raises(RuntimeError, match="boom"), Server(loop, server_host, 0) as srv:
        raise RuntimeError("boom")
    assert srv._ptr is None and srv not in loop._owned
    assert loop.registry() == []


def test_with_client_stops_reconnecting(loop: Loop, server_host: str) -> None:
    with Server(loop, server_host, 0) as srv:
        with Client(loop, server_host, srv.port, name="ctx-client") as cli:
            assert wait_until(lambda: cli.stats().connected)
        with pytest.raises(ClosedError, match="client is stopped"):
            cli.stats()
        assert wait_until(lambda: not [e for e in loop.registry() if e.owner == "ctx-client"])


def test_with_app_stops_every_service(loop: Loop, server_host: str) -> None:
    with App(loop, server_host, echo_port=0, http_port=0) as app:
        assert http_request(server_host, app.http_port, "GET", "/api/status").status == 200
    assert app.stop().http.elapsed_ms >= 0  # the report of the stop the block made
    with pytest.raises(ClosedError, match="services are stopped"):
        app.status()
    assert loop.registry() == []


def test_two_threads_stopping_at_once_get_the_same_report(loop: Loop, server_host: str) -> None:
    """Ctrl-C while another thread handles /api/stop: the second stop waits for the first and returns its report
    (it raised ClosedError 181 times in 200)."""
    for _ in range(10):
        objs: list[Stoppable] = [
            App(loop, server_host, echo_port=0, http_port=0),
            Server(loop, server_host, 0),
        ]
        srv = objs[1]
        assert isinstance(srv, Server)
        objs.append(Client(loop, server_host, srv.port))
        for obj in reversed(objs):  # the client before its server
            barrier = threading.Barrier(2)
            reports: list[object] = []

            def stop(o: Stoppable = obj, b: threading.Barrier = barrier, out: list[object] = reports) -> None:
                b.wait(5)
                out.append(o.stop(500))

            threads = [threading.Thread(target=stop) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(15)
            assert len(reports) == 2 and reports[0] is reports[1], (obj, reports)


def test_with_loop_stops_what_it_owns(backend: str) -> None:
    if backend != "linux":
        pytest.skip("one lwIP loop per process (the fixture's)")
    with Loop() as lp:
        srv = Server(lp, "127.0.0.1", 0)
    assert srv._ptr is None
    with pytest.raises(ClosedError, match="loop is closed"):
        _ = lp.ptr


class _StopsItsServer(tcp_core.Handler):
    """Calls stop() and the loop's close() from inside on_data, the loop thread."""

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        self.srv: Server | None = None
        self.raised: list[str] = []

    def on_data(self, conn: tcp_core.Connection, data: bytes) -> None:
        assert self.srv is not None
        for call in (lambda: self.srv.stop(100), lambda: self.loop.close()):  # type: ignore[union-attr]
            try:
                call()
            except tcp_core.BusyError as exc:
                self.raised.append(str(exc))
        conn.send(data)


def test_stop_inside_a_callback_is_busy_at_once_and_the_loop_serves_on(loop: Loop, server_host: str) -> None:
    # stop() waits for the loop; inside a callback that wait was the loop itself: it froze every connection of the
    # loop for deadline + 10 s, then raised a bare TimeoutError (outside testing, 2026-12-04).
    h = _StopsItsServer(loop)
    srv = h.srv = Server(loop, server_host, 0, handler=h)
    echo = Server(loop, server_host, 0)
    with connect(server_host, srv.port) as s:
        s.sendall(b"x")
        assert recv_exact(s, 1) == b"x"  # the handler went on after both calls raised
    assert len(h.raised) == 2 and all("outside the loop's callbacks" in m for m in h.raised), h.raised
    with connect(server_host, echo.port) as s:
        s.sendall(b"still here")
        assert recv_exact(s, 10) == b"still here"
    srv.stop(500)
    echo.stop(500)


def test_calls_racing_a_close_get_closed_error_not_a_timeout(backend: str) -> None:
    # Calls posted just before close() that the stopped loop never ran used to wait out their 10 s and raise
    # TimeoutError; they get ClosedError once the loop is gone, like calls made after it.
    if backend != "linux":
        pytest.skip("one lwIP loop per process (the fixture's)")
    for _ in range(3):
        lp = Loop()
        Server(lp, "127.0.0.1", 0)
        outcomes: list[str] = []

        def hammer(lp: Loop = lp, outcomes: list[str] = outcomes) -> None:
            # Calls until one raises: a thread must not leave on its own between calls (CI, 2026-12-04: an event
            # set right after close() let all four leave before any call met the closed loop, and the test
            # failed with no outcome at all on a loaded machine). The bound only ends a loop that never raises.
            end = time.monotonic() + 60
            while time.monotonic() < end:
                try:
                    lp.registry()
                except Exception as exc:  # every outcome is checked below
                    outcomes.append(type(exc).__name__)
                    return

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        wait_until(lambda lp=lp: len(lp.registry()) == 1)
        lp.close()
        for t in threads:
            t.join(8)  # a call's own timeout is 10 s: a thread still here was left waiting
        assert not any(t.is_alive() for t in threads)
        assert outcomes == ["ClosedError"] * 4, outcomes


def test_errors_carry_the_c_name_and_message() -> None:
    native = tcp_core._native.load("linux")
    err = native.error("CLOSED", "server is stopped")
    assert isinstance(err, ClosedError) and isinstance(err, ConnectionError)
    assert (err.code, err.name) == (int(native.lib.TC_ECLOSED), "CLOSED")
    assert str(err) == f"server is stopped: {native.text(native.lib.tc_strerror(err.code))} (TC_ECLOSED)"
    assert native.error(int(native.lib.TC_EBUSY)).name == "BUSY"


def test_names_come_from_the_c_tables(loop: Loop, server_host: str) -> None:
    lib = loop.native.lib
    assert loop.native.text(lib.tc_kind_name(lib.TC_KIND_LISTENER)) == "listener"
    assert loop.native.text(lib.tc_state_name(lib.TC_STATE_OPEN)) == "open"
    assert loop.native.text(lib.tc_close_reason_name(lib.TC_REASON_IDLE)) == "idle"
    for fn in (lib.tc_kind_name, lib.tc_state_name, lib.tc_close_reason_name, lib.tc_role_name):
        assert loop.native.text(fn(250)) == "?"
    with Server(loop, server_host, 0, name="names"):
        (entry,) = [e for e in loop.registry() if e.owner == "names"]
        assert (entry.kind, entry.state, entry.role) == ("listener", "listening", "listener")


# ---- the response-head reader, on a socket pair (the bytes arrive in pieces) ----


def _pair(*pieces: bytes) -> socket.socket:
    a, b = socket.socketpair()
    for p in pieces:
        a.sendall(p)
    a.close()
    b.settimeout(5)
    return b


def test_head_reader_leaves_the_body_in_the_buffer() -> None:
    s = _pair(b"HTTP/1.1 404 Not ", b"Found\r\nContent-Length: 5\r\nX-A:  b \r\n", b"\r\nhel", b"lo")
    with s:
        rest = bytearray()
        head = read_response_head(s, rest)
        while chunk := s.recv(4096):  # the rest of the body: nothing after the head was lost
            rest += chunk
    assert (head.status, head.reason, head.headers) == (404, "Not Found", {"content-length": "5", "x-a": "b"})
    assert head.raw.endswith(b"\r\n\r\n") and head.content_length == 5
    assert rest == b"hello"


def test_head_reader_refuses_what_is_not_a_head() -> None:
    with _pair(b"HTTP/1.1 200 OK\r\nContent-Le") as s, pytest.raises(ConnectionResetError, match="closed before"):
        read_response_head(s)
    with _pair(b"SSH-2.0-OpenSSH\r\n\r\n") as s, pytest.raises(ValueError, match="not an HTTP response"):
        read_response_head(s)
    with _pair(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 200) as s, pytest.raises(ValueError, match="no end"):
        read_response_head(s, limit=512)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda lp, h: Server(lp, h, 0, max_conns=-1), "max_conns"),
        (lambda lp, h: Server(lp, h, 0, queue_max=1 << 64), "queue_max"),
        (lambda lp, h: Client(lp, h, 9, connect_timeout_ms=-5), "connect_timeout_ms"),
        (lambda lp, h: App(lp, h, echo_port=None, http_port=0, http_max_conns=-1), "http_max_conns"),
        (lambda lp, h: App(lp, h, echo_port=-5, http_port=None), "echo_port"),
        (lambda lp, h: Server(lp, h, 0).stop(-1), "deadline_ms"),
    ],
)
def test_numbers_out_of_range_are_value_errors_naming_the_field(
    loop: Loop, server_host: str, make: Any, field: str
) -> None:
    # cffi raised a bare OverflowError (neither a TcError nor a ValueError) for a negative count or deadline, and
    # App(echo_port=-5) turned echo off silently (outside testing, 2026-12-04).
    with pytest.raises(ValueError, match=field):
        make(loop, server_host)
    for obj in list(loop._owned):  # what a case started before its bad call
        obj.stop(100)


def test_a_second_lwip_loop_with_another_address_is_refused(loop: Loop, backend: str, server_host: str) -> None:
    """lwIP (tcpip_init() and its one TAP netif) runs once per process: a second Loop asking for another address was
    accepted and silently ran on the first one's; it is now BusyError saying what runs. The same set-up is fine."""
    if backend != "lwip":
        pytest.skip("the kernel backend has no process-wide stack set-up")
    env = _lwip_env()
    assert env is not None
    prefix = env["address"].partition("/")[2] or "24"
    last = int(server_host.rsplit(".", 1)[1])
    other = server_host.rsplit(".", 1)[0] + f".{last ^ 1}"
    with pytest.raises(tcp_core.BusyError) as exc:
        Loop("lwip", tap=env["tap"], address=f"{other}/{prefix}")
    text = str(exc.value)
    assert "lwIP runs once per process" in text and f"address {server_host}/{prefix} on {env['tap']}" in text, text
    with Loop("lwip", tap=env["tap"], address=f"{server_host}/{prefix}") as again:  # the same stack: accepted
        assert again.registry() == []


def test_a_second_stop_brings_a_long_running_stop_forward(loop: Loop, server_host: str) -> None:
    """Ctrl-C during a console ota-prepare with a long deadline: the stop that comes second used to wait for the
    first one's whole deadline (here 60 s: a peer that never sends its FIN holds the close that long). It now brings
    that stop's deadline forward to its own (tc_handle_stop_sooner()), and both get the one report."""
    srv = Server(loop, server_host, 0, linger_ms=120_000)
    with connect(server_host, srv.port) as peer:
        peer.sendall(b"x")
        assert recv_exact(peer, 1) == b"x"
        reports: list[tcp_core.StopReport] = []
        first = threading.Thread(target=lambda: reports.append(srv.stop(60_000)))
        first.start()
        assert wait_until(lambda: all(e.kind != "listener" for e in loop.registry()), 10)  # the first stop runs
        t0 = time.monotonic()
        second = srv.stop(200)
        waited = time.monotonic() - t0
        first.join(20)
        assert not first.is_alive(), "the first stop still waits for its own deadline"
    assert waited < 20, f"the second stop waited {waited:.1f} s: the first one's 60 s deadline was kept"
    assert second.forced == 1 and second.graceful == 0, second
    assert reports == [second]
