"""The device's serial console (components/tcp_core/include/tc_console.h) on the host, and a client for it.

Three parts:

- ``Console``: the portable C console itself (``status``, ``wifi``, ``ota-prepare``, ``help``), one line in and its
  text out, with the callbacks written in Python.
- ``PtyConsole``: that console on a pseudo-terminal, so that serial tools (pyserial, picocom, ``tcp-core console``)
  drive ``tcp-core serve --console-pty`` as they drive the device's esp_console REPL.
- ``SerialConsole``: the client: sends one command over a serial port (the device) or a pty (the host) and returns
  its answer, without the echo, the prompt and the terminal escapes of the REPL.

    with Loop() as loop:
        app = App(loop, echo_port=0, http_port=0)
        pty = serve_console(loop, app)            # the pty path is pty.path
        with SerialConsole(pty.path) as con:
            print(con.command("status").text)
        pty.close()
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import selectors
import shlex
import sys
import threading
import time
import traceback
import tty
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ._native import Native, load
from .core import Loop, alloc_stats
from .errors import TcError

PROMPT: str = load("linux").text(load("linux").lib.tcpy_console_prompt())
"""The prompt of the device's REPL and of the pty console (TC_CONSOLE_PROMPT, from C)."""

OTA_DEADLINE_MS = int(load("linux").lib.TC_CONSOLE_OTA_DEADLINE_MS)
"""The deadline of ``ota-prepare`` without an argument (TC_CONSOLE_OTA_DEADLINE_MS, from C)."""

FAILURE_MARKERS = ("Command returned non-zero error code", "Unrecognized command", "Invalid arguments")
"""Lines esp_console's REPL prints after a failed command; the pty console prints the first one too."""

_JOIN_S = 30.0  # PtyConsole.close() waits this long for a running command (an ota-prepare has a deadline)
_OUT_CAP = 3072  # a command's text, as the firmware's (esp/tc_esp_console.c); `status` gets more per socket
_STATUS_PER_SOCKET = 200  # a `status` socket line is ~120 bytes


@dataclass(frozen=True)
class Command:
    """One console command (tc_console_cmd_t)."""

    name: str
    args: str
    help: str


@dataclass(frozen=True)
class OtaResult:
    """What an ota-prepare handler reports (tc_console_ota_result_t); the console prints it."""

    elapsed_ms: int
    graceful: int
    forced: int
    heap_freed: int


@dataclass(frozen=True)
class Reply:
    """A command's text and its code: >= 0 on success, a negative tc_err_t (``name`` e.g. "ENOTFOUND") on failure."""

    text: str
    code: int
    name: str

    @property
    def ok(self) -> bool:
        """True when the command succeeded."""
        return self.code >= 0


WifiHandler = Callable[[str, str], None]
"""Store credentials (ssid, password; "" for an open network). Raise to refuse (the console prints why)."""

OtaHandler = Callable[[int], OtaResult]
"""Stop every server within deadline_ms and report. Raise ClosedError when already stopped."""

InfoHandler = Callable[[], str]
"""Extra ``status`` lines, each ending in a newline."""


def _error_code(native: Native, exc: Exception) -> int:
    """The tc_err_t a console callback gives C for an exception (C prints its message)."""
    lib = native.lib
    if isinstance(exc, TcError):
        return exc.code
    if isinstance(exc, TimeoutError):
        return int(lib.TC_ETIMEDOUT)
    if isinstance(exc, NotImplementedError):
        return int(lib.TC_ENOSYS)
    if isinstance(exc, ValueError):
        return int(lib.TC_EINVAL)
    print("tcp_core: exception in a console callback:", file=sys.stderr)
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    return int(lib.TC_EIO)


class Console:
    """The portable console over a Loop (``status`` lists its registry). Unset handlers make their command answer
    "not available" (TC_ENOSYS), as on a firmware built without them.

    Thread-safety: ``run`` may be called from any thread but the loop's (``status`` waits for the loop thread, and an
    ota-prepare handler usually waits for a stop that the loop carries out); the handlers run on the caller's thread.
    """

    def __init__(
        self,
        loop: Loop | None = None,
        *,
        wifi: WifiHandler | None = None,
        ota_prepare: OtaHandler | None = None,
        info: InfoHandler | None = None,
        ota_app: Any = None,
        loop_wait_ms: int = 2000,
        backend: str = "linux",
    ) -> None:
        self.loop = loop
        self._native = loop.native if loop is not None else load(backend)
        ffi, lib = self._native.ffi, self._native.lib
        self._wifi_fn, self._ota_fn, self._info_fn = wifi, ota_prepare, info
        self._handle = ffi.new_handle(self)  # alive as long as self: C calls back only inside run()
        cfg = ffi.new("tc_console_config_t *")
        lib.tcpy_console_defaults(cfg)
        cfg.loop = loop.ptr if loop is not None else ffi.NULL
        if wifi is not None:
            cfg.wifi = lib.tcpy_console_wifi_cb
        if ota_prepare is not None:
            cfg.ota_prepare = lib.tcpy_console_ota_cb
        if info is not None:
            cfg.info = lib.tcpy_console_info_cb
        if ota_app is not None:  # `ota` and the OTA line of `status`: the App's upload progress (C, loop thread)
            cfg.ota = ffi.addressof(lib, "tc_app_console_ota")
            cfg.ota_user = ota_app._ptr
        cfg.user = self._handle
        cfg.loop_wait_ms = loop_wait_ms
        self._cfg = cfg
        self._lock = threading.Lock()  # one command at a time, as on the device's REPL

    def forget_ota(self) -> None:
        """The App is about to stop (freed): `ota` and `status` stop reading its upload state. Call from the thread
        that runs commands (an ota-prepare handler does), never while another thread runs one."""
        self._cfg.ota = self._native.ffi.NULL
        self._cfg.ota_user = self._native.ffi.NULL

    @property
    def max_line(self) -> int:
        """Longest command line accepted (TC_CONSOLE_MAX_LINE)."""
        return int(self._native.lib.TC_CONSOLE_MAX_LINE)

    @staticmethod
    def commands(backend: str = "linux") -> list[Command]:
        """The command table (the same as the firmware's)."""
        native = load(backend)
        count = native.ffi.new("size_t *")
        table = native.lib.tc_console_commands(count)
        s = native.ffi.string
        return [
            Command(s(table[i].name).decode(), s(table[i].args).decode(), s(table[i].help).decode())
            for i in range(count[0])
        ]

    def run(self, line: str) -> Reply:
        """Run one command line; a failing command is a Reply with a negative code, not an exception (its text says
        why). Raises BusyError on the loop thread."""
        if self.loop is not None and self.loop.in_loop_thread():
            raise self._native.error("BUSY", "the console cannot run on the loop thread (status waits for it)")
        ffi, lib = self._native.ffi, self._native.lib
        data = line.replace("\0", "").encode("utf-8", "replace")
        with self._lock:
            cap = _OUT_CAP
            if self.loop is not None:
                self._cfg.loop = self.loop.ptr  # raises ClosedError once the loop is closed
                if line.split()[:1] == ["status"]:
                    # C copies `status` through a tcp_core allocation of this size, which the heap line it prints
                    # counts: size it to the registry rather than to the worst case.
                    loop = self.loop
                    cap += _STATUS_PER_SOCKET * int(loop.call(lambda: lib.tc_registry_count(loop.ptr)))
            out = ffi.new("char[]", cap)
            rc = int(lib.tc_console_exec(self._cfg, data, out, cap))
        text = ffi.string(out).decode("utf-8", "replace")
        name = "" if rc >= 0 else "E" + ffi.string(lib.tc_err_name(rc)).decode()
        return Reply(text, rc, name)

    def execute(self, line: str) -> str:
        """Run one command line and return its text; raise the typed TcError of a failure (its text as context)."""
        reply = self.run(line)
        if not reply.ok:
            self._native.check(reply.code, reply.text.strip())
        return reply.text

    # ---- called from C (the extern "Python" callbacks in _callbacks.py), on the thread inside run() ----

    def _wifi(self, ssid: Any, password: Any) -> int:
        ffi = self._native.ffi
        try:
            assert self._wifi_fn is not None
            self._wifi_fn(ffi.string(ssid).decode("utf-8", "replace"), ffi.string(password).decode("utf-8", "replace"))
        except Exception as exc:  # C gets a code; anything else reaches the callbacks' onerror (TC_EIO)
            return _error_code(self._native, exc)
        return 0

    def _ota_prepare(self, deadline_ms: int, result: Any) -> int:
        try:
            assert self._ota_fn is not None
            r = self._ota_fn(int(deadline_ms))
        except Exception as exc:  # C gets a code; anything else reaches the callbacks' onerror (TC_EIO)
            return _error_code(self._native, exc)
        result.elapsed_ms = r.elapsed_ms
        result.graceful = r.graceful
        result.forced = r.forced
        result.heap_freed = r.heap_freed
        return 0

    def _info(self, buf: Any, cap: int) -> int:
        try:
            assert self._info_fn is not None
            data = self._info_fn().encode("utf-8", "replace")
        except Exception as exc:  # C gets a code; anything else reaches the callbacks' onerror (TC_EIO)
            return _error_code(self._native, exc)
        n = min(len(data), cap - 1)  # snprintf-style: keep what fits, return the whole length
        self._native.ffi.memmove(buf, data[:n], n)
        buf[n] = b"\0"
        return len(data)


class HostDevice:
    """The console handlers of ``tcp-core serve``: the host has no Wi-Fi, so credentials are only kept in memory;
    ota-prepare stops every service of the App within the deadline (seed 003) and stays stopped, as on the device.
    """

    def __init__(self, app: Any) -> None:
        self.app = app  # a tcp_core.app.App (not imported: app.py needs no console)
        self.ssid: str | None = None
        self._password = ""
        self.prepared = False
        self.console: Console | None = None  # set by serve_console(): told before the App stops
        self._lock = threading.Lock()

    def wifi(self, ssid: str, password: str) -> None:
        """Keep the credentials (never printed)."""
        with self._lock:
            self.ssid, self._password = ssid, password

    def ota_prepare(self, deadline_ms: int) -> OtaResult:
        """App.stop with the deadline; the heap freed is tcp_core's own bytes (the host has no device heap)."""
        with self._lock:
            if self.prepared:
                raise self.app.loop.native.error("CLOSED", "already prepared: the servers are stopped")
            self.prepared = True
        if self.console is not None:
            self.console.forget_ota()  # this handler runs inside the console's own command
        backend = self.app.loop.backend
        before = alloc_stats(backend).bytes_in_use
        t0 = time.monotonic()
        r = self.app.stop(deadline_ms)
        elapsed = int((time.monotonic() - t0) * 1000)
        freed = before - alloc_stats(backend).bytes_in_use
        graceful = r.echo.graceful + r.http.graceful + (1 if r.client_closed and not r.client_forced else 0)
        forced = r.echo.forced + r.http.forced + (1 if r.client_forced else 0)
        return OtaResult(max(elapsed, r.elapsed_ms), graceful, forced, freed)

    def info(self) -> str:
        """The host's extra ``status`` lines."""
        with self._lock:
            if self.ssid is None:
                wifi = "wifi: none on this host; no credentials stored\n"
            else:
                kind = "with password" if self._password else "open network"
                wifi = f'wifi: none on this host; credentials for "{self.ssid}" ({kind}) kept in memory\n'
            return wifi + ("ota: prepared (servers stopped)\n" if self.prepared else "")


class PtyConsole:
    """A Console on a pseudo-terminal: lines written to ``path`` run as commands; the text, then the prompt, comes
    back. Lines end in CR, LF or CR LF; output lines end in CR LF, as a device's UART console sends them. Input is
    not echoed (a terminal program needs local echo, e.g. ``picocom --echo``): a ``wifi`` password never comes
    back. A failed command is followed by esp_console's "Command returned non-zero error code" line.

    One reader thread runs the commands, one at a time; close() waits for the one running.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self._master, self._slave = os.openpty()
        # Raw: no echo of what the client writes (passwords), no line editing or CR/LF translation by the tty.
        tty.setraw(self._slave)
        # The server keeps its own slave descriptor open: without one, reads on the master fail (EIO) between
        # clients, and the tty settings would be reset by the next open.
        self.path = os.ttyname(self._slave)
        os.set_blocking(self._master, False)
        self._wake_r, self._wake_w = os.pipe()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="tcp_core-console-pty", daemon=True)
        self._write(PROMPT.encode())
        self._thread.start()

    def close(self) -> None:
        """Stop the reader (after the command it runs) and close the pty."""
        if self._stop:
            return
        self._stop = True
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=_JOIN_S)
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> PtyConsole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, data: bytes) -> None:
        """Write to the client; drop what a client that stopped reading leaves no room for (never block forever)."""
        deadline = time.monotonic() + 2.0
        while data and time.monotonic() < deadline:
            try:
                n = os.write(self._master, data)
                data = data[n:]
            except BlockingIOError:
                time.sleep(0.01)
            except OSError:
                return

    def _answer(self, line: str) -> None:
        self._write(b"\r\n")  # the end of the line typed, as a terminal shows it (the device echoes it too)
        if line.strip():
            try:
                reply = self.console.run(line)
            except TcError as exc:  # the loop is closed or closing: say so, keep the console up
                reply = Reply(f"console: {exc}\n", exc.code, "E" + exc.name)
            out = reply.text
            if not reply.ok:
                out += f"Command returned non-zero error code: {reply.code} (TC_{reply.name})\n"
            self._write(out.replace("\n", "\r\n").encode("utf-8", "replace"))
        self._write(PROMPT.encode())

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._master, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        limit = self.console.max_line + 1  # one byte more: the console then answers "line longer than ..."
        line = bytearray()
        after_cr = False
        try:
            while not self._stop:
                for key, _ in sel.select(timeout=1.0):
                    if key.fd == self._wake_r:
                        return
                    try:
                        data = os.read(self._master, 4096)
                    except BlockingIOError:
                        continue
                    except OSError as exc:
                        if exc.errno == errno.EIO:  # no client side open (cannot happen while _slave is open)
                            time.sleep(0.05)
                            continue
                        raise
                    for byte in data:
                        if byte == 0x0A and after_cr:  # CR LF is one end of line
                            after_cr = False
                            continue
                        after_cr = byte == 0x0D
                        if byte in (0x0A, 0x0D):
                            self._answer(line.decode("utf-8", "replace"))
                            line.clear()
                        elif byte in (0x08, 0x7F):  # backspace, as linenoise's dumb mode
                            del line[-1:]
                        elif byte == 0x03:  # Ctrl-C: drop the line
                            line.clear()
                            self._write(b"^C\r\n" + PROMPT.encode())
                        elif byte >= 0x20 or byte == 0x09:
                            if len(line) < limit:
                                line.append(byte)
        finally:
            sel.close()


def serve_console(loop: Loop, app: Any) -> PtyConsole:
    """The console of ``tcp-core serve --console-pty``: the App's loop, HostDevice handlers, on a new pty."""
    device = HostDevice(app)
    console = Console(loop, wifi=device.wifi, ota_prepare=device.ota_prepare, info=device.info, ota_app=app)
    device.console = console
    return PtyConsole(console)


# ---- the client side: a serial port (the device's esp_console) or a pty (tcp-core serve --console-pty) ----

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[@-Z\\-_]")
_EOLS = {"cr": b"\r", "lf": b"\n", "crlf": b"\r\n"}


def _lines(raw: str) -> list[str]:
    """The text a terminal would show: escapes removed, CR LF as LF, a lone CR going back to the line's start."""
    # linenoise writes its queries with their NUL (sizeof of a string literal): drop those too.
    text = _ESCAPES.sub("", raw).replace("\0", "").replace("\r\n", "\n")
    return [part.rsplit("\r", 1)[-1] for part in text.split("\n")]


def _after_prompt(line: str) -> str | None:
    """What follows the prompts at the start of a terminal line, or None without one. esp_console adds a space to
    the prompt it is given (and colours it when line editing is on): "tcp_core>  " is a prompt too; and a REPL
    whose read() is interrupted draws its prompt again on the same line (the linux target does, many times)."""
    bare = PROMPT.rstrip()
    if not line.startswith(bare):
        return None
    while line.startswith(bare):
        line = line[len(bare) :].lstrip()
    return line.strip()


def answer_complete(raw: str) -> bool:
    """True when raw (what came back after a line was sent) ends with a fresh prompt on its own line."""
    lines = _lines(raw)
    return len(lines) >= 2 and _after_prompt(lines[-1]) == ""


def clean_answer(raw: str, command: str) -> str:
    """A command's answer as text: without the REPL's echo of the command, its prompts and terminal escapes."""
    lines = _lines(raw)
    if lines and _after_prompt(lines[-1]) == "":
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    # The echo of linenoise (the device types the line back; the pty console does not), after the prompt or alone.
    if lines and command.strip() in (lines[0].strip(), _after_prompt(lines[0])):
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "".join(line + "\n" for line in lines)


def join_command(args: Sequence[str], backend: str = "linux") -> str:
    """One console line from arguments, each quoted by the console's own rule (tc_console_quote())."""
    native = load(backend)
    out = []
    for arg in args:
        data = arg.encode("utf-8")
        cap = 2 * len(data) + 3
        buf = native.ffi.new("char[]", cap)
        n = native.check(native.lib.tc_console_quote(data, buf, cap), "quote")
        out.append(native.ffi.unpack(buf, n).decode("utf-8"))
    return " ".join(out)


def _secrets(command: str) -> list[str]:
    """The password of a ``wifi`` line, which the client masks in anything it prints."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    return [words[2]] if len(words) >= 3 and words[0] == "wifi" and words[2] else []


def command_timeout(command: str, timeout: float) -> float:
    """The wait for an answer: ota-prepare takes up to its deadline, and the device logs its report after it."""
    words = command.split()
    if words and words[0] == "ota-prepare":
        deadline_ms = int(words[1]) if len(words) > 1 and words[1].isdigit() else OTA_DEADLINE_MS
        return max(timeout, deadline_ms / 1000 + 5.0)
    return timeout


@dataclass(frozen=True)
class Answer:
    """What a command printed (cleaned), and whether the console reported a failure."""

    text: str
    failed: bool


class ConsoleTimeoutError(TimeoutError):
    """No prompt came back in time; ``received`` is what arrived meanwhile."""

    def __init__(self, message: str, received: str) -> None:
        super().__init__(message)
        self.received = received


class SerialConsole:
    """A client for the device's esp_console REPL or the pty console, over pyserial.

    Opening leaves DTR and RTS released, so that boards whose auto-reset circuit hangs EN and IO0 on them are not
    reset. The client answers the cursor-position query linenoise sends when the REPL runs with line editing on
    (it waits for that answer before each prompt), and never answers the start-up probe, so a REPL it meets first
    stays in plain mode.
    """

    def __init__(self, port: str, baud: int = 115200, *, eol: str = "cr") -> None:
        import serial  # pyserial: an optional dependency, needed only by the client

        if eol not in _EOLS:
            raise ValueError(f"eol must be one of {', '.join(_EOLS)}, not {eol!r}")
        self._eol = _EOLS[eol]
        ser = serial.Serial()
        ser.port = port
        ser.baudrate = baud
        ser.timeout = 0.05
        ser.dtr = False
        ser.rts = False
        ser.open()
        self._ser = ser
        ser.reset_input_buffer()  # what earlier sessions left unread (old prompts, logs)

    def close(self) -> None:
        """Close the port."""
        self._ser.close()

    def __enter__(self) -> SerialConsole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _exchange(self, data: bytes, timeout: float) -> str:
        """Send data and read until a fresh prompt ends the answer; raise ConsoleTimeoutError without one."""
        self._ser.write(data)
        self._ser.flush()
        got = bytearray()
        answered = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = self._ser.read(4096)
            if not chunk:
                continue
            got += chunk
            while answered < got.count(b"\x1b[6n"):
                self._ser.write(b"\x1b[1;80R")  # linenoise asks where the cursor is; any answer does
                answered += 1
            text = got.decode("utf-8", "replace")
            if answer_complete(text):
                return text
        raise ConsoleTimeoutError(
            f"no console prompt within {timeout:g} s (is the REPL running? the right port and baud rate?)",
            got.decode("utf-8", "replace"),
        )

    def sync(self, timeout: float = 3.0) -> None:
        """Send an empty line and wait for the prompt it brings: the console is there and its line is empty."""
        self._exchange(self._eol, timeout)

    def command(self, line: str, timeout: float = 10.0) -> Answer:
        """Send one command line and return its answer (a wifi password in it is masked)."""
        raw = self._exchange(line.encode("utf-8") + self._eol, command_timeout(line, timeout))
        text = clean_answer(raw, line)
        for secret in _secrets(line):
            text = text.replace(secret, "********")
        failed = any(ln.startswith(FAILURE_MARKERS) for ln in text.splitlines())
        return Answer(text, failed)


def run_client(port: str, baud: int, command: Sequence[str], *, timeout: float = 10.0, eol: str = "cr") -> int:
    """``tcp-core console``: one command (exit 0, or 1 when it failed) or, without one, an interactive loop.
    Exit 2 when the port cannot be opened, 3 when the console does not answer."""
    try:
        con = SerialConsole(port, baud, eol=eol)
    except ImportError:
        print("tcp-core console: pyserial is not installed (pip install pyserial)", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"tcp-core console: cannot open {port}: {exc}", file=sys.stderr)
        return 2
    with con:
        try:
            con.sync(min(timeout, 3.0))
            if command:
                answer = con.command(join_command(command), timeout)
                print(answer.text, end="", flush=True)
                return 1 if answer.failed else 0
            return _interactive(con, timeout)
        except ConsoleTimeoutError as exc:
            print(f"tcp-core console: {port}: {exc}", file=sys.stderr)
            if exc.received.strip():
                print(f"received: {exc.received[-400:]!r}", file=sys.stderr)
            return 3
        except OSError as exc:  # serial.SerialException too: the adapter was unplugged, the pty closed
            print(f"tcp-core console: {port}: lost the port: {exc}", file=sys.stderr)
            return 2


def _interactive(con: SerialConsole, timeout: float) -> int:
    print(f"connected; commands: {', '.join(c.name for c in Console.commands())}; Ctrl-D leaves", flush=True)
    while True:
        try:
            line = input(PROMPT)
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if line.strip():
            print(con.command(line, timeout).text, end="", flush=True)
