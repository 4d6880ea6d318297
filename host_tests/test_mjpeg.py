"""/stream with tc_app_config_t.stream_frame_bytes: every part a whole JPEG of exactly the asked size, read by a
client nobody here wrote (requests, streaming, which de-chunks the HTTP/1.1 body)."""

from __future__ import annotations

import re

import pytest
import requests

from tcp_core import Loop
from tcp_core.app import App
from tcp_core.errors import InvalidArgumentError

FRAME_BYTES = 51200


def jpeg_segments_ok(jpeg: bytes) -> bool:
    """Walk the marker segments from SOI to SOS (the padding must be whole COM segments or fill bytes)."""
    i = 2
    while i < len(jpeg):
        if jpeg[i] != 0xFF:
            return False
        while i < len(jpeg) and jpeg[i] == 0xFF:  # fill bytes (ITU T.81 B.1.1.2)
            i += 1
        marker = jpeg[i]
        if marker == 0xDA:  # SOS: entropy-coded data follows, up to EOI
            return True
        length = int.from_bytes(jpeg[i + 1 : i + 3], "big")
        if length < 2:
            return False
        i += 1 + length
    return False


def test_stream_frame_bytes_gives_whole_jpegs_of_that_size(loop: Loop, server_host: str) -> None:
    app = App(loop, server_host, echo_port=None, http_port=0, stream_fps=30, stream_frame_bytes=FRAME_BYTES)
    try:
        url = f"http://{app.host}:{app.http_port}/stream"
        with requests.get(url, stream=True, timeout=5) as r:
            assert r.status_code == 200
            ctype = r.headers["Content-Type"]
            assert ctype.startswith("multipart/x-mixed-replace") and "boundary=" in ctype
            delim = b"--" + ctype.split("boundary=")[1].strip().encode()
            buf = b""
            for chunk in r.iter_content(65536):
                buf += chunk
                if buf.count(delim) >= 4:  # 3 whole parts, each followed by the next delimiter
                    break
        parts = buf.split(delim)[1:4]
        assert len(parts) == 3
        for part in parts:
            head, sep, body = part.partition(b"\r\n\r\n")
            assert sep and b"content-type: image/jpeg" in head.lower(), head
            jpeg = body[:-2]  # the part ends with CRLF before the next delimiter
            assert body.endswith(b"\r\n")
            assert len(jpeg) == FRAME_BYTES
            assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
            m = re.search(rb"content-length:\s*(\d+)", head.lower())
            if m:
                assert int(m.group(1)) == FRAME_BYTES
            assert jpeg_segments_ok(jpeg)
    finally:
        app.stop(500)


@pytest.mark.parametrize("size", [1000, 16 * 1024 * 1024 + 1])
def test_stream_frame_bytes_out_of_range_is_refused(loop: Loop, server_host: str, size: int) -> None:
    # Below the largest demo frame (~1.2 KB) no frame of that size can be made; above 16 MiB is refused too.
    with pytest.raises(InvalidArgumentError):
        App(loop, server_host, echo_port=None, http_port=0, stream_frame_bytes=size)
