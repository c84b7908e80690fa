"""The refresh itself, single flight across instances (THREATS.md invariant 8, DESIGN.md
rule 8); `bff.tokens.manager` runs one per session per process and shares its outcome.

- a store lock (`SET NX PX`, random owner token, compare-and-delete release), held
  through the session service, whose lease outlives the provider call; a waiter (one
  task per session per process, however many requests wait) looks at the session and
  the lock again when the holder announces the lock's release on the event channel
  (`SessionService.refresh_released`: pub/sub across instances, so a waiter elsewhere
  picks up the new tokens one round trip after they are stored) and, should that
  announcement be lost, at a slow poll; bounded;
- after taking the lock the session is re-read and re-checked before the provider is
  called; the rotated refresh token is stored (conditionally: `SET XX`, so a logout
  meanwhile is never undone) before anyone uses the new access token;
- only `invalid_grant` ends a session (through `SessionService.end`); everything else
  keeps it.

A route's own token (`bff.tokens.audience`) is obtained the same way, under the same
session lock (a narrowing refresh rotates the session's one refresh token too): a
refresh-token grant with the route's `resource`/`scope`, or an RFC 8693 exchange of the
session's access token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace

from bff.errors import (
    FATAL_REFRESH_ERRORS,
    IdpError,
    IdpRejected,
    StoreUnavailable,
    TokenExchangeUnsupported,
)
from bff.oidc.client import OidcClient
from bff.oidc.dpop import key_from_text
from bff.session.records import Session, short_hash
from bff.session.service import SessionRef, SessionService
from bff.telemetry.audit import AuditEvent, audit
from bff.telemetry.metrics import REFRESH_LOCK_WAIT, count_refresh
from bff.telemetry.tracing import Tracing
from bff.tokens.audience import Audience, route_token, with_route_token
from bff.tokens.records import TokenSet, needs_refresh
from bff.tokens.results import (
    BUSY,
    EXCHANGE_DOWN,
    EXPIRED,
    IDP_DOWN,
    LEASE_OVER,
    STORE_DOWN,
    Bearer,
    TokenResult,
    outcome,
)

__all__ = ["LOCK_LEASE_MS", "LOCK_WAIT_SECONDS", "REFRESH_TIMEOUT", "Refresher"]

_log = logging.getLogger("bff.tokens")

REFRESH_TIMEOUT = 15.0  # the provider call, bounded well inside the lease
LOCK_LEASE_MS = 45_000  # > REFRESH_TIMEOUT + store retries: never expires mid-refresh
LOCK_WAIT_SECONDS = 20.0  # a waiter gives up with 503 + Retry-After, never a logout
# A waiter is woken by the holder's announcement; the poll is the fallback for a lost one
# (pub/sub delivers at most once) or a holder that does not announce (an older version).
_POLL_START, _POLL_GROWTH, _POLL_MAX = 0.05, 1.5, 0.2
_SAVE_RETRIES = (0.05, 0.2, 0.5)  # a Redis failover mid-refresh: keep the rotated token
_LEASE_MARGIN = 5.0  # seconds of the lease kept free for releasing the lock
# Waits and deadlines are durations: they read the injected monotonic clock, not the wall
# clock (which a test may freeze, and which would then never end a bounded wait). Token
# and session expiry read the injected clock.


class Refresher:
    """Refreshes one session's tokens at the provider, once across instances."""

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
        self._monotonic = monotonic
        self._sessions = sessions
        self._oidc = oidc
        self._clock = clock
        self._skew = refresh_skew
        self._resource = resource
        self._tracing = tracing

    async def refresh(
        self, ref: SessionRef, seen_token: str, *, force: bool, audience: Audience | None = None
    ) -> TokenResult:
        """One refresh (of the route token for `audience` when given), counted by outcome
        (and traced as `bff.refresh` when on)."""
        if self._tracing is None:
            result = await self._refresh_once(ref, seen_token, force=force, audience=audience)
        else:
            with self._tracing.span("bff.refresh", {}) as span:
                result = await self._refresh_once(ref, seen_token, force=force, audience=audience)
                span.set_attribute("bff.refresh.outcome", outcome(result))
        count_refresh(outcome(result))
        return result

    async def _refresh_once(
        self, ref: SessionRef, seen_token: str, *, force: bool, audience: Audience | None
    ) -> TokenResult:
        waited = self._monotonic()
        try:
            owner = await self._take_lock(ref, seen_token, audience)
        except StoreUnavailable:
            return STORE_DOWN
        finally:
            REFRESH_LOCK_WAIT.observe(self._monotonic() - waited)
        if not isinstance(owner, str):
            return owner  # someone else refreshed (or the session ended) meanwhile
        try:
            # Everything done under the lock ends before its lease can: another instance
            # must never take the lock while this one may still store a rotated token.
            async with asyncio.timeout(LOCK_LEASE_MS / 1000 - _LEASE_MARGIN):
                return await self._refresh_locked(ref, seen_token, force=force, audience=audience)
        except StoreUnavailable:
            return STORE_DOWN
        except TimeoutError:
            _log.warning("refresh did not finish within its lock lease; session kept")
            return LEASE_OVER
        finally:
            with contextlib.suppress(StoreUnavailable):
                await self._sessions.release_refresh_lock(ref.hash, owner)
            # After the release: a waiter that found the lock taken is watching already.
            self._sessions.refresh_released(ref.hash)

    async def _take_lock(
        self, ref: SessionRef, seen_token: str, audience: Audience | None
    ) -> str | TokenResult:
        """The lock's owner token, or the outcome another instance produced meanwhile."""
        deadline = self._monotonic() + LOCK_WAIT_SECONDS
        delay = _POLL_START
        with self._sessions.refresh_watch(ref.hash) as released:  # before the first try
            while True:
                owner = await self._sessions.acquire_refresh_lock(ref.hash, lease_ms=LOCK_LEASE_MS)
                if owner is not None:
                    return owner
                if self._monotonic() >= deadline:
                    return BUSY
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await released.wait()  # the holder's announcement, or the poll's turn
                released.clear()
                delay = min(delay * _POLL_GROWTH, _POLL_MAX)
                current = await self._sessions.load(ref)
                if current is None:
                    return EXPIRED
                view = _view(current, audience)
                if (
                    view is not None
                    and view.access_token != seen_token
                    and not needs_refresh(view, now=self._clock(), skew=self._skew)
                ):
                    return Bearer.of(view, current.dpop_key)

    async def _refresh_locked(
        self, ref: SessionRef, seen_token: str, *, force: bool, audience: Audience | None
    ) -> TokenResult:
        # Re-read under the lock: another instance may have refreshed already.
        session = await self._sessions.load(ref)
        if session is None:
            return EXPIRED
        view = _view(session, audience)
        now = self._clock()
        if (
            view is not None
            and not needs_refresh(view, now=now, skew=self._skew)
            and (view.access_token != seen_token or not force)
        ):
            return Bearer.of(view, session.dpop_key)
        tokens = session.tokens
        exchange = audience is not None and audience.grant == "exchange"
        if not tokens.refresh_token and not exchange:
            if audience is not None:
                _log.error(
                    "a route with resource or scopes needs a refresh token: ask for "
                    "offline_access (BFF_SCOPES); the session is kept"
                )
                return IDP_DOWN
            if tokens.expires_at is not None and tokens.expires_at > now and not force:
                return Bearer.of(tokens, session.dpop_key)  # still valid; nothing to refresh with
            await self._sessions.end(ref.hash, session, "no_refresh_token")
            return EXPIRED
        try:
            async with asyncio.timeout(REFRESH_TIMEOUT):
                fresh = await self._grant(tokens, audience, session.dpop_key)
        except TokenExchangeUnsupported:
            _log.error(
                "a route has token = exchange but the provider does not advertise "
                "token exchange (grant_types_supported); it answers 502"
            )
            return EXCHANGE_DOWN
        except IdpRejected as exc:
            if exc.error in FATAL_REFRESH_ERRORS and not exchange:
                await self._sessions.end(ref.hash, session, "invalid_grant")
                return EXPIRED
            # invalid_client, invalid_target and friends are *our* misconfiguration (or
            # one route's): keep every session.
            _log.error(
                "%s refused by the provider with %s: check the client and route "
                "configuration; sessions are kept",
                "token exchange" if exchange else "refresh",
                exc.error,
            )
            self._audit("refresh_failed", session, ref, exc.error)
            return IDP_DOWN
        except (IdpError, TimeoutError) as exc:
            _log.warning("refresh failed: %s", type(exc).__name__)
            self._audit("refresh_failed", session, ref, "idp_unavailable")
            return IDP_DOWN
        if audience is None:
            return await self._store_refreshed(ref, session, tokens.merged_with(fresh))
        updated = with_route_token(session, audience, fresh)
        return await self._store_refreshed(ref, session, updated.tokens, updated, fresh)

    async def _grant(
        self, tokens: TokenSet, audience: Audience | None, dpop_key: str | None
    ) -> TokenSet:
        if audience is not None and audience.grant == "exchange":
            grant_type = "token-exchange"  # RFC 8693 (span name; the grant is its URN)
            call = self._oidc.exchange_token(
                tokens.access_token, scope=audience.scope, resource=audience.resource
            )
        else:
            grant_type = "refresh_token"
            refresh_token = tokens.refresh_token or ""  # present: checked by the caller
            if audience is None:  # DPoP: a proof by the session's key (RFC 9449 §5)
                dpop = key_from_text(dpop_key) if dpop_key else None
                call = self._oidc.refresh(refresh_token, resource=self._resource, dpop=dpop)
            else:
                call = self._oidc.refresh(
                    refresh_token, scope=audience.scope, resource=audience.resource
                )
        if self._tracing is None:
            return await call
        attributes: dict[str, str | int] = {"oauth2.grant_type": grant_type}
        with self._tracing.span(f"oauth2 {grant_type} grant", attributes):
            return await call

    async def _store_refreshed(
        self,
        ref: SessionRef,
        session: Session,
        merged: TokenSet,
        changed: Session | None = None,
        issued: TokenSet | None = None,
    ) -> TokenResult:
        """Store `merged` as the session's tokens (`changed`: the whole session, with a
        route's `issued` token) and hand out the new access token."""
        expires_at = session.expires_at
        if merged.refresh_expires_at is not None:  # never outlive the refresh token
            expires_at = min(expires_at, merged.refresh_expires_at)
        updated = replace(changed or session, tokens=merged, expires_at=expires_at)
        # The provider may already have invalidated the old refresh token: losing the new
        # one to a store blip would log the user out, so retry briefly inside the lease.
        for pause in (*_SAVE_RETRIES, None):
            try:
                saved = await self._sessions.save(ref.hash, updated)
                break
            except StoreUnavailable:
                if pause is None:
                    raise
                await asyncio.sleep(pause)
        if not saved:
            # Logged out (or expired) while we refreshed: don't resurrect, and don't
            # leave a fresh refresh token alive at the provider either.
            if merged.refresh_token and merged.refresh_token != session.tokens.refresh_token:
                with contextlib.suppress(IdpError):
                    await self._oidc.revoke(merged.refresh_token)
            return EXPIRED
        self._audit("refresh", session, ref, "success")
        return Bearer.of(issued or merged, session.dpop_key, refreshed_at=self._clock())

    def _audit(self, event: AuditEvent, session: Session, ref: SessionRef, outcome: str) -> None:
        audit(
            event,
            outcome=outcome,
            now=self._clock(),
            sub=session.sub,
            session=short_hash(ref.hash),
        )


def _view(session: Session, audience: Audience | None) -> TokenSet | None:
    """The token a refresh for `audience` replaces: the route's own, or the session's."""
    return session.tokens if audience is None else route_token(session, audience)
