"""Seed 002, the captive portal: the DNS responder against dnspython, every OS probe with its own Host header in both
modes, and a WebSocket echo through the captive set-up, on both backends."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
import requests
from websockets.sync.client import connect as ws_connect

from conftest import connect
from tcp_core import Loop
from tcp_core.app import App
from tcp_core.httphead import read_response_head

PROBES = [
    # (OS, Host, path, online status, online body fragment)
    ("android", "connectivitycheck.gstatic.com", "/generate_204", 204, b""),
    ("android", "www.google.com", "/gen_204", 204, b""),
    ("apple", "captive.apple.com", "/hotspot-detect.html", 200, b"<BODY>Success</BODY>"),
    ("apple", "www.apple.com", "/library/test/success.html", 200, b"Success"),
    ("windows", "www.msftconnecttest.com", "/connecttest.txt", 200, b"Microsoft Connect Test"),
    ("windows", "www.msftncsi.com", "/ncsi.txt", 200, b"Microsoft NCSI"),
    ("firefox", "detectportal.firefox.com", "/canonical.html", 200, b"support.mozilla.org/kb/captive-portal"),
    ("firefox", "detectportal.firefox.com", "/success.txt", 200, b"success\n"),
]


def _app(loop: Loop, host: str, mode: str) -> App:
    return App(loop, host, echo_port=None, http_port=0, captive=mode, dns_port=0)  # type: ignore[arg-type]


@pytest.fixture(params=["portal", "online"])
def captive(request: pytest.FixtureRequest, loop: Loop, server_host: str) -> Iterator[App]:
    a = _app(loop, server_host, request.param)
    a.mode = request.param  # type: ignore[attr-defined]
    yield a
    a.stop(500)


def _query(app: App, name: str, rdtype: str) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    return dns.query.udp(q, app.host, port=app.dns_port, timeout=2)


def _raw(app: App, packet: bytes, timeout: float = 0.5) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(packet, (app.host, app.dns_port))
        try:
            return s.recv(4096)
        except TimeoutError:
            return None


# ---- DNS ----


def test_every_name_resolves_to_the_device(captive: App) -> None:
    for name in ["connectivitycheck.gstatic.com", "captive.apple.com", "WWW.Example.ORG", "a.b.c.d.e"]:
        r = _query(captive, name, "A")
        assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
        assert [rr.address for rrset in r.answer for rr in rrset] == [captive.host]
        assert r.answer[0].ttl <= 300


def test_windows_ncsi_name_in_online_mode(captive: App) -> None:
    r = _query(captive, "dns.msftncsi.com", "A")
    want = "131.107.255.255" if captive.mode == "online" else captive.host  # type: ignore[attr-defined]
    assert [rr.address for rrset in r.answer for rr in rrset] == [want]


@pytest.mark.parametrize("rdtype", ["AAAA", "TXT", "MX", "CNAME"])
def test_other_types_are_empty_noerror(captive: App, rdtype: str) -> None:
    r = _query(captive, "example.com", rdtype)
    assert r.rcode() == dns.rcode.NOERROR and r.answer == []


def test_any_gets_one_a_record(captive: App) -> None:
    r = _query(captive, "example.com", "ANY")
    assert [rrset.rdtype for rrset in r.answer] == [dns.rdatatype.A]


EDNS_PAYLOAD = 512  # the responder's OPT payload size: it reads the first 512 bytes of a datagram (tc_dns.h)


@pytest.mark.parametrize("payload", [1232, 4096, 100])
def test_edns_query_gets_the_responders_opt(captive: App, payload: int) -> None:
    """RFC 6891 7: an OPT in the request, one in the response (version 0, DO clear, the query's options not echoed);
    a payload below 512 is read as 512, and every answer fits 512 bytes."""
    cookie = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"12345678")
    q = dns.message.make_query("x.example", "A", use_edns=0, payload=payload, want_dnssec=True, options=[cookie])
    wire = q.to_wire()
    resp = _raw(captive, wire)
    assert resp is not None and len(resp) <= min(len(wire) + 16, 512)  # no amplification
    r = dns.message.from_wire(resp)
    assert r.rcode() == dns.rcode.NOERROR and [rr.address for rrset in r.answer for rr in rrset] == [captive.host]
    assert r.edns == 0 and r.payload == EDNS_PAYLOAD and r.ednsflags == 0 and not r.options


def test_edns_query_through_dnspython(captive: App) -> None:
    q = dns.message.make_query("x.example", "A", use_edns=0, payload=1232)
    r = dns.query.udp(q, captive.host, port=captive.dns_port, timeout=2)
    assert r.rcode() == dns.rcode.NOERROR and len(r.answer) == 1
    assert r.edns == 0 and r.payload == EDNS_PAYLOAD


def test_query_without_edns_gets_no_opt(captive: App) -> None:
    r = _query(captive, "x.example", "A")
    assert r.rcode() == dns.rcode.NOERROR and len(r.answer) == 1
    assert r.edns == -1 and r.additional == []


@pytest.mark.parametrize("rdtype", ["A", "AAAA"])
def test_edns_version_1_gets_badvers(captive: App, rdtype: str) -> None:
    """RFC 6891 6.1.3: BADVERS (extended rcode 16) with the responder's OPT of version 0, and no record."""
    q = dns.message.make_query("x.example", rdtype, use_edns=1, payload=1232)
    r = dns.query.udp(q, captive.host, port=captive.dns_port, timeout=2)
    assert r.rcode() == dns.rcode.BADVERS and r.answer == []
    assert r.edns == 0 and r.payload == EDNS_PAYLOAD


def _opt(owner: bytes = b"\x00", version: int = 0) -> bytes:
    """An OPT record: owner, TYPE 41, payload 1232, extended rcode 0, the version, flags 0, no options."""
    return owner + struct.pack("!HHBBHH", 41, 1232, 0, version, 0, 0)


BAD_OPT = [
    ("two OPT records (RFC 6891 6.1.1)", 2, _opt() + _opt()),
    ("two OPT records, the second of version 1", 2, _opt() + _opt(version=1)),
    ("an OPT owned by x.example", 1, _opt(owner=b"\xc0\x0c")),
]


@pytest.mark.parametrize(("name", "arcount", "records"), BAD_OPT, ids=[b[0] for b in BAD_OPT])
def test_bad_opt_records_get_formerr(captive: App, name: str, arcount: int, records: bytes) -> None:
    wire = bytearray(dns.message.make_query("x.example", "A").to_wire())
    wire[10:12] = arcount.to_bytes(2, "big")
    resp = _raw(captive, bytes(wire) + records)
    assert resp is not None, f"{name}: no answer"
    r = dns.message.from_wire(resp)
    assert r.rcode() == dns.rcode.FORMERR and r.id == int.from_bytes(wire[:2], "big"), name
    assert r.edns == -1 and len(resp) == 12  # header only, as every FORMERR here
    assert _query(captive, "still.alive", "A").rcode() == dns.rcode.NOERROR


def _header(id_: int = 0x1234, flags: int = 0x0100, qd: int = 1) -> bytes:
    return struct.pack("!HHHHHH", id_, flags, qd, 0, 0, 0)


def _qname(*labels: bytes) -> bytes:
    return b"".join(bytes([len(lb)]) + lb for lb in labels) + b"\x00"


def _rcode(resp: bytes) -> int:
    return resp[3] & 0x0F


MALFORMED = [
    ("shorter than a header", b"\x12\x34\x01\x00\x00", None),
    (
        "a response (QR set): two portals must not answer each other",
        _header(flags=0x8180) + _qname(b"a") + b"\0\1\0\1",
        None,
    ),
    ("truncated question", _header() + _qname(b"example", b"com")[:-3], 1),
    ("question without type and class", _header() + _qname(b"a"), 1),
    ("qdcount 0", _header(qd=0), 1),
    ("qdcount 2", _header(qd=2) + (_qname(b"a") + b"\0\1\0\1") * 2, 1),
    ("pointer to itself", _header() + b"\xc0\x0c\x00\x01\x00\x01", 1),
    ("two-step pointer loop", _header() + b"\x01a\xc0\x0e\xc0\x0c\x00\x01\x00\x01", 1),
    ("forward pointer", _header() + b"\xc0\x20\x00\x01\x00\x01" + b"\x00" * 30, 1),
    ("pointer into the header", _header() + b"\xc0\x02\x00\x01\x00\x01", 1),
    ("pointer past the end", _header() + b"\xc0\xff\x00\x01\x00\x01", 1),
    ("label of 64 bytes", _header() + _qname(b"a" * 64) + b"\0\1\0\1", 1),
    ("NUL inside a label (issue 11)", _header() + _qname(b"evil\0", b"example", b"com") + b"\0\1\0\1", 1),
    ("name of 256 bytes", _header() + _qname(*([b"a" * 63] * 4)) + b"\0\1\0\1", 1),
    ("opcode STATUS", _header(flags=0x1000) + _qname(b"a") + b"\0\1\0\1", 4),
    ("class CHAOS", _header() + _qname(b"version", b"bind") + b"\0\x10\0\x03", 4),
]


@pytest.mark.parametrize(("name", "packet", "rcode"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_dns(captive: App, name: str, packet: bytes, rcode: int | None) -> None:
    resp = _raw(captive, packet)
    if rcode is None:
        assert resp is None, f"{name}: must be dropped"
    else:
        assert resp is not None, f"{name}: no answer"
        assert _rcode(resp) == rcode and resp[:2] == packet[:2], f"{name}: {resp!r}"
        assert len(resp) <= max(len(packet), 12) + 16
    # The responder still answers everyone else.
    assert _query(captive, "still.alive", "A").rcode() == dns.rcode.NOERROR


def test_longest_legal_name_is_answered(captive: App) -> None:
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters: 255 bytes on the wire
    r = _query(captive, name, "A")
    assert r.rcode() == dns.rcode.NOERROR and len(r.answer) == 1


# ---- OS probes ----


@pytest.mark.parametrize(("os_name", "host", "path", "status", "body"), PROBES, ids=[f"{p[0]}{p[2]}" for p in PROBES])
def test_probe_answers(captive: App, os_name: str, host: str, path: str, status: int, body: bytes) -> None:
    url = f"http://{captive.host}:{captive.http_port}{path}"
    r = requests.get(url, headers={"Host": host}, allow_redirects=False, timeout=5)
    if captive.mode == "online":  # type: ignore[attr-defined]
        assert r.status_code == status, (os_name, r.status_code, r.content[:80])
        assert body in r.content and (status != 204 or r.content == b"")
    else:
        assert r.status_code == 302, (os_name, r.status_code)
        assert r.headers["Location"] == f"http://{captive.host}:{captive.http_port}/"


def test_portal_catch_all_and_own_pages(captive: App) -> None:
    base = f"http://{captive.host}:{captive.http_port}"
    foreign = requests.get(base + "/some/page", headers={"Host": "news.example.com"}, allow_redirects=False, timeout=5)
    own = requests.get(base + "/api/status", timeout=5)  # Host is the device's own address
    assert own.status_code == 200 and "sockets" in own.json()
    if captive.mode == "portal":  # type: ignore[attr-defined]
        assert foreign.status_code == 302
        # Following the redirect (as a browser does, with the new URL's own Host) lands on the device's page:
        # what the OS's sign-in sheet shows.
        page = requests.get(foreign.headers["Location"], timeout=5)
        assert page.status_code == 200 and "tcp_core" in page.text
    else:
        assert foreign.status_code == 404


def test_full_url_request_line_names_the_host(captive: App) -> None:
    """RFC 9112 3.2.2: the authority of an absolute-form target wins over Host. At a45b40e a full-URL request line
    for another site with the device's Host was routed by Host (200 instead of the portal's redirect)."""
    own = f"{captive.host}:{captive.http_port}"
    with connect(captive.host, captive.http_port) as s:
        s.sendall(f"GET http://news.example.com/api/status HTTP/1.1\r\nHost: {own}\r\n\r\n".encode())
        foreign = s.recv(4096)
        s.sendall(f"GET http://{own}/api/status HTTP/1.1\r\nHost: news.example.com\r\n\r\n".encode())
        head = read_response_head(s)
    status = int(foreign.split()[1])
    if captive.mode == "portal":  # type: ignore[attr-defined]
        assert status == 302 and b"Location: http://" in foreign, foreign[:200]
    else:
        assert status == 200, foreign[:200]
    assert head.raw.startswith(b"HTTP/1.1 200 "), head.raw[:100]  # the device's own URL is served whatever Host says


def test_websocket_echo_through_the_captive_setup(captive: App) -> None:
    # The app resolves the device through the portal's DNS, then opens ws:// with an explicit port.
    r = _query(captive, "device.local", "A")
    ip = r.answer[0][0].address
    with ws_connect(f"ws://{ip}:{captive.http_port}/ws", open_timeout=5) as ws:
        ws.send("through the portal")
        assert ws.recv(timeout=5) == "through the portal"


def test_dns_answers_only_on_its_address(loop: Loop, server_host: str, backend: str) -> None:
    if backend != "linux":
        pytest.skip("the lwIP stack has one address; the kernel's loopback has 127/8")
    a = App(loop, "127.0.0.2", echo_port=None, http_port=0, captive="portal", dns_port=0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        s.sendto(dns.message.make_query("x.com", "A").to_wire(), ("127.0.0.1", a.dns_port))
        with pytest.raises((TimeoutError, ConnectionRefusedError)):
            s.recv(512)
    assert _query(a, "x.com", "A").answer[0][0].address == "127.0.0.2"
    a.stop(500)
