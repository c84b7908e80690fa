"""The session store's operations besides the session records themselves, as the session
service offers them to the flows above it: login states (put, take once), pending-login
bookkeeping, the refresh lock (and the wake-ups of its waiters: `EndPublisher`), replay
memory, the `sub` / `sid` indexes, and a ping.

Nothing above the session service holds the store: `SessionService` is a `StoreOps`, and
the login flow, the login bounds, back-channel logout, the token manager, readiness and
the admin CLI call these methods.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from bff.session.events import EndPublisher, RefreshWatch
from bff.store import SessionStore

__all__ = ["StoreOps"]


class StoreOps:
    """The store's operations for the flows above the session service."""

    def __init__(
        self, store: SessionStore, *, namespace: str = "", events: EndPublisher | None = None
    ) -> None:
        self._store = store
        self._events = events
        self.namespace = namespace  # a frontend's; "" for the default frontend

    def indexed(self, value: str) -> str:
        """`value` (a `sub` or `sid`) as this frontend's index holds it."""
        return f"{self.namespace}\0{value}" if self.namespace else value

    # ---- login states: single-use, sealed by the login flow ----------------------------
    async def put_login_state(self, state: str, blob: bytes, *, ttl: int) -> None:
        await self._store.put_login_state(state, blob, ttl=ttl)

    async def take_login_state(self, state: str) -> bytes | None:
        """Single use: returned and deleted at once."""
        return await self._store.take_login_state(state)

    # ---- pending logins (`bff.oidc.login_bounds`) --------------------------------------
    async def add_pending(
        self, group: str, member: str, *, limit: int, ttl: int, evict_oldest: bool = False
    ) -> int:
        """0 when counted in `group`; else the seconds until a slot frees (see
        `SessionStore.add_pending`; with `evict_oldest` the oldest make room)."""
        return await self._store.add_pending(
            group, member, limit=limit, ttl=ttl, evict_oldest=evict_oldest
        )

    async def remove_pending(self, group: str, member: str) -> bool:
        """True when `member` was still counted in `group` (not expired or evicted)."""
        return await self._store.remove_pending(group, member)

    # ---- the refresh lock (`bff.tokens`) ---------------------------------------------
    async def acquire_refresh_lock(self, session_hash_value: str, *, lease_ms: int) -> str | None:
        return await self._store.acquire_lock(session_hash_value, lease_ms=lease_ms)

    async def release_refresh_lock(self, session_hash_value: str, owner: str) -> bool:
        return await self._store.release_lock(session_hash_value, owner)

    def refresh_watch(
        self, session_hash_value: str
    ) -> contextlib.AbstractContextManager[RefreshWatch]:
        """Set when the session's refresh lock is released (on any instance) or the
        session ends, while the block runs; never set without an event channel (the
        waiter then polls)."""
        if self._events is None:
            return contextlib.nullcontext(asyncio.Event())
        return self._events.refresh_watch(session_hash_value)

    def refresh_released(self, session_hash_value: str) -> None:
        """Announce, after releasing it, that the session's refresh lock is free (and its
        new tokens stored, if any); never raises, never waits."""
        if self._events is not None:
            self._events.refresh_released(session_hash_value)

    # ---- back-channel logout and administration ----------------------------------------
    async def remember_once(self, key: str, *, ttl: int) -> bool:
        return await self._store.remember_once(key, ttl=ttl)

    async def find(self, *, sub: str | None = None, idp_sid: str | None = None) -> list[str]:
        """Hashes of this frontend's live sessions of one provider session (`idp_sid`,
        preferred) or of one user (`sub`)."""
        if idp_sid:
            return await self._store.sessions_by_idp_sid(self.indexed(idp_sid))
        return await self._store.sessions_by_sub(self.indexed(sub or ""))

    def all_hashes(self) -> AsyncIterator[str]:
        return self._store.all_sessions()

    async def ttl(self, session_hash_value: str) -> int | None:
        return await self._store.session_ttl(session_hash_value)

    async def ping(self) -> None:
        await self._store.ping()
