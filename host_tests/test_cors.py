"""CORS per route (tc_http_auth.h) through App(cors_origins=...) / `tcp-core serve --cors`: the allowed origin gets
the headers, another origin none, preflights answered (204) or refused (403), credentials echo the origin. Clients:
httpx and requests; both host backends; the loop fixture's leak check after each test.
"""

from __future__ import annotations

import httpx
import requests

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
    finally:
        app.stop(500)
