#!/usr/bin/env python3
"""tcp_core's MJPEG stream under load: 4 viewers x 30 fps x 50 KB frames for 10 s while a fifth viewer never reads.

The server is `tcp-core serve --stream-fps 30 --stream-frame-bytes 51200` (python -m tcp_core.cli serve, pinned to
CPU 0 with taskset): /stream is C (tc_app.c stream_produce, tc_http_stream.c); Python only starts and stops it.
This script runs on CPU 1. It opens the viewer that never reads (it sends its request and nothing else), then the
4 viewers, which parse every multipart part (HTTP/1.1: de-chunked first) and check it is a whole JPEG of the asked
size; after a warm-up it counts, for --duration seconds, the frames that were due and the ones that came late.

Late, precisely: tc_app.c sends frame k at ceil(k * 1000 / fps) ms of the monotonic clock (CLOCK_MONOTONIC, which
this script reads too), the same instants for every viewer, and skips a viewer whose socket cannot take the frame at
its instant. The window holds exactly duration x fps instants. A received frame belongs to the last instant at or
before its first byte's arrival; an instant is on time when a frame of it was wholly received within one period
(1000 / fps ms) of it. Every other instant of the window is late: the frame came later than that, or never (skipped).

Also reported: tcp_core's heap (/api/status heap.bytes_in_use, without the status reply's own buffer) before the
viewers, every second while they stream, and after they leave; tcp_core's queue for the viewer that never reads and
what its socket took; the server's CPU time.

Exit status: 0 when the server started and stopped cleanly with 0 bytes of tcp_core heap left, every part of every
viewer was a well-formed JPEG of the asked size and no viewer was cut off, and tcp_core's memory stayed within the
bound its water marks give (see bench/README.md); 1 otherwise. Speed (late frames, fps) never fails a run.

Usage: python3 bench/mjpeg_bench.py [--quick] [--json] [--duration S] [--warmup S] [--fps N] [--frame-bytes N]
                                    [--viewers N] [--http10] [--no-pin]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import socket
import statistics
import sys
import time
from typing import Any

from _common import (  # bench/_common.py: python3 bench/mjpeg_bench.py puts bench/ first on sys.path
    HOST,
    IO_TIMEOUT_S,
    BenchError,
    choose_pinning,
    heap_net,
    log,
    machine_busy,
    proc_cpu,
    start_tcp_core,
    status,
)

# tcp_core's write water marks (tc_config.h, host defaults): a stream is written to only while its queue is at or
# below the low mark, and one part is then queued whole.
WRITE_LOW_WATER = 16 * 1024
PART_OVERHEAD = 256  # part headers and chunk framing around one frame, generously
CONN_STATE_BYTES = 4096  # per-connection state (about 350 B measured by http_bench) and timer/poll-set growth
AFTER_SLACK_BYTES = 8192  # poll-set and timer-heap capacity that stays after the viewers left
# `tcp-core serve`'s idle timeout (tc_http.h default): a viewer whose stack takes nothing for this long is ended, so
# the one that never reads may leave before the run does, but never sooner than this after its request.
IDLE_TIMEOUT_S = 10.0


def mono_ms() -> float:
    """CLOCK_MONOTONIC in ms: the clock of tc_now_ms() / tc_loop_now(), hence of the stream's instants."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) / 1e6


def jpeg_structure_ok(jpeg: bytes) -> bool:
    """SOI, then whole marker segments (fill bytes allowed) up to SOS, and EOI last."""
    if not (jpeg.startswith(b"\xff\xd8") and jpeg.endswith(b"\xff\xd9")):
        return False
    i = 2
    while i < len(jpeg):
        if jpeg[i] != 0xFF:
            return False
        while i < len(jpeg) and jpeg[i] == 0xFF:
            i += 1
        if i >= len(jpeg):
            return False
        if jpeg[i] == 0xDA:
            return True
        length = int.from_bytes(jpeg[i + 1 : i + 3], "big")
        if length < 2:
            return False
        i += 1 + length
    return False


# ---- viewers ----


class Viewer:
    """A /stream viewer: de-chunks (HTTP/1.1), splits the multipart body, checks every part, and notes for each
    frame when its first byte and its last byte were received (the time of the recv() that brought them)."""

    def __init__(self, port: int, http10: bool, frame_bytes: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=IO_TIMEOUT_S)
        version = "1.0" if http10 else "1.1"
        self.sock.sendall(f"GET /stream HTTP/{version}\r\nHost: {HOST}\r\n\r\n".encode())
        self.sock.setblocking(False)
        self.http10 = http10
        self.frame_bytes = frame_bytes
        self.raw = bytearray()  # bytes received, not yet de-chunked
        self.body = bytearray()  # the multipart body, not yet parsed
        self.head_done = False
        self.chunked = False
        self.delim = b""
        self.part_start: float | None = None  # arrival of the current part's first byte (ms)
        self.part_len: int | None = None  # the current part's Content-Length once its head is parsed
        self.frames: list[tuple[float, float]] = []  # (first byte, last byte) in ms of CLOCK_MONOTONIC
        self.bad: list[str] = []
        self.eof = False
        self.bytes = 0

    def feed(self) -> None:
        try:
            chunk = self.sock.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError as exc:
            self.bad.append(f"read: {exc}")
            self.eof = True
            return
        now = mono_ms()
        if not chunk:
            self.eof = True
            return
        self.bytes += len(chunk)
        self.raw += chunk
        if not self.head_done and not self.parse_head():
            return
        before = len(self.body)
        if self.chunked:
            self.dechunk()
        else:
            self.body += self.raw
            self.raw.clear()
        if self.part_start is None and len(self.body) > before and self.body.lstrip(b"\r\n"):
            self.part_start = now  # (between parts the body holds at most the last part's CRLF)
        self.parse_parts(now)

    def parse_head(self) -> bool:
        end = self.raw.find(b"\r\n\r\n")
        if end < 0:
            return False
        text = bytes(self.raw[:end]).decode("latin-1")
        del self.raw[: end + 4]
        low = text.lower()
        m = re.search(r"boundary=\"?([^\";\r\n]+)", text, re.IGNORECASE)
        if not re.match(r"http/1\.[01] 200", low) or "multipart/x-mixed-replace" not in low or not m:
            self.bad.append(f"bad head: {text[:120]!r}")
            self.eof = True
            return False
        self.delim = b"--" + m.group(1).strip().encode()
        self.chunked = "transfer-encoding: chunked" in low
        if self.chunked == self.http10:
            self.bad.append(f"HTTP/{'1.0' if self.http10 else '1.1'} stream {'' if self.chunked else 'not '}chunked")
        self.head_done = True
        return True

    def dechunk(self) -> None:
        while True:
            eol = self.raw.find(b"\r\n")
            if eol < 0:
                return
            try:
                size = int(bytes(self.raw[:eol]).split(b";")[0], 16)
            except ValueError:
                self.bad.append("bad chunk size line")
                self.eof = True
                return
            if len(self.raw) < eol + 2 + size + 2:
                return
            if self.raw[eol + 2 + size : eol + 4 + size] != b"\r\n":
                self.bad.append("chunk not ended by CRLF")
            self.body += self.raw[eol + 2 : eol + 2 + size]
            del self.raw[: eol + 4 + size]
            if size == 0:
                self.eof = True
                return

    def parse_parts(self, now: float) -> None:
        while True:
            if self.part_len is None:
                while self.body[:2] == b"\r\n":  # the CRLF that ends the previous part
                    del self.body[:2]
                if len(self.body) < len(self.delim) + 2:
                    return
                if not self.body.startswith(self.delim + b"\r\n"):
                    self.bad.append(f"part does not start with the boundary: {bytes(self.body[:40])!r}")
                    self.eof = True
                    return
                end = self.body.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self.body[len(self.delim) + 2 : end]).lower()
                m = re.search(rb"content-length:\s*(\d+)", head)
                if m is None or b"content-type: image/jpeg" not in head:
                    self.bad.append(f"part head without Content-Length or image/jpeg: {head[:80]!r}")
                    self.eof = True
                    return
                self.part_len = int(m.group(1))
                del self.body[: end + 4]
            if len(self.body) < self.part_len:
                return
            jpeg = bytes(self.body[: self.part_len])
            del self.body[: self.part_len]
            if len(jpeg) != self.frame_bytes:
                self.bad.append(f"frame of {len(jpeg)} bytes, not {self.frame_bytes}")
            elif not jpeg_structure_ok(jpeg):
                self.bad.append("frame is not a whole JPEG (SOI, marker segments, SOS ... EOI)")
            assert self.part_start is not None
            self.frames.append((self.part_start, now))
            self.part_len = None
            self.part_start = now if self.body.lstrip(b"\r\n") else None


def tick_ms(k: int, fps: int) -> int:
    """When frame k is due (tc_app.c stream_produce): ceil(k * 1000 / fps) ms of CLOCK_MONOTONIC."""
    return (k * 1000 + fps - 1) // fps


def tick_of(t_ms: float, fps: int) -> int:
    """The last instant at or before t_ms (the server computes it from its ms clock the same way)."""
    return (int(t_ms) * fps) // 1000


def pct(vals: list[float], q: float) -> float:
    if not vals:
        return 0.0
    s = sorted(vals)
    return s[min(int(q * (len(s) - 1) + 0.5), len(s) - 1)]


def score(v: Viewer, fps: int, k0: int, k1: int) -> dict[str, Any]:
    """Frames, fps and late instants of one viewer over the instants k0 <= k < k1."""
    period = 1000.0 / fps
    seen: dict[int, float] = {}  # instant -> earliest complete arrival of a frame of it
    lateness: list[float] = []
    duplicates = 0
    received = 0
    for first, last in v.frames:
        k = tick_of(first, fps)
        if not k0 <= k < k1:
            continue
        received += 1
        lateness.append(last - tick_ms(k, fps))
        if k in seen:
            duplicates += 1
            seen[k] = min(seen[k], last)
        else:
            seen[k] = last
    expected = k1 - k0
    on_time = sum(1 for k, last in seen.items() if last - tick_ms(k, fps) <= period)
    missed = expected - len(seen)
    late = expected - on_time
    seconds = (tick_ms(k1, fps) - tick_ms(k0, fps)) / 1000
    return {
        "frames": received,
        "expected": expected,
        "fps": received / seconds,
        "late": late,
        "late_pct": 100.0 * late / expected,
        "missed": missed,
        "slow": late - missed,
        "duplicates": duplicates,
        "latency_p50_ms": pct(lateness, 0.50),
        "latency_p99_ms": pct(lateness, 0.99),
        "latency_max_ms": max(lateness) if lateness else 0.0,
        "bytes": v.bytes,
        "errors": v.bad[:5],
        "ended_early": v.eof,
    }


# ---- the run ----


def run(args: argparse.Namespace) -> dict[str, Any]:
    pin = choose_pinning(not args.no_pin, "server", "viewers")
    srv = start_tcp_core(pin, ["--stream-fps", str(args.fps), "--stream-frame-bytes", str(args.frame_bytes)])
    problems: list[str] = []
    res: dict[str, Any] = {
        "command": " ".join(srv.cmd),
        "pinning": pin.note,
        "fps": args.fps,
        "frame_bytes": args.frame_bytes,
        "viewers_reading": args.viewers,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "http": "1.0" if args.http10 else "1.1",
        "problems": problems,
        "port": srv.port,
    }
    cpu_start = srv.cpu()
    viewers: list[Viewer] = []
    stalled: socket.socket | None = None
    samples: list[dict[str, Any]] = []
    try:
        probe = socket.create_connection((HOST, srv.port), timeout=IO_TIMEOUT_S)
        doc = status(probe)
        res["heap_before"] = heap_net(doc)
        count_before = int(doc["count"])
        stalled = socket.socket()
        if args.stalled_rcvbuf:
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.stalled_rcvbuf)
        stalled.settimeout(IO_TIMEOUT_S)
        stalled.connect((HOST, srv.port))
        stalled.sendall(f"GET /stream HTTP/{res['http']}\r\nHost: {HOST}\r\n\r\n".encode())
        stalled_port = stalled.getsockname()[1]
        viewers = [Viewer(srv.port, args.http10, args.frame_bytes) for _ in range(args.viewers)]
        start = mono_ms()
        k0 = tick_of(start + args.warmup * 1000, args.fps) + 1
        k1 = k0 + round(args.duration * args.fps)
        w0, w1 = tick_ms(k0, args.fps), tick_ms(k1, args.fps)
        end = w1 + 2 * 1000 / args.fps + 300  # the last instants' frames still arrive
        cpu0 = cpu1 = m0 = m1 = me0 = me1 = 0.0
        in_window = False
        next_sample = start + 500
        while (now := mono_ms()) < end:
            if not in_window and now >= w0:
                in_window, cpu0, m0, me0 = True, srv.cpu(), machine_busy(), proc_cpu(os.getpid())
            if in_window and not cpu1 and now >= w1:
                cpu1, m1, me1 = srv.cpu(), machine_busy(), proc_cpu(os.getpid())
            if now >= next_sample:
                doc = status(probe)
                st = next((s for s in doc["sockets"] if s["peer"].endswith(f":{stalled_port}")), None)
                samples.append(
                    {
                        "t_s": round((now - start) / 1000, 2),
                        "heap": heap_net(doc),
                        "stalled_queued": st["queued"] if st else None,
                        "stalled_bytes_out": st["bytes_out"] if st else None,
                        "stalled_state": st["state"] if st else None,
                    }
                )
                next_sample += 1000
                continue
            live = [v for v in viewers if not v.eof]
            if not live:
                break
            timeout = max(min(end, next_sample) - now, 0.0) / 1000
            ready, _, _ = select.select([v.sock for v in live], [], [], timeout)
            for v in live:
                if v.sock in ready:
                    v.feed()
            if srv.proc.poll() is not None:
                raise BenchError(f"the server exited during the run (status {srv.proc.returncode})")
        if not cpu1:
            cpu1, m1, me1 = srv.cpu(), machine_busy(), proc_cpu(os.getpid())
        window_s = (w1 - w0) / 1000
        res["window_s"] = window_s
        res["viewers"] = [score(v, args.fps, k0, k1) for v in viewers]
        res["server_cpu_s"] = cpu1 - cpu0
        res["server_cpu_cores"] = (cpu1 - cpu0) / window_s
        res["bench_cpu_cores"] = (me1 - me0) / window_s
        res["other_cores"] = max((m1 - m0) / window_s - res["server_cpu_cores"] - res["bench_cpu_cores"], 0.0)
        res["samples"] = samples
        seen = [s for s in samples if s["stalled_state"]]
        gone = [s for s in samples if seen and s["t_s"] > seen[-1]["t_s"]]
        res["stalled"] = {
            "found": bool(seen),
            "state": samples[-1]["stalled_state"] if samples else None,
            "ended_s": gone[0]["t_s"] if gone else None,  # the first sample without it, once seen
            "queued_max": max((s["stalled_queued"] or 0) for s in samples) if samples else None,
            "bytes_out": seen[-1]["stalled_bytes_out"] if seen else None,
        }
        # The viewers leave; tcp_core must give back what they held.
        for v in viewers:
            v.sock.close()
        stalled.close()
        stalled = None
        deadline = time.monotonic() + 3
        while True:
            doc = status(probe)
            if doc["count"] <= count_before or time.monotonic() > deadline:  # the listener and the probe
                break
            time.sleep(0.05)
        res["heap_after"] = heap_net(doc)
        res["sockets_after"] = doc["count"]
        probe.close()
    finally:
        for v in viewers:
            v.sock.close()
        if stalled is not None:
            stalled.close()
        cpu_total = srv.cpu()
        rc = srv.stop()
    res["server_cpu_total_s"] = cpu_total
    res["server_cpu_startup_s"] = cpu_start
    res["server_exit"] = rc
    res["server_stop"] = [ln for ln in srv.out_lines if ln.startswith(("stopped", "heap"))]
    left = next((re.search(r"(\d+) bytes left", ln) for ln in srv.out_lines if ln.startswith("heap")), None)
    res["heap_left_after_stop"] = int(left.group(1)) if left else None

    # ---- verdicts (speed never fails a run) ----
    if rc != 0:
        problems.append(f"the server exited with status {rc}: {srv.stderr.strip()[-300:]}")
    if res["heap_left_after_stop"] != 0:
        problems.append(f"tcp_core heap left after stop: {res['heap_left_after_stop']} bytes (expected 0)")
    for i, v in enumerate(res["viewers"]):
        if v["errors"]:
            problems.append(f"viewer {i + 1}: malformed stream: {v['errors']}")
        if v["ended_early"]:
            problems.append(f"viewer {i + 1}: the stream ended before the run did")
        if v["frames"] == 0:
            problems.append(f"viewer {i + 1}: no frame in the window")
    if not res["stalled"]["found"]:
        problems.append("the viewer that never reads is not in /api/status (dropped?)")
    elif res["stalled"]["ended_s"] is not None and res["stalled"]["ended_s"] < IDLE_TIMEOUT_S:
        problems.append(
            f"the viewer that never reads was ended at {res['stalled']['ended_s']} s, before the idle timeout"
        )
    part = args.frame_bytes + PART_OVERHEAD
    queue_bound = WRITE_LOW_WATER + part
    heap_bound = (args.viewers + 1) * (WRITE_LOW_WATER + part + CONN_STATE_BYTES)
    res["bounds"] = {"stalled_queue": queue_bound, "heap_growth": heap_bound, "heap_after_slack": AFTER_SLACK_BYTES}
    heaps = [s["heap"] for s in samples]
    res["heap_during_max"] = max(heaps) if heaps else None
    res["heap_during_last"] = heaps[-1] if heaps else None
    if heaps and max(heaps) - res["heap_before"] > heap_bound:
        problems.append(f"tcp_core heap grew by {max(heaps) - res['heap_before']} bytes (bound {heap_bound})")
    if (res["stalled"]["queued_max"] or 0) > queue_bound:
        problems.append(f"{res['stalled']['queued_max']} bytes queued for the stalled viewer (bound {queue_bound})")
    if res.get("heap_after") is not None and res["heap_after"] - res["heap_before"] > AFTER_SLACK_BYTES:
        problems.append(f"tcp_core heap after the viewers left: {res['heap_after']} (before: {res['heap_before']})")
    return res


# ---- report ----


def report(res: dict[str, Any]) -> str:
    fps = res["fps"]
    period = 1000 / fps
    mode = "HTTP/1.0 (close-delimited)" if res["http"] == "1.0" else "HTTP/1.1 (chunked)"
    out = [
        f"tcp_core MJPEG: {res['viewers_reading']} viewers of /stream at {fps} fps x {res['frame_bytes']}-byte "
        f"frames for {res['window_s']:.1f} s (after {res['warmup_s']} s warm-up), plus 1 viewer that never reads; "
        f"{mode}; {res['pinning']}",
        f"late = a due frame (instants at ceil(k*1000/{fps}) ms of CLOCK_MONOTONIC) not wholly received within "
        f"{period:.1f} ms of its instant; late = missed (no frame began arriving between the instant and the next: "
        "skipped by the server, or delayed past the next instant) + slow (began in time, ended late)",
        "",
        f"{'viewer':8} {'frames':>7} {'expected':>8} {'fps':>7} {'late':>5} {'late %':>7} {'missed':>8} "
        f"{'slow':>5}   instant->frame ms p50 / p99 / max",
    ]
    vs = res["viewers"]
    for i, v in enumerate(vs):
        out.append(
            f"{i + 1:<8} {v['frames']:>7} {v['expected']:>8} {v['fps']:>7.2f} {v['late']:>5} {v['late_pct']:>7.2f} "
            f"{v['missed']:>8} {v['slow']:>5}   {v['latency_p50_ms']:.1f} / {v['latency_p99_ms']:.1f} / "
            f"{v['latency_max_ms']:.1f}"
        )
    tot_late = sum(v["late"] for v in vs)
    tot_exp = sum(v["expected"] for v in vs)
    worst = max(v["late_pct"] for v in vs)
    out += [
        f"{'all':8} {sum(v['frames'] for v in vs):>7} {tot_exp:>8} "
        f"{statistics.mean(v['fps'] for v in vs):>7.2f} {tot_late:>5} {100 * tot_late / tot_exp:>7.2f}",
        f"target < 1 % late frames per viewer: {'met' if worst < 1.0 else 'MISSED'} (worst viewer {worst:.2f} %)",
        "",
    ]
    st = res["stalled"]
    out.append(
        "viewer that never reads: "
        + (f"ended by the idle timeout ({IDLE_TIMEOUT_S:.0f} s) by {st['ended_s']} s" if st["ended_s"] else st["state"])
        + f"; its socket took {st['bytes_out'] or 0:,} bytes "
        f"(kernel buffers); tcp_core's queue for it: at most {st['queued_max'] or 0:,} B "
        f"(bound {res['bounds']['stalled_queue']:,} B: low water + one part)"
    )
    growth = (res["heap_during_max"] or 0) - res["heap_before"]
    out.append(
        f"tcp_core heap: before the viewers {res['heap_before']:,} B (the 4 padded frames are "
        f"{4 * res['frame_bytes']:,} B of it); while streaming at most {res['heap_during_max']:,} B "
        f"(+{growth:,} B, bound +{res['bounds']['heap_growth']:,} B), at the end {res['heap_during_last']:,} B; "
        f"after the viewers left {res.get('heap_after', 0):,} B; after stop {res['heap_left_after_stop']} B left"
    )
    out.append(
        f"server CPU: {res['server_cpu_cores']:.3f} cores in the window ({res['server_cpu_s']:.2f} CPU-s for "
        f"{res['window_s']:.1f} s; {res['server_cpu_total_s']:.2f} CPU-s over its life, of which "
        f"{res['server_cpu_startup_s']:.2f} starting Python); this script {res['bench_cpu_cores']:.2f} cores; "
        f"other jobs {res['other_cores']:.2f} cores"
    )
    out.append(
        "each second, heap / queue for the viewer that never reads: "
        + ", ".join(f"{s['t_s']:.1f}s {s['heap']:,}/{s['stalled_queued'] or 0:,}" for s in res["samples"])
    )
    if res["problems"]:
        out += ["", "PROBLEMS:", *[f"  {p}" for p in res["problems"]]]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=10.0, help="seconds counted (10)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds before counting (1)")
    p.add_argument("--fps", type=int, default=30, help="frames per second asked of the server (30)")
    p.add_argument("--frame-bytes", type=int, default=51200, help="bytes per JPEG frame (51200)")
    p.add_argument("--viewers", type=int, default=4, help="viewers that read (4); one more never reads")
    p.add_argument("--stalled-rcvbuf", type=int, default=0, help="SO_RCVBUF of the viewer that never reads (kernel's)")
    p.add_argument("--http10", action="store_true", help="HTTP/1.0 viewers (close-delimited, not chunked)")
    p.add_argument("--quick", action="store_true", help="3 s after a 0.5 s warm-up")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument("--no-pin", action="store_true", help="no taskset")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 3.0, 0.5
    if args.duration <= 0 or args.warmup < 0 or not 1 <= args.fps <= 1000 or not 1 <= args.viewers <= 12:
        p.error("--duration > 0, --warmup >= 0, --fps 1..1000, --viewers 1..12")
    try:
        res = run(args)
    except (BenchError, OSError) as exc:
        log(f"mjpeg_bench: FAILED: {exc}")
        return 1
    print(json.dumps(res, indent=1) if args.json else report(res), flush=True)
    return 1 if res["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
