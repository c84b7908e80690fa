"""The upstream transports by origin: one `OriginTransport` per upstream origin, made
lazily inside the running loop by the transport `BFF_UPSTREAM_TRANSPORT` selects (the
lean client by default, the aiohttp reference on request), and closed on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from bff.errors import UpstreamUnavailable
from bff.upstream.client import LeanOrigin
from bff.upstream.protocol import OriginTransport, Transport, UpstreamExchange

__all__ = ["UpstreamPool", "origin_transport"]


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
    return LeanOrigin(origin, timeout=timeout, limit=limit, queue_timeout=queue_timeout)


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
        self._loop: asyncio.AbstractEventLoop | None = None  # the one they were made in

    def _pool(self, origin: str) -> OriginTransport:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # made in another loop (tests): that loop may be closed
            pools, self._pools, self._loop = list(self._pools.values()), {}, loop
            for stale in pools:
                with contextlib.suppress(RuntimeError):
                    stale.close()
        pool = self._pools.get(origin)
        if pool is None:
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
