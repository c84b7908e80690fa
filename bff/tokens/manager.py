"""The access token a proxied request sends upstream: the session's own while it is
fresh, else the outcome of one refresh, shared.

Single flight per session *in this process*: one task per session hash that every
concurrent request awaits (shielded, so a client that disconnects cannot cancel a refresh
between the provider's answer and the store write), and its outcome shared for a few
seconds with requests that still carry the old token. The refresh itself, single flight
across instances, is `bff.tokens.refresh`; the results are `bff.tokens.results`.

A route with its own token (`bff.tokens.audience`) is served the same way, its single
flight keyed by session *and* audience; when that token is in the session record the
request costs nothing more than the session's load.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bff.config.model import RouteConfig
from bff.oidc.client import OidcClient
from bff.session.records import Session, short_hash
from bff.session.service import SessionRef, SessionService
from bff.telemetry.metrics import REFRESH_COALESCED
from bff.telemetry.tracing import Tracing
from bff.tokens.audience import Audience, audience_for, route_token
from bff.tokens.client_credentials import ClientTokens
from bff.tokens.records import needs_refresh
from bff.tokens.refresh import Refresher
from bff.tokens.results import Bearer, NoToken, TokenResult

__all__ = ["RECENT_MAX", "RECENT_SECONDS", "TokenManager"]

RECENT_SECONDS = 5.0  # how long a finished refresh's outcome is shared in-process
RECENT_MAX = 10_000  # outcomes kept at most (a dropped one costs a refresh re-check)
# The shared-outcome window is a duration: it reads the monotonic clock, not the wall
# clock. Token expiry reads the injected clock.


@dataclass(slots=True)
class _Recent:
    old_token: str = field(repr=False)
    result: TokenResult
    until: float


class TokenManager:
    """Hands out the session's access token, refreshing it ahead of expiry."""

    def __init__(
        self,
        *,
        sessions: SessionService,
        oidc: OidcClient,
        clock: Callable[[], float],
        refresh_skew: int,
        resource: str | None = None,
        tracing: Tracing | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._monotonic = monotonic
        self._skew = refresh_skew
        self._refresher = Refresher(
            sessions=sessions,
            oidc=oidc,
            clock=clock,
            refresh_skew=refresh_skew,
            resource=resource,
            tracing=tracing,
            monotonic=monotonic,
        )
        self._inflight: dict[str, asyncio.Task[TokenResult]] = {}
        self._recent: dict[str, _Recent] = {}
        self.clients = ClientTokens(oidc=oidc, clock=clock, skew=refresh_skew)

    async def for_route(
        self,
        ref: SessionRef,
        session: Session,
        route: RouteConfig,
        *,
        stale_token: str | None = None,
    ) -> TokenResult:
        """The token `route` is sent under its `token` setting: the client's own, the
        route's own (`resource`/`scopes`, exchange), or the session's."""
        if route.token == "client":
            return await self.clients.token(
                resource=route.resource, scope=route.scopes, stale_token=stale_token
            )
        return await self.access_token_for(
            ref, session, stale_token=stale_token, audience=audience_for(route)
        )

    async def access_token_for(
        self,
        ref: SessionRef,
        session: Session,
        *,
        stale_token: str | None = None,
        audience: Audience | None = None,
    ) -> TokenResult:
        """The access token to send upstream (the route's own for `audience`).
        `stale_token`: the upstream refused this token (401) - refresh unless someone
        already replaced it."""
        tokens = session.tokens if audience is None else route_token(session, audience)
        if (
            tokens is not None
            and stale_token is None
            and not needs_refresh(tokens, now=self._clock(), skew=self._skew)
        ):
            return Bearer.of(tokens, session.dpop_key)
        if audience is not None and audience.grant == "exchange":
            # The exchange's subject is the session's own token: fresh first.
            subject = await self.access_token_for(ref, session)
            if not isinstance(subject, Bearer):
                return subject
        seen = tokens.access_token if tokens is not None else ""
        key = ref.hash if audience is None else f"{ref.hash} {audience.key}"
        recent = self._recent.get(key)
        if (
            stale_token is not None
            and recent is not None
            and recent.until > self._monotonic()
            and isinstance(recent.result, Bearer)
        ):
            # Refreshed moments ago: the upstream's 401 stands, and an upstream that
            # always answers 401 cannot make every request refresh.
            REFRESH_COALESCED.inc()
            return recent.result
        if recent is not None:
            if recent.until > self._monotonic() and recent.old_token == seen:
                REFRESH_COALESCED.inc()
                return recent.result
            if recent.until <= self._monotonic():
                del self._recent[key]
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(
                self._refresher.refresh(
                    ref, seen, force=stale_token is not None, audience=audience
                ),
                name=f"bff-refresh-{short_hash(ref.hash)}",
            )
            self._inflight[key] = task
            task.add_done_callback(functools.partial(self._finished, key, old=seen))
        else:
            REFRESH_COALESCED.inc()
        # Shielded: a waiter's cancellation (client gone) must not cancel the refresh.
        return await asyncio.shield(task)

    def _finished(self, key: str, task: asyncio.Task[TokenResult], *, old: str) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if task.cancelled() or task.exception() is not None:
            return
        result = task.result()
        if isinstance(result, (Bearer, NoToken)):
            now = self._monotonic()
            # Re-inserted at the end, so the table stays in expiry order: what has expired
            # (and, past the bound, the oldest) leaves from the front, O(1) per refresh.
            self._recent.pop(key, None)
            self._recent[key] = _Recent(old, result, now + RECENT_SECONDS)
            recent = self._recent
            while True:  # ends at the latest on the entry just added
                first = next(iter(recent))
                if len(recent) <= RECENT_MAX and recent[first].until > now:
                    break
                del recent[first]
