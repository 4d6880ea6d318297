"""The OTA route (tc_ota.h) and `tcp-core ota` (issue 13): firmware images streamed into the host file sink with
their checks (size, ESP magic 0xE9, SHA-256), Basic auth, the seed-003 prepare/resume of the demo streams, uploads
cut off at many bytes, and the CLI's retry on a dropped connection. Clients: curl (-T), requests, httpx, raw
sockets, the CLI; both host backends; every test ends with the loop fixture's leak check.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pty
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import requests

import tcp_core
from conftest import connect, recv_exact, wait_until
from tcp_core import Loop
from tcp_core.app import App
from tcp_core.ota import OtaError, reboot, upload

AUTH = ("admin", "s3cret")
HEAD_AUTH = "Authorization: Basic YWRtaW46czNjcmV0\r\n"


def ota_post_head(length: int, extra: str = "") -> bytes:
    """The head of a POST /api/ota of this Content-Length with the admin's credentials (extra: more header lines)."""
    return f"POST /api/ota HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n{extra}{HEAD_AUTH}\r\n".encode()


def image(size: int, magic: int = 0xE9) -> bytes:
    return bytes([magic]) + os.urandom(size - 1)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def ota_dir(tmp_path: Path) -> Path:
    d = tmp_path / "ota"
    d.mkdir()
    return d


@pytest.fixture
def app(loop: Loop, server_host: str, ota_dir: Path) -> Iterator[App]:
    a = App(
        loop, server_host, echo_port=None, http_port=0, stream_fps=50, events_ms=20, ota_dir=str(ota_dir),
        ota_max=4 << 20, auth=AUTH,
    )  # fmt: skip
    yield a
    a.stop(500)


def url(app: App, path: str = "/api/ota") -> str:
    return f"http://{app.host}:{app.http_port}{path}"


def heap(backend: str) -> int:
    """Blocks of the C heap in use: a block left behind by any path shows; the loop's arrays growing to a new
    high-water mark (a realloc, capacity rather than a leak) does not. The fixture checks bytes after the stop."""
    return tcp_core.alloc_stats(backend).blocks_in_use


def post(target: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    """One POST on its own connection, closed before returning (the server then holds nothing of it)."""
    with httpx.Client(timeout=30, auth=AUTH) as client:
        return client.post(target, content=body, headers=headers)


def warm_up(app: App) -> None:
    """A good and a bad upload first: the loop's arrays (timers, descriptors) grow once to their high-water mark,
    which is capacity, not a leak; baselines are taken after it."""
    assert post(url(app), image(20_000)).status_code == 200
    assert post(url(app), image(20_000, magic=0)).status_code == 400


def settled_heap(app: App, backend: str) -> int:
    """The heap once the server holds no client connection (closed keep-alive connections finish closing)."""
    assert wait_until(lambda: not any(s.kind == "accepted" for s in app.loop.registry()))
    return heap(backend)


def back_to(app: App, backend: str, base: int) -> bool:
    """The heap returns to base once the connections are gone (a connection the server answered early lingers up
    to linger_ms for the client's FIN before it is freed)."""
    return wait_until(lambda: settled_heap(app, backend) == base, timeout=10)


def files(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is installed by tools/setup.sh")
def test_curl_upload_then_reboot_step(app: App, ota_dir: Path, tmp_path: Path) -> None:
    data = image(700_000)
    f = tmp_path / "fw.bin"
    f.write_bytes(data)
    out = subprocess.run(
        ["curl", "-sS", "-u", ":".join(AUTH), "-T", str(f), "-H", f"X-OTA-SHA256: {sha(data)}", url(app)],
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    answer = httpx.Response(200, content=out.stdout).json()
    assert answer["ok"] is True and answer["bytes"] == len(data) and answer["sha256"] == sha(data)
    assert answer["verified"] is True
    assert files(ota_dir) == ["firmware.bin"] and (ota_dir / "firmware.bin").read_bytes() == data
    st = app.ota_status()
    assert st is not None and st["state"] == "ready" and st["last"]["status"] == 200
    # The reboot step: on the host a report, no restart; then nothing waits to boot any more.
    r = requests.post(url(app, "/api/ota/reboot"), auth=AUTH, timeout=10)
    assert r.status_code == 200 and r.json()["rebooting"] is False and "firmware.bin" in r.json()["message"]
    r = requests.post(url(app, "/api/ota/reboot"), auth=AUTH, timeout=10)
    assert r.status_code == 409


def test_bad_images_get_a_clear_4xx_and_leave_the_old_image(app: App, ota_dir: Path, backend: str) -> None:
    warm_up(app)
    good = image(50_000)
    r = post(url(app), good, {"X-OTA-SHA256": sha(good)})
    assert r.status_code == 200
    base_heap = settled_heap(app, backend)
    bad_magic = image(200_000, magic=0x7F)
    other = image(200_000)
    cases: list[tuple[bytes, dict[str, str], int, str]] = [
        (bad_magic, {}, 400, "magic"),
        (other, {"X-OTA-SHA256": "0" * 64}, 400, "SHA-256"),
        (other, {"X-OTA-SHA256": "xyz"}, 400, "X-OTA-SHA256"),
        (other, {"X-OTA-Size": str(len(other) + 1)}, 400, "size mismatch"),
        (other, {"X-OTA-Size": str(len(other) - 1)}, 400, "size mismatch"),
        (other, {"X-OTA-Size": str(5 << 20)}, 413, "too large"),
        (image(5 << 20), {}, 413, ""),
    ]
    for body, headers, status, words in cases:
        try:
            r = post(url(app), body, headers)
        except httpx.TransportError:
            pytest.fail(f"no answer for {headers} (expected {status})")
        assert r.status_code == status, (headers, r.text)
        assert words in r.text
        assert files(ota_dir) == ["firmware.bin"] and (ota_dir / "firmware.bin").read_bytes() == good
        assert back_to(app, backend, base_heap), (headers, heap(backend) - base_heap)
    # Chunked, no declared size: the limit is checked as the bytes come.
    big = image(5 << 20)
    r = requests.post(url(app), data=iter([big[i : i + 65536] for i in range(0, len(big), 65536)]), auth=AUTH)
    assert r.status_code == 413
    st = app.ota_status()
    assert st is not None and st["state"] == "idle" and st["services_paused"] is False


def test_basic_auth_protects_upload_and_reboot(app: App, ota_dir: Path) -> None:
    data = image(10_000)
    for auth in (None, ("admin", "wrong"), ("other", AUTH[1])):
        r = httpx.post(url(app), content=data, auth=auth, timeout=10)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Basic realm=")
    assert httpx.post(url(app, "/api/ota/reboot"), timeout=10).status_code == 401
    assert files(ota_dir) == []
    r = httpx.post(url(app), content=data, auth=AUTH, timeout=10)
    assert r.status_code == 200 and r.json()["sha256"] == sha(data)
    # The status is public (progress for a dashboard).
    assert httpx.get(url(app), timeout=10).json()["state"] == "ready"


def test_sha256_in_the_query(app: App, ota_dir: Path) -> None:
    data = image(30_000)
    r = requests.put(url(app) + f"?sha256={sha(data).upper()}", data=data, auth=AUTH, timeout=10)
    assert r.status_code == 200 and r.json()["verified"] is True
    r = requests.put(url(app) + "?sha256=" + "1" * 64, data=data, auth=AUTH, timeout=10)
    assert r.status_code == 400


def test_cut_off_uploads_leave_no_partial_file_and_free_everything(app: App, ota_dir: Path, backend: str) -> None:
    size = 300_000
    data = image(size)
    head = ota_post_head(size, f"X-OTA-SHA256: {sha(data)}\r\n")
    warm_up(app)
    (ota_dir / "firmware.bin").unlink()
    base_heap = settled_heap(app, backend)
    cuts = [0, 1, 2, 100, 1459, 1460, 4096, 65535, 150_000, size - 1]
    cuts += [len(head) // 2 - len(head)]  # inside the head
    for k in cuts:
        with connect(app.host, app.http_port) as s:
            sent = head[: len(head) + k] if k < 0 else head + data[:k]
            s.sendall(sent)
            # Cut only once the server has read everything sent (each cut lands where it is meant to).
            assert wait_until(functools.partial(read_all, app, len(sent)))
        assert wait_until(lambda: (app.ota_status() or {}).get("state") == "idle"), k
        assert back_to(app, backend, base_heap), f"cut at {k}: heap not back to baseline"
        assert files(ota_dir) == [], f"cut at {k}: {files(ota_dir)}"
        st = app.ota_status()
        assert st is not None and st["services_paused"] is False
    # The server still takes a whole image afterwards.
    r = requests.post(url(app), data=data, auth=AUTH, timeout=30)
    assert r.status_code == 200 and (ota_dir / "firmware.bin").read_bytes() == data


def read_all(app: App, n: int) -> bool:
    return any(i.kind == "accepted" and i.bytes_in >= n for i in app.loop.registry())


def streams(app: App) -> int:
    return sum(1 for s in app.status()["sockets"] if s["role"] in ("stream", "sse"))


def test_streams_stop_for_the_upload_and_come_back_when_it_fails(app: App, ota_dir: Path) -> None:
    """Seed 003: a viewer of /stream and one of /events hold memory; an upload ends both before writing, new viewers
    get 503 meanwhile, and when the upload is cut off the streams are served again."""
    viewers = [requests.get(url(app, p), stream=True, timeout=10) for p in ("/stream", "/events")]
    try:
        assert all(v.status_code == 200 for v in viewers)
        assert wait_until(lambda: streams(app) == 2)
        data = image(100_000)
        s = connect(app.host, app.http_port)
        s.sendall(ota_post_head(len(data)) + data[:5000])
        assert wait_until(lambda: (app.ota_status() or {}).get("state") == "receiving")
        st = app.ota_status()
        assert st is not None and st["services_paused"] is True and "streams ended" in st["prepare"]
        assert streams(app) == 0
        assert requests.get(url(app, "/stream"), timeout=10).status_code == 503
        status = requests.get(url(app, "/api/status"), timeout=10).json()  # the demo's status page shows it too
        assert status["ota"]["state"] == "receiving" and status["ota"]["received"] >= 1
        s.close()  # cut off: the upload fails
        assert wait_until(lambda: (app.ota_status() or {}).get("services_paused") is False)
        r = requests.get(url(app, "/events"), stream=True, timeout=10)
        assert r.status_code == 200
        r.close()
        assert files(ota_dir) == []
    finally:
        for v in viewers:
            v.close()


@pytest.mark.parametrize("path", ["/stream", "/events"])
def test_a_live_stream_that_the_server_closes_after_says_so_in_its_head(app: App, path: str) -> None:
    """A live stream (MJPEG, SSE) gets a small send buffer, so its connection is not kept once the stream ends (here:
    cleanly, with its last chunk, for an upload). Its head said "Connection: keep-alive" all the same, and a request
    pipelined behind it met our FIN unanswered: a server that will not keep the connection sends "close" in its
    response (RFC 9112 9.6)."""
    with connect(app.host, app.http_port, timeout=10) as viewer:
        viewer.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\nGET /api/chunks HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        out = viewer.recv(65536)
        assert wait_until(lambda: streams(app) == 1)
        data = image(100_000)
        with connect(app.host, app.http_port) as s:
            s.sendall(ota_post_head(len(data)) + data[:5000])
            while chunk := viewer.recv(65536):  # the upload ends the stream; then the connection ends
                out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    assert body.endswith(b"0\r\n\r\n"), "ended cleanly, with its last chunk"
    assert b"HTTP/1.1 " not in body, "the request behind the stream is not answered: the connection is not kept"
    assert b"\r\nConnection: close\r\n" in head + b"\r\n", head


def test_cli_uploads_and_verifies(app: App, ota_dir: Path, tmp_path: Path) -> None:
    data = image(400_000)
    f = tmp_path / "fw.bin"
    f.write_bytes(data)
    out = subprocess.run(
        [sys.executable, "-m", "tcp_core.cli", "ota", str(f), f"http://{app.host}:{app.http_port}",
         "--auth", ":".join(AUTH), "--reboot"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"uploaded {len(data)} bytes" in out.stdout and "no restart" in out.stdout
    assert "\r[" not in out.stderr  # no progress bar when stderr is not a terminal
    assert (ota_dir / "firmware.bin").read_bytes() == data
    bad = tmp_path / "bad.bin"
    bad.write_bytes(image(1000, magic=0))
    out = subprocess.run(
        [sys.executable, "-m", "tcp_core.cli", "ota", str(bad), url(app), "--auth", ":".join(AUTH)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1 and "HTTP 400" in out.stderr and "magic" in out.stderr


class DropFirst:
    """A TCP relay that cuts the first `drops` connections after `after` bytes from the client, then relays."""

    def __init__(self, host: str, port: int, drops: int, after: int) -> None:
        self.target = (host, port)
        self.drops = drops
        self.after = after
        self.seen = 0
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self.lsock.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            self.seen += 1
            threading.Thread(target=self._serve, args=(c, self.seen <= self.drops), daemon=True).start()

    def _serve(self, c: socket.socket, drop: bool) -> None:
        with c, socket.create_connection(self.target, timeout=10) as up:
            c.settimeout(10)
            got = 0
            try:
                if drop:
                    while got < self.after:
                        chunk = c.recv(65536)
                        if not chunk:
                            return
                        up.sendall(chunk)
                        got += len(chunk)
                    return  # both sides closed mid-upload
                threading.Thread(target=self._pump, args=(up, c), daemon=True).start()
                self._pump(c, up)
            except OSError:
                return

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while chunk := a.recv(65536):
                b.sendall(chunk)
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.lsock.close()


def test_cli_retries_from_the_start_after_a_dropped_connection(app: App, ota_dir: Path, tmp_path: Path) -> None:
    data = image(600_000)
    f = tmp_path / "fw.bin"
    f.write_bytes(data)
    relay = DropFirst(app.host, app.http_port, drops=2, after=200_000)
    try:
        r = upload(f, f"http://127.0.0.1:{relay.port}/api/ota", auth=":".join(AUTH), retries=6)
        assert r.attempts >= 3 and r.bytes == len(data) and r.sha256 == sha(data)
        assert (ota_dir / "firmware.bin").read_bytes() == data
        assert reboot(url(app), auth=":".join(AUTH))["rebooting"] is False
        relay2 = DropFirst(app.host, app.http_port, drops=5, after=10_000)
        try:
            with pytest.raises(OtaError, match="after 2 attempts"):
                upload(f, f"http://127.0.0.1:{relay2.port}", auth=":".join(AUTH), retries=1, sleep=lambda s: None)
        finally:
            relay2.close()
    finally:
        relay.close()
    assert wait_until(lambda: (app.ota_status() or {}).get("state") in ("idle", "ready"))


def test_a_stalled_upload_gives_way_to_a_new_one(app: App, ota_dir: Path) -> None:
    """A client whose connection vanished without a FIN leaves an upload that receives nothing; the retry gets 409
    while it is fresh, and takes over once it has stalled (2 s without a byte) instead of waiting for the 408."""
    data = image(50_000)
    with connect(app.host, app.http_port) as s:
        s.sendall(ota_post_head(len(data)) + data[:1000])
        assert wait_until(lambda: (app.ota_status() or {}).get("received") == 1000)
        t0 = time.monotonic()
        first = post(url(app), data)
        if time.monotonic() - t0 < 1.5:  # still fresh when it was refused (not a timing assertion: checked only then)
            assert first.status_code == 409 and "in progress" in first.text
        deadline = time.monotonic() + 20
        while (r := post(url(app), data)).status_code == 409 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert r.status_code == 200 and (ota_dir / "firmware.bin").read_bytes() == data
        assert s.recv(4096).startswith(b"HTTP/1.1 409")  # the stalled one was told, then closed


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is installed by tools/setup.sh")
def test_curl_form_upload(app: App, ota_dir: Path, tmp_path: Path, backend: str) -> None:
    """curl -F: the image is the form's file part, streamed through the multipart reader (other fields skipped)."""
    data = image(500_000)
    f = tmp_path / "fw.bin"
    f.write_bytes(data)
    base_cmd = ["curl", "-sS", "-u", ":".join(AUTH), "-F", "note=hello", "-F", f"firmware=@{f}"]
    out = subprocess.run(
        [*base_cmd, "-H", f"X-OTA-SHA256: {sha(data)}", url(app)], capture_output=True, timeout=60, check=True
    )
    answer = httpx.Response(200, content=out.stdout).json()
    assert answer["ok"] is True and answer["bytes"] == len(data) and answer["verified"] is True
    assert (ota_dir / "firmware.bin").read_bytes() == data
    # A form without a file part, and a form cut short: 400, nothing written over the good image.
    r = post(url(app), b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--b--\r\n",
             {"Content-Type": "multipart/form-data; boundary=b"})  # fmt: skip
    assert r.status_code == 400 and "no file part" in r.text
    body = b'--b\r\nContent-Disposition: form-data; name="fw"; filename="a.bin"\r\n\r\n\xe9abc'
    r = post(url(app), body, {"Content-Type": "multipart/form-data; boundary=b"})
    assert r.status_code == 400 and "cut short" in r.text
    assert files(ota_dir) == ["firmware.bin"] and (ota_dir / "firmware.bin").read_bytes() == data


# ---- seed 003: the other servers (the echo server) pause for the upload too ----


@pytest.fixture
def echo_app(loop: Loop, server_host: str, ota_dir: Path) -> Iterator[App]:
    a = App(
        loop, server_host, echo_port=0, http_port=0, stream_fps=50, events_ms=20, ota_dir=str(ota_dir),
        ota_max=4 << 20, auth=AUTH,
    )  # fmt: skip
    yield a
    a.stop(500)


def echoes(app: App, port: int) -> bool:
    """A new client of the echo server gets its bytes back."""
    try:
        with connect(app.host, port) as c:
            c.sendall(b"ping")
            return recv_exact(c, 4) == b"ping"
    except OSError:
        return False


def refused(app: App, port: int) -> bool:
    """A new client of the echo server is refused (nothing listens) or closed without an echo."""
    try:
        with connect(app.host, port) as c:
            c.settimeout(5)
            c.sendall(b"ping")
            return c.recv(4) == b""
    except OSError:
        return True


def closed_by_server(c: socket.socket) -> bool:
    c.settimeout(10)
    try:
        return c.recv(16) == b""
    except OSError:
        return True


def open_upload(app: App, data: bytes, first: int) -> socket.socket:
    s = connect(app.host, app.http_port)
    s.sendall(ota_post_head(len(data)) + data[:first])
    return s


def ota_state(app: App) -> str:
    return str((app.ota_status() or {}).get("state"))


def test_echo_server_stops_for_the_upload_and_comes_back_when_it_fails(echo_app: App, ota_dir: Path) -> None:
    app = echo_app
    port = app.echo_port
    assert echoes(app, port)
    held = connect(app.host, port)  # an echo session open when the upload begins
    held.sendall(b"x")
    assert recv_exact(held, 1) == b"x"
    data = image(200_000)
    s = open_upload(app, data, 5000)
    try:
        assert wait_until(lambda: ota_state(app) == "receiving", timeout=10)
        st = app.ota_status()
        assert st is not None and "echo stopped" in st["prepare"], st
        assert closed_by_server(held)  # the session was closed (FIN, or reset at the deadline)
        assert refused(app, port)  # and newcomers are refused while the image is written
        assert not any(i.owner == "echo" for i in app.loop.registry())
    finally:
        held.close()
        s.close()  # cut off: the upload fails
    assert wait_until(lambda: (app.ota_status() or {}).get("services_paused") is False)
    assert wait_until(lambda: echoes(app, port), timeout=10)  # back on the same port
    assert app.echo_port == port
    assert files(ota_dir) == []


def test_echo_server_stays_stopped_after_a_good_upload_until_the_reboot_step(echo_app: App, ota_dir: Path) -> None:
    app = echo_app
    port = app.echo_port
    data = image(100_000)
    assert post(url(app), data).status_code == 200
    assert refused(app, port)  # the new image waits for its reboot: the memory stays free
    r = requests.post(url(app, "/api/ota/reboot"), auth=AUTH, timeout=10)
    assert r.status_code == 200 and r.json()["rebooting"] is False
    assert wait_until(lambda: echoes(app, port), timeout=10)  # the host's no-op reboot resumes the services


def test_upload_failing_while_the_echo_server_is_still_stopping(echo_app: App, ota_dir: Path) -> None:
    """An echo client that never closes keeps the echo server's stop (and so the prepare) going until the deadline;
    an upload cut off meanwhile must not restart the echo server before that stop has finished, and afterwards it
    comes back."""
    app = echo_app
    port = app.echo_port
    stubborn = connect(app.host, port)
    stubborn.sendall(b"y")
    assert recv_exact(stubborn, 1) == b"y"
    data = image(100_000)
    s = open_upload(app, data, 1000)
    try:
        assert wait_until(lambda: ota_state(app) == "preparing", timeout=10)
    finally:
        s.close()
    assert wait_until(lambda: ota_state(app) == "idle", timeout=10)
    # The stop ends at its deadline (the stubborn client is reset), then the echo server listens again.
    assert wait_until(lambda: echoes(app, port), timeout=15)
    stubborn.close()
    assert files(ota_dir) == []


def test_heap_back_to_baseline_after_aborts_at_every_stage_with_every_server_paused(
    echo_app: App, ota_dir: Path, backend: str
) -> None:
    """Aborts while preparing (an echo client holds the stop), while receiving, at the end (bad SHA-256), and a bad
    image refused before anything stops: after each, the heap (blocks) is back to its baseline, the echo server
    answers, and the streams are served."""
    app = echo_app
    port = app.echo_port
    warm_up(app)  # its failed second upload resumed the services the first one paused
    (ota_dir / "firmware.bin").unlink()
    assert wait_until(lambda: echoes(app, port), timeout=10)
    base = settled_heap(app, backend)
    data = image(150_000)

    def preparing() -> None:
        c = connect(app.host, port)
        c.sendall(b"z")
        assert recv_exact(c, 1) == b"z"
        s = open_upload(app, data, 100)
        assert wait_until(lambda: ota_state(app) == "preparing", timeout=10)
        s.close()
        c.close()

    def receiving() -> None:
        s = open_upload(app, data, 60_000)
        assert wait_until(lambda: ota_state(app) == "receiving", timeout=10)
        assert wait_until(functools.partial(read_all, app, 60_000))
        s.close()

    def bad_sha() -> None:
        assert post(url(app), data, {"X-OTA-SHA256": "0" * 64}).status_code == 400

    def bad_magic() -> None:
        assert post(url(app), image(50_000, magic=0)).status_code == 400

    for stage in (preparing, receiving, bad_sha, bad_magic):
        stage()
        assert wait_until(lambda: (app.ota_status() or {}).get("services_paused") is False, timeout=15)
        assert wait_until(lambda: echoes(app, port), timeout=15), stage.__name__
        v = requests.get(url(app, "/events"), stream=True, timeout=10)
        assert v.status_code == 200, stage.__name__
        v.close()
        assert back_to(app, backend, base), f"{stage.__name__}: heap not back to baseline"
        assert files(ota_dir) == []


def test_cli_progress_bar_on_a_terminal(app: App, ota_dir: Path, tmp_path: Path) -> None:
    """On a terminal (a pty as stderr) `tcp-core ota` draws its bar with percent, KiB, rate and ETA, ending at
    100 %."""
    data = image(1_500_000)
    f = tmp_path / "fw.bin"
    f.write_bytes(data)
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tcp_core.cli", "ota", str(f), url(app), "--auth", ":".join(AUTH)],
            stdout=subprocess.PIPE, stderr=slave, text=True,
        )  # fmt: skip
        os.close(slave)
        slave = -1
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        stdout, _ = proc.communicate(timeout=60)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert proc.returncode == 0, seen
    assert f"uploaded {len(data)} bytes" in stdout
    frames = seen.decode().replace("\r\n", "\n").split("\r")
    last = [fr for fr in frames if fr.startswith("[")][-1]
    assert re.match(r"\[#{30}\] 100\.0%\s+1465/1465 KiB\s+[\d.]+ KiB/s ETA\s+0\.0s", last), last
    assert (ota_dir / "firmware.bin").read_bytes() == data


# ---- static downloads during the upload (tc_http_static_pause) ----


@pytest.fixture
def www(tmp_path: Path) -> Path:
    d = tmp_path / "www"
    d.mkdir()
    (d / "big.bin").write_bytes(os.urandom(16 << 20))
    (d / "small.txt").write_text("small file\n")
    return d


@pytest.fixture
def static_app(loop: Loop, server_host: str, ota_dir: Path, www: Path) -> Iterator[App]:
    a = App(
        loop, server_host, echo_port=None, http_port=0, stream_fps=50, events_ms=20, ota_dir=str(ota_dir),
        ota_max=4 << 20, auth=AUTH, static_dir=str(www),
    )  # fmt: skip
    yield a
    a.stop(500)


def read_to_close(c: socket.socket) -> int:
    """Read until the server's FIN or RST (bounded: 10 s without a byte fails); the bytes read."""
    c.settimeout(10)
    got = 0
    while True:
        try:
            chunk = c.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return got
        if not chunk:
            return got
        got += len(chunk)


def test_the_dashboards_live_feed_stays_through_the_upload(app: App) -> None:
    """/api/live is how the dashboard watches an upload: the prepare does not end it, so it does not wait for it
    either (before: its whole 2 s deadline, then '1 left'). /events ends as before; the feed goes on and shows the
    upload receiving."""
    live = requests.get(url(app, "/api/live"), stream=True, timeout=10)
    events = requests.get(url(app, "/events"), stream=True, timeout=10)
    try:
        assert wait_until(lambda: streams(app) == 2)
        s = open_upload(app, image(100_000), 5000)
        try:
            assert wait_until(lambda: ota_state(app) == "receiving")
            st = app.ota_status()
            assert st is not None and re.match(r"streams ended in \d+ ms, 0 left", st["prepare"]), st["prepare"]
            assert streams(app) == 1  # the feed
            lines = live.iter_lines()
            for _ in range(1000):  # bounded: 20 ms a document, so ~20 s at most (each read has its own timeout)
                line = next(lines)
                if line.startswith(b"data:") and json.loads(line[5:])["ota"]["state"] == "receiving":
                    break
            else:
                pytest.fail("the live feed never showed the upload receiving")
        finally:
            s.close()
    finally:
        live.close()
        events.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is installed by tools/setup.sh")
def test_large_static_downloads_end_for_the_upload_like_streams(
    static_app: App, ota_dir: Path, www: Path, tmp_path: Path
) -> None:
    """A large static download holds a file part and a socket queue like a stream viewer, and the prepare counts it
    as one: so it ends like one. The upload cuts curl's download (curl fails: short, never complete) and a client
    that stopped reading, reports 0 streams left, answers a new large download 503 with Retry-After while small files
    are still served; once the upload fails, curl -C - resumes the file where it stopped and gets it whole."""
    app = static_app
    big = (www / "big.bin").read_bytes()
    part = tmp_path / "big.part"
    # Rate-limited, so it is mid-file when the upload comes (16 s for the whole file); it reads what the kernel had
    # buffered for it before it sees the cut.
    curl = subprocess.Popen(
        ["curl", "-sS", "--limit-rate", "1M", "-o", str(part), url(app, "/big.bin")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    stalled = connect(app.host, app.http_port)  # asks for the file and never reads it
    upload = None
    try:
        stalled.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_until(lambda: streams(app) == 2)
        assert wait_until(lambda: part.exists() and part.stat().st_size > 0)
        upload = open_upload(app, image(100_000), 5000)
        assert wait_until(lambda: ota_state(app) == "receiving")
        st = app.ota_status()
        assert st is not None and st["services_paused"] is True
        assert re.match(r"streams ended in \d+ ms, 0 left", st["prepare"]), st["prepare"]
        assert streams(app) == 0
        r = requests.get(url(app, "/big.bin"), timeout=10)
        assert r.status_code == 503 and r.headers["Retry-After"] == "30"
        r = requests.get(url(app, "/small.txt"), timeout=10)
        assert r.status_code == 200 and r.text == "small file\n"
        assert ota_state(app) == "receiving"
        upload.close()  # cut off: the upload fails, the downloads are served again
        assert wait_until(lambda: (app.ota_status() or {}).get("services_paused") is False)
        _, err = curl.communicate(timeout=60)
        assert curl.returncode != 0, err
        assert 0 < part.stat().st_size < len(big) and big.startswith(part.read_bytes())
        assert read_to_close(stalled) < len(big)  # what the kernel had buffered, then the cut
        out = subprocess.run(
            ["curl", "-sS", "-C", "-", "-o", str(part), url(app, "/big.bin")], capture_output=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        assert part.read_bytes() == big
        assert files(ota_dir) == []
    finally:
        if curl.poll() is None:
            curl.kill()
            curl.wait()
        stalled.close()
        if upload is not None:
            upload.close()


# ---- `tcp-core ota` and a busy device: 409 / 503 with Retry-After ----


def cli_ota(app: App, f: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tcp_core.cli", "ota", str(f), url(app), "--auth", ":".join(AUTH), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_cli_waits_out_an_upload_that_holds_then_uploads(app: App, ota_dir: Path, tmp_path: Path) -> None:
    """An upload holds the route (it keeps sending a byte now and then): the CLI gets 409 with Retry-After: 2, says
    it waits, and asks again after that; once the holder stops sending it gives way (2 s stall) to the CLI's next
    try, which uploads and verifies."""
    data = image(300_000)
    f = tmp_path / "fw.bin"
    f.write_bytes(data)
    held = image(100_000)
    holder = open_upload(app, held, 5000)
    trickling = threading.Event()
    trickling.set()

    def trickle() -> None:
        sent = 5000
        while trickling.is_set() and sent < len(held) - 1:
            holder.sendall(held[sent : sent + 1])
            sent += 1
            time.sleep(0.2)

    t = threading.Thread(target=trickle, daemon=True)
    try:
        assert wait_until(lambda: ota_state(app) == "receiving")
        t.start()
        proc = cli_ota(app, f, "--busy-timeout", "60")
        assert proc.stderr is not None
        line = proc.stderr.readline()  # the first busy answer, read before the holder stops
        assert line.startswith(
            "device busy (HTTP 409: another upload is in progress); retrying in 2 s (Retry-After: 2)"
        )
        trickling.clear()
        t.join()
        stdout, stderr = proc.communicate(timeout=90)
        assert proc.returncode == 0, line + stderr
        assert f"uploaded {len(data)} bytes" in stdout
        assert (ota_dir / "firmware.bin").read_bytes() == data
        assert holder.recv(4096).startswith(b"HTTP/1.1 409")  # the holder was told it was superseded
    finally:
        trickling.clear()
        holder.close()


@pytest.fixture
def full_app(loop: Loop, server_host: str, ota_dir: Path) -> Iterator[App]:
    a = App(
        loop, server_host, echo_port=None, http_port=0, http_max_conns=4, events_ms=20, ota_dir=str(ota_dir),
        ota_max=4 << 20, auth=AUTH,
    )  # fmt: skip
    yield a
    a.stop(500)


def fill(app: App) -> list[requests.Response]:
    """Every connection slot taken by a live session (an SSE viewer): a newcomer gets 503 with Retry-After."""
    viewers = [requests.get(url(app, "/events"), stream=True, timeout=10) for _ in range(4)]
    assert all(v.status_code == 200 for v in viewers)
    return viewers


def test_cli_waits_for_a_full_device_then_uploads(full_app: App, ota_dir: Path, tmp_path: Path) -> None:
    """Every slot taken: the CLI gets 503 (Retry-After: 2), waits and asks again; once a viewer has gone, the
    upload goes through."""
    app = full_app
    data = image(200_000)
    f = tmp_path / "fw.bin"
    f.write_bytes(data)
    viewers = fill(app)
    try:
        proc = cli_ota(app, f, "--busy-timeout", "60")
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("device busy (HTTP 503: busy); retrying in 2 s (Retry-After: 2)"), line
    finally:
        for v in viewers:
            v.close()
    stdout, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 0, line + stderr
    assert f"uploaded {len(data)} bytes" in stdout and (ota_dir / "firmware.bin").read_bytes() == data


def test_cli_gives_up_on_a_busy_device_within_its_bound(full_app: App, ota_dir: Path, tmp_path: Path) -> None:
    """A device that stays full: the CLI asks again after each Retry-After while that ends within --busy-timeout,
    then stops with a message that says why (exit status 1); nothing was written."""
    app = full_app
    f = tmp_path / "fw.bin"
    f.write_bytes(image(200_000))
    viewers = fill(app)
    try:
        proc = cli_ota(app, f, "--busy-timeout", "3")
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        for v in viewers:
            v.close()
    assert proc.returncode == 1, stdout + stderr
    lines = stderr.splitlines()
    assert lines[0] == "device busy (HTTP 503: busy); retrying in 2 s (Retry-After: 2)", stderr
    assert re.match(
        r"tcp-core ota: device still busy after [\d.]+ s and \d+ attempts \(HTTP 503: busy\); giving up: the next "
        r"try \(2 s on\) would pass the busy timeout of 3 s$",
        lines[-1],
    ), stderr
    assert files(ota_dir) == []


def test_retry_after_values() -> None:
    from datetime import datetime, timezone

    from tcp_core.ota import retry_after_seconds

    now = datetime(2026, 12, 3, 2, 0, 0, tzinfo=timezone.utc)
    assert retry_after_seconds("2") == 2.0 and retry_after_seconds(" 120 ") == 120.0
    assert retry_after_seconds("Thu, 03 Dec 2026 02:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Thu, 03 Dec 2026 01:59:00 GMT", now) == 0.0  # a date past: at once
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("-5") is None
