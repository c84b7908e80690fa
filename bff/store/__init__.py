"""The session store contract: one protocol, a memory and a Redis implementation.

The store only ever sees opaque, already-encrypted blobs under hashed keys: it never
holds a session id (the cookie's secret) or a plaintext token. Sessions are addressed
by their *session hash* (hex SHA-256 prefix of the id, see `bff.session`).

Key layout (Redis; the memory store mirrors it):
    {prefix}:{<hash>}:s          the session blob, TTL = min(idle, remaining lifetime)
    {prefix}:{<hash>}:lock       the refresh lock of that session (same slot)
    {prefix}:ix:{<bucket>}       index bucket (one of 32,768; 4 hex digits; earlier releases'
                                 2,048 have 3 and are still read): sorted set, member = tag of
                                 a `sub` or `sid` value + session hash, score = absolute expiry
    {prefix}:login:{<digest>}    a pending login transaction (single use, 10 min)
    {prefix}:once:{<digest>}     a replay-cache entry (back-channel logout `jti`)
    {prefix}:pend:{<digest>}     a bounded group of pending work (sorted set: member =
                                 digest of e.g. a login `state`, score = its expiry in ms)
Keys written or read together share a hash tag, so the layout works on Redis Cluster;
nothing needs a cross-slot transaction. A new operation keeps that: one key per command,
or several keys of one hash tag ({…}); pipelines without MULTI; no SCAN that assumes
one node (see `bff.store.redis_index`). The index buckets are shared by many users, so
an index entry costs about 32 bytes instead of a key of its own.

The package owns the contract (here) and its implementations:
    memory          the in-process store (`memory://`, the contract's reference)
    redis           RedisStore: the Redis store's operations
    redis_keys      key names, digests and the index's member encoding
    redis_index     the sub / sid index buckets and the SCAN of every session
    redis_lane      the hot path's GETEX behind a protocol: lean (default) or plain redis-py
    redis_lua       the Lua scripts (lock release, bounded pending groups)
    redis_acks      WAIT 1 after session writes on Sentinel and Cluster
    redis_boundary  every backend error becomes StoreUnavailable
    redis_connect   the client `RedisStore.from_url` builds (no retries)
    redis_url, ha   Sentinel / Cluster URLs, clients and topology reports
    instrumented    metrics and spans around any store; factory: the store a setting names
Time is injected: stores take a `clock` (and the cluster lane a `monotonic`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from bff.errors import StoreUnavailable

__all__ = ["IndexEntry", "SessionStore", "StoreUnavailable"]


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """What a session is indexed under; given on create and delete."""

    sub: str
    idp_sid: str | None
    expires_at: int  # absolute end of the session, epoch seconds
    # Written where releases before record format 3 look (Redis: their 2,048 index
    # buckets; this release reads those too), so that during a rolling upgrade their
    # back-channel logout and admin revoke find sessions this release creates
    # (BFF_SESSION_RECORD_FORMAT=2).
    earlier_layout: bool = False


@runtime_checkable
class SessionStore(Protocol):
    """Async session storage. Every method raises `StoreUnavailable` when the backend fails."""

    # --- sessions -------------------------------------------------------------------
    async def create_session(
        self, session_hash: str, blob: bytes, *, ttl: int, index: IndexEntry
    ) -> None:
        """Store a new session for `ttl` seconds and add it to the sub / sid indexes."""

    async def load_session(self, session_hash: str, *, ttl: int) -> bytes | None:
        """Return the blob and slide its expiry to `ttl` seconds, in ONE round trip
        (Redis `GETEX ... EX ttl`). None when absent or expired."""

    async def update_session(self, session_hash: str, blob: bytes, *, ttl: int) -> bool:
        """Replace the blob only if the session still exists (Redis `SET XX`), so a
        logout racing a refresh is never undone. False when it no longer exists."""

    async def delete_session(self, session_hash: str, *, index: IndexEntry | None) -> bool:
        """Delete the session, its lock and its index entries. True if it existed."""

    async def session_ttl(self, session_hash: str) -> int | None:
        """Remaining seconds before the session expires, or None when absent."""

    async def sessions_by_sub(self, sub: str) -> list[str]:
        """Hashes of the live sessions of one user."""

    async def sessions_by_idp_sid(self, idp_sid: str) -> list[str]:
        """Hashes of the live sessions of one provider session."""

    def all_sessions(self) -> AsyncIterator[str]:
        """Every live session hash (administration; SCAN on Redis)."""

    # --- login transactions ---------------------------------------------------------
    async def put_login_state(self, state: str, blob: bytes, *, ttl: int) -> None:
        """Store a pending login under its `state` value."""

    async def take_login_state(self, state: str) -> bytes | None:
        """Return and delete the login state atomically (single use: `GETDEL`)."""

    # --- coordination ---------------------------------------------------------------
    async def acquire_lock(self, session_hash: str, *, lease_ms: int) -> str | None:
        """Try once to take the session's refresh lock (`SET NX PX` on
        `{prefix}:{<hash>}:lock`); a random owner token, or None when held."""

    async def release_lock(self, session_hash: str, token: str) -> bool:
        """Release only if `token` still owns the lock (compare-and-delete, Lua)."""

    async def remember_once(self, key: str, *, ttl: int) -> bool:
        """True the first time `key` is seen within `ttl` seconds (`SET NX EX`)."""

    # --- bounded pending work (one key per group: Cluster-safe) ---------------------
    async def add_pending(
        self, group: str, member: str, *, limit: int, ttl: int, evict_oldest: bool = False
    ) -> int:
        """Count `member` as pending in `group` for `ttl` seconds (entries past their
        time no longer count). When `group` already counts `limit` other members: with
        `evict_oldest` the oldest ones are dropped to make room, else nothing changes and
        the answer is the seconds until the oldest one expires (at least 1). 0 when added.
        Atomic (one Lua script on one key on Redis)."""

    async def remove_pending(self, group: str, member: str) -> bool:
        """Stop counting `member` in `group`; True if it was counted (not expired or evicted)."""

    # --- lifecycle ------------------------------------------------------------------
    async def ping(self) -> None:
        """Raise StoreUnavailable unless the backend answers."""

    async def topology(self) -> dict[str, Any]:
        """What the store sees, for operators (`check-config`, `/readyz`): `kind`
        (memory, standalone, sentinel, cluster), `primaries` and `replicas`, each with an
        `address` and whether it is `reachable`. Never a password; never raises."""

    async def aclose(self) -> None:
        """Release connections."""
