"""Access tokens for proxied requests, refreshed ahead of expiry exactly once.

Expected outcomes are result values (Duende's access-token management does the same):

    Bearer        a usable access token
    NoToken       no session, or the session has ended        -> 401
    TokenFailure  the provider or the store failed             -> 502 / 503, session kept

Refresh discipline (THREATS.md invariant 8, DESIGN.md rule 8):
- single flight per session *in this process*: one task per session hash that every
  concurrent request awaits (shielded, so a client that disconnects cannot cancel a
  refresh between the provider's answer and the store write);
- single flight *across instances*: a store lock (`SET NX PX`, random owner token,
  compare-and-delete release) whose lease outlives the provider call; waiters poll the
  session and the lock, bounded, and pick up the new tokens when the owner stores them;
- after taking the lock the session is re-read and re-checked before the provider is
  called; the rotated refresh token is stored (conditionally: `SET XX`, so a logout
  meanwhile is never undone) before anyone uses the new access token;
- only `invalid_grant` ends a session; everything else keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from bff.answers import TABLE, Kind
from bff.errors import FATAL_REFRESH_ERRORS, IdpError, IdpRejected, StoreUnavailable
from bff.oidc.client import OidcClient
from bff.session.records import Session, short_hash
from bff.session.service import SessionRef, SessionService
from bff.telemetry.audit import AuditEvent, audit
from bff.telemetry.metrics import REFRESH_COALESCED, REFRESH_LOCK_WAIT, count_refresh
from bff.telemetry.tracing import Tracing
from bff.tokens.records import TokenSet, needs_refresh

__all__ = [
    "LOCK_LEASE_MS",
    "LOCK_WAIT_SECONDS",
    "REFRESH_TIMEOUT",
    "STORE_DOWN",
    "Bearer",
    "NoToken",
    "TokenFailure",
    "TokenManager",
    "TokenResult",
]

_log = logging.getLogger("bff.tokens")

REFRESH_TIMEOUT = 15.0  # the provider call, bounded well inside the lease
LOCK_LEASE_MS = 45_000  # > REFRESH_TIMEOUT + store retries: never expires mid-refresh
LOCK_WAIT_SECONDS = 20.0  # a waiter gives up with 503 + Retry-After, never a logout
RECENT_SECONDS = 5.0  # how long a finished refresh's outcome is shared in-process
# Another instance's refresh usually ends within one provider round trip: poll often at
# first (one task per session per process polls, however many requests wait), then less.
_POLL_START, _POLL_GROWTH, _POLL_MAX = 0.005, 1.5, 0.05
_SAVE_RETRIES = (0.05, 0.2, 0.5)  # a Redis failover mid-refresh: keep the rotated token
_LEASE_MARGIN = 5.0  # seconds of the lease kept free for releasing the lock
# Waits, deadlines and shared-outcome windows are durations: they read time.monotonic,
# not the injected wall clock (which a test may freeze, and which would then never end a
# bounded wait). Token and session expiry read the injected clock.


@dataclass(frozen=True, slots=True)
class Bearer:
    token: str = field(repr=False)
    refreshed_at: float | None = None  # set when this token came from a refresh


@dataclass(frozen=True, slots=True)
class _Answered:
    """A result that is an error answer; its kind names it (`bff.answers`)."""

    kind: Kind

    @property
    def status(self) -> int:
        return TABLE[self.kind].status

    @property
    def code(self) -> str:
        return TABLE[self.kind].code

    @property
    def description(self) -> str:
        return TABLE[self.kind].description

    @property
    def retry_after(self) -> int | None:
        return TABLE[self.kind].retry_after


@dataclass(frozen=True, slots=True)
class NoToken(_Answered):
    """No usable session: 401 `not_authenticated` or `session_expired`."""


@dataclass(frozen=True, slots=True)
class TokenFailure(_Answered):
    """The provider or the store failed; the session is kept (502 idp_unavailable, 503
    session_store_unavailable, 503 refresh_in_progress / refresh_timeout)."""


TokenResult = Bearer | NoToken | TokenFailure

_EXPIRED = NoToken(Kind.SESSION_EXPIRED)
_IDP_DOWN = TokenFailure(Kind.IDP_UNAVAILABLE)
STORE_DOWN = TokenFailure(Kind.SESSION_STORE_UNAVAILABLE)
_BUSY = TokenFailure(Kind.REFRESH_IN_PROGRESS)
_LEASE_OVER = TokenFailure(Kind.REFRESH_TIMEOUT)
# bff_refresh_total{outcome} of each result a refresh can end with
_OUTCOMES: dict[TokenResult, str] = {
    _EXPIRED: "session_ended",
    _IDP_DOWN: "idp_unavailable",
    STORE_DOWN: "store_unavailable",
    _BUSY: "lock_busy",
    _LEASE_OVER: "timeout",
}


def _outcome(result: TokenResult) -> str:
    if isinstance(result, Bearer):
        return "success" if result.refreshed_at is not None else "not_needed"
    return _OUTCOMES.get(result, "other")


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
    ) -> None:
        self._sessions = sessions
        self._oidc = oidc
        self._clock = clock
        self._skew = refresh_skew
        self._resource = resource
        self._tracing = tracing
        self._inflight: dict[str, asyncio.Task[TokenResult]] = {}
        self._recent: dict[str, _Recent] = {}

    async def access_token_for(
        self, ref: SessionRef, session: Session, *, stale_token: str | None = None
    ) -> TokenResult:
        """The access token to send upstream. `stale_token`: the upstream refused this
        token (401) - refresh unless someone already replaced it."""
        tokens = session.tokens
        if stale_token is None and not needs_refresh(tokens, now=self._clock(), skew=self._skew):
            return Bearer(tokens.access_token)
        recent = self._recent.get(ref.hash)
        if (
            stale_token is not None
            and recent is not None
            and recent.until > time.monotonic()
            and isinstance(recent.result, Bearer)
        ):
            # Refreshed moments ago: the upstream's 401 stands, and an upstream that
            # always answers 401 cannot make every request refresh.
            REFRESH_COALESCED.inc()
            return recent.result
        if recent is not None:
            if recent.until > time.monotonic() and recent.old_token == tokens.access_token:
                REFRESH_COALESCED.inc()
                return recent.result
            if recent.until <= time.monotonic():
                del self._recent[ref.hash]
        task = self._inflight.get(ref.hash)
        if task is None:
            task = asyncio.create_task(
                self._refresh(ref, tokens.access_token, force=stale_token is not None),
                name=f"bff-refresh-{short_hash(ref.hash)}",
            )
            self._inflight[ref.hash] = task
            task.add_done_callback(
                functools.partial(self._finished, ref.hash, old=tokens.access_token)
            )
        else:
            REFRESH_COALESCED.inc()
        # Shielded: a waiter's cancellation (client gone) must not cancel the refresh.
        return await asyncio.shield(task)

    def _finished(self, session_hash: str, task: asyncio.Task[TokenResult], *, old: str) -> None:
        if self._inflight.get(session_hash) is task:
            del self._inflight[session_hash]
        if task.cancelled() or task.exception() is not None:
            return
        result = task.result()
        if isinstance(result, (Bearer, NoToken)):
            now = time.monotonic()
            if len(self._recent) > 10_000:  # bounded: drop what has expired
                self._recent = {k: v for k, v in self._recent.items() if v.until > now}
            self._recent[session_hash] = _Recent(old, result, now + RECENT_SECONDS)

    async def _refresh(self, ref: SessionRef, seen_token: str, *, force: bool) -> TokenResult:
        """One refresh, counted by outcome (and traced as `bff.refresh` when on)."""
        if self._tracing is None:
            result = await self._refresh_once(ref, seen_token, force=force)
        else:
            with self._tracing.span("bff.refresh", {}) as span:
                result = await self._refresh_once(ref, seen_token, force=force)
                span.set_attribute("bff.refresh.outcome", _outcome(result))
        count_refresh(_outcome(result))
        return result

    async def _refresh_once(self, ref: SessionRef, seen_token: str, *, force: bool) -> TokenResult:
        waited = time.monotonic()
        try:
            owner = await self._take_lock(ref, seen_token)
        except StoreUnavailable:
            return STORE_DOWN
        finally:
            REFRESH_LOCK_WAIT.observe(time.monotonic() - waited)
        if not isinstance(owner, str):
            return owner  # someone else refreshed (or the session ended) meanwhile
        try:
            # Everything done under the lock ends before its lease can: another instance
            # must never take the lock while this one may still store a rotated token.
            async with asyncio.timeout(LOCK_LEASE_MS / 1000 - _LEASE_MARGIN):
                return await self._refresh_locked(ref, seen_token, force=force)
        except StoreUnavailable:
            return STORE_DOWN
        except TimeoutError:
            _log.warning("refresh did not finish within its lock lease; session kept")
            return _LEASE_OVER
        finally:
            with contextlib.suppress(StoreUnavailable):
                await self._sessions.release_refresh_lock(ref.hash, owner)

    async def _take_lock(self, ref: SessionRef, seen_token: str) -> str | TokenResult:
        """The lock's owner token, or the outcome another instance produced meanwhile."""
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        delay = _POLL_START
        while True:
            owner = await self._sessions.acquire_refresh_lock(ref.hash, lease_ms=LOCK_LEASE_MS)
            if owner is not None:
                return owner
            if time.monotonic() >= deadline:
                return _BUSY
            await asyncio.sleep(delay)
            delay = min(delay * _POLL_GROWTH, _POLL_MAX)
            current = await self._sessions.load(ref)
            if current is None:
                return _EXPIRED
            if current.tokens.access_token != seen_token and not needs_refresh(
                current.tokens, now=self._clock(), skew=self._skew
            ):
                return Bearer(current.tokens.access_token)

    async def _refresh_locked(
        self, ref: SessionRef, seen_token: str, *, force: bool
    ) -> TokenResult:
        # Re-read under the lock: another instance may have refreshed already.
        session = await self._sessions.load(ref)
        if session is None:
            return _EXPIRED
        tokens = session.tokens
        now = self._clock()
        if tokens.access_token != seen_token and not needs_refresh(
            tokens, now=now, skew=self._skew
        ):
            return Bearer(tokens.access_token)
        if not force and not needs_refresh(tokens, now=now, skew=self._skew):
            return Bearer(tokens.access_token)
        if not tokens.refresh_token:
            if tokens.expires_at is not None and tokens.expires_at > now and not force:
                return Bearer(tokens.access_token)  # still valid; nothing to refresh with
            await self._sessions.end(ref.hash, session, "no_refresh_token")
            return _EXPIRED
        try:
            async with asyncio.timeout(REFRESH_TIMEOUT):
                fresh = await self._grant(tokens.refresh_token)
        except IdpRejected as exc:
            if exc.error in FATAL_REFRESH_ERRORS:
                await self._sessions.end(ref.hash, session, "invalid_grant")
                return _EXPIRED
            # invalid_client and friends are *our* misconfiguration: keep every session.
            _log.error(
                "refresh refused by the provider with %s: check the client "
                "configuration; sessions are kept",
                exc.error,
            )
            self._audit("refresh_failed", session, ref, exc.error)
            return _IDP_DOWN
        except (IdpError, TimeoutError) as exc:
            _log.warning("refresh failed: %s", type(exc).__name__)
            self._audit("refresh_failed", session, ref, "idp_unavailable")
            return _IDP_DOWN
        return await self._store_refreshed(ref, session, tokens.merged_with(fresh))

    async def _grant(self, refresh_token: str) -> TokenSet:
        if self._tracing is None:
            return await self._oidc.refresh(refresh_token, resource=self._resource)
        attributes: dict[str, str | int] = {"oauth2.grant_type": "refresh_token"}
        with self._tracing.span("oauth2 refresh_token grant", attributes):
            return await self._oidc.refresh(refresh_token, resource=self._resource)

    async def _store_refreshed(
        self, ref: SessionRef, session: Session, merged: TokenSet
    ) -> TokenResult:
        expires_at = session.expires_at
        if merged.refresh_expires_at is not None:  # never outlive the refresh token
            expires_at = min(expires_at, merged.refresh_expires_at)
        updated = replace(session, tokens=merged, expires_at=expires_at)
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
            return _EXPIRED
        self._audit("refresh", session, ref, "success")
        return Bearer(merged.access_token, refreshed_at=self._clock())

    def _audit(self, event: AuditEvent, session: Session, ref: SessionRef, outcome: str) -> None:
        audit(
            event,
            outcome=outcome,
            now=self._clock(),
            sub=session.sub,
            session=short_hash(ref.hash),
        )
