"""Error messages a new user meets: each says what was wrong and what to do (issue 14), and the soak progress bar
is drawn only on a terminal."""

from __future__ import annotations

import io
import os
import pty
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import tcp_core
from tcp_core import BadAddressError, BadPortError, Client, Loop, Server, split_host_port
from tcp_core.app import App
from tcp_core.soak import progress_line

ROOT = Path(__file__).resolve().parent.parent


def test_client_port_of_the_wrong_type(loop: Loop) -> None:
    with pytest.raises(TypeError) as exc:
        Client(loop, "h", "abc")  # type: ignore[arg-type]
    assert "port must be an int from 0 to 65535, not str 'abc'" in str(exc.value)
    with pytest.raises(TypeError, match=r"use int\('8080'\)"):
        Client(loop, "h", "8080")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="host must be a str"):
        Server(loop, 127001, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="port 70000 is out of range"):
        Server(loop, "127.0.0.1", 70000)


def test_client_port_zero_names_the_likely_bug(loop: Loop) -> None:
    with pytest.raises(BadPortError, match=r"port 0 is not a destination port \(a URI without an explicit port"):
        Client(loop, "127.0.0.1", 0)


def test_server_on_a_host_name_says_numeric_address_needed(loop: Loop) -> None:
    with pytest.raises(BadAddressError) as exc:
        Server(loop, "localhost", 0)
    text = str(exc.value)
    assert "'localhost' is not a numeric address" in text and "127.0.0.1" in text and "getaddrinfo" in text
    assert isinstance(exc.value, ValueError)


def test_app_on_a_host_name_says_numeric_address_needed(loop: Loop) -> None:
    with pytest.raises(BadAddressError, match=r"'my-device\.local' is not a numeric address"):
        App(loop, "my-device.local", echo_port=0, http_port=None)


@pytest.mark.parametrize(
    ("text", "default", "expected"),
    [
        ("x:abc", 0, "'abc' in 'x:abc' is not a port number: a port is a number from 1 to 65535"),
        ("x:", 0, "ends with ':' but no port follows"),
        ("x:0", 0, "port 0 in 'x:0' is not a destination port"),
        ("x:70000", 0, "port 70000 in 'x:70000' is out of range"),
        ("x", 0, "'x' has no port and no default port was given: write HOST:PORT, e.g. x:8080"),
        ("[::1]:abc", 0, "'abc' in '[::1]:abc' is not a port number"),
    ],
)
def test_split_host_port_says_what_is_wrong(text: str, default: int, expected: str) -> None:
    with pytest.raises(BadPortError) as exc:
        split_host_port(text, default)
    assert expected in str(exc.value)
    assert "port 0" not in str(exc.value) or text == "x:0"


def test_split_host_port_malformed_and_good() -> None:
    with pytest.raises(BadAddressError, match=r"is not HOST:PORT.*\[::1\]:8080"):
        split_host_port("[::1:80")
    assert split_host_port("x:8080") == ("x", 8080)
    assert split_host_port("[::1]:80") == ("::1", 80)
    assert split_host_port("x", 53) == ("x", 53)


def test_serve_names_the_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
        cmd = [sys.executable, "-m", "tcp_core", "serve", "--echo-port", "0", "--http-port", str(port)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    assert f"HTTP port {port} on 127.0.0.1 already in use" in r.stderr and "--http-port N" in r.stderr, r.stderr
    assert "0 picks a free port" in r.stderr


def test_soak_progress_line_has_rate_and_eta() -> None:
    line = progress_line(ok=30, failed=10, total=200, elapsed_s=4.0)
    assert "40/200" in line and "ok 30" in line and "failed 10" in line
    assert "10.0 req/s" in line and "ETA 16 s" in line  # 160 left at 10 per second


def _soak_stderr(tty: bool) -> str:
    """Run `tcp-core soak` against a tcp_core echo server, with stderr a pty or a pipe; its stderr text."""
    with Loop() as loop:
        srv = Server(loop, "127.0.0.1", 0)
        env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
        cmd = [sys.executable, "-m", "tcp_core", "soak", f"127.0.0.1:{srv.port}", "-n", "5", "-i", "0.01"]
        if tty:
            master, slave = pty.openpty()
            try:
                p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=slave, timeout=120, env=env)
            finally:
                os.close(slave)
            out = io.BytesIO()
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the pty's other side is closed and drained
                    break
                if not chunk:
                    break
                out.write(chunk)
            os.close(master)
            err = out.getvalue().decode()
        else:
            p = subprocess.run(cmd, capture_output=True, timeout=120, env=env)
            err = p.stderr.decode()
        assert p.returncode == 0, err
        assert b"5/5 ok" in p.stdout
        srv.stop(500)
    return err


def test_soak_progress_only_on_a_terminal() -> None:
    assert _soak_stderr(tty=False) == ""  # a log file or pipe gets no \r frames
    err = _soak_stderr(tty=True)
    assert "\r[" in err and "req/s" in err and "ETA" in err and "5/5" in err


def test_version_agrees() -> None:
    header = (ROOT / "components/tcp_core/include/tc_version.h").read_text()
    assert f'#define TC_VERSION "{tcp_core.__version__}"' in header
