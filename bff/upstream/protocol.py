"""What the proxy needs of an upstream transport, as Protocols (pure: types only): one
origin's connections (`OriginTransport`) and one exchange on them (`UpstreamExchange`).
The lean client (`bff.upstream.client`) and the aiohttp reference
(`bff.upstream.aiohttp_transport`) implement them; `BFF_UPSTREAM_TRANSPORT` chooses
(`Transport`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Literal, Protocol

__all__ = ["OriginTransport", "Transport", "UpstreamExchange"]

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
    """The connections to one upstream origin: the lean client
    (`bff.upstream.client.LeanOrigin`, the default) or the aiohttp reference
    (`bff.upstream.aiohttp_transport.AiohttpOrigin`). Errors are UpstreamUnavailable
    (UpstreamBusy when no connection freed up within the queue wait) and UpstreamTimeout."""

    async def request(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: AsyncIterator[bytes] | None,
    ) -> UpstreamExchange: ...

    def close(self) -> None: ...
