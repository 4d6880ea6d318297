"""The one reader of an HTTP/1.x response head, for every raw-socket client of the package, the benchmarks and the
tests (the probe, the soak, ``tcp_core.testing``, bench/_common.py, host_tests)."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

HEAD_LIMIT = 65536
"""Bytes a response head may take before the reader gives up (ValueError)."""


@dataclass(frozen=True)
class ResponseHead:
    """A response's status line and headers (names in lower case; a repeated header keeps its last value)."""

    status: int
    reason: str
    headers: dict[str, str]
    raw: bytes
    """The head as it came, the blank line included."""

    @property
    def content_length(self) -> int | None:
        """The Content-Length, None without one (or with chunked coding, which overrides it)."""
        if "chunked" in self.headers.get("transfer-encoding", "").lower() or "content-length" not in self.headers:
            return None
        return int(self.headers["content-length"])


def parse_response_head(raw: bytes) -> ResponseHead:
    """Parse a complete head (ending in CR LF CR LF); ValueError when its status line is not HTTP/1.x."""
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if not lines[0].startswith("HTTP/1.") or len(parts) < 2 or not (parts[1].isdigit() and len(parts[1]) == 3):
        raise ValueError(f"not an HTTP response: {lines[0][:60]!r}")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    return ResponseHead(int(parts[1]), parts[2] if len(parts) > 2 else "", headers, raw)


def read_response_head(
    sock: socket.socket,
    buf: bytearray | None = None,
    *,
    limit: int = HEAD_LIMIT,
    deadline: float | None = None,
) -> ResponseHead:
    """Read one response head from sock.

    buf holds bytes already received and receives what follows the head (the body's first bytes): pass one when
    the body is read next. deadline (time.monotonic()) bounds each recv through the socket's timeout; else the
    socket's own timeout applies.

    Raises ConnectionResetError when the peer closes before the head ends, ValueError for a head that is not
    HTTP/1.x or is longer than limit, TimeoutError (socket.timeout) when the time runs out.
    """
    if buf is None:
        buf = bytearray()
    while (end := buf.find(b"\r\n\r\n")) < 0:
        if len(buf) > limit:
            raise ValueError(f"no end of the HTTP head in {limit} bytes")
        if deadline is not None:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError(f"closed before the end of the HTTP head ({bytes(buf[:60])!r})")
        buf += chunk
    raw = bytes(buf[: end + 4])
    del buf[: end + 4]
    return parse_response_head(raw)
