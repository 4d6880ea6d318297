#!/usr/bin/env python3
"""tcp_core's HTTP service (`tcp-core serve`) side by side with nginx (one worker), and its MJPEG stream.

The server under test is `tcp-core serve` (python -m tcp_core.cli serve): the HTTP service is C (tc_app.c,
tc_http.c); Python only starts and stops it. The peer is Debian's nginx with one worker, serving the exact bytes
of tcp_core's "/" page (fetched from tcp_core first) as a static file with the same Content-Type, from a config
written into a temporary directory (bench/nginx.conf.in). Servers run on CPU 0 (taskset), wrk and this script on
CPU 1.

Scenarios, each the median of --runs runs (server order alternated between runs):
  keepalive-c50   wrk -t1 -c50: 50 keep-alive connections, GET /                      -> requests/s
  keepalive-c1    wrk -t1 -c1: one keep-alive connection (latency-bound)               -> requests/s
  close-c50       wrk -t1 -c50 -H "Connection: close": a new connection per request    -> requests/s
  mjpeg           4 viewers of /stream at 30 fps plus a fifth that never reads (tcp_core only)
  idle            heap bytes tcp_core holds per idle keep-alive connection (/api/status heap.bytes_in_use)
                  and RSS growth per connection of both servers

Exit status: 0 when everything ran and every response was right (speed never fails a run); 1 when a server or
wrk failed to run, or a response was wrong (status, body, Content-Type, wrk errors, a broken MJPEG frame).

Usage: python3 bench/http_bench.py [--quick] [--json] [--runs N] [--duration S] [--no-nginx] [--no-time-wait]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
NGINX_TEMPLATE = BENCH / "nginx.conf.in"
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
IO_TIMEOUT_S = 5.0
TC_MAX_CONNS = 256  # tcp-core serve's default (16) would evict wrk's 50 connections and the 100 idle ones
# The /api/status handler allocates its reply buffer before it reads the heap counter (tc_app.c api_status:
# 2048 + 320 bytes per registered socket), so the figure it reports includes that buffer: subtracted here.
STATUS_BUF_BASE = 2048
STATUS_BUF_PER_SOCKET = 320
MJPEG_VIEWERS = 4
MJPEG_FPS = 30
MJPEG_BOUNDARY = b"--tcpcoreframe\r\n"
NOISE_WAIT_S = 3.0  # pause before running a disturbed run again
STALLED_RCVBUF = 4096  # the viewer that never reads also asks for a small receive buffer, so its queue fills
NETNS_ENV = "TC_HTTP_BENCH_NETNS"  # set when this script runs itself inside its --no-time-wait namespace
WRK_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,'
    .. '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\\n', summary.requests, summary.duration,
    summary.bytes, e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


class BenchError(Exception):
    """Something failed to run, or a response was wrong: the run exits 1."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- processes ----


@dataclass
class Pinning:
    """The server on one CPU and the load (wrk, this script) on another, or nothing when that is impossible."""

    server: list[str] = field(default_factory=list)
    load: list[str] = field(default_factory=list)
    note: str = "not pinned"


def choose_pinning(enabled: bool) -> Pinning:
    cpus = sorted(os.sched_getaffinity(0))
    taskset = shutil.which("taskset")
    if not enabled:
        return Pinning(note="not pinned (--no-pin)")
    if taskset is None or len(cpus) < 2:
        return Pinning(note="not pinned (needs taskset and 2 CPUs)")
    os.sched_setaffinity(0, {cpus[1]})  # this script drives the MJPEG viewers and the idle connections
    return Pinning(
        [taskset, "-c", str(cpus[0])],
        [taskset, "-c", str(cpus[1])],
        f"servers on CPU {cpus[0]}, wrk and the viewers on CPU {cpus[1]} (taskset)",
    )


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine so far, all CPUs (the first line of /proc/stat), without interrupt
    time: the loopback traffic's softirq work is the benchmark's own and is charged to no process."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = f[:8]
    return (user + nice + system + steal) / CLK_TCK


def children_cpu() -> float:
    """CPU seconds of this script's waited-for children (wrk) so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def time_wait_sides(port: int) -> tuple[int, int]:
    """TIME-WAIT sockets of this namespace with `port` as local port (the server's side) and as remote port (the
    client's side): who closed first."""
    server = client = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for ln in lines:
            f = ln.split()
            if f[3] != "06":
                continue
            server += int(f[1].rsplit(":", 1)[1], 16) == port
            client += int(f[2].rsplit(":", 1)[1], 16) == port
    return server, client


def proc_children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(x) for x in (task / "children").read_text().split()]
    except OSError:
        pass
    return out


def proc_rss(pid: int) -> int:
    try:
        for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Server:
    """A server process: started pinned, read line by line, stopped by signal; CPU and RSS of its process tree."""

    def __init__(self, name: str, cmd: list[str], log_path: Path, stop_signal: int = signal.SIGTERM) -> None:
        self.name = name
        self.cmd = cmd
        self.port = 0
        self.stop_signal = stop_signal
        self.log_path = log_path
        self.out_lines: list[str] = []
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        self._buf = b""

    def readline(self, timeout_s: float) -> str | None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    return None
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        text = line.decode(errors="replace")
        self.out_lines.append(text)
        return text

    def pids(self) -> list[int]:
        """The server's own process and its children (nginx: the master and its worker)."""
        return [self.proc.pid, *proc_children(self.proc.pid)]

    def cpu(self) -> float:
        return sum(proc_cpu(p) for p in self.pids())

    def rss(self) -> int:
        """RSS of the process that holds the connections: nginx's worker, tcp_core's only process."""
        kids = proc_children(self.proc.pid)
        return proc_rss(kids[0] if kids else self.proc.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
        try:
            rc = self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = -9
        while self.readline(0.2) is not None:  # keep the stop report (tcp-core serve prints what it freed)
            pass
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
        return rc


def start_tcp_core(pin: Pinning, tmp: Path, stream_fps: int | None = None) -> Server:
    """`tcp-core serve` with only the HTTP service on a free port; with stream_fps the same C services are started
    through tcp_core.App (the Python API the CLI wraps), whose stream_fps the CLI does not expose."""
    if stream_fps is None:
        cmd = [sys.executable, "-m", "tcp_core.cli", "serve", "--host", HOST, "--http-port", "0"]
        cmd += ["--echo-port", "-1", "--max-conns", str(TC_MAX_CONNS)]
        name = "tcp_core"
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--serve-app", str(stream_fps)]
        name = f"tcp_core-{stream_fps}fps"
    srv = Server(name, pin.server + cmd, tmp / f"{name}.log", signal.SIGINT)
    deadline = time.monotonic() + START_TIMEOUT_S
    while (line := srv.readline(max(deadline - time.monotonic(), 0.0))) is not None:
        m = re.match(r"^http\s+http://[^/]*:(\d+)/", line)
        if m:
            srv.port = int(m.group(1))
        if line.startswith("serving on"):
            break
    if not srv.port or not srv.alive():
        srv.stop()
        raise BenchError(f"{name} did not start: {srv.out_lines} (see {srv.log_path})")
    return srv


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def start_nginx(pin: Pinning, tmp: Path, body: bytes, content_type: str) -> Server:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise BenchError("nginx not found (apt-get install nginx-light)")
    ndir = tmp / "nginx"
    (ndir / "www").mkdir(parents=True)
    (ndir / "www" / "index.html").write_bytes(body)
    for d in (tmp, ndir, ndir / "www"):
        d.chmod(0o755)  # the worker runs as nobody when nginx is started as root
    (ndir / "www" / "index.html").chmod(0o644)
    port = free_port()
    conf = NGINX_TEMPLATE.read_text()
    for key, value in (("DIR", str(ndir)), ("PORT", str(port)), ("CONTENT_TYPE", content_type)):
        conf = conf.replace(f"@{key}@", value)
    (ndir / "nginx.conf").write_text(conf)
    cmd = [nginx, "-p", str(ndir), "-c", str(ndir / "nginx.conf"), "-e", str(ndir / "error.log")]
    srv = Server("nginx", pin.server + cmd, tmp / "nginx.log", signal.SIGQUIT)
    srv.port = port
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not srv.alive():
            break
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                if proc_children(srv.proc.pid):
                    return srv
        except OSError:
            pass
        time.sleep(0.05)
    srv.stop()
    err = (ndir / "error.log").read_text() if (ndir / "error.log").exists() else ""
    raise BenchError(f"nginx did not start on port {port}: {err.strip()}")


# ---- HTTP by hand (checks, /api/status, idle connections) ----


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    raw_len: int


def read_response(sock: socket.socket) -> Response:
    """One HTTP/1.1 response framed by Content-Length (both servers' "/" and /api/status are)."""
    buf = b""
    sock.settimeout(IO_TIMEOUT_S)
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise BenchError("the server closed before the response head")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
    if not m:
        raise BenchError(f"not an HTTP response: {lines[0][:60]!r}")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    if "content-length" not in headers:
        raise BenchError(f"response without Content-Length: {lines[:4]}")
    need = int(headers["content-length"])
    while len(body) < need:
        chunk = sock.recv(65536)
        if not chunk:
            raise BenchError("the server closed inside the body")
        body += chunk
    if len(body) > need:
        raise BenchError("more bytes than Content-Length")
    return Response(int(m.group(1)), headers, body, len(head) + 4 + need)


def request(sock: socket.socket, path: str, close: bool = False) -> Response:
    extra = "Connection: close\r\n" if close else ""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n{extra}\r\n".encode())
    return read_response(sock)


def fetch(port: int, path: str, close: bool = False) -> Response:
    with socket.create_connection((HOST, port), timeout=IO_TIMEOUT_S) as s:
        return request(s, path, close)


def tc_status(sock: socket.socket) -> dict[str, Any]:
    r = request(sock, "/api/status")
    if r.status != 200:
        raise BenchError(f"/api/status answered {r.status}")
    doc: dict[str, Any] = json.loads(r.body)
    return doc


def tc_heap_net(doc: dict[str, Any]) -> int:
    """heap.bytes_in_use without the status handler's own reply buffer (see STATUS_BUF_BASE)."""
    return int(doc["heap"]["bytes_in_use"]) - (STATUS_BUF_BASE + STATUS_BUF_PER_SOCKET * int(doc["count"]))


# ---- wrk ----


@dataclass(frozen=True)
class Scenario:
    name: str
    conns: int
    close: bool
    what: str


SCENARIOS = (
    Scenario("keepalive-c50", 50, False, "wrk -t1 -c50, keep-alive, GET /"),
    Scenario("keepalive-c1", 1, False, "wrk -t1 -c1, keep-alive, GET / (one request in flight)"),
    Scenario("close-c50", 50, True, 'wrk -t1 -c50 -H "Connection: close": a new connection per request'),
)


@dataclass
class Sample:
    server: str
    rps: float
    per_cpu_s: float | None
    server_cpu: float
    background: float  # cores kept busy by everything but the server and wrk: other jobs on the machine
    tw_server: int  # TIME-WAIT sockets on the server's side right after the run (it closed first)
    tw_client: int  # ... and on wrk's side
    p50_ms: float
    p99_ms: float
    wrk: dict[str, Any]


def run_wrk(
    pin: Pinning, lua: Path, srv: Server, conns: int, duration: int, close: bool, expect_len: int
) -> tuple[Sample, list[str]]:
    """One wrk run against srv; the problems list names errors and responses of the wrong size."""
    url = f"http://{HOST}:{srv.port}/"
    cmd = [*pin.load, "wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--timeout", "5s", "-s", str(lua), url]
    if close:
        cmd += ["-H", "Connection: close"]
    cpu0, t0, m0, w0 = srv.cpu(), time.monotonic(), machine_busy(), children_cpu()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=False)
    cpu1, t1, m1, w1 = srv.cpu(), time.monotonic(), machine_busy(), children_cpu()
    tw_server, tw_client = time_wait_sides(srv.port)
    problems: list[str] = []
    found = [ln[8:] for ln in res.stdout.splitlines() if ln.startswith("WRKJSON ")]
    if res.returncode != 0 or not found:
        raise BenchError(f"wrk failed ({res.returncode}): {res.stderr.strip()} {res.stdout.strip()[-300:]}")
    w: dict[str, Any] = json.loads(found[-1])
    errors = {k: w[k] for k in ("connect", "read", "write", "status", "timeout") if w[k]}
    if errors:
        problems.append(f"{srv.name} -c{conns}{' close' if close else ''}: wrk errors {errors}")
    if w["requests"] == 0:
        problems.append(f"{srv.name} -c{conns}: no request completed")
    else:
        per_req = w["bytes"] / w["requests"]
        # wrk's byte count can hold a few responses that were in flight when it stopped: allow 1 %.
        if abs(per_req - expect_len) > 0.01 * expect_len:
            problems.append(f"{srv.name} -c{conns}: {per_req:.1f} bytes per response, expected {expect_len}")
    if not srv.alive():
        problems.append(f"{srv.name} died during wrk -c{conns}")
    secs = w["duration_us"] / 1e6
    cpu = cpu1 - cpu0
    wall = max(t1 - t0, 1e-9)
    background = max((m1 - m0 - cpu - (w1 - w0)) / wall, 0.0)
    return (
        Sample(
            srv.name,
            w["requests"] / secs if secs > 0 else 0.0,
            w["requests"] / cpu if cpu > 0 else None,
            cpu / wall,
            background,
            tw_server,
            tw_client,
            w["p50_us"] / 1000,
            w["p99_us"] / 1000,
            w,
        ),
        problems,
    )


# ---- idle connections ----


def idle_cost(srv: Server, is_tc: bool, count: int) -> dict[str, Any]:
    """Open `count` keep-alive connections, one request each, then hold them idle and see what they cost."""
    probe = socket.create_connection((HOST, srv.port), timeout=IO_TIMEOUT_S) if is_tc else None
    conns: list[socket.socket] = []
    try:
        before = tc_status(probe) if probe else None
        rss0 = srv.rss()
        for _ in range(count):
            s = socket.create_connection((HOST, srv.port), timeout=IO_TIMEOUT_S)
            conns.append(s)
            r = request(s, "/")
            if r.status != 200:
                raise BenchError(f"{srv.name}: idle connection got {r.status}")
        time.sleep(0.3)
        after = tc_status(probe) if probe else None
        rss1 = srv.rss()
        dropped = 0
        for s in conns:  # still open, nothing unexpected to read: an idle connection must be kept, not dropped
            s.setblocking(False)
            try:
                if s.recv(1) == b"":
                    dropped += 1
            except BlockingIOError:
                pass
            except OSError:
                dropped += 1
        out: dict[str, Any] = {
            "connections": count,
            "dropped": dropped,
            "rss_per_conn": (rss1 - rss0) / count,
        }
        if before is not None and after is not None:
            out["heap_before"] = tc_heap_net(before)
            out["heap_after"] = tc_heap_net(after)
            out["heap_per_conn"] = (out["heap_after"] - out["heap_before"]) / count
            out["sockets_before"] = before["count"]
            out["sockets_after"] = after["count"]
        return out
    finally:
        for s in conns:
            s.close()
        if probe:
            probe.close()


# ---- MJPEG ----


class Viewer:
    """An HTTP/1.1 /stream viewer: de-chunks the body, checks every part (boundary, Content-Length, JPEG markers),
    and notes when each frame was complete."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=IO_TIMEOUT_S)
        self.sock.sendall(f"GET /stream HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        self.sock.setblocking(False)
        self.buf = b""
        self.head_done = False
        self.times: list[float] = []
        self.bad: list[str] = []
        self.eof = False

    def feed(self) -> None:
        try:
            chunk = self.sock.recv(262144)
        except BlockingIOError:
            return
        except OSError as exc:
            self.bad.append(f"read: {exc}")
            self.eof = True
            return
        if not chunk:
            self.eof = True
            return
        self.buf += chunk
        now = time.monotonic()
        if not self.head_done:
            if b"\r\n\r\n" not in self.buf:
                return
            head, _, self.buf = self.buf.partition(b"\r\n\r\n")
            text = head.decode("latin-1").lower()
            if not text.startswith("http/1.1 200") or "multipart/x-mixed-replace" not in text:
                self.bad.append(f"bad head: {text[:80]!r}")
            if "transfer-encoding: chunked" not in text:
                self.bad.append("HTTP/1.1 stream not chunked")
            self.head_done = True
        while True:
            eol = self.buf.find(b"\r\n")
            if eol < 0:
                return
            size = int(self.buf[:eol], 16)
            if len(self.buf) < eol + 2 + size + 2:
                return
            part = self.buf[eol + 2 : eol + 2 + size]
            if self.buf[eol + 2 + size : eol + 4 + size] != b"\r\n":
                self.bad.append("chunk not ended by CRLF")
            self.buf = self.buf[eol + 4 + size :]
            if size == 0:
                self.eof = True
                return
            self.check_part(part)
            self.times.append(now)

    def check_part(self, part: bytes) -> None:
        if not part.startswith(MJPEG_BOUNDARY):
            self.bad.append("part without boundary")
            return
        head, _, rest = part[len(MJPEG_BOUNDARY) :].partition(b"\r\n\r\n")
        m = re.search(rb"content-length:\s*(\d+)", head.lower())
        if not m or len(rest) != int(m.group(1)) + 2 or not rest.endswith(b"\r\n"):
            self.bad.append("part length does not match its Content-Length")
            return
        jpeg = rest[:-2]
        if not (jpeg.startswith(b"\xff\xd8") and jpeg.endswith(b"\xff\xd9")):
            self.bad.append("frame is not a whole JPEG")


def mjpeg_run(srv: Server, seconds: float, fps: int) -> dict[str, Any]:
    period_ms = 1000 // fps  # tc_app.c stream_produce's period
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF)
    stalled.settimeout(IO_TIMEOUT_S)
    stalled.connect((HOST, srv.port))
    stalled.sendall(f"GET /stream HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    stalled_port = stalled.getsockname()[1]
    viewers = [Viewer(srv.port) for _ in range(MJPEG_VIEWERS)]
    t0, m0, c0, s0 = time.monotonic(), machine_busy(), proc_cpu(os.getpid()), srv.cpu()
    end = t0 + seconds
    try:
        while (now := time.monotonic()) < end:
            live = [v for v in viewers if not v.eof]
            if not live:
                break
            ready, _, _ = select.select([v.sock for v in live], [], [], end - now)
            for v in live:
                if v.sock in ready:
                    v.feed()
        wall = max(time.monotonic() - t0, 1e-9)
        server_cpu = (srv.cpu() - s0) / wall
        background = max((machine_busy() - m0) / wall - server_cpu - (proc_cpu(os.getpid()) - c0) / wall, 0.0)
        with socket.create_connection((HOST, srv.port), timeout=IO_TIMEOUT_S) as probe:
            doc = tc_status(probe)
    finally:
        for v in viewers:
            v.sock.close()
    stalled_entry = next((s for s in doc["sockets"] if s["peer"].endswith(f":{stalled_port}")), None)
    stalled.close()
    per_viewer = []
    for v in viewers:
        gaps = [(b - a) * 1000 for a, b in zip(v.times, v.times[1:], strict=False)]
        # Counted from the first frame: the first one is sent at once, the rest every period_ms.
        span = (v.times[-1] - v.times[0]) if len(v.times) > 1 else 0.0
        late = sum(1 for g in gaps if g > 1.5 * period_ms)
        per_viewer.append(
            {
                "frames": len(v.times),
                "fps": (len(v.times) - 1) / span if span > 0 else 0.0,
                "late": late,
                "late_pct": 100.0 * late / max(len(gaps), 1),
                "max_gap_ms": max(gaps) if gaps else 0.0,
                "p99_gap_ms": sorted(gaps)[int(0.99 * (len(gaps) - 1))] if gaps else 0.0,
                "errors": v.bad[:5],
                "ended_early": v.eof,
            }
        )
    return {
        "fps_asked": fps,
        "period_ms": period_ms,
        "seconds": seconds,
        "viewers": per_viewer,
        "stalled": {
            "found": stalled_entry is not None,
            "queued": stalled_entry["queued"] if stalled_entry else None,
            "bytes_out": stalled_entry["bytes_out"] if stalled_entry else None,
            "state": stalled_entry["state"] if stalled_entry else None,
        },
        "heap_bytes_in_use": tc_heap_net(doc),
        "server_cpu": server_cpu,
        "background": background,
    }


# ---- the run ----


def check_same_page(tc: Server, ng: Server | None) -> tuple[bytes, str, dict[str, int]]:
    """Fetch "/" from tcp_core (keep-alive and close), check it, and check nginx answers the same body and type.
    Returns the body, its Content-Type and each server's response length per mode (for wrk's byte check)."""
    lengths: dict[str, int] = {}
    ka = fetch(tc.port, "/")
    cl = fetch(tc.port, "/", close=True)
    if ka.status != 200 or cl.status != 200 or ka.body != cl.body or not ka.body:
        raise BenchError(f"tcp_core's / answered {ka.status}/{cl.status}")
    ctype = ka.headers.get("content-type", "")
    lengths["tcp_core"], lengths["tcp_core-close"] = ka.raw_len, cl.raw_len
    if ng is not None:
        nka = fetch(ng.port, "/")
        ncl = fetch(ng.port, "/", close=True)
        for r in (nka, ncl):
            if r.status != 200 or r.body != ka.body or r.headers.get("content-type") != ctype:
                raise BenchError(
                    f"nginx's / differs from tcp_core's: {r.status} {r.headers.get('content-type')!r} "
                    f"{len(r.body)} bytes vs {ctype!r} {len(ka.body)} bytes"
                )
        lengths["nginx"], lengths["nginx-close"] = nka.raw_len, ncl.raw_len
    return ka.body, ctype, lengths


def median(vals: list[float]) -> float | None:
    return statistics.median(vals) if vals else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    pin = choose_pinning(not args.no_pin)
    if shutil.which("wrk") is None:
        raise BenchError("wrk not found (apt-get install wrk)")
    tmp = Path(tempfile.mkdtemp(prefix="tc_http_bench."))
    lua = tmp / "done.lua"
    lua.write_text(WRK_LUA)
    problems: list[str] = []
    ns = os.environ.get(NETNS_ENV)
    result: dict[str, Any] = {
        "network": f"namespace {ns}, net.ipv4.tcp_max_tw_buckets=0 (no TIME-WAIT)" if ns else "loopback",
        "pinning": pin.note,
        "runs": args.runs,
        "duration_s": args.duration,
        "tmp": str(tmp),
        "scenarios": {},
        "commands": {},
    }
    servers: dict[str, Server] = {}
    try:
        log(f"http_bench: {pin.note}; {args.runs} run(s) of {args.duration} s per scenario")
        tc = start_tcp_core(pin, tmp)
        servers["tcp_core"] = tc
        result["commands"]["tcp_core"] = " ".join(tc.cmd)
        log(f"  tcp_core on port {tc.port}: {' '.join(tc.cmd)}")
        # nginx gets the bytes tcp_core serves: fetched first, then written as nginx's static file.
        body, ctype, _ = check_same_page(tc, None)
        if not args.no_nginx:
            ng = start_nginx(pin, tmp, body, ctype)
            servers["nginx"] = ng
            result["commands"]["nginx"] = " ".join(ng.cmd)
            log(f"  nginx on port {ng.port}: {' '.join(ng.cmd)}")
        _, _, lengths = check_same_page(tc, servers.get("nginx"))
        result["page"] = {"bytes": len(body), "content_type": ctype, "response_bytes": lengths}
        names = list(servers)
        for name in names:  # first-use costs (page faults, nginx's file cache) stay out of the counted runs
            run_wrk(pin, lua, servers[name], 10, 1, False, lengths[name])
        samples: dict[str, dict[str, list[Sample]]] = {s.name: {n: [] for n in names} for s in SCENARIOS}
        for i in range(args.runs):
            order = names if i % 2 == 0 else names[::-1]
            for scen in SCENARIOS:
                for name in order:
                    key = f"{name}-close" if scen.close else name
                    for attempt in range(args.retries + 1):
                        smp, probs = run_wrk(
                            pin, lua, servers[name], scen.conns, args.duration, scen.close, lengths[key]
                        )
                        problems += probs
                        log(
                            f"  run {i + 1}/{args.runs} {scen.name:14} {name:9} {smp.rps:10.0f} req/s  "
                            f"server CPU {smp.server_cpu:.2f}  other jobs {smp.background:.2f}  p99 {smp.p99_ms:.2f} ms"
                        )
                        if smp.background <= args.max_background or attempt == args.retries:
                            break
                        log(f"    disturbed by other jobs: run again in {NOISE_WAIT_S:.0f} s")
                        time.sleep(NOISE_WAIT_S)
                    samples[scen.name][name].append(smp)
        for scen in SCENARIOS:
            entry: dict[str, Any] = {"what": scen.what}
            for name in names:
                ss = samples[scen.name][name]
                entry[name] = {
                    "rps": median([s.rps for s in ss]),
                    "rps_runs": [round(s.rps, 1) for s in ss],
                    "per_cpu_s": median([s.per_cpu_s for s in ss if s.per_cpu_s is not None]),
                    "server_cpu": median([s.server_cpu for s in ss]),
                    "p50_ms": median([s.p50_ms for s in ss]),
                    "p99_ms": median([s.p99_ms for s in ss]),
                    "time_wait_server_side": median([float(s.tw_server) for s in ss]),
                    "time_wait_client_side": median([float(s.tw_client) for s in ss]),
                    "disturbed": sum(1 for s in ss if s.background > args.max_background),
                    "background_max": max(s.background for s in ss),
                }
            result["scenarios"][scen.name] = entry
        idle: dict[str, Any] = {}
        for name in names:
            idle[name] = idle_cost(servers[name], name == "tcp_core", args.idle_conns)
            if idle[name]["dropped"]:
                problems.append(f"{name}: {idle[name]['dropped']} idle connections dropped")
            log(f"  idle {name}: {idle[name]}")
        result["idle"] = idle
    finally:
        for name, srv in servers.items():
            rc = srv.stop()
            if rc != 0:
                problems.append(f"{name} stopped with status {rc} (see {srv.log_path})")
            if name == "tcp_core":
                result["tcp_core_stop"] = [ln for ln in srv.out_lines if ln.startswith(("stopped", "heap"))]
    # MJPEG: tcp_core alone (nginx has no paced stream to compare with).
    mj_runs: list[dict[str, Any]] = []
    for i in range(args.runs):
        srv = start_tcp_core(pin, tmp, MJPEG_FPS)
        result["commands"]["tcp_core_mjpeg"] = " ".join(srv.cmd)
        try:
            mj = mjpeg_run(srv, args.mjpeg_seconds, MJPEG_FPS)
        finally:
            rc = srv.stop()
        if rc != 0:
            problems.append(f"{srv.name} stopped with status {rc}")
        for k, v in enumerate(mj["viewers"]):
            if v["errors"] or v["ended_early"] or v["frames"] == 0:
                problems.append(f"mjpeg viewer {k}: {v['errors']} ended_early={v['ended_early']}")
        if not mj["stalled"]["found"]:
            problems.append("mjpeg: the stalled viewer is not in /api/status (dropped?)")
        fps_s = ", ".join(f"{v['fps']:.1f}" for v in mj["viewers"])
        log(f"  mjpeg run {i + 1}/{args.runs}: fps {fps_s}; late {[v['late'] for v in mj['viewers']]}")
        log(f"    stalled viewer {mj['stalled']}")
        mj_runs.append(mj)
    result["mjpeg_runs"] = mj_runs
    result["problems"] = problems
    if not problems:  # keep the logs and the nginx config only when something went wrong
        shutil.rmtree(tmp, ignore_errors=True)
        result["tmp"] = None
    return result


# ---- report ----


def fmt(v: float | None, digits: int = 0) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def report(res: dict[str, Any]) -> str:
    out = [
        f"tcp_core HTTP vs nginx (1 worker): median of {res['runs']} run(s) x {res['duration_s']} s; {res['pinning']}",
        f"network: {res['network']}",
        f"page: {res['page']['bytes']} bytes, {res['page']['content_type']}; "
        f"response bytes {res['page']['response_bytes']}",
        "",
        f"{'scenario':16} {'metric':14} {'tcp_core':>12} {'nginx':>12} {'tcp_core/nginx':>15}",
    ]
    for name, e in res["scenarios"].items():
        tc, ng = e.get("tcp_core", {}), e.get("nginx", {})
        rows = [("req/s", "rps", 0), ("req/CPU-s", "per_cpu_s", 0), ("p99 ms", "p99_ms", 2)]
        if name.startswith("close"):
            rows += [("TW server side", "time_wait_server_side", 0), ("TW wrk side", "time_wait_client_side", 0)]
        for label, key, dig in rows:
            first = name if label == "req/s" else ""
            out.append(
                f"{first:16} {label:14} {fmt(tc.get(key), dig):>12} {fmt(ng.get(key), dig):>12} "
                f"{ratio(tc.get(key), ng.get(key)):>15}"
            )
    for name, e in res["scenarios"].items():
        for srv in ("tcp_core", "nginx"):
            if e.get(srv, {}).get("disturbed"):
                out.append(
                    f"  warning: {name}/{srv}: {e[srv]['disturbed']} run(s) kept although other jobs kept up to "
                    f"{e[srv]['background_max']:.2f} cores busy"
                )
    idle = res.get("idle", {})
    if idle:
        tc, ng = idle.get("tcp_core", {}), idle.get("nginx", {})
        n = tc.get("connections", 0)
        out.append(
            f"{'idle x' + str(n):16} {'heap B/conn':14} {fmt(tc.get('heap_per_conn'), 1):>12} {'-':>12} {'-':>15}"
        )
        out.append(
            f"{'':16} {'RSS B/conn':14} {fmt(tc.get('rss_per_conn'), 0):>12} {fmt(ng.get('rss_per_conn'), 0):>12} "
            f"{ratio(tc.get('rss_per_conn'), ng.get('rss_per_conn')):>15}"
        )
    mj = res.get("mjpeg_runs", [])
    if mj:
        fps = [v["fps"] for r in mj for v in r["viewers"]]
        late = [v["late_pct"] for r in mj for v in r["viewers"]]
        gaps = [v["max_gap_ms"] for r in mj for v in r["viewers"]]
        frames = [v["frames"] for r in mj for v in r["viewers"]]
        st = [r["stalled"] for r in mj]
        r0 = mj[0]
        out += [
            "",
            f"MJPEG (tcp_core only): {MJPEG_VIEWERS} viewers of /stream asking {r0['fps_asked']} fps "
            f"(period {r0['period_ms']} ms) for {r0['seconds']} s, plus 1 viewer that never reads; {len(mj)} run(s)",
            f"  frames/s per viewer: min {min(fps):.2f}  median {statistics.median(fps):.2f}  max {max(fps):.2f} "
            f"(frames per viewer: {min(frames)}..{max(frames)})",
            f"  late frames (gap > 1.5 periods): max {max(late):.2f} % of a viewer's frames; "
            f"worst gap {max(gaps):.1f} ms; < 1 %: {'yes' if max(late) < 1.0 else 'NO'}",
            "  stalled viewer (tcp_core queue / bytes written to its socket, from /api/status): "
            + "; ".join(f"{s['queued']} B / {s['bytes_out']} B ({s['state']})" for s in st),
            f"  tcp_core heap while streaming: {', '.join(str(r['heap_bytes_in_use']) for r in mj)} bytes; "
            f"server CPU {', '.join(format(r['server_cpu'], '.3f') for r in mj)} cores; "
            f"other jobs {', '.join(format(r['background'], '.2f') for r in mj)} cores",
        ]
    stop = res.get("tcp_core_stop")
    if stop:
        out.append("tcp_core stop: " + " | ".join(" ".join(s.split()) for s in stop))
    if res.get("problems"):
        out.append("")
        out.append("PROBLEMS:")
        out += [f"  {p}" for p in res["problems"]]
    return "\n".join(out)


# ---- the MJPEG server mode (started by this script itself) ----


def serve_app(fps: int) -> int:
    """The services of `tcp-core serve` through tcp_core.App with stream_fps set (the CLI has no option for it)."""
    from tcp_core.app import App
    from tcp_core.core import Loop, alloc_stats

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    loop = Loop("linux")
    app = App(loop, HOST, echo_port=None, http_port=0, http_max_conns=TC_MAX_CONNS, stream_fps=fps)
    print(f"http     http://{HOST}:{app.http_port}/  (stream_fps {fps})", flush=True)
    print("serving on the linux backend", flush=True)
    while not stop.wait(0.5):
        pass
    r = app.stop(1000)
    loop.close(1000)
    print(f"stopped  http: {r.http.graceful} closed gracefully, {r.http.forced} forced", flush=True)
    print(f"heap     {r.bytes_freed} bytes freed, {alloc_stats('linux').bytes_in_use} bytes left", flush=True)
    return 0


def run_in_netns(argv: list[str]) -> int:
    """Run this script again inside a network namespace of its own (loopback up, no TIME-WAIT), then remove it.

    On loopback both ends share one kernel, and the side that closes first keeps the TIME-WAIT: wrk with tcp_core
    (peer-first), nginx itself. wrk's own TIME-WAIT ports then cap close-c50 for tcp_core only. The setting is
    namespace-local: nothing outside the namespace changes."""
    if os.geteuid() != 0:
        log("http_bench: --no-time-wait needs root (ip netns)")
        return 1
    ns = f"tchttp{os.getpid()}"
    steps = (
        ["ip", "netns", "add", ns],
        ["ip", "-n", ns, "link", "set", "lo", "up"],
        ["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.tcp_max_tw_buckets=0"],
    )
    try:
        for cmd in steps:
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if res.returncode != 0:
                log(f"http_bench: {' '.join(cmd)} failed: {res.stderr.strip()}")
                return 1
        env = dict(os.environ, **{NETNS_ENV: ns})
        cmd = ["ip", "netns", "exec", ns, sys.executable, str(Path(__file__).resolve()), *argv]
        return subprocess.run(cmd, env=env, check=False).returncode
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="runs per scenario, the median is shown (3)")
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run (10)")
    p.add_argument("--mjpeg-seconds", type=float, default=10.0, help="seconds per MJPEG run (10)")
    p.add_argument("--idle-conns", type=int, default=100, help="idle keep-alive connections (100)")
    p.add_argument("--quick", action="store_true", help="1 run of 3 s (MJPEG 3 s)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument("--max-background", type=float, default=0.25, help="other jobs' cores above which a run is redone")
    p.add_argument("--retries", type=int, default=3, help="times a disturbed run is redone (3; --quick: 0)")
    p.add_argument(
        "--no-time-wait",
        action="store_true",
        help="run everything in a new network namespace whose kernel keeps no TIME-WAIT "
        "(net.ipv4.tcp_max_tw_buckets=0; root): close-c50 without wrk's own port limit",
    )
    p.add_argument("--no-nginx", action="store_true", help="tcp_core alone")
    p.add_argument("--no-pin", action="store_true", help="no taskset")
    p.add_argument("--serve-app", type=int, metavar="FPS", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve_app is not None:
        return serve_app(args.serve_app)
    if args.no_time_wait and not os.environ.get(NETNS_ENV):
        return run_in_netns(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.runs, args.duration, args.mjpeg_seconds, args.retries = 1, 3, 3.0, 0
    if args.runs < 1 or args.duration < 1 or not 1 <= args.idle_conns <= TC_MAX_CONNS - 8:
        p.error(f"--runs and --duration must be >= 1, --idle-conns 1..{TC_MAX_CONNS - 8}")
    try:
        res = run(args)
    except BenchError as exc:
        log(f"http_bench: FAILED: {exc}")
        return 1
    print(json.dumps(res, indent=1) if args.json else report(res), flush=True)
    return 1 if res["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
