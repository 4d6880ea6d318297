#!/usr/bin/env python3
"""CPU per WebSocket echo of tcp_core, counted rather than timed, so the figure does not move with machine load.

bench/ws_echo_tc.c is built with gcc -O2 and run twice under valgrind's callgrind: once for --small echoes and once
for --large; a `websockets` client sends --size-byte binary messages one at a time and checks every echo. The
server's user-space instructions per echo are (Ir(large) - Ir(small)) / (large - small): start-up, the handshake
and the stop cancel out. With --strace the same difference is taken of the server's system calls (strace -c -f).

Usage: python3 bench/ws_echo_cost.py [--small 200] [--large 2200] [--size 64] [--strace]
Exit status: 0, 1 when a run failed (build, start, a wrong echo, a leak), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parent.parent
COMPONENT = ROOT / "components" / "tcp_core"


def sources() -> list[str]:
    out: list[str] = []
    for line in (COMPONENT / "sources.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(str(COMPONENT / line))
    for line in (COMPONENT / "port" / "backends.txt").read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "linux":
            out += [str(COMPONENT / p) for p in parts[1:]]
    return out


def build(tmp: Path) -> Path:
    exe = tmp / "ws_echo_tc"
    inc = [f"-I{COMPONENT / d}" for d in ("include", "src", "port/os/posix")]
    cmd = ["gcc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-g", *inc, str(ROOT / "bench" / "ws_echo_tc.c"), *sources()]
    subprocess.run([*cmd, "-lpthread", "-o", str(exe)], check=True)
    return exe


def run(prefix: list[str], exe: Path, echoes: int, size: int) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        [*prefix, str(exe), "--echoes", str(echoes)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.match(r"ready (\d+)", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r} {proc.communicate()[1]}")
    payload = bytes(i & 0xFF for i in range(size))
    with connect(f"ws://127.0.0.1:{m.group(1)}/ws", max_size=None, open_timeout=60) as ws:
        for _ in range(echoes):
            ws.send(payload)
            if ws.recv(timeout=60) != payload:
                raise RuntimeError("wrong echo")
    out, err = proc.communicate(timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"server exit {proc.returncode}: {err[-2000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def instructions(exe: Path, echoes: int, size: int, tmp: Path) -> int:
    out = tmp / f"cg.{echoes}"
    run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"], exe, echoes, size)
    for line in out.read_text().splitlines():
        if line.startswith("summary:") or line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError("no callgrind summary")


def syscalls(exe: Path, echoes: int, size: int, tmp: Path) -> int:
    out = tmp / f"st.{echoes}"
    run(["strace", "-f", "-c", "-o", str(out)], exe, echoes, size)
    for line in out.read_text().splitlines():
        if line.strip().endswith("total"):
            return int(line.split()[3])
    raise RuntimeError("no strace total")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", type=int, default=200)
    p.add_argument("--large", type=int, default=2200)
    p.add_argument("--size", type=int, default=64, help="message bytes (64)")
    p.add_argument("--strace", action="store_true", help="also count system calls per echo")
    p.add_argument("--component", type=Path, help="another components/tcp_core tree to measure (e.g. an older commit)")
    args = p.parse_args()
    if args.component is not None:
        global COMPONENT
        COMPONENT = args.component.resolve()
    if not 0 < args.small < args.large or args.size < 0:
        p.print_usage()
        return 2
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        try:
            exe = build(tmp)
            n = args.large - args.small
            ir = (instructions(exe, args.large, args.size, tmp) - instructions(exe, args.small, args.size, tmp)) / n
            print(f"instructions per echo ({args.size} B, user space, callgrind): {ir:,.0f}")
            if args.strace:
                sc = (syscalls(exe, args.large, args.size, tmp) - syscalls(exe, args.small, args.size, tmp)) / n
                print(f"system calls per echo: {sc:.2f}")
        except (subprocess.CalledProcessError, RuntimeError, OSError) as e:
            print(f"ws_echo_cost: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
