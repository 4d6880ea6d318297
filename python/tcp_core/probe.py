"""`tcp-core probe`: the layered diagnosis of seed 002 — before blaming the firmware, find the first layer that fails.

Layers, in order: the target itself (a missing or zero port is an error, never a silent port 0), name resolution,
TCP connect, HTTP GET, the WebSocket upgrade with an echo round trip, and the first frame of the MJPEG stream.
Each is timed; the first failure is named with its likely cause in plain words, and sets the exit code.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .httphead import read_response_head

EXIT_OK = 0
EXIT_CODES = {"target": 2, "resolve": 3, "tcp": 4, "http": 5, "websocket": 6, "stream": 7}


@dataclass
class Layer:
    """One layer's outcome."""

    layer: str
    ok: bool
    ms: float
    detail: str
    cause: str = ""


@dataclass
class ProbeResult:
    """All layers run, the first failure, and the exit code."""

    target: str
    layers: list[Layer] = field(default_factory=list)
    failed_layer: str | None = None
    exit_code: int = EXIT_OK


@dataclass(frozen=True)
class ParsedTarget:
    scheme: str  # "tcp", "http" or "ws"
    host: str
    port: int
    path: str


def parse_target(text: str) -> ParsedTarget:
    """Parse a URL (http://, ws://) or HOST:PORT. Raises ValueError with a plain explanation."""
    if "://" in text:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "ws"):
            raise ValueError(f"{scheme}:// is not probed here (https/wss need a certificate the device lacks)")
        if not parts.hostname:
            raise ValueError(f"{text}: the URL has no host")
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"{text}: bad port ({exc})") from exc
        if port == 0:
            raise ValueError(
                f"{text}: port 0 is not a destination port — a client that builds its URI from an unset port "
                "variable dials port 0 (seed 002); write the port explicitly"
            )
        return ParsedTarget(scheme, parts.hostname, port if port is not None else 80, parts.path or "/")
    host, sep, port_s = text.rpartition(":")
    if not sep:
        raise ValueError(f"{text}: no port — give HOST:PORT, http://HOST[:PORT]/ or ws://HOST[:PORT]/PATH")
    if not port_s.isdigit() or not 0 <= int(port_s) <= 65535:
        raise ValueError(f"{text}: {port_s!r} is not a port")
    if int(port_s) == 0:
        raise ValueError(f"{text}: port 0 is not a destination port (an unset port variable?)")
    return ParsedTarget("tcp", host.strip("[]"), int(port_s), "/")


def _timed(fn: Any) -> tuple[Any, float, BaseException | None]:
    t0 = time.perf_counter()
    try:
        value = fn()
        return value, (time.perf_counter() - t0) * 1000, None
    except BaseException as exc:  # a layer's failure is data, reported below
        if isinstance(exc, KeyboardInterrupt):
            raise
        return None, (time.perf_counter() - t0) * 1000, exc


def _http_get(host: str, port: int, path: str, timeout: float) -> tuple[int, dict[str, str], bytes]:
    deadline = time.monotonic() + timeout  # the layer's, not each recv's: a server dripping its head is bounded too
    with socket.create_connection((host, port), timeout=timeout) as s:
        hh = f"[{host}]" if ":" in host else host
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {hh}:{port}\r\nConnection: close\r\n\r\n".encode())
        buf = bytearray()
        head = read_response_head(s, buf, deadline=deadline)
    return head.status, head.headers, bytes(buf)


def _first_frame(host: str, port: int, path: str, timeout: float) -> int:
    """Read the first part of a multipart/x-mixed-replace stream; return its size."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        deadline = time.monotonic() + timeout
        body = bytearray()
        head = read_response_head(s, body, deadline=deadline)
        if head.status != 200:
            raise ValueError(f"HTTP {head.status} for {path}")
        if "multipart/x-mixed-replace" not in head.headers.get("content-type", "").lower():
            raise ValueError(f"{path} is not an MJPEG stream")
        while True:
            soi = body.find(b"\xff\xd8")
            eoi = body.find(b"\xff\xd9", soi + 2) if soi >= 0 else -1
            if eoi > soi >= 0:
                return eoi + 2 - soi
            if time.monotonic() >= deadline:
                break
            s.settimeout(max(0.001, deadline - time.monotonic()))
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("the stream ended before its first frame")
            body += chunk
        raise TimeoutError("no complete frame before the timeout")


def _cause(layer: str, exc: BaseException, t: ParsedTarget) -> str:
    if layer == "resolve":
        return f"the name {t.host!r} does not resolve: on a soft-AP, use the device's IP or run its DNS responder"
    if layer == "tcp":
        if isinstance(exc, ConnectionRefusedError):
            return f"TCP refused on {t.port}: nothing listens there (wrong port, or the server is not started)"
        if isinstance(exc, TimeoutError):
            return "TCP connect timed out: the host is down, on another network, or a firewall drops the SYN"
        if isinstance(exc, OSError) and exc.errno in (101, 113):
            return "no route to the host: this machine is not on the device's network"
        return f"TCP connect failed: {exc}"
    if layer == "http":
        return f"TCP works but HTTP does not on {t.port}: the port speaks another protocol, or the server is stuck"
    if layer == "websocket":
        return (
            "HTTP works but the WebSocket upgrade failed: wrong path, no WebSocket route, or a proxy strips "
            "Upgrade; on a phone, an OS that flagged the network as having no internet may route the app elsewhere"
        )
    return f"no stream frame: {exc}"


def run(
    target: str,
    timeout: float = 3.0,
    ws_path: str = "/ws",
    stream_path: str | None = "/stream",
) -> ProbeResult:
    """Probe layer by layer; stop at the first failure."""
    result = ProbeResult(target)

    def add(layer: str, ok: bool, ms: float, detail: str, cause: str = "") -> bool:
        result.layers.append(Layer(layer, ok, round(ms, 3), detail, cause))
        if not ok and result.failed_layer is None:
            result.failed_layer = layer
            result.exit_code = EXIT_CODES[layer]
        return ok

    try:
        t = parse_target(target)
    except ValueError as exc:
        add("target", False, 0.0, str(exc), "fix the target: an explicit, non-zero port")
        return result
    add("target", True, 0.0, f"{t.scheme}://{t.host}:{t.port}{t.path if t.scheme != 'tcp' else ''}")

    infos, ms, err = _timed(lambda: socket.getaddrinfo(t.host, t.port, type=socket.SOCK_STREAM))
    if err is not None or not infos:
        add("resolve", False, ms, str(err), _cause("resolve", err or OSError("no address"), t))
        return result
    addr = infos[0][4][0]
    add("resolve", True, ms, addr)

    def tcp() -> None:
        with socket.create_connection((addr, t.port), timeout=timeout):
            pass

    _, ms, err = _timed(tcp)
    if err is not None:
        add("tcp", False, ms, f"{type(err).__name__}: {err}", _cause("tcp", err, t))
        return result
    add("tcp", True, ms, f"connected to {addr}:{t.port}")
    if t.scheme == "tcp":
        return result

    if t.scheme == "http":
        got, ms, err = _timed(lambda: _http_get(addr, t.port, t.path, timeout))
        if err is not None:
            add("http", False, ms, f"{type(err).__name__}: {err}", _cause("http", err, t))
            return result
        status, headers, _body = got
        ok = status < 500
        add(
            "http",
            ok,
            ms,
            f"HTTP {status} {headers.get('content-type', '')}".strip(),
            "" if ok else f"the server answered {status}: it is up but failing",
        )
        if not ok:
            return result
        ws_target = ws_path
    else:
        ws_target = t.path

    def ws_echo() -> str:
        from websockets.sync.client import connect

        host = f"[{addr}]" if ":" in addr else addr
        with connect(f"ws://{host}:{t.port}{ws_target}", open_timeout=timeout, close_timeout=timeout) as ws:
            ws.send("tcp-core probe")
            reply = ws.recv(timeout=timeout)
            return f"upgrade ok, echo {'ok' if reply == 'tcp-core probe' else f'differs: {reply!r:.40}'}"

    detail, ms, err = _timed(ws_echo)
    if err is not None:
        add("websocket", False, ms, f"{type(err).__name__}: {err}", _cause("websocket", err, t))
        return result
    add("websocket", True, ms, str(detail))

    if t.scheme == "http" and stream_path:
        size, ms, err = _timed(lambda: _first_frame(addr, t.port, stream_path, timeout))
        if err is not None:
            add("stream", False, ms, f"{type(err).__name__}: {err}", _cause("stream", err, t))
            return result
        add("stream", True, ms, f"first frame {size} bytes")
    return result


def report_text(r: ProbeResult) -> str:
    """One line per layer, then the verdict."""
    lines = []
    for layer in r.layers:
        mark = "ok  " if layer.ok else "FAIL"
        lines.append(f"{mark} {layer.layer:<9} {layer.ms:8.1f} ms  {layer.detail}")
        if layer.cause:
            lines.append(f"     likely cause: {layer.cause}")
    lines.append("all layers work" if r.failed_layer is None else f"first failing layer: {r.failed_layer}")
    return "\n".join(lines)


def report_json(r: ProbeResult) -> str:
    """The result as one JSON object."""
    return json.dumps(asdict(r))
