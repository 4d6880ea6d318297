"""Shared fixtures: one Loop per test on each host backend, and the end-of-test check that nothing was left behind
(no tracked socket, no descriptor, no byte of the C core's heap)."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterator

import pytest

import tcp_core
from tcp_core import Loop
from tcp_core.testing import connect, recv_exact, wait_until

# The client helpers live in tcp_core.testing, shared with the firmware tests (pytest_tcp_core.py); the tests import
# them from here as before.
__all__ = ["connect", "open_fds", "recv_exact", "wait_until"]

REQUIRE_LWIP = os.environ.get("TC_REQUIRE_LWIP") == "1"


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
