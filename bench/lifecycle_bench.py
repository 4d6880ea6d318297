"""Connection lifecycle figures (issue 10): how fast a client reading to EOF gets its EOF, how long a stop takes with
well-behaved clients, and how many TIME-WAIT pcbs a close-mode port-reusing load leaves, on one backend.

    python3 bench/lifecycle_bench.py                        # Linux kernel sockets, loopback
    eval "$(bash tools/lwip_netns.sh up tcbench)"          # lwIP over TAP: run inside the namespace
    ip netns exec tcbench env TC_LWIP_TAP=$TC_LWIP_TAP TC_LWIP_ADDRESS=$TC_LWIP_ADDRESS \\
        python3 bench/lifecycle_bench.py --backend lwip
    bash tools/lwip_netns.sh down tcbench

The tests assert the same behaviour against the configured deadlines; the milliseconds live here.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import threading
import time
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

import tcp_core
from tcp_core import Loop, soak
from tcp_core.app import App


def _loop(backend: str) -> tuple[Loop, str]:
    if backend == "lwip":
        tap, addr = os.environ["TC_LWIP_TAP"], os.environ["TC_LWIP_ADDRESS"]
        return Loop("lwip", tap=tap, address=addr), addr.split("/")[0]
    return Loop("linux"), "127.0.0.1"


def eof_latency(app: App, request: bytes, n: int) -> tuple[float, float, int]:
    """ms from sending the request to the server's FIN (median, p99), and how many ended with an RST."""
    times, resets = [], 0
    for _ in range(n):
        s = socket.create_connection((app.host, app.http_port), timeout=10)
        t0 = time.perf_counter()
        s.sendall(request)
        try:
            while s.recv(65536):
                pass
        except ConnectionResetError:
            resets += 1
        times.append((time.perf_counter() - t0) * 1000)
        s.close()
    times.sort()
    return statistics.median(times), times[int(0.99 * (len(times) - 1))], resets


def stop_once(loop: Loop, host: str) -> Any:
    """16 MJPEG viewers reading to EOF, 16 websockets, one slowloris; the HTTP stop report."""
    app = App(loop, host, echo_port=None, http_port=0, http_max_conns=40, stream_fps=30)
    viewers = []
    for _ in range(16):
        s = socket.create_connection((host, app.http_port), timeout=10)
        s.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")

        def drain(sock: socket.socket = s) -> None:
            with contextlib.suppress(OSError):
                while sock.recv(65536):
                    pass
            sock.close()

        viewers.append(threading.Thread(target=drain, daemon=True))
        viewers[-1].start()
    stack = contextlib.ExitStack()
    wss = [stack.enter_context(ws_connect(f"ws://{host}:{app.http_port}/ws", open_timeout=5)) for _ in range(16)]

    def wsread(ws: Any) -> None:
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            while True:
                ws.recv(timeout=10)

    readers = [threading.Thread(target=wsread, args=(w,), daemon=True) for w in wss]
    for r in readers:
        r.start()
    slow = socket.create_connection((host, app.http_port), timeout=10)
    slow.sendall(b"GET / HTTP/1.1\r\nHost")
    t_end = time.monotonic() + 10
    while sum(e.long_lived for e in loop.registry()) < 32 and time.monotonic() < t_end:
        time.sleep(0.01)
    time.sleep(0.2)
    report = app.stop(deadline_ms=1000)
    for t in [*viewers, *readers]:
        t.join(10)
    slow.close()
    stack.close()
    return report.http


def quiet_websocket(loop: Loop, host: str, seconds: float) -> str:
    """A `websockets` client that sends nothing (its own pings off) for `seconds` under the default settings."""
    app = App(loop, host, echo_port=None, http_port=0)  # idle timeout 10 s, ping 20 s, pong deadline 10 s
    try:
        with ws_connect(f"ws://{host}:{app.http_port}/ws", open_timeout=5, ping_interval=None) as ws:
            time.sleep(seconds)
            ws.send("still here")
            return f"open and echoing ({ws.recv(timeout=5)!r})"
    except (ConnectionClosed, TimeoutError) as exc:
        return f"CLOSED: {exc!r}"
    finally:
        app.stop(500)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["linux", "lwip"], default="linux")
    ap.add_argument("-n", type=int, default=300, help="requests per EOF-latency measurement (300)")
    ap.add_argument("--stops", type=int, default=5, help="stop repeats (5)")
    ap.add_argument("--soak", type=int, default=1000, help="close-mode soak requests (1000)")
    ap.add_argument("--ws-idle", type=float, default=0, help="also keep a WebSocket quiet this many seconds (0: skip)")
    args = ap.parse_args()
    loop, host = _loop(args.backend)
    with loop:
        app = App(loop, host, echo_port=None, http_port=0)
        for name, req in [
            ("HTTP/1.0", b"GET /api/status HTTP/1.0\r\n\r\n"),
            ("Connection: close", b"GET /api/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        ]:
            med, p99, resets = eof_latency(app, req, args.n)
            print(f"{args.backend}: {name:18s} request to EOF: median {med:.2f} ms, p99 {p99:.2f} ms, {resets} RST")
        before = loop.close_stats()
        res = soak.run(
            f"http://{host}:{app.http_port}/api/status",
            requests=args.soak,
            interval_s=0.005,
            source_port=33000,
            pool_size=64,
            close_mode=True,
        )
        time.sleep(0.3)
        st = loop.close_stats()
        print(
            f"{args.backend}: soak --close --source-port: {res.ok}/{args.soak} ok, failures {res.failures}, "
            f"{res.source_ports_used} source ports, p99 {res.latency_ms['p99']} ms; server FIN-first "
            f"{st.fin_first - before.fin_first}, TIME-WAIT freed {st.time_wait_reaped - before.time_wait_reaped}, "
            f"kept {st.time_wait_kept - before.time_wait_kept}, RST sent {st.reset_sent - before.reset_sent}; "
            f"TIME-WAIT in the stack now: {tcp_core.time_wait_count(app.http_port, args.backend)}"
        )
        app.stop(500)
        reports = [stop_once(loop, host) for _ in range(args.stops)]
        ms = [r.elapsed_ms for r in reports]
        print(
            f"{args.backend}: stop (16 viewers to EOF + 16 websockets + 1 slowloris, deadline 1000 ms): "
            f"elapsed {min(ms)}-{max(ms)} ms (median {statistics.median(ms)}), graceful/forced "
            f"{sorted({(r.graceful, r.forced) for r in reports})}"
        )
        if args.ws_idle:
            print(f"{args.backend}: WebSocket quiet {args.ws_idle:.0f} s: {quiet_websocket(loop, host, args.ws_idle)}")


if __name__ == "__main__":
    main()
