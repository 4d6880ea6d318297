"""Hostile and careless clients (issue 11): uploads cut at any byte, bodies declared but never sent, bodies sent one
byte at a time, and uploads taken in pieces with backpressure. Real sockets, curl and requests; both host backends.

Every test ends with the loop fixture's check (no socket, descriptor or heap byte left); the cut tests also check
that the heap of the *running* server comes back to its baseline, which is what a device needs.
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import shutil
import socket
import struct
import subprocess
import time
import zlib
from collections.abc import Iterator

import pytest
import requests
from websockets.sync.client import connect as ws_connect

import tcp_core
from conftest import connect, recv_exact, tap_down, wait_until
from tcp_core import Loop
from tcp_core.app import App
from tcp_core.httphead import read_response_head

# The CI run cuts this many connections per test; TC_HOSTILE_CUTS=100000 gives the long run quoted in the report.
CUTS = int(os.environ.get("TC_HOSTILE_CUTS", "2000"))


@pytest.fixture
def app(loop: Loop, server_host: str) -> Iterator[App]:
    a = App(loop, server_host, echo_port=None, http_port=0, http_max_conns=64, stream_fps=100, events_ms=20)
    yield a
    a.stop(500)


def base(app: App) -> str:
    return f"http://{app.host}:{app.http_port}"


def heap(backend: str) -> int:
    return tcp_core.alloc_stats(backend).bytes_in_use


def accepted(app: App) -> int:
    return sum(1 for s in app.loop.registry() if s.kind == "accepted")


def cut(s: socket.socket, reset: bool) -> None:
    """End a client connection with a FIN, or with an RST (SO_LINGER 0)."""
    if reset:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def chunked(data: bytes, rng: random.Random) -> bytes:
    out = b""
    i = 0
    while i < len(data):
        n = rng.randint(1, 700)
        out += f"{n:x}\r\n".encode() + data[i : i + n] + b"\r\n"
        i += n
    return out + b"0\r\n\r\n"


def ws_frame(payload: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    n = len(payload)
    head = bytes([0x82, 0x80 | n]) if n < 126 else bytes([0x82, 0x80 | 126]) + struct.pack("!H", n)
    return head + mask + masked


def one_cut(app: App, kind: str, rng: random.Random) -> None:
    """Open one connection, get it to the stage named by kind, send a random prefix of the rest, then cut it."""
    s = connect(app.host, app.http_port)
    s.settimeout(5)
    body = bytes(rng.getrandbits(8) for _ in range(64)) * 40
    reset = rng.random() < 0.5
    try:
        if kind == "head":
            data = b"POST /api/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\n"
            s.sendall(data[: rng.randint(1, len(data) - 1)])
        elif kind in ("body", "upload", "upload-slow"):
            path = {"body": "/api/echo", "upload": "/api/upload", "upload-slow": "/api/upload?slow=3"}[kind]
            head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\n".encode()
            s.sendall(head + body[: rng.randint(0, len(body))])
        elif kind in ("chunk-body", "chunk-upload"):
            path = "/api/echo" if kind == "chunk-body" else "/api/upload"
            head = f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            data = chunked(body, rng)
            s.sendall(head + data[: rng.randint(0, len(data) - 1)])
        elif kind == "ws":
            key = base64.b64encode(os.urandom(16)).decode()
            s.sendall(
                f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            assert read_response_head(s).status == 101
            frame = ws_frame(body[: rng.randint(1, 1000)])
            s.sendall(frame[: rng.randint(1, len(frame) - 1)])
        elif kind in ("sse", "mjpeg"):
            path = "/events" if kind == "sse" else "/stream"
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert read_response_head(s).status == 200
            if rng.random() < 0.5:
                s.sendall(b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n"[: rng.randint(1, 30)])
        else:
            raise AssertionError(kind)
    except (ConnectionResetError, BrokenPipeError):
        pass  # the server may have answered (413/408) and closed first: still a cut
    cut(s, reset)


KINDS = ["head", "body", "upload", "upload-slow", "chunk-body", "chunk-upload", "ws", "sse", "mjpeg"]


def test_cut_connections_leave_heap_at_baseline(app: App, backend: str) -> None:
    """Issue 11: +68,100 B per cut upload at a45b40e (the request in HC_BODY had no owner). Cuts at random bytes of
    the head, a Content-Length body (buffered and in pieces, paused or not), a chunked body (inside chunk headers
    too), a WebSocket frame, an SSE and an MJPEG stream; FIN or RST at random. The running server's heap must come
    back to exactly its baseline, with no connection left."""
    rng = random.Random(11)
    for kind in KINDS:  # warm-up: whatever is allocated once (and kept) is in the baseline
        one_cut(app, kind, rng)
    assert wait_until(lambda: accepted(app) == 0, timeout=15)
    baseline = heap(backend)
    for i in range(CUTS):
        one_cut(app, KINDS[i % len(KINDS)], rng)
    assert wait_until(lambda: accepted(app) == 0, timeout=30), [s for s in app.loop.registry()]
    # At most the baseline: on lwIP the baseline can hold a few bytes of a block that is transient (seen: 24 bytes
    # fewer after 100,000 cuts); a leak grows with the cuts. The exact check is the loop fixture's, after the stop.
    assert wait_until(lambda: heap(backend) <= baseline, timeout=5), f"{heap(backend) - baseline} bytes left"
    # And it still serves.
    assert requests.get(base(app) + "/api/status", timeout=5).status_code == 200


def test_declared_length_allocates_nothing(app: App, backend: str) -> None:
    """15 heads declaring 64 KB bodies took the heap from 25 KB to 1 MB at once at a45b40e. Now a body costs what
    arrives: 15 x 64 KB promised and 1 byte each sent cost a few KB."""
    socks = []
    before = heap(backend)
    try:
        for _ in range(15):
            s = connect(app.host, app.http_port)
            s.sendall(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\nx")
            socks.append(s)
        assert wait_until(lambda: accepted(app) == 15)
        time.sleep(0.1)
        grown = heap(backend) - before
        assert grown < 15 * 8192, f"{grown} bytes for 15 one-byte bodies"
    finally:
        for s in socks:
            cut(s, True)


def test_buffered_body_is_answered_whole(app: App) -> None:
    data = os.urandom(60000)
    r = requests.post(base(app) + "/api/echo", data=data, timeout=10)
    assert r.status_code == 200 and r.json() == {"bytes": len(data), "crc32": zlib.crc32(data)}
    r = requests.post(base(app) + "/api/echo", data=iter([data[:1000], data[1000:]]), timeout=10)  # chunked
    assert r.status_code == 200 and r.json() == {"bytes": len(data), "crc32": zlib.crc32(data)}
    assert requests.post(base(app) + "/api/echo", data=b"x" * 70000, timeout=10).status_code == 413


def test_upload_in_pieces_with_backpressure(loop: Loop, server_host: str, backend: str) -> None:
    """A 4 MB upload to a route taking pieces, pausing 1 ms after each (a flash write): the server's heap peak
    grows by a small fraction of the image, because the body waits in the client's socket, not in the device."""
    app = App(loop, server_host, echo_port=None, http_port=0, upload_max=8 << 20)
    try:
        data = os.urandom(4 << 20)
        tcp_core.reset_alloc_peak(backend)
        before = tcp_core.alloc_stats(backend).bytes_peak
        r = requests.post(base(app) + "/api/upload?slow=1", data=data, timeout=120)
        assert r.status_code == 200 and r.json() == {"bytes": len(data), "crc32": zlib.crc32(data)}
        peak = tcp_core.alloc_stats(backend).bytes_peak - before
        assert peak < 256 * 1024, f"heap peak grew {peak} bytes for a {len(data)}-byte upload"
        # Chunked, with a client that sends unevenly; then the limit.
        r = requests.put(base(app) + "/api/upload", data=iter([data[:1], data[1:70000], data[70000:]]), timeout=60)
        assert r.status_code == 200 and r.json() == {"bytes": len(data), "crc32": zlib.crc32(data)}
        with connect(app.host, app.http_port) as s:
            s.sendall(b"POST /api/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 9000000\r\n\r\n")
            assert read_response_head(s).status == 413
    finally:
        app.stop(500)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is installed by tools/setup.sh")
def test_curl_upload_file(app: App, tmp_path: object) -> None:
    import pathlib

    assert isinstance(tmp_path, pathlib.Path)
    f = tmp_path / "image.bin"
    data = os.urandom(1 << 20)
    f.write_bytes(data)
    out = subprocess.run(
        ["curl", "-sS", "-T", str(f), base(app) + "/api/upload?slow=1"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert f'"bytes":{len(data)},"crc32":{zlib.crc32(data)}' in out.stdout


def test_trickled_body_gets_408(loop: Loop, server_host: str) -> None:
    """1 byte every 5 s kept a body (and its memory) open forever at a45b40e: every byte reset the idle timer. Now a
    body below body_min_rate after body_grace_ms is answered 408 and closed. Here: 1000 B/s after 300 ms, and a
    client sending 1 byte per 100 ms (10 B/s), whatever the machine's load."""
    app = App(loop, server_host, echo_port=None, http_port=0, body_min_rate=1000, body_grace_ms=300)
    try:
        for path in ("/api/echo", "/api/upload"):
            with connect(app.host, app.http_port) as s:
                s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".encode())
                got = b""
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and b"\r\n\r\n" not in got:
                    try:
                        s.sendall(b"x")
                    except (BrokenPipeError, ConnectionResetError):
                        break
                    s.settimeout(0.1)
                    try:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        got += chunk
                    except TimeoutError:
                        pass
                assert got.startswith(b"HTTP/1.1 408 "), got[:80]
        # A body at full speed is not affected by the rule.
        r = requests.post(base(app) + "/api/upload", data=os.urandom(300000), timeout=30)
        assert r.status_code == 200
    finally:
        app.stop(500)


# ---- pipelining during streamed responses, whole frames ----


class RawReader:
    """A buffered reader over a socket that parses HTTP/1.1 responses (Content-Length or chunked bodies)."""

    def __init__(self, s: socket.socket) -> None:
        self.s = s
        self.buf = b""

    def fill(self) -> None:
        b = self.s.recv(262144)
        if not b:
            raise ConnectionError("closed")
        self.buf += b

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self.fill()
        ln, _, self.buf = self.buf.partition(b"\r\n")
        return ln

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self) -> tuple[int, dict[str, str], bytes]:
        status = int(self.line().split()[1])
        headers = {}
        while ln := self.line():
            k, _, v = ln.decode().partition(":")
            headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            return status, headers, self.exact(int(headers["content-length"]))
        body = b""
        while (size := int(self.line().split(b";")[0], 16)) > 0:
            body += self.exact(size)
            assert self.exact(2) == b"\r\n"
        assert self.line() == b""
        return status, headers, body


def test_pipelined_requests_during_streamed_responses_all_answered(app: App) -> None:
    """1,000 pipelined GETs alternating a chunked streamed route and a plain one: at a45b40e 321 were answered, then
    408 and an RST. Every one is answered, in order; the server buffers a bounded amount and stops reading."""
    import threading

    n = 1000
    chunks = b"GET /api/chunks HTTP/1.1\r\nHost: x\r\n\r\n"
    status = b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n"
    reqs = b"".join(chunks if i % 2 == 0 else status for i in range(n))
    with connect(app.host, app.http_port, timeout=30) as s:
        sender = threading.Thread(target=s.sendall, args=(reqs,))
        sender.start()
        rd = RawReader(s)
        for i in range(n):
            status, headers, body = rd.response()
            assert status == 200, (i, status)
            if i % 2 == 0:
                assert headers.get("transfer-encoding") == "chunked" and body == b'{"pieces":[1,2,3]}\n', (i, body)
            else:
                assert headers["content-type"] == "application/json" and b'"sockets"' in body, i
        sender.join(10)
        s.sendall(b"GET /api/chunks HTTP/1.1\r\nHost: x\r\n\r\n")  # and the connection goes on serving
        assert rd.response()[0] == 200


@pytest.mark.parametrize(
    "rest",
    [
        (b"GET /api/status HTTP/1.1\r\nHost: x\r\n", b"\r\n"),  # the next head, cut before its empty line
        (b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab", b"cd"),  # the next body, cut
    ],
    ids=["head", "body"],
)
def test_request_pipelined_behind_a_paused_upload_is_answered(app: App, rest: tuple[bytes, bytes]) -> None:
    """An upload whose handler paused after its last piece (`?slow=`, a flash write) is answered from the loop once it
    resumes; the next request, pipelined behind it and not yet whole, must then be read to its end. The next
    request's record took the freed upload's address, the server took it for the upload still waiting for its
    answer and stopped reading: the head got 408 at the head timeout, the body 408 at the idle timeout."""
    with connect(app.host, app.http_port, timeout=30) as s:
        s.sendall(b"POST /api/upload?slow=20 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789" + rest[0])
        rd = RawReader(s)
        status, _, body = rd.response()
        assert status == 200 and body == b'{"bytes":10,"crc32":%d}\n' % zlib.crc32(b"0123456789")
        time.sleep(0.2)  # the upload is answered and the next request has started: its end comes later
        s.sendall(rest[1])
        status, _, body = rd.response()
        assert status == 200, body


def test_mjpeg_frames_beyond_the_queue_limit_stay_whole(loop: Loop, server_host: str) -> None:
    """2 MB frames at 2 fps (4 MB/s) to a viewer reading slower than that: the 1 MiB queue limit refused the frame
    after its chunk header at a45b40e, and the stream broke after 2 frames. Every part must be whole."""
    size = 2 << 20
    app = App(loop, server_host, echo_port=None, http_port=0, stream_fps=2, stream_frame_bytes=size)
    try:
        with connect(app.host, app.http_port, timeout=30) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            s.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            rd = RawReader(s)
            status = int(rd.line().split()[1])
            while rd.line():
                pass
            assert status == 200
            frames = 0
            while frames < 4:
                chunk_size = int(rd.line(), 16)
                part = rd.exact(chunk_size)
                assert rd.exact(2) == b"\r\n"
                head, sep, body = part.partition(b"\r\n\r\n")
                assert sep and head.startswith(b"--tcpcoreframe\r\n"), head[:60]
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                assert length == size and len(body) == size + 2 and body.endswith(b"\r\n")
                assert body[:2] == b"\xff\xd8" and body[size - 2 : size] == b"\xff\xd9"
                frames += 1
                time.sleep(0.3)  # slower than the stream: the server must skip frames, never split one
    finally:
        app.stop(500)


# ---- admission at max_conns ----


class Sessions:
    """Two WebSockets (the `websockets` library), an SSE reader and an MJPEG viewer (raw sockets): live sessions."""

    def __init__(self, app: App) -> None:
        url = f"ws://{app.host}:{app.http_port}/ws"
        self.stack = contextlib.ExitStack()
        self.ws = [self.stack.enter_context(ws_connect(url, open_timeout=5)) for _ in range(2)]
        self.readers = []
        for path in ("/events", "/stream"):
            s = connect(app.host, app.http_port)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert read_response_head(s).status == 200
            self.readers.append(s)

    def alive(self) -> None:
        for i, w in enumerate(self.ws):
            w.send(f"still here {i}")
            assert w.recv(timeout=5) == f"still here {i}"
        for s in self.readers:
            s.settimeout(5)
            while True:  # drain what queued up, then see new bytes arrive
                s.setblocking(False)
                try:
                    if not s.recv(1 << 20):
                        raise AssertionError("stream ended")
                except BlockingIOError:
                    break
            s.settimeout(5)
            assert s.recv(65536), "stream ended"

    def close(self) -> None:
        self.stack.close()
        for s in self.readers:
            s.close()


def test_flood_of_newcomers_evicts_only_idle_connections(loop: Loop, server_host: str) -> None:
    """At a45b40e 40 idle connects killed a chatty WebSocket, a quiet one and an SSE reader within a second. Now a
    newcomer evicts the least recently active idle connection (here: earlier newcomers), never a live session."""
    app = App(loop, server_host, echo_port=None, http_port=0, http_max_conns=6, stream_fps=20, events_ms=20)
    sessions = Sessions(app)
    idle = []
    try:
        for _ in range(40):
            idle.append(connect(app.host, app.http_port))
            time.sleep(0.01)
        sessions.alive()
        roles = sorted(s.role for s in app.loop.registry() if s.kind == "accepted" and s.state == "open")
        assert roles.count("ws") == 2 and "sse" in roles and "stream" in roles, roles
        # The newest idle connection still holds a slot and is served.
        idle[-1].sendall(b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response_head(idle[-1]).status == 200
    finally:
        for s in idle:
            s.close()
        sessions.close()
        app.stop(500)


def test_burst_of_ready_requests_beyond_max_conns_is_answered_whole(loop: Loop, server_host: str) -> None:
    """40 clients connect at once, each sending a whole `Connection: close` request, against max_conns 16, five
    times: every one is answered. Accepted in one go, the ones beyond 16 evicted the first ones before the loop had
    read their requests (Linux: 36-76 of 400 reset); a connection that has sent nothing so far is now read before it
    is judged idle."""
    app = App(loop, server_host, echo_port=None, http_port=0, http_max_conns=16)
    outcomes: dict[str, int] = {}
    try:
        for _ in range(5):
            socks = []
            for _ in range(40):
                s = connect(app.host, app.http_port)
                s.sendall(b"GET /api/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                socks.append(s)
            for s in socks:
                s.settimeout(10)
                data = b""
                try:
                    while chunk := s.recv(65536):
                        data += chunk
                    key = data[:12].decode(errors="replace")
                except ConnectionResetError:
                    key = "reset"
                outcomes[key] = outcomes.get(key, 0) + 1
                s.close()
        assert outcomes == {"HTTP/1.1 200": 200}, outcomes
    finally:
        app.stop(500)


def test_full_of_live_sessions_newcomer_gets_503_retry_after(loop: Loop, server_host: str) -> None:
    app = App(loop, server_host, echo_port=None, http_port=0, http_max_conns=4, stream_fps=20, events_ms=20)
    sessions = Sessions(app)
    try:
        for _ in range(20):
            r = requests.get(base(app) + "/api/status", timeout=5)
            assert r.status_code == 503 and r.headers["Retry-After"].isdigit(), r.status_code
        sessions.alive()
    finally:
        sessions.close()
    # Once the sessions are gone, newcomers are served again.
    assert wait_until(lambda: requests.get(base(app) + "/api/status", timeout=5).status_code == 200, timeout=10)
    app.stop(500)


def test_echo_server_full_refuses_newcomers(loop: Loop, server_host: str) -> None:
    app = App(loop, server_host, echo_port=0, echo_max_conns=2, http_port=None)
    try:
        a, b = connect(app.host, app.echo_port), connect(app.host, app.echo_port)
        for s in (a, b):
            s.sendall(b"ping")
            assert s.recv(4) == b"ping"
        try:
            with connect(app.host, app.echo_port) as c:
                c.settimeout(5)
                c.sendall(b"hello")
                got = c.recv(10)
        except (ConnectionResetError, BrokenPipeError):
            got = b""
        assert got == b""  # refused: RST (or EOF), never served
        for s in (a, b):
            s.sendall(b"pong")
            assert s.recv(4) == b"pong"
        a.close()
        b.close()
    finally:
        app.stop(500)


def _echo_once(host: str, port: int) -> bytes:
    try:
        with connect(host, port) as c:
            c.settimeout(3)
            c.sendall(b"ping")
            return c.recv(4)
    except OSError:
        return b""


def _keepalive_of(loop: Loop, kind: str) -> tuple[int, int]:
    """SO_KEEPALIVE and TCP_KEEPIDLE of the loop's (Linux) socket of this registry kind."""
    fd = next(e.fd for e in loop.registry() if e.kind == kind)
    with socket.socket(fileno=os.dup(fd)) as s:
        return s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), s.getsockopt(
            socket.IPPROTO_TCP, socket.TCP_KEEPIDLE
        )


def _reset_unheard(s: socket.socket) -> None:
    """Close s with an RST that lwIP never hears: the TAP link is down while it is sent, then up again."""
    with tap_down():
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        time.sleep(0.5)


def test_vanished_echo_peer_is_found_and_its_slot_freed(loop: Loop, server_host: str, backend: str) -> None:
    """The echo service refuses newcomers when full and a quiet echo peer sends nothing, so a peer that vanished
    without a FIN (a phone that left the Wi-Fi) held its slot for good: with the device's few slots, the service was
    locked out. Echo connections now carry TCP keepalive. lwIP: the peer vanishes for real (the TAP link down while
    its RST is sent, then up again); its slot is freed and a newcomer is served. Linux (no way to lose a loopback
    RST here): the accepted socket carries the keepalive."""
    app = App(loop, server_host, echo_port=0, echo_max_conns=1, http_port=None, echo_keepalive_s=1)
    try:
        gone = connect(app.host, app.echo_port)
        gone.sendall(b"hi")
        assert gone.recv(2) == b"hi"
        if backend == "linux":
            assert _keepalive_of(loop, "accepted") == (1, 1)
            gone.close()
            return
        _reset_unheard(gone)
        # The first probe meets a stack that knows no such connection: RST, and the slot is free.
        assert wait_until(lambda: _echo_once(app.host, app.echo_port) == b"ping", 30), loop.registry()
    finally:
        app.stop(500)


def test_vanished_peer_of_the_echo_client_is_found_and_dialled_again(
    loop: Loop, server_host: str, backend: str
) -> None:
    """The demo's client echoes what its peer sends and sends nothing of its own, so a peer that vanished without a
    FIN (the PC's Wi-Fi dropped, a NAT forgot the flow) left it connected to nobody for good: it never dialled again.
    Its connection now carries the echo keepalive. lwIP: the peer's RST is lost (the TAP link down while it resets,
    then up); the probes find the peer gone and the client dials again and echoes. Linux (no way to lose a loopback
    RST here): the client's socket carries the keepalive."""
    peer_host = os.environ["TC_LWIP_PEER"] if backend == "lwip" else "127.0.0.1"
    with socket.create_server((peer_host, 0)) as lst:
        lst.settimeout(30)
        app = App(
            loop,
            server_host,
            echo_port=None,
            http_port=None,
            echo_keepalive_s=1,
            connect=(peer_host, lst.getsockname()[1]),
        )
        try:
            first, _ = lst.accept()
            first.sendall(b"hi")
            assert recv_exact(first, 2) == b"hi"
            if backend == "linux":
                assert _keepalive_of(loop, "client") == (1, 1)
                first.close()
                return
            _reset_unheard(first)
            second, _ = lst.accept()  # the client dialled again (timeout: 30 s)
            with second:
                second.sendall(b"again")
                assert recv_exact(second, 5) == b"again"
        finally:
            app.stop(500)


# ---- smaller items ----


def test_duplicated_websocket_key_is_refused(app: App) -> None:
    """RFC 6455 11.3.1: Sec-WebSocket-Key must not appear more than once. At a45b40e the first was used."""
    key = base64.b64encode(os.urandom(16)).decode()
    head = (
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
    )
    with connect(app.host, app.http_port) as s:
        s.sendall((head + f"Sec-WebSocket-Key: {key}\r\n\r\n").encode())
        assert read_response_head(s).raw.startswith(b"HTTP/1.1 400 ")
    with connect(app.host, app.http_port) as s:  # the same request with one key upgrades
        s.sendall((head + "\r\n").encode())
        assert read_response_head(s).raw.startswith(b"HTTP/1.1 101 ")
