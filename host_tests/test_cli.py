"""`tcp-core serve`, the README's main job, as a user runs it: a subprocess, real sockets, Ctrl-C."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import connect, recv_exact


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(*args: str) -> subprocess.Popen[str]:
    exe = shutil.which("tcp-core")
    cmd = [exe] if exe else [sys.executable, "-m", "tcp_core.cli"]
    return subprocess.Popen([*cmd, "serve", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_line(proc: subprocess.Popen[str], needle: str, timeout: float = 10) -> list[str]:
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"{needle!r} not printed; got {lines}, stderr {proc.stderr.read() if proc.stderr else ''}")


def test_serve_echo_and_client_then_ctrl_c_reports() -> None:
    echo_port = _free_port()
    # The client dials a remote that is this test: seed 000's "server and client at once, simultaneous return".
    with socket.create_server(("127.0.0.1", 0)) as remote:
        proc = _serve(
            "--echo-port", str(echo_port), "--http-port", "0", "--connect", f"127.0.0.1:{remote.getsockname()[1]}"
        )
        try:
            _wait_line(proc, "Ctrl-C stops")
            with connect("127.0.0.1", echo_port) as s:
                s.sendall(b"hello device")
                assert recv_exact(s, 12) == b"hello device"
                remote.settimeout(10)
                peer, _ = remote.accept()
                with peer:
                    peer.sendall(b"from the remote")
                    peer.settimeout(5)
                    assert recv_exact(peer, 15) == b"from the remote"
                    proc.send_signal(signal.SIGINT)
                    out, err = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    assert re.search(r"stopped  echo: \d+ closed gracefully, 1 forced", out), out
    assert re.search(r"stopped  http: 0 closed gracefully, 0 forced", out), out
    assert "stopped  client: forced at the deadline" in out, out
    assert "0 bytes left" in out, out


@pytest.mark.parametrize("target", ["127.0.0.1:0", "127.0.0.1", "bad:port:x"])
def test_serve_refuses_a_bad_connect_target(target: str) -> None:
    proc = _serve("--echo-port", str(_free_port()), "--http-port", "-1", "--connect", target)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 2, (out, err)
    assert "--connect" in err and "TC_E" in err, err


@pytest.mark.parametrize(
    ("sub", "args", "option"),
    [
        ("serve", ["--max-conns", "-1"], "--max-conns"),
        ("serve", ["--max-conns", "0"], "--max-conns"),
        ("serve", ["--deadline-ms", "-5"], "--deadline-ms"),
        ("serve", ["--ota-max", "-1"], "--ota-max"),
        ("serve", ["--echo-port", "-2"], "--echo-port"),
        ("serve", ["--http-port", "65536"], "--http-port"),
        ("serve", ["--dns-port", "70000"], "--dns-port"),
        ("soak", ["127.0.0.1:1", "-n", "0"], "-n/--requests"),
        ("soak", ["127.0.0.1:1", "-i", "-1"], "-i/--interval"),
        ("ota", ["f", "http://127.0.0.1:1", "--timeout", "0"], "--timeout"),
        ("console", ["--port", "/dev/null", "--baud", "-9600"], "--baud"),
    ],
)
def test_out_of_range_numbers_are_an_argument_error(sub: str, args: list[str], option: str) -> None:
    # A negative --deadline-ms used to start the server and fail only at Ctrl-C, in C, with a traceback and no stop.
    exe = shutil.which("tcp-core")
    cmd = [exe] if exe else [sys.executable, "-m", "tcp_core.cli"]
    proc = subprocess.run([*cmd, sub, *args], capture_output=True, text=True, timeout=15)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert f"argument {option}: " in proc.stderr and "out of range" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


def test_serve_port_in_use_is_a_clear_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        proc = _serve("--echo-port", str(port), "--http-port", "-1")
        _out, err = proc.communicate(timeout=15)
    assert proc.returncode == 1
    # which service, which port, and what to do (issue 14: it used to say only "address already in use")
    assert f"TCP echo port {port} on 127.0.0.1 already in use" in err and "--echo-port N" in err, err


def test_serve_listens_on_the_lwip_address_by_default() -> None:
    """`tcp-core serve --backend lwip --address 10.77.0.2/24` without --host listens on 10.77.0.2 (was 127.0.0.1
    inside lwIP: unreachable from the namespace)."""
    from tcp_core.cli import build_parser, default_host

    assert default_host("lwip", "10.77.0.2/24") == "10.77.0.2"
    assert default_host("linux", None) == "127.0.0.1"
    args = build_parser().parse_args(["serve", "--backend", "lwip", "--tap", "t0", "--address", "10.77.0.2/24"])
    assert args.host is None  # filled in by default_host() when the loop is made


def test_serve_ota_dir_static_and_auth_with_tcp_core_ota(tmp_path: object) -> None:
    """`tcp-core serve --ota-dir DIR --static DIR --auth USER:PASS` driven by `tcp-core ota` and curl, as a user
    would: the image lands in DIR/firmware.bin, the reboot step reports, the static file is served, no leak."""
    import pathlib

    assert isinstance(tmp_path, pathlib.Path)
    ota_dir, www = tmp_path / "fw", tmp_path / "www"
    ota_dir.mkdir()
    www.mkdir()
    (www / "hello.txt").write_text("static hello")
    image = tmp_path / "app.bin"
    image.write_bytes(b"\xe9" + bytes(range(256)) * 1000)
    proc = _serve(
        "--echo-port", "-1", "--http-port", "0", "--ota-dir", str(ota_dir), "--static", str(www),
        "--auth", "admin:pw",
    )  # fmt: skip
    try:
        lines = _wait_line(proc, "Ctrl-C stops")
        m = re.search(r"http     http://127\.0\.0\.1:(\d+)/", "".join(lines))
        assert m, lines
        base = f"http://127.0.0.1:{m.group(1)}"
        assert any("ota      " in ln and "(Basic auth)" in ln for ln in lines), lines
        exe = shutil.which("tcp-core")
        cmd = [exe] if exe else [sys.executable, "-m", "tcp_core.cli"]
        bad = subprocess.run([*cmd, "ota", str(image), base], capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1 and "HTTP 401" in bad.stderr
        ok = subprocess.run(
            [*cmd, "ota", str(image), base, "--auth", "admin:pw", "--reboot"], capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert ok.returncode == 0, ok.stderr
        assert "reboot: no restart" in ok.stdout
        assert (ota_dir / "firmware.bin").read_bytes() == image.read_bytes()
        if shutil.which("curl"):
            got = subprocess.run(["curl", "-sS", base + "/hello.txt"], capture_output=True, text=True, timeout=30)
            assert got.stdout == "static hello"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "0 bytes left" in out, out


def test_soak_source_ports_stay_in_range_and_every_request_is_counted() -> None:
    # The pool of --source-port 65535 walked past 65535: bind() raised OverflowError in a worker thread, and the
    # run said "0 failed" with exit 0 although no request was made (outside testing, 2026-12-04).
    with socket.socket() as holder:
        try:
            holder.bind(("127.0.0.1", 65535))  # the pool's only port, refused to soak's bind
        except OSError:
            pytest.skip("port 65535 is in use here")
        exe = shutil.which("tcp-core")
        cmd = [exe] if exe else [sys.executable, "-m", "tcp_core.cli"]
        proc = subprocess.run(
            [*cmd, "soak", "http://127.0.0.1:1/", "-n", "3", "-i", "0", "--source-port", "65535", "-q"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert "Traceback" not in proc.stderr and "Exception" not in proc.stderr, proc.stderr
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "0/3 ok, 3 failed" in proc.stdout, proc.stdout
