"""Static files (tc_http_static.h) through App(static_dir=...) / `tcp-core serve --static`: Content-Type, ETag and
Last-Modified revalidation, .gz siblings, single byte ranges, path traversal refused (encoded "..", NUL,
backslashes), large files streamed part by part to a slow reader, a reader that leaves mid-file. Clients: curl,
requests, httpx, raw sockets; both host backends; the loop fixture's leak check after each test.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import requests

import tcp_core
from conftest import connect, wait_until
from tcp_core import Loop
from tcp_core.app import App


@pytest.fixture
def www(tmp_path: Path) -> Path:
    d = tmp_path / "www"
    (d / "sub").mkdir(parents=True)
    (d / "index.html").write_text("<h1>hi</h1>")
    (d / "app.js").write_text("console.log(1)" * 100)
    (d / "app.js.gz").write_bytes(gzip.compress((d / "app.js").read_bytes()))
    (d / "sub" / "index.html").write_text("sub index")
    (d / "big.bin").write_bytes(os.urandom(3 << 20))
    (d / "data.json").write_text('{"a": 1}')
    (tmp_path / "secret.txt").write_text("outside the root")
    return d


@pytest.fixture
def app(loop: Loop, server_host: str, www: Path) -> Iterator[App]:
    a = App(loop, server_host, echo_port=None, http_port=0, static_dir=str(www))
    yield a
    a.stop(500)


def base(app: App) -> str:
    return f"http://{app.host}:{app.http_port}"


def raw_get(app: App, target: bytes) -> bytes:
    with connect(app.host, app.http_port) as s:
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = b""
        try:
            # Up to the end of the answer (Content-Length), not EOF: the server waits for the client to close first.
            while chunk := s.recv(65536):
                out += chunk
                head, sep, body = out.partition(b"\r\n\r\n")
                length = [ln for ln in head.lower().split(b"\r\n") if ln.startswith(b"content-length:")]
                if sep and length and len(body) >= int(length[0].split(b":")[1]):
                    break
        except ConnectionResetError:
            pass  # a request the parser refused (400) is answered, then the connection may be reset
    return out


def test_types_etag_and_last_modified(app: App, www: Path) -> None:
    with httpx.Client(base_url=base(app)) as c:
        r = c.get("/data.json")
        assert r.status_code == 200 and r.json() == {"a": 1}
        assert r.headers["content-type"] == "application/json"
        etag, lastmod = r.headers["etag"], r.headers["last-modified"]
        assert r.headers["accept-ranges"] == "bytes"
        assert c.get("/data.json", headers={"If-None-Match": etag}).status_code == 304
        assert c.get("/data.json", headers={"If-None-Match": '"other"'}).status_code == 200
        assert c.get("/data.json", headers={"If-Modified-Since": lastmod}).status_code == 304
        os.utime(www / "data.json", (1, 1))  # changed: the old validators no longer match
        assert c.get("/data.json", headers={"If-None-Match": etag}).status_code == 200
        assert c.get("/sub/").text == "sub index"
        r = c.get("/sub")
        assert r.status_code == 301 and r.headers["location"] == "/sub/"
        assert c.get("/missing.txt").status_code == 404
        # The service's own routes come first.
        assert c.get("/api/status").json()["count"] >= 1


def test_gzip_sibling_only_when_accepted(app: App, www: Path) -> None:
    plain = (www / "app.js").read_bytes()
    r = requests.get(base(app) + "/app.js", timeout=10)  # requests sends Accept-Encoding: gzip and decodes
    assert r.headers["content-encoding"] == "gzip" and r.headers["vary"] == "Accept-Encoding"
    assert r.content == plain and r.headers["content-type"].startswith("text/javascript")
    r = requests.get(base(app) + "/app.js", headers={"Accept-Encoding": "identity"}, timeout=10)
    assert "content-encoding" not in r.headers and r.content == plain
    r = requests.get(base(app) + "/app.js", headers={"Accept-Encoding": "gzip;q=0, br"}, timeout=10)
    assert "content-encoding" not in r.headers


def test_ranges(app: App, www: Path) -> None:
    data = (www / "big.bin").read_bytes()
    h = {"Accept-Encoding": "identity"}
    with httpx.Client(base_url=base(app), headers=h) as c:
        r = c.get("/big.bin", headers={"Range": "bytes=10-19"})
        assert r.status_code == 206 and r.content == data[10:20]
        assert r.headers["content-range"] == f"bytes 10-19/{len(data)}"
        r = c.get("/big.bin", headers={"Range": "bytes=-100"})
        assert r.status_code == 206 and r.content == data[-100:]
        # Open-ended: capped at range_max (64 KiB); Content-Range says which bytes came.
        r = c.get("/big.bin", headers={"Range": f"bytes={len(data) - 1000}-"})
        assert r.status_code == 206 and r.content == data[-1000:]
        r = c.get("/big.bin", headers={"Range": "bytes=0-"})
        assert r.status_code == 206 and r.content == data[:65536]
        assert r.headers["content-range"] == f"bytes 0-65535/{len(data)}"
        r = c.get("/big.bin", headers={"Range": f"bytes={len(data)}-"})
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(data)}"
        r = c.get("/big.bin", headers={"Range": "bytes=0-1,5-6"})  # several ranges: the whole file
        assert r.status_code == 200 and r.content == data
        etag = r.headers["etag"]
        r = c.get("/big.bin", headers={"Range": "bytes=0-9", "If-Range": etag})
        assert r.status_code == 206
        r = c.get("/big.bin", headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
        assert r.status_code == 200 and len(r.content) == len(data)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is installed by tools/setup.sh")
def test_curl_downloads_and_resumes(app: App, www: Path, tmp_path: Path) -> None:
    data = (www / "big.bin").read_bytes()
    out = tmp_path / "dl.bin"
    subprocess.run(["curl", "-sSf", "-o", str(out), base(app) + "/big.bin"], check=True, timeout=60)
    assert out.read_bytes() == data
    out.write_bytes(data[:1000])
    subprocess.run(["curl", "-sSf", "-C", "-", "-o", str(out), base(app) + "/big.bin"], check=True, timeout=60)
    assert out.read_bytes()[:66536] == data[:66536]  # resumed with a (capped) range


@pytest.mark.parametrize(
    "target",
    [
        b"/../secret.txt",
        b"/%2e%2e/secret.txt",
        b"/%2E%2E%2Fsecret.txt",
        b"/sub/..%2f..%2fsecret.txt",
        b"/sub/%2e%2e/%2e%2e/secret.txt",
        b"/..%5csecret.txt",
        b"/sub\\..\\..\\secret.txt",
        b"/index.html%00.png",
        b"/./index.html",
        b"/%2e/index.html",
    ],
)
def test_path_traversal_is_refused(app: App, target: bytes) -> None:
    out = raw_get(app, target)
    status = out.split(b" ", 2)[1]
    assert status in (b"400", b"404"), out[:200]
    assert b"outside the root" not in out


def test_large_file_streams_to_a_slow_reader_with_bounded_memory(app: App, www: Path, backend: str) -> None:
    """3 MiB to a reader that pauses before reading: the server holds a part at a time (the kernel's buffers and
    the reader's window hold the rest), never the file. The body is read up to its last chunk, not to EOF: the
    server waits for the reader to close first (peer-first close)."""
    data = (www / "big.bin").read_bytes()
    tcp_core.reset_alloc_peak(backend)
    before = tcp_core.alloc_stats(backend).bytes_peak
    with connect(app.host, app.http_port) as s:
        s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_until(lambda: any(i.kind == "accepted" and i.bytes_out > 0 for i in app.loop.registry()))
        got = bytearray()
        while not got.endswith(b"\r\n0\r\n\r\n"):
            chunk = s.recv(65536)
            assert chunk, "connection closed before the last chunk"
            got += chunk
    head, _, body = bytes(got).partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    out, rest = bytearray(), body
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        n = int(size_line, 16)
        if n == 0:
            break
        out += rest[:n]
        rest = rest[n + 2 :]
    assert out == data
    peak = tcp_core.alloc_stats(backend).bytes_peak - before
    assert peak < 256 * 1024, f"heap peak grew {peak} bytes for a {len(data)}-byte file"


def test_reader_that_leaves_mid_file_frees_the_stream(app: App, backend: str) -> None:
    assert wait_until(lambda: not any(i.kind == "accepted" for i in app.loop.registry()))
    blocks = tcp_core.alloc_stats(backend).blocks_in_use
    for _ in range(5):
        with connect(app.host, app.http_port) as s:
            s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
    assert wait_until(lambda: not any(i.kind == "accepted" for i in app.loop.registry()), timeout=10)
    assert wait_until(lambda: tcp_core.alloc_stats(backend).blocks_in_use == blocks, timeout=10)
