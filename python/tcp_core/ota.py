"""``tcp-core ota FILE URL``: upload a firmware image to a device's (or ``tcp-core serve --ota-dir``'s) OTA route.

The image goes as one POST with its size and SHA-256 (X-OTA-SHA256) so the device can check it as it streams; a
dropped connection starts the upload again from the first byte (a partial image is never resumed: the device drops
it), at most ``retries`` times. A busy device (409: another upload is running; 503: it could not make room yet, or
every connection slot is taken) is asked again after its Retry-After, or after a backoff of 1, 2, 4, 8, 8... s when
it sends none, until ``busy_timeout`` seconds have passed since the start; then the upload gives up with a message
that says so. Any other 4xx or 5xx answer is final. The device's answer is verified: status 200, the byte count and
the digest it computed equal the file's.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import http.client
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

CHUNK = 16 * 1024
BUSY = (409, 503)  # answers that a later attempt may not get
BUSY_BACKOFF = (1.0, 2.0, 4.0, 8.0)  # waits without a Retry-After; the last one repeats


class OtaError(Exception):
    """The upload failed; status is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class OtaResult:
    """A verified upload."""

    bytes: int
    sha256: str
    attempts: int
    seconds: float
    answer: dict[str, Any]


def _target(url: str) -> tuple[str, int, str, str | None]:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http":
        raise OtaError(f"{url}: only http:// is supported")
    if not parts.hostname:
        raise OtaError(f"{url}: no host")
    port = parts.port if parts.port is not None else 80
    if port == 0:
        raise OtaError(f"{url}: port 0 is not a destination port")
    path = parts.path if parts.path not in ("", "/") else "/api/ota"
    if parts.query:
        path += "?" + parts.query
    userinfo = None
    if parts.username is not None:
        userinfo = f"{parts.username}:{parts.password or ''}"
    return parts.hostname, port, path, userinfo


class _Progress:
    """A one-line progress bar with rate and ETA, drawn only on a terminal."""

    def __init__(self, total: int, out: TextIO) -> None:
        self.total = total
        self.out = out
        self.on = out.isatty()
        self.start = time.monotonic()
        self.last = 0.0

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self.on or (not force and now - self.last < 0.2):
            return
        self.last = now
        elapsed = max(now - self.start, 1e-6)
        rate = done / elapsed
        eta = (self.total - done) / rate if rate > 0 else 0.0
        pct = 100.0 * done / self.total if self.total else 100.0
        width = 30
        fill = int(width * pct / 100)
        self.out.write(
            f"\r[{'#' * fill}{'.' * (width - fill)}] {pct:5.1f}% {done / 1024:8.0f}/{self.total / 1024:.0f} KiB "
            f"{rate / 1024:7.1f} KiB/s ETA {eta:5.1f}s"
        )
        self.out.flush()

    def done(self) -> None:
        if self.on:
            self.out.write("\n")
            self.out.flush()


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """The wait a Retry-After value asks for (RFC 9110 10.2.3: delay-seconds or an HTTP-date), in seconds, >= 0;
    None when absent or malformed."""
    if value is None:
        return None
    v = value.strip()
    if v.isdigit():
        return float(int(v))
    try:
        when = email.utils.parsedate_to_datetime(v)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def _attempt(
    host: str, port: int, path: str, data: bytes, digest: str, auth: str | None, timeout: float, bar: _Progress
) -> tuple[int, bytes, str | None]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.putrequest("POST", path)
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(len(data)))
        conn.putheader("X-OTA-SHA256", digest)
        if auth is not None:
            conn.putheader("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
        conn.endheaders()
        sent = 0
        view = memoryview(data)
        try:
            while sent < len(data):
                conn.send(view[sent : sent + CHUNK])
                sent += min(CHUNK, len(data) - sent)
                bar.update(sent)
        except OSError:
            pass  # the device may have answered early (a bad image) and closed: read its answer, if any
        bar.update(sent, force=True)
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.getheader("Retry-After")
    finally:
        conn.close()


def upload(
    file: str | Path,
    url: str,
    *,
    auth: str | None = None,
    retries: int = 3,
    timeout: float = 30.0,
    busy_timeout: float = 60.0,
    out: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> OtaResult:
    """Upload file to url (http://HOST[:PORT][/path], default path /api/ota) and verify the device's answer.

    auth: "USER:PASS" for Basic auth (or put it in the URL). retries: new attempts after a dropped connection.
    busy_timeout: seconds from the start within which a busy device (409, 503) is asked again, after its
    Retry-After or a backoff; a wait that would end past it is not started. Raises OtaError with the device's
    message (status: its HTTP status, 0 when none)."""
    data = Path(file).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    host, port, path, userinfo = _target(url)
    auth = auth if auth is not None else userinfo
    out = out if out is not None else sys.stderr
    start = clock()
    last_error = ""
    attempt = drops = busy = 0
    while True:
        attempt += 1
        bar = _Progress(len(data), out)
        try:
            status, body, hint = _attempt(host, port, path, data, digest, auth, timeout, bar)
        except (OSError, http.client.HTTPException) as exc:
            bar.done()
            drops += 1
            last_error = f"{type(exc).__name__}: {exc}"
            if drops > retries:
                raise OtaError(f"upload failed after {attempt} attempts: {last_error}") from None
            out.write(f"connection dropped ({last_error}); retrying from the start ({drops}/{retries})\n")
            sleep(min(0.5 * drops, 2.0))
            continue
        bar.done()
        try:
            answer: dict[str, Any] = json.loads(body.decode("utf-8", "replace") or "{}")
        except ValueError:
            answer = {"error": body.decode("utf-8", "replace").strip()}
        if status in BUSY:
            # 409: the device still holds another upload (perhaps our dropped one, when no FIN reached it: it gives
            # way after a 2 s stall); 503: it could not make room for the image yet, or all its slots are taken.
            last_error = f"HTTP {status}: {answer.get('error', answer)}"
            asked = retry_after_seconds(hint)
            wait = asked if asked is not None else BUSY_BACKOFF[min(busy, len(BUSY_BACKOFF) - 1)]
            busy += 1
            waited = clock() - start
            if waited + wait > busy_timeout:
                raise OtaError(
                    f"device still busy after {waited:.1f} s and {attempt} attempts ({last_error}); giving up: "
                    f"the next try ({wait:g} s on) would pass the busy timeout of {busy_timeout:g} s",
                    status,
                )
            why = f"Retry-After: {hint.strip()}" if asked is not None and hint is not None else "backoff"
            out.write(f"device busy ({last_error}); retrying in {wait:g} s ({why})\n")
            sleep(wait)
            continue
        if status != 200:
            raise OtaError(f"HTTP {status}: {answer.get('error', answer)}", status)
        if answer.get("bytes") != len(data) or answer.get("sha256") != digest:
            raise OtaError(f"the device's answer does not match the file: {answer}", status)
        return OtaResult(len(data), digest, attempt, clock() - start, answer)


def reboot(url: str, *, auth: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """POST the reboot route that belongs to the OTA route at url; returns the device's JSON answer."""
    host, port, path, userinfo = _target(url)
    auth = auth if auth is not None else userinfo
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        headers = {"Content-Length": "0"}
        if auth is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
        conn.request("POST", path.split("?", 1)[0] + "/reboot", headers=headers)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    answer: dict[str, Any] = json.loads(body.decode() or "{}")
    if resp.status != 200:
        raise OtaError(f"reboot: HTTP {resp.status}: {answer.get('error', answer)}", resp.status)
    return answer
