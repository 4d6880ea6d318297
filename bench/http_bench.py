#!/usr/bin/env python3
"""tcp_core's HTTP service (`tcp-core serve`) side by side with nginx (one worker).

The server under test is `tcp-core serve` (python -m tcp_core.cli serve): the HTTP service is C (tc_app.c,
tc_http.c); Python only starts and stops it. The peer is Debian's nginx with one worker, serving the exact bytes
of tcp_core's "/" page (fetched from tcp_core first) as a static file with the same Content-Type, from a config
written into a temporary directory (bench/nginx.conf.in). Servers run on CPU 0 (taskset), wrk and this script on
CPU 1.

Scenarios, each the median of --runs runs (server order alternated between runs):
  keepalive-c50   wrk -t1 -c50: 50 keep-alive connections, GET /                      -> requests/s
  keepalive-c1    wrk -t1 -c1: one keep-alive connection (latency-bound)               -> requests/s
  close-c50       wrk -t1 -c50 -H "Connection: close": a new connection per request    -> requests/s
  idle            heap bytes tcp_core holds per idle keep-alive connection (/api/status heap.bytes_in_use)
                  and RSS growth per connection of both servers

The MJPEG stream (/stream: paced frames, late frames, a viewer that never reads) is bench/mjpeg_bench.py.

Exit status: 0 when everything ran and every response was right (speed never fails a run); 1 when a server or
wrk failed to run, or a response was wrong (status, body, Content-Type, wrk errors).

Usage: python3 bench/http_bench.py [--quick] [--json] [--runs N] [--duration S] [--no-nginx] [--no-time-wait]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (  # bench/_common.py: python3 bench/http_bench.py puts bench/ first on sys.path
    HOST,
    IO_TIMEOUT_S,
    START_TIMEOUT_S,
    BenchError,
    Pinning,
    Response,
    Server,
    choose_pinning,
    heap_net,
    log,
    machine_busy,
    nginx_command,
    proc_children,
    request,
    start_tcp_core,
    status,
)

BENCH = Path(__file__).resolve().parent
TC_MAX_CONNS = 256  # tcp-core serve's default (16) would evict wrk's 50 connections and the 100 idle ones
NOISE_WAIT_S = 3.0  # pause before running a disturbed run again
NETNS_ENV = "TC_HTTP_BENCH_NETNS"  # set when this script runs itself inside its --no-time-wait namespace
WRK_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,'
    .. '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\\n', summary.requests, summary.duration,
    summary.bytes, e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


# ---- processes ----


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


def proc_rss(pid: int) -> int:
    try:
        for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1]) * 1024
    except OSError:
        pass
    return 0


def server_rss(srv: Server) -> int:
    """RSS of the process that holds the connections: nginx's worker, tcp_core's only process."""
    kids = proc_children(srv.proc.pid)
    return proc_rss(kids[0] if kids else srv.proc.pid)


def start_tcp(pin: Pinning, tmp: Path) -> Server:
    """`tcp-core serve` with only the HTTP service, on a free port, with room for wrk's and the idle connections."""
    return start_tcp_core(pin, ["--max-conns", str(TC_MAX_CONNS)], tmp / "tcp_core.log")


def start_nginx(pin: Pinning, tmp: Path, body: bytes, content_type: str) -> Server:
    ndir = tmp / "nginx"
    fields = {
        "CONTENT_TYPE": content_type,
        "MASTER": "on",
        "RLIMIT_NOFILE": "8192",
        "WORKER_CONNECTIONS": "4096",
        "KEEPALIVE_S": "10",
    }
    port, cmd = nginx_command(ndir, body, fields)
    srv = Server("nginx", pin.server + cmd, signal.SIGQUIT, tmp / "nginx.log")
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


# ---- HTTP by hand (checks) ----


def fetch(port: int, path: str, close: bool = False) -> Response:
    with socket.create_connection((HOST, port), timeout=IO_TIMEOUT_S) as s:
        return request(s, path, close)


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
        before = status(probe) if probe else None
        rss0 = server_rss(srv)
        for _ in range(count):
            s = socket.create_connection((HOST, srv.port), timeout=IO_TIMEOUT_S)
            conns.append(s)
            r = request(s, "/")
            if r.status != 200:
                raise BenchError(f"{srv.name}: idle connection got {r.status}")
        time.sleep(0.3)
        after = status(probe) if probe else None
        rss1 = server_rss(srv)
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
            out["heap_before"] = heap_net(before)
            out["heap_after"] = heap_net(after)
            out["heap_per_conn"] = (out["heap_after"] - out["heap_before"]) / count
            out["sockets_before"] = before["count"]
            out["sockets_after"] = after["count"]
        return out
    finally:
        for s in conns:
            s.close()
        if probe:
            probe.close()


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
    pin = choose_pinning(not args.no_pin, "servers", "wrk and this script")
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
        tc = start_tcp(pin, tmp)
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
    stop = res.get("tcp_core_stop")
    if stop:
        out.append("tcp_core stop: " + " | ".join(" ".join(s.split()) for s in stop))
    if res.get("problems"):
        out.append("")
        out.append("PROBLEMS:")
        out += [f"  {p}" for p in res["problems"]]
    return "\n".join(out)


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
    p.add_argument("--idle-conns", type=int, default=100, help="idle keep-alive connections (100)")
    p.add_argument("--quick", action="store_true", help="1 run of 3 s, no retries")
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
    args = p.parse_args(argv)
    if args.no_time_wait and not os.environ.get(NETNS_ENV):
        return run_in_netns(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.runs, args.duration, args.retries = 1, 3, 0
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
