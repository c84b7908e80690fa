"""A reference upstream transport on aiohttp, implementing the same `OriginTransport`
Protocol as the lean client (`bff.upstream.client.LeanOrigin`), selectable by
`BFF_UPSTREAM_TRANSPORT = "aiohttp"` (needs the `aiohttp` extra). It exists so the lean
client is proven against a well-kept implementation (the upstream test suite runs on
both) and can be swapped out if it ever misbehaves.

Kept to a proxy's rules: no cookie jar, no redirects followed, no decompression, no
ambient headers (User-Agent, Accept, Accept-Encoding, a body's Content-Type), no proxy
from the environment; at most `limit` connections, a request waits at most
`queue_timeout` for one (UpstreamBusy), and connecting, the response headers and every
gap between two body chunks are bounded by `timeout` (UpstreamTimeout), never a whole
streamed exchange.

The lean client's framing rules are kept where aiohttp's hooks allow (`bff.upstream.framing`):
the same requests refused before sending, a declared body length enforced, header bytes
sent as the browser sent them (aiohttp writes UTF-8: other bytes are refused), never
reused after HEAD, after a bodiless answer whose framing promises a body, after an answer
to a body that is not 2xx/3xx or came before the body was sent, or when bytes nobody
asked for arrived while idle; a status outside 200-599 refused; a stale pooled connection
retried once only for a bodiless idempotent request. What aiohttp cannot do is listed at
the lean-only tests of tests/integration/test_upstream_http.py.
"""

from __future__ import annotations

import asyncio
import contextvars
import ssl
from collections.abc import AsyncIterator, Iterable
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler
from multidict import CIMultiDict
from yarl import URL

from bff.errors import UpstreamBusy, UpstreamTimeout, UpstreamUnavailable
from bff.upstream.framing import IDEMPOTENT, InvalidRequest, RequestHead, promises_body

__all__ = ["AiohttpOrigin", "AiohttpResponse"]

_KEEPALIVE = 30.0  # seconds an idle connection is kept (the lean client's too)
_AMBIENT = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


# The connections a request of this task was given (aiohttp does not say which one
# answered: a HEAD or bodiless answer's connection is back in the pool before `request`
# returns).
_GIVEN: contextvars.ContextVar[list[ResponseHandler] | None] = contextvars.ContextVar(
    "bff_aiohttp_given", default=None
)


class _Connector(aiohttp.TCPConnector):
    """Drops an idle connection on which bytes nobody asked for arrived (a late body, a
    second answer): aiohttp would hand them to the next request as its answer. Records
    each connection it hands out in `_GIVEN`."""

    async def connect(self, req: Any, traces: Any, timeout: Any) -> Any:  # noqa: ASYNC109
        conn = await super().connect(req, traces, timeout)
        given = _GIVEN.get()
        if given is not None and conn.protocol is not None:
            given.append(conn.protocol)
        return conn

    async def _get(self, key: Any, traces: Any) -> Any:
        for proto, _ in self._conns.get(key, ()):
            if proto.should_close:
                proto.close()  # no longer connected: the connector discards it
        return await super()._get(key, traces)


class _Body:
    """The request body as aiohttp reads it: checked against its declared length (never
    sent longer or shorter), and `sent` once the last byte was handed over."""

    __slots__ = ("_body", "_length", "sent")

    def __init__(self, body: AsyncIterator[bytes], length: int | None) -> None:
        self._body = body
        self._length = length
        self.sent = False

    async def chunks(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self._body:
            size += len(chunk)
            if self._length is not None and size > self._length:
                raise InvalidRequest("request body longer than its Content-Length")
            if chunk:
                yield chunk
        if self._length is not None and size != self._length:
            raise InvalidRequest("request body shorter than its Content-Length")
        self.sent = True


def _utf8(value: str) -> str:
    """aiohttp writes header text as UTF-8; the browser's bytes arrive latin-1 decoded."""
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise InvalidRequest("header bytes aiohttp cannot send as they are") from None


def _translated(exc: BaseException) -> UpstreamUnavailable | UpstreamTimeout:
    if isinstance(exc, TimeoutError):  # aiohttp's ServerTimeoutError is one too
        return UpstreamTimeout(f"upstream timed out ({type(exc).__name__})")
    return UpstreamUnavailable(f"upstream failed ({type(exc).__name__})")


class AiohttpResponse:
    """One exchange: status and raw headers, the body through `readany` until `at_eof`;
    `release` (always) hands the connection back, `close` drops it."""

    __slots__ = ("_done", "_release_slot", "_response", "_reusable", "raw_headers", "status")

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        release_slot: asyncio.Semaphore,
        *,
        reusable: bool,
    ) -> None:
        self._response = response
        self._release_slot = release_slot
        self._reusable = reusable  # else closed at release, whatever aiohttp would do
        self._done = False
        self.status = response.status
        self.raw_headers = list(response.raw_headers)

    async def readany(self) -> bytes:
        try:
            return await self._response.content.readany()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _translated(exc) from None

    def at_eof(self) -> bool:
        return self._response.content.at_eof()

    def release(self) -> None:
        if not self._done:
            self._done = True
            if not self._reusable:
                self._response.close()
            self._response.release()  # closes the connection unless the body was read
            self._release_slot.release()

    def close(self) -> None:
        self._response.close()
        self.release()


def _reuse_trace() -> aiohttp.TraceConfig:
    """Records, in the request's `trace_request_ctx` list, that it got a pooled connection."""

    async def reused(_session: Any, context: Any, _params: Any) -> None:
        if isinstance(context.trace_request_ctx, list):
            context.trace_request_ctx.append(True)

    trace = aiohttp.TraceConfig()
    trace.on_connection_reuseconn.append(reused)
    return trace


class AiohttpOrigin:
    """The connections to one upstream origin, on one aiohttp session."""

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
        self.origin = origin.rstrip("/")
        self.loop = asyncio.get_running_loop()
        self.timeout = timeout
        self._queue_timeout = timeout if queue_timeout is None else queue_timeout
        self._slots = asyncio.Semaphore(limit)
        self._check = RequestHead("Host: -\r\n")  # the lean client's refusals, nothing sent
        connector = _Connector(
            limit=limit,
            limit_per_host=limit,
            keepalive_timeout=keepalive,
            ssl=tls if tls is not None else True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            skip_auto_headers=_AMBIENT,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout),
            trace_configs=[_reuse_trace()],
        )
        # aiohttp retries any idempotent method, body or not, whatever part of the answer
        # arrived; `request` retries only what the lean client does
        self._session._retry_connection = False

    async def request(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: AsyncIterator[bytes] | None,
    ) -> AiohttpResponse:
        """Send the request (body streamed) and return once the response headers are in."""
        headers = [(name, _utf8(value)) for name, value in headers]
        _, length = self._check.encode(method, target, headers, body is not None)
        try:
            async with asyncio.timeout(self._queue_timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise UpstreamBusy("every connection to the upstream stayed busy") from None
        try:
            return await self._request(method, target, headers, body, length)
        except BaseException:
            self._slots.release()
            raise

    async def _request(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: AsyncIterator[bytes] | None,
        length: int | None,
    ) -> AiohttpResponse:
        sending = _Body(body, length) if body is not None else None
        retry = body is None and method in IDEMPOTENT
        given: list[ResponseHandler] = []
        token = _GIVEN.set(given)
        try:
            while True:
                reused: list[bool] = []
                try:
                    response = await self._session.request(
                        method,
                        URL(self.origin + target, encoded=True),
                        headers=CIMultiDict(headers),
                        data=sending.chunks() if sending is not None else None,
                        allow_redirects=False,
                        compress=None,
                        trace_request_ctx=reused,
                    )
                except aiohttp.ServerDisconnectedError as exc:
                    # a pooled connection the upstream closed while idle: never seen by it
                    if retry and reused and exc.message == "Server disconnected":
                        retry = False
                        continue
                    raise _translated(exc) from None
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raise _translated(exc) from None
                break
        finally:
            _GIVEN.reset(token)
        status = response.status
        refused = not 200 <= status <= 599  # 101 included: never switched to
        reusable = (
            not refused
            and method != "HEAD"
            and not promises_body(status, response.raw_headers)
            and (sending is None or (sending.sent and 200 <= status < 400))
        )
        if not reusable and given:
            proto = given[-1]
            if response.connection is None:  # already back in the pool: close it there
                proto.close()
            else:
                proto.force_close()  # closed, not pooled, once released
        if refused:
            response.close()
            raise UpstreamUnavailable(f"upstream answered status {status}")
        return AiohttpResponse(response, self._slots, reusable=reusable)

    def close(self) -> None:
        """Close every connection now (the session's own close only awaits that)."""
        connector = self._session.connector
        if connector is not None:
            connector._close()  # the synchronous part of close(); its waiters are futures
        self._session.detach()
