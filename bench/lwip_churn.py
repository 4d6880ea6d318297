#!/usr/bin/env python3
"""Connection churn on tcp_core's lwIP backend: the default close policy (peer-first) against a naive server that
closes first, side by side (seed 001: "the server stops answering after a minute").

For each policy, in a network namespace of its own (tools/lwip_netns.sh; removed afterwards, whatever happens):
  server  a tcp_core Server on the lwip backend (Loop("lwip", tap=..., address=...)) whose Python Handler answers
          one request ("ping N\\n" -> "pong\\n") and closes: conn.close(None), the server's default policy
          (TC_CLOSE_PEER_FIRST: flush, wait for the client's FIN, so TIME-WAIT stays with the client), or
          conn.close("graceful") (flush, FIN first: the naive server, whose lwIP pcbs sit in TIME-WAIT for 2 MSL
          and, by RFC 1337, ignore the RST a client sends when it reuses the port). Pinned to CPU 0.
  client  `tcp-core soak`'s exchange (tcp_core.soak.one_request: a new kernel-socket connection per request,
          failures classed refused / reset / stalled / timed out / ...), with no interval and --concurrency
          requests in flight, for --seconds. Pinned to CPU 1.
Reported per policy: connections/s sustained, failures by class, stalls (seconds in which nothing completed),
lwIP TIME-WAIT pcbs left on the server port (tcp_core.time_wait_count(port, "lwip")), the client's own
TIME-WAIT sockets, and the server's close reasons.

Needs root, /dev/net/tun, iproute2 and tcp_core built with the lwip backend (liblwip-dev).
Exit status: 0 when both runs ran (failures of the naive server are a result, not an error); 1 when something
failed to run (namespace, server, client), or when the default policy had failures the server caused (refused,
reset, stalled, timed out: not "port_exhausted", the one client running out of its own ports); 2 on bad usage.

Usage: sudo python3 bench/lwip_churn.py [--seconds 60] [--quick] [--concurrency 8] [--json]
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NETNS = ROOT / "tools" / "lwip_netns.sh"
POLICIES = ("default", "graceful")  # "default": conn.close(None), the server's policy (peer-first)
START_TIMEOUT_S = 20.0
PROC_TCP_TIME_WAIT = "06"  # the st column of /proc/net/tcp


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- the server (runs inside the namespace) ----


def serve(policy: str, tap: str, address: str, port: int) -> int:
    """Answer one request per connection and close with the policy; "stats" on stdin prints the counters, EOF or
    "quit" stops the server and prints the final ones."""
    from tcp_core.core import Connection, Handler, Loop, Server, alloc_stats, time_wait_count
    from tcp_core.errors import TcError

    close_policy: Any = None if policy == "default" else policy

    class OneShot(Handler):
        def __init__(self) -> None:
            self.served = 0
            self.reasons: Counter[str] = Counter()
            self.close_errors = 0

        def on_data(self, conn: Connection, data: bytes) -> None:
            if conn.user.get("answered"):
                return
            buf = conn.user.get("buf", b"") + data
            if b"\n" not in buf:
                conn.user["buf"] = buf
                return
            conn.user["answered"] = True
            try:
                conn.send(b"pong\n")
                conn.close(close_policy)
                self.served += 1
            except TcError:
                self.close_errors += 1

        def on_close(self, conn: Connection, reason: str) -> None:
            self.reasons[reason] += 1

    handler = OneShot()
    loop = Loop("lwip", tap=tap, address=address)
    host = address.partition("/")[0]
    server = Server(loop, host, port, handler=handler, name="churn", max_conns=1024)

    def stats() -> dict[str, Any]:
        def snap() -> dict[str, Any]:
            return {
                "served": handler.served,
                "reasons": dict(handler.reasons),
                "close_errors": handler.close_errors,
                "open": server.conn_count if server._ptr is not None else 0,
            }

        out = loop.call(snap)
        out["time_wait"] = time_wait_count(server.port, "lwip")
        out["heap"] = alloc_stats("lwip").bytes_in_use
        return out

    print(f"ready {server.port}", flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "stats":
            print("stats " + json.dumps(stats()), flush=True)
        elif cmd == "quit":
            break
    final = stats()
    rep = server.stop(1000)
    final["stop"] = {"graceful": rep.graceful, "forced": rep.forced, "elapsed_ms": rep.elapsed_ms}
    final["time_wait_after_stop"] = time_wait_count(server.port, "lwip")
    loop.close(1000)
    final["heap_after_close"] = alloc_stats("lwip").bytes_in_use
    print("final " + json.dumps(final), flush=True)
    return 0


# ---- the client (runs inside the namespace) ----


def kernel_time_wait() -> int:
    """TIME-WAIT sockets of this network namespace's kernel (the client's side)."""
    n = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        n += sum(1 for ln in lines if ln.split()[3] == PROC_TCP_TIME_WAIT)
    return n


def drive(target: str, seconds: float, concurrency: int, stall_s: float, timeout_s: float) -> int:
    """soak's exchange in `concurrency` threads back to back for `seconds`; one JSON line out."""
    from tcp_core import soak

    tgt = soak.Target.parse(target)
    lock = threading.Lock()
    failures: Counter[str] = Counter()
    first_failures: list[str] = []
    latencies: list[float] = []
    per_second: Counter[int] = Counter()
    counter = [0]
    t0 = time.monotonic()
    end = t0 + seconds

    def worker() -> None:
        while time.monotonic() < end:
            with lock:
                i = counter[0]
                counter[0] += 1
            cls, ms, detail = soak.one_request(tgt, i, stall_s, timeout_s, None, b"ping")
            if cls == "other" and f"[Errno {errno.EADDRNOTAVAIL}]" in detail:
                cls = "port_exhausted"  # the client's own ephemeral ports, all in its TIME-WAIT: not the server's
            done = time.monotonic()
            with lock:
                if cls is None:
                    latencies.append(ms)
                    per_second[int(done - t0)] += 1
                else:
                    failures[cls] += 1
                    if len(first_failures) < 10:
                        first_failures.append(f"#{i} at {done - t0:.1f} s: {cls} after {ms:.0f} ms ({detail})")

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + timeout_s + stall_s + 10)
    elapsed = time.monotonic() - t0
    whole = int(min(elapsed, seconds))
    timeline = [per_second[s] for s in range(whole)]
    ok = len(latencies)
    # "Stalled seconds": whole seconds of the run in which no exchange completed (the seed's "stops answering").
    stalled_seconds = sum(1 for n in timeline if n == 0)
    out = {
        "seconds": seconds,
        "elapsed_s": round(elapsed, 3),
        "concurrency": concurrency,
        "attempts": counter[0],
        "ok": ok,
        "conns_per_s": ok / min(elapsed, seconds) if elapsed > 0 else 0.0,
        "failures": {k: failures[k] for k in soak.FAILURE_CLASSES if failures[k]},
        "first_failures": first_failures,
        "latency_ms": {
            "p50": soak.percentile(latencies, 0.5),
            "p99": soak.percentile(latencies, 0.99),
            "max": round(max(latencies), 3) if latencies else 0.0,
        },
        "timeline": timeline,
        "stalled_seconds": stalled_seconds,
        "client_time_wait": kernel_time_wait(),
    }
    print(json.dumps(out), flush=True)
    return 0


# ---- the orchestration (root, outside the namespaces) ----


class ServerProc:
    """The server process in its namespace: a reader thread keeps its stdout lines."""

    def __init__(self, cmd: list[str], log_path: Path) -> None:
        self.log = log_path.open("ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self.cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_line(self, prefix: str, timeout_s: float) -> str | None:
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while True:
                for ln in self.lines:
                    if ln.startswith(prefix):
                        self.lines.remove(ln)
                        return ln
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    return None
                self.cond.wait(min(left, 0.2))

    def send(self, cmd: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(cmd.encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def stats(self) -> dict[str, Any] | None:
        self.send("stats")
        ln = self.wait_line("stats ", 10)
        return json.loads(ln[6:]) if ln else None

    def finish(self) -> dict[str, Any] | None:
        self.send("quit")
        ln = self.wait_line("final ", 30)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdin:
            self.proc.stdin.close()
        self.log.close()
        return json.loads(ln[6:]) if ln else None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def pinning() -> tuple[list[str], list[str], str]:
    cpus = sorted(os.sched_getaffinity(0))
    ts = shutil.which("taskset")
    if ts is None or len(cpus) < 2:
        return [], [], "not pinned (needs taskset and 2 CPUs)"
    return [ts, "-c", str(cpus[0])], [ts, "-c", str(cpus[1])], f"server on CPU {cpus[0]}, client on CPU {cpus[1]}"


def netns_up(name: str) -> dict[str, str]:
    res = subprocess.run([str(NETNS), "up", name], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"lwip_netns.sh up {name} failed: {res.stderr.strip()}")
    return dict(kv.split("=", 1) for kv in res.stdout.split())


def netns_down(name: str) -> None:
    subprocess.run([str(NETNS), "down", name], capture_output=True, check=False)


def one_policy(policy: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Run one policy in a fresh namespace (so neither run inherits the other's TIME-WAIT) and return its figures."""
    ns = f"tcchurn{os.getpid()}{policy[0]}"
    srv_pin, cli_pin, note = pinning()
    me = str(Path(__file__).resolve())
    py = sys.executable
    env = netns_up(ns)
    result: dict[str, Any] = {"policy": policy, "namespace": ns, "pinning": note, "client_max_tw": None}
    srv: ServerProc | None = None
    try:
        base = ["ip", "netns", "exec", ns]
        if args.client_max_tw is not None:
            # Namespace-local and gone with it: past this many TIME-WAIT sockets the client's kernel closes
            # without one, so its own ephemeral ports stop being the limit (as if the load came from many clients).
            key = "net.ipv4.tcp_max_tw_buckets"
            res = subprocess.run(
                [*base, "sysctl", "-w", f"{key}={args.client_max_tw}"], capture_output=True, check=False
            )
            if res.returncode != 0:
                raise RuntimeError(f"sysctl {key} in {ns} failed: {res.stderr.decode().strip()}")
            result["client_max_tw"] = args.client_max_tw
        srv_cmd = [*base, *srv_pin, py, me, "--serve", policy, "--tap", env["TC_LWIP_TAP"]]
        srv_cmd += ["--address", env["TC_LWIP_ADDRESS"], "--port", str(args.port)]
        srv = ServerProc(srv_cmd, tmp / f"server-{policy}.log")
        ready = srv.wait_line("ready ", START_TIMEOUT_S)
        if ready is None:
            raise RuntimeError(f"the {policy} server did not start (see {tmp / f'server-{policy}.log'})")
        port = int(ready.split()[1])
        target = f"{env['TC_LWIP_ADDRESS'].partition('/')[0]}:{port}"
        cli_cmd = [*base, *cli_pin, py, me, "--drive", target, "--seconds", str(args.seconds)]
        cli_cmd += ["--concurrency", str(args.concurrency), "--stall", str(args.stall), "--timeout", str(args.timeout)]
        result["commands"] = {"server": " ".join(srv_cmd), "client": " ".join(cli_cmd)}
        log(f"  {policy}: server on {target} in namespace {ns}; client for {args.seconds} s x{args.concurrency}")
        cli = subprocess.Popen(cli_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        samples: list[dict[str, Any]] = []
        t0 = time.monotonic()
        while cli.poll() is None:
            assert cli.stdout is not None
            select.select([], [], [], 1.0)
            st = srv.stats()
            if st is not None:
                st["t"] = round(time.monotonic() - t0, 1)
                samples.append(st)
                if args.progress:
                    log(f"    t={st['t']:5.1f} s served {st['served']:7d}  lwIP TIME-WAIT {st['time_wait']:6d}")
        out, err = cli.communicate()
        lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
        if cli.returncode != 0 or not lines:
            raise RuntimeError(f"the client failed ({cli.returncode}): {err.decode().strip()[-500:]}")
        result["client"] = json.loads(lines[-1])
        result["server_samples"] = samples
        result["time_wait_peak"] = max((s["time_wait"] for s in samples), default=0)
        final = srv.finish()
        srv = None
        if final is None:
            raise RuntimeError(f"the {policy} server did not report at the end")
        result["server"] = final
    finally:
        if srv is not None:
            srv.kill()
        netns_down(ns)
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    if os.geteuid() != 0:
        raise RuntimeError("needs root (network namespaces, TAP devices)")
    if not NETNS.exists():
        raise RuntimeError(f"{NETNS} is missing")
    from tcp_core._native import available_backends

    if "lwip" not in available_backends():
        raise RuntimeError("tcp_core was built without the lwip backend (install liblwip-dev, rebuild)")
    tmp = Path(f"/tmp/tc_lwip_churn.{os.getpid()}")
    tmp.mkdir(exist_ok=True)
    res: dict[str, Any] = {
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "client_max_tw": args.client_max_tw,
        "logs": str(tmp),
        "runs": {},
    }
    for policy in args.policies:
        res["runs"][policy] = one_policy(policy, args, tmp)
        c = res["runs"][policy]["client"]
        log(f"  {policy}: {c['conns_per_s']:.0f} conn/s, failures {c['failures']}, {c['stalled_seconds']} s stalled")
    shutil.rmtree(tmp, ignore_errors=True)  # only the servers' stderr: kept when something failed to run
    res["logs"] = None
    return res


# ---- report ----


def report(res: dict[str, Any]) -> str:
    runs = res["runs"]
    names = list(runs)
    head = {"default": "default (peer-first)", "graceful": "graceful (naive)"}
    w = 24
    out = [
        f"lwIP connection churn: {res['seconds']} s per policy, {res['concurrency']} requests in flight, "
        f"a new connection per request; {next(iter(runs.values()))['pinning']}",
        "client TIME-WAIT: "
        + (
            "the kernel's defaults (one client address: its own TIME-WAIT ports limit the peer-first rate)"
            if res.get("client_max_tw") is None
            else f"capped at {res['client_max_tw']} sockets in the namespace (net.ipv4.tcp_max_tw_buckets)"
        ),
        "",
        f"{'':34}" + "".join(f"{head.get(n, n):>{w}}" for n in names),
    ]

    def row(label: str, fn: Any) -> None:
        out.append(f"{label:34}" + "".join(f"{fn(runs[n]):>{w}}" for n in names))

    row("connections/s (sustained)", lambda r: f"{r['client']['conns_per_s']:,.0f}")
    row("exchanges ok", lambda r: f"{r['client']['ok']:,}")
    row("failures", lambda r: f"{sum(r['client']['failures'].values()):,}")
    classes = sorted({k for r in runs.values() for k in r["client"]["failures"]})
    for k in classes:
        row(f"  {k}", lambda r, k=k: f"{r['client']['failures'].get(k, 0):,}")
    row("stalled seconds (0 completed)", lambda r: f"{r['client']['stalled_seconds']}")
    row("conn/s first 10 s / last 10 s", lambda r: first_last(r["client"]["timeline"]))
    row("conn/s best second / worst", lambda r: best_worst(r["client"]["timeline"]))
    row("latency p50 / p99 / max ms", lambda r: "{p50:.1f} / {p99:.1f} / {max:.0f}".format(**r["client"]["latency_ms"]))
    row("lwIP TIME-WAIT pcbs: peak", lambda r: f"{r['time_wait_peak']:,}")
    row("lwIP TIME-WAIT pcbs: left at end", lambda r: f"{r['server']['time_wait']:,}")
    row("client kernel TIME-WAIT at end", lambda r: f"{r['client']['client_time_wait']:,}")
    row("server close reasons", lambda r: ", ".join(f"{k} {v}" for k, v in sorted(r["server"]["reasons"].items())))
    row("server stop: forced", lambda r: f"{r['server']['stop']['forced']}")
    row("lwIP heap left after close (B)", lambda r: f"{r['server']['heap_after_close']:,}")
    if len(names) == 2:
        a, b = (runs[n]["client"]["conns_per_s"] for n in names)
        out.append(f"{'ratio default/graceful conn/s':34}{a / b if b else float('inf'):>{w}.2f}")
    for n in names:
        ff = runs[n]["client"]["first_failures"]
        if ff:
            out.append(f"first failures ({n}):")
            out += [f"  {f}" for f in ff[:5]]
    return "\n".join(out)


def best_worst(timeline: list[int]) -> str:
    return f"{max(timeline):,} / {min(timeline):,}" if timeline else "-"


def first_last(timeline: list[int]) -> str:
    if not timeline:
        return "-"
    k = min(10, len(timeline))
    return f"{sum(timeline[:k]) / k:,.0f} / {sum(timeline[-k:]) / k:,.0f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="seconds of churn per policy (60)")
    p.add_argument("--quick", action="store_true", help="10 s per policy")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight (8)")
    p.add_argument("--stall", type=float, default=2.0, help="no answer within this = stalled (2 s, as soak)")
    p.add_argument("--timeout", type=float, default=5.0, help="whole-exchange timeout (5 s, as soak)")
    p.add_argument(
        "--client-max-tw",
        type=int,
        metavar="N",
        help="cap the client's own TIME-WAIT sockets (net.ipv4.tcp_max_tw_buckets in the namespace; default: the "
        "kernel's): takes the one client's ephemeral-port limit out of the figures",
    )
    p.add_argument("--port", type=int, default=8080, help="server port inside the namespace (8080)")
    p.add_argument("--policies", default=",".join(POLICIES), help="default,graceful")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument("--progress", action="store_true", help="print the server's counters every second")
    # Internal modes: this file is also the server and the client run inside the namespace.
    p.add_argument("--serve", choices=POLICIES, help=argparse.SUPPRESS)
    p.add_argument("--tap", help=argparse.SUPPRESS)
    p.add_argument("--address", help=argparse.SUPPRESS)
    p.add_argument("--drive", metavar="HOST:PORT", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        return serve(args.serve, args.tap, args.address, args.port)
    if args.drive:
        return drive(args.drive, args.seconds, args.concurrency, args.stall, args.timeout)
    if args.quick:
        args.seconds = 10.0
    args.policies = [x for x in args.policies.split(",") if x]
    if args.seconds <= 0 or args.concurrency < 1 or any(x not in POLICIES for x in args.policies):
        p.error("--seconds > 0, --concurrency >= 1, --policies from default,graceful")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))  # so the finally blocks remove the namespaces
    try:
        res = run(args)
    except (RuntimeError, OSError) as exc:
        log(f"lwip_churn: FAILED: {exc}")
        return 1
    print(json.dumps(res, indent=1) if args.json else report(res), flush=True)
    default = res["runs"].get("default")
    if default is not None and any(k != "port_exhausted" for k in default["client"]["failures"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
