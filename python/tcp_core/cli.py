"""The ``tcp-core`` command: the device's services on the host, and tools to test servers and devices."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__
from .core import Loop, alloc_stats, split_host_port
from .errors import AddressInUseError, InvalidArgumentError, TcError


def _add_backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["linux", "lwip"], default="linux", help="socket backend (default: linux)")
    p.add_argument("--tap", help="lwip backend: the TAP device to attach to (see tools/lwip_netns.sh)")
    p.add_argument("--address", help="lwip backend: the stack's own address, A.B.C.D/NN")
    p.add_argument("--gateway", help="lwip backend: default gateway")


def _int_in(low: int, high: int, what: str) -> Callable[[str], int]:
    """An argparse type: an integer in low..high, or a one-line error naming the option's meaning and range."""

    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} {value} is out of range {low}..{high}")
        return value

    return parse


def _seconds_in(zero: bool) -> Callable[[str], float]:
    """An argparse type: a duration in seconds up to a day, above 0 or (zero) from 0."""

    def parse(text: str) -> float:
        value = float(text)
        if not (0 <= value if zero else 0 < value) or value > 86400:
            raise argparse.ArgumentTypeError(f"{value} seconds is out of range {'[' if zero else '('}0, 86400]")
        return value

    return parse


_port = _int_in(0, 65535, "port")
_seconds = _seconds_in(zero=False)
_seconds_or_zero = _seconds_in(zero=True)
_fps = _int_in(1, 1000, "frames per second")
# TC_APP_STREAM_FRAME_MAX; below the largest demo frame the C core says TC_EINVAL
_frame_bytes = _int_in(0, 16 * 1024 * 1024, "frame size")


def default_host(backend: str, address: str | None) -> str:
    """serve's listen address when --host is not given: 127.0.0.1, or on lwIP the stack's own --address (127.0.0.1
    inside lwIP is lwIP's own loopback, unreachable from the namespace)."""
    return address.partition("/")[0] if backend == "lwip" and address else "127.0.0.1"


def _make_loop(args: argparse.Namespace) -> Loop:
    if getattr(args, "host", "") is None:
        args.host = default_host(args.backend, args.address)
    if args.backend == "lwip":
        return Loop("lwip", tap=args.tap, address=args.address, gateway=args.gateway)
    if args.tap or args.address:
        raise SystemExit("tcp-core: --tap and --address need --backend lwip")
    return Loop("linux")


def _catch_stop_signals(stop: threading.Event) -> None:
    """Turn SIGINT and SIGTERM into the event (installed before the ready line, so no signal is lost)."""

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


_SERVICE_PORTS = (
    ("echo_port", "TCP echo", "--echo-port", socket.SOCK_STREAM),
    ("http_port", "HTTP", "--http-port", socket.SOCK_STREAM),
    ("dns_port", "DNS", "--dns-port", socket.SOCK_DGRAM),
)


def _port_in_use(host: str, port: int, kind: int) -> bool:
    """Whether binding host:port fails as taken (the same SO_REUSEADDR as the C servers, so TIME-WAIT is no hit)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _which_port_in_use(args: argparse.Namespace) -> str:
    """The sentence that names the taken port(s) of serve and how to choose others."""
    ports = {"echo_port": args.echo_port, "http_port": args.http_port, "dns_port": args.dns_port_effective}
    taken = [
        (name, flag, ports[attr])
        for attr, name, flag, kind in _SERVICE_PORTS
        if ports[attr] is not None and ports[attr] > 0 and _port_in_use(args.host, ports[attr], kind)
    ]
    if not taken:
        return "a port is already in use (it was freed again before it could be named)"
    what = ", ".join(f"{name} port {port}" for name, _, port in taken)
    how = " or ".join(f"{flag} N" for _, flag, _ in taken)
    return (
        f"{what} on {args.host} already in use (another tcp-core serve, or another server): choose another with "
        f"{how} (0 picks a free port, -1 turns the service off), or stop what listens there"
    )


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the device's services until Ctrl-C, then stop them with a deadline and report."""
    from .app import App

    connect: tuple[str, int] | None = None
    if args.connect:
        try:
            connect = split_host_port(args.connect, 0, args.backend)
        except TcError as exc:
            print(f"tcp-core serve: --connect {args.connect}: {exc}", file=sys.stderr)
            return 2
    args.dns_port_effective = (args.dns_port if args.dns_port is not None else 5353) if args.captive != "off" else None
    stop = threading.Event()
    auth: tuple[str, str] | None = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep or not password:
            print("tcp-core serve: --auth wants USER:PASS with a non-empty password", file=sys.stderr)
            return 2
        auth = (user, password)
    if args.admin_password:
        if auth is not None and auth != ("admin", args.admin_password):
            print(
                "tcp-core serve: --admin-password and --auth name two different admin credentials; give one "
                "(--admin-password P is --auth admin:P)",
                file=sys.stderr,
            )
            return 2
        auth = ("admin", args.admin_password)
    if args.static and not os.path.isdir(args.static):
        print(f"tcp-core serve: --static {args.static}: not a directory", file=sys.stderr)
        return 2
    if args.ota_dir and not os.path.isdir(args.ota_dir):
        print(f"tcp-core serve: --ota-dir {args.ota_dir}: not a directory", file=sys.stderr)
        return 2
    loop = _make_loop(args)
    try:
        app = App(
            loop,
            args.host,
            echo_port=None if args.echo_port < 0 else args.echo_port,
            http_port=None if args.http_port < 0 else args.http_port,
            connect=connect,
            http_max_conns=args.max_conns,
            stream_fps=args.stream_fps,
            stream_frame_bytes=args.stream_frame_bytes,
            captive=args.captive,
            dns_port=args.dns_port_effective,
            dns_answer=args.dns_answer,
            on_stop_request=stop.set,
            ota_dir=args.ota_dir,
            ota_max=args.ota_max,
            auth=auth,
            static_dir=args.static,
            cors_origins=args.cors,
        )
    except TcError as exc:
        loop.close(0)
        if isinstance(exc, AddressInUseError) and args.backend == "linux":
            print(f"tcp-core serve: {_which_port_in_use(args)}", file=sys.stderr)
            return 1
        hint = ""
        if isinstance(exc, InvalidArgumentError) and args.stream_frame_bytes:
            hint = " (--stream-frame-bytes: at least the largest demo frame, about 1.2 KB, and at most 16 MiB)"
        print(f"tcp-core serve: {exc}{hint}", file=sys.stderr)
        return 1
    if app.echo_port:
        print(f"echo     tcp://{_hostport(args.host, app.echo_port)}", flush=True)
    if app.http_port:
        base = _hostport(args.host, app.http_port)
        print(f"http     http://{base}/  (dashboard; /api/status, /stream, /events, ws://{base}/ws)", flush=True)
        if auth:
            print(f"stop     POST http://{base}/api/stop (Basic auth, user {auth[0]})", flush=True)
        if args.stream_fps is not None or args.stream_frame_bytes:
            size = f"{args.stream_frame_bytes}-byte frames" if args.stream_frame_bytes else "the demo frames"
            print(f"stream   http://{base}/stream at {args.stream_fps or 10} fps, {size}", flush=True)
    if app.http_port and args.ota_dir:
        base = _hostport(args.host, app.http_port)
        lock = " (Basic auth)" if auth else ""
        print(f"ota      http://{base}/api/ota -> {args.ota_dir}/firmware.bin{lock}", flush=True)
    if app.http_port and args.static:
        print(f"static   http://{_hostport(args.host, app.http_port)}/ <- {args.static}", flush=True)
    if app.dns_port:
        answer = args.dns_answer or args.host
        print(
            f"dns      udp://{_hostport(args.host, app.dns_port)} (every name -> {answer}; captive {args.captive})",
            flush=True,
        )
    if connect is not None:
        print(f"client   tcp://{_hostport(*connect)} (echoes what it receives, reconnects)", flush=True)
    console = None
    if args.console_pty:
        from .console import serve_console

        console = serve_console(loop, app)
        print(f"console  {console.path}", flush=True)
    _catch_stop_signals(stop)
    print(f"serving on the {loop.backend} backend; Ctrl-C stops (deadline {args.deadline_ms} ms)", flush=True)
    while not stop.wait(0.5):
        pass
    # The services first: a console ota-prepare still stopping them (with its own deadline, up to 600 s) is brought
    # forward to this one, and then its command ends, which the console's close waits for.
    r = app.stop(args.deadline_ms)
    if console is not None:
        console.close()
    loop.close(args.deadline_ms)
    left = alloc_stats(loop.backend).bytes_in_use
    print(f"stopped  in {r.elapsed_ms} ms", flush=True)
    if app.echo_port:
        print(f"stopped  echo: {r.echo.graceful} closed gracefully, {r.echo.forced} forced", flush=True)
    if app.http_port:
        h = r.http
        print(
            f"stopped  http: {h.graceful} closed gracefully, {h.forced} forced; {h.streams_ended} streams ended, "
            f"{h.websockets_closed} WebSockets closed (1001), {h.requests_finished} requests finished",
            flush=True,
        )
    if connect is not None:
        state = "forced at the deadline" if r.client_forced else "closed" if r.client_closed else "not connected"
        print(f"stopped  client: {state}", flush=True)
    print(f"heap     {r.bytes_freed} bytes freed, {left} bytes left", flush=True)
    return 0


def cmd_soak(args: argparse.Namespace) -> int:
    """The seed-001 load against TARGET; exit 0 when every request succeeded, 1 when any failed, 2 on bad input."""
    from . import soak

    try:
        result = soak.run(
            args.target,
            requests=args.requests,
            interval_s=args.interval,
            concurrency=args.concurrency,
            stall_s=args.stall,
            timeout_s=args.timeout,
            source_port=args.source_port,
            pool_size=args.pool,
            close_mode=args.close,
            # \r frames only on a terminal: a log file or a pipe gets the summary alone
            progress=not args.json and not args.quiet and sys.stderr.isatty(),
        )
    except ValueError as exc:
        print(f"tcp-core soak: {exc}", file=sys.stderr)
        return 2
    print(soak.report_json(result) if args.json else soak.report_text(result), flush=True)
    return 0 if result.failed == 0 else 1


def cmd_probe(args: argparse.Namespace) -> int:
    """Layer-by-layer diagnosis of TARGET; the exit code names the first failing layer (0: all work)."""
    from . import probe

    result = probe.run(
        args.target,
        timeout=args.timeout,
        ws_path=args.ws_path,
        stream_path=None if args.no_stream else args.stream_path,
    )
    print(probe.report_json(result) if args.json else probe.report_text(result), flush=True)
    return result.exit_code


def cmd_ota(args: argparse.Namespace) -> int:
    """Upload a firmware image, verify the answer, optionally take the reboot step."""
    from .ota import OtaError, reboot, upload

    try:
        r = upload(
            args.file, args.url, auth=args.auth, retries=args.retries, timeout=args.timeout,
            busy_timeout=args.busy_timeout,
        )  # fmt: skip
    except OtaError as exc:
        print(f"tcp-core ota: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"tcp-core ota: {args.file}: {exc}", file=sys.stderr)
        return 2
    rate = r.bytes / 1024 / max(r.seconds, 1e-6)
    print(f"uploaded {r.bytes} bytes in {r.seconds:.2f} s ({rate:.0f} KiB/s, attempt {r.attempts}), sha256 {r.sha256}")
    if args.reboot:
        try:
            answer = reboot(args.url, auth=args.auth, timeout=args.timeout)
        except (OtaError, OSError) as exc:
            print(f"tcp-core ota: {exc}", file=sys.stderr)
            return 1
        print(f"reboot: {'restarting' if answer.get('rebooting') else 'no restart'} ({answer.get('message', '')})")
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    """One console command over a serial port or pty, or an interactive loop without one."""
    from .console import run_client

    return run_client(args.port, args.baud, args.command, timeout=args.timeout, eol=args.eol)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="tcp-core", description=__doc__)
    parser.add_argument("--version", action="version", version=f"tcp-core {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the device's services on this host")
    serve.add_argument(
        "--host", help="listen address (default 127.0.0.1; with --backend lwip the --address, lwIP's own address)"
    )
    serve.add_argument(
        "--echo-port", type=_int_in(-1, 65535, "port"), default=3333, help="TCP echo port (default 3333; 0 any, -1 off)"
    )
    serve.add_argument(
        "--http-port",
        type=_int_in(-1, 65535, "port"),
        default=8080,
        help="HTTP service port (default 8080; 0 any, -1 off)",
    )
    serve.add_argument("--connect", metavar="HOST:PORT", help="also run a TCP client that echoes and reconnects")
    serve.add_argument(
        "--max-conns",
        type=_int_in(1, 65535, "connection count"),
        default=None,
        help="HTTP connections at most (default 16)",
    )
    serve.add_argument(
        "--stream-fps", type=_fps, default=None, help="frames per second of /stream (default 10; 1..1000)"
    )
    serve.add_argument(
        "--stream-frame-bytes",
        type=_frame_bytes,
        default=0,
        help="make every /stream frame a valid JPEG of exactly N bytes (the demo frames padded; default 0: the "
        "~1.1 KB demo frames as they are)",
    )
    serve.add_argument(
        "--deadline-ms",
        type=_int_in(0, 3_600_000, "deadline (ms)"),
        default=1000,
        help="stop deadline on Ctrl-C (default 1000)",
    )
    serve.add_argument(
        "--captive",
        choices=["off", "portal", "online"],
        default="off",
        help="answer phones' connectivity probes: portal (sign-in sheet) or online; starts DNS too",
    )
    serve.add_argument(
        "--dns-port",
        type=_int_in(-1, 65535, "port"),
        default=None,
        help="captive DNS port (default 5353; 53 needs root)",
    )
    serve.add_argument("--dns-answer", help="address every name resolves to (default: --host)")
    serve.add_argument(
        "--admin-password",
        default=os.environ.get("TCP_CORE_ADMIN_PASSWORD") or None,
        help="the admin credential with user admin (the same as --auth admin:PASSWORD): enables the dashboard's Stop "
        "button (POST /api/stop) and guards the OTA routes (default: $TCP_CORE_ADMIN_PASSWORD; none: /api/stop "
        "answers 403)",
    )
    serve.add_argument(
        "--console-pty", action="store_true", help="also run the device's serial console on a pseudo-terminal"
    )
    serve.add_argument("--ota-dir", metavar="DIR", help="POST /api/ota writes firmware images to DIR/firmware.bin")
    serve.add_argument(
        "--ota-max",
        type=_int_in(0, (1 << 63) - 1, "image size"),
        default=None,
        metavar="BYTES",
        help="largest OTA image (413 beyond)",
    )
    serve.add_argument("--static", metavar="DIR", help="serve the files of DIR under / (after the service's routes)")
    serve.add_argument(
        "--cors", metavar="ORIGINS", help='origins whose scripts may read the answers (server-wide CORS; "*" or a,b)'
    )
    serve.add_argument(
        "--auth", metavar="USER:PASS", help="the admin credential: HTTP Basic auth of /api/stop and /api/ota..."
    )
    _add_backend_args(serve)
    serve.set_defaults(func=cmd_serve)

    ota = sub.add_parser(
        "ota",
        help="upload a firmware image to a device's OTA route (or serve --ota-dir's) and verify the answer",
        description="Exit codes: 0 uploaded and verified, 1 refused or failed, 2 the file cannot be read.",
    )
    ota.add_argument("file", help="the image (an ESP app image starts with 0xE9)")
    ota.add_argument("url", help="http://HOST[:PORT][/path] (default path /api/ota)")
    ota.add_argument("--auth", metavar="USER:PASS", help="HTTP Basic auth (or http://USER:PASS@HOST/)")
    ota.add_argument(
        "--retries",
        type=_int_in(0, 1000, "retry count"),
        default=3,
        help="new attempts after a dropped connection (default 3)",
    )
    ota.add_argument("--timeout", type=_seconds, default=30.0, help="socket timeout in seconds (default 30)")
    ota.add_argument(
        "--busy-timeout", type=_seconds_or_zero, default=60.0, metavar="SECONDS",
        help="keep asking a busy device (409/503, after its Retry-After or a 1-8 s backoff) for this long from the "
        "start (default 60)",
    )  # fmt: skip
    ota.add_argument("--reboot", action="store_true", help="then POST the reboot route (host: a no-op report)")
    ota.set_defaults(func=cmd_ota)

    soak = sub.add_parser("soak", help="new-connection-per-request load against a server or device (seed 001)")
    soak.add_argument("target", help="HOST:PORT (raw TCP request/response) or http://HOST[:PORT]/path")
    soak.add_argument(
        "-n",
        "--requests",
        type=_int_in(1, 10**9, "request count"),
        default=1000,
        help="requests in total (default 1000)",
    )
    soak.add_argument(
        "-i", "--interval", type=_seconds_or_zero, default=0.15, help="seconds between request starts (0.15)"
    )
    soak.add_argument(
        "-c",
        "--concurrency",
        type=_int_in(1, 10000, "concurrency"),
        default=1,
        help="requests in flight at most (default 1)",
    )
    soak.add_argument("--stall", type=_seconds, default=2.0, help="no answer within this many seconds = stalled (2)")
    soak.add_argument("--timeout", type=_seconds, default=5.0, help="whole-exchange timeout in seconds (5)")
    soak.add_argument("--source-port", type=_port, help="browser-like: reuse this source port while the OS allows")
    soak.add_argument(
        "--pool", type=_int_in(1, 65535, "pool size"), default=64, help="source ports to move through when refused (64)"
    )
    soak.add_argument(
        "--close",
        action="store_true",
        help="close mode: ask the server to close (Connection: close) and read until its FIN before closing, as "
        "HTTP/1.0 tools and read-to-EOF clients do (the server then closes first)",
    )
    soak.add_argument("--json", action="store_true", help="one JSON object instead of text")
    soak.add_argument("-q", "--quiet", action="store_true", help="no progress bar (it is shown only on a terminal)")
    soak.set_defaults(func=cmd_soak)

    probe = sub.add_parser(
        "probe",
        help="diagnose a server layer by layer: DNS, TCP, HTTP, WebSocket, stream (seed 002)",
        description="Exit codes: 0 all layers work, 2 bad target (e.g. port 0), 3 resolve, 4 TCP, 5 HTTP, "
        "6 WebSocket, 7 stream.",
    )
    probe.add_argument("target", help="http://HOST[:PORT]/, ws://HOST[:PORT]/PATH or HOST:PORT")
    probe.add_argument("--timeout", type=_seconds, default=3.0, help="per layer, seconds (3)")
    probe.add_argument("--ws-path", default="/ws", help="WebSocket path for http:// targets (/ws)")
    probe.add_argument("--stream-path", default="/stream", help="MJPEG stream path for http:// targets (/stream)")
    probe.add_argument("--no-stream", action="store_true", help="skip the stream layer")
    probe.add_argument("--json", action="store_true", help="one JSON object instead of text")
    probe.set_defaults(func=cmd_probe)

    console = sub.add_parser(
        "console",
        help="send a command to the device's serial console (or serve --console-pty's); no command: interactive",
        description="Exit codes: 0 answered, 1 the command failed, 2 the port cannot be opened, 3 no answer.",
    )
    console.add_argument("--port", required=True, help="serial port of the device, or the pty serve printed")
    console.add_argument(
        "--baud", type=_int_in(1, 10_000_000, "baud rate"), default=115200, help="baud rate (default 115200)"
    )
    console.add_argument("--timeout", type=_seconds, default=10.0, help="seconds to wait for an answer (10)")
    console.add_argument("--eol", choices=["cr", "lf", "crlf"], default="cr", help="line ending sent (cr, as idf.py)")
    console.add_argument("command", nargs="*", help="e.g. status, wifi SSID PASSWORD, ota-prepare 2000, help")
    console.set_defaults(func=cmd_console)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tcp-core`` script."""
    args = build_parser().parse_args(argv)
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
