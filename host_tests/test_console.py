"""The device's serial console on the host: `tcp-core serve --console-pty` driven over its pseudo-terminal with
pyserial, `tcp-core console` against it, and the client against a fake esp_console REPL (echo, line editing)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tcp_core.console import (
    OTA_DEADLINE_MS,
    PROMPT,
    Console,
    HostDevice,
    SerialConsole,
    answer_complete,
    clean_answer,
    command_timeout,
    join_command,
)
from tcp_core.testing import MjpegStream, connect, echo_roundtrip, recv_exact

serial = pytest.importorskip("serial", reason="pyserial is not installed (pip install -e '.[test]')")

PASSWORD = "s3cret-Pass-42"


def _cli() -> list[str]:
    exe = shutil.which("tcp-core")
    return [exe] if exe else [sys.executable, "-m", "tcp_core.cli"]


@dataclass
class Served:
    proc: subprocess.Popen[str]
    echo_port: int
    http_port: int
    pty: str


@pytest.fixture
def served() -> Iterator[Served]:
    """`tcp-core serve --console-pty` on free ports; at the end Ctrl-C must stop it cleanly with no heap left."""
    yield from _serve([])


def _serve(extra: list[str]) -> Iterator[Served]:
    proc = subprocess.Popen(
        [*_cli(), "serve", "--echo-port", "0", "--http-port", "0", "--console-pty", "--deadline-ms", "500", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    found: dict[str, str] = {}
    lines = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        word, _, rest = line.partition(" ")
        found[word] = rest.strip()
        if "Ctrl-C stops" in line:
            break
    try:
        assert "console" in found, f"no console line: {lines}, stderr {proc.stderr.read() if proc.stderr else ''}"
        assert re.fullmatch(r"/dev/pts/\d+", found["console"]), found["console"]
        echo_port = int(found["echo"].rsplit(":", 1)[1])
        http_port = int(found["http"].split()[0].rstrip("/").rsplit(":", 1)[1])
        yield Served(proc, echo_port, http_port, found["console"])
        assert proc.poll() is None, "serve exited on its own"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert "0 bytes left" in out, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _open(path: str) -> serial.Serial:
    ser = serial.Serial(path, 115200, timeout=0.05)
    ser.reset_input_buffer()
    return ser


def _ask(ser: serial.Serial, line: bytes, timeout: float = 10.0) -> bytes:
    """Write one line (CR, as terminals send Enter) and read everything up to the next prompt."""
    ser.write(line + b"\r")
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        chunk = ser.read(4096)
        got += chunk
        if not chunk and answer_complete(got.decode("utf-8", "replace")):
            return got
    raise AssertionError(f"no prompt after {line!r} within {timeout} s; got {got!r}")


# ---- the console on the pty, driven with pyserial ----


def test_help_lists_every_command(served: Served) -> None:
    with _open(served.pty) as ser:
        raw = _ask(ser, b"help")
    assert raw.endswith(PROMPT.encode()), raw
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b""), "lines end in CR LF, as a UART console's"
    text = raw.decode()
    for cmd in Console.commands():
        assert re.search(rf"^{re.escape(cmd.name)}\s", text, re.M), (cmd.name, text)


def test_status_lists_the_echo_and_http_listeners(served: Served) -> None:
    with _open(served.pty) as ser, connect("127.0.0.1", served.echo_port) as s:
        s.sendall(b"ping")
        assert recv_exact(s, 4) == b"ping"
        text = clean_answer(_ask(ser, b"status").decode(), "status")
    assert "wifi: none on this host; no credentials stored" in text, text
    assert re.search(r"^sockets: 3 \(backend linux\), tcp_core heap: \d+ bytes", text, re.M), text
    assert re.search(rf"#\d+ listener listening echo 127\.0\.0\.1:{served.echo_port}$", text, re.M), text
    assert re.search(rf"#\d+ listener listening http 127\.0\.0\.1:{served.http_port}$", text, re.M), text
    assert re.search(
        r"#\d+ accepted open echo 127\.0\.0\.1:\d+ age [\d.]+s idle [\d.]+s in 4 out 4 queued 0$", text, re.M
    )


def test_wifi_stores_credentials_and_never_echoes_the_password(served: Served) -> None:
    with _open(served.pty) as ser:
        raw = _ask(ser, f'wifi "my home net" {PASSWORD}'.encode())
        assert PASSWORD.encode() not in raw, raw
        assert b'wifi: credentials for "my home net" stored (with password), connecting' in raw, raw
        raw = _ask(ser, b"status")
        assert PASSWORD.encode() not in raw, raw
        assert b'credentials for "my home net" (with password) kept in memory' in raw, raw
        raw = _ask(ser, b"wifi shortpw short")  # refused: too short, nothing stored, nothing echoed
        assert b"short" not in raw.replace(b"shortpw", b"").replace(b"the password must", b""), raw
        assert b"the password must be empty, 8 to 63 characters, or 64 hex digits" in raw, raw
        assert b"Command returned non-zero error code: -1 (TC_EINVAL)" in raw, raw
        raw = _ask(ser, b"wifi open-net")
        assert b'"open-net" stored (open network)' in raw, raw


def test_ota_prepare_stops_every_service_reports_and_stays_up(served: Served) -> None:
    echo = connect("127.0.0.1", served.echo_port)
    with echo, MjpegStream("127.0.0.1", served.http_port, "/stream") as viewer, _open(served.pty) as ser:
        assert viewer.next_frame()[:2] == b"\xff\xd8"
        assert echo_roundtrip("127.0.0.1", served.echo_port, b"before") == b"before"
        text = clean_answer(_ask(ser, b"ota-prepare 800").decode(), "ota-prepare 800")
        m = re.fullmatch(
            r"ota-prepare: servers stopped in (\d+) ms \(deadline 800 ms\): (\d+) closed, (\d+) forced; "
            r"heap freed (\d+) bytes\n",
            text,
        )
        assert m, text
        elapsed, closed, forced, freed = map(int, m.groups())
        assert elapsed <= 800 + 500, text
        assert closed + forced >= 2, text  # the viewer and the echo connection
        assert freed > 0, text
        assert viewer.wait_closed(2.0) is not None, "the stream did not end"
        echo.settimeout(2.0)
        try:
            assert echo.recv(16) == b""
        except ConnectionResetError:
            pass  # forced at the deadline: a reset is the documented way
        with pytest.raises(ConnectionRefusedError):
            connect("127.0.0.1", served.echo_port, timeout=2.0)
        assert served.proc.poll() is None, "the process must outlive an OTA prepare"
        text = clean_answer(_ask(ser, b"status").decode(), "status")
        assert "ota: prepared (servers stopped)" in text, text
        assert re.search(r"^sockets: 0 ", text, re.M) and "listener" not in text, text
        raw = _ask(ser, b"ota-prepare")
        assert b"ota-prepare: failed: handle is closing or closed" in raw, raw
        assert b"(TC_ECLOSED)" in raw, raw


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"bogus", "bogus: unknown command (try help)\nCommand returned non-zero error code: -16 (TC_ENOTFOUND)\n"),
        (b"status now", "status: usage: status\nCommand returned non-zero error code: -1 (TC_EINVAL)\n"),
        (b"ota-prepare 0", "ota-prepare: usage: ota-prepare [deadline_ms], 1 to 600000\n"),
        (b'wifi "unterminated', "console: unterminated quote\n"),
        (b"status " + b"x" * 300, "console: line longer than 255 bytes\n"),
        (b"a b c d e f g h i", "console: too many arguments\n"),
    ],
    ids=["unknown", "extra-arg", "bad-deadline", "quote", "too-long", "too-many"],
)
def test_bad_command_is_a_clear_error(served: Served, line: bytes, expected: str) -> None:
    with _open(served.pty) as ser:
        text = clean_answer(_ask(ser, line).decode(), line.decode())
        assert text.startswith(expected), text
        assert "Command returned non-zero error code" in text, text
        assert "sockets: 2" in clean_answer(_ask(ser, b"status").decode(), "status"), "the console still works"


def test_line_endings_and_backspace(served: Served) -> None:
    with _open(served.pty) as ser:
        for eol in (b"\n", b"\r\n"):
            ser.write(b"help" + eol)
            got = b""
            deadline = time.monotonic() + 5
            while not answer_complete(got.decode()):
                assert time.monotonic() < deadline, got
                got += ser.read(4096)
            quiet = time.monotonic() + 0.3  # a second prompt would come now
            while time.monotonic() < quiet:
                got += ser.read(4096)
            assert b"ota-prepare" in got and got.count(PROMPT.encode()) == 1, got  # CR LF is one line end
        assert b"List the commands" in _ask(ser, b"hepl\x7f\x7flp")


# ---- tcp-core console against the pty ----


def _console_cli(pty: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_cli(), "console", "--port", pty, *args], input=stdin, capture_output=True, text=True, timeout=30
    )


def test_cli_console_one_command_and_exit_codes(served: Served) -> None:
    r = _console_cli(served.pty, "status")
    assert r.returncode == 0, r
    assert f"listener listening echo 127.0.0.1:{served.echo_port}" in r.stdout, r.stdout
    assert PROMPT not in r.stdout, "the answer comes without the prompt"
    r = _console_cli(served.pty, "wifi", "my net", PASSWORD)
    assert r.returncode == 0 and 'credentials for "my net" stored' in r.stdout, r
    assert PASSWORD not in r.stdout + r.stderr
    r = _console_cli(served.pty, "bogus")
    assert r.returncode == 1 and "bogus: unknown command" in r.stdout, r
    r = _console_cli(served.pty, "--eol", "crlf", "help")
    assert r.returncode == 0 and r.stdout.startswith("status "), r
    r = _console_cli(served.pty, "ota-prepare", "500")
    assert r.returncode == 0 and "(deadline 500 ms)" in r.stdout, r


def test_cli_console_interactive(served: Served) -> None:
    r = _console_cli(served.pty, stdin="help\n\nstatus\n")
    assert r.returncode == 0, r
    assert "List the commands." in r.stdout and f"echo 127.0.0.1:{served.echo_port}" in r.stdout, r.stdout


def test_cli_console_without_a_port_or_answer() -> None:
    r = _console_cli("/dev/does-not-exist")
    assert r.returncode == 2 and "cannot open /dev/does-not-exist" in r.stderr, r
    master, slave = os.openpty()  # a pty nobody answers on
    try:
        tty.setraw(slave)
        r = _console_cli(os.ttyname(slave), "--timeout", "1", "status")
        assert r.returncode == 3 and "no console prompt" in r.stderr, r
    finally:
        os.close(master)
        os.close(slave)


# ---- the Console class in this process ----


def test_console_in_process_handlers_and_quoting() -> None:
    import tcp_core._tcp_core_linux as ext

    assert ext.ffi.string(ext.lib.tcpy_console_prompt()).decode() == PROMPT
    got: list[tuple[str, str]] = []
    con = Console(wifi=lambda ssid, pw: got.append((ssid, pw)))
    ssid = 'a "quoted" \\ net'
    reply = con.run("wifi " + join_command([ssid, PASSWORD]))
    assert reply.ok and got == [(ssid, PASSWORD)], (reply, got)
    assert PASSWORD not in reply.text
    reply = con.run("ota-prepare")
    assert (reply.code, reply.name) == (-19, "ENOSYS") and "not available on this build" in reply.text, reply
    assert con.run("status").text == "sockets: no loop\n"

    def refuse(ssid: str, pw: str) -> None:
        raise ValueError("no")

    reply = Console(wifi=refuse).run("wifi net")
    assert reply.name == "EINVAL" and "not stored: invalid argument" in reply.text, reply
    with pytest.raises(LookupError, match="unknown command"):  # NotFoundError: a TcError and a LookupError
        con.execute("bogus")


@pytest.mark.parametrize("ssid", ["net", "two words", 'q"uote', "back\\slash", "tab\there", "line\nbreak", '\\"'])
def test_join_command_quotes_by_the_console_rule(ssid: str) -> None:
    """join_command() is C's tc_console_quote(): what it writes, the console's splitter reads back unchanged."""
    got: list[str] = []
    line = join_command(["wifi", ssid, "password1"])
    reply = Console(wifi=lambda s, pw: got.append(s)).run(line)
    assert reply.ok and got == [ssid], (line, reply)
    quoted = join_command([ssid])
    assert line == f"wifi {quoted} password1"
    assert (quoted == ssid) == (ssid == "net")  # plain when nothing needs quoting, in quotes otherwise
    assert join_command([""]) == '""'
    assert command_timeout("ota-prepare", 1.0) == OTA_DEADLINE_MS / 1000 + 5.0


def test_host_device_info_hides_the_password() -> None:
    dev = HostDevice(app=None)
    dev.wifi("net", PASSWORD)
    assert PASSWORD not in dev.info() and '"net" (with password)' in dev.info()


# ---- the client against a fake esp_console REPL (what a board sends, without a board) ----


DEVICE_PROMPT = (PROMPT + " ").encode()  # esp_console appends a space to the prompt it is given


class FakeRepl:
    """linenoise as ESP-IDF v5.5 runs it: echoes what is typed, answers after "\\n", and in line-editing mode asks
    for the cursor position (ESC[6n, written with its NUL) and waits for the answer before each prompt, redrawing
    the line at each key."""

    def __init__(self, editing: bool) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.editing = editing
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _read1(self) -> bytes:
        while not self._stop.is_set():
            try:
                os.set_blocking(self.master, False)
                return os.read(self.master, 1)
            except BlockingIOError:
                time.sleep(0.002)
        return b""

    def _prompt(self) -> None:
        if self.editing:
            os.write(self.master, b"\x1b[6n\0")
            reply = b""
            while not reply.endswith(b"R") and not self._stop.is_set():
                reply += self._read1()
        os.write(self.master, DEVICE_PROMPT)

    def _run(self) -> None:
        # The first prompt was drawn when the terminal that was attached then answered linenoise.
        os.write(self.master, b"I (312) demo: echo on port 3333, HTTP on port 80\r\n" + DEVICE_PROMPT)
        buf = b""
        while not self._stop.is_set():
            c = self._read1()
            if c in (b"\r", b"\n"):  # the UART driver turns CR into LF
                os.write(self.master, b"\r\n")
                line = buf.decode()
                buf = b""
                if line:
                    self.lines.append(line)
                    if line == "status":
                        os.write(self.master, b"sockets: 2 (backend esp-lwip)\r\n  #1 listener listening echo\r\n")
                    else:
                        os.write(self.master, b"Unrecognized command\r\n")
                self._prompt()
            elif c:
                buf += c
                if self.editing:  # refreshLine(): back to column 0, prompt, the line, erase the rest
                    os.write(self.master, b"\r" + DEVICE_PROMPT + buf + b"\x1b[0K")
                else:
                    os.write(self.master, c)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        os.close(self.master)
        os.close(self.slave)


@pytest.mark.parametrize("editing", [False, True], ids=["dumb", "line-editing"])
def test_client_against_an_esp_console_transcript(editing: bool) -> None:
    repl = FakeRepl(editing)
    try:
        with SerialConsole(repl.path) as con:
            con.sync(3)
            answer = con.command("status", timeout=5)
            assert answer.text == "sockets: 2 (backend esp-lwip)\n  #1 listener listening echo\n", answer
            assert not answer.failed
            answer = con.command("bogus", timeout=5)
            assert answer.text == "Unrecognized command\n" and answer.failed, answer
            answer = con.command(f"wifi net {PASSWORD}", timeout=5)  # the REPL echoes it: the client masks it
            assert PASSWORD not in answer.text, answer
        assert repl.lines == ["status", "bogus", f"wifi net {PASSWORD}"]
    finally:
        repl.close()


# ---- the firmware upload's progress on the console (issue 13) ----


@pytest.fixture
def served_ota(tmp_path: Path) -> Iterator[Served]:
    yield from _serve(["--ota-dir", str(tmp_path), "--auth", "admin:s3cret"])


def test_ota_progress_on_the_console(served_ota: Served, tmp_path: Path) -> None:
    """`ota` and `status` show an upload's bytes, percent and rate while it runs, then the result; the echo server
    pauses for it (seed 003). A raw socket sends half an image and waits, so the progress is read mid-upload."""
    size = 400_000
    data = bytes([0xE9]) + os.urandom(size - 1)
    with _open(served_ota.pty) as ser:
        text = clean_answer(_ask(ser, b"ota").decode(), "ota")
        assert text == "ota: idle, no upload yet\n", text
        s = connect("127.0.0.1", served_ota.http_port)
        with s:
            s.sendall(
                f"POST /api/ota HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n"
                "Authorization: Basic YWRtaW46czNjcmV0\r\n\r\n".encode()
                + data[: size // 2]
            )
            pattern = r"ota: receiving (\d+) bytes of 400000 \((\d+) %\) at \d+\.\d KB/s(, [\d.]+s left)?; streams "
            text = ""
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                text = clean_answer(_ask(ser, b"ota").decode(), "ota")
                m = re.match(pattern, text)
                if m and int(m.group(1)) == size // 2:
                    break
                time.sleep(0.05)
            assert m and int(m.group(1)) == size // 2 and int(m.group(2)) == 50, text
            assert "echo stopped" in text, text
            status = clean_answer(_ask(ser, b"status").decode(), "status")
            assert re.search(r"^ota: receiving 200000 bytes of 400000 \(50 %\)", status, re.M), status
            s.sendall(data[size // 2 :])
            s.settimeout(15)
            assert b"200 OK" in s.recv(4096)
        text = clean_answer(_ask(ser, b"ota").decode(), "ota")
        assert text.startswith("ota: image ready (400000 bytes, sha256 "), text
        assert (tmp_path / "firmware.bin").read_bytes() == data
        # ota-prepare stops (frees) the app: `ota` no longer reads it.
        assert b"servers stopped" in _ask(ser, b"ota-prepare 500")
        text = clean_answer(_ask(ser, b"ota").decode(), "ota")
        assert text == "ota: no firmware upload route on this build\n", text
