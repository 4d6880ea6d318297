"""Firmware tests (pytest-embedded): the demo firmware of main/ is the device under test.

    idf.py --preview set-target linux build
    pytest pytest_tcp_core.py --embedded-services idf --target linux        # the ELF runs here and is the device

    idf.py set-target esp32 build flash                                     # or esp32c3
    TC_DEVICE_HOST=192.168.4.1 pytest pytest_tcp_core.py --embedded-services esp,idf --target esp32 [--port PORT]

    tools/idf_check.sh qemu        # esp32c3 Ethernet build under Espressif's QEMU: --embedded-services idf,qemu

On a chip the tests reach the services over Wi-Fi: TC_DEVICE_HOST names the device's address (192.168.4.1 once this
machine has joined its soft-AP); without it, a station-mode firmware's "station up" log line gives it, and with
TC_WIFI_SSID / TC_WIFI_PASSWORD the tests first send `wifi` on the console (stored in NVS). Under QEMU the firmware's
OpenCores Ethernet sits behind QEMU's user networking: this file forwards a free port of 127.0.0.1 to each service
(hostfwd, loopback only) and the device reaches this machine's 127.0.0.1 as 10.0.2.2. The console tests need no
network. Every case skips with its reason when pytest-embedded, the build or the board is missing.

`pytest --target linux --embedded-services idf` (the ESP-IDF way, no file named) collects this file instead of the
host suite (conftest.py); a plain `pytest` runs only the host suite (testpaths = host_tests).
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent
try:
    import tcp_core  # noqa: F401  (its test helpers; the console's prompt comes from the built C library)
except ImportError:  # ESP-IDF's Python environment: use the helpers from this checkout (built in place)
    sys.path.insert(0, str(ROOT / "python"))

from tcp_core.console import PROMPT, clean_answer, command_timeout  # noqa: E402
from tcp_core.httphead import read_response_head  # noqa: E402
from tcp_core.testing import MjpegStream, connect, echo_roundtrip, http_request, recv_exact, ws_echo  # noqa: E402

pytest.importorskip(
    "pytest_embedded_idf",
    reason="pytest-embedded is not installed (pip install -e '.[embedded]': pytest-embedded, pytest-embedded-idf, "
    "pytest-embedded-serial-esp)",
)

TARGETS = ["linux", "esp32", "esp32c3"]

# One mark per target (ESP-IDF's CI selects runners by them) and the target as an indirect parameter, which
# pytest-embedded-idf's `target` fixture reads.
pytestmark = [
    pytest.mark.linux,
    pytest.mark.esp32,
    pytest.mark.esp32c3,
    pytest.mark.parametrize("target", TARGETS, indirect=True),
]

BOOT_TIMEOUT_S = 60.0  # a chip boots and joins Wi-Fi (station mode waits up to TCP_CORE_WIFI_STA_TIMEOUT_MS)


# ---- when a case cannot run: pytest-embedded's options, the build, the board ----


def _services(config: pytest.Config) -> list[str]:
    value = config.getoption("embedded_services", None) or ""
    return [s.strip() for s in str(value).split(",") if s.strip()]


def _build_dir(config: pytest.Config) -> Path:
    app_path = Path(config.getoption("app_path", None) or ROOT)
    return app_path / (config.getoption("build_dir", None) or "build")


def _sdkconfig(build: Path) -> dict[str, Any]:
    path = build / "config" / "sdkconfig.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data


def _serial_ports() -> list[str]:
    try:
        from serial.tools import list_ports
    except ImportError:
        return []
    # USB ones only: boards connect through a USB-UART bridge or their own USB-Serial/JTAG; the legacy ttyS ports a
    # PC lists have nothing behind them (a board on one needs --port).
    return [p.device for p in list_ports.comports() if p.vid is not None]


def _qemu(config: pytest.Config) -> bool:
    return "qemu" in _services(config)


def why_not(config: pytest.Config, target: str) -> str | None:
    """The reason this run cannot test `target`, or None."""
    services = _services(config)
    if "qemu" in services:
        return _why_not_qemu(config, target)
    if "idf" not in services:
        return (
            "pytest-embedded needs its services: --embedded-services idf --target linux (the linux-target ELF is "
            "the device) or --embedded-services esp,idf --target esp32 (a board)"
        )
    wanted = config.getoption("target", None)
    if wanted and wanted != "auto" and wanted != target:
        return f"this run is for --target {wanted}"
    if target == "linux" and "esp" in services:
        return "the linux target runs as a host process: --embedded-services idf, without esp"
    if target != "linux" and "esp" not in services:
        return f"{target} is a board: --embedded-services esp,idf"
    build = _build_dir(config)
    how = "idf.py --preview set-target linux build" if target == "linux" else f"idf.py set-target {target} build"
    if not any(build.glob("*.elf")):
        return f"no firmware build in {build} (no *.elf): run `{how}` first"
    built_for = _sdkconfig(build).get("IDF_TARGET")
    if built_for and built_for != target:
        return f"{build} holds a {built_for} build, not {target}: run `{how}`"
    if target != "linux" and not config.getoption("port", None) and not _serial_ports():
        return f"no {target} board: no USB serial port found (connect one, or pass --port)"
    return None


def _why_not_qemu(config: pytest.Config, target: str) -> str | None:
    wanted = config.getoption("target", None)
    if target == "linux" or (wanted and wanted != "auto" and wanted != target):
        return f"this QEMU run is for --target {wanted}"
    build = _build_dir(config)
    cfg = _sdkconfig(build)
    if cfg.get("IDF_TARGET") != target:
        return f"no {target} build in {build}: tools/idf_check.sh qemu builds one"
    if not cfg.get("DEMO_ETH_OPENETH"):
        return "QEMU emulates the OpenCores Ethernet MAC only: build with CONFIG_DEMO_ETH_OPENETH=y (idf_check.sh qemu)"
    return None


# ---- QEMU: user networking with a free loopback port forwarded to each service ----

_QEMU_FWD: dict[int, int] = {}  # device port -> port on 127.0.0.1
_QEMU_DNS_FWD: list[int] = []  # the UDP port on 127.0.0.1 forwarded to the device's DNS responder (port 53), if built


def _free_loopback_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _host_of(s: socket.socket) -> str:
    """The Host header a browser sends on this connection: the address and port it dialled. (A captive portal in
    portal mode redirects every other Host to its page.)"""
    addr, port = s.getpeername()[:2]
    return f"{addr}:{port}"


@pytest.fixture
def qemu_extra_args(request: pytest.FixtureRequest) -> str | None:
    """pytest-embedded-qemu's extra QEMU arguments: unless given, the OpenCores NIC on user networking with host
    forwards bound to 127.0.0.1 only (never another address) for the echo, HTTP and esp_http_server ports, and a
    UDP one for the DNS responder's port 53 when the build has it."""
    given: str | None = request.config.getoption("qemu_extra_args", None)
    if given or not _qemu(request.config):
        return given
    cfg = _sdkconfig(_build_dir(request.config))
    ports = [int(cfg.get(k, 0)) for k in ("DEMO_ECHO_PORT", "DEMO_HTTP_PORT", "DEMO_HTTPD_PORT")]
    _QEMU_FWD.clear()
    _QEMU_FWD.update({p: _free_loopback_port() for p in ports if p})
    fwd = ",".join(f"hostfwd=tcp:127.0.0.1:{h}-:{d}" for d, h in _QEMU_FWD.items())
    _QEMU_DNS_FWD.clear()
    if cfg.get("DEMO_DNS_SERVER"):
        _QEMU_DNS_FWD.append(_free_loopback_port(socket.SOCK_DGRAM))
        fwd += f",hostfwd=udp:127.0.0.1:{_QEMU_DNS_FWD[0]}-:53"
    # The chip's eFuses (revision v0.3, which ESP-IDF 5.5 requires) from pytest-embedded-qemu's table, without its
    # --qemu-efuse-path, whose strap setting boots the esp32c3 into UART download mode.
    from pytest_embedded_qemu.qemu import QEMU_TARGETS

    efuse = _build_dir(request.config) / "qemu_efuse.bin"
    efuse.write_bytes(QEMU_TARGETS[str(cfg.get("IDF_TARGET", "esp32c3"))].default_efuse)
    # -icount: virtual time follows the instructions executed. Without it, on a loaded host the virtual clock runs
    # on while QEMU's CPU thread waits for a core, and the interrupt watchdog (300 ms) fired about 1 s after every
    # boot here; figures the firmware measures (ota-prepare's stop time) are then in virtual time.
    return (
        f"-icount shift=3 -nic user,model=open_eth,{fwd} -drive file={efuse},if=none,format=raw,id=efuse "
        f"-global driver=nvram.{cfg.get('IDF_TARGET', 'esp32c3')}.efuse,property=drive,value=efuse"
    )


@pytest.fixture(autouse=True)
def _skip_without_firmware(request: pytest.FixtureRequest) -> None:
    """Runs before pytest-embedded builds its `dut`, so a missing build or board is a skip with its reason."""
    callspec = getattr(request.node, "callspec", None)
    target = callspec.params.get("target", "linux") if callspec else "linux"
    reason = why_not(request.config, target)
    if reason:
        pytest.skip(reason)


# ---- the device: its log, its console, its address ----


def _text(data: Any) -> str:
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)


# Each number up to the character the log puts after it: the log arrives in pieces, and a pattern that ended on the
# digits matched "808" of "8081" once when the serial output was cut there (KeyError in the forwards under QEMU).
_BOOT = re.compile(
    rb"station up: http://(?P<ip>[0-9.]+):\d+/"
    rb"|echo on port (?P<echo>\d+), HTTP on port (?P<http>\d+) "
    rb"|services failed: (?P<failed>[^\r\n]*)[\r\n]"
    rb"|esp_http_server \(tcp_core adapter\) on port (?P<httpd>\d+):"
    rb"|(?P<prompt>" + re.escape(PROMPT.encode()) + rb")"
)


# A prompt at the start of a line; esp_console colours it when line editing is on.
_PROMPT = re.compile(rb"\r?\n(?:\x1b\[[0-9;]*m)?" + re.escape(PROMPT.rstrip().encode()))


@dataclass
class Device:
    """The firmware as the tests see it: its console (through the dut) and its services' addresses."""

    dut: Any
    target: str
    sdkconfig: dict[str, Any]
    host: str | None = None
    echo_port: int = 0
    http_port: int = 0
    httpd_port: int | None = None
    device_ports: tuple[int, int] = (0, 0)  # echo and HTTP as the device sees them (under QEMU: not the forwards)
    has_console: bool = False
    log: list[str] = field(default_factory=list)

    def console(self, line: str, timeout: float = 10.0) -> str:
        """Type one line on the REPL and return its answer (without the echo and the prompt)."""
        if not self.has_console:
            pytest.skip("this build has no console (CONFIG_DEMO_CONSOLE)")
        self.dut.write(line)
        # linenoise types the line back; the answer follows that echo. Prompts drawn before it are skipped: on the
        # linux target the REPL redraws its prompt whenever a signal interrupts its read() of stdin. The console task
        # runs at app_main's priority, below the loop's: on a device saturated by clients it types back late (a
        # `status` under the many-clients load below took 8 s under QEMU), so a longer timeout waits that long.
        self.dut.expect_exact(line, timeout=max(5.0, timeout))
        raw = self.dut.expect(_PROMPT, timeout=command_timeout(line, timeout), return_what_before_match=True)
        return clean_answer(_text(raw), line)

    def net(self) -> str:
        """The address the services answer on, or a skip that says how to provide one."""
        if self.host is None:
            pytest.skip(
                f"no address of the {self.target} on this machine's network: set TC_DEVICE_HOST (192.168.4.1 after "
                "joining its soft-AP), or TC_WIFI_SSID/TC_WIFI_PASSWORD for a station-mode build"
            )
        return self.host


def _boot(dut: Any, target: str, sdkconfig: dict[str, Any], qemu: bool = False) -> Device:
    local = target == "linux" or qemu
    dev = Device(dut, target, sdkconfig, host="127.0.0.1" if local else os.environ.get("TC_DEVICE_HOST"))
    want_console = bool(sdkconfig.get("DEMO_CONSOLE", True))
    want_httpd = bool(sdkconfig.get("DEMO_HTTPD_ADAPTER", target == "linux"))
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    while not (dev.echo_port and (dev.has_console or not want_console) and (dev.httpd_port or not want_httpd)):
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"the firmware did not finish starting within {BOOT_TIMEOUT_S:g} s (see the dut log)")
        m = dut.expect(_BOOT, timeout=left)
        if m.group("failed") is not None:
            pytest.fail(f"the firmware's services failed: {_text(m.group('failed'))} (a port in use on this host?)")
        if m.group("ip") and dev.host is None:
            dev.host = _text(m.group("ip"))
        if m.group("echo"):
            dev.echo_port, dev.http_port = int(m.group("echo")), int(m.group("http"))
        if m.group("httpd"):
            dev.httpd_port = int(m.group("httpd"))
        if m.group("prompt"):
            dev.has_console = True
    ssid = os.environ.get("TC_WIFI_SSID")
    if dev.host is None and ssid and dev.has_console:
        answer = dev.console(f'wifi "{ssid}" "{os.environ.get("TC_WIFI_PASSWORD", "")}"')
        assert "stored" in answer, answer
        m = dut.expect(re.compile(rb"station up: http://([0-9.]+):\d+/"), timeout=30)
        dev.host = _text(m.group(1))
    dev.device_ports = (dev.echo_port, dev.http_port)
    if qemu:  # the services answer on the forwarded loopback ports
        dev.echo_port, dev.http_port = _QEMU_FWD[dev.echo_port], _QEMU_FWD[dev.http_port]
        dev.httpd_port = _QEMU_FWD[dev.httpd_port] if dev.httpd_port else None
    return dev


@pytest.fixture
def device(dut: Any, target: str, request: pytest.FixtureRequest) -> Iterator[Device]:
    """The started firmware: services listening, console prompt seen (chips are reset by pytest-embedded)."""
    yield _boot(dut, target, dict(dut.app.sdkconfig), qemu=_qemu(request.config))


# ---- echo and client (seed 000) ----


def test_echo(device: Device) -> None:
    host = device.net()
    for size in (1, 1460, 64 * 1024):
        payload = os.urandom(size)
        assert echo_roundtrip(host, device.echo_port, payload, timeout=10) == payload
    with connect(host, device.echo_port) as a, connect(host, device.echo_port) as b:
        a.sendall(b"from a")
        b.sendall(b"from b")
        assert recv_exact(b, 6) == b"from b" and recv_exact(a, 6) == b"from a"


def test_client_connects_echoes_and_reconnects(device: Device) -> None:
    cfg = device.sdkconfig
    if not cfg.get("DEMO_CLIENT_ENABLE"):
        pytest.skip(
            "the TCP client is off in this build: CONFIG_DEMO_CLIENT_ENABLE=y with CONFIG_DEMO_CLIENT_HOST = this "
            "machine (127.0.0.1 on the linux target) and CONFIG_DEMO_CLIENT_PORT"
        )
    port = int(cfg["DEMO_CLIENT_PORT"])
    wait_s = int(cfg.get("TCP_CORE_BACKOFF_MAX_MS", 30000)) / 1000 + 10  # the client may be in its longest backoff
    # The linux target dials 127.0.0.1, QEMU's user network maps 10.0.2.2 to it: loopback is enough there. A board
    # dials this machine's address on the Wi-Fi network.
    local = device.target == "linux" or device.host == "127.0.0.1"
    with socket.create_server(("127.0.0.1" if local else "", port), reuse_port=False) as remote:
        remote.settimeout(wait_s)
        for round_ in range(2):  # the second accept proves the reconnect after the first peer left
            peer, _ = remote.accept()
            with peer:
                peer.settimeout(10)
                message = f"round {round_} to the device".encode()
                peer.sendall(message)
                assert recv_exact(peer, len(message)) == message


# ---- HTTP, WebSocket, streams ----


def test_http_ws_stream(device: Device) -> None:
    host = device.net()
    page = http_request(host, device.http_port, "GET", "/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    status = http_request(host, device.http_port, "GET", "/api/status")
    assert status.status == 200, status
    doc = json.loads(status.body)
    listeners = {s["owner"] for s in doc["sockets"] if s["kind"] == "listener"}
    assert {"echo", "http"} <= listeners, doc
    assert ws_echo(host, device.http_port, "/ws", b"tcp_core on the device") == b"tcp_core on the device"
    with MjpegStream(host, device.http_port, "/stream") as viewer:
        for _ in range(3):
            frame = viewer.next_frame(timeout=5)
            assert frame[:2] == b"\xff\xd8" and frame[-2:] == b"\xff\xd9"
    assert http_request(host, device.http_port, "GET", "/no-such-page").status == 404
    if device.httpd_port:  # esp_http_server through the adapter: its page and its chunked stream
        page = http_request(host, device.httpd_port, "GET", "/")
        assert page.status == 200 and b"tcp_core adapter" in page.body, page
        with MjpegStream(host, device.httpd_port, "/stream") as viewer:
            assert viewer.next_frame(timeout=5)[:2] == b"\xff\xd8"


# ---- seed 002: the captive portal's DNS responder and probe answers, on the device's own stack ----


def _device_address(device: Device) -> str:
    """The device's own address as it reports it on its console: the Ethernet interface's (DHCP; 10.0.2.15 under
    QEMU's user networking) or the soft-AP's."""
    text = device.console("status")
    m = re.search(r"^eth: link \w+, address (\d+\.\d+\.\d+\.\d+) ", text, re.M) or re.search(
        r"soft-AP (\d+\.\d+\.\d+\.\d+) with", text
    )
    assert m, f"the console's status names no address of the device: {text}"
    return m.group(1)


def test_captive_dns_and_probes(device: Device, request: pytest.FixtureRequest) -> None:
    """tcp_core's DNS responder and the OS probe answers on the firmware (tc_dns_server.h, tc_captive.h), asked by
    dnspython and requests: every name's A record is the address the device reports for itself, AAAA and other types
    get NOERROR with no record, another class NOTIMP; then Android's and Apple's probes, with their own Host, get the
    portal's redirect to the device's page (the online answers in an online-mode build). Under QEMU the questions go
    through a UDP forward of 127.0.0.1 to the device's port 53, the probes through the HTTP forward."""
    cfg = device.sdkconfig
    if not (cfg.get("DEMO_CAPTIVE_PORTAL") and cfg.get("DEMO_DNS_SERVER")):
        pytest.skip(
            "this build has no captive portal with its DNS responder (CONFIG_DEMO_CAPTIVE_PORTAL, "
            "CONFIG_DEMO_DNS_SERVER: on by default on the soft-AP; tools/idf_check.sh qemu turns them on for Ethernet)"
        )
    dns_message = pytest.importorskip("dns.message", reason="dnspython is not installed (pip install dnspython)")
    import dns.exception
    import dns.flags
    import dns.query
    import dns.rcode
    import dns.rdatatype

    requests = pytest.importorskip("requests")
    host = device.net()
    if _qemu(request.config):
        assert _QEMU_DNS_FWD, "the build has a DNS responder but QEMU got no UDP forward to it"
        server, port = "127.0.0.1", _QEMU_DNS_FWD[0]
    else:
        server, port = host, 53
    ip = _device_address(device)
    assert ip != "0.0.0.0"

    def query(name: str, rdtype: str, rdclass: str = "IN") -> Any:
        q = dns_message.make_query(name, rdtype, rdclass=rdclass)
        for attempt in range(3):  # UDP: a resolver asks again when an answer is lost; bounded
            try:
                return dns.query.udp(q, server, port=port, timeout=10)
            except dns.exception.Timeout:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    names = ["connectivitycheck.gstatic.com", "captive.apple.com", "www.msftconnecttest.com", "any-name.example.org"]
    for name in names:
        r = query(name, "A")
        assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA, (name, r)
        assert [rr.address for rrset in r.answer for rr in rrset] == [ip], (name, r)
        assert 0 < r.answer[0].ttl <= 300, r
    for rdtype in ("AAAA", "TXT", "TYPE65280"):  # IPv6 and every other type (an unassigned one included): no record
        r = query("captive.apple.com", rdtype)
        assert r.rcode() == dns.rcode.NOERROR and r.answer == [], (rdtype, r)
    r = query("www.msftconnecttest.com", "ANY")
    assert [rrset.rdtype for rrset in r.answer] == [dns.rdatatype.A], r
    r = query("captive.apple.com", "A", rdclass="CH")  # another class: not implemented
    assert r.rcode() == dns.rcode.NOTIMP and r.answer == [], r
    print(f"DNS: {len(names)} names -> {ip} (the device's own address), AAAA/TXT/TYPE65280 empty, CH NOTIMP")

    http_port = int(cfg.get("DEMO_HTTP_PORT", 80))
    portal = f"http://{ip}/" if http_port == 80 else f"http://{ip}:{http_port}/"
    online = bool(cfg.get("DEMO_CAPTIVE_MODE_ONLINE"))
    base = f"http://{host}:{device.http_port}"
    probes = [
        ("connectivitycheck.gstatic.com", "/generate_204", 204, b""),
        ("captive.apple.com", "/hotspot-detect.html", 200, b"<BODY>Success</BODY>"),
    ]
    for probe_host, path, status, body in probes:
        resp = requests.get(base + path, headers={"Host": probe_host}, allow_redirects=False, timeout=30)
        if online:
            assert resp.status_code == status and body in resp.content, (probe_host, resp.status_code, resp.content)
        else:
            assert resp.status_code == 302, (probe_host, resp.status_code, resp.content[:80])
            assert resp.headers["Location"] == portal, (probe_host, resp.headers)
    if not online:  # a request for any other site lands on the portal too; the device's own pages are served
        foreign = requests.get(
            base + "/some/page", headers={"Host": "news.example.com"}, allow_redirects=False, timeout=30
        )
        assert foreign.status_code == 302 and foreign.headers["Location"] == portal, foreign.headers
        own = requests.get(base + "/api/status", timeout=30)
        assert own.status_code == 200 and "sockets" in own.json(), own.status_code
    print(f"probes: {'online answers' if online else f'302 to {portal}'}")


def test_a_burst_of_connections_is_served_whole(device: Device) -> None:
    """As many connections as the HTTP server takes (CONFIG_TCP_CORE_HTTP_MAX_CONNS), opened at once (a browser
    opening a dashboard and its streams), ten times: each gets an answer. Those the loop has not accepted yet wait in
    the stack's backlog, none may be reset: on esp-lwip the 7th and 8th of a burst were, in 2 of 10 bursts under QEMU
    (packet capture: the RST right after the handshake), because lwIP resets a connection that finds the listener's
    accept mailbox (6) full; the lwIP backend now keeps the backlog within it. Under QEMU this test seldom meets that
    race (the forward hands the device one or two SYNs at a time; it passed on the unfixed firmware too): on a board,
    or when QEMU does hand over a burst, it does. (Beyond the server's capacity the full policy evicts newcomers by
    design: not tested here.)"""
    host = device.net()
    n = int(device.sdkconfig.get("TCP_CORE_HTTP_MAX_CONNS", 8))
    bursts = 10
    bad: list[tuple[int, int, bytes]] = []
    for burst in range(bursts):
        socks: list[socket.socket] = []
        try:
            # Each request right after its connect: QEMU's forwarding socket listens with a backlog of 1, and when its
            # main loop is slow to accept, this kernel drops the next SYNs and connect() retries a second later; a
            # connection left without its request meanwhile would meet the device's head timeout (an RST).
            for _ in range(n):
                socks.append(connect(host, device.http_port, timeout=10))
                socks[-1].sendall(
                    f"GET /api/status HTTP/1.1\r\nHost: {_host_of(socks[-1])}\r\nConnection: close\r\n\r\n".encode()
                )
            for i, s in enumerate(socks):
                s.settimeout(30)
                data = b""
                try:
                    while chunk := s.recv(4096):
                        data += chunk
                except OSError as exc:
                    data += f" [{type(exc).__name__}: {exc}]".encode()
                if not data.startswith(b"HTTP/1.1 "):  # an answer (a 503 if earlier ones still linger), not a reset
                    bad.append((burst, i, data[:80]))
        finally:
            for s in socks:
                s.close()
        time.sleep(1.0)  # the device has seen our FINs: the next burst finds the server empty (or gets 503s)
    assert not bad, f"{len(bad)} of {bursts * n} connections of bursts got no answer: {bad[:8]}"


# ---- seed 001: a browser's reused source port against a server that closes first ----


def test_seed001_port_reuse_when_the_device_closes_first(device: Device) -> None:
    """Seed 001 on the device's own stack: every request on a new connection from the same source port, each asking
    `Connection: close` and read to EOF, so the device closes first and holds the TIME-WAIT that the next SYN from
    that port meets (under QEMU slirp keeps the client's source port toward the device). None may stall or reset.
    The client closes second, so this machine's kernel holds no TIME-WAIT of its own and grants the port again."""
    from tcp_core import soak

    host = device.net()
    n = 100
    source = _free_loopback_port()
    # 50 ms apart, as the host test: the device frees its TIME-WAIT pcb once its loop has seen the client's FIN.
    # The stall window is wide (a seed-001 stall lasts until lwIP's TIME-WAIT ends, far longer) so that a slow
    # answer on a loaded machine under emulation is not taken for one.
    r = soak.run(
        f"http://{host}:{device.http_port}/api/status",
        requests=n,
        interval_s=0.05,
        stall_s=10.0,
        timeout_s=20.0,
        source_port=source,
        close_mode=True,
    )
    print(soak.report_text(r))
    assert r.ok == n and r.failures == {}, soak.report_text(r)
    # The point is the reuse: this kernel granted the one port every time (a refusal moves to the next port).
    assert r.source_ports_used <= 2, soak.report_text(r)


# ---- the seed-003 stop: every server within the deadline, an esp_http_server stream running ----


def _refused(host: str, port: int) -> bool:
    """Nothing serves host:port. Behind QEMU's user networking the host side of a forward accepts every connection
    and closes it when the device refuses: an accepted connection that ends at once counts as refused too."""
    try:
        with connect(host, port, timeout=3) as s:
            s.settimeout(3)
            try:
                return s.recv(1) == b""
            except ConnectionResetError:
                return True
            except TimeoutError:  # open and waiting for us: a server is there
                return False
    except OSError:
        return True


def test_ota_prepare_on_the_console_stops_every_server_within_the_deadline(device: Device) -> None:
    host = device.net()
    deadline_ms = 2000
    viewers = [MjpegStream(host, device.http_port, "/stream")]
    if device.httpd_port:
        viewers.append(MjpegStream(host, device.httpd_port, "/stream"))  # the CameraWebServer case of seed 003
    idle_echo = connect(host, device.echo_port)
    try:
        for v in viewers:
            assert v.next_frame(timeout=5)[:2] == b"\xff\xd8"
        t0 = time.monotonic()
        answer = device.console(f"ota-prepare {deadline_ms}")
        took = time.monotonic() - t0
        m = re.search(
            r"ota-prepare: servers stopped in (\d+) ms \(deadline (\d+) ms\): (\d+) closed, (\d+) forced; "
            r"heap freed (-?\d+) bytes",
            answer,
        )
        assert m, answer
        elapsed, _, closed, forced, _ = map(int, m.groups())
        print(
            f"stop: {elapsed} ms on the device for a {deadline_ms} ms deadline, {took * 1000:.0f} ms seen here, "
            f"{closed} closed, {forced} forced"
        )
        slack_ms = 1000 if device.target == "linux" else 1500  # the loop's reaction time, the REPL's round trip
        assert elapsed <= deadline_ms + slack_ms, answer
        assert took <= (deadline_ms + slack_ms) / 1000 + 2, f"the console answered after {took:.1f} s"
        assert closed + forced >= 2, answer  # at least the idle echo connection and a stream
        for v in viewers:
            assert v.wait_closed(3.0) is not None, "a stream outlived the stop"
        ports = [device.echo_port, device.http_port] + ([device.httpd_port] if device.httpd_port else [])
        assert all(_refused(host, p) for p in ports), "a server still accepts after the stop"
        after = device.console("status")
        assert "ota: prepared" in after and "listener" not in after, after
        assert "ota-prepare" in device.console("help"), "the device must stay up after an OTA prepare"
    finally:
        for v in viewers:
            v.close()
        idle_echo.close()


def test_ota_prepare_with_clients_that_read_to_the_end_is_fast(device: Device) -> None:
    """Seed 003 with well-behaved clients: the viewers and an echo peer read until the device ends their connection,
    then close, as browsers and read-to-EOF loops do. The stop then waits for nobody: no connection is forced, and the
    device reports the time it took (the figure the lifecycle issue asks for, under QEMU in its virtual time)."""
    host = device.net()
    deadline_ms = 5000
    viewers = [MjpegStream(host, device.http_port, "/stream") for _ in range(2)]
    if device.httpd_port:
        viewers.append(MjpegStream(host, device.httpd_port, "/stream"))
    echo = connect(host, device.echo_port)
    ended: list[float | None] = []

    def watch(v: MjpegStream) -> None:
        ended.append(v.wait_closed(deadline_ms / 1000 + 10))
        v.close()  # our FIN answers the device's: its lingering close ends here

    def echo_to_eof() -> None:
        echo.settimeout(deadline_ms / 1000 + 10)
        try:
            while echo.recv(4096):
                pass
            ended.append(0.0)
        except OSError:
            ended.append(None)
        echo.close()

    try:
        for v in viewers:
            assert v.next_frame(timeout=5)[:2] == b"\xff\xd8"
        assert echo_roundtrip(host, device.echo_port, b"before the stop") == b"before the stop"
        threads = [threading.Thread(target=watch, args=(v,)) for v in viewers]
        threads.append(threading.Thread(target=echo_to_eof))
        for t in threads:
            t.start()
        answer = device.console(f"ota-prepare {deadline_ms}")
        for t in threads:
            t.join(deadline_ms / 1000 + 15)
        m = re.search(
            r"ota-prepare: servers stopped in (\d+) ms \(deadline \d+ ms\): (\d+) closed, (\d+) forced", answer
        )
        assert m, answer
        elapsed, closed, forced = map(int, m.groups())
        print(f"stop with clients reading to the end: {elapsed} ms on the device, {closed} closed, {forced} forced")
        assert len(ended) == len(viewers) + 1 and None not in ended, f"a client was not ended: {ended}"
        # Nobody waited for the deadline. esp_http_server's stream is ended by shutting its socket (the adapter's way
        # to make a blocked handler return), which the demo counts as forced; tcp_core's connections all close.
        assert forced == (1 if device.httpd_port else 0), answer
        assert elapsed < deadline_ms, answer
    finally:
        for v in viewers:
            v.close()
        echo.close()


def test_ota_prepare_over_http(device: Device) -> None:
    host = device.net()
    resp = http_request(host, device.http_port, "POST", "/api/ota-prepare?deadline_ms=1500")
    assert resp.status == 202 and b"within 1500 ms" in resp.body, resp
    m = device.dut.expect(
        re.compile(rb"OTA prepare: every server stopped in (\d+) ms \(deadline 1500 ms\)"), timeout=1.5 + 10
    )
    assert int(m.group(1)) <= 1500 + 1500, _text(m.group(0))
    assert _refused(host, device.http_port)


# ---- memory: the heap an idle HTTP connection costs on the device, lwIP's share included ----


def _free_heap(device: Device) -> int | None:
    m = re.search(r"^heap: (\d+) bytes free", device.console("status"), re.M)
    return int(m.group(1)) if m else None


def _one_keep_alive_request(s: socket.socket) -> None:
    s.sendall(f"GET /no-such-page HTTP/1.1\r\nHost: {_host_of(s)}\r\n\r\n".encode())
    body = bytearray()
    try:
        head = read_response_head(s, body)
    except ConnectionResetError as e:
        raise AssertionError(f"the device closed a keep-alive connection: {e}") from None
    assert head.status == 404 and head.content_length is not None, head.raw
    if head.content_length > len(body):
        recv_exact(s, head.content_length - len(body))


def _settled_heap(device: Device) -> int | None:
    """The free heap once it holds still: an answer's segments wait in lwIP until the peer's ACK (QEMU's user
    networking delays it), and a reading taken right after a request counted them as the connections' own (one run
    gave 1,201 bytes per connection where the settled figure is ~650)."""
    last = _free_heap(device)
    for _ in range(20):  # bounded: ~10 s
        time.sleep(0.5)
        now = _free_heap(device)
        if now is None or now == last:
            return now
        last = now
    return last


def test_heap_per_idle_http_connection(device: Device) -> None:
    host = device.net()
    before = _settled_heap(device)
    if before is None:
        pytest.skip("this build's console shows no device heap (the linux target has no lwIP heap to measure)")
    n = 6  # of CONFIG_TCP_CORE_HTTP_MAX_CONNS (8): none evicted
    conns: list[socket.socket] = []
    try:
        for _ in range(n):  # each has served one request and stays open, idle (keep-alive)
            conns.append(connect(host, device.http_port, timeout=10))
            _one_keep_alive_request(conns[-1])
        during = _settled_heap(device)
    finally:
        for c in conns:
            c.close()
    assert during is not None
    per = (before - during) / n
    print(f"heap: {before} bytes free before, {during} with {n} idle HTTP connections: {per:.0f} bytes each")
    # The goal: under 1 KB each, lwIP's pcb, netconn, socket and mailbox included.
    assert per <= 1024, f"{per:.0f} bytes per idle HTTP connection"


# ---- the loop task's stack under load ----


def test_loop_stack_under_load(device: Device) -> None:
    """The loop task's stack high-water mark (console `status`, chips) after HTTP, WebSocket, MJPEG and echo at once."""
    host = device.net()
    text = device.console("status")
    if not re.search(r"^loop task stack:", text, re.M):
        pytest.skip("the linux target's console shows no task stack (FreeRTOS simulator)")
    deadline = time.monotonic() + 3.0
    with MjpegStream(host, device.http_port, "/stream") as v1, MjpegStream(host, device.http_port, "/stream") as v2:
        keep = [connect(host, device.http_port, timeout=10) for _ in range(3)]
        try:
            n = 0
            while time.monotonic() < deadline:
                for s in keep:
                    _one_keep_alive_request(s)
                assert ws_echo(host, device.http_port, "/ws", b"x" * 512) == b"x" * 512
                assert echo_roundtrip(host, device.echo_port, b"y" * 1024) == b"y" * 1024
                v1.next_frame(timeout=5)
                v2.next_frame(timeout=5)
                n += 1
        finally:
            for s in keep:
                s.close()
    text = device.console("status")
    m = re.search(r"^loop task stack: (\d+) of (\d+) bytes never used", text, re.M)
    assert m, text
    never, size = int(m.group(1)), int(m.group(2))
    print(f"loop task stack: {never} of {size} bytes never used after {n} rounds of HTTP, WS, echo and 2 MJPEG viewers")
    assert 0 < never < size
    # A margin for what the tests do not reach (deeper handler paths, logging): at least 1 KB never touched.
    assert never >= 1024, f"the loop task's stack came within {never} bytes of its end"


def test_loop_stack_with_many_clients_at_once(device: Device) -> None:
    """The loop task's stack high-water mark (issue 15 item 4) with every kind of client at once, each from a client
    nobody here wrote where one exists: two keep-alive `requests` sessions (GET /api/status, GET /, POST /api/echo
    with a 2 KB body), two `websockets` connections (text and binary messages of 10 B to 8 KB), two MJPEG viewers,
    an SSE viewer (/api/live), an esp_http_server stream (when built) and two echo peers (4 KB), for 6 s once every
    one is exchanging; `status` is read after. 7 HTTP connections: under CONFIG_TCP_CORE_HTTP_MAX_CONNS (8)."""
    requests = pytest.importorskip("requests")
    ws_client = pytest.importorskip("websockets.sync.client")
    host = device.net()
    if not re.search(r"^loop task stack:", device.console("status"), re.M):
        pytest.skip("the linux target's console shows no task stack (FreeRTOS simulator)")
    import zlib

    base = f"http://{host}:{device.http_port}"
    stop = threading.Event()
    rounds: dict[str, int] = {}
    errors: list[str] = []
    lock = threading.Lock()

    opened: list[Any] = []  # every client's connection, closed at the end
    first_done: set[str] = set()  # clients that finished a round

    def worker(name: str, make: Any) -> None:
        n = 0
        stage = "connecting"
        try:
            one = make()  # connects; returns one round of this client's exchange
            stage = "exchanging"
            while not stop.is_set():
                one()
                n += 1
                first_done.add(name)
        except Exception as exc:  # every failure is reported by the test
            with lock:
                errors.append(f"{name} ({stage}, after {n} rounds): {type(exc).__name__}: {exc}")
        with lock:
            rounds[name] = n

    def session() -> Any:
        s = requests.Session()
        opened.append(s)
        payload = os.urandom(2048)

        def one() -> None:
            r = s.get(f"{base}/api/status", timeout=30)
            assert r.status_code == 200 and json.loads(r.content)["sockets"], r
            r = s.get(f"{base}/", timeout=30)
            assert r.status_code == 200 and r.content, r
            r = s.post(f"{base}/api/echo", data=payload, timeout=30)
            assert r.status_code == 200 and r.json() == {"bytes": 2048, "crc32": zlib.crc32(payload)}, r.text

        return one

    def websocket() -> Any:
        ws = ws_client.connect(f"ws://{host}:{device.http_port}/ws", open_timeout=30, close_timeout=2)
        opened.append(ws)
        sizes = (10, 1000, 8000)
        turn = [0]

        def one() -> None:
            size = sizes[turn[0] % len(sizes)]
            turn[0] += 1
            msg: str | bytes = "t" * size if turn[0] % 2 else os.urandom(size)
            ws.send(msg)
            assert ws.recv(timeout=30) == msg

        return one

    def viewer(port: int, path: str) -> Any:
        def make() -> Any:
            # 30 s like every call here: at the start ten clients connect at once through QEMU's forward, and
            # esp_http_server's task (below the loop's and lwIP's priority) can take over 5 s to send its head. With
            # MjpegStream's default of 5 s its viewer failed with "timed out" in 2 of 6 runs, both whole tests done
            # within 8 s: so not the 30 s frame wait but the connect or the head (the error now says which stage).
            v = MjpegStream(host, port, path, timeout=30)
            opened.append(v)

            def one() -> None:
                assert v.next_frame(timeout=30)[:2] == b"\xff\xd8"

            return one

        return make

    def sse() -> Any:
        s = connect(host, device.http_port, timeout=30)
        opened.append(s)
        s.sendall(f"GET /api/live HTTP/1.1\r\nHost: {_host_of(s)}\r\nAccept: text/event-stream\r\n\r\n".encode())
        s.settimeout(30)

        def one() -> None:
            assert s.recv(4096), "the SSE stream ended"

        return one

    def echo_peer() -> Any:
        s = connect(host, device.echo_port, timeout=30)
        opened.append(s)
        s.settimeout(30)

        def one() -> None:
            payload = os.urandom(4096)
            s.sendall(payload)
            assert recv_exact(s, len(payload)) == payload

        return one

    jobs: dict[str, Any] = {
        "session 1": session,
        "session 2": session,
        "websocket 1": websocket,
        "websocket 2": websocket,
        "mjpeg 1": viewer(device.http_port, "/stream"),
        "mjpeg 2": viewer(device.http_port, "/stream"),
        "sse": sse,
        "echo 1": echo_peer,
        "echo 2": echo_peer,
    }
    if device.httpd_port:
        jobs["esp_http_server stream"] = viewer(device.httpd_port, "/stream")
    threads = [threading.Thread(target=worker, args=(k, v), name=k, daemon=True) for k, v in jobs.items()]
    for t in threads:
        t.start()
    # 6 s of load counted from when every client is in it: at the start ten clients connect at once through QEMU's
    # forward, and esp_http_server's viewer waited over 6 s for its head in 1 of 3 runs (so it had done no round when
    # a fixed 6 s ended). Bounded: 90 s for all to start, or the first failure.
    t_start = time.monotonic()
    while len(first_done) < len(jobs) and not errors and time.monotonic() - t_start < 90:
        time.sleep(0.1)
    time.sleep(6.0)
    stop.set()
    for t in threads:
        t.join(60)  # bounded: every client call above has a 30 s timeout
    # Read after the load: the mark is the lowest since boot. Read during it, the console (app_main's priority, below
    # the loop's and lwIP's) answers only when the emulated chip has a turn to spare: not at all for 60 s once here.
    text = device.console("status", timeout=60)
    for c in opened:
        c.close()
    assert not errors, errors
    idle = [k for k in jobs if rounds.get(k, 0) == 0]  # a thread still blocked after its join has no entry yet
    assert not idle, f"no round done by {idle} (threads alive: {[t.name for t in threads if t.is_alive()]}): {rounds}"
    m = re.search(r"^loop task stack: (\d+) of (\d+) bytes never used", text, re.M)
    assert m, text
    never, size = int(m.group(1)), int(m.group(2))
    print(f"loop task stack: {never} of {size} bytes never used after 6 s of {len(jobs)} clients at once: {rounds}")
    assert 0 < never < size
    assert never >= 1024, f"the loop task's stack came within {never} bytes of its end"


# ---- the console ----


def test_console(device: Device) -> None:
    text = device.console("help")
    for name in ("status", "wifi", "ota-prepare", "help"):
        assert re.search(rf"^{re.escape(name)}\s", text, re.M), text
    text = device.console("status")
    assert re.search(r"^sockets: \d+ \(backend [\w-]+\), tcp_core heap: \d+ bytes", text, re.M), text
    echo_port, http_port = device.device_ports
    assert re.search(r"listener listening echo \S+:" + str(echo_port), text), text
    assert re.search(r"listener listening http \S+:" + str(http_port), text), text
    # Refused (too short), so nothing is stored on a board; the answer never repeats the password.
    text = device.console("wifi test-net short12")
    assert "the password must be empty, 8 to 63 characters, or 64 hex digits" in text, text
    assert "short12" not in text.replace("wifi test-net short12", ""), text
    text = device.console("no-such-command")
    assert "Unrecognized command" in text, text  # esp_console's answer: the command is not registered
    text = device.console("ota-prepare 0")
    assert "usage: ota-prepare [deadline_ms], 1 to 600000" in text, text
