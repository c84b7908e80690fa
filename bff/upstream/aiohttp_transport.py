"""A reference upstream transport on aiohttp, implementing the same `OriginTransport`
Protocol as the lean client (`bff.upstream_http.OriginPool`), selectable by
`BFF_UPSTREAM_TRANSPORT = "aiohttp"` (needs the `aiohttp` extra). It exists so the lean
client is proven against a well-kept implementation (the upstream test suite runs on
both) and can be swapped out if it ever misbehaves.

Kept to a proxy's rules: no cookie jar, no redirects followed, no decompression, no
ambient headers (User-Agent, Accept, Accept-Encoding, a body's Content-Type), no proxy
from the environment; at most `limit` connections, a request waits at most
`queue_timeout` for one (UpstreamBusy), and connecting, the response headers and every
gap between two body chunks are bounded by `timeout` (UpstreamTimeout), never a whole
streamed exchange.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterable

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from bff.errors import UpstreamBusy, UpstreamTimeout, UpstreamUnavailable

__all__ = ["AiohttpOrigin", "AiohttpResponse"]

_KEEPALIVE = 30.0  # seconds an idle connection is kept (the lean client's too)
_AMBIENT = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


def _translated(exc: BaseException) -> UpstreamUnavailable | UpstreamTimeout:
    if isinstance(exc, TimeoutError):  # aiohttp's ServerTimeoutError is one too
        return UpstreamTimeout(f"upstream timed out ({type(exc).__name__})")
    return UpstreamUnavailable(f"upstream failed ({type(exc).__name__})")


class AiohttpResponse:
    """One exchange: status and raw headers, the body through `readany` until `at_eof`;
    `release` (always) hands the connection back, `close` drops it."""

    __slots__ = ("_done", "_release_slot", "_response", "raw_headers", "status")

    def __init__(self, response: aiohttp.ClientResponse, release_slot: asyncio.Semaphore) -> None:
        self._response = response
        self._release_slot = release_slot
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
            self._response.release()  # closes the connection unless the body was read
            self._release_slot.release()

    def close(self) -> None:
        self._response.close()
        self.release()


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
        connector = aiohttp.TCPConnector(
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
        )

    async def request(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: AsyncIterator[bytes] | None,
    ) -> AiohttpResponse:
        """Send the request (body streamed) and return once the response headers are in."""
        try:
            async with asyncio.timeout(self._queue_timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise UpstreamBusy("every connection to the upstream stayed busy") from None
        try:
            response = await self._session.request(
                method,
                URL(self.origin + target, encoded=True),
                headers=CIMultiDict(headers),
                data=body,
                allow_redirects=False,
                compress=None,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._slots.release()
            raise _translated(exc) from None
        except BaseException:
            self._slots.release()
            raise
        return AiohttpResponse(response, self._slots)

    def close(self) -> None:
        """Close every connection now (the session's own close only awaits that)."""
        connector = self._session.connector
        if connector is not None:
            connector._close()  # the synchronous part of close(); its waiters are futures
        self._session.detach()
