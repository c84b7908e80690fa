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
- bodies streamed both ways with backpressure: at most `bff.upstream.parser.READ_LIMIT` body
  bytes are queued per exchange before the upstream socket stops being read.
- timeouts on connecting, on the response headers, and on every wait for the next body
  chunk; never on a whole exchange. The wait for a pool slot has its own, shorter bound
  (`queue_timeout`): a starved request fails fast (UpstreamBusy, 503) instead of queueing
  for the whole timeout behind slow uploads or slow readers.
- a connection goes back to the pool only after an exchange that ended cleanly (see
  `UpstreamResponse.release`); one that fails, is cancelled or released early is closed.

The parts: `framing` (the request head, pure), `pool` (the connections to one origin),
`connection` + `parser` (one socket and its llhttp callbacks), `exchange` (one exchange
and the reuse rule); this module ties them into the `OriginTransport` Protocol
(`bff.upstream.protocol`). Errors are `bff.errors`' UpstreamUnavailable (502;
UpstreamBusy, 503) and UpstreamTimeout (504).
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import AsyncIterator, Iterable
from urllib.parse import urlsplit

from bff.errors import UpstreamTimeout, UpstreamUnavailable
from bff.upstream.connection import Connection
from bff.upstream.exchange import StaleConnection, UpstreamResponse
from bff.upstream.framing import IDEMPOTENT, InvalidRequest, RequestHead
from bff.upstream.pool import ConnectionPool

__all__ = ["LeanOrigin"]

_KEEPALIVE = 30.0  # seconds an idle connection is kept


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # As aiohttp's default: system CAs, hostname checked, HTTP/1.1 offered.
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


class LeanOrigin:
    """The lean transport to one origin (`scheme://host[:port]`): keep-alive connections,
    at most `limit` at a time (a request waits at most `queue_timeout` seconds for one);
    made inside the running loop that uses it."""

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
        self._head = RequestHead(f"Host: {shown if port == default else f'{shown}:{port}'}\r\n")
        self.pool = ConnectionPool(
            origin,
            host,
            port,
            # verified against the system CAs unless a test brings its own
            (tls or _tls_context()) if secure else None,
            timeout=timeout,
            limit=limit,
            queue_timeout=timeout if queue_timeout is None else queue_timeout,
            keepalive=keepalive,
        )

    async def request(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: AsyncIterator[bytes] | None,
    ) -> UpstreamResponse:
        """Send the request (body streamed) and return once the response headers are in."""
        head, length = self._head.encode(method, target, headers, body is not None)
        retry = body is None and method in IDEMPOTENT
        fresh = False
        while True:
            conn = await self.pool.acquire(fresh)
            reused = conn.uses > 0
            exchange = UpstreamResponse(
                conn,
                self.origin,
                loop=self.loop,
                timeout=self.timeout,
                head_request=method == "HEAD",
                has_body=body is not None,
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
                    exchange.writer = self.loop.create_task(
                        self._send_body(conn, exchange, body, length)
                    )
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
        self,
        conn: Connection,
        exchange: UpstreamResponse,
        body: AsyncIterator[bytes],
        length: int | None,
    ) -> None:
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

    def close(self) -> None:
        self.pool.close()
