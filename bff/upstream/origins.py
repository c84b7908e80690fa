"""The upstream hop: one keep-alive pool per upstream origin, on the lean HTTP/1.1
client of `bff.upstream_http` (why not aiohttp or httpx, and the rules it keeps for a
proxy, are in its docstring), plus the browser-side helpers of an exchange: its request
body as a stream, disconnect detection, and each session's share of the upstream
connections. The client's errors (502 / 503 / 504, in `bff.errors`) are re-exported
here.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Literal, Protocol

from bff.upstream.client import (
    OriginPool,
    UpstreamBusy,
    UpstreamResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
)

__all__ = [
    "OriginTransport",
    "Transport",
    "UpstreamExchange",
    "BodyStream",
    "ClientGone",
    "DisconnectWatch",
    "SessionSlots",
    "UpstreamBusy",
    "UpstreamPool",
    "UpstreamResponse",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]

Transport = Literal["lean", "aiohttp"]  # BFF_UPSTREAM_TRANSPORT


class UpstreamExchange(Protocol):
    """One exchange as the proxy reads it: status and raw headers once the transport's
    `request` returns, the body through `readany()` until `at_eof()`; `release()` always
    (hands a fully read connection back), `close()` to drop the connection."""

    status: int
    raw_headers: list[tuple[bytes, bytes]]

    async def readany(self) -> bytes: ...

    def at_eof(self) -> bool: ...

    def release(self) -> None: ...

    def close(self) -> None: ...


class OriginTransport(Protocol):
    """The connections to one upstream origin: the lean client (`upstream_http.OriginPool`,
    the default) or the aiohttp reference (`upstream_aiohttp.AiohttpOrigin`). Errors are
    UpstreamUnavailable (UpstreamBusy when no connection freed up within the queue wait)
    and UpstreamTimeout."""

    loop: asyncio.AbstractEventLoop

    async def request(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: AsyncIterator[bytes] | None,
    ) -> UpstreamExchange: ...

    def close(self) -> None: ...


def origin_transport(
    kind: Transport,
    origin: str,
    *,
    timeout: float,
    limit: int,
    queue_timeout: float | None = None,
) -> OriginTransport:
    if kind == "aiohttp":
        from bff.upstream.aiohttp_transport import AiohttpOrigin  # the optional `aiohttp` extra

        return AiohttpOrigin(origin, timeout=timeout, limit=limit, queue_timeout=queue_timeout)
    return OriginPool(origin, timeout=timeout, limit=limit, queue_timeout=queue_timeout)


Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]


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


class SessionSlots:
    """At most `limit` upstream exchanges of one session in flight at once (in this
    process, whatever their origins), so that one session's slow uploads or slow reads
    cannot take every connection to an origin (THREATS.md invariant 14). A request past
    its share waits up to `wait` seconds for one of its session's exchanges to end, then
    UpstreamBusy. Keys are session hashes; a key disappears with its last exchange."""

    __slots__ = ("_held", "_limit", "_queues", "_wait")

    def __init__(self, *, limit: int, wait: float) -> None:
        self._limit = limit
        self._wait = wait
        self._held: dict[str, int] = {}
        self._queues: dict[str, collections.deque[asyncio.Future[None]]] = {}

    def take(self, key: str) -> bool:
        """A slot now, if the session has one free: the common case, without an await."""
        held = self._held.get(key, 0)
        if held < self._limit:  # (never while others queue: `release` hands slots over)
            self._held[key] = held + 1
            return True
        return False

    async def acquire(self, key: str) -> None:
        """A slot, waiting up to `wait` seconds for one; UpstreamBusy after that."""
        if self.take(key):
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(key, collections.deque()).append(waiter)
        try:
            async with asyncio.timeout(self._wait):
                try:
                    await waiter  # a finished exchange hands its slot over: count unchanged
                except BaseException:
                    if waiter.done() and not waiter.cancelled():
                        self.release(key)  # handed over, but leaving: pass it on
                    else:
                        self._forget(key, waiter)
                    raise
        except TimeoutError:
            raise UpstreamBusy(
                f"a session already has {self._limit} upstream requests in flight"
            ) from None

    def release(self, key: str) -> None:
        queue = self._queues.get(key)
        while queue:
            waiter = queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                if not queue:
                    del self._queues[key]
                return
        if queue is not None:
            del self._queues[key]
        held = self._held[key] - 1
        if held:
            self._held[key] = held
        else:
            del self._held[key]

    def _forget(self, key: str, waiter: asyncio.Future[None]) -> None:
        queue = self._queues.get(key)
        if queue is not None:
            with contextlib.suppress(ValueError):
                queue.remove(waiter)
            if not queue:
                del self._queues[key]


class UpstreamPool:
    """One connection pool per origin, created lazily inside the running loop (at most
    `limit_per_host` connections each, a request waiting at most `queue_timeout` seconds
    for one; idle ones closed after 30 s); `aclose` on shutdown."""

    def __init__(
        self,
        *,
        timeout: float,
        limit_per_host: int = 256,
        queue_timeout: float | None = None,
        transport: Transport = "lean",
    ) -> None:
        # connecting, the response headers and every gap between two body chunks are
        # bounded by `timeout`, never a whole (streamed) exchange; the wait for a free
        # connection by `queue_timeout` (default: `timeout`).
        self.timeout = timeout
        self._limit = limit_per_host
        self._queue_timeout = queue_timeout
        self._transport: Transport = transport
        self._pools: dict[str, OriginTransport] = {}

    def _pool(self, origin: str) -> OriginTransport:
        pool = self._pools.get(origin)
        if pool is None or pool.loop is not asyncio.get_running_loop():
            if pool is not None:  # made in another loop (tests): that loop may be closed
                with contextlib.suppress(RuntimeError):
                    pool.close()
            pool = origin_transport(
                self._transport,
                origin,
                timeout=self.timeout,
                limit=self._limit,
                queue_timeout=self._queue_timeout,
            )
            self._pools[origin] = pool
        return pool

    async def request(
        self,
        origin: str,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: AsyncIterator[bytes] | None,
    ) -> UpstreamExchange:
        """Send `method target` (path and query, already canonical: sent byte for byte)
        with exactly `headers` (plus `Host` and body framing), the body streamed; return
        once the response headers are in. The caller must `release()` the response,
        whatever happens next; its body comes through `readany()` until `at_eof()`."""
        try:
            return await self._pool(origin).request(method, target, headers, body)
        except ValueError as exc:  # InvalidRequest, or aiohttp's refusal of a header
            # Unreachable through the header rules and uvicorn's parser; should it ever
            # happen, a 502 without a traceback, nothing sent.
            raise UpstreamUnavailable(f"request not sent upstream ({exc})") from None

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()
