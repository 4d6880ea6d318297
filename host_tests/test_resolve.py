"""Name resolution through the loop: the client asks a real DNS server (answers built by dnspython, on a UDP socket
this test opens) over UDP with the core's own DNS codec, on the loop's timers, without starting a thread.

On lwIP the DNS server listens on the Linux side of the TAP (TC_LWIP_PEER), which lwIP reaches through its stack.
"""

from __future__ import annotations

import os
import pathlib
import socket
import threading
import time
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

import tcp_core
from tcp_core import BadAddressError, Client, Handler, Loop, Server
from tcp_core.testing import wait_until


class DnsServer:
    """A small authoritative DNS server: names in `a`/`aaaa`/`cname` answer, others NXDOMAIN; silent drops all."""

    def __init__(self, host: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.05)
        self.port: int = self.sock.getsockname()[1]
        self.a: dict[str, str] = {}
        self.aaaa: dict[str, str] = {}
        self.cname: dict[str, str] = {}
        self.silent = False
        self.questions: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def host_addr(self) -> str:
        return str(self.sock.getsockname()[0])

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        resp = dns.message.make_response(query)
        resp.flags |= dns.flags.AA
        q = query.question[0]
        name = q.name.to_text().rstrip(".").lower()
        qtype = dns.rdatatype.to_text(q.rdtype)
        while name in self.cname:
            target = self.cname[name]
            resp.answer.append(dns.rrset.from_text(f"{name}.", 60, "IN", "CNAME", f"{target}."))
            name = target
        table = self.a if qtype == "A" else self.aaaa if qtype == "AAAA" else {}
        known = name in self.a or name in self.aaaa
        if name in table:
            resp.answer.append(dns.rrset.from_text(f"{name}.", 60, "IN", qtype, table[name]))
        elif not known:
            resp.set_rcode(dns.rcode.NXDOMAIN)
        return resp

    def _serve(self) -> None:
        while not self._stop.is_set():  # bounded by stop(): the socket times out every 50 ms
            try:
                data, peer = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            query = dns.message.from_wire(data)
            q = query.question[0]
            self.questions.append((q.name.to_text().rstrip("."), dns.rdatatype.to_text(q.rdtype)))
            if not self.silent:
                self.sock.sendto(self._answer(query).to_wire(), peer)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def dns_host(backend: str) -> str:
    """Where the test's DNS server listens: loopback, or the Linux side of lwIP's TAP."""
    if backend == "lwip":
        peer = os.environ.get("TC_LWIP_PEER")
        if not peer:
            pytest.skip("TC_LWIP_PEER not set")
        return peer
    return "127.0.0.1"


@pytest.fixture
def dns_server(dns_host: str) -> Iterator[DnsServer]:
    srv = DnsServer(dns_host)
    yield srv
    srv.stop()


class Recorder(Handler):
    def __init__(self) -> None:
        self.opened = threading.Event()
        self.data = bytearray()

    def on_open(self, conn: tcp_core.Connection) -> None:
        self.opened.set()
        conn.send(b"ping")

    def on_data(self, conn: tcp_core.Connection, data: bytes) -> None:
        self.data += data


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_client_resolves_a_name_through_the_loop_without_a_thread(
    loop: Loop, server_host: str, backend: str, dns_server: DnsServer
) -> None:
    dns_server.a["echo.device.test"] = server_host
    srv = Server(loop, server_host, 0, name="echo")
    before = tcp_core.resolver_stats(backend)
    threads = _threads()
    rec = Recorder()
    cl = Client(loop, "Echo.Device.Test.", srv.port, handler=rec, nameserver=(dns_server.host_addr(), dns_server.port))
    assert rec.opened.wait(10), f"no connection: {cl.stats()}"
    assert wait_until(lambda: bytes(rec.data) == b"ping"), "the echo did not come back"
    after = tcp_core.resolver_stats(backend)
    assert _threads() == threads, "a thread was started to resolve the name"
    assert after.threads_started == before.threads_started and after.fallbacks == before.fallbacks, after
    assert after.udp_queries >= before.udp_queries + 1 and after.udp_answers >= before.udp_answers + 1, after
    assert ("echo.device.test", "A") in dns_server.questions  # asked in lower case, without the trailing dot
    assert cl.stop(500).graceful == 1
    srv.stop(500)


def test_cname_chain_and_aaaa_only_names(loop: Loop, server_host: str, backend: str, dns_server: DnsServer) -> None:
    dns_server.cname["www.device.test"] = "edge.device.test"
    dns_server.a["edge.device.test"] = server_host
    srv = Server(loop, server_host, 0, name="echo")
    rec = Recorder()
    cl = Client(loop, "www.device.test", srv.port, handler=rec, nameserver=(dns_server.host_addr(), dns_server.port))
    assert rec.opened.wait(10), f"the CNAME chain was not followed: {cl.stats()}"
    cl.stop(500)
    # A name with only an IPv6 address: A gives NODATA, then AAAA is asked.
    dns_server.aaaa["v6.device.test"] = "::1"
    cl2 = Client(
        loop,
        "v6.device.test",
        srv.port,
        reconnect=False,
        connect_timeout_ms=1000,
        nameserver=(dns_server.host_addr(), dns_server.port),
    )
    assert wait_until(lambda: ("v6.device.test", "AAAA") in dns_server.questions, 10), dns_server.questions
    assert wait_until(lambda: cl2.stats().attempts >= 1, 10)
    cl2.stop(0)
    srv.stop(500)


def test_nxdomain_and_timeout_are_clear_errors(loop: Loop, backend: str, dns_server: DnsServer) -> None:
    ns = (dns_server.host_addr(), dns_server.port)
    cl = Client(loop, "missing.device.test", 7, reconnect=False, nameserver=ns)
    assert wait_until(lambda: cl.stats().failures == 1, 10), cl.stats()
    st = cl.stats()
    assert st.last_error == -16 and st.connects == 0, st  # TC_ENOTFOUND: NXDOMAIN
    cl.stop(0)
    dns_server.silent = True
    t0 = time.monotonic()
    cl = Client(loop, "quiet.device.test", 7, reconnect=False, connect_timeout_ms=600, nameserver=ns)
    assert wait_until(lambda: cl.stats().failures == 1, 10), cl.stats()
    assert cl.stats().last_error == -10, cl.stats()  # TC_ETIMEDOUT: no answer to 3 tries
    assert time.monotonic() - t0 >= 0.5  # the tries are spread over the timeout (no upper bound: load)
    assert len([q for q in dns_server.questions if q[0] == "quiet.device.test"]) == 3, dns_server.questions
    cl.stop(0)


def test_reconnect_across_server_restarts_asks_again(
    loop: Loop, server_host: str, backend: str, dns_server: DnsServer
) -> None:
    dns_server.a["svc.device.test"] = server_host
    threads_before = tcp_core.resolver_stats(backend).threads_started
    rec = Recorder()
    srv = Server(loop, server_host, 0, name="remote", handler=rec)
    port = srv.port
    cl = Client(
        loop,
        "svc.device.test",
        port,
        handler="echo",
        backoff_initial_ms=50,
        backoff_max_ms=200,
        jitter_pct=0,
        nameserver=(dns_server.host_addr(), dns_server.port),
    )
    assert rec.opened.wait(10)
    asked = len(dns_server.questions)
    for _round in range(2):
        srv.stop(200)
        assert wait_until(lambda: cl.stats().failures >= 2, 10), cl.stats()  # it keeps trying while the server is away
        rec = Recorder()
        srv = Server(loop, server_host, port, name="remote", handler=rec)
        assert rec.opened.wait(10), f"no reconnect: {cl.stats()}"
    assert cl.stats().connects == 3
    assert len(dns_server.questions) > asked + 2  # every attempt asks again
    assert tcp_core.resolver_stats(backend).threads_started == threads_before
    cl.stop(500)
    srv.stop(500)


def test_a_stopped_client_drops_its_question(loop: Loop, backend: str, dns_server: DnsServer) -> None:
    dns_server.silent = True
    cl = Client(loop, "slow.device.test", 7, nameserver=(dns_server.host_addr(), dns_server.port))
    assert wait_until(lambda: len(dns_server.questions) >= 1, 10)
    report = cl.stop(0)
    assert report.graceful == 0 and report.forced == 0  # no connection was open
    # The loop fixture then proves no socket, descriptor or heap byte was left (the question's UDP socket included).


def test_nameserver_must_be_numeric(loop: Loop) -> None:
    with pytest.raises(BadAddressError):
        Client(loop, "x.test", 80, nameserver="dns.example")


def test_names_without_a_nameserver_of_their_own_use_one_fallback_worker(
    loop: Loop, backend: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The system's nameserver is asked first over UDP; a name it does not know (NXDOMAIN) but the system resolver
    does (/etc/hosts) goes to the one fallback worker, which goes away when it has no more work."""
    if backend != "linux":
        pytest.skip("Debian's lwIP has no system resolver to fall back to")
    name = "localhost.localdomain" if _system_knows("localhost.localdomain") else socket.gethostname()
    if not _system_knows(name):
        pytest.skip(f"the system resolver knows neither localhost.localdomain nor {name!r}")
    # The "system" nameserver of this test is on loopback (the C core reads TC_RESOLV_CONF on POSIX), so no real
    # nameserver is asked: whatever listens on 127.0.0.1:53 says NXDOMAIN, or nothing does and the three tries time
    # out; either way the worker then answers from /etc/hosts.
    conf = tmp_path / "resolv.conf"
    conf.write_text("# test\nnameserver 127.0.0.1\n")
    monkeypatch.setenv("TC_RESOLV_CONF", str(conf))
    srv = Server(loop, "0.0.0.0", 0, name="echo")
    before = tcp_core.resolver_stats(backend)
    rec = Recorder()
    cl = Client(loop, name, srv.port, handler=rec, connect_timeout_ms=300)
    assert rec.opened.wait(15), f"{name!r} did not resolve: {cl.stats()}"
    after = tcp_core.resolver_stats(backend)
    assert after.fallbacks == before.fallbacks + 1, after
    assert after.threads_started <= before.threads_started + 1, after  # at most one worker
    assert after.udp_queries >= before.udp_queries + 1, after  # the UDP path was tried first
    assert wait_until(lambda: not tcp_core.resolver_stats(backend).worker_running, 10)
    cl.stop(500)
    srv.stop(500)


def test_without_any_nameserver_the_worker_alone_answers(
    loop: Loop, backend: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend != "linux":
        pytest.skip("Debian's lwIP has no system resolver to fall back to")
    name = socket.gethostname()
    if not _system_knows(name):
        pytest.skip(f"the system resolver does not know {name!r}")
    monkeypatch.setenv("TC_RESOLV_CONF", str(tmp_path / "absent.conf"))
    srv = Server(loop, "0.0.0.0", 0, name="echo")
    before = tcp_core.resolver_stats(backend)
    rec = Recorder()
    cl = Client(loop, name, srv.port, handler=rec)
    assert rec.opened.wait(15), f"{name!r} did not resolve: {cl.stats()}"
    after = tcp_core.resolver_stats(backend)
    assert after.fallbacks == before.fallbacks + 1 and after.udp_queries == before.udp_queries, after
    cl.stop(500)
    srv.stop(500)


def _system_knows(name: str) -> bool:
    """Whether /etc/hosts (or whatever the system resolver reads locally) has the name; asks no network."""
    try:
        with open("/etc/hosts", encoding="utf-8") as f:
            return any(name in line.split()[1:] for line in f if line.strip() and not line.startswith("#"))
    except OSError:
        return False


@pytest.mark.parametrize(
    ("host", "says"),
    [
        ("a" * 300, "300 bytes long"),
        ("", "the host is empty"),
        ("a" * 64 + ".test", "64 bytes: a label has at most 63"),
        ("a..test", "empty label"),
    ],
)
def test_a_host_no_question_can_carry_is_refused_with_what_is_wrong(loop: Loop, host: str, says: str) -> None:
    """C refuses such a host at the start with TC_EBADNAME (not BADADDR's "names are not resolved here", nor a bare
    "invalid argument" for an empty one), and Python says which rule the name breaks."""
    with pytest.raises(tcp_core.BadNameError) as exc:
        Client(loop, host, 80)
    assert isinstance(exc.value, ValueError) and exc.value.name == "BADNAME", exc.value
    assert says in str(exc.value) and "not resolved here" not in str(exc.value), exc.value
    longest = ".".join(["a" * 63] * 3 + ["a" * 61])  # 253 bytes, labels of 63: still a name
    Client(loop, longest, 80, reconnect=False).stop(0)


def test_a_nameserver_whose_port_is_closed_fails_at_once(loop: Loop, backend: str, dns_host: str) -> None:
    """The question's socket is connected to the nameserver, so Linux reports its ICMP port unreachable (nothing
    listens there) as a refusal on the next receive: the attempt fails with RESOLVE at once instead of waiting out
    the three tries. lwIP drops ICMP errors (icmp_input() only counts them), so there the tries time out as before."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # a port that was free a moment ago: closed now
        s.bind((dns_host, 0))
        closed_port = s.getsockname()[1]
    timeout_ms = 30_000 if backend == "linux" else 1_500  # lwIP: no refusal to see, only the tries' timeout
    t0 = time.monotonic()
    cl = Client(
        loop, "dead.device.test", 7, reconnect=False, connect_timeout_ms=timeout_ms, nameserver=(dns_host, closed_port)
    )
    assert wait_until(lambda: cl.stats().failures == 1, 40), cl.stats()
    elapsed = time.monotonic() - t0
    if backend == "linux":
        assert cl.stats().last_error == -7, cl.stats()  # TC_ERESOLVE
        assert elapsed < 20, elapsed  # not the 30 s of three tries (generous: only "did not wait them out")
    else:
        assert cl.stats().last_error == -10, cl.stats()  # TC_ETIMEDOUT
    cl.stop(0)


def test_the_apps_client_host_gets_the_same_clear_error(loop: Loop) -> None:
    """The App's --connect client is tc_client_start() too: the same BadNameError, not a listen-address hint."""
    from tcp_core.app import App

    with pytest.raises(tcp_core.BadNameError) as exc:
        App(loop, "127.0.0.1", echo_port=0, http_port=None, connect=("b" * 300, 80))
    assert "300 bytes long" in str(exc.value) and "App connect" in str(exc.value), exc.value
