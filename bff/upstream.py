"""The upstream hop: one long-lived aiohttp session per upstream origin.

aiohttp, not httpx, because this is the hot path (DESIGN.md "The hot path": ~19,000
req/s against ~500 for httpx 0.28's pool at 64 concurrent requests, encode/httpx#3215).
Each session is built for a proxy (THREATS.md invariant 3, DESIGN.md rule 9): no cookie
jar (a shared jar carries one user's upstream cookie into another user's request,
gradio GHSA-2mr9-9r47-px2g), no redirects, no decompression, no automatic headers,
explicit timeouts (never a bound on a whole streamed exchange) and connection limits.
aiohttp errors are translated here, where they enter:

    BffError
    ├── UpstreamUnavailable   refused, unreachable, reset, malformed answer  -> 502
    └── UpstreamTimeout       no connection / headers / next chunk in time   -> 504
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
from yarl import URL

from bff.errors import BffError

__all__ = [
    "BodyStream",
    "ClientGone",
    "DisconnectWatch",
    "UpstreamPool",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]

_AUTO_HEADERS = ("User-Agent", "Accept-Encoding", "Accept", "Content-Type")
_READ_BUFSIZE = 1 << 18  # per-connection read buffer: bounds memory, keeps syscalls few


class UpstreamUnavailable(BffError):
    """The upstream refused the connection, could not be reached, or broke the exchange."""


class UpstreamTimeout(BffError):
    """The upstream did not connect, answer or send its next chunk within the timeout."""


class ClientGone(Exception):
    """The browser went away (or stalled) while its request body was being sent."""


class BodyStream:
    """The browser's request body, streamed from ASGI `receive` to the upstream.

    Each chunk must arrive within `timeout` (a stalled upload must not hold an upstream
    connection forever). `on_done` runs once the whole body has been received, so the
    caller knows `receive` is free for disconnect detection.
    """

    __slots__ = ("_on_done", "_receive", "_timeout", "client_gone", "done", "stalled")

    def __init__(self, receive: Receive, *, timeout: float, on_done: Callable[[], None]) -> None:
        self._receive = receive
        self._timeout = timeout
        self._on_done = on_done
        self.done = False
        self.client_gone = False
        self.stalled = False

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            try:
                async with asyncio.timeout(self._timeout):
                    message = await self._receive()
            except TimeoutError:
                self.stalled = True
                raise ClientGone("request body stalled") from None
            if message["type"] == "http.disconnect":
                self.client_gone = True
                raise ClientGone("client disconnected")
            body = message.get("body", b"")
            if body:
                yield body
            if not message.get("more_body", False):
                self.done = True
                self._on_done()
                return


class DisconnectWatch:
    """Notices a browser that disconnects while its upstream exchange runs, and cancels
    that exchange (the upstream response is released on the way out)."""

    __slots__ = ("_delay", "_done", "_receive", "_task", "_timer", "_watcher", "gone")

    def __init__(self, receive: Receive, task: asyncio.Task[Any] | None, *, delay: float) -> None:
        self._receive = receive
        self._delay = delay
        self._task = task
        self._timer: asyncio.TimerHandle | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._done = False
        self.gone = False

    def later(self) -> None:
        """Start watching if the exchange is still running after a short while."""
        if not self._done and self._timer is None and self._watcher is None:
            self._timer = asyncio.get_running_loop().call_later(self._delay, self.start)

    def start(self) -> None:
        if self._done or self._watcher is not None or self._task is None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        if not self._done and self._task is not None:
            self.gone = True
            self._task.cancel()

    def stop(self) -> None:
        self._done = True
        if self._timer is not None:
            self._timer.cancel()
        if self._watcher is not None and not self._watcher.done():
            self._watcher.cancel()


class UpstreamPool:
    """Sessions per origin, created lazily inside the running loop; `aclose` on shutdown."""

    def __init__(self, *, timeout: float, limit_per_host: int = 256) -> None:
        self.timeout = timeout
        self._limit = limit_per_host
        # connect includes waiting for a pooled connection; sock_read covers the response
        # headers and every gap between two body chunks; total=None: streams are unbounded.
        self._timeouts = aiohttp.ClientTimeout(
            total=None, connect=timeout, sock_connect=timeout, sock_read=timeout
        )
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def _session(self, origin: str) -> aiohttp.ClientSession:
        session = self._sessions.get(origin)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limit,
                limit_per_host=self._limit,
                keepalive_timeout=30,
                ttl_dns_cache=60,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                skip_auto_headers=_AUTO_HEADERS,
                timeout=self._timeouts,
                read_bufsize=_READ_BUFSIZE,
                trust_env=False,
                raise_for_status=False,
            )
            self._sessions[origin] = session
        return session

    async def request(
        self,
        origin: str,
        method: str,
        url: URL,
        headers: list[tuple[str, str]],
        body: AsyncIterator[bytes] | None,
    ) -> aiohttp.ClientResponse:
        """Send the request (body streamed) and return once the response headers are in.
        The caller must `release()` the response, whatever happens next."""
        try:
            return await self._session(origin).request(
                method,
                url,
                headers=headers,
                data=body,
                allow_redirects=False,
                compress=None,
                expect100=False,
            )
        except (aiohttp.ServerTimeoutError, TimeoutError) as exc:
            raise UpstreamTimeout(f"upstream {origin} timed out") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamUnavailable(f"upstream {origin} failed ({type(exc).__name__})") from exc

    @staticmethod
    async def read(response: aiohttp.ClientResponse) -> bytes:
        """The next chunk of the response body as it arrives (b"" at the end)."""
        try:
            return await response.content.readany()
        except (aiohttp.ServerTimeoutError, TimeoutError) as exc:
            raise UpstreamTimeout("upstream body timed out") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamUnavailable(f"upstream body failed ({type(exc).__name__})") from exc

    async def aclose(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()
