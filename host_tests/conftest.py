"""Shared fixtures: one Loop per test on each host backend, and the end-of-test check that nothing was left behind
(no tracked socket, no descriptor, no byte of the C core's heap)."""

from __future__ import annotations

import contextlib
import gc
import os
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import tcp_core
from tcp_core import Loop
from tcp_core.app import App
from tcp_core.testing import connect, recv_exact, wait_until

# The client helpers live in tcp_core.testing, shared with the firmware tests (pytest_tcp_core.py); the tests import
# them from here as before.
__all__ = [
    "SegmentCapture",
    "StopCrowd",
    "capture_interface",
    "connect",
    "open_fds",
    "recv_exact",
    "stop_crowd",
    "tap_down",
    "wait_until",
]

REQUIRE_LWIP = os.environ.get("TC_REQUIRE_LWIP") == "1"
# tools/test.sh runs the suite as two processes at once: TC_SHARD=lwip takes the tests on the lwIP backend,
# TC_SHARD=linux everything else (the Linux backend's and the backend-free ones). Unset: the whole suite.
SHARD = os.environ.get("TC_SHARD", "")


def open_fds() -> set[int]:
    """The descriptors this process has open now."""
    return {int(name) for name in os.listdir("/proc/self/fd")}


def _lwip_env() -> dict[str, str] | None:
    """The lwIP TAP set-up this process runs in (tools/test.sh exports it inside the namespace), or None."""
    tap = os.environ.get("TC_LWIP_TAP")
    addr = os.environ.get("TC_LWIP_ADDRESS")
    if tap and addr:
        return {"tap": tap, "address": addr}
    return None


def pytest_report_header() -> str:
    """Which limits the C core under test was built with (TCP_CORE_LIMITS=device: the Kconfig defaults)."""
    native = tcp_core._native.load("linux")
    cfg = native.ffi.new("tc_server_config_t *")
    native.lib.tcpy_server_defaults(cfg)
    profile = os.environ.get("TCP_CORE_LIMITS") or "host"
    return (
        f"tcp_core limits: {profile} (max_conns {cfg.max_conns}, high water {cfg.conn.high_water}, "
        f"queue max {cfg.conn.queue_max})"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", ["linux", "lwip"], indirect=True, scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not SHARD:
        return
    if SHARD not in ("linux", "lwip"):
        raise pytest.UsageError(f"TC_SHARD={SHARD!r}: expected linux or lwip")
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_lwip = callspec is not None and callspec.params.get("backend") == "lwip"
        (keep if on_lwip == (SHARD == "lwip") else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "lwip":
        why = ""
        if "lwip" not in tcp_core.available_backends():
            why = "the lwip extension is not built (liblwip-dev missing?)"
        elif _lwip_env() is None:
            why = "not running inside the lwIP namespace (run tools/test.sh, which sets it up)"
        if why:
            if REQUIRE_LWIP:
                pytest.fail(f"lwIP layer required (TC_REQUIRE_LWIP=1) but {why}")
            pytest.skip(why)
    return name


class SegmentCapture:
    """The TCP segments a port sends, caught on an interface by a packet socket (the tests run as root): each as
    (destination port, TCP flags, payload bytes), in the order they left. Open it before the connection."""

    def __init__(self, interface: str) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))  # ETH_P_ALL
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.bind((interface, 0))

    def sent_by(self, port: int) -> list[tuple[int, int, int]]:
        """What was caught so far. This host's own outgoing copies are skipped (on lo every packet is seen twice; on
        the TAP the server's segments come in from lwIP)."""
        self.sock.setblocking(False)
        out = []
        while True:
            try:
                frame, addr = self.sock.recvfrom(1 << 18)
            except BlockingIOError:
                return out
            ip = frame[14:]
            if addr[2] == socket.PACKET_OUTGOING or len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_TCP:
                continue
            ihl = (ip[0] & 15) * 4
            tcp = ip[ihl:]
            src, dst = struct.unpack("!HH", tcp[:4])
            if src == port:
                out.append((dst, tcp[13], int.from_bytes(ip[2:4], "big") - ihl - (tcp[12] >> 4) * 4))

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def tap_down(down: bool = True) -> Iterator[None]:
    """The lwIP TAP link down for the block, up again after it whatever happens: lwIP's peer vanishes without a FIN
    or an RST that lwIP could hear (a phone that left the Wi-Fi). down=False: a block that runs as it is."""
    tap = os.environ.get("TC_LWIP_TAP", "")
    if down:
        subprocess.run(["ip", "link", "set", tap, "down"], check=True)
    try:
        yield
    finally:
        if down:
            subprocess.run(["ip", "link", "set", tap, "up"], check=True)


def capture_interface(backend: str) -> str:
    """Where a backend's server segments can be caught: lo, or the TAP lwIP sends on."""
    env = _lwip_env() if backend == "lwip" else None
    return env["tap"] if env else "lo"


@pytest.fixture(scope="session")
def server_host(backend: str) -> str:
    """The address servers listen on and clients dial: loopback, or lwIP's own address on its TAP."""
    if backend == "lwip":
        env = _lwip_env()
        assert env is not None
        return env["address"].split("/")[0]
    return "127.0.0.1"


@pytest.fixture
def loop(backend: str) -> Iterator[Loop]:
    """A running loop; at the end every handle must be stopped, and no socket, descriptor or heap byte left."""
    gc.collect()
    fds_before = open_fds()
    heap_before = tcp_core.alloc_stats(backend).bytes_in_use
    env = _lwip_env() if backend == "lwip" else None
    lp = Loop(backend, **(env or {}))
    yield lp
    lp.close(deadline_ms=500)  # stops what the test left running; BusyError if any handle or socket remains
    gc.collect()
    heap_after = tcp_core.alloc_stats(backend).bytes_in_use
    assert heap_after == heap_before, f"C heap: {heap_after - heap_before} bytes left behind"
    if backend == "linux":
        # lwIP descriptors are lwIP's own, not the process's; its sockets are checked through the registry.
        deadline = time.monotonic() + 2
        while open_fds() - fds_before and time.monotonic() < deadline:
            gc.collect()
            time.sleep(0.02)
        assert open_fds() - fds_before == set(), "descriptors left open"


# ---- the stop scenario of seed 003: 16 MJPEG viewers, 16 WebSockets, one slowloris ----


@dataclass
class StopCrowd:
    """An App with 16 MJPEG viewers, 16 `websockets` clients (each read by a thread that records the close code it
    gets: 1001 expected, None for no close frame, -1 for a read timeout) and one slowloris (half a request line).

    Viewers either read to EOF on their own threads (``ends`` gets "eof" when the stream's last chunk came before the
    FIN, "short" without it, or the error's name), or are plain sockets left to the test (``viewers``)."""

    app: App
    viewers: list[socket.socket]
    ends: list[str]
    codes: list[int | None]
    readers: list[threading.Thread]
    slow: socket.socket
    stack: contextlib.ExitStack

    def join(self, timeout: float = 10.0) -> None:
        """Wait for the WebSocket readers (after the stop)."""
        for r in self.readers:
            r.join(timeout)

    def close(self) -> None:
        """Close every client socket the test still holds."""
        for s in [*self.viewers, self.slow]:
            s.close()
        self.stack.close()


def _viewer_to_eof(host: str, port: int, out: list[str]) -> None:
    """An MJPEG viewer that reads until the server's FIN (a video player, an <img> tag), then closes."""
    s = connect(host, port)
    s.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")

    def run() -> None:
        data = b""
        try:
            s.settimeout(10)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    out.append("eof" if data.endswith(b"0\r\n\r\n") else "short")
                    break
                data += chunk
        except OSError as exc:
            out.append(type(exc).__name__)
        finally:
            s.close()

    threading.Thread(target=run, daemon=True).start()


def stop_crowd(loop: Loop, host: str, *, viewers_read_to_eof: bool, ws_timeout: float) -> StopCrowd:
    """Start the App and its crowd (see StopCrowd); ws_timeout bounds each WebSocket read."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect as ws_connect

    a = App(loop, host, echo_port=None, http_port=0, http_max_conns=40, stream_fps=30)
    ends: list[str] = []
    viewers: list[socket.socket] = []
    for _ in range(16):
        if viewers_read_to_eof:
            _viewer_to_eof(a.host, a.http_port, ends)
        else:
            s = connect(a.host, a.http_port)
            s.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            viewers.append(s)
    stack = contextlib.ExitStack()
    sockets_ws = [stack.enter_context(ws_connect(f"ws://{a.host}:{a.http_port}/ws", open_timeout=5)) for _ in range(16)]
    codes: list[int | None] = []

    def reader(ws: Any) -> None:
        try:
            while True:
                ws.recv(timeout=ws_timeout)
        except ConnectionClosed as exc:
            codes.append(exc.rcvd.code if exc.rcvd else None)
        except TimeoutError:
            codes.append(-1)

    readers = [threading.Thread(target=reader, args=(w,)) for w in sockets_ws]
    for r in readers:
        r.start()
    slow = connect(a.host, a.http_port)
    slow.sendall(b"GET / HTTP/1.1\r\nHost")
    return StopCrowd(a, viewers, ends, codes, readers, slow, stack)
