"""Seed 001: "the web server stops answering after a minute". A server that closes first keeps TIME-WAIT; on lwIP a
client reusing its source port meets that pcb, and lwIP ignores the client's RST (RFC 1337): the connection stalls.

Each scenario: 1000 exchanges, a new connection each, 10 ms apart, against a server answering one request per
connection, driven by ``tcp-core soak`` (its library form). A stall is a connection not answered within 2 s.
"""

from __future__ import annotations

import pytest

import tcp_core
from conftest import wait_until
from tcp_core import Handler, Loop, Server, soak

EXCHANGES = 1000
INTERVAL_S = 0.010


class OneAnswer(Handler):
    """Answers the first bytes of a connection and closes it with the given policy (None: the server's default)."""

    def __init__(self, policy: tcp_core.core.ClosePolicy | None) -> None:
        self.policy = policy

    def on_data(self, conn: tcp_core.Connection, data: bytes) -> None:
        conn.send(b"answer " + data[:32])
        conn.close(self.policy)


def _time_wait_on_server(backend: str, server: Server) -> int:
    """TIME-WAIT entries whose local port is the server's, in the backend's own stack."""
    return tcp_core.time_wait_count(server.port, backend)


def _soak(host: str, port: int, source_port: int | None, n: int = EXCHANGES) -> soak.SoakResult:
    return soak.run(
        f"{host}:{port}",
        requests=n,
        interval_s=INTERVAL_S,
        stall_s=2.0,
        timeout_s=4.0,
        source_port=source_port,
        pool_size=1100,
    )


@pytest.mark.parametrize("ports", ["browser-reuse", "ephemeral"])
def test_default_policy_never_stalls(loop: Loop, server_host: str, backend: str, ports: str) -> None:
    srv = Server(loop, server_host, 0, handler=OneAnswer(None), name="seed001", max_conns=64)
    # Below the ephemeral range, and one range per backend: the other backend's run leaves its TIME-WAITs behind.
    source = (20000 if backend == "linux" else 22000) if ports == "browser-reuse" else None
    result = _soak(server_host, srv.port, source)
    assert result.failures == {}, soak.report_text(result)
    assert result.ok == EXCHANGES
    assert wait_until(lambda: srv.conn_count == 0, 5)
    assert _time_wait_on_server(backend, srv) == 0, "the server kept TIME-WAIT"
    srv.stop(500)


def test_naive_server_that_closes_first_stalls_on_lwip(loop: Loop, server_host: str, backend: str) -> None:
    """The scenario is real: on lwIP a server closing first, plus a browser-like client, stalls."""
    if backend != "lwip":
        pytest.skip("Linux answers a reused port in TIME-WAIT correctly; the stall is lwIP's (RFC 1337)")
    srv = Server(loop, server_host, 0, handler=OneAnswer("graceful"), name="naive", max_conns=64)
    result = _soak(server_host, srv.port, 24000, n=10)
    assert result.failures.get("stalled", 0) > 0, soak.report_text(result)
    assert _time_wait_on_server(backend, srv) > 0
    srv.stop(500)
