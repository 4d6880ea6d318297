"""Static files (tc_http_static.h) through App(static_dir=...) / `tcp-core serve --static`: Content-Type, ETag and
Last-Modified revalidation, .gz siblings, single byte ranges, path traversal refused (encoded "..", NUL,
backslashes), large files streamed part by part to a slow reader, a reader that leaves mid-file, range numbers past
2^64, the fallback behind the service's routes (a routed path's other methods get 405 with Allow). Clients: curl,
requests, httpx, raw sockets; both host backends; the loop fixture's leak check after each test.
"""

from __future__ import annotations

import gzip
import os
import shutil
import socket
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
    (d / "my dir").mkdir()
    (d / "my dir" / "index.html").write_text("spaced index")
    (d / "a?b").mkdir()
    (d / "a?b" / "index.html").write_text("question index")
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


@pytest.mark.parametrize(
    ("accept", "gzip"),
    [
        ("gzip", True),
        ("GZIP", True),
        ("br, gzip;q=0.5", True),
        ("gzip;q=0.001", True),
        ("gzip; q=1.0", True),
        ("gzip; q=0", False),
        ("gzip ;q=0.000", False),
        ("gzip;Q=0", False),
        ("gzipx", False),
        ("x-gzip", False),
        ("*", True),
        ("*;q=0", False),
        ("gzip;q=0, *", False),
    ],
)
def test_gzip_weights_as_rfc_9110_writes_them(app: App, accept: str, gzip: bool) -> None:
    r = requests.get(base(app) + "/app.js", headers={"Accept-Encoding": accept}, timeout=10)
    assert r.status_code == 200 and (r.headers.get("content-encoding") == "gzip") == gzip, r.headers


def test_ranges(app: App, www: Path) -> None:
    data = (www / "big.bin").read_bytes()
    h = {"Accept-Encoding": "identity"}
    with httpx.Client(base_url=base(app), headers=h) as c:
        r = c.get("/big.bin", headers={"Range": "bytes=10-19"})
        assert r.status_code == 206 and r.content == data[10:20]
        assert r.headers["content-range"] == f"bytes 10-19/{len(data)}"
        r = c.get("/big.bin", headers={"Range": "bytes=-100"})
        assert r.status_code == 206 and r.content == data[-100:]
        # Open-ended: to the end of the file, however large (streamed, no longer capped at 64 KiB).
        r = c.get("/big.bin", headers={"Range": f"bytes={len(data) - 1000}-"})
        assert r.status_code == 206 and r.content == data[-1000:]
        r = c.get("/big.bin", headers={"Range": "bytes=0-"})
        assert r.status_code == 206 and r.content == data
        assert r.headers["content-range"] == f"bytes 0-{len(data) - 1}/{len(data)}"
        assert r.headers["content-length"] == str(len(data))
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
    assert out.read_bytes() == data  # resumed with one range to the end of the file


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
    the reader's window hold the rest), never the file. The body is read up to its Content-Length, not to EOF: the
    server keeps the connection for the next request."""
    data = (www / "big.bin").read_bytes()
    tcp_core.reset_alloc_peak(backend)
    before = tcp_core.alloc_stats(backend).bytes_peak
    with connect(app.host, app.http_port) as s:
        s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_until(lambda: any(i.kind == "accepted" and i.bytes_out > 0 for i in app.loop.registry()))
        got = bytearray()
        while b"\r\n\r\n" not in got:
            chunk = s.recv(65536)
            assert chunk, "connection closed before the head"
            got += chunk
        head, _, out = bytes(got).partition(b"\r\n\r\n")
        assert f"content-length: {len(data)}".encode() in head.lower(), head
        out = bytearray(out)
        while len(out) < len(data):
            chunk = s.recv(65536)
            assert chunk, f"connection closed after {len(out)} of {len(data)} bytes"
            out += chunk
    assert out == data
    peak = tcp_core.alloc_stats(backend).bytes_peak - before
    assert peak < 256 * 1024, f"heap peak grew {peak} bytes for a {len(data)}-byte file"


def test_large_file_is_sent_under_its_content_length(app: App, www: Path) -> None:
    """A file over whole_max (16 KiB) was sent chunked: a HEAD could not tell its size, nor a browser or download
    manager show a download's progress. Now a whole file goes under its Content-Length, like a range."""
    data = (www / "big.bin").read_bytes()
    head = requests.head(f"http://{app.host}:{app.http_port}/big.bin", timeout=5)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(data)), head.headers
    assert "transfer-encoding" not in head.headers and head.content == b""
    with requests.get(f"http://{app.host}:{app.http_port}/big.bin", timeout=10) as r:
        assert r.headers["content-length"] == str(len(data)) and "transfer-encoding" not in r.headers
        assert r.content == data


@pytest.mark.parametrize(
    ("target", "location", "index"),
    [
        (b"/sub", b"/sub/", "sub index"),
        (b"/my%20dir", b"/my%20dir/", "spaced index"),
        (b"/a%3Fb", b"/a%3Fb/", "question index"),
        (b"//sub", b"/sub/", "sub index"),
        (b"/%2F%2Fsub", b"/sub/", "sub index"),
    ],
)
def test_directory_redirect_location_is_encoded_and_stays_on_this_host(
    app: App, target: bytes, location: bytes, index: str
) -> None:
    """ "dir" -> "dir/" is built from the decoded path, so it is encoded again: "/a%3Fb" went to "/a?b/" (a query:
    404 after the redirect), "/my%20dir" to a Location with a raw space, and "//sub" to "//sub/", which a client
    reads as the host "sub"."""
    resp = raw_get(app, target)
    head = resp.partition(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[0] == b"HTTP/1.1 301 Moved Permanently" and b"Location: " + location in head, head
    r = requests.get(base(app) + location.decode(), timeout=5)  # where a browser goes next
    assert r.status_code == 200 and r.text == index


def _half_closed_exchange(app: App, request: bytes) -> tuple[bytes, bytes]:
    """Send a request, shutdown(SHUT_WR) at once (`printf 'GET ...' | nc`), read to EOF: (head, body)."""
    with connect(app.host, app.http_port) as s:
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(10)
        data = bytearray()
        while chunk := s.recv(1 << 16):  # a reset raises: it must end with our FIN
            data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    return head, body


@pytest.mark.parametrize(
    "request_head",
    [
        b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-\r\n\r\n",
        b"GET /big.bin HTTP/1.0\r\n\r\n",
        b"GET /data.json HTTP/1.1\r\nHost: x\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["keep-alive", "close", "range", "http10", "pipelined"],
)
def test_client_that_half_closes_after_its_request_gets_the_whole_file(
    app: App, www: Path, request_head: bytes
) -> None:
    """The FIN of a client that has said all it will say (shutdown(SHUT_WR) right after the request) does not cut
    the answer: the whole 3 MB, then our FIN. (It got 12 KB to 300 KB, then an RST.)"""
    before = app.loop.close_stats()
    head, body = _half_closed_exchange(app, request_head)
    data = (www / "big.bin").read_bytes()
    if b"/data.json" in request_head:  # the first answer, then the second one's head
        first = b'{"a": 1}'
        assert body.startswith(first), body[:100]
        head, _, body = body[len(first) :].partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] in (b"HTTP/1.1 200 OK", b"HTTP/1.1 206 Partial Content"), head
    assert b"transfer-encoding" not in head.lower(), head  # a file goes under its Content-Length, whole or a range
    assert body == data
    assert app.loop.close_stats().reset_sent == before.reset_sent


def test_http10_streams_are_not_chunked(app: App, www: Path) -> None:
    """RFC 9112 6.1: no Transfer-Encoding in an answer to an HTTP/1.0 request. A chunked handler and SSE are
    close-delimited for 1.0 clients instead (they were chunk-framed, which a 1.0 client saves as part of the body);
    a file goes under its Content-Length."""
    head, body = _half_closed_exchange(app, b"GET /big.bin HTTP/1.0\r\n\r\n")
    assert b"transfer-encoding" not in head.lower() and body == (www / "big.bin").read_bytes(), head
    head, body = _half_closed_exchange(app, b"GET /api/chunks HTTP/1.0\r\n\r\n")
    assert b"transfer-encoding" not in head.lower() and body == b'{"pieces":[1,2,3]}\n', (head, body)
    with connect(app.host, app.http_port) as s:
        s.sendall(b"GET /api/live HTTP/1.0\r\n\r\n")
        s.settimeout(5)
        data = b""
        while b"\n\n" not in data.partition(b"\r\n\r\n")[2]:
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower() and body.startswith(b"data: {"), data[:300]


def test_reader_that_leaves_mid_file_frees_the_stream(app: App, backend: str) -> None:
    assert wait_until(lambda: not any(i.kind == "accepted" for i in app.loop.registry()))
    blocks = tcp_core.alloc_stats(backend).blocks_in_use
    for _ in range(5):
        with connect(app.host, app.http_port) as s:
            s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
    assert wait_until(lambda: not any(i.kind == "accepted" for i in app.loop.registry()), timeout=10)
    assert wait_until(lambda: tcp_core.alloc_stats(backend).blocks_in_use == blocks, timeout=10)


# ---- ranges of any size, streamed under their Content-Length (issue 13) ----


def read_answer(s: socket.socket) -> tuple[bytes, bytes]:
    """One answer with a Content-Length off a keep-alive connection: its head and exactly its body."""
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(65536)
        assert chunk, f"closed inside the head: {got!r}"
        got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    length = next(int(ln.split(b":")[1]) for ln in head.lower().split(b"\r\n") if ln.startswith(b"content-length:"))
    while len(body) < length:
        chunk = s.recv(65536)
        assert chunk, f"closed after {len(body)} of {length} body bytes"
        body += chunk
    assert len(body) == length, "more bytes than the Content-Length"
    return head, body


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is installed by tools/setup.sh")
def test_curl_ranges_of_megabytes_suffix_and_416(app: App, www: Path, tmp_path: Path) -> None:
    data = (www / "big.bin").read_bytes()
    n = len(data)
    out = tmp_path / "part.bin"
    cases = [("1000000-2999999", data[1_000_000:3_000_000]), ("-2500000", data[-2_500_000:]), ("7-", data[7:])]
    for spec, want in cases:
        r = subprocess.run(
            ["curl", "-sS", "-r", spec, "-o", str(out), "-D", "-", "-H", "Accept-Encoding: identity",
             base(app) + "/big.bin"],
            capture_output=True, timeout=60, check=True, text=True,
        )  # fmt: skip
        assert r.stdout.startswith("HTTP/1.1 206"), r.stdout
        assert f"content-length: {len(want)}" in r.stdout.lower(), r.stdout
        assert out.read_bytes() == want, spec
    r = subprocess.run(
        ["curl", "-sS", "-r", f"{n}-{n + 10}", "-o", str(out), "-w", "%{http_code}", base(app) + "/big.bin"],
        capture_output=True, timeout=60, check=True, text=True,
    )  # fmt: skip
    assert r.stdout == "416" and out.read_bytes() == b"range not satisfiable\n"


def test_requests_ranges_head_and_keep_alive(app: App, www: Path) -> None:
    data = (www / "big.bin").read_bytes()
    n = len(data)
    with requests.Session() as s:
        r = s.get(base(app) + "/big.bin", headers={"Range": "bytes=-1048577"}, timeout=30)
        assert r.status_code == 206 and r.content == data[-1048577:]
        assert r.headers["content-range"] == f"bytes {n - 1048577}-{n - 1}/{n}"
        r = s.get(base(app) + "/big.bin", headers={"Range": f"bytes=-{n + 5}"}, timeout=30)  # longer than the file
        assert r.status_code == 206 and r.content == data
        r = s.head(base(app) + "/big.bin", headers={"Range": "bytes=100-2000099"}, timeout=30)
        assert r.status_code == 206 and r.headers["content-length"] == "2000000" and r.content == b""
        r = s.get(base(app) + "/big.bin", headers={"Range": "bytes=-0"}, timeout=30)
        assert r.status_code == 416
    # Several streamed ranges one after the other on one connection: each ends exactly at its Content-Length.
    with connect(app.host, app.http_port) as c:
        for a, b in ((0, 999_999), (2_000_000, n - 1), (5, 70_004)):
            c.sendall(f"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes={a}-{b}\r\n\r\n".encode())
            head, body = read_answer(c)
            assert head.startswith(b"HTTP/1.1 206") and body == data[a : b + 1], (a, b)


def test_range_numbers_past_any_integer_are_clamped_or_unsatisfiable_never_wrapped(app: App, www: Path) -> None:
    """RFC 9110 14.1.2: a last-pos at or past the end means the end, however many digits it has (2^64 and more were
    taken for no Range: 200 with the whole file); a first-pos past the end is unsatisfiable (416) at any size; a
    last-pos before the first-pos makes the range invalid (ignored: 200), also when both are past 2^64."""
    data = (www / "app.js").read_bytes()
    n = len(data)
    huge, huger = "18446744073709551616", "18446744073709551617"  # 2^64, 2^64 + 1
    cases = [
        (f"bytes=0-{huge}", 206, 0),
        (f"bytes=0-{2**64 - 1}", 206, 0),
        (f"bytes=5-{'9' * 40}", 206, 5),
        (f"bytes={'0' * 30}7-{huge}", 206, 7),
        (f"bytes=-{huge}", 206, 0),
        (f"bytes={huge}-", 416, None),
        (f"bytes={huge}-{huger}", 416, None),
        (f"bytes={n}-{huge}", 416, None),
        (f"bytes={huger}-{huge}", 200, 0),  # last-pos < first-pos: not a range
        (f"bytes={huge}-5", 200, 0),
    ]
    with httpx.Client(base_url=base(app), headers={"Accept-Encoding": "identity"}) as c:
        for spec, status, start in cases:
            r = c.get("/app.js", headers={"Range": spec})
            assert r.status_code == status, (spec, r.status_code, r.headers)
            if status == 206:
                assert r.content == data[start:] and r.headers["content-range"] == f"bytes {start}-{n - 1}/{n}", spec
            elif status == 416:
                assert r.headers["content-range"] == f"bytes */{n}", spec
            else:
                assert r.content == data and "content-range" not in r.headers, spec


def test_range_streams_to_a_slow_reader_with_bounded_memory(app: App, www: Path, backend: str) -> None:
    """A 2.5 MB range to a reader that pauses: the server holds a part at a time, never the range."""
    data = (www / "big.bin").read_bytes()
    tcp_core.reset_alloc_peak(backend)
    before = tcp_core.alloc_stats(backend).bytes_peak
    with connect(app.host, app.http_port) as s:
        s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=500000-2999999\r\n\r\n")
        assert wait_until(lambda: any(i.kind == "accepted" and i.bytes_out > 0 for i in app.loop.registry()))
        head, body = read_answer(s)
    assert head.startswith(b"HTTP/1.1 206") and body == data[500_000:3_000_000]
    peak = tcp_core.alloc_stats(backend).bytes_peak - before
    assert peak < 256 * 1024, f"heap peak grew {peak} bytes for a 2,500,000-byte range"


def test_reader_that_leaves_mid_range_frees_the_stream(app: App, backend: str) -> None:
    assert wait_until(lambda: not any(i.kind == "accepted" for i in app.loop.registry()))
    blocks = tcp_core.alloc_stats(backend).blocks_in_use
    for _ in range(5):
        with connect(app.host, app.http_port) as s:
            s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=1-3000000\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 206")
    assert wait_until(lambda: not any(i.kind == "accepted" for i in app.loop.registry()), timeout=10)
    assert wait_until(lambda: tcp_core.alloc_stats(backend).blocks_in_use == blocks, timeout=10)


def test_stop_during_a_range_ends_it_short_never_complete(loop: Loop, server_host: str, www: Path) -> None:
    """A server stop in the middle of a streamed range: the client gets fewer bytes than the Content-Length and
    the connection's end (never a body that looks complete)."""
    size = 32 << 20  # more than the socket buffers of both ends hold while the reader does not read
    with (www / "huge.bin").open("wb") as f:
        f.truncate(size)
    a = App(loop, server_host, echo_port=None, http_port=0, static_dir=str(www))
    s = connect(a.host, a.http_port)
    try:
        s.sendall(f"GET /huge.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=1-{size - 1}\r\n\r\n".encode())
        first = s.recv(4096)
        assert first.startswith(b"HTTP/1.1 206")
        a.stop(300)  # the reader does not read meanwhile: the stop ends the stream
        got = first
        s.settimeout(10)
        try:
            while chunk := s.recv(65536):
                got += chunk
        except ConnectionResetError:
            pass
        _, _, body = got.partition(b"\r\n\r\n")
        assert len(body) < size - 1
    finally:
        s.close()


# ---- the static fallback and the service's routes ----


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/api/echo", "POST, PUT"),
        ("HEAD", "/api/echo", "POST, PUT"),
        ("GET", "/api/stop", "POST"),
        ("DELETE", "/api/upload", "POST, PUT"),
    ],
)
def test_route_without_the_method_is_405_not_a_file(app: App, www: Path, method: str, path: str, allow: str) -> None:
    """RFC 9110 15.5.6: a path the service routes, asked with a method it lacks, is a resource without that method:
    405 with its Allow, as without --static. The fallback took it (GET, HEAD) and answered 404, or a file of that
    name: the static route serves only paths no route has, for any method."""
    (www / "api").mkdir()
    for name in ("echo", "stop", "upload"):
        (www / "api" / name).write_text("a file under a route's path")
    with httpx.Client(base_url=base(app)) as c:
        r = c.request(method, path)
    assert r.status_code == 405 and r.headers["allow"] == allow, (r.status_code, r.headers)
    assert "a file" not in r.text


def test_static_fallback_serves_only_paths_no_route_has(app: App) -> None:
    """Every other path is the fallback's as before (a file, 404, its own 405); a routed path's Allow lists the
    route's methods only (it listed the fallback's GET and HEAD too, which then answered 404)."""
    with httpx.Client(base_url=base(app)) as c:
        assert c.get("/data.json").json() == {"a": 1}
        assert c.head("/data.json").status_code == 200
        assert c.get("/api/status").json()["count"] >= 1
        assert c.get("/api/no-such").status_code == 404
        for method in ("POST", "OPTIONS"):
            r = c.request(method, "/data.json")
            assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD", (method, r.headers)
        for method in ("DELETE", "OPTIONS"):
            r = c.request(method, "/api/echo")
            assert r.status_code == 405 and r.headers["allow"] == "POST, PUT", (method, r.headers)
