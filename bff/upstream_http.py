"""A lean HTTP/1.1 client for the upstream hop: asyncio Protocols and httptools (llhttp,
the parser uvicorn already uses), instead of aiohttp's general-purpose client.

Why: the hop is most of the proxy's added latency; a sequential loopback GET costs
~138 us through an aiohttp ClientSession and ~72 us on a bare Protocol (issue 6). It is
built for a proxy and does nothing ambient (THREATS.md invariant 3, DESIGN.md rule 9):

- no cookie jar, no redirects, no decompression, no automatic headers except `Host`
  (the upstream's own, first, as aiohttp sent it) and the body framing: the caller's
  `Content-Length`, else `Transfer-Encoding: chunked` for a body, else
  `Content-Length: 0` for methods that carry one (aiohttp's rules, kept byte for byte).
- request line and headers sent exactly as given, latin-1 (the bytes the browser sent),
  refused when they hold a control character (CR, LF, NUL...: request smuggling).
- responses parsed by llhttp in strict mode (duplicate or invalid Content-Length,
  TE + CL, bare LF, obs-fold are all errors); 1xx interim answers skipped, 101 refused.
- bodies streamed both ways with backpressure: at most `_READ_LIMIT` body bytes are
  queued per exchange before the upstream socket stops being read.
- timeouts on connecting (including the wait for a pool slot), on the response
  headers, and on every wait for the next body chunk; never on a whole exchange.
- a connection goes back to the pool only after an exchange that ended cleanly; one
  that fails, is cancelled or released early is closed.

Errors are this module's own (re-exported by `bff.upstream`):

    BffError
    ├── UpstreamUnavailable   refused, unreachable, reset, malformed answer  -> 502
    └── UpstreamTimeout       no connection / headers / next chunk in time   -> 504
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import re
import socket
import ssl
from collections.abc import AsyncIterator, Iterable
from typing import cast
from urllib.parse import urlsplit

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from bff.errors import BffError

__all__ = [
    "InvalidRequest",
    "OriginPool",
    "UpstreamResponse",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]

_READ_LIMIT = 1 << 18  # queued body bytes before the upstream socket is paused
# Response head (and chunk trailer) bytes: llhttp does not bound them, httptools buffers a
# header until it ends (nginx refuses upstream heads over 4-8 KiB by default).
_HEAD_LIMIT = 1 << 16
_MAX_HEADERS = 128  # aiohttp's limit
_KEEPALIVE = 30.0  # seconds an idle connection is kept
# RFC 9110 §9.2.2; aiohttp's set. Only these are ever sent twice.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# aiohttp adds `Content-Length: 0` to a bodiless request of any other method.
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 field-name
_CONTROLS = bytes([*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F])  # all but HTAB
_DIGITS = re.compile(r"[0-9]{1,18}")
_PLAIN, _HOST, _LENGTH, _FRAMING = range(4)
# Header names already checked against _TOKEN, with what they mean to this client: one
# dict lookup a header on the hot path (names repeat: the set is small).
_NAMES: dict[str, int] = {}


class UpstreamUnavailable(BffError):
    """The upstream refused the connection, could not be reached, or broke the exchange."""


class UpstreamTimeout(BffError):
    """The upstream did not connect, answer or send its next chunk within the timeout."""


class InvalidRequest(ValueError):
    """The caller's request cannot be sent as given (a control character in a header,
    a bad Content-Length...): a bug upstream of this module, never sent."""


class _Stale(UpstreamUnavailable):
    """A reused connection was closed before any byte of the answer arrived."""


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # As aiohttp's default: system CAs, hostname checked, HTTP/1.1 offered.
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


def _name_kind(name: str) -> int:
    kind = _NAMES.get(name)
    if kind is None:
        if not _TOKEN.fullmatch(name):
            raise InvalidRequest(f"invalid header name {name!r}")
        lower = name.lower()
        if lower == "host":
            kind = _HOST
        elif lower == "content-length":
            kind = _LENGTH
        elif lower == "transfer-encoding":
            kind = _FRAMING
        else:
            kind = _PLAIN
        if len(_NAMES) < 4096:
            _NAMES[name] = kind
    return kind


class _Connection(asyncio.Protocol):
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

    def __init__(self, pool: OriginPool) -> None:
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
        self.broken = False  # something arrived that no request asked for
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
            # its Content-Length says. Its parser is replaced before the next exchange.
            exchange.keep_alive = self._parser.should_keep_alive()
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
        if exchange.buffered > _READ_LIMIT and not self.reading_paused and self.transport:
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

    def reset_parser(self) -> None:
        self._parser = HttpResponseParser(self)

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

    def __init__(self, conn: _Connection, origin: str, *, head_request: bool) -> None:
        self._conn: _Connection | None = conn
        self._loop = conn._pool.loop
        self._origin = origin
        self._timeout = conn._pool.timeout
        self._waiter: asyncio.Future[bool] | None = None
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.buffer: list[bytes] = []
        self.buffered = 0
        self.head_request = head_request
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
            self.failure = _Stale(f"upstream {self._origin} closed the connection")
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
        timer = self._loop.call_later(seconds, _expire, waiter) if seconds is not None else None
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
        cleanly, else it is closed. Idempotent."""
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
            and writer_ok
            and not conn.broken
            and not conn.closed
        ):
            if self.head_request:
                conn.reset_parser()
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


class OriginPool:
    """Keep-alive connections to one origin (`scheme://host[:port]`), at most `limit`
    at a time; made inside the running loop that uses it."""

    def __init__(
        self,
        origin: str,
        *,
        timeout: float,
        limit: int,
        keepalive: float = _KEEPALIVE,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) origin: {origin!r}")
        secure = parts.scheme == "https"
        host = parts.hostname
        if not host.isascii():
            host = host.encode("idna").decode("ascii")
        default = 443 if secure else 80
        port = parts.port or default
        shown = f"[{host}]" if ":" in host else host
        self.origin = origin
        self.loop = asyncio.get_running_loop()
        self.timeout = timeout
        self._limit = limit
        self._keepalive = keepalive
        self._host = host
        self._port = port
        self._host_line = f"Host: {shown if port == default else f'{shown}:{port}'}\r\n"
        # verified against the system CAs unless a test brings its own
        self._tls = (tls or _tls_context()) if secure else None
        self._open = 0  # connections holding a slot: connecting, busy or idle
        self._idle: collections.deque[_Connection] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    async def request(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: AsyncIterator[bytes] | None,
    ) -> UpstreamResponse:
        """Send the request (body streamed) and return once the response headers are in."""
        head, length = self._head(method, target, headers, body is not None)
        retry = body is None and method in _IDEMPOTENT
        fresh = False
        while True:
            conn = await self._acquire(fresh)
            reused = conn.uses > 0
            exchange = UpstreamResponse(conn, self.origin, head_request=method == "HEAD")
            conn.start(exchange)
            if conn.closed:  # lost on its way from the pool: as if stale
                exchange.on_eof(clean=False)
            try:
                assert conn.transport is not None
                conn.transport.write(head)
                if body is None:
                    exchange.sent = True
                else:
                    exchange.writer = self.loop.create_task(self._send_body(exchange, body, length))
                while not exchange.headers_done:
                    if exchange.failure is not None:
                        raise exchange.failure
                    # while the body is still going out, its own steps are bounded
                    await exchange.wait(self.timeout if exchange.sent else None)
                return exchange
            except _Stale:
                exchange.close()
                if retry and reused:  # the upstream closed it while idle: never seen
                    retry, fresh = False, True
                    continue
                raise
            except BaseException:
                exchange.close()
                raise

    async def _send_body(
        self, exchange: UpstreamResponse, body: AsyncIterator[bytes], length: int | None
    ) -> None:
        conn = exchange._conn
        assert conn is not None
        assert conn.transport is not None
        transport = conn.transport
        sent = 0
        try:
            async for chunk in body:
                if not chunk:
                    continue
                if conn.closed:
                    raise ConnectionResetError("upstream connection lost")
                if length is None:
                    transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
                else:
                    sent += len(chunk)
                    if sent > length:
                        raise InvalidRequest("request body longer than its Content-Length")
                    transport.write(chunk)
                await conn.drain(self.timeout)
            if length is None:
                transport.write(b"0\r\n\r\n")
            elif sent != length:
                raise InvalidRequest("request body shorter than its Content-Length")
            await conn.drain(self.timeout)
        except TimeoutError:
            exchange.fail(UpstreamTimeout(f"upstream {self.origin} timed out (request body)"))
        except Exception as exc:  # the browser left (ClientGone), the socket broke...
            exchange.fail(
                UpstreamUnavailable(f"upstream {self.origin} request body failed ({exc!r})")
            )
        else:
            exchange.sent = True
            exchange.wake()  # the wait for the headers starts its clock now

    def _head(
        self, method: str, target: str, headers: Iterable[tuple[str, str]], has_body: bool
    ) -> tuple[bytes, int | None]:
        """The request line and headers as bytes, and the body's length if declared."""
        if " " in method or " " in target or not target.startswith("/"):
            raise InvalidRequest("invalid request line")
        lines = [f"{method} {target} HTTP/1.1\r\n"]
        host = True
        length: int | None = None
        names = _NAMES
        for name, value in headers:
            kind = names.get(name)
            if kind is None:
                kind = _name_kind(name)
            if kind:
                if kind == _HOST:
                    host = False
                elif kind == _FRAMING:
                    raise InvalidRequest("Transfer-Encoding is this client's to set")
                elif length is not None or not _DIGITS.fullmatch(value):
                    raise InvalidRequest("invalid Content-Length")
                else:
                    length = int(value)
            lines.append(f"{name}: {value}\r\n")
        if host:
            lines.insert(1, self._host_line)
        if has_body:
            if length is None:
                lines.append("Transfer-Encoding: chunked\r\n")
        elif length is None:
            if method not in _NO_BODY_METHODS:
                lines.append("Content-Length: 0\r\n")
        elif length:
            raise InvalidRequest("Content-Length without a body")
        lines.append("\r\n")
        try:
            data = "".join(lines).encode("latin-1")
        except UnicodeEncodeError:
            raise InvalidRequest("header text outside latin-1") from None
        # Each line ends in our CR LF; any other control character (CR, LF, NUL...) in a
        # name, value, method or target would change the message's framing: refuse it.
        if len(data) - len(data.translate(None, _CONTROLS)) != 2 * len(lines):
            raise InvalidRequest("control character in the request line or a header")
        return data, length

    # the pool

    async def _acquire(self, fresh: bool) -> _Connection:
        if not fresh and self._idle:
            conn = self._idle.pop()  # the most recently used: least likely to be stale
            conn.idle = False
            return conn
        try:
            async with asyncio.timeout(self.timeout):  # a slot, then a connection
                return await self._slot_or_connection(fresh)
        except TimeoutError:
            raise UpstreamTimeout(f"upstream {self.origin} timed out (connect)") from None
        except OSError as exc:  # refused, unreachable, DNS, TLS
            raise UpstreamUnavailable(
                f"upstream {self.origin} failed ({type(exc).__name__})"
            ) from exc

    async def _slot_or_connection(self, fresh: bool) -> _Connection:
        while True:
            if self._closed:
                raise UpstreamUnavailable("upstream pool closed")
            if not fresh and self._idle:
                conn = self._idle.pop()
                conn.idle = False
                return conn
            if self._open >= self._limit and fresh and self._idle:
                self._idle[0].close()  # the oldest idle one makes room for a fresh one
            if self._open < self._limit:
                return await self._connect()
            waiter: asyncio.Future[_Connection | None] = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                handed = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    passed = waiter.result()  # woken, but leaving: pass it on
                    if passed is not None:
                        self.put(passed)
                    else:
                        self._wake()
                else:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
                raise
            if handed is not None and not fresh:
                return handed
            if handed is not None:
                self.put(handed)  # a fresh connection was wanted: keep this one pooled

    async def _connect(self) -> _Connection:
        self._open += 1
        conn = _Connection(self)
        try:
            if self._tls is None:
                await self.loop.create_connection(lambda: conn, self._host, self._port)
            else:
                await self.loop.create_connection(
                    lambda: conn,
                    self._host,
                    self._port,
                    ssl=self._tls,
                    server_hostname=self._host,
                )
        except BaseException:
            conn.close()
            raise
        return conn

    def put(self, conn: _Connection) -> None:
        """A clean connection back: to the first waiter, else idle."""
        conn.exchange = None
        conn.resume()
        if self._closed or conn.closed:
            conn.close()
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle = True
        conn.idle_until = self.loop.time() + self._keepalive
        self._idle.append(conn)
        if self._sweeper is None:
            self._sweeper = self.loop.call_at(conn.idle_until, self._sweep)

    def lost(self, conn: _Connection) -> None:
        """A connection closed (by either side): out of the idle list, its slot freed."""
        if conn.idle:
            conn.idle = False
            with contextlib.suppress(ValueError):
                self._idle.remove(conn)
        if conn.counted:
            conn.counted = False
            self._open -= 1
            self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # a slot is free: connect
                return

    def _sweep(self) -> None:
        self._sweeper = None
        now = self.loop.time()
        while self._idle and self._idle[0].idle_until <= now:
            self._idle[0].close()
        if self._idle:
            self._sweeper = self.loop.call_at(self._idle[0].idle_until, self._sweep)

    def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        while self._idle:
            self._idle[0].close()
        while self._waiters:
            self._wake()  # each finds the pool closed
