"""Connection lifecycle with clients that wait for the server: roles in the registry, the server's close (FIN at
once, a bounded lingering drain, TIME-WAIT reaped on lwIP), liveness of long-lived sessions instead of idle
timeouts, and a stop that is fast with well-behaved clients and forces only what does not cooperate.

Timing assertions compare with the configured deadlines (never with wall-clock budgets that load could break); the
figures themselves (stop in ms, EOF latency) are measured by bench/lifecycle_bench.py.
"""

from __future__ import annotations

import json
import socket
import urllib.request

from websockets.sync.client import connect as ws_connect

from conftest import connect, recv_exact, wait_until
from tcp_core import Loop
from tcp_core.app import App


def _read_head(s: socket.socket) -> bytes:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        assert chunk, buf
        buf += chunk
    return buf


def _roles_by_peer_port(loop: Loop) -> dict[int, str]:
    return {int(e.peer.rsplit(":", 1)[1]): e.role for e in loop.registry() if e.peer}


def test_registry_roles_follow_each_connection(loop: Loop, server_host: str) -> None:
    a = App(loop, server_host, echo_port=0, http_port=0, stream_fps=20, events_ms=50)
    echo = connect(a.host, a.echo_port)
    echo.sendall(b"x")
    assert recv_exact(echo, 1) == b"x"
    plain = connect(a.host, a.http_port)
    plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    _read_head(plain)
    viewer = connect(a.host, a.http_port)
    viewer.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    _read_head(viewer)
    sse = connect(a.host, a.http_port)
    sse.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    _read_head(sse)
    with ws_connect(f"ws://{a.host}:{a.http_port}/ws", open_timeout=5) as ws:
        ws_port = ws.socket.getsockname()[1]
        want = {
            echo.getsockname()[1]: "echo",
            plain.getsockname()[1]: "http",
            viewer.getsockname()[1]: "stream",
            sse.getsockname()[1]: "sse",
            ws_port: "ws",
        }
        assert wait_until(lambda: all(_roles_by_peer_port(loop).get(p) == r for p, r in want.items()), 5), (
            _roles_by_peer_port(loop)
        )
        long_lived = {int(e.peer.rsplit(":", 1)[1]) for e in loop.registry() if e.long_lived}
        assert long_lived == {viewer.getsockname()[1], sse.getsockname()[1], ws_port}
        assert {e.role for e in loop.registry() if e.kind == "listener"} == {"listener"}
        with urllib.request.urlopen(f"http://{a.host}:{a.http_port}/api/status", timeout=5) as r:
            doc = json.load(r)
        by_port = {int(s["peer"].rsplit(":", 1)[1]): s["role"] for s in doc["sockets"] if s["peer"]}
        for port, role in want.items():
            assert by_port[port] == role, doc
    for s in (echo, plain, viewer, sse):
        s.close()
    a.stop(500)
