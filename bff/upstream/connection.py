"""One upstream socket of the lean client: an asyncio Protocol that feeds the bytes it
receives to its parser (`bff.upstream.parser`, the same object), writes with a drain
bound, and reports to the pool that owns it when it closes. Reuse is decided by the
exchange (`bff.upstream.exchange.UpstreamResponse.release`) from what the parser
recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Protocol, cast

from httptools import HttpParserError, HttpParserUpgrade

from bff.errors import UpstreamUnavailable
from bff.upstream.exchange import UpstreamResponse
from bff.upstream.parser import HEAD_LIMIT, ResponseReader

__all__ = ["Connection", "ConnectionOwner"]


class ConnectionOwner(Protocol):
    """What a connection needs of the pool that owns it."""

    loop: asyncio.AbstractEventLoop

    def put(self, conn: Connection) -> None: ...

    def lost(self, conn: Connection) -> None: ...


class Connection(ResponseReader, asyncio.Protocol):
    """One upstream socket; the parser's callbacks feed the current exchange."""

    __slots__ = (
        "_drain_waiter",
        "_pool",
        "_write_paused",
        "closed",
        "counted",
        "idle",
        "idle_until",
        "uses",
    )

    def __init__(self, pool: ConnectionOwner) -> None:
        super().__init__()
        self._pool = pool
        self._drain_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self.closed = False
        self.counted = True  # holds one of the pool's slots
        self.idle = False
        self.idle_until = 0.0
        self.uses = 0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports implement asyncio.Transport without subclassing it)
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:  # small requests go out at once, never wait for an ACK
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None or exchange.complete:
            # bytes nobody asked for: the connection's framing can no longer be trusted
            self.broken = True
            self.close()
            return
        exchange.received = True
        self._progress = False
        try:
            self._parser.feed_data(data)
        except HttpParserUpgrade:
            exchange.fail(UpstreamUnavailable("upstream switched protocols"))
        except HttpParserError as exc:
            if not exchange.complete:
                exchange.fail(UpstreamUnavailable(f"malformed upstream response ({exc})"))
            self.broken = True
            self.close()
            return
        if self._progress:
            self._quiet = 0
        else:  # a head or trailer still growing inside the parser
            self._quiet += len(data)
            if self._quiet > HEAD_LIMIT:
                exchange.fail(UpstreamUnavailable("upstream response head too large"))

    def eof_received(self) -> bool:
        if self.exchange is not None:
            self.exchange.on_eof(clean=True)
        return False  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.exchange is not None:
            self.exchange.on_eof(clean=exc is None)
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("upstream connection lost"))
        self._pool.lost(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # used by the pool and the exchange

    def start(self, exchange: UpstreamResponse) -> None:
        self.exchange = exchange
        self._fields = self._quiet = 0
        self.uses += 1

    def resume(self) -> None:
        if self.reading_paused and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()

    def reuse(self) -> None:
        """Back to the pool after a clean exchange."""
        self._pool.put(self)

    async def drain(self, seconds: float) -> None:
        if self.closed:
            raise ConnectionResetError("upstream connection lost")
        if not self._write_paused:
            return
        waiter: asyncio.Future[None] = self._pool.loop.create_future()
        self._drain_waiter = waiter
        try:
            async with asyncio.timeout(seconds):
                await waiter
        finally:
            self._drain_waiter = None

    def close(self) -> None:
        """Close for good (never back to the pool); idempotent."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            # buffered request bytes would keep a closed socket waiting for a peer that
            # may never read them: drop them
            if transport.get_write_buffer_size():
                transport.abort()
            else:
                transport.close()
        self.closed = True
        self._pool.lost(self)
