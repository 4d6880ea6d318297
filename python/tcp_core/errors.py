"""Typed exceptions for tcp_core's error codes (components/tcp_core/include/tc_err.h).

Every exception derives from TcError and from the matching builtin, so callers can catch either
``tcp_core.BadPortError`` or plain ``ValueError``.
"""

from __future__ import annotations

import builtins


class TcError(Exception):
    """A tcp_core call failed; ``code`` is the negative tc_err_t value and ``name`` its symbolic name."""

    def __init__(self, code: int, name: str, message: str, context: str = "") -> None:
        self.code = code
        self.name = name
        self.context = context
        text = f"{context}: {message}" if context else message
        super().__init__(f"{text} (TC_E{name})")


class InvalidArgumentError(TcError, builtins.ValueError):
    """TC_EINVAL: an argument is out of range or a handle is in the wrong state."""


class NoMemoryError(TcError, builtins.MemoryError):
    """TC_ENOMEM: the allocation hook refused (or the allocation limit was reached)."""


class AddressInUseError(TcError, builtins.OSError):
    """TC_EADDRINUSE: the listen address is taken."""


class AddressNotAvailableError(TcError, builtins.OSError):
    """TC_EADDRNOTAVAIL: the address does not belong to this host."""


class BadAddressError(TcError, builtins.ValueError):
    """TC_EBADADDR: the address text is malformed."""


class BadPortError(TcError, builtins.ValueError):
    """TC_EBADPORT: port 0 (or a missing port) where a destination port is needed."""


class ResolveError(TcError, builtins.OSError):
    """TC_ERESOLVE: the name did not resolve."""


class ConnectionRefusedTcError(TcError, builtins.ConnectionRefusedError):
    """TC_ECONNREFUSED: nothing listens at the destination."""


class ConnectionResetTcError(TcError, builtins.ConnectionResetError):
    """TC_ECONNRESET: the peer reset the connection."""


class TimeoutTcError(TcError, builtins.TimeoutError):
    """TC_ETIMEDOUT: a deadline passed."""


class WouldBlockError(TcError, builtins.BlockingIOError):
    """TC_EAGAIN / TC_EINPROGRESS: the operation would block."""


class LimitError(TcError, builtins.OSError):
    """TC_ELIMIT: a configured limit (connections, queue) was reached."""


class ClosedError(TcError, builtins.ConnectionError):
    """TC_ECLOSED: the connection or handle is closed or closing."""


class BusyError(TcError, builtins.RuntimeError):
    """TC_EBUSY: handles remain, or the call was made from inside a callback."""


class NotFoundError(TcError, builtins.LookupError):
    """TC_ENOTFOUND: no such entry."""


class UnreachableError(TcError, builtins.OSError):
    """TC_EUNREACH: no route to the destination."""


class BrokenPipeTcError(TcError, builtins.BrokenPipeError):
    """TC_EPIPE: writing to a connection whose write side is shut."""


class NotSupportedError(TcError, builtins.NotImplementedError):
    """TC_ENOSYS: this backend does not support the operation."""


class ProtocolError(TcError, builtins.ValueError):
    """TC_EPROTO: the peer broke the protocol."""


class TooBigError(TcError, builtins.ValueError):
    """TC_ETOOBIG: the data exceeds a size limit."""


class IOTcError(TcError, builtins.OSError):
    """TC_EIO: an unexpected I/O error from the backend."""


class TooManyFilesError(TcError, builtins.OSError):
    """TC_EMFILE: out of descriptors (or lwIP sockets)."""


class PermissionTcError(TcError, builtins.PermissionError):
    """TC_EACCES: not permitted (e.g. a port below 1024 without privileges)."""


class BadNameError(TcError, builtins.ValueError):
    """TC_EBADNAME: the host is neither a numeric address nor a name DNS can carry (empty, over 253 bytes, or a
    label empty or over 63 bytes)."""


BY_NAME: dict[str, type[TcError]] = {
    "INVAL": InvalidArgumentError,
    "NOMEM": NoMemoryError,
    "ADDRINUSE": AddressInUseError,
    "ADDRNOTAVAIL": AddressNotAvailableError,
    "BADADDR": BadAddressError,
    "BADPORT": BadPortError,
    "RESOLVE": ResolveError,
    "CONNREFUSED": ConnectionRefusedTcError,
    "CONNRESET": ConnectionResetTcError,
    "TIMEDOUT": TimeoutTcError,
    "AGAIN": WouldBlockError,
    "INPROGRESS": WouldBlockError,
    "LIMIT": LimitError,
    "CLOSED": ClosedError,
    "BUSY": BusyError,
    "NOTFOUND": NotFoundError,
    "UNREACH": UnreachableError,
    "PIPE": BrokenPipeTcError,
    "NOSYS": NotSupportedError,
    "PROTO": ProtocolError,
    "TOOBIG": TooBigError,
    "IO": IOTcError,
    "MFILE": TooManyFilesError,
    "ACCES": PermissionTcError,
    "BADNAME": BadNameError,
}
