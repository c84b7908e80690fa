"""One upstream connection and the exchange on it: an asyncio Protocol whose httptools
(llhttp) callbacks feed an `UpstreamResponse`. `upstream_http.OriginPool` owns the
connections, writes the requests and decides about reuse through what this module
records (see its docstring for the rules this client keeps).

Errors are `bff.errors`' UpstreamUnavailable (502; UpstreamBusy, 503) and
UpstreamTimeout (504), re-exported here and by `bff.upstream_http` and `bff.upstream`;
`StaleConnection` (an UpstreamUnavailable) is this module's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Protocol, cast

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from bff.errors import UpstreamBusy, UpstreamTimeout, UpstreamUnavailable

__all__ = [
    "Connection",
    "ConnectionOwner",
    "InvalidRequest",
    "StaleConnection",
    "UpstreamBusy",
    "UpstreamResponse",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "expire_waiter",
]

READ_LIMIT = 1 << 18  # queued body bytes before the upstream socket is paused
# Response head (and chunk trailer) bytes: llhttp does not bound them, httptools buffers a
# header until it ends (nginx refuses upstream heads over 4-8 KiB by default).
_HEAD_LIMIT = 1 << 16
_MAX_HEADERS = 128  # aiohttp's limit


class ConnectionOwner(Protocol):
    """What a connection and its exchange need of the pool that owns them."""

    loop: asyncio.AbstractEventLoop
    timeout: float

    def put(self, conn: Connection) -> None: ...

    def lost(self, conn: Connection) -> None: ...


class InvalidRequest(ValueError):
    """The caller's request cannot be sent as given (a control character in a header,
    a bad Content-Length...): a bug upstream of this module, never sent."""


class StaleConnection(UpstreamUnavailable):
    """A reused connection was closed before any byte of the answer arrived."""


def expire_waiter(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class Connection(asyncio.Protocol):
    """One upstream socket; the parser's callbacks feed the current exchange."""

    __slots__ = (
        "_drain_waiter",
        "_fields",
        "_headers",
        "_parser",
        "_pool",
        "_progress",
        "_quiet",
        "_write_paused",
        "broken",
        "closed",
        "counted",
        "exchange",
        "idle",
        "idle_until",
        "reading_paused",
        "transport",
        "uses",
    )

    def __init__(self, pool: ConnectionOwner) -> None:
        self._pool = pool
        self._parser = HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._fields = 0  # header and trailer bytes of this exchange
        self._quiet = 0  # bytes received since the last body byte
        self._progress = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self.transport: asyncio.Transport | None = None
        self.exchange: UpstreamResponse | None = None
        self.closed = False
        self.broken = False  # its framing can no longer be trusted: never reused
        self.counted = True  # holds one of the pool's slots
        self.idle = False
        self.idle_until = 0.0
        self.reading_paused = False
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
            if self._quiet > _HEAD_LIMIT:
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

    # httptools callbacks

    def on_message_begin(self) -> None:
        exchange = self.exchange
        if exchange is None or exchange.complete:
            # A second answer in the same read as a complete one (response splitting,
            # an upstream bug): it would be taken for the next request's answer.
            self.broken = True
            raise HttpParserError("upstream sent an answer nobody asked for")
        self._headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self._headers
        self._fields += len(name) + len(value)
        if len(headers) >= _MAX_HEADERS or self._fields > _HEAD_LIMIT:
            raise HttpParserError("upstream response head too large")
        headers.append((name, value))

    def on_headers_complete(self) -> None:
        exchange = self.exchange
        assert exchange is not None
        if exchange.complete:  # never let a later head overwrite a finished answer
            self.broken = True
            return
        status = self._parser.get_status_code()
        if not 100 <= status <= 599:  # llhttp takes any 3 digits; no ASGI server sends them
            exchange.fail(UpstreamUnavailable(f"upstream answered status {status}"))
            return
        if (status < 200 or status in (204, 304)) and _promises_body(self._headers):
            # RFC 9110 §8.6, RFC 9112 §6.1: never Content-Length or Transfer-Encoding on a
            # 1xx or 204, never Transfer-Encoding on a 304 (a Content-Length there is legal,
            # but names the body a 200 would have had). llhttp reads no body; should the
            # upstream send one anyway, late, those bytes would be taken for the next
            # request's answer: a bodiless answer whose framing promises a body is never
            # reused (response queue poisoning; any doubt closes it).
            self.broken = True
        if status < 200:
            if status == 101:
                exchange.fail(UpstreamUnavailable("upstream switched protocols"))
            else:
                exchange.interim = True  # 100 Continue, 103 Early Hints: not the answer
            return
        exchange.status = status
        # Answered before the whole request body went out (401, 413...): whatever the
        # upstream makes of the rest of the body, this connection can never be trusted
        # with another request (nginx checks request_body_sent the same way).
        exchange.early = not exchange.sent
        exchange.raw_headers = self._headers
        self._headers = []  # chunk trailers, if any, land here and are dropped
        exchange.headers_done = True
        if exchange.head_request:
            # llhttp cannot know the request was HEAD: this answer has no body, whatever
            # its Content-Length says. A sloppy upstream may send that body anyway, late,
            # once the next request is in: a HEAD exchange never returns its connection
            # to the pool (see `UpstreamResponse.release`).
            exchange.finish()
        else:
            exchange.wake()

    def on_body(self, body: bytes) -> None:
        exchange = self.exchange
        assert exchange is not None
        if exchange.complete:  # a body after a HEAD answer
            self.broken = True
            return
        self._progress = True
        exchange.buffer.append(body)
        exchange.buffered += len(body)
        if exchange.buffered > READ_LIMIT and not self.reading_paused and self.transport:
            self.reading_paused = True  # backpressure: the browser is slower than the upstream
            self.transport.pause_reading()
        exchange.wake()

    def on_message_complete(self) -> None:
        exchange = self.exchange
        assert exchange is not None
        if exchange.interim:
            exchange.interim = False
            return
        if exchange.complete or exchange.failure is not None:
            return  # after HEAD or 101: nothing more to say
        exchange.keep_alive = self._parser.should_keep_alive()
        exchange.finish()

    # used by the pool and the exchange

    def resume(self) -> None:
        if self.reading_paused and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()

    def start(self, exchange: UpstreamResponse) -> None:
        self.exchange = exchange
        self._fields = self._quiet = 0
        self.uses += 1

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


def _promises_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        lower = name.lower()
        if lower == b"transfer-encoding" or (lower == b"content-length" and value.strip(b" 0")):
            return True
    return False


class UpstreamResponse:
    """One exchange: status and raw headers once `OriginPool.request` returns, then the
    body through `readany` until `at_eof`. The caller must `release()` it."""

    __slots__ = (
        "_conn",
        "_loop",
        "_origin",
        "_timeout",
        "_waiter",
        "buffer",
        "buffered",
        "complete",
        "early",
        "failure",
        "has_body",
        "head_request",
        "headers_done",
        "interim",
        "keep_alive",
        "raw_headers",
        "received",
        "sent",
        "status",
        "writer",
    )

    def __init__(
        self, conn: Connection, origin: str, *, head_request: bool, has_body: bool = False
    ) -> None:
        self._conn: Connection | None = conn
        self._loop = conn._pool.loop
        self._origin = origin
        self._timeout = conn._pool.timeout
        self._waiter: asyncio.Future[bool] | None = None
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.buffer: list[bytes] = []
        self.buffered = 0
        self.head_request = head_request
        self.has_body = has_body  # the request carried a body
        self.headers_done = False
        self.interim = False
        self.complete = False
        self.keep_alive = False
        self.received = False  # any byte of the answer
        self.sent = False  # the whole request
        self.early = False  # the answer began before the whole request was sent
        self.failure: UpstreamUnavailable | UpstreamTimeout | None = None
        self.writer: asyncio.Task[None] | None = None

    # from the connection

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def finish(self) -> None:
        self.complete = True
        self.wake()

    def fail(self, exc: UpstreamUnavailable | UpstreamTimeout) -> None:
        if self.complete or self.failure is not None:
            return
        self.failure = exc
        self.wake()
        if self._conn is not None:
            self._conn.close()

    def on_eof(self, *, clean: bool) -> None:
        if self.complete or self.failure is not None:
            return
        if not self.received:
            self.failure = StaleConnection(f"upstream {self._origin} closed the connection")
        elif self.headers_done and clean and self._until_close():
            self.keep_alive = False  # framed by the end of the connection
            self.complete = True
        else:
            what = "body" if self.headers_done else "headers"
            self.failure = UpstreamUnavailable(f"upstream {self._origin} closed mid-{what}")
        self.wake()

    def _until_close(self) -> bool:
        """A body without Content-Length or final chunked coding ends with the connection
        (RFC 9112 §6.3): complete at a clean EOF; any other body was cut short."""
        for name, value in self.raw_headers:
            lower = name.lower()
            if lower == b"content-length":
                return False
            if lower == b"transfer-encoding" and value.lower().rstrip().endswith(b"chunked"):
                return False
        return True

    async def wait(self, seconds: float | None) -> None:
        """Until the connection has news for this exchange; UpstreamTimeout after
        `seconds` without any."""
        waiter: asyncio.Future[bool] = self._loop.create_future()
        self._waiter = waiter
        timer = (
            self._loop.call_later(seconds, expire_waiter, waiter) if seconds is not None else None
        )
        try:
            woken = await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        if not woken:
            what = "body" if self.headers_done else "headers"
            raise UpstreamTimeout(f"upstream {self._origin} timed out ({what})")

    # for the caller

    async def readany(self) -> bytes:
        """Whatever body bytes have arrived (waiting up to the timeout for some);
        b"" at the end. Raises UpstreamUnavailable / UpstreamTimeout."""
        while True:
            buffer = self.buffer
            if buffer:
                data = buffer[0] if len(buffer) == 1 else b"".join(buffer)
                self.buffer = []
                self.buffered = 0
                conn = self._conn
                if conn is not None and conn.reading_paused:
                    conn.resume()
                return data
            if self.failure is not None:
                raise self.failure
            if self.complete:
                return b""
            if self._conn is None:
                raise UpstreamUnavailable("upstream response already released")
            await self.wait(self._timeout)

    def at_eof(self) -> bool:
        return self.complete and not self.buffer

    def release(self) -> None:
        """Done with the exchange: the connection goes back to the pool if it ended
        cleanly, else it is closed. Idempotent.

        Clean: the whole request sent before the answer began, the whole answer read,
        nothing unasked on the wire, not a HEAD (whose answer's promised body a sloppy
        upstream may still send), and - when the request had a body - a 2xx or 3xx
        answer. An upstream that refuses a request (401, 413...) may not have read its
        body; the next request on that socket would be glued to the unread rest of it,
        another user's bearer included (the request-smuggling family: CVE-2023-25690 in
        Apache mod_proxy; nginx's `request_body_sent` rule)."""
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        writer = self.writer
        writer_ok = writer is None or (
            writer.done() and not writer.cancelled() and writer.exception() is None
        )
        if writer is not None and not writer.done():
            writer.cancel()
        if (
            self.complete
            and self.keep_alive
            and self.failure is None
            and self.sent
            and not self.early
            and (not self.has_body or 200 <= self.status < 400)
            and writer_ok
            and not conn.broken
            and not conn.closed
            and not self.head_request
        ):
            conn._pool.put(conn)
        else:
            conn.close()

    def close(self) -> None:
        """Abandon the exchange: the connection is closed, never reused. Idempotent."""
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        if self.writer is not None and not self.writer.done():
            self.writer.cancel()
        conn.close()
