"""Packet loss, as real Wi-Fi has it: the services must recover, never stall, and a stop must keep its deadline.

Loss is deterministic (nftables ``numgen inc``: every Nth packet of the server's port dropped), so a run does not
depend on luck. On Linux each test runs in a network namespace of its own (its loopback carries the rule: nothing
outside it is touched); on lwIP the rule sits on the TAP device of the namespace the layer runs in, and only for the
test server's port. Needs root and nft (CI installs nftables); without them the tests skip, saying so.

A loss must happen after the sender's transmit succeeded, as on a wire: that is where the rules take packets on the
receiving side's ingress. The Linux peer's packets towards lwIP have no such hook (lwIP reads the TAP), and a drop at
its egress hook is not a loss but a local transmit failure, which Linux handles apart: a failed SYN-ACK
retransmission ends the pending connection at once and without a trace (reqsk_timer_handler()), while the client,
whose handshake ACK was the packet lost before it, holds an established connection. So those packets leave with a
destination lwIP does not own (LOST_ADDR) and lwIP discards them: lost after the transmit, visible in a capture.

Timing: losses cost the stacks' retransmission timeouts (lwIP's first is up to 3 s), so every bound here only says
"did not hang", generously; the stop's report is checked against its own deadline.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import pytest
from test_seed001 import OneAnswer, _exchange_reading_to_eof

import tcp_core
from conftest import _lwip_env, _viewer_to_eof, connect, open_fds, wait_until
from tcp_core import Handler, Loop, Server
from tcp_core.app import App

CLONE_NEWNET = 0x40000000
LOST_ADDR = "192.0.2.1"  # TEST-NET-1 (RFC 5737): the destination of the peer's packets lost on their way to lwIP


def _need_nft() -> str:
    nft = shutil.which("nft")
    if os.geteuid() != 0 or nft is None:
        why = "needs root" if os.geteuid() != 0 else "needs nft (apt-get install nftables)"
        if os.environ.get("TC_REQUIRE_LWIP") == "1":
            pytest.fail(f"loss tests required in CI but {why}")
        pytest.skip(why)
    return nft


def _setns(fd: int) -> None:
    """Move the calling thread (only it) into the network namespace behind fd; threads it starts later follow it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@dataclass
class Lossy:
    """A running loop whose packets can be dropped: host is where its servers listen."""

    loop: Loop
    host: str
    backend: str
    nft: str
    device: str
    ns: str | None

    def _nft(self, *args: str) -> str:
        """Run nft in the test's network (its own namespace on Linux); return what it printed."""
        cmd = [self.nft, *args]
        if self.ns:
            cmd = ["ip", "netns", "exec", self.ns, *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout

    def drop_every(self, port: int, every: int, proto: str = "tcp") -> None:
        """Lose every ``every``-th packet to or from port (both directions counted apart), from now on."""
        table = f"tcloss{port}"
        self._nft("add", "table", "netdev", table)
        # On a private loopback each packet crosses ingress once; on the TAP, lwIP's packets come in and the
        # peer's go out: those are sent on to an address lwIP drops, not dropped at egress (the module's docstring).
        hooks = ["ingress"] if self.device == "lo" else ["ingress", "egress"]
        for hook in hooks:
            self._nft(
                "add", "chain", "netdev", table, hook, f"{{ type filter hook {hook} device {self.device} priority 0; }}"
            )
            lose = ["drop"] if hook == "ingress" else ["ip", "daddr", "set", LOST_ADDR]
            for side in ("sport", "dport"):
                rule = [proto, side, str(port), "numgen", "inc", "mod", str(every), "==", "0", *lose]
                self._nft("add", "rule", "netdev", table, hook, *rule)
        self.tables.append(table)

    def drop_first_answers(self, port: int, n: int) -> None:
        """Drop the first n segments from port that carry more than 300 bytes (the answer and its
        retransmissions, not the handshake, ACKs or FINs), then nothing more."""
        table = f"tcfirst{port}"
        self._nft("add", "table", "netdev", table)
        self._nft(
            "add", "chain", "netdev", table, "in", f"{{ type filter hook ingress device {self.device} priority 0; }}"
        )
        rule = ["tcp", "sport", str(port), "ip", "length", "gt", "300", "numgen", "inc", "mod", "1000000", "lt", str(n)]
        self._nft("add", "rule", "netdev", table, "in", *rule, "counter", "drop")
        self.tables.append(table)

    def dropped(self, port: int) -> int:
        """What drop_first_answers(port, ...) has dropped so far."""
        out = self._nft("list", "table", "netdev", f"tcfirst{port}")
        return int(out.split("counter packets ", 1)[1].split()[0])

    def __post_init__(self) -> None:
        self.tables: list[str] = []

    def clear(self) -> None:
        for table in self.tables:
            self._nft("delete", "table", "netdev", table)
        self.tables.clear()


@pytest.fixture
def lossy(backend: str) -> Iterator[Lossy]:
    """A loop on the backend in a network of the test's own, with nothing dropped yet; at the end no socket,
    descriptor or heap byte may be left, as with the ``loop`` fixture."""
    nft = _need_nft()
    gc.collect()
    heap_before = tcp_core.alloc_stats(backend).bytes_in_use
    with contextlib.ExitStack() as stack:
        env = _lwip_env() if backend == "lwip" else None
        ns = None
        if env is None:
            ns = f"tcloss{os.getpid()}"
            subprocess.run(["ip", "netns", "add", ns], check=True)
            stack.callback(subprocess.run, ["ip", "netns", "del", ns], check=False)
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
            home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
            stack.callback(os.close, home)
            there = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                _setns(there)
            finally:
                os.close(there)
            stack.callback(_setns, home)  # the loop's thread and the clients' are started below, inside
        fds_before = open_fds()
        lp = Loop(backend, **(env or {}))
        net = Lossy(
            lp, env["address"].split("/")[0] if env else "127.0.0.1", backend, nft, env["tap"] if env else "lo", ns
        )
        try:
            yield net
        finally:
            net.clear()
        lp.close(deadline_ms=500)
        gc.collect()
        assert tcp_core.alloc_stats(backend).bytes_in_use == heap_before, "C heap left behind"
        if backend == "linux":
            assert wait_until(lambda: not open_fds() - fds_before, 2), "descriptors left open"


def test_reused_source_port_under_loss_is_always_answered(lossy: Lossy) -> None:
    """Seed 001 under loss: short connections from one source port, each read to the server's FIN, with every 7th
    packet of the server's port dropped (SYNs, answers, FINs and last ACKs among them). Every one is answered; a lost
    last ACK leaves the client in LAST-ACK, which the helper waits out, never a TIME-WAIT that refuses the port."""
    srv = Server(lossy.loop, lossy.host, 0, handler=OneAnswer(None), name="seed001-loss")
    lossy.drop_every(srv.port, 7)
    source = 28000 + srv.port % 1000
    for i in range(6):
        assert _exchange_reading_to_eof(lossy.host, srv.port, source, 15.0) == b"answer ping", f"exchange {i}"
    assert wait_until(lambda: srv.conn_count == 0, 20)
    if lossy.backend == "lwip":
        assert wait_until(lambda: tcp_core.time_wait_count(srv.port, "lwip") == 0, 5), "the server kept TIME-WAIT"
    srv.stop(500)


class LongAnswer(Handler):
    """Answers 1,000 bytes to the first bytes of a connection and closes it with the server's default policy."""

    ANSWER = bytes(range(200)) * 5

    def on_data(self, conn: tcp_core.Connection, data: bytes) -> None:
        conn.send(self.ANSWER)
        conn.close()


def test_answer_in_retransmission_backoff_outlives_the_linger_deadline(lossy: Lossy) -> None:
    """The lingering close under loss (the loss hunt of 2026-12-04): the answer is lost several times in a row, so
    when the linger deadline comes (2 x linger_ms without an acknowledgement, 4 s) the stack is in retransmission
    backoff towards a peer that is alive and has nothing to acknowledge. It was reset there and the answer lost; the
    close now waits while the stack retransmits (bounded: 8 x linger_ms from the peer's last sign of life) and the
    client reads the whole answer, then EOF, with no reset sent. Losses planned per stack so that the transmission
    that gets through leaves after those 4 s: Linux (RTO 200 ms, doubling) sends its 6th at ~6.2 s, lwIP (3 s first
    timeout on a fresh connection, then 6 s) its 3rd at ~9 s."""
    srv = Server(lossy.loop, lossy.host, 0, handler=LongAnswer(), name="backoff")
    lost = 6 if lossy.backend == "linux" else 2
    lossy.drop_first_answers(srv.port, lost)
    before = lossy.loop.close_stats()
    got = _exchange_reading_to_eof(lossy.host, srv.port, 29000 + srv.port % 1000, 30.0)
    assert lossy.dropped(srv.port) == lost, "the planned losses did not all happen: the case was not made"
    assert got == LongAnswer.ANSWER, f"{len(got) if got is not None else 'reset or timed out'}: the answer was lost"
    assert wait_until(lambda: srv.conn_count == 0, 20)
    assert lossy.loop.close_stats().reset_sent == before.reset_sent, "the lingering close ended with a reset"
    srv.stop(500)


def test_peer_that_never_acknowledges_is_reset_by_the_backoff_bound(lossy: Lossy) -> None:
    """The other side of the rule above: every transmission of the answer is lost (a phone that left the Wi-Fi with
    the answer in flight). The stack retransmits for minutes (Linux ~15, lwIP 12 tries), but the close gives it only
    8 x linger_ms from the peer's last sign of life, then resets: the socket is not held for the stack's whole
    backoff. linger_ms 500 keeps the case short (bound 4 s); the RST itself gets through (only the answer's long
    segments are dropped)."""
    srv = Server(lossy.loop, lossy.host, 0, handler=LongAnswer(), name="vanished", linger_ms=500)
    lossy.drop_first_answers(srv.port, 999_999)
    before = lossy.loop.close_stats()
    with connect(lossy.host, srv.port) as s:
        s.settimeout(30)
        s.sendall(b"ping")
        with pytest.raises(ConnectionResetError):
            s.recv(4096)
    assert lossy.dropped(srv.port) >= 2, "the stack never got to back off: the case was not made"
    assert wait_until(lambda: srv.conn_count == 0, 5)
    assert lossy.loop.close_stats().reset_sent - before.reset_sent == 1
    srv.stop(500)


class LongOrShortAnswer(LongAnswer):
    """The long answer to "ping"; to anything else a short one, which the loss rule of these tests lets through."""

    def on_data(self, conn: tcp_core.Connection, data: bytes) -> None:
        conn.send(self.ANSWER if data.startswith(b"ping") else b"ok")
        conn.close()


def test_newcomer_without_a_descriptor_ends_the_closes_kept_for_backoff(lossy: Lossy) -> None:
    """The cost of waiting out the backoff is descriptors (on the device, lwIP sockets, a few to spare): peers that
    vanished with their answer in flight keep theirs up to 8 x linger_ms (16 s here). When a newcomer finds none, the
    closes kept only for the backoff, already past the 2 x linger_ms of the plain rule, are reset and the newcomer is
    served at the listener's next try (100 ms), not when the bound runs out. Linux only: the process's descriptor
    limit is what runs out here; lwIP's socket table is the stack's own."""
    if lossy.backend != "linux":
        pytest.skip("the descriptor limit of this process is the scarce resource here; lwIP's sockets are its own")
    import resource

    srv = Server(lossy.loop, lossy.host, 0, handler=LongOrShortAnswer(), name="full", linger_ms=2000)
    lossy.drop_first_answers(srv.port, 999_999)
    before = lossy.loop.close_stats()
    vanished = [connect(lossy.host, srv.port) for _ in range(3)]
    for s in vanished:
        s.sendall(b"ping")
    assert wait_until(lambda: sum(e.state == "closing" for e in lossy.loop.registry()) == 3, 10)
    time.sleep(4.5)  # past 2 x linger_ms: kept only for the backoff now (the plain rule would have reset them)
    assert sum(e.state == "closing" for e in lossy.loop.registry()) == 3, "not kept for the backoff"
    newcomer = socket.socket()  # its descriptor first: then none is left for the loop's accept()
    top = max(open_fds())
    fillers = []  # the free numbers below the highest one taken: the limit bounds numbers, accept() takes the lowest
    while (fd := os.open(os.devnull, os.O_RDONLY)) < top:
        fillers.append(fd)
    os.close(fd)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (top + 1, hard))
    try:
        newcomer.settimeout(8)  # the bound would free a descriptor ~11 s from now
        newcomer.connect((lossy.host, srv.port))
        newcomer.sendall(b"short")
        got = newcomer.recv(100)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        for fd in fillers:
            os.close(fd)
    assert got == b"ok"
    assert lossy.loop.close_stats().reset_sent - before.reset_sent >= 1
    newcomer.close()
    for s in vanished:
        s.close()
    assert wait_until(lambda: srv.conn_count == 0, 20)
    srv.stop(500)


def test_stop_under_loss_keeps_its_deadline(lossy: Lossy) -> None:
    """Seed 003 under loss: MJPEG viewers reading to EOF and WebSockets, every 9th packet dropped. The stop ends by
    its deadline (what loss holds back is forced then, never waited for), every client is let go, and nothing is
    left: sockets, descriptors, heap (the fixture)."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect as ws_connect

    app = App(lossy.loop, lossy.host, echo_port=None, http_port=0, stream_fps=30)
    lossy.drop_every(app.http_port, 9)
    ends: list[str] = []
    for _ in range(3):
        _viewer_to_eof(app.host, app.http_port, ends)
    codes: list[object] = []
    with contextlib.ExitStack() as stack:
        sessions = [
            stack.enter_context(ws_connect(f"ws://{app.host}:{app.http_port}/ws", open_timeout=20)) for _ in range(3)
        ]

        def reader(ws: object) -> None:
            try:
                while True:
                    ws.recv(timeout=30)  # type: ignore[attr-defined]
            except ConnectionClosed as exc:
                codes.append(exc.rcvd.code if exc.rcvd else None)
            except TimeoutError:
                codes.append("timeout")

        readers = [threading.Thread(target=reader, args=(w,)) for w in sessions]
        for r in readers:
            r.start()
        assert wait_until(lambda: sum(e.role == "stream" for e in lossy.loop.registry()) == 3, 20)
        time.sleep(0.5)  # frames in flight, losses among them
        t0 = time.monotonic()
        report = app.stop(1000)
        assert time.monotonic() - t0 < 10, "the stop hung"
        for r in readers:
            r.join(40)
        assert not any(r.is_alive() for r in readers)
    assert report.http.elapsed_ms <= 1000 + 200, report
    assert report.http.streams_ended == 3 and report.http.websockets_closed == 3, report
    assert len(codes) == 3 and "timeout" not in codes, codes
    assert wait_until(lambda: len(ends) == 3, 15), ends
    assert not lossy.loop.registry()


def test_captive_dns_under_loss_answers_every_retry(lossy: Lossy) -> None:
    """The captive responder with every 3rd datagram of its port lost (queries and answers): a client that asks
    again after a short timeout, as phones do, gets the device's address for every name, and nothing else."""
    app = App(lossy.loop, lossy.host, echo_port=None, http_port=0, captive="portal", dns_port=0,
              dns_answer="192.168.4.1")  # fmt: skip
    lossy.drop_every(app.dns_port, 3, proto="udp")
    answered = 0
    for i in range(10):
        q = dns.message.make_query(f"host{i}.example", dns.rdatatype.A)
        for _ in range(10):
            try:
                r = dns.query.udp(q, app.host, port=app.dns_port, timeout=0.3)
            except dns.exception.Timeout:
                continue
            assert [a.address for rr in r.answer for a in rr] == ["192.168.4.1"], r
            answered += 1
            break
    assert answered == 10
    app.stop(500)


def test_echo_and_reconnecting_client_under_loss(lossy: Lossy) -> None:
    """The echo server and the reconnecting client with every 7th packet of their ports dropped: every byte comes
    back in order, and the client dials again after its peer drops it. On lwIP the losses fall, every run, on the
    second session's handshake ACK and on the Linux peer's first retransmission of its SYN-ACK; the peer's next
    retransmission, 2 s later, completes the handshake. While that retransmission was dropped at the TAP's egress
    hook (a local transmit failure, not a loss: the module's docstring), Linux forgot the pending connection and the
    client held a session the peer had no socket for (the anomaly left open in session 16)."""
    srv = Server(lossy.loop, lossy.host, 0)
    lossy.drop_every(srv.port, 7)
    payload = bytes(range(256)) * 40
    s = connect(lossy.host, srv.port, timeout=20)
    s.sendall(payload)
    got = b""
    s.settimeout(20)
    while len(got) < len(payload):
        chunk = s.recv(65536)
        assert chunk, "echo closed early"
        got += chunk
    assert got == payload
    s.close()
    srv.stop(500)
    peer = socket.socket()
    peer.bind((os.environ.get("TC_LWIP_PEER", "10.77.0.1") if lossy.backend == "lwip" else lossy.host, 0))
    peer.listen(2)
    peer.settimeout(30)
    lossy.drop_every(peer.getsockname()[1], 7)
    client = tcp_core.Client(lossy.loop, peer.getsockname()[0], peer.getsockname()[1], backoff_max_ms=500, stable_ms=0)
    for _ in range(2):
        conn, _addr = peer.accept()
        conn.settimeout(20)
        conn.sendall(b"hello through loss")
        back = b""
        while len(back) < 18:
            chunk = conn.recv(64)
            assert chunk
            back += chunk
        assert back == b"hello through loss"
        conn.close()  # the client is dropped: it must dial again
    assert wait_until(lambda: client.stats().connects >= 2, 20)
    client.stop(1000)
    peer.close()
