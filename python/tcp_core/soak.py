"""`tcp-core soak`: the seed-001 load (a new connection per request, at an interval) against any server or device.

Targets: ``HOST:PORT`` (raw TCP: send a request, success when the answer arrives) or ``http://HOST[:PORT]/path``
(a GET; the response is read by its Content-Length or chunked framing, then the client closes, as browsers do).
With ``--source-port P`` the client asks for the same source port every time, as the seed's browser did, and moves
to the next port of a pool only when its own OS refuses that port (it holds the TIME-WAIT itself, as it should).
Failures are classed: refused, reset, stalled (nothing answered within the stall window), timed out, other.
"""

from __future__ import annotations

import errno
import json
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from .httphead import read_response_head

FAILURE_CLASSES = ("refused", "reset", "stalled", "timed_out", "port_exhausted", "other")


@dataclass(frozen=True)
class Target:
    """Where and how to send requests."""

    host: str
    port: int
    http_path: str | None  # None: raw TCP

    @staticmethod
    def parse(text: str) -> Target:
        """Parse ``HOST:PORT`` or ``http://HOST[:PORT]/path``; a missing or zero port is an error, never port 0."""
        if text.startswith("http://"):
            parts = urlsplit(text)
            if not parts.hostname:
                raise ValueError(f"{text}: no host")
            port = parts.port if parts.port is not None else 80
            if port == 0:
                raise ValueError(f"{text}: port 0 is not a destination port")
            return Target(parts.hostname, port, (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        if "://" in text:
            raise ValueError(f"{text}: only http:// URLs and HOST:PORT are supported")
        host, sep, port_s = text.rpartition(":")
        if not sep or not port_s.isdigit():
            raise ValueError(f"{text}: expected HOST:PORT (raw TCP) or an http:// URL")
        port = int(port_s)
        if not 0 < port < 65536:
            raise ValueError(f"{text}: port {port} is not a destination port")
        return Target(host.strip("[]"), port, None)


@dataclass
class SoakResult:
    """Counts, latency percentiles (ms) and failures by class."""

    target: str
    requests: int
    ok: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    source_ports_used: int = 0
    elapsed_s: float = 0.0
    first_failures: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """Requests that did not succeed."""
        return sum(self.failures.values())


class _PortPool:
    """Browser-like source ports: the same port while the OS grants it, the next one when it refuses."""

    def __init__(self, first: int, size: int) -> None:
        self.first = first
        self.size = max(1, min(size, 65536 - first))  # first..65535 at most: past the last port bind() would fail
        self.current = first
        self.used = {first}
        self.lock = threading.Lock()

    def get(self) -> int:
        with self.lock:
            return self.current

    def refused(self, port: int) -> int | None:
        with self.lock:
            if port == self.current:
                nxt = self.current + 1
                if nxt >= self.first + self.size:
                    nxt = self.first  # wrap: the oldest TIME-WAIT may have expired
                self.current = nxt
                self.used.add(nxt)
            return self.current


def _classify(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "reset"
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNREFUSED,):
        return "refused"
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE):
        return "reset"
    return "other"


def _read_http_response(sock: socket.socket, deadline: float) -> None:
    """Read one HTTP response by its framing; raise on a short or malformed response."""
    rest = bytearray()
    headers = read_response_head(sock, rest, deadline=deadline).headers
    body = bytes(rest)
    if "content-length" in headers:
        need = int(headers["content-length"])
        while len(body) < need:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("closed inside the body")
            body += chunk
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while not body.endswith(b"0\r\n\r\n"):
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("closed inside a chunked body")
            body += chunk
    else:
        while True:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                return
            body += chunk


def one_request(
    target: Target,
    index: int,
    stall_s: float,
    timeout_s: float,
    pool: _PortPool | None,
    payload: bytes,
    close_mode: bool = False,
) -> tuple[str | None, float, str]:
    """One exchange on a new connection. Returns (failure class or None, latency in ms, detail).

    close_mode: the request asks the server to close (HTTP: Connection: close) and the client reads until the
    server's FIN before it closes, so the server closes first (HTTP/1.0 tools, read-to-EOF loops)."""
    t0 = time.monotonic()
    family = socket.AF_INET6 if ":" in target.host else socket.AF_INET
    sock: socket.socket | None = None
    for _ in range(pool.size + 1 if pool else 1):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if pool is None:
            break
        port = pool.get()
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("", port))
            sock.settimeout(stall_s)
            sock.connect((target.host, target.port))
            break
        except OSError as exc:
            sock.close()
            sock = None
            if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
                pool.refused(port)  # our own TIME-WAIT holds it: the next port, as a browser does
                continue
            return _fail(exc, t0)
    if sock is None:
        return "port_exhausted", (time.monotonic() - t0) * 1000, "every port of the pool was refused"
    try:
        if pool is None:
            sock.settimeout(stall_s)
            sock.connect((target.host, target.port))
        deadline = t0 + timeout_s
        if target.http_path is not None:
            host = f"[{target.host}]" if ":" in target.host else target.host
            conn = "Connection: close\r\n" if close_mode else ""
            req = f"GET {target.http_path} HTTP/1.1\r\nHost: {host}:{target.port}\r\nUser-Agent: tcp-core-soak\r\n"
            req += conn + "\r\n"
            sock.sendall(req.encode())
            sock.settimeout(stall_s)
            first = sock.recv(1, socket.MSG_PEEK)
            if not first:
                raise ConnectionResetError("closed without answering")
            _read_http_response(sock, deadline)
        else:
            sock.sendall(payload + b" %d\n" % index)
            sock.settimeout(stall_s)
            got = sock.recv(65536)
            if not got:
                raise ConnectionResetError("closed without answering")
        if close_mode:
            _read_to_eof(sock, deadline)
        return None, (time.monotonic() - t0) * 1000, ""
    except TimeoutError as exc:
        elapsed = time.monotonic() - t0
        cls = "stalled" if elapsed < timeout_s else "timed_out"
        return cls, elapsed * 1000, str(exc) or "no answer"
    except (OSError, ValueError) as exc:
        return _fail(exc, t0)
    finally:
        sock.close()  # the client closes first, as a browser does: TIME-WAIT lands here


def _read_to_eof(sock: socket.socket, deadline: float) -> None:
    """Read and discard until the server's FIN (bounded by the exchange deadline); an RST raises an error."""
    while True:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        if not sock.recv(65536):
            return


def _fail(exc: BaseException, t0: float) -> tuple[str, float, str]:
    if isinstance(exc, TimeoutError):
        return "stalled", (time.monotonic() - t0) * 1000, "connect not answered"
    return _classify(exc), (time.monotonic() - t0) * 1000, f"{type(exc).__name__}: {exc}"


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank."""
    if not values:
        return 0.0
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q * (len(s) - 1))))
    return round(s[k], 3)


def run(
    target_text: str,
    requests: int = 1000,
    interval_s: float = 0.15,
    concurrency: int = 1,
    stall_s: float = 2.0,
    timeout_s: float = 5.0,
    source_port: int | None = None,
    pool_size: int = 64,
    payload: bytes = b"ping",
    progress: bool = False,
    close_mode: bool = False,
) -> SoakResult:
    """Run the soak and return its result (no printing except the optional progress bar on stderr)."""
    target = Target.parse(target_text)
    if requests < 1 or concurrency < 1:
        raise ValueError("requests and concurrency must be at least 1")
    pool = _PortPool(source_port, pool_size) if source_port else None
    result = SoakResult(target_text, requests)
    failures: Counter[str] = Counter()
    latencies: list[float] = []
    lock = threading.Lock()
    next_index = [0]
    t_start = time.monotonic()

    def worker() -> None:
        while True:
            with lock:
                i = next_index[0]
                if i >= requests:
                    return
                next_index[0] += 1
            wait = t_start + i * interval_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                cls, ms, detail = one_request(target, i, stall_s, timeout_s, pool, payload, close_mode)
            except Exception as exc:  # counted, never a silent dead worker: the exit code must say it failed
                cls, ms, detail = "other", 0.0, f"{type(exc).__name__}: {exc}"
            with lock:
                if cls is None:
                    result.ok += 1
                    latencies.append(ms)
                else:
                    failures[cls] += 1
                    if len(result.first_failures) < 10:
                        result.first_failures.append(f"#{i}: {cls} after {ms:.0f} ms ({detail})")

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(timeout=0.2)
        if progress:
            _progress(result.ok, sum(failures.values()), requests, time.monotonic() - t_start)
    if progress:
        sys.stderr.write("\n")
    result.failures = {k: failures[k] for k in FAILURE_CLASSES if failures[k]}
    result.latency_ms = {
        "p50": percentile(latencies, 0.5),
        "p90": percentile(latencies, 0.9),
        "p99": percentile(latencies, 0.99),
        "max": round(max(latencies), 3) if latencies else 0.0,
    }
    result.source_ports_used = len(pool.used) if pool else 0
    result.elapsed_s = round(time.monotonic() - t_start, 3)
    return result


def progress_line(ok: int, failed: int, total: int, elapsed_s: float, width: int = 30) -> str:
    """One frame of the progress bar: done/total, ok, failed, the rate so far and the time left at that rate."""
    done = ok + failed
    filled = int(width * done / total)
    bar = "#" * filled + "." * (width - filled)
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    eta = f"{(total - done) / rate:.0f} s" if rate > 0 else "?"
    return f"[{bar}] {done}/{total}  ok {ok}  failed {failed}  {rate:.1f} req/s  ETA {eta}"


def _progress(ok: int, failed: int, total: int, elapsed_s: float) -> None:
    # Redrawn in place with \r: only for a terminal (run() is asked for it only when stderr is one).
    sys.stderr.write("\r" + progress_line(ok, failed, total, elapsed_s) + "\x1b[K")
    sys.stderr.flush()


def report_text(r: SoakResult) -> str:
    """A human summary of a result."""
    lines = [
        f"soak {r.target}: {r.ok}/{r.requests} ok, {r.failed} failed in {r.elapsed_s:.1f} s",
        "latency ms: " + ", ".join(f"{k} {v:.1f}" for k, v in r.latency_ms.items()),
    ]
    if r.failures:
        lines.append("failures: " + ", ".join(f"{k} {v}" for k, v in r.failures.items()))
        lines.extend(f"  {f}" for f in r.first_failures)
    if r.source_ports_used:
        lines.append(f"source ports used: {r.source_ports_used}")
    return "\n".join(lines)


def report_json(r: SoakResult) -> str:
    """The result as one JSON object."""
    d = asdict(r)
    d["failed"] = r.failed
    return json.dumps(d)
