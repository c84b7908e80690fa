"""The production session store on `redis.asyncio`: standalone Redis (over TCP, TLS or a
socket), a Sentinel-managed primary or a Redis Cluster (clients in `bff.store.ha`).

The layout is the one drawn in `bff.store` (names in `bff.store.redis_keys`) and is
Cluster-safe: every key one command touches lies in one hash slot, and pipelines never
use MULTI, so on Cluster redis-py splits a pipeline by node.

Two rules keep the store honest under failure:
- every redis-py or socket error becomes `StoreUnavailable` at this boundary
  (`bff.store.redis_boundary`), naming the operation only;
- a command is never re-sent after an error (`bff.store.redis_connect`): a timed-out
  request fails (503) and the caller decides.

The per-request `GETEX` goes through a lane (`bff.store.redis_lane`: lean by default,
plain redis-py on request); session writes on Sentinel and Cluster are acknowledged by a
replica (`bff.store.redis_acks`). Wall-clock time comes from the injected `clock`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import redis.asyncio
from redis.asyncio.cluster import RedisCluster

from bff.store import IndexEntry
from bff.store.ha import HaClient, StandaloneTopology
from bff.store.redis_acks import REPLICA_ACK_MS, ReplicaAcks
from bff.store.redis_boundary import Boundary
from bff.store.redis_connect import connect
from bff.store.redis_index import lookup, queue_sessions, queue_unindex, scan_sessions
from bff.store.redis_keys import IndexSlot, KeyLayout, check_ttl, digest
from bff.store.redis_lane import LaneKind, lane_for
from bff.store.redis_lua import ADD_PENDING_LUA, RELEASE_LUA, REMOVE_PENDING_LUA

__all__ = ["RedisStore"]


class RedisStore:
    """A `SessionStore` on one `redis.asyncio.Redis` or `RedisCluster` client (created with
    bytes responses). `ha`: the Sentinel or Cluster client `from_url` made (its topology,
    the replica acknowledgement of writes, closing the sentinels' connections). `lane`:
    how `load_session` sends its GETEX (see `bff.store.redis_lane`). `clock`: wall-clock
    seconds (index expiry); `monotonic`: the cluster lane's pause after an error."""

    def __init__(
        self,
        client: redis.asyncio.Redis | RedisCluster,
        *,
        prefix: str = "bff",
        ha: HaClient | None = None,
        replica_ack_ms: int | None = None,
        lane: LaneKind = "lean",
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if client.get_encoder().decode_responses:
            raise ValueError("RedisStore needs a client with decode_responses=False")
        self._keys = KeyLayout(prefix)
        self._client = client
        self._ha = ha
        self._clock = clock
        # WAIT 1 <ms> after writes: by default only where replicas are the point (HA).
        default_ack = REPLICA_ACK_MS if ha is not None else 0
        self._acks = ReplicaAcks(
            client if isinstance(client, RedisCluster) else None,
            default_ack if replica_ack_ms is None else replica_ack_ms,
        )
        self._release = client.register_script(RELEASE_LUA)
        self._add_pending = client.register_script(ADD_PENDING_LUA)
        self._remove_pending = client.register_script(REMOVE_PENDING_LUA)
        self._lane = lane_for(client, lane, monotonic=monotonic)
        self._standalone: StandaloneTopology | None = None
        if isinstance(client, redis.asyncio.Redis) and ha is None:
            timeout = client.connection_pool.connection_kwargs.get("socket_timeout") or 5.0
            self._standalone = StandaloneTopology(client, timeout)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "bff",
        max_connections: int = 256,
        socket_timeout: float = 5.0,
        replica_ack_ms: int | None = None,
        lane: LaneKind = "lean",
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> RedisStore:
        """A store with its own pool for `redis://`, `rediss://` or `unix://` URLs, or its
        own Sentinel or Cluster client for `redis+sentinel://` and `redis+cluster://` (and
        their `rediss+` forms, see `bff.store.redis_url`). `replica_ack_ms`: the WAIT bound
        after session writes (default: `REPLICA_ACK_MS` on Sentinel and Cluster, 0 = none,
        on a standalone Redis)."""
        client, ha = connect(url, max_connections=max_connections, socket_timeout=socket_timeout)
        return cls(
            client,
            prefix=prefix,
            ha=ha,
            replica_ack_ms=replica_ack_ms,
            lane=lane,
            clock=clock,
            monotonic=monotonic,
        )

    # --- sessions -------------------------------------------------------------------
    async def create_session(
        self, session_hash: str, blob: bytes, *, ttl: int, index: IndexEntry
    ) -> None:
        """SET EX, then its index entries; one pipeline, one round trip (see create_sessions)."""
        await self.create_sessions([(session_hash, blob, ttl, index)])

    async def create_sessions(self, sessions: Sequence[tuple[str, bytes, int, IndexEntry]]) -> None:
        """Store new sessions as `create_session` does each, all in one round trip (a bulk
        load writes exactly what logins write): per session SET EX, then its index entries
        (`queue_index`). One pipeline, no MULTI."""
        for _, _, ttl, _ in sessions:
            check_ttl(ttl)
        now = self._clock()
        with Boundary("create_session"):
            async with self._client.pipeline(transaction=False) as pipe:
                written = queue_sessions(pipe, self._keys, sessions, now)
                await self._acks.queue(pipe, written)
                await pipe.execute()

    async def load_session(self, session_hash: str, *, ttl: int) -> bytes | None:
        """The hot path: one `GETEX key EX ttl`, one round trip, through the lane."""
        key = self._keys.session(session_hash)
        check_ttl(ttl)
        with Boundary("load_session"):
            value = await self._lane.getex(key, ttl)
        return value if isinstance(value, bytes) or value is None else value.encode()

    async def update_session(self, session_hash: str, blob: bytes, *, ttl: int) -> bool:
        """`SET key blob EX ttl XX`: a logout that won the race stays a logout."""
        key = self._keys.session(session_hash)
        check_ttl(ttl)
        with Boundary("update_session"):
            if not self._acks.ms:
                return bool(await self._client.set(key, blob, ex=ttl, xx=True))
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.set(key, blob, ex=ttl, xx=True)
                await self._acks.queue(pipe, [key])
                results: list[Any] = await pipe.execute()
        return bool(results[0])

    async def delete_session(self, session_hash: str, *, index: IndexEntry | None) -> bool:
        """DEL the session and its lock, ZREM its index entries."""
        key = self._keys.session(session_hash)
        with Boundary("delete_session"):
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.delete(key)
                pipe.delete(self._keys.lock(session_hash))
                written = [key]
                if index is not None:
                    written += queue_unindex(pipe, self._keys, session_hash, index)
                await self._acks.queue(pipe, written)
                results: list[Any] = await pipe.execute()
        return bool(results[0])

    async def session_ttl(self, session_hash: str) -> int | None:
        """`TTL`: seconds left, None when the key is gone (-2) or, impossibly, has none (-1)."""
        key = self._keys.session(session_hash)
        with Boundary("session_ttl"):
            ttl = await self._client.ttl(key)
        return ttl if ttl >= 0 else None

    async def sessions_by_sub(self, sub: str) -> list[str]:
        """Hashes of the live sessions of one user."""
        return await lookup(self._client, self._keys, IndexSlot("sub", sub), self._clock())

    async def sessions_by_idp_sid(self, idp_sid: str) -> list[str]:
        """Hashes of the live sessions of one provider session."""
        return await lookup(self._client, self._keys, IndexSlot("sid", idp_sid), self._clock())

    def all_sessions(self) -> AsyncIterator[str]:
        """SCAN for `{prefix}:{*}:s`, yielding each live session hash once."""
        return scan_sessions(self._client, self._keys)

    # --- login transactions ---------------------------------------------------------
    async def put_login_state(self, state: str, blob: bytes, *, ttl: int) -> None:
        """`SET EX` under a digest of `state`."""
        check_ttl(ttl)
        with Boundary("put_login_state"):
            await self._client.set(self._keys.login(state), blob, ex=ttl)

    async def take_login_state(self, state: str) -> bytes | None:
        """`GETDEL`: atomic, so a state is redeemed at most once."""
        with Boundary("take_login_state"):
            value = await self._client.getdel(self._keys.login(state))
        return value if isinstance(value, bytes) or value is None else value.encode()

    # --- coordination ---------------------------------------------------------------
    async def acquire_lock(self, session_hash: str, *, lease_ms: int) -> str | None:
        """`SET lock token NX PX lease_ms`; the random token proves ownership later."""
        key = self._keys.lock(session_hash)
        check_ttl(lease_ms, "lease_ms")
        token = secrets.token_urlsafe(16)
        with Boundary("acquire_lock"):
            taken = await self._client.set(key, token, nx=True, px=lease_ms)
        return token if taken else None

    async def release_lock(self, session_hash: str, token: str) -> bool:
        """Lua compare-and-delete; False when the lease expired or someone else holds it."""
        key = self._keys.lock(session_hash)
        with Boundary("release_lock"):
            deleted = await self._release(keys=[key], args=[token])
        return bool(deleted)

    async def remember_once(self, key: str, *, ttl: int) -> bool:
        """`SET NX EX`: True only for the first sighting within `ttl` seconds."""
        check_ttl(ttl)
        with Boundary("remember_once"):
            first = await self._client.set(self._keys.once(key), b"1", nx=True, ex=ttl)
        return bool(first)

    # --- bounded pending work -------------------------------------------------------
    async def add_pending(
        self, group: str, member: str, *, limit: int, ttl: int, evict_oldest: bool = False
    ) -> int:
        """One Lua script on the group's sorted set (see `ADD_PENDING_LUA`)."""
        check_ttl(ttl)
        check_ttl(limit, "limit")
        args: list[str | int] = [digest(member)[:32], limit, ttl * 1000, int(evict_oldest)]
        with Boundary("add_pending"):
            retry = await self._add_pending(keys=[self._keys.pending(group)], args=args)
        return int(retry)

    async def remove_pending(self, group: str, member: str) -> bool:
        """`ZREM` (in Lua, so an expired entry does not count as removed)."""
        with Boundary("remove_pending"):
            found = await self._remove_pending(
                keys=[self._keys.pending(group)], args=[digest(member)[:32]]
            )
        return bool(found)

    # --- lifecycle ------------------------------------------------------------------
    async def ping(self) -> None:
        """`PING`; StoreUnavailable unless Redis answers."""
        with Boundary("ping"):
            await self._client.ping()

    async def topology(self) -> dict[str, Any]:
        """What this store sees: `kind` (standalone, sentinel, cluster), `primaries` and
        `replicas` (each an `address` and whether it is `reachable`), the `sentinels` on
        Sentinel. Never a password; never raises (an unreachable node is reported)."""
        if self._ha is not None:
            return await self._ha.topology()
        if self._standalone is not None:
            return await self._standalone.topology()
        return {"kind": "cluster", "primaries": [], "replicas": []}  # a client given as is

    async def aclose(self) -> None:
        """Close the client (and the pool `from_url` created for it)."""
        with Boundary("aclose"):
            await self._lane.aclose()
            if self._ha is not None:
                await self._ha.aclose()
            else:
                await self._client.aclose()
