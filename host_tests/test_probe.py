"""`tcp-core probe` against good and broken servers: it names the first failing layer and exits with its code."""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading
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
