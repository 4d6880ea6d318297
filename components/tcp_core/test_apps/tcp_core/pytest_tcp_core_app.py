"""tcp_core's test app under pytest-embedded (ESP-IDF's test_apps layout).

From components/tcp_core/test_apps/tcp_core: `idf.py --preview set-target linux build`, then
`pytest pytest_tcp_core_app.py --embedded-services idf --target linux`; on a chip `idf.py set-target esp32c3 build
flash` and `--embedded-services esp,idf --target esp32c3`. Under Espressif's QEMU (`tools/idf_check.sh qemu-app` from
the project root): an esp32c3 build with `CONFIG_TC_TEST_APP_NET_OPENETH=y` and `--embedded-services idf,qemu`; this
file then writes the eFuses (chip revision v0.3), gives QEMU the OpenCores NIC on user networking and runs the echo
peer the device dials (10.0.2.2 there, this machine's 127.0.0.1).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pytest_embedded_idf", reason="pytest-embedded is not installed")


def _sdkconfig(config: pytest.Config) -> dict[str, Any]:
    app = Path(config.getoption("app_path", None) or Path(__file__).resolve().parent)
    path = app / (config.getoption("build_dir", None) or "build") / "config" / "sdkconfig.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data


def _qemu(config: pytest.Config) -> bool:
    return "qemu" in str(config.getoption("embedded_services", None) or "")


@pytest.fixture
def qemu_extra_args(request: pytest.FixtureRequest) -> str | None:
    """pytest-embedded-qemu's extra QEMU arguments, unless given: the eFuses of a v0.3 chip (ESP-IDF 5.5 wants it; from
    pytest-embedded-qemu's table, without --qemu-efuse-path, whose strap boots the esp32c3 into download mode), the
    OpenCores NIC on user networking for an Ethernet build (no forwards: the device dials out), and -icount so the
    watchdogs count emulated time on a loaded machine."""
    given: str | None = request.config.getoption("qemu_extra_args", None)
    if given or not _qemu(request.config):
        return given
    from pytest_embedded_qemu.qemu import QEMU_TARGETS

    cfg = _sdkconfig(request.config)
    target = str(cfg.get("IDF_TARGET", "esp32c3"))
    app = Path(request.config.getoption("app_path", None) or Path(__file__).resolve().parent)
    efuse = app / (request.config.getoption("build_dir", None) or "build") / "qemu_efuse.bin"
    efuse.write_bytes(QEMU_TARGETS[target].default_efuse)
    nic = "-nic user,model=open_eth" if cfg.get("TC_TEST_APP_NET_OPENETH") else "-nic none"
    return (
        f"-icount shift=3 {nic} -drive file={efuse},if=none,format=raw,id=efuse "
        f"-global driver=nvram.{target}.efuse,property=drive,value=efuse"
    )


@pytest.fixture
def echo_peer(request: pytest.FixtureRequest) -> Iterator[list[int]]:
    """For an Ethernet build: the echo peer on 127.0.0.1:CONFIG_TC_TEST_APP_PEER_PORT that the device dials; yields
    the byte counts it echoed, one per connection. Nothing for a loopback build."""
    cfg = _sdkconfig(request.config)
    echoed: list[int] = []
    if not cfg.get("TC_TEST_APP_NET_OPENETH"):
        yield echoed
        return
    srv = socket.create_server(("127.0.0.1", int(cfg["TC_TEST_APP_PEER_PORT"])))
    srv.settimeout(0.5)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(60)
                n = 0
                try:
                    while data := conn.recv(4096):
                        conn.sendall(data)
                        n += len(data)
                except OSError:
                    pass
                echoed.append(n)

    t = threading.Thread(target=serve, daemon=True)
    t.start()  # listening before the dut fixture boots the device
    try:
        yield echoed
    finally:
        done.set()
        srv.close()
        t.join(65)


@pytest.mark.linux
@pytest.mark.esp32c3
@pytest.mark.esp32
def test_echo_round_trips_then_everything_is_freed(echo_peer: list[int], dut: Any) -> None:
    """100 echoes through the device's own stack (and 100 with a peer on the network for an Ethernet build), every
    handle stopped, the loop freed, the heap back to its start."""
    line = dut.expect(r"tcp_core test app: (PASS|FAIL \(.*\))", timeout=60)
    assert line.group(1) == b"PASS", line.group(0)
    if dut.app.sdkconfig.get("TC_TEST_APP_NET_OPENETH"):
        for _ in range(100):  # bounded (~10 s): the peer counts a connection once the device's close reaches it
            if echo_peer:
                break
            time.sleep(0.1)
        assert sum(echo_peer) == 100 * 4, echo_peer  # the device's 100 messages of 4 bytes came through this peer
