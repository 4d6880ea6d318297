"""The device's services (components/tcp_core/include/tc_app.h) on a Loop: TCP echo, the reconnecting client,
the HTTP service (status page, /api/status, /ws echo, /stream MJPEG, /events SSE) and the captive portal.

This is the same C that the firmware's main/ starts; ``tcp-core serve`` is a thin shell around it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .core import (
    Loop,
    Stoppable,
    StopReport,
    _check_port,
    _is_numeric,
    _name_problem,
    _numeric_address_hint,
    _set_int,
)
from .errors import BadAddressError, BadNameError


@dataclass(frozen=True)
class HttpStopReport:
    """What the HTTP service's stop did (its tc_stop_report_t)."""

    requests_finished: int
    streams_ended: int
    websockets_closed: int
    graceful: int
    forced: int
    elapsed_ms: int
    bytes_freed: int


@dataclass(frozen=True)
class AppStopReport:
    """What stopping every service did (the app's tc_stop_report_t and its parts)."""

    echo: StopReport
    http: HttpStopReport
    client_closed: bool
    client_forced: bool
    elapsed_ms: int
    bytes_freed: int


class App(Stoppable[AppStopReport]):
    """The device's services. Ports: 0 picks a free port, None turns the service off (the DNS responder: only
    with dns_port). captive: connectivity-probe answers, "portal" or "online" (see tc_captive.h).

    /stream sends a frame at each of stream_fps instants per second of the monotonic clock (default 10); with
    stream_frame_bytes every frame is a valid JPEG of exactly that many bytes (the demo frames padded with COM
    segments), else the ~1.1 KB demo frames as they are. A size below the largest demo frame or above
    TC_APP_STREAM_FRAME_MAX (16 MiB) raises InvalidArgumentError (a ValueError).

    One admin credential guards every admin route (POST /api/stop, the OTA routes) with HTTP Basic auth:
    auth=(user, password), or admin_password=P as a shorthand for auth=("admin", P). With it and on_stop_request, a
    POST /api/stop carrying it is answered 202 and then calls on_stop_request() on the loop thread (it must not block:
    set an event, let another thread call stop()); without them the route answers 403.

    POST/PUT /api/upload takes its body in pieces (tc_http_route_body()) and answers {"bytes", "crc32"}; "?slow=MS"
    pauses MS ms after each piece (backpressure); upload_max bounds it (None: no limit). POST/PUT /api/echo buffers
    its body (up to the server's max_body) and answers the same. body_min_rate (bytes/s, 0 = no rule) and
    body_grace_ms set the minimum-rate rule for bodies (408 below it). stream_sndbuf is the TCP send buffer of
    /stream and /api/live viewers (tc_http_config_t.stream_sndbuf; 0: the stack's own).

    With ota_dir, POST /api/ota takes a firmware image (tc_ota.h: size, ESP magic 0xE9, SHA-256 from X-OTA-SHA256
    or ?sha256=) into ota_dir/firmware.bin (via firmware.bin.part, renamed only when complete and valid), GET
    /api/ota reports progress, POST /api/ota/reboot is the (host: no-op) reboot step; ota_max bounds the image
    (413). The OTA state is also in /api/status and every /api/live event under "ota".

    static_dir serves a directory under "/" after the service's own routes (tc_http_static.h: Content-Type by
    extension, ETag / Last-Modified revalidation, .gz siblings, one byte range of any size, no path traversal).
    cors_origins ("*" or "http://a,http://b") is a server-wide CORS policy: scripts of those origins may read every
    GET answer (/api/status, static files, ...), preflights are answered."""

    def __init__(
        self,
        loop: Loop,
        host: str = "127.0.0.1",
        *,
        echo_port: int | None = 3333,
        echo_max_conns: int | None = None,
        echo_keepalive_s: int | None = None,
        http_port: int | None = 8080,
        connect: tuple[str, int] | None = None,
        http_max_conns: int | None = None,
        stream_fps: int | None = None,
        stream_frame_bytes: int | None = None,
        events_ms: int | None = None,
        http_idle_timeout_ms: int | None = None,
        http_head_timeout_ms: int | None = None,
        ws_max_message: int | None = None,
        body_min_rate: int | None = None,
        body_grace_ms: int | None = None,
        upload_max: int | None = None,
        ws_ping_ms: int | None = None,
        ws_pong_timeout_ms: int | None = None,
        sse_heartbeat_ms: int | None = None,
        stream_sndbuf: int | None = None,
        captive: Literal["off", "portal", "online"] = "off",
        dns_port: int | None = None,
        dns_answer: str | None = None,
        portal_host: str | None = None,
        admin_password: str | None = None,
        on_stop_request: Callable[[], None] | None = None,
        ota_dir: str | None = None,
        ota_max: int | None = None,
        auth: tuple[str, str] | None = None,
        static_dir: str | None = None,
        cors_origins: str | None = None,
    ) -> None:
        self.loop = loop
        self._on_stop_request = on_stop_request
        native = loop.native
        ffi, lib = native.ffi, native.lib
        cfg = ffi.new("tc_app_config_t *")
        lib.tcpy_app_defaults(cfg)
        self._keep: list[Any] = [ffi.new("char[]", host.encode())]
        cfg.host = self._keep[0]
        for what, port in (("echo_port", echo_port), ("http_port", http_port), ("dns_port", dns_port)):
            if port is not None:
                _check_port(port, f"App {what} (None turns the service off)")
        cfg.echo_port = lib.TC_APP_OFF if echo_port is None else echo_port
        if echo_max_conns is not None:
            _set_int(native, cfg, "echo_max_conns", echo_max_conns)
        if echo_keepalive_s is not None:  # None: 60 s (a vanished echo peer is found in 2 min and its slot freed)
            _set_int(native, cfg, "echo_keepalive_s", echo_keepalive_s)
        cfg.http_port = lib.TC_APP_OFF if http_port is None else http_port
        if connect is not None:
            self._keep.append(ffi.new("char[]", connect[0].encode()))
            cfg.connect_host = self._keep[-1]
            cfg.connect_port = connect[1]
        if http_max_conns is not None:
            _set_int(native, cfg, "http_max_conns", http_max_conns)
        if stream_fps is not None:
            _set_int(native, cfg, "stream_fps", stream_fps)
        if stream_frame_bytes is not None:
            _set_int(native, cfg, "stream_frame_bytes", stream_frame_bytes)
        if events_ms is not None:
            _set_int(native, cfg, "events_ms", events_ms)
        if http_idle_timeout_ms is not None:
            _set_int(native, cfg, "http_idle_timeout_ms", http_idle_timeout_ms)
        if http_head_timeout_ms is not None:
            _set_int(native, cfg, "http_head_timeout_ms", http_head_timeout_ms)
        if ws_max_message is not None:
            _set_int(native, cfg, "ws_max_message", ws_max_message)
        if body_min_rate is not None:
            cfg.http_body_min_rate = lib.TC_APP_NO_RATE if body_min_rate == 0 else body_min_rate
        if body_grace_ms is not None:
            _set_int(native, cfg, "http_body_grace_ms", body_grace_ms)
        if upload_max is not None:
            _set_int(native, cfg, "upload_max", upload_max)
        # Liveness of long-lived sessions (None: the C defaults, 20 s ping, 10 s pong deadline, 15 s SSE heartbeat).
        cfg.ws_ping_ms = ws_ping_ms or 0
        cfg.ws_pong_timeout_ms = ws_pong_timeout_ms or 0
        cfg.sse_heartbeat_ms = sse_heartbeat_ms or 0
        if stream_sndbuf is not None:  # None: the C default (16 KB); 0: the stack's own (Linux grows it to MBs)
            cfg.stream_sndbuf = lib.TC_APP_STACK_SNDBUF if stream_sndbuf == 0 else stream_sndbuf
        modes = {"off": lib.TC_CAPTIVE_OFF, "portal": lib.TC_CAPTIVE_PORTAL, "online": lib.TC_CAPTIVE_ONLINE}
        if captive not in modes:
            raise ValueError(f"captive must be one of {', '.join(modes)}, not {captive!r}")
        cfg.captive = modes[captive]
        cfg.dns_port = lib.TC_APP_OFF if dns_port is None else dns_port
        for field_name, value in (("dns_answer", dns_answer), ("portal_host", portal_host)):
            if value is not None:
                self._keep.append(ffi.new("char[]", value.encode()))
                setattr(cfg, field_name, self._keep[-1])
        self._handle = ffi.new_handle(self)
        if admin_password:
            if auth is not None and auth != ("admin", admin_password):
                raise ValueError("admin_password and auth name two different admin credentials: give one")
            auth = ("admin", admin_password)
        if auth is not None and on_stop_request is not None:
            cfg.stop_request = lib.tcpy_app_stop_request_cb
            cfg.stop_request_user = self._handle
        if ota_dir is not None:
            self._keep.append(ffi.new("char[]", os.fsencode(ota_dir)))
            cfg.ota_dir = self._keep[-1]
        if ota_max is not None:
            cfg.ota_max = ota_max
        if auth is not None:
            if not auth[1]:
                raise ValueError("auth needs a non-empty password")
            self._keep.append(ffi.new("char[]", auth[0].encode()))
            cfg.admin_user = self._keep[-1]
            self._keep.append(ffi.new("char[]", auth[1].encode()))
            cfg.admin_pass = self._keep[-1]
        if cors_origins is not None:
            self._keep.append(ffi.new("char[]", cors_origins.encode()))
            cfg.cors_origins = self._keep[-1]
        if static_dir is not None:
            self._keep.append(ffi.new("char[]", os.fsencode(static_dir)))
            cfg.static_dir = self._keep[-1]
        out = ffi.new("tc_app_t **")
        try:
            loop.call(lambda: native.check(lib.tc_app_start(loop.ptr, cfg, out), "starting the services"))
        except BadAddressError as exc:
            if _is_numeric(host):
                raise  # the host is fine: dns_answer or portal_host is not (the message names the rule)
            raise BadAddressError(exc.code, exc.name, _numeric_address_hint(host), "starting the services") from None
        except BadNameError as exc:  # only the client's host is a name: connect[0]
            name = connect[0] if connect is not None else ""
            raise BadNameError(exc.code, exc.name, _name_problem(name), "App connect") from None
        self._ptr: Any = out[0]
        self.host = host
        self.echo_port = int(lib.tc_app_echo_port(self._ptr))
        self.http_port = int(lib.tc_app_http_port(self._ptr))
        self.dns_port = int(lib.tc_app_dns_port(self._ptr))
        self._done = threading.Event()
        self._stop_lock = threading.Lock()
        self._report: AppStopReport | None = None
        loop._owned.add(self)

    def _stop_requested(self) -> None:
        if self._on_stop_request is not None:
            self._on_stop_request()

    def status(self) -> dict[str, Any]:
        """The /api/status document (the registry, the heap and the services), straight from C."""
        native = self.loop.native

        def get() -> str:
            if self._ptr is None:
                raise native.error("CLOSED", "services are stopped")
            cap = 4096 + 400 * int(native.lib.tc_registry_count(self.loop.ptr))
            buf = native.ffi.new("char[]", cap)
            n = native.check(native.lib.tc_app_status_json_app(self._ptr, buf, cap), "status")
            return str(native.ffi.unpack(buf, n).decode())

        result: dict[str, Any] = json.loads(self.loop.call(get))
        return result

    def ota_status(self) -> dict[str, Any] | None:
        """The OTA route's state (GET /api/ota's document), None without an OTA route."""
        native = self.loop.native

        def get() -> str | None:
            ota = native.lib.tc_app_ota(self._ptr)
            if ota == native.ffi.NULL:
                return None
            buf = native.ffi.new("char[]", 1024)
            n = native.check(native.lib.tc_ota_status_json(ota, buf, 1024), "ota status")
            return str(native.ffi.unpack(buf, n).decode())

        text = self.loop.call(get)
        return None if text is None else dict(json.loads(text))

    def _stopped(self, r: Any) -> None:
        lib = self.loop.native.lib
        parts = [r.parts[i] for i in range(r.nparts)]
        e, h, c = parts[lib.TC_APP_PART_ECHO], parts[lib.TC_APP_PART_HTTP], parts[lib.TC_APP_PART_CLIENT]
        self._report = AppStopReport(
            StopReport._from_c(e),
            HttpStopReport(
                h.requests_finished,
                h.streams_ended,
                h.websockets_closed,
                h.graceful,
                h.forced,
                h.elapsed_ms,
                h.bytes_freed,
            ),
            bool(c.graceful or c.forced),
            bool(c.forced),
            r.elapsed_ms,
            r.bytes_freed,
        )
        self._ptr = None
        self.loop._owned.discard(self)
        self._done.set()

    def stop(self, deadline_ms: int = 1000) -> AppStopReport:
        """Stop every service with one deadline and report what was closed, forced and freed. Two threads may call
        it at once (Ctrl-C during an /api/stop or a console ota-prepare): the second waits for the first, whose deadline
        it brings forward to its own if that is sooner, and gets its report. Inside a handler callback it raises
        BusyError (the stop waits for the loop)."""
        native = self.loop.native
        lib = native.lib

        def handle() -> Any:  # on the loop thread, where the app is freed: never a stale pointer
            if self._ptr is None:
                raise native.error("CLOSED", "services are stopped")
            return lib.tc_app_handle(self._ptr)

        return self._stop_once(handle, deadline_ms, self._done)
