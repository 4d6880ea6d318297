"""Thin typed classes over the C core: Loop, Server, Client, Connection, the registry and allocation statistics.

A Loop runs the C event loop on its own thread. Every other call is carried to that thread (``Loop.call``), so the
classes may be used from any thread. C handlers (the echo service) run entirely in C; a Python ``Handler`` is
optional and its methods run on the loop thread, where they must not block.

    with Loop() as loop, Server(loop, "127.0.0.1", 0) as server:     # C echo handler
        print(server.port)
    # leaving the block stopped the server (server.stop() gives its report), then closed the loop
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from ._native import Native, load
from .errors import BadAddressError, BadNameError, BadPortError, TcError

T = TypeVar("T")

ClosePolicy = Literal["graceful", "peer_first", "abort"]
FullPolicy = Literal["evict", "refuse", "evict-idle"]


def _policy(native: Native, policy: ClosePolicy) -> int:
    values = {
        "graceful": native.lib.TC_CLOSE_GRACEFUL,
        "peer_first": native.lib.TC_CLOSE_PEER_FIRST,
        "abort": native.lib.TC_CLOSE_ABORT,
    }
    if policy not in values:
        raise ValueError(f"close policy must be one of {', '.join(values)}, not {policy!r}")
    return int(values[policy])


def _addr_text(native: Native, addr: Any) -> str:
    if addr == native.ffi.NULL or addr.family == 0:
        return ""
    buf = native.ffi.new("char[]", native.lib.TC_ADDR_STRLEN)
    native.check(native.lib.tc_addr_format(addr, 1, buf, len(buf)), "tc_addr_format")
    return str(native.ffi.string(buf).decode())


def _port_problem(text: str, default_port: int) -> str:
    """What is wrong with the port of "host:port" text that the C parser refused with TC_EBADPORT, and what to do."""
    if text.startswith("["):
        after = text.partition("]")[2]
        part = after[1:] if after.startswith(":") else None
    elif text.count(":") == 1:
        part = text.partition(":")[2]
    else:
        part = None
    if part is None:
        return f"{text!r} has no port and no default port was given: write HOST:PORT, e.g. {text}:8080"
    if part == "":
        return f"{text!r} ends with ':' but no port follows: write the port after it, e.g. {text}8080"
    if not part.isdigit():
        return f"{part!r} in {text!r} is not a port number: a port is a number from 1 to 65535, e.g. host:8080"
    if int(part) == 0:
        return (
            f"port 0 in {text!r} is not a destination port (a URI built from an unset port variable?): "
            "give the server's real port"
        )
    return f"port {int(part)} in {text!r} is out of range: a port is a number from 1 to 65535"


def split_host_port(text: str, default_port: int = 0, backend: str = "linux") -> tuple[str, int]:
    """Split "host:port", "[v6]:port" or "host" (then default_port) with the C core's own parser.

    Raises BadPortError (a ValueError) that says what is wrong with the port: missing, not a number, out of range,
    or zero (the seed's ``http://host:0`` bug); BadAddressError for malformed text such as "[::1" or ":80".
    """
    if not isinstance(text, str):
        raise TypeError(f"split_host_port() needs text like 'host:8080', not {type(text).__name__} {text!r}")
    native = load(backend)
    host = native.ffi.new("char[]", 256)
    port = native.ffi.new("uint16_t *")
    rc = native.lib.tc_addr_split(text.encode(), default_port, host, 256, port)
    name = native.ffi.string(native.lib.tc_err_name(rc)).decode() if rc < 0 else ""
    if name == "BADPORT":
        raise BadPortError(rc, "BADPORT", _port_problem(text, default_port))
    if name == "BADADDR":
        raise BadAddressError(
            rc,
            "BADADDR",
            f"{text!r} is not HOST:PORT: write a name or address, a colon and the port (IPv6 in brackets: [::1]:8080)",
        )
    native.check(rc, f"address {text!r}")
    return native.ffi.string(host).decode(), int(port[0])


def _check_port(port: object, what: str) -> int:
    """The port as an int, or a TypeError/ValueError that says what was wrong and what to pass instead."""
    if isinstance(port, bool) or not isinstance(port, int):
        hint = f" (use int({port!r}))" if isinstance(port, str) and port.isdigit() else ""
        raise TypeError(f"{what}: port must be an int from 0 to 65535, not {type(port).__name__} {port!r}{hint}")
    if not 0 <= port <= 65535:
        raise ValueError(f"{what}: port {port} is out of range: a port is a number from 0 to 65535")
    return port


def _set_int(native: Native, struct: Any, key: str, value: int) -> None:
    """struct.key = value, or InvalidArgumentError (a ValueError) naming the field when its C type cannot hold it
    (cffi raises a bare OverflowError for a negative count or a deadline past 2^32)."""
    try:
        setattr(struct, key, int(value))
    except OverflowError:
        raise native.error("INVAL", f"{key} {value} is out of range for its C field") from None


def _check_host(host: object, what: str) -> str:
    if not isinstance(host, str):
        raise TypeError(f"{what}: host must be a str such as '127.0.0.1', not {type(host).__name__} {host!r}")
    return host


def _name_problem(host: str) -> str:
    """What makes host unusable as a client's destination name (the C core's TC_EBADNAME, RFC 1035 2.3.4)."""
    if not host:
        return "the host is empty: give a name or a numeric address, e.g. 'device.local' or '192.0.2.10'"
    text = host[:-1] if host.endswith(".") else host
    size = len(text.encode())
    if size > 253:
        return f"the host name is {size} bytes long ({host[:20]!r}...): a DNS name has at most 253"
    for label in text.split("."):
        if not label:
            return f"{host!r} has an empty label ('..' or a leading dot): labels are separated by single dots"
        size = len(label.encode())
        if size > 63:
            return f"the label {label[:20]!r}... of the host name is {size} bytes: a label has at most 63"
    return f"{host!r} is not a host name"


def _is_numeric(host: str) -> bool:
    """Whether host is a numeric IPv4 or IPv6 address (with an optional %scope)."""
    try:
        ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    return True


def _numeric_address_hint(host: str) -> str:
    """Why a server cannot listen on host, when host is a name rather than a numeric address."""
    return (
        f"{host!r} is not a numeric address: a server listens on a numeric IPv4 or IPv6 address of this host "
        "(127.0.0.1, 0.0.0.0 for every interface, ::1, ::); names are not resolved here "
        "(socket.getaddrinfo() gives the address of a name)"
    )


@dataclass(frozen=True)
class AllocStats:
    """The C core's heap use through its allocation hook (tc_alloc_stats_t)."""

    bytes_in_use: int
    bytes_peak: int
    blocks_in_use: int
    allocs: int
    failures: int


def alloc_stats(backend: str = "linux") -> AllocStats:
    """Heap statistics of one backend's copy of the core (each extension module has its own)."""
    native = load(backend)
    st = native.ffi.new("tc_alloc_stats_t *")
    native.lib.tc_alloc_stats(st)
    return AllocStats(st.bytes_in_use, st.bytes_peak, st.blocks_in_use, st.allocs, st.failures)


@dataclass(frozen=True)
class ResolverStats:
    """Name resolution counters of the process (tc_resolver_stats_t): questions over UDP through the loop, and
    names handed to the system resolver on the one fallback worker thread."""

    udp_queries: int
    udp_answers: int
    fallbacks: int
    threads_started: int
    worker_running: bool


def resolver_stats(backend: str = "linux") -> ResolverStats:
    """How names were resolved so far in one backend's copy of the core."""
    native = load(backend)
    st = native.ffi.new("tc_resolver_stats_t *")
    native.lib.tc_resolver_stats(st)
    return ResolverStats(st.udp_queries, st.udp_answers, st.fallbacks, st.threads_started, bool(st.worker_running))


def time_wait_count(local_port: int = 0, backend: str = "linux") -> int:
    """TCP connections in TIME-WAIT on local_port (0: all) in the backend's stack (Linux: this network namespace)."""
    native = load(backend)
    return native.check(native.lib.tc_sock_time_wait_count(local_port), "time_wait_count")


@dataclass(frozen=True)
class CloseStats:
    """How a loop's TCP connections ended (tc_close_stats_t): FIN first from this side, from the peer, RSTs sent and
    received, and of this side's FIN-first closes the TIME-WAIT pcbs freed (lwIP) or left to the stack."""

    fin_first: int
    peer_first: int
    reset_sent: int
    reset_received: int
    time_wait_reaped: int
    time_wait_kept: int


def reset_alloc_peak(backend: str = "linux") -> None:
    """Start a new peak measurement (AllocStats.bytes_peak) from the bytes in use now."""
    load(backend).lib.tc_alloc_reset_peak()


def set_alloc_limit(max_bytes: int, backend: str = "linux") -> None:
    """Refuse allocations past max_bytes in use (0 = unlimited): a device-sized heap on the host."""
    load(backend).lib.tc_alloc_set_limit(max_bytes)


@dataclass(frozen=True)
class StopReport:
    """What a stop did (tc_stop_report_t): connections closed gracefully, forced at the deadline, time taken, and
    the exact tcp_core heap released on the object's loop during the stop."""

    graceful: int
    forced: int
    elapsed_ms: int
    bytes_freed: int

    @classmethod
    def _from_c(cls, r: Any) -> StopReport:
        return cls(int(r.graceful), int(r.forced), int(r.elapsed_ms), int(r.bytes_freed))


def _stop_sooner(loop: Loop, handle: Callable[[], Any], deadline_ms: int, lock: threading.Lock) -> None:
    """Another thread's stop of this object runs, perhaps with a longer deadline (an ota-prepare's, when Ctrl-C
    comes): bring it forward to this one (tc_handle_stop_sooner()), so the wait for it ends by this deadline too."""
    if not lock.locked() or loop.in_loop_thread() or not 0 <= deadline_ms <= 0xFFFFFFFF:
        return  # no stop to hasten, or the errors are _stop_handle()'s to raise
    lib = loop.native.lib

    def sooner() -> None:  # on the loop thread: handle() raises ClosedError once the stop has finished
        lib.tc_handle_stop_sooner(handle(), deadline_ms)  # TC_EINVAL: not stopping yet, nothing to hasten

    try:
        loop.call(sooner)
    except TcError:
        pass  # finished meanwhile, or the loop is closing: the stop running is the one to wait for


def _stop_handle(loop: Loop, handle: Callable[[], Any], deadline_ms: int, user: Any, done: threading.Event) -> None:
    """The one stop of every C object (tc_handle_stop()): request it on the loop thread, wait for its callback."""
    native = loop.native
    lib = native.lib
    if not 0 <= deadline_ms <= 0xFFFFFFFF:
        raise native.error("INVAL", f"deadline_ms {deadline_ms} is out of range (0 .. 2^32 - 1)")
    if loop.in_loop_thread():
        # The wait below needs the loop thread, which is this one: it would block every connection of the loop.
        raise native.error("BUSY", "stop() waits for the loop: call it from outside the loop's callbacks")
    loop.call(lambda: native.check(lib.tc_handle_stop(handle(), deadline_ms, lib.tcpy_stop_cb, user), "stop"))
    if not done.wait(deadline_ms / 1000 + 10):
        raise TimeoutError("the stop did not complete")


@dataclass(frozen=True)
class SockInfo:
    """One tracked socket (tc_sock_info_t).

    role: what it is for now ("tcp", "listener", "client", "echo", "http", "ws", "sse", "stream", "dns",
    "external"); long_lived tells the sessions (WebSocket, SSE, stream) that live by their own liveness checks.
    """

    id: int
    fd: int
    kind: str
    state: str
    flags: frozenset[str]
    owner: str
    local: str
    peer: str
    age_ms: int
    idle_ms: int
    bytes_in: int
    bytes_out: int
    queued: int
    role: str = "tcp"
    long_lived: bool = False


@dataclass(frozen=True)
class ClientStats:
    """A reconnecting client's counters (tc_client_stats_t)."""

    attempts: int
    connects: int
    failures: int
    last_error: int
    last_delay_ms: int
    connected: bool


class _Job:
    """A function posted to the loop thread and its result."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.handle: Any = None

    def run(self) -> None:
        try:
            self.value = self.fn()
        except BaseException as exc:  # carried to the calling thread
            self.error = exc
        finally:
            self.handle = None
            self.done.set()


_lwip_running: str | None = None  # what the process's one lwIP stack was brought up with, for BusyError's message


def _set_lwip_running(want: str) -> None:
    global _lwip_running
    if _lwip_running is None:
        _lwip_running = want


class Loop:
    """A tcp_core event loop running on its own thread.

    backend: "linux" (kernel sockets) or "lwip" (lwIP over a TAP device; tap and address "A.B.C.D/NN" required,
    once per process since lwIP is process-wide: further lwIP Loops must give the same tap, address and gateway, any
    other raises BusyError).
    """

    def __init__(
        self,
        backend: str = "linux",
        *,
        tap: str | None = None,
        address: str | None = None,
        gateway: str | None = None,
    ) -> None:
        self._native = load(backend)
        self.backend = backend
        ffi, lib = self._native.ffi, self._native.lib
        self._keep: list[Any] = []
        if backend == "lwip":
            if not tap or not address:
                raise ValueError("the lwip backend needs tap=NAME and address=A.B.C.D/NN (see tools/lwip_netns.sh)")
            ip, _, prefix = address.partition("/")
            env = ffi.new("tc_sock_env_t *")
            tap_c = ffi.new("char[]", tap.encode())
            self._keep.append(tap_c)
            env.tap_name = tap_c
            self._native.check(lib.tc_addr_from_ip(ip.encode(), 0, ffi.addressof(env, "address")), "address")
            env.prefix_len = int(prefix or "24")
            if gateway:
                self._native.check(lib.tc_addr_from_ip(gateway.encode(), 0, ffi.addressof(env, "gateway")), "gateway")
            want = f"address {ip}/{env.prefix_len} on {tap}" + (f" (gateway {gateway})" if gateway else "")
            rc = lib.tc_sock_global_init(env)
            if rc == lib.TC_EBUSY:
                raise self._native.error(
                    "BUSY",
                    f"lwIP runs once per process and is up with {_lwip_running or 'another configuration'}: "
                    f"a Loop with {want} needs a process of its own (or the same tap and address)",
                )
            self._native.check(rc, f"lwIP on {tap}")
            _set_lwip_running(want)
        elif tap or address:
            raise ValueError("tap and address apply to the lwip backend only")
        else:
            self._native.check(lib.tc_sock_global_init(ffi.NULL), "backend init")
        out = ffi.new("tc_loop_t **")
        self._native.check(lib.tc_loop_new(out), "tc_loop_new")
        self._ptr: Any = out[0]
        self._owned: set[Any] = set()  # servers, clients, apps: whatever close() must stop
        self._jobs: set[_Job] = set()
        self._rc = 0
        self._closed = False
        self._closing = False  # the loop thread is stopping: no new posts (they would never run)
        self._post_lock = threading.Lock()  # a post and close()'s end are never interleaved
        self._thread = threading.Thread(target=self._run, name=f"tcp_core-loop-{backend}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self._rc = self._native.lib.tc_loop_run(self._ptr)  # cffi releases the GIL for the call

    @property
    def native(self) -> Native:
        """The extension module (ffi, lib) of this loop's backend."""
        return self._native

    @property
    def ptr(self) -> Any:
        """The tc_loop_t * (for extension code)."""
        if self._closed:
            raise self._native.error("CLOSED", "loop is closed")
        return self._ptr

    def in_loop_thread(self) -> bool:
        """True when called from the loop's own thread (a handler)."""
        return threading.current_thread() is self._thread

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        """Run fn on the loop thread and return its result (or raise its exception). Any thread."""
        if self.in_loop_thread():
            return fn()
        job = _Job(fn)
        job.handle = self._native.ffi.new_handle(job)
        self._post(job)
        try:
            if not job.done.wait(timeout):
                raise TimeoutError(f"the loop thread did not run the call within {timeout} s")
        finally:
            if job.done.is_set():
                with self._post_lock:
                    self._jobs.discard(job)
        if job.error is not None:
            raise job.error
        return job.value  # type: ignore[no-any-return]

    def post(self, fn: Callable[[], None]) -> None:
        """Run fn on the loop thread soon, without waiting. Any thread."""
        job = _Job(fn)
        job.handle = self._native.ffi.new_handle(job)
        self._post(job)
        with self._post_lock:
            self._jobs = {j for j in self._jobs if not j.done.is_set()}

    def _post(self, job: _Job) -> None:
        with self._post_lock:
            if self._closing or self._closed:
                raise self._native.error("CLOSED", "loop is closed")
            self._jobs.add(job)
            self._native.check(self._native.lib.tc_loop_post(self._ptr, self._native.lib.tcpy_post_cb, job.handle))

    def close_stats(self) -> CloseStats:
        """How this loop's connections ended so far (tc_registry_close_stats())."""
        ffi, lib = self._native.ffi, self._native.lib
        st = ffi.new("tc_close_stats_t *")
        self.call(lambda: lib.tc_registry_close_stats(self._ptr, st))
        return CloseStats(
            st.fin_first, st.peer_first, st.reset_sent, st.reset_received, st.time_wait_reaped, st.time_wait_kept
        )

    def registry(self) -> list[SockInfo]:
        """A snapshot of every tracked socket of this loop, oldest first."""
        ffi, lib = self._native.ffi, self._native.lib

        def snap() -> list[SockInfo]:
            n = lib.tc_registry_count(self._ptr)
            arr = ffi.new("tc_sock_info_t[]", max(n, 1))
            got = lib.tc_registry_snapshot(self._ptr, arr, n)
            out = []
            for i in range(got):
                e = arr[i]
                flags = set()
                if e.flags & lib.TC_REG_FLAG_STREAMING:
                    flags.add("streaming")
                if e.flags & lib.TC_REG_FLAG_PAUSED:
                    flags.add("paused")
                out.append(
                    SockInfo(
                        e.id,
                        e.fd,
                        self._native.text(lib.tc_kind_name(e.kind)),
                        self._native.text(lib.tc_state_name(e.state)),
                        frozenset(flags),
                        self._native.text(e.owner),
                        _addr_text(self._native, ffi.addressof(e, "local")),
                        _addr_text(self._native, ffi.addressof(e, "peer")),
                        e.age_ms,
                        e.idle_ms,
                        e.bytes_in,
                        e.bytes_out,
                        e.queued,
                        self._native.text(lib.tc_role_name(e.role)),
                        bool(lib.tc_role_is_long_lived(e.role)),
                    )
                )
            return out

        return self.call(snap)

    def close(self, deadline_ms: int = 1000) -> None:
        """Stop every server and client still open (with deadline_ms), stop the loop thread and free the loop. Calls
        from other threads that the loop had not run yet raise ClosedError; inside a handler callback, BusyError."""
        if self._closed:
            return
        if self.in_loop_thread():
            raise self._native.error("BUSY", "close() waits for the loop: call it from outside the loop's callbacks")
        for obj in list(self._owned):
            try:
                obj.stop(deadline_ms)
            except TcError:
                pass
        with self._post_lock:
            self._closing = True
        self._native.lib.tc_loop_stop(self._ptr)
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            raise TimeoutError("the loop thread did not stop")
        with self._post_lock:
            # Calls posted before the close that the stopped loop never ran: their callers get ClosedError now, not
            # a TimeoutError after their wait (tc_loop_free() drops the posts without running them).
            for job in self._jobs:
                if not job.done.is_set():
                    job.error = self._native.error("CLOSED", "loop closed before it ran the call")
                    job.done.set()
            self._jobs.clear()
            self._closed = True
        self._native.check(self._native.lib.tc_loop_free(self._ptr), "tc_loop_free")
        self._ptr = None

    def __enter__(self) -> Loop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Handler:
    """Base class for Python connection handlers; override what you need. Runs on the loop thread: never block."""

    def on_open(self, conn: Connection) -> None:
        """The connection is established."""

    def on_data(self, conn: Connection, data: bytes) -> None:
        """Bytes arrived."""

    def on_drained(self, conn: Connection, queued: int) -> None:
        """The write queue fell to the low-water mark."""

    def on_shutdown(self, conn: Connection, ms_left: int) -> None:
        """The server is stopping; close the connection or let the deadline do it."""

    def on_close(self, conn: Connection, reason: str) -> None:
        """The connection is gone (last event, once)."""


class EchoHandler(Handler):
    """Echo in Python (the C echo handler, handler="echo", is the fast path)."""

    def on_data(self, conn: Connection, data: bytes) -> None:
        conn.send(data)


@dataclass(eq=False)
class Connection:
    """A live connection handed to a Handler; valid until its on_close."""

    _owner: _Endpoint
    _ptr: Any
    id: int
    peer: str
    user: dict[str, Any] = field(default_factory=dict)

    @property
    def closed(self) -> bool:
        """True after on_close."""
        return self._ptr is None

    def _live(self) -> Any:
        if self._ptr is None:
            raise self._owner.loop.native.error("CLOSED", f"connection {self.id} is closed")
        return self._ptr

    def send(self, data: bytes) -> None:
        """Queue data for sending (copied). Raises LimitError when bytes already wait and queue_max would be
        exceeded (a write into an empty queue is taken whatever its size), ClosedError once closing."""
        native = self._owner.loop.native

        def go() -> None:
            native.check(native.lib.tc_conn_send(self._live(), data, len(data)), "send")

        self._owner.loop.call(go)

    def close(self, policy: ClosePolicy | None = None) -> None:
        """Ask for a close (the server's policy by default); on_close follows."""
        native = self._owner.loop.native

        def go() -> None:
            if policy is None:
                native.check(native.lib.tc_conn_close_default(self._live()), "close")
            else:
                native.check(native.lib.tc_conn_close(self._live(), _policy(native, policy)), "close")

        self._owner.loop.call(go)

    def set_reading(self, on: bool) -> None:
        """Pause (False) or resume (True) reading: application-level backpressure."""
        native = self._owner.loop.native
        self._owner.loop.call(lambda: native.lib.tc_conn_set_reading(self._live(), 1 if on else 0))

    @property
    def queued(self) -> int:
        """Bytes waiting in the write queue."""
        native = self._owner.loop.native
        return int(self._owner.loop.call(lambda: native.lib.tc_conn_queued(self._live())))

    def set_role(self, role: str) -> None:
        """Set the registry role ("tcp", "http", "ws", "sse", "stream", ...): long-lived roles ("ws", "sse",
        "stream") are exempt from the server's idle timeout (the handler keeps them alive or closes them)."""
        native = self._owner.loop.native
        lib = native.lib
        names = {name: r for r, name in native.names(lib.tc_role_name, lib.TC_ROLE_COUNT).items()}
        if role not in names:
            raise ValueError(f"role must be one of {', '.join(names)}, not {role!r}")
        self._owner.loop.call(lambda: lib.tc_conn_set_role(self._live(), names[role]))


def _conn_config(native: Native, c: Any, opts: dict[str, Any]) -> None:
    for key in ("high_water", "low_water", "queue_max", "idle_timeout_ms", "linger_ms", "keepalive_s"):
        if opts.get(key) is not None:
            _set_int(native, c, key, opts[key])
    if opts.get("nodelay") is not None:
        c.nodelay = bool(opts["nodelay"])
    if opts.get("keep_time_wait") is not None:
        c.keep_time_wait = bool(opts["keep_time_wait"])
    if opts.get("close_policy") is not None:
        c.close_policy = _policy(native, opts["close_policy"])


_S = TypeVar("_S", bound="Stoppable[Any]")
_R = TypeVar("_R")


class Stoppable(Generic[_R]):
    """A handle with ``stop(deadline_ms)``; ``with`` stops it on leaving the block (also on an exception), with
    the default deadline. Stopping twice is harmless: the second stop returns the first one's report, also when
    two threads stop it at once (the second waits for the first: ``_stop_lock``)."""

    loop: Loop
    _handle: Any  # the cffi handle of self that the C stop callback carries
    _stop_lock: threading.Lock
    _report: _R | None  # set by the stop callback, on the loop thread

    def stop(self, deadline_ms: int = 1000) -> _R:
        raise NotImplementedError

    def _stop_once(self, handle: Callable[[], Any], deadline_ms: int, done: threading.Event) -> _R:
        """The stop of every subclass: hasten another thread's stop in progress, then, under the lock, stop unless a
        stop has already reported, and return the report. handle() gives the C handle on the loop thread."""
        _stop_sooner(self.loop, handle, deadline_ms, self._stop_lock)
        with self._stop_lock:
            if self._report is None:
                _stop_handle(self.loop, handle, deadline_ms, self._handle, done)
            assert self._report is not None
            return self._report

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Endpoint(Stoppable[StopReport]):
    """What Server and Client share: the loop, the handler and the Connection objects of live connections."""

    def __init__(self, loop: Loop, handler: Handler | Literal["echo"], name: str) -> None:
        self.loop = loop
        self.handler = handler
        self.name = name
        self._name_c = loop.native.ffi.new("char[]", name.encode())
        self._conns: dict[int, Connection] = {}
        self._handle = loop.native.ffi.new_handle(self)
        self._stop_done = threading.Event()
        self._stop_lock = threading.Lock()
        self._report: StopReport | None = None

    def _callback(self) -> tuple[Any, Any]:
        lib, ffi = self.loop.native.lib, self.loop.native.ffi
        if self.handler == "echo":
            return lib.tcpy_echo_cb(), ffi.NULL
        if not isinstance(self.handler, Handler):
            raise TypeError("handler must be 'echo' or a tcp_core.Handler")
        return lib.tcpy_conn_cb, self._handle

    def _event(self, conn: Any, ev: int, data: Any, length: int) -> None:
        native = self.loop.native
        lib, ffi = native.lib, native.ffi
        assert isinstance(self.handler, Handler)
        cid = int(lib.tc_conn_id(conn))
        c = self._conns.get(cid)
        if c is None:
            c = Connection(self, conn, cid, _addr_text(native, lib.tc_conn_peer(conn)))
            self._conns[cid] = c
        if ev == lib.TC_EV_OPEN:
            self.handler.on_open(c)
        elif ev == lib.TC_EV_DATA:
            self.handler.on_data(c, bytes(ffi.buffer(data, length)))
        elif ev == lib.TC_EV_DRAINED:
            self.handler.on_drained(c, int(length))
        elif ev == lib.TC_EV_SHUTDOWN:
            self.handler.on_shutdown(c, int(length))
        elif ev == lib.TC_EV_CLOSE:
            del self._conns[cid]
            c._ptr = None
            self.handler.on_close(c, native.text(lib.tc_close_reason_name(length)))


class Server(_Endpoint):
    """A TCP server on a Loop. handler="echo" runs the C echo handler without Python in the data path.

    Args:
        loop: the Loop the server runs on.
        host: the numeric address to listen on: "127.0.0.1", "0.0.0.0" (every IPv4 interface), "::1", "::".
            A name such as "localhost" raises BadAddressError (names are not resolved for listening).
        port: the port to listen on, 0 for any free port (``Server.port`` tells which).
        handler: "echo" (the C echo handler) or a ``Handler`` whose methods run on the loop thread.
        name: the label of the server's sockets in the registry (``Loop.registry()``, /api/status).
        max_conns: open connections at most (default 1024 on the host, Kconfig on the device).
        when_full: what a new connection gets at max_conns: "evict" (default: the least recently active
            connection is aborted to make room, as esp_http_server's LRU purge), "refuse" (the new one is reset) or
            "evict-idle" (only connections that are neither long-lived by role (``Connection.set_role``: ws, sse,
            stream) nor busy are evicted; the newcomer is reset when none is left).
        backlog: the listen backlog (default 128).
        v6only: for "::", refuse IPv4-mapped peers (default False: IPv4 and IPv6 on one socket).
        idle_timeout_ms: close a connection after this long without traffic (default 0: never); under the
            peer-first policy that close is an RST, so no TIME-WAIT is left on this side.
        close_policy: how closes that this side starts (idle, stop, ``Connection.close()``) happen: "graceful"
            (default: flush, FIN at once, drain until the peer's FIN, then free our TIME-WAIT; RST only at the
            linger_ms deadline), "peer_first" (flush, wait up to linger_ms for the peer's FIN before any FIN of
            ours, RST at that deadline) or "abort" (RST now, queue dropped).
        linger_ms: how long a graceful or peer-first close may flush and wait for the peer (default 2000).
        high_water: stop reading a connection whose output queue holds more than this many bytes (default 64 KiB).
        low_water: resume reading, and call ``Handler.on_drained()``, at or below this many bytes (default 16 KiB).
        queue_max: ``Connection.send()`` raises LimitError past this many queued bytes, once bytes wait (default 1 MiB).
        nodelay: TCP_NODELAY (default True: small writes leave at once instead of waiting for an ACK).
        keepalive_s: TCP keepalive idle time in seconds (default 0: off).
    """

    def __init__(
        self,
        loop: Loop,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        handler: Handler | Literal["echo"] = "echo",
        name: str = "tcp",
        max_conns: int | None = None,
        when_full: FullPolicy = "evict",
        backlog: int | None = None,
        v6only: bool = False,
        idle_timeout_ms: int | None = None,
        close_policy: ClosePolicy | None = None,
        linger_ms: int | None = None,
        high_water: int | None = None,
        low_water: int | None = None,
        queue_max: int | None = None,
        nodelay: bool | None = None,
        keepalive_s: int | None = None,
        keep_time_wait: bool | None = None,
    ) -> None:
        _check_host(host, "Server")
        _check_port(port, "Server")
        super().__init__(loop, handler, name)
        native = loop.native
        ffi, lib = native.ffi, native.lib
        policies = {"evict": lib.TC_FULL_EVICT_LRU, "refuse": lib.TC_FULL_REFUSE, "evict-idle": lib.TC_FULL_EVICT_IDLE}
        if when_full not in policies:
            raise ValueError(f"when_full must be one of {', '.join(policies)}, not {when_full!r}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port {port} is out of range")
        cfg = ffi.new("tc_server_config_t *")
        lib.tcpy_server_defaults(cfg)
        host_c = ffi.new("char[]", host.encode())
        cfg.host = host_c
        cfg.port = port
        cfg.v6only = v6only
        cfg.name = self._name_c
        if max_conns is not None:
            _set_int(native, cfg, "max_conns", max_conns)
        if backlog is not None:
            _set_int(native, cfg, "backlog", backlog)
        cfg.when_full = policies[when_full]
        _conn_config(native, cfg.conn, locals())
        cfg.cb, cfg.user = self._callback()
        out = ffi.new("tc_server_t **")
        try:
            loop.call(lambda: native.check(lib.tc_server_start(loop.ptr, cfg, out), f"listen on {host}:{port}"))
        except BadAddressError as exc:
            raise BadAddressError(exc.code, exc.name, _numeric_address_hint(host), f"listen on {host}:{port}") from None
        self._ptr: Any = out[0]
        self.host = host
        self.port = int(lib.tc_server_port(self._ptr))
        loop._owned.add(self)

    @property
    def conn_count(self) -> int:
        """Open connections now."""
        native = self.loop.native
        return int(self.loop.call(lambda: native.lib.tc_server_conn_count(self._live())))

    def _live(self) -> Any:
        if self._ptr is None:
            raise self.loop.native.error("CLOSED", "server is stopped")
        return self._ptr

    def _stopped(self, report: Any) -> None:
        self._report = StopReport._from_c(report)
        self._ptr = None
        self.loop._owned.discard(self)
        self._stop_done.set()

    def stop(self, deadline_ms: int = 1000) -> StopReport:
        """Stop accepting, ask every connection to close, force the rest at the deadline; return what happened.
        It waits for the loop: inside a handler callback it raises BusyError. While another thread's stop runs, this
        one waits for it and brings its deadline forward to this one's."""
        lib = self.loop.native.lib
        return self._stop_once(lambda: lib.tc_server_handle(self._live()), deadline_ms, self._stop_done)


class Client(_Endpoint):
    """A TCP client that connects (names resolved through the loop), and reconnects with backoff and jitter.

    Args:
        loop: the Loop the client runs on.
        host: a name or numeric address; a name is asked of a nameserver over UDP through the loop at each attempt.
        port: the destination port, 1..65535; 0 raises BadPortError (a URI without an explicit port).
        handler: "echo" (the C echo handler) or a ``Handler`` whose methods run on the loop thread.
        name: the label of the client's socket in the registry.
        reconnect: connect again after a close or a failed attempt (default True).
        connect_timeout_ms: the time one connection attempt may take (default 5000).
        backoff_initial_ms: the first delay before reconnecting (default 100); it doubles after each failure.
        backoff_max_ms: the longest delay between attempts (default 10000).
        jitter_pct: each delay is shortened by a random 0..jitter_pct percent (default 20), so that many clients
            do not reconnect in step.
        max_attempts: consecutive failed attempts before giving up (default 0: never give up).
        stable_ms: a session that the peer closes or resets sooner than this after it opened counts as a failed
            attempt (default 5000): a server that accepts and drops at once meets a growing delay, and
            max_attempts counts it. 0: every session that opened starts the backoff over.
        idle_timeout_ms: close a connection after this long without traffic (default 0: never); under the
            peer-first policy that close is an RST, so no TIME-WAIT is left on this side.
        close_policy: how closes that this side starts (idle, stop, ``Connection.close()``) happen: "graceful"
            (default: flush, FIN at once, drain until the peer's FIN, then free our TIME-WAIT; RST only at the
            linger_ms deadline), "peer_first" (flush, wait up to linger_ms for the peer's FIN before any FIN of
            ours, RST at that deadline) or "abort" (RST now, queue dropped).
        linger_ms: how long a graceful or peer-first close may flush and wait for the peer (default 2000).
        high_water: stop reading a connection whose output queue holds more than this many bytes (default 64 KiB).
        low_water: resume reading, and call ``Handler.on_drained()``, at or below this many bytes (default 16 KiB).
        queue_max: ``Connection.send()`` raises LimitError past this many queued bytes, once bytes wait (default 1 MiB).
        nodelay: TCP_NODELAY (default True: small writes leave at once instead of waiting for an ACK).
        keepalive_s: TCP keepalive idle time in seconds (default 60; 0: off): a peer gone without a FIN is found
            and the client reconnects, even when it sends nothing of its own.
        nameserver: the DNS server that resolves a name, "192.0.2.53" or ("127.0.0.1", 5353); it is asked over
            UDP through the loop (no thread), and only it. None (default): the system's first nameserver, with the
            system resolver as a fallback on one worker thread for names only it knows (/etc/hosts). A failed
            resolution is a failed attempt: stats().last_error is NOTFOUND (NXDOMAIN), TIMEDOUT or RESOLVE
            (server failure, or nothing listens on the nameserver's port: at once on Linux, a timeout on lwIP).
    """

    def __init__(
        self,
        loop: Loop,
        host: str,
        port: int,
        *,
        handler: Handler | Literal["echo"] = "echo",
        name: str = "client",
        reconnect: bool = True,
        connect_timeout_ms: int | None = None,
        backoff_initial_ms: int | None = None,
        backoff_max_ms: int | None = None,
        jitter_pct: int | None = None,
        max_attempts: int | None = None,
        stable_ms: int | None = None,
        idle_timeout_ms: int | None = None,
        close_policy: ClosePolicy | None = None,
        linger_ms: int | None = None,
        high_water: int | None = None,
        low_water: int | None = None,
        queue_max: int | None = None,
        nodelay: bool | None = None,
        keepalive_s: int | None = None,
        keep_time_wait: bool | None = None,
        nameserver: str | tuple[str, int] | None = None,
    ) -> None:
        _check_host(host, "Client")
        _check_port(port, "Client")  # 0 is the C core's to refuse, with its BadPortError
        super().__init__(loop, handler, name)
        native = loop.native
        ffi, lib = native.ffi, native.lib
        cfg = ffi.new("tc_client_config_t *")
        lib.tcpy_client_defaults(cfg)
        host_c = ffi.new("char[]", host.encode())
        cfg.host = host_c
        cfg.port = port
        cfg.reconnect = reconnect
        cfg.name = self._name_c
        if nameserver is not None:
            ns_host, ns_port = (nameserver, 53) if isinstance(nameserver, str) else nameserver
            if not _is_numeric(ns_host):
                raise BadAddressError(-5, "BADADDR", f"nameserver {ns_host!r} must be a numeric address")
            _check_port(ns_port, "nameserver")
            self._ns_c = ffi.new("char[]", ns_host.encode())
            cfg.nameserver = self._ns_c
            cfg.nameserver_port = ns_port
        keys = ("connect_timeout_ms", "backoff_initial_ms", "backoff_max_ms", "jitter_pct", "max_attempts", "stable_ms")
        for key in keys:
            if locals()[key] is not None:
                _set_int(native, cfg, key, locals()[key])
        _conn_config(native, cfg.conn, locals())
        cfg.cb, cfg.user = self._callback()
        out = ffi.new("tc_client_t **")
        try:
            loop.call(lambda: native.check(lib.tc_client_start(loop.ptr, cfg, out), f"client to {host}:{port}"))
        except BadNameError as exc:
            raise BadNameError(exc.code, exc.name, _name_problem(host), "client") from None
        self._ptr: Any = out[0]
        self.host = host
        self.port = port
        loop._owned.add(self)

    def _live(self) -> Any:
        if self._ptr is None:
            raise self.loop.native.error("CLOSED", "client is stopped")
        return self._ptr

    def stats(self) -> ClientStats:
        """Attempts, connects, consecutive failures, the last error and backoff delay, and whether connected now."""
        native = self.loop.native

        def get() -> ClientStats:
            st = native.ffi.new("tc_client_stats_t *")
            native.lib.tc_client_stats(self._live(), st)
            connected = native.lib.tc_client_conn(self._live()) != native.ffi.NULL
            return ClientStats(st.attempts, st.connects, st.failures, st.last_error, st.last_delay_ms, connected)

        return self.loop.call(get)

    def _stopped(self, report: Any) -> None:
        self._report = StopReport._from_c(report)
        self._ptr = None
        self.loop._owned.discard(self)
        self._stop_done.set()

    def stop(self, deadline_ms: int = 1000) -> StopReport:
        """Stop reconnecting and close the connection with the client's policy (reset if it is still there at the
        deadline; at once with 0); graceful or forced is 1 when a connection was open. It waits for the loop: inside
        a handler callback it raises BusyError. While another thread's stop runs, this one waits for it and brings its
        deadline forward to this one's."""
        lib = self.loop.native.lib
        if self._ptr is None and self._report is None:
            return StopReport(0, 0, 0, 0)  # never started (its report is set before its pointer goes)
        return self._stop_once(lambda: lib.tc_client_handle(self._live()), deadline_ms, self._stop_done)
