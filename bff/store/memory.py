"""In-process session store: the demo's `memory://` and the reference for the contract tests.

It mirrors the Redis store's semantics exactly (TTLs, conditional writes, single-use login
state, leased locks, indexes that only ever report live sessions) but on an injected clock,
so tests advance time instead of sleeping. Blobs are copied on the way in and out: a caller
can never observe, or depend on, an object the store kept. One process only: `memory://`
with several workers is refused at start-up, because each would hold its own sessions.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from bff.store import IndexEntry

__all__ = ["MemoryStore"]

_T = TypeVar("_T")
# The characters the Redis layout can carry inside a hash tag; both stores refuse others.
_HASH_RE = re.compile(r"[0-9A-Za-z_-]{1,128}")
# Expired entries nobody asks for again (abandoned logins, old `jti`s) are swept this often.
_SWEEP_INTERVAL = 60.0


def _check_hash(session_hash: str) -> str:
    if not _HASH_RE.fullmatch(session_hash):
        raise ValueError("session hash must be 1-128 characters of [0-9A-Za-z_-]")
    return session_hash


def _check_ttl(ttl: int | float, what: str = "ttl") -> None:
    if ttl <= 0:
        raise ValueError(f"{what} must be positive")


def _copy(blob: bytes) -> bytes:
    # bytes(memoryview(...)) always builds a new object, also from bytes, bytearray or a view.
    return bytes(memoryview(blob))


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class MemoryStore:
    """A `SessionStore` held in dicts; every entry carries its own deadline on `clock`."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        # value, deadline (absolute, on `clock`)
        self._sessions: dict[str, tuple[bytes, float]] = {}
        self._locks: dict[str, tuple[str, float]] = {}
        self._logins: dict[str, tuple[bytes, float]] = {}
        self._once: dict[str, float] = {}
        # group digest -> {member digest: deadline}, in insertion order (oldest first)
        self._pending: dict[str, dict[str, float]] = {}
        # (kind, sub or sid) -> {session hash: absolute expiry}
        self._index: dict[tuple[str, str], dict[str, int]] = {}
        self._last_sweep = clock()

    # --- helpers --------------------------------------------------------------------
    @staticmethod
    def _live(table: dict[str, tuple[_T, float]], key: str, now: float) -> _T | None:
        """The value under `key` if not expired; an expired entry is dropped on sight."""
        entry = table.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del table[key]
            return None
        return entry[0]

    def _maybe_sweep(self, now: float) -> None:
        if now - self._last_sweep < _SWEEP_INTERVAL:
            return
        self._last_sweep = now
        for table in (self._sessions, self._locks, self._logins):
            for key in [k for k, (_, deadline) in table.items() if deadline <= now]:
                del table[key]
        for key in [k for k, deadline in self._once.items() if deadline <= now]:
            del self._once[key]
        for group in list(self._pending):
            self._live_pending(group, now)
        for name in list(self._index):
            self._prune(name, now)

    def _prune(self, name: tuple[str, str], now: float) -> list[str]:
        """Drop stale members of one index (past their expiry or session gone); live ones."""
        members = self._index.get(name)
        if members is None:
            return []
        live = []
        for session_hash, expires_at in list(members.items()):
            if expires_at >= now and self._live(self._sessions, session_hash, now) is not None:
                live.append(session_hash)
            else:
                del members[session_hash]
        if not members:
            del self._index[name]
        return live

    def _index_names(self, index: IndexEntry) -> list[tuple[str, str]]:
        names = [("sub", index.sub)]
        if index.idp_sid is not None:
            names.append(("sid", index.idp_sid))
        return names

    # --- sessions -------------------------------------------------------------------
    async def create_session(
        self, session_hash: str, blob: bytes, *, ttl: int, index: IndexEntry
    ) -> None:
        """Store a new session for `ttl` seconds and add it to the sub / sid indexes."""
        _check_hash(session_hash)
        _check_ttl(ttl)
        now = self._clock()
        self._maybe_sweep(now)
        self._sessions[session_hash] = (_copy(blob), now + ttl)
        for name in self._index_names(index):
            self._index.setdefault(name, {})[session_hash] = index.expires_at

    async def load_session(self, session_hash: str, *, ttl: int) -> bytes | None:
        """Return the blob and slide its expiry to `ttl` seconds; None when absent."""
        _check_hash(session_hash)
        _check_ttl(ttl)
        now = self._clock()
        blob = self._live(self._sessions, session_hash, now)
        if blob is None:
            return None
        self._sessions[session_hash] = (blob, now + ttl)
        return _copy(blob)

    async def update_session(self, session_hash: str, blob: bytes, *, ttl: int) -> bool:
        """Replace the blob only while the session exists; never resurrects one."""
        _check_hash(session_hash)
        _check_ttl(ttl)
        now = self._clock()
        if self._live(self._sessions, session_hash, now) is None:
            return False
        self._sessions[session_hash] = (_copy(blob), now + ttl)
        return True

    async def delete_session(self, session_hash: str, *, index: IndexEntry | None) -> bool:
        """Delete the session, its lock and its index entries. True if it existed."""
        _check_hash(session_hash)
        now = self._clock()
        existed = self._live(self._sessions, session_hash, now) is not None
        self._sessions.pop(session_hash, None)
        self._locks.pop(session_hash, None)
        if index is not None:
            for name in self._index_names(index):
                members = self._index.get(name)
                if members is not None:
                    members.pop(session_hash, None)
                    if not members:
                        del self._index[name]
        return existed

    async def session_ttl(self, session_hash: str) -> int | None:
        """Remaining seconds, rounded like Redis `TTL`; None when absent."""
        _check_hash(session_hash)
        now = self._clock()
        if self._live(self._sessions, session_hash, now) is None:
            return None
        return int(self._sessions[session_hash][1] - now + 0.5)

    async def sessions_by_sub(self, sub: str) -> list[str]:
        """Hashes of the live sessions of one user."""
        return self._prune(("sub", sub), self._clock())

    async def sessions_by_idp_sid(self, idp_sid: str) -> list[str]:
        """Hashes of the live sessions of one provider session."""
        return self._prune(("sid", idp_sid), self._clock())

    async def all_sessions(self) -> AsyncIterator[str]:
        """Every live session hash, from a snapshot taken when iteration starts."""
        now = self._clock()
        live = [h for h in list(self._sessions) if self._live(self._sessions, h, now) is not None]
        for session_hash in live:
            yield session_hash

    # --- login transactions ---------------------------------------------------------
    async def put_login_state(self, state: str, blob: bytes, *, ttl: int) -> None:
        """Store a pending login under (a digest of) its `state` value."""
        _check_ttl(ttl)
        now = self._clock()
        self._maybe_sweep(now)
        self._logins[_digest(state)] = (_copy(blob), now + ttl)

    async def take_login_state(self, state: str) -> bytes | None:
        """Return and delete the login state: a second take finds nothing."""
        key = _digest(state)
        blob = self._live(self._logins, key, self._clock())
        if blob is None:
            return None
        del self._logins[key]
        return _copy(blob)

    # --- coordination ---------------------------------------------------------------
    async def acquire_lock(self, session_hash: str, *, lease_ms: int) -> str | None:
        """Take the session's refresh lock for `lease_ms`; the owner token or None."""
        _check_hash(session_hash)
        _check_ttl(lease_ms, "lease_ms")
        now = self._clock()
        if self._live(self._locks, session_hash, now) is not None:
            return None
        token = secrets.token_urlsafe(16)
        self._locks[session_hash] = (token, now + lease_ms / 1000)
        return token

    async def release_lock(self, session_hash: str, token: str) -> bool:
        """Release only if `token` still owns the lock (an expired lease is owned by no one)."""
        _check_hash(session_hash)
        owner = self._live(self._locks, session_hash, self._clock())
        if owner is None or owner != token:
            return False
        del self._locks[session_hash]
        return True

    async def remember_once(self, key: str, *, ttl: int) -> bool:
        """True the first time `key` is seen within `ttl` seconds."""
        _check_ttl(ttl)
        now = self._clock()
        self._maybe_sweep(now)
        name = _digest(key)
        deadline = self._once.get(name)
        if deadline is not None and deadline > now:
            return False
        self._once[name] = now + ttl
        return True

    # --- bounded pending work -------------------------------------------------------
    def _live_pending(self, group: str, now: float) -> dict[str, float]:
        """The group's unexpired members (expired ones dropped; an empty group removed)."""
        members = self._pending.get(group, {})
        for member in [m for m, deadline in members.items() if deadline <= now]:
            del members[member]
        if not members:
            self._pending.pop(group, None)
        return members

    async def add_pending(
        self, group: str, member: str, *, limit: int, ttl: int, evict_oldest: bool = False
    ) -> int:
        """Count `member` in `group` unless `limit` others are (see `SessionStore`)."""
        _check_ttl(ttl)
        _check_ttl(limit, "limit")
        now = self._clock()
        self._maybe_sweep(now)
        name, key = _digest(group), _digest(member)
        members = self._live_pending(name, now)
        if key not in members and len(members) >= limit:
            if not evict_oldest:
                return max(1, math.ceil(min(members.values()) - now))
            while len(members) >= limit:
                del members[next(iter(members))]  # insertion order: the oldest first
        members.pop(key, None)  # re-added: now the newest
        members[key] = now + ttl
        self._pending[name] = members
        return 0

    async def remove_pending(self, group: str, member: str) -> bool:
        """Stop counting `member` in `group`; True if it was counted."""
        name = _digest(group)
        members = self._live_pending(name, self._clock())
        found = members.pop(_digest(member), None) is not None
        if not members:
            self._pending.pop(name, None)
        return found

    # --- lifecycle ------------------------------------------------------------------
    async def ping(self) -> None:
        """Always answers: the store is this process."""

    async def topology(self) -> dict[str, Any]:
        """This process's memory: nothing to replicate, nothing to fail over."""
        return {"kind": "memory", "primaries": [], "replicas": []}

    async def aclose(self) -> None:
        """Nothing to release; the data lives as long as the object."""
