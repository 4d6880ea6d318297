#!/usr/bin/env python3
"""The Python asyncio peer of tcp_core's echo benchmark: Protocol-based (the fastest idiomatic asyncio, no streams).

Same protocol as the other benchmark servers: ``ready PORT`` on stdout once listening (port 0 picks a free one),
SIGUSR1 prints ``stats {json}`` with the open connection count, SIGTERM or SIGINT stops. Same water marks as
tcp_core (stop reading above 64 KiB queued, resume at 16 KiB); asyncio sets TCP_NODELAY on its TCP transports.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import ClassVar

HIGH_WATER = 64 * 1024
LOW_WATER = 16 * 1024
BACKLOG = 128


class EchoProtocol(asyncio.Protocol):
    """Writes back every byte; pauses reading while the transport's write buffer is above the high water mark."""

    live: ClassVar[set[asyncio.Transport]] = set()  # open connections, aborted at stop

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=HIGH_WATER, low=LOW_WATER)
        EchoProtocol.live.add(transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def eof_received(self) -> bool:
        return False  # the transport flushes what is queued, then closes

    def pause_writing(self) -> None:
        assert self.transport is not None
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        assert self.transport is not None
        if not self.transport.is_closing():
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            EchoProtocol.live.discard(self.transport)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    server = await loop.create_server(EchoProtocol, host, port, backlog=BACKLOG)

    def stats() -> None:
        print("stats " + json.dumps({"conns": len(EchoProtocol.live)}), flush=True)

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, stats)
    bound = server.sockets[0].getsockname()[1]
    print(f"ready {bound}", flush=True)
    await stop.wait()
    server.close()
    for transport in list(EchoProtocol.live):
        transport.abort()
    await server.wait_closed()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
