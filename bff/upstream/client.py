"""A lean HTTP/1.1 client for the upstream hop: asyncio Protocols and httptools (llhttp,
the parser uvicorn already uses), instead of aiohttp's general-purpose client.

Why: the hop is most of the proxy's added latency; a sequential loopback GET costs
~138 us through an aiohttp ClientSession and ~72 us on a bare Protocol (issue 6); httpx
0.28's pool manages ~500 req/s at 64 concurrent requests (DESIGN.md "The hot path",
encode/httpx#3215). It is built for a proxy and does nothing ambient (THREATS.md
invariant 3, DESIGN.md rule 9; a shared cookie jar carries one user's upstream cookie
into another user's request, gradio GHSA-2mr9-9r47-px2g):

- no cookie jar, no redirects, no decompression, no automatic headers except `Host`
  (the upstream's own, first, as aiohttp sent it) and the body framing: the caller's
  `Content-Length`, else `Transfer-Encoding: chunked` for a body, else
  `Content-Length: 0` for methods that carry one (aiohttp's rules, kept byte for byte).
- request line and headers sent exactly as given, latin-1 (the bytes the browser sent),
  refused when they hold a control character (CR, LF, NUL...: request smuggling).
- responses parsed by llhttp in strict mode (duplicate or invalid Content-Length,
  TE + CL, bare LF, obs-fold are all errors); 1xx interim answers skipped, 101 refused.
- bodies streamed both ways with backpressure: at most `upstream_wire.READ_LIMIT` body
  bytes are queued per exchange before the upstream socket stops being read.
- timeouts on connecting, on the response headers, and on every wait for the next body
  chunk; never on a whole exchange. The wait for a pool slot has its own, shorter bound
  (`queue_timeout`): a starved request fails fast (UpstreamBusy, 503) instead of queueing
  for the whole timeout behind slow uploads or slow readers.
- a connection goes back to the pool only after an exchange that ended cleanly (see
  `UpstreamResponse.release`); one that fails, is cancelled or released early is closed.

`upstream_wire` holds one connection and its exchange, and the errors (502 / 504,
re-exported here and by `bff.upstream`); this module the pool and the request writing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import re
import ssl
from collections.abc import AsyncIterator, Iterable
from urllib.parse import urlsplit

from bff.upstream.wire import (
    Connection,
    InvalidRequest,
    StaleConnection,
    UpstreamBusy,
    UpstreamResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
)

__all__ = [
    "InvalidRequest",
    "OriginPool",
    "UpstreamBusy",
    "UpstreamResponse",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]

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


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # As aiohttp's default: system CAs, hostname checked, HTTP/1.1 offered.
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


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


class OriginPool:
    """Keep-alive connections to one origin (`scheme://host[:port]`), at most `limit`
    at a time (a request waits at most `queue_timeout` seconds for one); made inside the
    running loop that uses it."""

    def __init__(
        self,
        origin: str,
        *,
        timeout: float,
        limit: int,
        queue_timeout: float | None = None,
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
        self._queue_timeout = timeout if queue_timeout is None else queue_timeout
        self._keepalive = keepalive
        self._host = host
        self._port = port
        self._host_line = f"Host: {shown if port == default else f'{shown}:{port}'}\r\n"
        # verified against the system CAs unless a test brings its own
        self._tls = (tls or _tls_context()) if secure else None
        self._open = 0  # connections holding a slot: connecting, busy or idle
        self._idle: collections.deque[Connection] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[Connection | None]] = collections.deque()
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
            exchange = UpstreamResponse(
                conn, self.origin, head_request=method == "HEAD", has_body=body is not None
            )
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
            except StaleConnection:
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

    async def _acquire(self, fresh: bool) -> Connection:
        if not fresh and self._idle:
            conn = self._idle.pop()  # the most recently used: least likely to be stale
            conn.idle = False
            return conn
        try:
            return await self._slot_or_connection(fresh)
        except TimeoutError:
            raise UpstreamTimeout(f"upstream {self.origin} timed out (connect)") from None
        except OSError as exc:  # refused, unreachable, DNS, TLS
            raise UpstreamUnavailable(
                f"upstream {self.origin} failed ({type(exc).__name__})"
            ) from exc

    async def _slot_or_connection(self, fresh: bool) -> Connection:
        deadline: float | None = None  # of the wait for a slot, however often woken
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
                async with asyncio.timeout(self.timeout):
                    return await self._connect()
            if deadline is None:
                deadline = self.loop.time() + self._queue_timeout
            handed = await self._wait_for_slot(deadline)
            if handed is not None and not fresh:
                return handed
            if handed is not None:
                self.put(handed)  # a fresh connection was wanted: keep this one pooled

    async def _wait_for_slot(self, deadline: float) -> Connection | None:
        """A connection handed over by `put`, or None when a slot came free."""
        waiter: asyncio.Future[Connection | None] = self.loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                try:
                    return await waiter
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
        except TimeoutError:
            raise UpstreamBusy(
                f"upstream {self.origin}: all {self._limit} connections stayed busy"
            ) from None

    async def _connect(self) -> Connection:
        self._open += 1
        conn = Connection(self)
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

    def put(self, conn: Connection) -> None:
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

    def lost(self, conn: Connection) -> None:
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
