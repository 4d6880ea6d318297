#!/usr/bin/env python3
"""Run tcp_core's echo benchmarks side by side with a libuv peer and Python asyncio, and print the ratios.

Builds bench/tc_echo.c, bench/uv_echo.c and bench/loadgen.c with gcc -O2 into bench/build/, then for every scenario
runs each server in turn under the same load generator for the same time, repeating with the server order rotated,
and prints the median of the repeats with tcp_core/libuv and tcp_core/asyncio ratios. Then it opens idle connections
to each server and reports what one idle connection costs (tcp_core's own allocation counters, and RSS growth).

Exit status: 0 when every server started, stopped cleanly and echoed every byte right (speed never fails a run);
1 when a server failed to start or stop, crashed, leaked, or an echo was wrong; 2 when the build failed.

Usage: python3 bench/run.py [--quick] [--json] [--repeats N] [--duration S] [--scenarios a,b] [--servers a,b]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BUILD = BENCH / "build"
COMPONENT = ROOT / "components" / "tcp_core"
CFLAGS = ["-std=c11", "-D_GNU_SOURCE", "-O2", "-Wall", "-Wextra", "-Werror"]
SERVERS = ("tcp_core", "libuv", "asyncio")
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
PRIME_ARGS = ("--mode", "messages", "--conns", "4", "--depth", "1", "--duration", "0.2", "--warmup", "0")
PRIME_TIMEOUT_S = 30.0
NOISE_WAIT_S = 3.0  # pause before re-running a run disturbed by other jobs on the machine
LOADGEN_SLACK_S = 60.0  # set-up (idle connections) and teardown allowance on top of warm-up + duration


@dataclass(frozen=True)
class Scenario:
    """One load shape: loadgen arguments and the JSON field that is the score (higher is better)."""

    name: str
    args: tuple[str, ...]
    metric: str
    unit: str
    what: str


SCENARIOS = (
    Scenario(
        "throughput-1",
        ("--mode", "throughput", "--conns", "1", "--size", "65536"),
        "mb_per_s",
        "MB/s",
        "1 connection streams 64 KiB writes (256 KiB unechoed at most) and reads the echo back",
    ),
    Scenario(
        "throughput-16",
        ("--mode", "throughput", "--conns", "16", "--size", "65536"),
        "mb_per_s",
        "MB/s",
        "16 connections stream 64 KiB writes each",
    ),
    Scenario(
        "messages-d1",
        ("--mode", "messages", "--conns", "100", "--size", "64", "--depth", "1"),
        "msgs_per_s",
        "msg/s",
        "100 connections ping-pong 64-byte messages, 1 in flight each",
    ),
    Scenario(
        "messages-d16",
        ("--mode", "messages", "--conns", "100", "--size", "64", "--depth", "16"),
        "msgs_per_s",
        "msg/s",
        "100 connections, 64-byte messages, 16 in flight each (pipelined)",
    ),
    Scenario(
        "messages-d1-idle900",
        ("--mode", "messages", "--conns", "100", "--size", "64", "--depth", "1", "--idle", "900"),
        "msgs_per_s",
        "msg/s",
        "messages-d1 while 900 more connections stay open and silent (the server must carry, not drop, them)",
    ),
    Scenario(
        "churn-50",
        ("--mode", "churn", "--conns", "50", "--size", "64"),
        "conns_per_s",
        "conn/s",
        "50 at a time: connect, send 64 B, read 64 B back, close (FIN; capped by the client's TIME-WAIT ports)",
    ),
    Scenario(
        "churn-rst-50",
        ("--mode", "churn", "--conns", "50", "--size", "64", "--close", "rst"),
        "conns_per_s",
        "conn/s",
        "churn-50, but the client closes with RST: no TIME-WAIT, so the servers' accept/close path is the limit",
    ),
)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- build ----


def portable_sources() -> list[Path]:
    """The lines of components/tcp_core/sources.txt (the one source list) plus the Linux backend."""
    lines = (COMPONENT / "sources.txt").read_text().splitlines()
    srcs = [COMPONENT / ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    backends = (COMPONENT / "port" / "backends.txt").read_text().splitlines()
    linux = next(ln.split()[1:] for ln in backends if ln.split()[:1] == ["linux"])
    return [*srcs, *(COMPONENT / src for src in linux)]


def build() -> dict[str, Path]:
    """Compile the three C programs; raise RuntimeError with gcc's output on failure."""
    BUILD.mkdir(parents=True, exist_ok=True)
    if shutil.which("gcc") is None:
        raise RuntimeError("gcc not found")
    inc = [f"-I{COMPONENT / d}" for d in ("include", "src", "port/os/posix")]
    targets = {
        "tc_echo": [*inc, str(BENCH / "tc_echo.c"), *map(str, portable_sources()), "-lpthread"],
        "uv_echo": [str(BENCH / "uv_echo.c"), "-luv"],
        "loadgen": [str(BENCH / "loadgen.c")],
    }
    out: dict[str, Path] = {}
    for name, args in targets.items():
        exe = BUILD / name
        cmd = ["gcc", *CFLAGS, *args, "-o", str(exe)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            hint = " (install libuv1-dev)" if name == "uv_echo" else ""
            raise RuntimeError(f"building {name} failed{hint}:\n{' '.join(cmd)}\n{res.stderr}")
        out[name] = exe
    return out


# ---- processes ----


class LineReader:
    """Reads whole lines from a child's stdout pipe with a timeout (no thread, no blocking read)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""
        self.eof = False

    def readline(self, timeout_s: float) -> str | None:
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if self.eof or left <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.fd, 4096)
            if not chunk:
                self.eof = True
                continue
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode(errors="replace")


@dataclass
class Pinning:
    """CPU placement: the server on one core, the load generator on another (taskset), or nothing."""

    server: list[str] = field(default_factory=list)
    loadgen: list[str] = field(default_factory=list)
    note: str = "not pinned"


def choose_pinning(enabled: bool) -> Pinning:
    cpus = sorted(os.sched_getaffinity(0))
    taskset = shutil.which("taskset")
    if not enabled:
        return Pinning(note="not pinned (--no-pin)")
    if taskset is None or len(cpus) < 2:
        return Pinning(note="not pinned (needs taskset and 2 CPUs)")
    return Pinning(
        server=[taskset, "-c", str(cpus[0])],
        loadgen=[taskset, "-c", str(cpus[1])],
        note=f"server on CPU {cpus[0]}, loadgen on CPU {cpus[1]} (taskset)",
    )


class Server:
    """One benchmark server process speaking the "ready PORT" / SIGUSR1 "stats {json}" / SIGTERM protocol."""

    def __init__(self, name: str, cmd: list[str]) -> None:
        self.name = name
        self.log_path = BUILD / f"{name}.stderr.log"
        self.log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        self.reader = LineReader(self.proc.stdout.fileno())
        self.port = 0

    def wait_ready(self) -> None:
        line = self.reader.readline(START_TIMEOUT_S)
        if line is None or not line.startswith("ready "):
            self.kill()
            raise RuntimeError(f"{self.name} did not start (said {line!r}; see {self.log_path})")
        self.port = int(line.split()[1])

    def stats(self, timeout_s: float = 5.0) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            line = self.reader.readline(left)
            if line is None:
                break
            if line.startswith("stats "):
                result: dict[str, Any] = json.loads(line[6:])
                return result
        raise RuntimeError(f"{self.name} did not answer the stats request")

    def cpu_seconds(self) -> float:
        return process_cpu(self.proc.pid)

    def rss_bytes(self) -> int:
        for ln in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1]) * 1024
        return 0

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit status (a kill after the timeout counts as a failure, -9)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = -9
        self.close()
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.close()

    def close(self) -> None:
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()


def server_command(name: str, exes: dict[str, Path]) -> list[str]:
    if name == "tcp_core":
        return [str(exes["tc_echo"]), "--host", "127.0.0.1", "--port", "0"]
    if name == "libuv":
        return [str(exes["uv_echo"]), "--host", "127.0.0.1", "--port", "0"]
    return [sys.executable, str(BENCH / "asyncio_echo.py"), "--host", "127.0.0.1", "--port", "0"]


# ---- measurements ----


@dataclass
class Sample:
    """One run of one server under one scenario."""

    server: str
    port: int
    value: float | None
    result: dict[str, Any]
    server_cpu: float  # cores busy in the server during the counted window (1.0 = one core)
    loadgen_cpu: float  # the same for the load generator
    background: float  # the rest of the machine's busy CPU then (other jobs, kernel threads): disturbance
    problems: list[str]


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (from /proc; 0 when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()  # comm may hold spaces; fields after it start at state (3)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine so far, all CPUs (from the first line of /proc/stat)."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = f[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


@dataclass
class CpuMark:
    t: float
    server: float
    loadgen: float
    machine: float


def cpu_mark(server_pid: int, loadgen_pid: int) -> CpuMark:
    return CpuMark(time.monotonic(), process_cpu(server_pid), process_cpu(loadgen_pid), machine_busy())


def run_one(name: str, scen: Scenario, exes: dict[str, Path], pin: Pinning, duration: float, warmup: float) -> Sample:
    problems: list[str] = []
    srv = Server(name, pin.server + server_command(name, exes))
    try:
        srv.wait_ready()
    except RuntimeError as e:
        return Sample(name, 0, None, {}, 0.0, 0.0, 0.0, [str(e)])
    loadgen = [*pin.loadgen, str(exes["loadgen"]), "--host", "127.0.0.1", "--port", str(srv.port)]
    # Prime the fresh server on connections of its own: first-use costs (Python's first calls, page faults of a new
    # heap) would otherwise land on the measured connections and, in ping-pong, can leave them in a slow regime.
    prime = subprocess.run(
        [*loadgen, *PRIME_ARGS], capture_output=True, text=True, timeout=PRIME_TIMEOUT_S, check=False
    )
    if prime.returncode != 0:
        problems.append(f"{scen.name}/{name}: priming run failed: {prime.stdout.strip()} {prime.stderr.strip()}")
    cmd = [*loadgen, *scen.args, "--duration", str(duration), "--warmup", str(warmup), "--marks", "1"]
    lg = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert lg.stdout is not None and lg.stderr is not None
    reader = LineReader(lg.stdout.fileno())
    # CPU use is sampled when the loadgen opens and closes its counted window, so set-up and warm-up stay out.
    marks: dict[str, CpuMark] = {}
    last = ""
    deadline = time.monotonic() + duration + warmup + LOADGEN_SLACK_S
    while (line := reader.readline(max(deadline - time.monotonic(), 0.0))) is not None:
        if line in ("measuring", "measured"):
            marks[line] = cpu_mark(srv.proc.pid, lg.pid)
        elif line.strip():
            last = line
    if lg.poll() is None and not reader.eof:
        lg.kill()
        problems.append(f"{scen.name}/{name}: loadgen did not finish in time")
    lg_rc = lg.wait()
    err = lg.stderr.read().decode(errors="replace")
    lg.stdout.close()
    lg.stderr.close()
    server_cpu = loadgen_cpu = background = 0.0
    if "measuring" in marks and "measured" in marks:
        a, b = marks["measuring"], marks["measured"]
        wall = max(b.t - a.t, 1e-9)
        server_cpu, loadgen_cpu = (b.server - a.server) / wall, (b.loadgen - a.loadgen) / wall
        background = max((b.machine - a.machine) / wall - server_cpu - loadgen_cpu, 0.0)
    if srv.proc.poll() is not None:
        problems.append(f"{scen.name}/{name}: the server died during the run (status {srv.proc.returncode})")
    rc = srv.stop()
    if rc != 0 and not problems:
        problems.append(f"{scen.name}/{name}: the server ended with status {rc} (see {srv.log_path})")
    try:
        result: dict[str, Any] = json.loads(last) if last else {}
    except json.JSONDecodeError:
        result = {}
    if not result:
        problems.append(f"{scen.name}/{name}: loadgen printed no result (status {lg_rc}): {err.strip()}")
        return Sample(name, srv.port, None, {}, server_cpu, loadgen_cpu, background, problems)
    if not result.get("ok"):
        keys = ("connect_failures", "errors", "verify_errors", "stalled", "idle_failed", "idle_dropped")
        problems.append(f"{scen.name}/{name}: echo check failed { ({k: result.get(k) for k in keys}) }")
    value = float(result[scen.metric]) if result.get("ok") else None
    return Sample(name, srv.port, value, result, server_cpu, loadgen_cpu, background, problems)


@dataclass
class ScenarioResult:
    scen: Scenario
    samples: dict[str, list[Sample]]

    def values(self, server: str, per_cpu: bool = False) -> list[float]:
        """The scores of the good runs, or with per_cpu the scores per second of server CPU time."""
        out = []
        for s in self.samples.get(server, []):
            if s.value is not None and (not per_cpu or s.server_cpu > 0):
                out.append(s.value / s.server_cpu if per_cpu else s.value)
        return out

    def median(self, server: str, per_cpu: bool = False) -> float | None:
        vals = self.values(server, per_cpu)
        return statistics.median(vals) if vals else None

    def spread(self, server: str) -> float | None:
        """(max - min) / median of the repeats: how much to trust the median."""
        vals = self.values(server)
        return (max(vals) - min(vals)) / statistics.median(vals) if len(vals) > 1 and statistics.median(vals) else None

    def median_of(self, server: str, key: str) -> float | None:
        vals = [float(s.result[key]) for s in self.samples.get(server, []) if s.result.get(key, -1) >= 0]
        return statistics.median(vals) if vals else None

    def median_cpu(self, server: str, which: str) -> float | None:
        vals = [getattr(s, which) for s in self.samples.get(server, []) if s.value is not None]
        return statistics.median(vals) if vals else None

    def ratio(self, other: str, per_cpu: bool = False) -> float | None:
        a, b = self.median("tcp_core", per_cpu), self.median(other, per_cpu)
        return a / b if a is not None and b else None


def idle_cost(name: str, exes: dict[str, Path], pin: Pinning, count: int) -> dict[str, Any]:
    """Open count idle connections to a fresh server; what did they add (tcp_core heap, RSS)?"""
    srv = Server(name, pin.server + server_command(name, exes))
    srv.wait_ready()
    socks: list[socket.socket] = []
    try:
        base = srv.stats()
        rss0 = srv.rss_bytes()
        for _ in range(count):
            socks.append(socket.create_connection(("127.0.0.1", srv.port), timeout=10))
        deadline = time.monotonic() + 20
        st = srv.stats()
        while st.get("conns") != count and time.monotonic() < deadline:
            time.sleep(0.05)
            st = srv.stats()
        if st.get("conns") != count:
            raise RuntimeError(f"{name}: {st.get('conns')} of {count} idle connections accepted")
        rss1 = srv.rss_bytes()
        out: dict[str, Any] = {"port": srv.port, "conns": count, "rss_per_conn": (rss1 - rss0) / count}
        if "bytes_in_use" in st:
            out.update(
                heap_base=base["bytes_in_use"],
                heap_with_conns=st["bytes_in_use"],
                heap_per_conn=(st["bytes_in_use"] - base["bytes_in_use"]) / count,
                blocks_per_conn=(st["blocks_in_use"] - base["blocks_in_use"]) / count,
            )
        return out
    finally:
        for s in socks:
            s.close()
        rc = srv.stop()
        if rc != 0:
            raise RuntimeError(f"{name}: the server ended with status {rc} after the idle test (see {srv.log_path})")


# ---- report ----


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "FAIL"
    return f"{v:,.0f}" if unit != "MB/s" else f"{v:,.1f}"


def fmt_ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def print_table(rows: list[list[str]], head: list[str]) -> None:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def cells(r: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))

    line = cells(head)
    print(line)
    print("-" * len(line))
    for r in rows:
        print(cells(r))


def report_text(results: list[ScenarioResult], servers: list[str], idle: dict[str, Any], meta: dict[str, Any]) -> None:
    print(
        f"tcp_core echo benchmark: {meta['repeats']} repeat(s) x {meta['duration']} s (+{meta['warmup']} s warmup), "
        f"median shown; {meta['pinning']}"
    )
    if meta["disturbed_runs"]:
        print(
            f"WARNING: {meta['disturbed_runs']} of {meta['runs']} runs kept were disturbed (other jobs used more than "
            f"{meta['max_background']} cores); see the CPU column below and prefer a quiet machine"
        )
    others = [o for o in ("libuv", "asyncio") if o in servers and "tcp_core" in servers]
    head = ["scenario", "unit", *servers, *(f"tcp_core/{o}" for o in others)]
    for per_cpu in (False, True):
        print()
        if per_cpu:
            print("the same work per second of server CPU time (efficiency; robust when the load generator limits):")
        rows = []
        for r in results:
            unit = r.scen.unit.replace("/s", "/cpu-s") if per_cpu else r.scen.unit
            row = [r.scen.name, unit, *(fmt(r.median(s, per_cpu), r.scen.unit) for s in servers)]
            rows.append(row + [fmt_ratio(r.ratio(o, per_cpu)) for o in others])
        print_table(rows, head)
    print()
    print("per server: spread of the repeats (max-min)/median | CPU in cores, server/loadgen/everything else on the")
    print("machine (disturbance) | latency p50/p99 in us (messages: per message; churn: per connection); medians:")
    drows = []
    for r in results:
        row = [r.scen.name]
        for s in servers:
            sp = r.spread(s)
            sc, lc = r.median_cpu(s, "server_cpu"), r.median_cpu(s, "loadgen_cpu")
            bg = r.median_cpu(s, "background")
            cell = "-" if sp is None else f"{sp * 100:.0f}%"
            cell += " | " + ("-" if sc is None or lc is None or bg is None else f"{sc:.2f}/{lc:.2f}/{bg:.2f}")
            p50, p99 = r.median_of(s, "lat_p50_us"), r.median_of(s, "lat_p99_us")
            if p50 is not None and p99 is not None:
                cell += f" | {p50:,.0f}/{p99:,.0f}"
            row.append(cell)
        drows.append(row)
    print_table(drows, ["scenario", *servers])
    if idle:
        print()
        n = next(iter(idle.values())).get("conns", 0)
        print(f"idle connections ({n} open, each server fresh):")
        tc = idle.get("tcp_core", {})
        if "heap_per_conn" in tc:
            print(
                f"  tcp_core heap (tc_alloc_stats bytes_in_use): {tc['heap_per_conn']:.1f} bytes per idle connection "
                f"({tc['blocks_per_conn']:.2f} blocks; {tc['heap_base']} bytes before, {tc['heap_with_conns']} with)"
            )
        rss = ", ".join(f"{s} {v['rss_per_conn']:,.0f}" for s, v in idle.items() if "rss_per_conn" in v)
        print(f"  process RSS growth per idle connection (bytes; kernel socket memory not included): {rss}")


def to_json(
    results: list[ScenarioResult], servers: list[str], idle: dict[str, Any], meta: dict[str, Any], problems: list[str]
) -> dict[str, Any]:
    return {
        "meta": {**meta, "servers": servers},
        "scenarios": [
            {
                "name": r.scen.name,
                "what": r.scen.what,
                "unit": r.scen.unit,
                "median": {s: r.median(s) for s in servers},
                "ratio": {f"tcp_core/{o}": r.ratio(o) for o in servers if o != "tcp_core"},
                "per_server_cpu_second": {s: r.median(s, per_cpu=True) for s in servers},
                "ratio_per_server_cpu_second": {
                    f"tcp_core/{o}": r.ratio(o, per_cpu=True) for o in servers if o != "tcp_core"
                },
                "spread": {s: r.spread(s) for s in servers},
                "samples": {
                    s: [
                        {
                            "port": x.port,
                            "value": x.value,
                            "server_cpu": round(x.server_cpu, 3),
                            "loadgen_cpu": round(x.loadgen_cpu, 3),
                            "background_cpu": round(x.background, 3),
                            "loadgen": x.result,
                        }
                        for x in xs
                    ]
                    for s, xs in r.samples.items()
                },
            }
            for r in results
        ],
        "idle": idle,
        "problems": problems,
        "ok": not problems,
    }


def from_json(doc: dict[str, Any]) -> tuple[list[ScenarioResult], list[str], dict[str, Any], dict[str, Any], list[str]]:
    """The inverse of to_json(), for --report."""
    by_name = {s.name: s for s in SCENARIOS}
    meta: dict[str, Any] = doc["meta"]
    servers: list[str] = meta["servers"]
    results = []
    for sc in doc["scenarios"]:
        samples = {
            srv: [
                Sample(
                    srv, x["port"], x["value"], x["loadgen"], x["server_cpu"], x["loadgen_cpu"], x["background_cpu"], []
                )
                for x in xs
            ]
            for srv, xs in sc["samples"].items()
        }
        results.append(ScenarioResult(by_name[sc["name"]], samples))
    return results, servers, doc["idle"], meta, doc["problems"]


def print_problems(problems: list[str]) -> None:
    if problems:
        print()
        print("PROBLEMS:")
        for p in problems:
            print("  " + p)


def main() -> int:
    ap = argparse.ArgumentParser(description="tcp_core echo benchmarks against libuv and asyncio")
    ap.add_argument("--quick", action="store_true", help="~20 s smoke run: 1 repeat, short runs, 200 idle conns")
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of the tables")
    ap.add_argument("--repeats", type=int, default=None, help="runs per server and scenario (median; default 3)")
    ap.add_argument("--duration", type=float, default=None, help="measured seconds per run (default 5)")
    ap.add_argument("--warmup", type=float, default=None, help="unmeasured seconds before each run (default 1)")
    ap.add_argument("--idle-conns", type=int, default=None, help="idle connections for the memory figure (1000)")
    ap.add_argument("--scenarios", default="", help="comma-separated subset of: " + ",".join(s.name for s in SCENARIOS))
    ap.add_argument("--servers", default="", help="comma-separated subset of: " + ",".join(SERVERS))
    ap.add_argument("--no-pin", action="store_true", help="do not pin server and loadgen to different CPUs")
    ap.add_argument(
        "--max-background",
        type=float,
        default=0.25,
        help="a run during which the rest of the machine kept more than this many cores busy is disturbed (0.25)",
    )
    ap.add_argument("--retries", type=int, default=None, help="re-runs of a disturbed run (default 3; --quick 0)")
    ap.add_argument("--report", metavar="FILE", help="print the tables of a saved --json run and exit")
    args = ap.parse_args()
    if args.report:
        doc = json.loads(Path(args.report).read_text())
        results_, servers_, idle_, meta_, problems_ = from_json(doc)
        report_text(results_, servers_, idle_, meta_)
        print_problems(problems_)
        return 1 if problems_ else 0

    repeats = args.repeats or (1 if args.quick else 3)
    duration = args.duration or (0.4 if args.quick else 5.0)
    warmup = args.warmup if args.warmup is not None else (0.2 if args.quick else 1.0)
    retries = args.retries if args.retries is not None else (0 if args.quick else 3)
    idle_n = args.idle_conns if args.idle_conns is not None else (200 if args.quick else 1000)
    servers = [s for s in args.servers.split(",") if s] or list(SERVERS)
    names = [s for s in args.scenarios.split(",") if s]
    scenarios = [s for s in SCENARIOS if not names or s.name in names]
    unknown = set(servers) - set(SERVERS) | set(names) - {s.name for s in SCENARIOS}
    if unknown or repeats < 1 or duration <= 0 or idle_n < 0:
        ap.error(f"bad arguments {sorted(unknown) if unknown else ''}")

    try:
        exes = build()
    except RuntimeError as e:
        log(str(e))
        return 2
    pin = choose_pinning(not args.no_pin)
    log(f"built into {BUILD}; {pin.note}")

    problems: list[str] = []
    results = [ScenarioResult(s, {n: [] for n in servers}) for s in scenarios]
    for rep in range(repeats):
        for si, r in enumerate(results):
            k = (rep + si) % len(servers)
            order = servers[k:] + servers[:k]  # rotated, so no server always runs first or last
            for name in order:
                best: Sample | None = None
                for attempt in range(retries + 1):
                    smp = run_one(name, r.scen, exes, pin, duration, warmup)
                    problems += smp.problems  # an echo failure counts even in a run thrown away for noise
                    shown = fmt(smp.value, r.scen.unit)
                    log(
                        f"  [{rep + 1}/{repeats}] {r.scen.name:19} {name:9} port {smp.port:5}  {shown} {r.scen.unit}"
                        f"  (cpu {smp.server_cpu:.2f}/{smp.loadgen_cpu:.2f}/{smp.background:.2f})"
                    )
                    if best is None or smp.value is None or smp.background < best.background:
                        best = smp  # of the disturbed runs, the least disturbed one is kept
                    if smp.value is None or smp.background <= args.max_background or attempt == retries:
                        break
                    log(f"    disturbed: other jobs used {smp.background:.2f} cores; waiting, then running it again")
                    time.sleep(NOISE_WAIT_S)
                assert best is not None
                r.samples[name].append(best)

    idle: dict[str, Any] = {}
    if idle_n > 0:
        for name in servers:
            try:
                idle[name] = idle_cost(name, exes, pin, idle_n)
                log(f"  idle {name}: {idle[name]}")
            except (RuntimeError, OSError) as e:
                problems.append(f"idle/{name}: {e}")

    kept = [x for r in results for xs in r.samples.values() for x in xs]
    noisy = sum(1 for x in kept if x.background > args.max_background)
    meta = {
        "repeats": repeats,
        "duration": duration,
        "warmup": warmup,
        "pinning": pin.note,
        "cpus": os.cpu_count(),
        "max_background": args.max_background,
        "disturbed_runs": noisy,
        "runs": len(kept),
    }
    if args.json:
        print(json.dumps(to_json(results, servers, idle, meta, problems), indent=2))
    else:
        report_text(results, servers, idle, meta)
        print_problems(problems)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
