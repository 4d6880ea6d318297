"""What http_bench.py and mjpeg_bench.py share: CPU pinning, CPU time from /proc, starting and stopping
`tcp-core serve` (or any server), and reading tcp_core's /api/status.

Not a script: the benchmarks are run as `python3 bench/X.py`, which puts bench/ first on sys.path, so they import
this file as `_common`.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "python") not in sys.path:
    sys.path.insert(0, str(ROOT / "python"))  # the working tree's tcp_core, as for the servers started below
from tcp_core.httphead import read_response_head  # noqa: E402

HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
IO_TIMEOUT_S = 5.0
# The /api/status handler allocates its reply buffer before it reads the heap counter (tc_app.c api_status:
# 2048 + 320 bytes per registered socket), so the figure it reports includes that buffer: heap_net() subtracts it.
STATUS_BUF_BASE = 2048
STATUS_BUF_PER_SOCKET = 320


class BenchError(Exception):
    """Something failed to run, or a response was wrong: the run exits 1."""


NGINX_TEMPLATE = ROOT / "bench" / "nginx.conf.in"


def free_port() -> int:
    """A port free on HOST now (bound and released; the caller binds it next)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def nginx_command(ndir: Path, body: bytes, fields: dict[str, str]) -> tuple[int, list[str]]:
    """Prepare nginx in ndir (created) serving body as / with bench/nginx.conf.in filled from fields (DIR and PORT
    are set here, HOST unless fields set it); returns the port and the command line. The directories are made
    readable for the worker, which runs as nobody when nginx is started as root."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise BenchError("nginx not found (apt-get install nginx-light)")
    (ndir / "www").mkdir(parents=True)
    (ndir / "www" / "index.html").write_bytes(body)
    for d in (ndir.parent, ndir, ndir / "www"):
        d.chmod(0o755)
    (ndir / "www" / "index.html").chmod(0o644)
    port = free_port()
    conf = NGINX_TEMPLATE.read_text()
    for key, value in {"HOST": HOST, **fields, "DIR": str(ndir), "PORT": str(port)}.items():
        conf = conf.replace(f"@{key}@", value)
    (ndir / "nginx.conf").write_text(conf)
    return port, [nginx, "-p", str(ndir), "-c", str(ndir / "nginx.conf"), "-e", str(ndir / "error.log")]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- CPUs and CPU time ----


@dataclass
class Pinning:
    """The server on one CPU and the load (wrk, the viewers, this script) on another, or nothing when that is
    impossible. server and load are command prefixes (taskset -c N)."""

    server: list[str] = field(default_factory=list)
    load: list[str] = field(default_factory=list)
    note: str = "not pinned"
    cpu: int | None = None
    """The servers' CPU (None: not pinned)."""


def choose_pinning(enabled: bool, server_what: str, load_what: str) -> Pinning:
    """Servers on the first allowed CPU, the load on the second; this script moves itself to the second too."""
    cpus = sorted(os.sched_getaffinity(0))
    taskset = shutil.which("taskset")
    if not enabled:
        return Pinning(note="not pinned (--no-pin)")
    if taskset is None or len(cpus) < 2:
        return Pinning(note="not pinned (needs taskset and 2 CPUs)")
    os.sched_setaffinity(0, {cpus[1]})
    return Pinning(
        [taskset, "-c", str(cpus[0])],
        [taskset, "-c", str(cpus[1])],
        f"{server_what} on CPU {cpus[0]}, {load_what} on CPU {cpus[1]} (taskset)",
        cpus[0],
    )


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of one process so far, in clock ticks (0 when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_cpu_fine(pid: int) -> float:
    """CPU seconds of a process's live threads in ns resolution (/proc/PID/task/*/schedstat, time on a CPU); the
    ticks of /proc/PID/stat (10 ms) are too coarse for a server that is busy a few % of a core. Threads that have
    exited are not counted: take differences only over spans in which the server keeps its threads."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    except OSError:
        return proc_cpu(pid)
    return total / 1e9 if total else proc_cpu(pid)


def cpu_busy(cpu: int) -> float:
    """Busy seconds of one CPU so far, everything that ran on it (/proc/stat's cpuN: user + nice + system + irq +
    softirq): a server's own time plus the kernel's network work that was done there, in whichever context."""
    for ln in Path("/proc/stat").read_text().splitlines():
        if ln.startswith(f"cpu{cpu} "):
            user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in ln.split()[1:8])
            return (user + nice + system + irq + softirq) / CLK_TCK
    raise BenchError(f"no cpu{cpu} in /proc/stat")


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine so far, all CPUs (the first line of /proc/stat: user + nice + system +
    irq + softirq + steal). Interrupt time is in it because a process's own CPU time (schedstat, rusage) holds the
    network work the kernel did in that process's context, which /proc/stat books as softirq: without it, other
    jobs' time hid behind the benchmark's own softirq work."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = f[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def softirq_threads_cpu() -> float:
    """CPU seconds of the kernel's ksoftirqd threads so far: network work deferred from the tasks that raised it
    (the rest runs in those tasks' own time; this kernel does not account interrupt time apart)."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().startswith("ksoftirqd/"):
                total += int((proc / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


def proc_children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(x) for x in (task / "children").read_text().split()]
    except OSError:
        pass
    return out


# ---- servers ----


class Server:
    """A server process: started (pinned by the caller's command prefix), its stdout read line by line, its stderr
    kept in log_path (or a temporary file), stopped by signal; CPU time of its process tree."""

    def __init__(
        self, name: str, cmd: list[str], stop_signal: int = signal.SIGTERM, log_path: Path | None = None
    ) -> None:
        self.name = name
        self.cmd = cmd
        self.port = 0
        self.stop_signal = stop_signal
        self.log_path = log_path
        self.out_lines: list[str] = []
        self.stderr = ""  # what the server wrote to stderr, once stopped
        self._log: IO[bytes] = log_path.open("w+b") if log_path is not None else tempfile.TemporaryFile()
        env = dict(os.environ)  # the working tree's tcp_core first, installed or not
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "python"), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL, env=env)
        self._buf = b""

    def readline(self, timeout_s: float) -> str | None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    return None
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        text = line.decode(errors="replace")
        self.out_lines.append(text)
        return text

    def pids(self) -> list[int]:
        """The server's own process and its children (nginx: the master and its worker)."""
        return [self.proc.pid, *proc_children(self.proc.pid)]

    def cpu(self) -> float:
        """CPU seconds of the server's processes so far (proc_cpu_fine)."""
        return sum(proc_cpu_fine(p) for p in self.pids())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        """Signal, wait (kill after STOP_TIMEOUT_S), keep the rest of stdout (tcp-core serve's stop report: what
        closed, the heap freed and left) and stderr; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
        try:
            rc = self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = -9
        while self.readline(0.2) is not None:
            pass
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.seek(0)
        self.stderr = self._log.read().decode(errors="replace")
        self._log.close()
        return rc


def start_tcp_core(pin: Pinning, options: list[str], log_path: Path | None = None) -> Server:
    """`tcp-core serve` (python -m tcp_core.cli serve) on HOST with the HTTP service only, on a free port, plus
    `options`; pinned with pin.server; stopped with SIGINT (its Ctrl-C). Returns once it printed its ready line."""
    cmd = [sys.executable, "-m", "tcp_core.cli", "serve", "--host", HOST, "--echo-port", "-1", "--http-port", "0"]
    srv = Server("tcp_core", pin.server + cmd + options, signal.SIGINT, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while (line := srv.readline(max(deadline - time.monotonic(), 0.0))) is not None:
        m = re.match(r"^http\s+http://[^/]*:(\d+)/", line)
        if m:
            srv.port = int(m.group(1))
        if line.startswith("serving on"):
            break
    if not srv.port or not srv.alive():
        srv.stop()
        raise BenchError(f"tcp-core serve did not start: {srv.out_lines} {srv.stderr.strip()[-500:]}")
    return srv


# ---- HTTP by hand (checks, /api/status) ----


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    raw_len: int


def read_response(sock: socket.socket) -> Response:
    """One HTTP/1.x response framed by Content-Length (tcp_core's and nginx's "/" and /api/status are)."""
    sock.settimeout(IO_TIMEOUT_S)
    rest = bytearray()
    try:
        head = read_response_head(sock, rest)
    except (ConnectionError, ValueError) as exc:
        raise BenchError(str(exc)) from None
    headers, body = head.headers, bytes(rest)
    if "content-length" not in headers:
        raise BenchError(f"response without Content-Length: {head.raw[:200]!r}")
    need = int(headers["content-length"])
    while len(body) < need:
        chunk = sock.recv(65536)
        if not chunk:
            raise BenchError("the server closed inside the body")
        body += chunk
    if len(body) > need:
        raise BenchError("more bytes than Content-Length")
    return Response(head.status, headers, body, len(head.raw) + need)


def request(sock: socket.socket, path: str, close: bool = False) -> Response:
    """GET path on an open connection (kept alive unless close)."""
    extra = "Connection: close\r\n" if close else ""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n{extra}\r\n".encode())
    return read_response(sock)


def status(sock: socket.socket) -> dict[str, Any]:
    """tcp_core's GET /api/status (the registry and the heap) on a kept-alive connection."""
    r = request(sock, "/api/status")
    if r.status != 200:
        raise BenchError(f"/api/status answered {r.status}")
    doc: dict[str, Any] = json.loads(r.body)
    return doc


def heap_net(doc: dict[str, Any]) -> int:
    """heap.bytes_in_use of an /api/status document without the status handler's own reply buffer."""
    return int(doc["heap"]["bytes_in_use"]) - (STATUS_BUF_BASE + STATUS_BUF_PER_SOCKET * int(doc["count"]))
