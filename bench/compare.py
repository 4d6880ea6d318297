#!/usr/bin/env python3
"""tcp_core side by side with nginx, mongoose and libuv on plain loopback, paired per round: one command, one table.

    python3 bench/compare.py [--mongoose-src DIR] [--rounds 5] [--duration 3] [--idle-conns 10000] [--json]
    python3 bench/compare.py --report saved.json     # the table of a saved --json run
    python3 bench/compare.py --veth [--rounds 5]      # tcp_core vs nginx across a veth pair (root)

Pairs (tcp_core first, its peer second; each server one process, pinned to CPU 0, the load on CPU 1):
  http-keepalive-c50  wrk -t1 -c50, keep-alive GET /            bench/tc_http_ws.c  vs nginx (one worker)
  http-close-c50      the same with "Connection: close": a new connection per request
  ws-echo-c1          bench/pingload.c --mode ws, 1 client, 64-byte messages, 1 in flight
                                                                  bench/tc_http_ws.c  vs bench/mg_http_ws.c (mongoose)
  ws-echo-c50         the same with 50 clients
  tcp-echo-c50        bench/pingload.c --mode echo, 50 clients, 64 bytes, 1 in flight
                                                                  bench/tc_echo.c     vs bench/uv_echo.c (libuv)
Every server answers the same bytes (bench/bench_page.h: one 552-byte page; nginx serves those bytes as a file).

Paired rounds: in every round both servers of a pair run the same load back to back, the order alternating from
round to round, so that a change of machine load hits both; each round gives one ratio tcp_core/peer, per wall-clock
second (ops/s) and per CPU-second of the server process (ops per second of user+system time of its threads; nginx:
master + worker). The table shows the median ratio with the min-max of the rounds. Below it, the ratio per
CPU-second of both ends (server + load generator, the same generator for both servers, + the kernel's ksoftirqd
threads): on loopback the kernel work of delivering a segment is done by whichever end happens to run it, so the
server's figure alone can move with the client's share; the both-ends figure cannot. And the ratio per busy
second of the servers' CPU (/proc/stat's cpuN): everything that ran there, the kernel's network work in any context
included.

--veth: on loopback the kernel receives a segment on the sender's CPU, so a server's CPU pays for its client's
receiving and not for its own; a server that sends fewer segments looks cheaper by more than it saves on a device.
With --veth the servers run in one network namespace and the load in another (both created here and removed), joined
by a veth pair whose receive packet steering sends each side's incoming segments to that side's CPU: the server's
CPU pays for its own receiving, as on a device. Only the tcp_core-vs-nginx pairs run; no idle or instruction figures.

Memory: RSS growth per idle connection with --idle-conns (10,000) connections open on a fresh server, each after one
request (HTTP keep-alive: one GET /; echo: one 1-byte echo); RLIMIT_NOFILE is raised for this script and the
servers. tcp_core's own heap per connection (tc_alloc_stats) is shown next to its RSS.

Instructions per operation (load-independent, unlike CPU-seconds): every server runs under
`valgrind --tool=callgrind` and serves a fixed number of operations twice (--ir-ops N and 4N, a fresh server each
time); (Ir(4N) - Ir(N)) / 3N cancels start and stop. User-space instructions only (the kernel's share of a send or
an accept is not in it); counted with the same client and concurrency as the pair (http: 50 keep-alive / new
connections; ws: 1 and 50; echo: 50). --no-callgrind skips it. (perf stat -e instructions would count natively,
but this VM exposes no hardware counters.)

Peers: nginx from Debian (`apt-get install nginx-light`); libuv: libuv1-dev; mongoose is neither on PyPI nor in
Debian: give its source directory (holding mongoose.c and mongoose.h; e.g. a checkout of cesanta/mongoose) with
--mongoose-src DIR or TC_BENCH_MONGOOSE_SRC; without it the mongoose pairs are skipped with a message. Mongoose is
compiled into bench/build/ only, never into the repository; the table names the commit when DIR is a git checkout or
holds a COMMIT file. A missing peer skips its pairs (and says so); it is never an error.

Exit status: 0 when everything that ran answered right (speed never fails a run), 1 when a server failed, died or
answered wrong, 2 when the build failed.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import run as echo_bench  # bench/run.py: the echo programs' build (tc_echo, uv_echo, loadgen)
from _common import (
    HOST,
    BenchError,
    Pinning,
    Server,
    choose_pinning,
    cpu_busy,
    log,
    machine_busy,
    nginx_command,
    proc_children,
    read_response,
    softirq_threads_cpu,
)

BENCH = Path(__file__).resolve().parent
BUILD = BENCH / "build"
CFLAGS = ["-std=c11", "-D_GNU_SOURCE", "-O2", "-Wall", "-Wextra", "-Werror"]
CTYPE = "text/html; charset=utf-8"  # bench_page.h's BENCH_PAGE_CTYPE
NOFILE = 65536
START_TIMEOUT_S = 15.0
LOAD_SLACK_S = 60.0
IDLE_BATCH = 500
VETH_SERVER, VETH_CLIENT = "10.79.0.1", "10.79.0.2"  # --veth: inside namespaces this script creates and removes

# The address the servers listen on: HOST (loopback), or VETH_SERVER with --veth, where main() switches this
# script's thread into the client's namespace and starts the servers in the server's.
server_host = HOST
server_prefix: list[str] = []


# ---- build ----


def sh(cmd: list[str]) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n{res.stderr}")


def git_commit(src: Path) -> str:
    """The mongoose commit: its COMMIT file, or git's HEAD of a checkout, or "unknown"."""
    if (src / "COMMIT").exists():
        return (src / "COMMIT").read_text().strip()
    res = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return res.stdout.strip() if res.returncode == 0 else "unknown"


def build(mongoose_src: Path | None) -> tuple[dict[str, Path], str]:
    """tc_echo, uv_echo (bench/run.py), tc_http_ws, pingload and, with mongoose's source, mg_http_ws."""
    exes = echo_bench.build()
    inc = [f"-I{echo_bench.COMPONENT / d}" for d in ("include", "src", "port/os/posix")]
    srcs = list(map(str, echo_bench.portable_sources()))
    sh(["gcc", *CFLAGS, *inc, str(BENCH / "tc_http_ws.c"), *srcs, "-lpthread", "-o", str(BUILD / "tc_http_ws")])
    sh(["gcc", *CFLAGS, str(BENCH / "pingload.c"), "-o", str(BUILD / "pingload")])
    exes["tc_http_ws"] = BUILD / "tc_http_ws"
    exes["pingload"] = BUILD / "pingload"
    mg_note = "skipped: no --mongoose-src DIR (or TC_BENCH_MONGOOSE_SRC) with mongoose.c and mongoose.h"
    if mongoose_src is not None:
        if not (mongoose_src / "mongoose.c").exists() or not (mongoose_src / "mongoose.h").exists():
            mg_note = f"skipped: {mongoose_src} holds no mongoose.c and mongoose.h"
        else:
            obj = BUILD / "mongoose.o"
            # Their code, their warnings: compiled on its own with -w; our file keeps -Werror.
            sh(["gcc", "-O2", "-w", "-c", str(mongoose_src / "mongoose.c"), "-o", str(obj)])
            sh(["gcc", *CFLAGS, f"-I{mongoose_src}", "-c", str(BENCH / "mg_http_ws.c"), "-o", str(BUILD / "mg.o")])
            sh(["gcc", str(BUILD / "mg.o"), str(obj), "-o", str(BUILD / "mg_http_ws")])
            exes["mg_http_ws"] = BUILD / "mg_http_ws"
            mg_note = f"mongoose {git_commit(mongoose_src)} from {mongoose_src}"
    return exes, mg_note


# ---- servers ----


def start_ready(name: str, cmd: list[str]) -> Server:
    """A bench server that prints "ready PORT"."""
    srv = Server(name, cmd)
    line = srv.readline(START_TIMEOUT_S)
    m = re.match(r"^ready (\d+)$", line or "")
    if m is None:
        srv.stop()
        raise BenchError(f"{name} did not start: {line!r} {srv.stderr.strip()[-300:]}")
    srv.port = int(m.group(1))
    return srv


def start_nginx(prefix: list[str], tmp: Path, body: bytes, master: bool = True) -> Server:
    tmp.chmod(0o755)  # the worker runs as nobody when nginx is started as root
    ndir = Path(tempfile.mkdtemp(prefix="nginx-", dir=tmp)) / "nginx"
    fields = {
        "CONTENT_TYPE": CTYPE,
        "MASTER": "on" if master else "off",
        "RLIMIT_NOFILE": str(NOFILE),
        "WORKER_CONNECTIONS": str(NOFILE // 2),
        "KEEPALIVE_S": "60",
        "HOST": server_host,
    }
    port, cmd = nginx_command(ndir, body, fields)
    srv = Server("nginx", prefix + cmd, signal.SIGQUIT)
    srv.port = port
    deadline = time.monotonic() + START_TIMEOUT_S * (4 if prefix and "valgrind" in prefix[0] else 1)
    while time.monotonic() < deadline and srv.alive():
        try:
            with socket.create_connection((server_host, port), timeout=0.5):
                if not master or proc_children(srv.proc.pid):
                    return srv
        except OSError:
            time.sleep(0.05)
    srv.stop()
    err = (ndir / "error.log").read_text() if (ndir / "error.log").exists() else ""
    raise BenchError(f"nginx did not start on port {port}: {err.strip()}")


def holder_pid(srv: Server) -> int:
    """The process that holds the connections: nginx's worker, or the server itself."""
    kids = proc_children(srv.proc.pid)
    return kids[0] if srv.name == "nginx" and kids else srv.proc.pid


def rss(pid: int) -> int:
    for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
        if ln.startswith("VmRSS:"):
            return int(ln.split()[1]) * 1024
    return 0


def tc_heap(srv: Server) -> int | None:
    """tcp_core's bytes in use (SIGUSR1 -> "stats {json}"), or None for other servers."""
    if not srv.name.startswith("tcp_core"):
        return None
    srv.proc.send_signal(signal.SIGUSR1)
    line = srv.readline(5.0) or ""
    if not line.startswith("stats "):
        return None
    return int(json.loads(line[6:])["bytes_in_use"])


# ---- the servers of each pair ----


@dataclass
class Kind:
    """How to start one server (prefix: taskset, or valgrind) and what it serves."""

    name: str
    start: Callable[[list[str]], Server]
    proto: str  # "http" or "echo"


def kinds(exes: dict[str, Path], tmp: Path, body: bytes) -> dict[str, Kind]:
    out = {
        "tcp_core": Kind(
            "tcp_core", lambda p: start_ready("tcp_core", [*p, str(exes["tc_http_ws"]), "--host", server_host]), "http"
        ),
        "tcp_core-echo": Kind(
            "tcp_core-echo",
            lambda p: start_ready("tcp_core-echo", [*p, str(exes["tc_echo"]), "--port", "0", "--max-conns", "20000"]),
            "echo",
        ),
        "libuv": Kind("libuv", lambda p: start_ready("libuv", [*p, str(exes["uv_echo"]), "--port", "0"]), "echo"),
    }
    if shutil.which("nginx") or Path("/usr/sbin/nginx").exists():
        out["nginx"] = Kind("nginx", lambda p: start_nginx(p, tmp, body, master="valgrind" not in p), "http")
    if "mg_http_ws" in exes:
        out["mongoose"] = Kind("mongoose", lambda p: start_ready("mongoose", [*p, str(exes["mg_http_ws"])]), "http")
    return out


# ---- loads ----


@dataclass(frozen=True)
class Pair:
    name: str
    tc: str
    peer: str
    load: str  # "wrk" or a pingload mode
    conns: int
    what: str


PAIRS = (
    Pair("http-keepalive-c50", "tcp_core", "nginx", "http", 50, "wrk -t1 -c50, keep-alive, GET / (req)"),
    Pair("http-close-c50", "tcp_core", "nginx", "http-close", 50, 'the same, "Connection: close": new conn per req'),
    Pair("ws-echo-c1", "tcp_core", "mongoose", "ws", 1, "1 WebSocket client, 64-byte messages, 1 in flight (echo)"),
    Pair("ws-echo-c50", "tcp_core", "mongoose", "ws", 50, "50 WebSocket clients, 1 in flight each (echo)"),
    Pair("tcp-echo-c50", "tcp_core-echo", "libuv", "echo", 50, "50 TCP clients, 64-byte messages, 1 in flight (echo)"),
)

WRK_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors":%d}\\n', summary.requests,
    summary.duration, summary.bytes, e.connect + e.read + e.write + e.status + e.timeout))
end
"""


@dataclass
class Sample:
    ops: int
    seconds: float
    cpu: float  # server CPU-seconds during the load
    load_cpu: float  # the load generator's CPU-seconds and the kernel's ksoftirqd threads'
    background: float  # cores busy with other jobs meanwhile
    server_cpu_busy: float | None = None  # busy seconds of the server's CPU: all that ran there (pinned runs only)

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0

    @property
    def per_cpu(self) -> float | None:
        return self.ops / self.cpu if self.cpu > 0 else None

    @property
    def per_server_cpu_busy(self) -> float | None:
        busy = self.server_cpu_busy
        return self.ops / busy if busy else None

    @property
    def per_cpu_both(self) -> float | None:
        """Operations per CPU-second of both ends: on loopback either end's kernel may do the other's work."""
        both = self.cpu + self.load_cpu
        return self.ops / both if both > 0 else None


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def reply_len(port: int, close: bool) -> int:
    """The whole response of one GET / (head + body) on this server, as pingload must expect it."""
    req = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n"
    with socket.create_connection((server_host, port), timeout=10) as s:
        s.sendall(req.encode())
        r = read_response(s)
    if r.status != 200:
        raise BenchError(f"port {port}: GET / answered {r.status}")
    return r.raw_len


def load_cmd(pair: Pair, port: int, exes: dict[str, Path], tmp: Path, duration: float, count: int) -> list[str]:
    if pair.load in ("http", "http-close") and count == 0:
        lua = tmp / "wrk.lua"
        lua.write_text(WRK_LUA)
        cmd = ["wrk", "-t1", f"-c{pair.conns}", f"-d{max(round(duration), 1)}s", "--timeout", "5s", "-s", str(lua)]
        cmd.append(f"http://{server_host}:{port}/")
        return cmd + (["-H", "Connection: close"] if pair.load == "http-close" else [])
    cmd = [str(exes["pingload"]), "--mode", pair.load, "--port", str(port), "--conns", str(pair.conns)]
    if pair.load in ("http", "http-close"):
        cmd += ["--reply-len", str(reply_len(port, pair.load == "http-close"))]
    if count:
        return [*cmd, "--count", str(count), "--duration", "300"]
    return [*cmd, "--duration", str(duration)]


def parse_load(out: str) -> tuple[int, float, int]:
    """(operations, seconds, errors) from wrk's WRKJSON line or pingload's JSON line."""
    for ln in reversed(out.splitlines()):
        if ln.startswith("WRKJSON "):
            w = json.loads(ln[8:])
            return int(w["requests"]), w["duration_us"] / 1e6, int(w["errors"])
        if ln.startswith("{"):
            p = json.loads(ln)
            return int(p["ops"]), float(p["seconds"]), int(p["errors"])
    raise BenchError(f"no result from the load generator: {out.strip()[-300:]}")


def measure(srv: Server, cmd: list[str], timeout: float, server_cpu: int | None) -> Sample:
    """One load against srv; server_cpu: the CPU the server is pinned to (None: not pinned)."""
    b0 = cpu_busy(server_cpu) if server_cpu is not None else 0.0
    c0, m0, w0, k0, t0 = srv.cpu(), machine_busy(), children_cpu(), softirq_threads_cpu(), time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    c1, m1, w1, k1, t1 = srv.cpu(), machine_busy(), children_cpu(), softirq_threads_cpu(), time.monotonic()
    b1 = cpu_busy(server_cpu) if server_cpu is not None else 0.0
    ops, secs, errors = parse_load(res.stdout)
    if errors or ops == 0:
        raise BenchError(f"{srv.name}: {ops} operations, {errors} errors ({' '.join(cmd[:3])}): {res.stderr[-300:]}")
    if not srv.alive():
        raise BenchError(f"{srv.name} died during the load")
    cpu = c1 - c0
    background = max((m1 - m0 - cpu - (w1 - w0) - (k1 - k0)) / max(t1 - t0, 1e-9), 0.0)
    return Sample(ops, secs, cpu, w1 - w0 + k1 - k0, background, b1 - b0 if server_cpu is not None else None)


@dataclass
class PairResult:
    pair: Pair
    tc: list[Sample] = field(default_factory=list)
    peer: list[Sample] = field(default_factory=list)
    skipped: str = ""

    def ratios(self, per: str) -> list[float]:
        """tcp_core/peer per round, per "wall" second, "cpu" (server CPU-second), "both" (server + load) or
        "server-cpu" (busy second of the server's CPU)."""
        out = []
        for a, b in zip(self.tc, self.peer, strict=True):
            x, y = {
                "wall": (a.rate, b.rate),
                "cpu": (a.per_cpu, b.per_cpu),
                "both": (a.per_cpu_both, b.per_cpu_both),
                "server-cpu": (a.per_server_cpu_busy, b.per_server_cpu_busy),
            }[per]
            if x and y:
                out.append(x / y)
        return out


def run_pairs(
    pairs: list[Pair], ks: dict[str, Kind], pin: Pinning, exes: dict[str, Path], tmp: Path, args: argparse.Namespace
) -> list[PairResult]:
    results: list[PairResult] = []
    for pair in pairs:
        res = PairResult(pair)
        results.append(res)
        if pair.peer not in ks:
            res.skipped = f"{pair.peer} not available"
            log(f"{pair.name}: skipped ({res.skipped})")
            continue
        servers = {n: ks[n].start(server_prefix + pin.server) for n in (pair.tc, pair.peer)}
        try:
            load = pin.load
            for srv in servers.values():  # unmeasured warm-up: first-use page faults, caches
                measure(srv, load + load_cmd(pair, srv.port, exes, tmp, 1.0, 0), 1.0 + LOAD_SLACK_S, pin.cpu)
            for rnd in range(args.rounds):
                order = [pair.tc, pair.peer] if rnd % 2 == 0 else [pair.peer, pair.tc]
                got: dict[str, Sample] = {}
                for name in order:
                    cmd = load + load_cmd(pair, servers[name].port, exes, tmp, args.duration, 0)
                    got[name] = measure(servers[name], cmd, args.duration + LOAD_SLACK_S, pin.cpu)
                res.tc.append(got[pair.tc])
                res.peer.append(got[pair.peer])
                a, b = got[pair.tc], got[pair.peer]
                log(
                    f"{pair.name} round {rnd + 1}: {pair.tc} {a.rate:,.0f}/s {a.per_cpu or 0:,.0f}/cpu-s, "
                    f"{pair.peer} {b.rate:,.0f}/s {b.per_cpu or 0:,.0f}/cpu-s, background {a.background:.2f}"
                    f"/{b.background:.2f} cores"
                )
        finally:
            for srv in servers.values():
                rc = srv.stop()
                if rc not in (0, -signal.SIGQUIT) and srv.name != "nginx":
                    raise BenchError(f"{srv.name} exited with status {rc}: {srv.stderr.strip()[-300:]}")
    return results


# ---- idle connections ----


def open_idle(port: int, proto: str, count: int) -> list[socket.socket]:
    """count connections, each after one exchange (HTTP: one keep-alive GET /, echo: one byte), left open."""
    socks: list[socket.socket] = []
    want = reply_len(port, False) if proto == "http" else 1
    req = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode() if proto == "http" else b"x"
    while len(socks) < count:
        batch = []
        for _ in range(min(IDLE_BATCH, count - len(socks))):
            s = socket.create_connection((server_host, port), timeout=10)
            s.sendall(req)
            batch.append(s)
        for s in batch:
            got = 0
            while got < want:
                chunk = s.recv(want - got)
                if not chunk:
                    raise BenchError(f"port {port}: an idle connection was closed after {len(socks)}")
                got += len(chunk)
        socks += batch
    return socks


def idle_cost(kind: Kind, pin: Pinning, count: int) -> dict[str, Any]:
    srv = kind.start(pin.server)
    socks: list[socket.socket] = []
    try:
        for s in open_idle(srv.port, kind.proto, 20):  # first-use costs out of the baseline
            s.close()
        time.sleep(0.3)
        pid = holder_pid(srv)
        rss0, heap0 = rss(pid), tc_heap(srv)
        socks = open_idle(srv.port, kind.proto, count)
        time.sleep(0.5)
        rss1, heap1 = rss(pid), tc_heap(srv)
        if not srv.alive():
            raise BenchError(f"{kind.name} died holding {count} idle connections")
        out: dict[str, Any] = {"server": kind.name, "conns": count, "rss_per_conn": (rss1 - rss0) / count}
        if heap0 is not None and heap1 is not None:
            out["heap_per_conn"] = (heap1 - heap0) / count
        log(f"idle {kind.name}: {out}")
        return out
    finally:
        for s in socks:
            s.close()
        srv.stop()


# ---- instructions per operation ----


def instructions(pair: Pair, kind: Kind, exes: dict[str, Path], tmp: Path, pin: Pinning, n: int) -> float | None:
    """Callgrind's Ir of the server for 4n operations minus that for n, over 3n."""
    irs = []
    for ops in (n, 4 * n):
        out = tmp / f"callgrind.{kind.name}.{pair.name}.{ops}"
        prefix = [*pin.server, "valgrind", "--tool=callgrind", "--cache-sim=no", f"--callgrind-out-file={out}"]
        srv = kind.start(prefix)
        try:
            subprocess.run(
                pin.load + load_cmd(pair, srv.port, exes, tmp, 0, ops), capture_output=True, check=True, timeout=600
            )
        finally:
            srv.stop()
        # nginx with master_process off and the others: one process, one file.
        total = 0
        for f in tmp.glob(out.name + "*"):
            for ln in f.read_text().splitlines():
                if ln.startswith("summary:") or ln.startswith("totals:"):
                    total = max(total, int(ln.split()[1]))
        if total == 0:
            return None
        irs.append(total)
    return (irs[1] - irs[0]) / (3 * n)


# ---- report ----


def mmm(vals: list[float]) -> tuple[float, float, float] | None:
    return (statistics.median(vals), min(vals), max(vals)) if vals else None


def fmt_ratio(vals: list[float]) -> str:
    m = mmm(vals)
    return f"{m[0]:.2f}x ({m[1]:.2f}-{m[2]:.2f})" if m else "-"


def fmt_num(vals: list[float]) -> str:
    return f"{statistics.median(vals):,.0f}" if vals else "-"


# The ratios shown under the table: JSON key, title lines.
RATIO_SECTIONS = (
    (
        "ratio_cpu_both",
        (
            "per CPU-second of both ends (server + load generator + ksoftirqd; on loopback the kernel work",
            "of a segment falls to either end, so one end's figure alone can move with the other's share):",
        ),
    ),
    (
        "ratio_server_cpu_busy",
        (
            "per busy second of the servers' CPU (/proc/stat: the server and the kernel's network work done",
            "on that CPU in any context; with --veth that is the server's own receiving, as on a device):",
        ),
    ),
)


def report(doc: dict[str, Any]) -> str:
    lines = [f"tcp_core side by side ({doc['when']}; {doc['setup']})", ""]
    head = ["pair", "tcp_core /s", "peer /s", "ratio /s", "tcp_core /cpu-s", "peer /cpu-s", "ratio /cpu-s", "bg"]
    rows = [head]
    for r in doc["pairs"]:
        if r["skipped"]:
            rows.append([f"{r['name']} vs {r['peer']}", f"skipped: {r['skipped']}", "", "", "", "", "", ""])
            continue
        rows.append(
            [
                f"{r['name']} vs {r['peer']}",
                fmt_num(r["tc_rate"]),
                fmt_num(r["peer_rate"]),
                fmt_ratio(r["ratio_wall"]),
                fmt_num(r["tc_per_cpu"]),
                fmt_num(r["peer_per_cpu"]),
                fmt_ratio(r["ratio_cpu"]),
                f"{statistics.median(r['background']):.2f}",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    for row in rows:
        lines.append(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        )
    lines.append(
        f"medians of {doc['rounds']} paired rounds of {doc['duration']} s, ratios with their min-max; ratio = "
        "tcp_core/peer, >1 is better for tcp_core; bg = median cores busy with other jobs during the runs"
    )
    for key, title in RATIO_SECTIONS:
        rows = [r for r in doc["pairs"] if r.get(key)]  # absent from the JSON of older runs
        if rows:
            lines += ["", *title]
            lines += [f"  {r['name'] + ' vs ' + r['peer']:<28} {fmt_ratio(r[key])}" for r in rows]
    if doc["idle"]:
        lines += ["", f"RSS per idle connection, {doc['idle_conns']:,} connections open (one request/echo each):"]
        for i in doc["idle"]:
            heap = f" (tcp_core heap {i['heap_per_conn']:.0f} B)" if "heap_per_conn" in i else ""
            lines.append(f"  {i['server']:<14} {i['rss_per_conn']:8.0f} B{heap}")
    if doc["instructions"]:
        lines += ["", "user-space instructions per operation (callgrind, fixed operation counts, load-independent):"]
        for r in doc["instructions"]:
            tc, peer = r["tc_ir"], r["peer_ir"]
            ratio = f"{tc / peer:.2f}x" if tc and peer else "-"
            lines.append(
                f"  {r['name']:<20} tcp_core {tc or 0:>9,.0f}  {r['peer']:<9} {peer or 0:>9,.0f}  tcp_core/peer {ratio}"
            )
    lines += ["", doc["mongoose"]]
    return "\n".join(lines)


class Veth:
    """--veth: the servers in one network namespace, this script and its load generators in another, a veth pair
    between them (VETH_SERVER / VETH_CLIENT), and receive packet steering sending each side's incoming segments to
    its own CPU. On loopback the receiving of a segment is done by the sender's CPU, so a server's CPU pays for its
    client's receiving and not for its own; here, as on a device, it pays for its own. Both namespaces are created
    here and removed on exit (the veth pair with them)."""

    CLONE_NEWNET = 0x40000000

    def __init__(self, pin: Pinning) -> None:
        if pin.cpu is None or len(pin.load) < 1:
            raise BenchError("--veth needs the servers and the load pinned to two CPUs")
        self.pin = pin
        self.srv, self.cli = f"tcb-s{os.getpid()}", f"tcb-c{os.getpid()}"
        self.home: int | None = None

    @staticmethod
    def ip(*args: str) -> None:
        sh(["ip", *args])

    def setns(self, fd: int) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, self.CLONE_NEWNET) != 0:
            raise BenchError(f"setns: {os.strerror(ctypes.get_errno())}")

    def __enter__(self) -> Veth:
        global server_host, server_prefix
        load_cpu = int(self.pin.load[-1])
        try:
            for ns in (self.srv, self.cli):
                self.ip("netns", "add", ns)
                self.ip("-n", ns, "link", "set", "lo", "up")
            self.ip(
                "link", "add", "tcb-vs", "netns", self.srv, "type", "veth", "peer", "name", "tcb-vc", "netns", self.cli
            )
            for ns, dev, addr, cpu in (
                (self.srv, "tcb-vs", VETH_SERVER, self.pin.cpu),
                (self.cli, "tcb-vc", VETH_CLIENT, load_cpu),
            ):
                self.ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
                self.ip("-n", ns, "link", "set", dev, "up")
                sh(
                    [
                        "ip",
                        "netns",
                        "exec",
                        ns,
                        "sh",
                        "-c",
                        f"echo {1 << cpu:x} > /sys/class/net/{dev}/queues/rx-0/rps_cpus",
                    ]
                )
            self.home = os.open("/proc/self/ns/net", os.O_RDONLY)
            fd = os.open(f"/run/netns/{self.cli}", os.O_RDONLY)
            try:
                self.setns(fd)
            finally:
                os.close(fd)
        except (RuntimeError, OSError, BenchError):
            self.__exit__()
            raise
        server_host, server_prefix = VETH_SERVER, ["ip", "netns", "exec", self.srv]
        return self

    def __exit__(self, *exc: object) -> None:
        global server_host, server_prefix
        server_host, server_prefix = HOST, []
        if self.home is not None:
            self.setns(self.home)
            os.close(self.home)
            self.home = None
        for ns in (self.srv, self.cli):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(NOFILE, soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mongoose-src", type=Path, default=os.environ.get("TC_BENCH_MONGOOSE_SRC"))
    ap.add_argument("--rounds", type=int, default=5, help="paired rounds per pair (5)")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per server per round (3)")
    ap.add_argument("--idle-conns", type=int, default=10000, help="idle connections for RSS (10000; 0: skip)")
    ap.add_argument("--ir-ops", type=int, default=1500, help="operations N of the instruction counts (N and 4N)")
    ap.add_argument("--no-callgrind", action="store_true", help="skip the instruction counts")
    ap.add_argument("--pairs", default="", help="comma-separated subset of: " + ",".join(p.name for p in PAIRS))
    ap.add_argument("--no-pin", action="store_true", help="do not pin servers and load to different CPUs")
    ap.add_argument(
        "--veth",
        action="store_true",
        help="servers and load in two network namespaces joined by veth, each side's receiving on its own CPU "
        "(root; the tcp_core-vs-nginx pairs only; no idle or instruction figures)",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    ap.add_argument("--report", metavar="FILE", type=Path, help="print the table of a saved --json run and exit")
    args = ap.parse_args()
    if args.report:
        print(report(json.loads(args.report.read_text())))
        return 0
    pairs = [p for p in PAIRS if not args.pairs or p.name in args.pairs.split(",")]
    if args.veth:
        pairs = [p for p in pairs if (p.tc, p.peer) == ("tcp_core", "nginx")]
        args.idle_conns, args.no_callgrind = 0, True
    raise_nofile()
    try:
        exes, mg_note = build(Path(args.mongoose_src) if args.mongoose_src else None)
    except RuntimeError as e:
        log(f"build failed: {e}")
        return 2
    if "mg_http_ws" not in exes:
        log(f"mongoose: {mg_note}")
    pin = choose_pinning(not args.no_pin, "servers", "load generators")
    with tempfile.TemporaryDirectory(prefix="tc-compare-") as td:
        tmp = Path(td)
        tmp.chmod(0o755)
        body = (BENCH / "bench_page.h").read_bytes()  # placeholder until tcp_core's page is fetched below
        probe = start_ready("tcp_core", [str(exes["tc_http_ws"])])
        try:
            with socket.create_connection((HOST, probe.port), timeout=10) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                body = read_response(s).body
        finally:
            probe.stop()
        ks = kinds(exes, tmp, body)
        missing = [n for n in ("nginx", "mongoose") if n not in ks]
        for n in missing:
            log(
                f"{n} not available: its pairs are skipped" + (" (apt-get install nginx-light)" if n == "nginx" else "")
            )
        doc: dict[str, Any] = {
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "setup": f"{pin.note}; {os.cpu_count()} CPUs, loadavg {os.getloadavg()[0]:.1f} at start"
            + (
                f"; --veth: servers at {VETH_SERVER}, load at {VETH_CLIENT}, each side's receiving on its CPU"
                if args.veth
                else ""
            ),
            "rounds": args.rounds,
            "duration": args.duration,
            "idle_conns": args.idle_conns,
            "mongoose": mg_note,
            "pairs": [],
            "idle": [],
            "instructions": [],
        }
        try:
            if args.idle_conns > 0:
                for name in ("tcp_core", "nginx", "mongoose", "tcp_core-echo", "libuv"):
                    if name in ks:
                        doc["idle"].append(idle_cost(ks[name], pin, args.idle_conns))
            with Veth(pin) if args.veth else contextlib.nullcontext():
                results = run_pairs(pairs, ks, pin, exes, tmp, args)
            for r in results:
                doc["pairs"].append(
                    {
                        "name": r.pair.name,
                        "peer": r.pair.peer,
                        "what": r.pair.what,
                        "skipped": r.skipped,
                        "tc_rate": [s.rate for s in r.tc],
                        "peer_rate": [s.rate for s in r.peer],
                        "tc_per_cpu": [s.per_cpu or 0.0 for s in r.tc],
                        "peer_per_cpu": [s.per_cpu or 0.0 for s in r.peer],
                        "ratio_wall": r.ratios("wall"),
                        "ratio_cpu": r.ratios("cpu"),
                        "ratio_cpu_both": r.ratios("both"),
                        "ratio_server_cpu_busy": r.ratios("server-cpu"),
                        "background": [s.background for s in r.tc + r.peer] or [0.0],
                    }
                )
            if not args.no_callgrind and shutil.which("valgrind"):
                for pair in pairs:
                    if pair.peer not in ks:
                        continue
                    tc_ir = instructions(pair, ks[pair.tc], exes, tmp, pin, args.ir_ops)
                    peer_ir = instructions(pair, ks[pair.peer], exes, tmp, pin, args.ir_ops)
                    doc["instructions"].append(
                        {"name": pair.name, "peer": pair.peer, "tc_ir": tc_ir, "peer_ir": peer_ir}
                    )
                    log(f"instructions {pair.name}: tcp_core {tc_ir}, {pair.peer} {peer_ir}")
        except (BenchError, subprocess.SubprocessError) as e:
            log(f"FAILED: {e}")
            print(json.dumps(doc, indent=1) if args.json else report(doc))
            return 1
    print(json.dumps(doc, indent=1) if args.json else report(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
