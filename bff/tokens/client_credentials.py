"""The bff's own access token for `token = "client"` routes: a client-credentials grant
(RFC 6749 §4.4) of the frontend's client, narrowed by the route's `resource`/`scopes`.

Kept in this process only (never in a session: it belongs to no user) until `skew`
seconds before it expires, per (resource, scope); single flight: however many requests
find it missing or due, one grant is in flight, and they all await it (shielded, so a
client that disconnects cannot cancel it). A failure is shared with the requests that
awaited it and not cached.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from bff.errors import IdpError, IdpRejected
from bff.oidc.client import OidcClient
from bff.tokens.records import TokenSet, needs_refresh
from bff.tokens.results import IDP_DOWN, Bearer, TokenResult

__all__ = ["ClientTokens", "GRANT_TIMEOUT"]

_log = logging.getLogger("bff.tokens")

GRANT_TIMEOUT = 15.0  # seconds the provider's answer may take


@dataclass(frozen=True, slots=True)
class _Key:
    resource: str | None
    scope: str | None


class ClientTokens:
    """Client-credentials tokens of one client, cached per process."""

    def __init__(self, *, oidc: OidcClient, clock: Callable[[], float], skew: int) -> None:
        self._oidc = oidc
        self._clock = clock
        self._skew = skew
        self._cache: dict[_Key, TokenSet] = {}
        self._inflight: dict[_Key, asyncio.Task[TokenResult]] = {}

    async def token(
        self, *, resource: str | None, scope: str | None, stale_token: str | None = None
    ) -> TokenResult:
        """The client's token for `resource`/`scope`. `stale_token`: the upstream refused
        this one (401): a new grant, unless it was already replaced."""
        key = _Key(resource, scope)
        cached = self._cache.get(key)
        if (
            cached is not None
            and not needs_refresh(cached, now=self._clock(), skew=self._skew)
            and cached.access_token != stale_token
        ):
            return Bearer(cached.access_token)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._grant(key), name="bff-client-credentials")
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(task)

    def _forget(self, key: _Key, task: asyncio.Task[TokenResult]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]

    async def _grant(self, key: _Key) -> TokenResult:
        try:
            async with asyncio.timeout(GRANT_TIMEOUT):
                fresh = await self._oidc.client_credentials(scope=key.scope, resource=key.resource)
        except IdpRejected as exc:
            _log.error(
                "client credentials grant refused by the provider with %s: check that the "
                "client may use it for this route's resource and scopes",
                exc.error,
            )
            return IDP_DOWN
        except (IdpError, TimeoutError) as exc:
            _log.warning("client credentials grant failed: %s", type(exc).__name__)
            return IDP_DOWN
        self._cache[key] = fresh
        return Bearer(fresh.access_token, refreshed_at=self._clock())
