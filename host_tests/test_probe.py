"""`tcp-core probe` against good and broken servers: it names the first failing layer and exits with its code."""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from tcp_core import Loop, probe
from tcp_core.app import App


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tcp_core.cli", "probe", *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def plain_http() -> Iterator[int]:
    """An HTTP server without WebSocket support (Python's own http.server)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield int(srv.server_address[1])
    srv.shutdown()
    srv.server_close()


def test_all_layers_pass_against_the_services(loop: Loop, server_host: str) -> None:
    app = App(loop, server_host, echo_port=None, http_port=0)
    r = probe.run(f"http://{server_host}:{app.http_port}/", timeout=5)
    assert r.failed_layer is None and r.exit_code == 0, probe.report_text(r)
    assert [lay.layer for lay in r.layers] == ["target", "resolve", "tcp", "http", "websocket", "stream"]
    assert "echo ok" in r.layers[4].detail
    app.stop(500)


def test_closed_port_fails_at_tcp_with_a_plain_cause() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        out = _cli(f"http://127.0.0.1:{port}/", "--json")
    assert out.returncode == 4, out
    res = json.loads(out.stdout)
    assert res["failed_layer"] == "tcp"
    assert f"TCP refused on {port}: nothing listens there" in res["layers"][-1]["cause"]


def test_http_without_websocket_fails_at_the_upgrade(plain_http: int) -> None:
    out = _cli(f"http://127.0.0.1:{plain_http}/")
    assert out.returncode == 6, out
    assert "first failing layer: websocket" in out.stdout
    assert "HTTP works but the WebSocket upgrade failed" in out.stdout


@pytest.mark.parametrize("target", ["ws://127.0.0.1:0/ws", "http://127.0.0.1:0/", "127.0.0.1:0", "127.0.0.1"])
def test_port_zero_or_missing_is_a_clear_error(target: str) -> None:
    out = _cli(target)
    assert out.returncode == 2, out
    assert "port" in out.stdout and "first failing layer: target" in out.stdout


def test_ws_url_probe_echoes(loop: Loop, server_host: str) -> None:
    app = App(loop, server_host, echo_port=None, http_port=0)
    r = probe.run(f"ws://{server_host}:{app.http_port}/ws", timeout=5)
    assert r.exit_code == 0, probe.report_text(r)
    app.stop(500)


def test_timeout_bounds_the_http_layer_against_a_dripping_head() -> None:
    # --timeout is per layer: it bounded each recv only, so a server sending its head a byte every 0.2 s held the
    # HTTP layer for as long as it dripped (26.7 s with --timeout 2 in outside testing, 2026-12-04).
    stop = threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as srv:
        srv.settimeout(0.2)
        port = srv.getsockname()[1]

        def drip() -> None:
            conns = []
            t_end = time.monotonic() + 15  # bounded: without the layer's deadline the probe waits this long
            while not stop.is_set() and time.monotonic() < t_end:
                try:
                    c, _ = srv.accept()
                    conns.append(c)
                    c.sendall(b"HTTP/1.1 200 OK\r\n")
                except TimeoutError:
                    pass
                for c in conns:
                    try:
                        c.sendall(b"X")
                    except OSError:
                        pass
            for c in conns:
                c.close()

        t = threading.Thread(target=drip, daemon=True)
        t.start()
        try:
            r = probe.run(f"http://127.0.0.1:{port}/", timeout=1.0)
        finally:
            stop.set()
            t.join(5)
    assert r.failed_layer == "http", probe.report_text(r)
    http = r.layers[-1]
    assert http.ms < 10_000, probe.report_text(r)  # 1 s asked; the drip alone would last as long as it is fed
