"""CORS (tc_http_auth.h) through App(cors_origins=...) / `tcp-core serve --cors`, a server-wide policy
(tc_http_config_t.cors): the allowed origin gets the headers on every route (404/405 included), another origin none,
preflights answered (204) or refused (403), credentials echo the origin, Vary: Origin on every answer of a list
policy (whatever the Origin, or none), WebSocket upgrades untouched. Clients: httpx, requests, and Chromium
(Playwright) fetching across origins; both host backends; the loop fixture's leak check after each test. The
per-route override is tested in C (host_tests/c/test_cors.c).
"""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from conftest import connect
from tcp_core import Loop
from tcp_core.app import App


def test_allowed_origin_gets_the_headers_and_preflight(loop: Loop, server_host: str) -> None:
    app = App(loop, server_host, echo_port=None, http_port=0, cors_origins="http://dash.lan, http://other.lan")
    base = f"http://{app.host}:{app.http_port}"
    try:
        with httpx.Client(base_url=base) as c:
            r = c.get("/api/status", headers={"Origin": "http://dash.lan"})
            assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://dash.lan"
            assert r.headers["vary"] == "Origin"
            r = c.get("/api/status", headers={"Origin": "http://evil.lan"})
            assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
            r = c.get("/api/status")
            assert "access-control-allow-origin" not in r.headers
            pre = {"Origin": "http://other.lan", "Access-Control-Request-Method": "GET"}
            r = c.options("/api/status", headers={**pre, "Access-Control-Request-Headers": "authorization"})
            assert r.status_code == 204 and "content-length" not in r.headers
            assert r.headers["access-control-allow-methods"] == "GET"
            assert "Authorization" in r.headers["access-control-allow-headers"]
            assert int(r.headers["access-control-max-age"]) > 0
            assert c.options("/api/status", headers={**pre, "Origin": "http://evil.lan"}).status_code == 403
            bad_method = {**pre, "Access-Control-Request-Method": "DELETE"}
            assert c.options("/api/status", headers=bad_method).status_code == 403
            bad_header = {**pre, "Access-Control-Request-Headers": "X-Secret"}
            assert c.options("/api/status", headers=bad_header).status_code == 403
        # A route without CORS still refuses OPTIONS as before.
        assert requests.options(base + "/api/chunks", timeout=10).status_code == 405
    finally:
        app.stop(500)


def test_any_origin(loop: Loop, server_host: str) -> None:
    app = App(loop, server_host, echo_port=None, http_port=0, cors_origins="*")
    try:
        r = requests.get(f"http://{app.host}:{app.http_port}/api/status", headers={"Origin": "http://x"}, timeout=10)
        assert r.headers["access-control-allow-origin"] == "*" and "vary" not in r.headers
        r = requests.get(f"http://{app.host}:{app.http_port}/api/status", timeout=10)  # the same answer for all
        assert "access-control-allow-origin" not in r.headers and "vary" not in r.headers
    finally:
        app.stop(500)


# ---- server-wide CORS (tc_http_config_t.cors): every route, 404/405 included, preflights for any path ----


def test_server_wide_policy_covers_every_route(loop: Loop, server_host: str, tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("static data")
    app = App(
        loop, server_host, echo_port=None, http_port=0, static_dir=str(tmp_path), ota_dir=str(tmp_path),
        cors_origins="http://dash.lan",
    )  # fmt: skip
    base = f"http://{app.host}:{app.http_port}"
    o = {"Origin": "http://dash.lan"}
    try:
        with httpx.Client(base_url=base) as c:
            for path in ("/api/status", "/data.txt", "/api/ota", "/no-such-file"):
                r = c.get(path, headers=o)
                assert r.headers.get("access-control-allow-origin") == "http://dash.lan", (path, r.status_code)
            r = c.post("/data.txt", headers=o)  # no POST route there: the 405 is readable by the script too
            assert r.status_code == 405 and r.headers["access-control-allow-origin"] == "http://dash.lan"
            r = c.get("/data.txt", headers={"Origin": "http://evil.lan"})
            assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
            pre = {**o, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "Authorization"}
            r = c.options("/data.txt", headers=pre)  # a static file: no OPTIONS route, the server's policy answers
            assert r.status_code == 204 and r.headers["access-control-allow-methods"] == "GET"
            r = c.options("/api/ota", headers={**pre, "Access-Control-Request-Method": "POST"})
            assert r.status_code == 403  # the policy allows GET only: no cross-origin uploads
            assert c.options("/data.txt").status_code == 405  # a plain OPTIONS is not a preflight
    finally:
        app.stop(500)


def test_every_answer_of_a_list_policy_varies_on_origin(loop: Loop, server_host: str, tmp_path: Path) -> None:
    """Fetch standard, "CORS protocol and HTTP caches": with a list, the answer depends on the Origin, so every
    answer says Vary: Origin, to an allowed origin, another one, or none (only the first said it: a shared cache
    could hand an answer without Access-Control-Allow-Origin to the allowed origin, or the reverse); preflights,
    refused ones too. A file's own Vary: Accept-Encoding joins it in one field."""
    (tmp_path / "data.txt").write_text("static data " * 100)
    (tmp_path / "data.txt.gz").write_bytes(gzip.compress((tmp_path / "data.txt").read_bytes()))
    app = App(
        loop, server_host, echo_port=None, http_port=0, static_dir=str(tmp_path),
        cors_origins="http://dash.lan, http://other.lan",
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://{app.host}:{app.http_port}") as c:
            for origin in (None, "http://evil.lan", "http://dash.lan"):
                h = {"Origin": origin} if origin else {}
                for method, path, vary in [
                    ("GET", "/api/status", "Origin"),
                    ("GET", "/no-such-file", "Origin"),
                    ("POST", "/data.txt", "Origin"),
                    ("GET", "/api/echo", "Origin"),
                    ("GET", "/data.txt", "Origin, Accept-Encoding"),
                ]:
                    r = c.request(method, path, headers=h)
                    assert r.headers.get_list("vary") == [vary], (origin, method, path, r.status_code, r.headers)
                    allowed = r.headers.get("access-control-allow-origin")
                    assert allowed == (origin if origin == "http://dash.lan" else None), (origin, path)
                etag = c.get("/data.txt", headers=h).headers["etag"]
                r = c.get("/data.txt", headers={**h, "If-None-Match": etag})
                assert r.status_code == 304 and r.headers.get_list("vary") == ["Origin, Accept-Encoding"], origin
            pre = {"Origin": "http://dash.lan", "Access-Control-Request-Method": "GET"}
            for headers, status in [
                (pre, 204),
                ({**pre, "Origin": "http://evil.lan"}, 403),
                ({**pre, "Access-Control-Request-Method": "DELETE"}, 403),
            ]:
                r = c.options("/data.txt", headers=headers)
                assert r.status_code == status and r.headers.get_list("vary") == ["Origin"], (headers, r.headers)
    finally:
        app.stop(500)


def test_websocket_upgrade_gets_no_cors_headers(loop: Loop, server_host: str) -> None:
    app = App(loop, server_host, echo_port=None, http_port=0, cors_origins="*")
    try:
        with connect(app.host, app.http_port) as s:
            s.sendall(
                b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://x\r\n\r\n"
            )
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                assert chunk
                head += chunk
        assert head.startswith(b"HTTP/1.1 101") and b"access-control" not in head.lower()
    finally:
        app.stop(500)


# ---- in a browser: the peer that enforces CORS ----

REQUIRE_BROWSER = os.environ.get("CI") == "true" or os.environ.get("TC_REQUIRE_BROWSER") == "1"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    def unavailable(why: str) -> None:
        if REQUIRE_BROWSER:
            pytest.fail(f"the browser tests are required (CI=true) but cannot run: {why}; run tools/setup.sh")
        pytest.skip(why)

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright is not installed (pip install -e '.[test]')")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        unavailable("Chromium is not installed (apt-get install chromium)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


FETCHES = """async ([b, c]) => {
    const out = {};
    const read = async (name, url, init) => {
        try {
            const r = await fetch(url, init);
            out[name] = r.status + " " + (await r.text()).slice(0, 40);
        } catch (e) {
            out[name] = "blocked " + e.name;
        }
    };
    await read("status", b + "/api/status");
    await read("file_with_auth", b + "/data.txt", {headers: {"Authorization": "Basic eDp5"}});
    await read("post_405", b + "/data.txt", {method: "POST"});
    await read("put_refused", b + "/data.txt", {method: "PUT"});
    await read("other_origin", c + "/data.txt");
    return out;
}"""


def test_browser_reads_across_origins_only_what_the_policy_allows(
    browser: Any, loop: Loop, server_host: str, tmp_path: Path
) -> None:
    """A page of one origin (app A) fetches from app B, whose server-wide policy allows A, and from app C, which
    allows another origin: Chromium lets the script read B's answers (a static file after a preflight for its
    Authorization header, a 405), refuses a PUT its preflight was denied, and blocks C."""
    pages, files = tmp_path / "pages", tmp_path / "files"
    pages.mkdir()
    files.mkdir()
    (pages / "index.html").write_text("<!doctype html><title>origin A</title>")
    (files / "data.txt").write_text("static data from B")
    a = App(loop, server_host, echo_port=None, http_port=0, static_dir=str(pages))
    origin_a = f"http://{a.host}:{a.http_port}"
    b = App(loop, server_host, echo_port=None, http_port=0, static_dir=str(files), cors_origins=origin_a)
    c = App(loop, server_host, echo_port=None, http_port=0, static_dir=str(files), cors_origins="http://x.lan")
    page = browser.new_page()
    try:
        page.goto(origin_a + "/index.html")
        out = page.evaluate(FETCHES, [f"http://{b.host}:{b.http_port}", f"http://{c.host}:{c.http_port}"])
        assert out["status"].startswith('200 {"backend"'), out
        assert out["file_with_auth"] == "200 static data from B", out
        assert out["post_405"].startswith("405 method not allowed"), out
        assert out["put_refused"] == "blocked TypeError", out
        assert out["other_origin"] == "blocked TypeError", out
    finally:
        page.close()
        for app in (c, b, a):
            app.stop(500)
