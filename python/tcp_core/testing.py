"""Client helpers shared by the host tests (``host_tests/``) and the firmware tests (``pytest_tcp_core.py``).

Plain sockets and the standard library only: the same helpers drive ``tcp-core serve``, a ``linux``-target ELF
and a board on the Wi-Fi, and none of them trusts the server under test (every read has a bound).

    with connect("127.0.0.1", 3333) as s:
        s.sendall(b"hi"); assert recv_exact(s, 2) == b"hi"
    with MjpegStream("127.0.0.1", 8080, "/stream") as st:
        frame = st.next_frame()
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from .httphead import read_response_head

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3


def connect(host: str, port: int, timeout: float = 5.0) -> socket.socket:
    """A plain kernel TCP client socket with Nagle off, the peer nobody here wrote."""
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s: socket.socket, n: int) -> bytes:
    """Read exactly n bytes or fail (AssertionError on an early close; the socket's timeout bounds each read)."""
    chunks = []
    got = 0
    while got < n:
        b = s.recv(min(1 << 20, n - got))
        if not b:
            raise AssertionError(f"connection closed after {got} of {n} bytes")
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def wait_until(pred: Callable[[], object], timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll pred() until true or the timeout (bounded); return its last value as a bool."""
    assert callable(pred)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return bool(pred())


def echo_roundtrip(host: str, port: int, payload: bytes, timeout: float = 5.0) -> bytes:
    """Send payload to an echo server on a new connection and return what came back (as many bytes)."""
    with connect(host, port, timeout) as s:
        s.sendall(payload)
        return recv_exact(s, len(payload))


@dataclass(frozen=True)
class HttpResponse:
    """An HTTP answer: status, headers (names lower-case) and the body (de-chunked)."""

    status: int
    headers: dict[str, str]
    body: bytes


class _Dechunker:
    """Incremental chunked-coding decoder (RFC 9112 section 7.1): feed raw bytes, get body bytes."""

    def __init__(self) -> None:
        self._raw = bytearray()
        self._state = "size"  # size line next, "data" of the chunk, its "crlf"
        self._left = 0
        self.done = False  # the last (zero-size) chunk came

    def feed(self, data: bytes) -> bytes:
        self._raw += data
        out = bytearray()
        while not self.done:
            if self._state == "size":
                end = self._raw.find(b"\r\n")
                if end < 0:
                    break
                size = int(bytes(self._raw[:end]).split(b";")[0].strip() or b"0", 16)
                del self._raw[: end + 2]
                self.done = size == 0
                self._left, self._state = size, "data"
            elif self._state == "data":
                if not self._raw:
                    break
                take = min(self._left, len(self._raw))
                out += self._raw[:take]
                del self._raw[:take]
                self._left -= take
                if self._left == 0:
                    self._state = "crlf"
            else:
                if len(self._raw) < 2:
                    break
                del self._raw[:2]
                self._state = "size"
        return bytes(out)


def http_request(
    host: str, port: int, method: str = "GET", path: str = "/", body: bytes = b"", timeout: float = 5.0
) -> HttpResponse:
    """One request on a new connection (Connection: close); the body is read by Content-Length, chunks or close."""
    with connect(host, port, timeout) as s:
        hh = f"[{host}]" if ":" in host else host
        head = f"{method} {path} HTTP/1.1\r\nHost: {hh}:{port}\r\nConnection: close\r\n"
        if body or method in ("POST", "PUT"):
            head += f"Content-Length: {len(body)}\r\n"
        s.sendall(head.encode() + b"\r\n" + body)
        buf = bytearray()
        answer = read_response_head(s, buf)
        status, headers = answer.status, answer.headers
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return HttpResponse(status, headers, b"")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = int(headers["content-length"]) if "content-length" in headers and not chunked else -1
        dechunk = _Dechunker() if chunked else None
        out = bytearray(dechunk.feed(bytes(buf)) if dechunk else buf)
        while not (dechunk and dechunk.done) and not (length >= 0 and len(out) >= length):
            chunk = s.recv(65536)
            if not chunk:
                break
            out += dechunk.feed(chunk) if dechunk else chunk
        return HttpResponse(status, headers, bytes(out[:length] if length >= 0 else out))


def ws_echo(host: str, port: int, path: str, message: bytes, timeout: float = 5.0) -> bytes:
    """Open a WebSocket (RFC 6455), send one masked binary message, return the payload of the first frame back."""
    with connect(host, port, timeout) as s:
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n".encode()
        )
        buf = bytearray()
        answer = read_response_head(s, buf)
        status, headers = answer.status, answer.headers
        if status != 101:
            raise AssertionError(f"WebSocket upgrade of {path}: HTTP {status}")
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != accept:
            raise AssertionError(f"bad Sec-WebSocket-Accept {headers.get('sec-websocket-accept')!r}")
        mask = os.urandom(4)
        n = len(message)
        if n < 126:
            head = struct.pack("!BB", 0x82, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x82, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x82, 0x80 | 127, n)
        s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(message)))
        while len(buf) < 2:
            buf += recv_exact(s, 2 - len(buf))
        b0, b1 = buf[0], buf[1]
        del buf[:2]
        size = b1 & 0x7F
        ext = {126: 2, 127: 8}.get(size, 0)
        while len(buf) < ext:
            buf += recv_exact(s, ext - len(buf))
        if ext:
            size = int.from_bytes(buf[:ext], "big")
            del buf[:ext]
        if b1 & 0x80:
            raise AssertionError("a server frame is masked (RFC 6455 5.1 forbids it)")
        if b0 & 0x0F not in (0x1, 0x2):
            raise AssertionError(f"expected a data frame, got opcode {b0 & 0x0F:#x}")
        payload = bytes(buf[:size])
        return payload + recv_exact(s, size - len(payload)) if len(payload) < size else payload


class MjpegStream:
    """A viewer of a multipart/x-mixed-replace stream (the demo's /stream, esp_http_server's with the adapter)."""

    def __init__(self, host: str, port: int, path: str = "/stream", timeout: float = 5.0) -> None:
        self.sock = connect(host, port, timeout)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        buf = bytearray()
        head = read_response_head(self.sock, buf)
        self.status, self.headers = head.status, head.headers
        if self.status != 200:
            self.sock.close()
            raise AssertionError(f"GET {path}: HTTP {self.status}")
        if "multipart/x-mixed-replace" not in self.headers.get("content-type", ""):
            self.sock.close()
            raise AssertionError(f"{path} is not an MJPEG stream: {self.headers.get('content-type')!r}")
        chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        self._dechunk = _Dechunker() if chunked else None
        self._body = bytearray()
        self._feed(bytes(buf))

    def _feed(self, raw: bytes) -> None:
        self._body += self._dechunk.feed(raw) if self._dechunk else raw

    def next_frame(self, timeout: float = 5.0) -> bytes:
        """The next complete JPEG (SOI to EOI) of the stream."""
        deadline = time.monotonic() + timeout
        while True:
            soi = self._body.find(b"\xff\xd8")
            eoi = self._body.find(b"\xff\xd9", soi + 2) if soi >= 0 else -1
            if eoi >= 0:
                frame = bytes(self._body[soi : eoi + 2])
                del self._body[: eoi + 2]
                return frame
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no complete frame before the timeout")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the stream ended before a complete frame")
            self._feed(chunk)

    def wait_closed(self, timeout: float) -> float | None:
        """Read (and drop) until the server ends the stream; return the seconds it took, None if it did not."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return time.monotonic() - t0
            except TimeoutError:
                return None
            if not chunk:
                return time.monotonic() - t0
            self._feed(chunk)
            if self._dechunk and self._dechunk.done:
                return time.monotonic() - t0  # the last chunk: the stream ended without a FIN
            del self._body[: max(0, len(self._body) - 4)]

    def close(self) -> None:
        """Close the viewer's socket."""
        self.sock.close()

    def __enter__(self) -> MjpegStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
