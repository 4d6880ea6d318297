"""The dashboard at / in a real browser (Debian's Chromium driven by Playwright), and how / is served.

The browser is the peer nobody here wrote: it parses the page, runs its script, keeps the /api/live EventSource,
decodes the MJPEG parts the preview cuts out of /stream, and speaks WebSocket to /ws. Without Playwright or a
Chromium the browser tests skip with the reason, except under CI=true (or TC_REQUIRE_BROWSER=1), where they fail:
tools/setup.sh installs both.

Each browser test saves a screenshot under build/artifacts/ (TC_ARTIFACTS to change), to be looked at.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import connect
from tcp_core import Loop
from tcp_core.app import App
from tcp_core.httphead import read_response_head

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("TC_ARTIFACTS", ROOT / "build" / "artifacts"))
REQUIRE_BROWSER = os.environ.get("CI") == "true" or os.environ.get("TC_REQUIRE_BROWSER") == "1"
PASSWORD = "s3cret-dashboard"
WAIT_MS = 30_000  # a bound on each wait (the browser under load), never a measured margin


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _unavailable(why: str) -> None:
    if REQUIRE_BROWSER:
        pytest.fail(f"the browser tests are required (CI=true) but cannot run: {why}; run tools/setup.sh")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed (pip install -e '.[test]')")
    exe = _chromium()
    if exe is None:
        _unavailable("Chromium is not installed (apt-get install chromium)")
    with sync_playwright() as pw:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        b = pw.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


class StopRequests:
    """Counts the stop requests the app passes on (called on the loop thread)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.count = 0

    def __call__(self) -> None:
        self.count += 1
        self.event.set()


@pytest.fixture
def stops() -> StopRequests:
    return StopRequests()


@pytest.fixture
def app(loop: Loop, server_host: str, stops: StopRequests) -> Iterator[App]:
    a = App(
        loop,
        server_host,
        echo_port=0,
        http_port=0,
        stream_fps=20,
        events_ms=200,
        admin_password=PASSWORD,
        on_stop_request=stops,
    )
    yield a
    a.stop(500)


@pytest.fixture
def page(browser: Any, app: App, request: pytest.FixtureRequest) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(f"http://{app.host}:{app.http_port}/", timeout=WAIT_MS)
    pg.wait_for_function("document.getElementById('live').textContent === 'live'", timeout=WAIT_MS)
    yield pg
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = request.node.name.replace("[", "-").replace("]", "")
    pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    ctx.close()  # closes the page's live feed, stream and WebSocket before the app stops
    assert errors == [], f"script errors on the page: {errors}"


def row_count(pg: Any, selector: str) -> int:
    return int(pg.locator(f"#socks tbody tr{selector}").count())


def test_table_follows_a_client_that_connects_and_leaves(page: Any, app: App) -> None:
    # The services' listeners and the page's own live feed are there from the first event.
    page.wait_for_selector('#socks tbody tr[data-role="listener"]', timeout=WAIT_MS)
    assert page.locator("#backend").text_content() == app.loop.backend
    with connect(app.host, app.echo_port) as s:
        s.sendall(b"dashboard")
        assert s.recv(64) == b"dashboard"
        me = "{}:{}".format(*s.getsockname()[:2])
        row = f'#socks tbody tr[data-peer="{me}"]'
        page.wait_for_selector(row, timeout=WAIT_MS)
        # The row can first come from an event sampled between the accept and the echo (one every events_ms): the
        # counters are the next event's. Waiting for them bounds the race; a counter that never moves still fails.
        page.wait_for_function(
            "sel => { const c = document.querySelectorAll(sel + ' td');"
            " return c.length > 9 && c[8].textContent !== '0 B' && c[9].textContent !== '0 B'; }",
            arg=row,
            timeout=WAIT_MS,
        )
        cells = page.locator(row).locator("td").all_text_contents()
        assert cells[1] == "accepted" and cells[2] == "echo" and cells[3] == "echo"
        assert cells[8] == "9 B" and cells[9] == "9 B"  # bytes in and out of this very connection
    page.wait_for_selector(row, state="detached", timeout=WAIT_MS)
    heap = page.locator("#heap").text_content()
    assert heap and heap.endswith("B") and heap != "?"
    # The heap chart has samples and ink: some pixel of the canvas is painted.
    page.wait_for_function("heapHist.length >= 3", timeout=WAIT_MS)
    painted = page.evaluate(
        "(() => { const c = document.getElementById('chart');"
        " return c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some((v, i) => i % 4 == 3 && v) })()"
    )
    assert painted


def test_preview_shows_frames(page: Any, app: App) -> None:
    page.click("#pvb")
    page.wait_for_function("+document.getElementById('frames').textContent >= 5", timeout=WAIT_MS)
    # A frame decoded as an image and shown: the demo frames are 96x72 JPEGs.
    shown = page.wait_for_function(
        "(() => { const i = document.getElementById('pv');"
        " return i.complete && i.naturalWidth ? [i.naturalWidth, i.naturalHeight] : null })()",
        timeout=WAIT_MS,
    )
    assert shown.json_value() == [96, 72]
    # The preview is a viewer like any other: the registry names its connection's role "stream".
    page.wait_for_function("+document.getElementById('viewers').textContent >= 1", timeout=WAIT_MS)
    page.wait_for_selector('#socks tbody tr[data-role="stream"]', timeout=WAIT_MS)
    page.click("#pvb")  # stop: the stream connection goes
    page.wait_for_function("document.getElementById('pvb').textContent === 'Start preview'", timeout=WAIT_MS)


def test_websocket_panel_echoes(page: Any, app: App) -> None:
    page.click("#wsb")
    page.wait_for_function("document.getElementById('wsl').textContent.includes('open')", timeout=WAIT_MS)
    page.wait_for_selector('#socks tbody tr[data-role="ws"]', timeout=WAIT_MS)  # the panel's own connection
    page.fill("#wsm", "ping from chromium ü")
    page.click("#wss")
    page.wait_for_function(
        "document.getElementById('wsl').textContent.includes('< ping from chromium ü')", timeout=WAIT_MS
    )
    page.click("#wsb")
    page.wait_for_function("document.getElementById('wsl').textContent.includes('closed 1000')", timeout=WAIT_MS)


def test_sse_panel_counts_events(page: Any) -> None:
    page.click("#sseb")
    page.wait_for_function("+document.getElementById('ssen').textContent >= 2", timeout=WAIT_MS)
    assert "uptime_ms" in (page.locator("#ssel").text_content() or "")
    # two SSE connections now: the page's live feed and the panel's
    page.wait_for_function(
        "document.querySelectorAll('#socks tbody tr[data-role=\"sse\"]').length >= 2", timeout=WAIT_MS
    )
    page.click("#sseb")


def test_stop_button_needs_the_password(page: Any, stops: StopRequests) -> None:
    page.fill("#pw", "wrong")
    page.click("#stop")
    page.wait_for_function("document.getElementById('stopr').textContent.startsWith('403')", timeout=WAIT_MS)
    assert stops.count == 0
    page.fill("#pw", PASSWORD)
    page.click("#stop")
    page.wait_for_function("document.getElementById('stopr').textContent.startsWith('202')", timeout=WAIT_MS)
    assert stops.event.wait(10) and stops.count == 1


# ---- how / is served (no browser needed) ----


def raw_get(host: str, port: int, path: str, headers: str = "") -> tuple[bytes, bytes]:
    """One HTTP/1.1 GET on a new connection; the head and the Content-Length body. The client closes first, as
    the server's peer-first policy expects (it would reset a client that waits for it to close)."""
    with connect(host, port) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
        rest = bytearray()
        head = read_response_head(s, rest)
        body = bytes(rest)
        length = int(head.headers["content-length"])
        while len(body) < length:
            chunk = s.recv(65536)
            assert chunk, "closed before the end of the body"
            body += chunk
    return head.raw, body


@pytest.fixture
def plain_app(loop: Loop, server_host: str) -> Iterator[App]:
    a = App(loop, server_host, echo_port=None, http_port=0)
    yield a
    a.stop(500)


@pytest.mark.parametrize(
    ("accept", "gz"),
    [
        ("", False),
        ("Accept-Encoding: gzip\r\n", True),
        ("Accept-Encoding: GZIP, deflate, br\r\n", True),
        ("Accept-Encoding: br;q=1.0, gzip;q=0.5\r\n", True),
        ("Accept-Encoding: gzip;q=0\r\n", False),
        ("Accept-Encoding: gzip;q=0.000, *\r\n", False),
        ("Accept-Encoding: *\r\n", True),
        ("Accept-Encoding: identity\r\n", False),
        ("Accept-Encoding: x-gzip\r\n", False),
    ],
)
def test_index_gzip_only_when_accepted(plain_app: App, accept: str, gz: bool) -> None:
    head, body = raw_get(plain_app.host, plain_app.http_port, "/", accept)
    assert head.startswith(b"HTTP/1.1 200") and b"\r\nVary: Accept-Encoding" in head
    assert (b"\r\nContent-Encoding: gzip" in head) == gz
    html = gzip.decompress(body) if gz else body
    assert html.startswith(b"<!doctype html>") and b"/api/live" in html


def test_index_small_and_the_same_through_curl(plain_app: App) -> None:
    url = f"http://{plain_app.host}:{plain_app.http_port}/"
    r = requests.get(url, timeout=5)  # requests asks for gzip and inflates
    assert r.headers["Content-Encoding"] == "gzip" and int(r.headers["Content-Length"]) < 8 * 1024
    if shutil.which("curl"):
        plain = subprocess.run(["curl", "-sS", url], capture_output=True, check=True, timeout=30).stdout
        compressed = subprocess.run(["curl", "-sS", "--compressed", url], capture_output=True, check=True, timeout=30)
        assert plain == compressed.stdout == r.content


def test_generated_c_matches_the_html() -> None:
    rc = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_dashboard.py"), "--check"], capture_output=True)
    assert rc.returncode == 0, rc.stderr.decode()


def test_status_names_the_services(plain_app: App) -> None:
    j = requests.get(f"http://{plain_app.host}:{plain_app.http_port}/api/status", timeout=5).json()
    a = j["app"]
    assert a["http_port"] == plain_app.http_port and a["echo_port"] == 0 and a["captive"] == "off"
    assert a["stop"] is False and a["version"] == __import__("tcp_core").__version__
    assert plain_app.status()["app"]["http_port"] == plain_app.http_port  # App.status() reads the same C


def test_live_feed_sends_status_events(plain_app: App) -> None:
    with connect(plain_app.host, plain_app.http_port) as s:
        s.sendall(b"GET /api/live HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = b""
        while buf.count(b"data: ") < 2:
            chunk = s.recv(65536)
            assert chunk, "the live feed ended"
            buf += chunk
    assert b"text/event-stream" in buf
    first = buf.split(b"data: ")[1].split(b"\n\n")[0]
    doc = json.loads(first)
    assert doc["app"]["http_port"] == plain_app.http_port and doc["count"] >= 2


def test_stop_route_refuses_without_password(plain_app: App) -> None:
    url = f"http://{plain_app.host}:{plain_app.http_port}/api/stop"
    r = requests.post(url, timeout=5)
    assert r.status_code == 403 and "admin password" in r.text


def test_stop_route_basic_auth(app: App, stops: StopRequests) -> None:
    url = f"http://{app.host}:{app.http_port}/api/stop"
    assert requests.get(f"http://{app.host}:{app.http_port}/api/status", timeout=5).json()["app"]["stop"] is True
    r = requests.post(url, timeout=5)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic realm=")
    for bad in (("admin", "nope"), ("root", PASSWORD), ("admin", PASSWORD[:-1]), ("admin", PASSWORD + "x")):
        r = requests.post(url, auth=bad, timeout=5)
        assert r.status_code == 403 and "wrong credentials" in r.text and "WWW-Authenticate" not in r.headers
    token = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    with connect(app.host, app.http_port) as s:  # the scheme is case-insensitive (RFC 7617)
        s.sendall(
            f"POST /api/stop HTTP/1.1\r\nHost: x\r\nauthorization: bAsIc {token}\r\nContent-Length: 0\r\n\r\n".encode()
        )
        assert s.recv(4096).startswith(b"HTTP/1.1 202")
    assert stops.event.wait(10) and stops.count == 1


@pytest.fixture
def portal_app(loop: Loop, server_host: str) -> Iterator[App]:
    a = App(loop, server_host, echo_port=None, http_port=0, events_ms=200, captive="portal")
    yield a
    a.stop(500)


def test_status_counts_captive_probes(portal_app: App) -> None:
    url = f"http://{portal_app.host}:{portal_app.http_port}"
    r = requests.get(
        url + "/generate_204", headers={"Host": "connectivitycheck.gstatic.com"}, allow_redirects=False, timeout=5
    )
    assert r.status_code == 302
    a = requests.get(url + "/api/status", timeout=5).json()["app"]
    assert a["captive"] == "portal" and a["probes"]["android"] == 1 and a["probes"]["apple"] == 0


def test_dashboard_shows_the_captive_mode(browser: Any, portal_app: App) -> None:
    ctx = browser.new_context()
    pg = ctx.new_page()
    url = f"http://{portal_app.host}:{portal_app.http_port}"
    pg.goto(url + "/", timeout=WAIT_MS)
    pg.wait_for_function("document.getElementById('captive').textContent === 'portal'", timeout=WAIT_MS)
    requests.get(url + "/hotspot-detect.html", headers={"Host": "captive.apple.com"}, allow_redirects=False, timeout=5)
    pg.wait_for_function("document.getElementById('svc').textContent.includes('apple 1')", timeout=WAIT_MS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"dashboard-portal-{portal_app.loop.backend}.png"), full_page=True)
    ctx.close()


# ---- the one admin credential, the OTA state in the live feed, the upload form (tcp-core serve --ota-dir) ----


def test_one_admin_credential_for_stop_and_ota(loop: Loop, server_host: str, tmp_path: Path) -> None:
    """auth=(user, password) guards /api/stop and /api/ota alike (one credential, checked by tc_http_auth)."""
    stops = StopRequests()
    a = App(loop, server_host, echo_port=None, http_port=0, ota_dir=str(tmp_path), auth=("root", "pw2"),
            on_stop_request=stops)  # fmt: skip
    try:
        base = f"http://{a.host}:{a.http_port}"
        assert requests.post(base + "/api/stop", auth=("admin", "pw2"), timeout=5).status_code == 403
        assert requests.post(base + "/api/ota", data=b"\xe9" * 64, auth=("admin", "pw2"), timeout=5).status_code == 401
        ok = requests.post(base + "/api/ota", data=b"\xe9" * 64, auth=("root", "pw2"), timeout=5)
        assert ok.status_code == 200 and ok.json()["ok"] is True
        assert requests.post(base + "/api/stop", auth=("root", "pw2"), timeout=5).status_code == 202
        assert stops.event.wait(10) and stops.count == 1
    finally:
        a.stop(500)
    with pytest.raises(ValueError, match="two different admin credentials"):
        App(loop, server_host, echo_port=None, http_port=0, admin_password="a", auth=("admin", "b"))


def test_live_feed_carries_the_ota_state(loop: Loop, server_host: str, tmp_path: Path) -> None:
    a = App(loop, server_host, echo_port=None, http_port=0, events_ms=100, ota_dir=str(tmp_path))
    try:
        base = f"http://{a.host}:{a.http_port}"
        assert requests.post(base + "/api/ota", data=b"\x00" * 32, timeout=5).status_code == 400  # bad magic
        with connect(a.host, a.http_port) as s:
            s.sendall(b"GET /api/live HTTP/1.1\r\nHost: x\r\n\r\n")
            buf = b""
            while b"\n\n" not in buf.partition(b"data: ")[2]:
                chunk = s.recv(65536)
                assert chunk, "the live feed ended"
                buf += chunk
        doc = json.loads(buf.partition(b"data: ")[2].split(b"\n\n")[0])
        assert doc["ota"]["state"] == "idle" and doc["ota"]["failures"] == 1
        assert doc["ota"]["last"]["status"] == 400 and "magic" in doc["ota"]["last"]["message"]
        assert requests.get(base + "/api/status", timeout=5).json()["ota"] == doc["ota"]
    finally:
        a.stop(500)


def _serve(*args: str) -> tuple[subprocess.Popen[str], str]:
    """`tcp-core serve ARGS` on loopback; the process and its base URL once it is ready."""
    exe = shutil.which("tcp-core")
    cmd = [exe] if exe else [sys.executable, "-m", "tcp_core.cli"]
    proc = subprocess.Popen(
        [*cmd, "serve", "--host", "127.0.0.1", "--echo-port", "-1", "--http-port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    lines = []
    for _ in range(200):  # bounded: the ready lines come before "Ctrl-C stops"
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C stops" in line:
            break
    base = next((ln.split()[1].rstrip("/") for ln in lines if ln.startswith("http ")), "")
    if not base:
        proc.kill()
        raise AssertionError(f"serve did not start: {lines} {proc.communicate()[1]}")
    return proc, base


def test_ota_form_uploads_through_the_browser(browser: Any, tmp_path: Path) -> None:
    """The dashboard's upload form against `tcp-core serve --ota-dir --auth`: the browser computes the SHA-256,
    sends the image with it, shows the progress and the answer; a bad image shows the 4xx message; the reboot
    button reports the host's no-op reboot."""
    import hashlib

    ota_dir = tmp_path / "fw"
    ota_dir.mkdir()
    good = tmp_path / "app.bin"
    good.write_bytes(b"\xe9" + bytes(range(256)) * 600)
    bad = tmp_path / "notes.bin"
    bad.write_bytes(b"this is not a firmware image\n" * 10)
    proc, base = _serve("--ota-dir", str(ota_dir), "--auth", "admin:pw-ota")
    ctx = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        pg.goto(base + "/", timeout=WAIT_MS)
        pg.wait_for_function("document.getElementById('otast').textContent.startsWith('OTA: idle')", timeout=WAIT_MS)
        assert pg.locator("#otaf").is_visible()
        pg.fill("#pw", "pw-ota")
        pg.set_input_files("#otafile", str(bad))
        pg.click("#ota")
        pg.wait_for_function("document.getElementById('otar').textContent.startsWith('400')", timeout=WAIT_MS)
        assert "bad image magic" in (pg.locator("#otar").text_content() or "")
        assert pg.locator("#otar").get_attribute("class") == "err"
        assert list(ota_dir.iterdir()) == []
        pg.set_input_files("#otafile", str(good))
        pg.click("#ota")
        pg.wait_for_function("document.getElementById('otar').textContent.startsWith('200')", timeout=WAIT_MS)
        answer = pg.locator("#otar").text_content() or ""
        # 127.0.0.1 is a secure context: crypto.subtle hashed the file, and the server verified the digest
        assert hashlib.sha256(good.read_bytes()).hexdigest() in answer and "(verified)" in answer, answer
        assert (ota_dir / "firmware.bin").read_bytes() == good.read_bytes()
        assert pg.evaluate("document.getElementById('otap').value === document.getElementById('otap').max")
        pg.wait_for_function("document.getElementById('otast').textContent.startsWith('OTA: ready')", timeout=WAIT_MS)
        pg.click("#otarb")
        pg.wait_for_function("document.getElementById('otar').textContent.includes('no reboot')", timeout=WAIT_MS)
        assert (pg.locator("#otar").text_content() or "").startswith("200")  # the host's file sink: a report
        pg.fill("#pw", "wrong")
        pg.set_input_files("#otafile", str(good))
        pg.click("#ota")
        # a 401 reaches the page (no browser password dialog over it: the form sends credentials "omit")
        pg.wait_for_function("document.getElementById('otar').textContent.startsWith('401')", timeout=WAIT_MS)
        assert (ota_dir / "firmware.bin").read_bytes() == good.read_bytes()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / "dashboard-ota.png"), full_page=True)
    finally:
        ctx.close()
        proc.send_signal(__import__("signal").SIGINT)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    assert errors == [], f"script errors on the page: {errors}"
    assert proc.returncode == 0, err
    assert "0 bytes left" in out, out
