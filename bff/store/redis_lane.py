"""The hot path's `GETEX key EX ttl` (one per proxied request) behind a small protocol,
with two implementations the store chooses between (`RedisStore(lane=...)`):

- `lean` (the default): on a standalone or Sentinel pool, connections the lane keeps
  checked out and one send + one read per command (`PooledLane`); on Cluster, the command
  sent straight to the node of redis-py's slot map (`ClusterLane`);
- `plain`: redis-py's own `getex`, the well-kept reference the lean lane is tested against
  and can fall back to if it ever misbehaves.

Both keep the store's rule that a command is never re-sent after an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Literal, Protocol

import redis.asyncio
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    SlotNotCoveredError,
    TryAgainError,
)

from bff.errors import StoreUnavailable
from bff.store.redis_boundary import BACKEND_ERRORS

__all__ = ["ClusterLane", "Lane", "LaneKind", "PlainLane", "PooledLane", "lane_for"]

LaneKind = Literal["lean", "plain"]
_HOT_CONNECTIONS = 64  # the pooled lane's own connections (beyond the main pool)
# Answers of a cluster node that did not run the command: redis-py's full path follows them.
_REDIRECTS = (MovedError, AskError, TryAgainError, ClusterDownError, SlotNotCoveredError)
_DIRECT_PAUSE = 1.0  # seconds the cluster GETEX goes the full way after a connection error


class Lane(Protocol):
    """`GETEX key EX ttl`: the reply as redis-py reads it (bytes or None)."""

    async def getex(self, key: str, ttl: int) -> Any: ...

    async def aclose(self) -> None:
        """Hand back what the lane holds (the client itself is the store's to close)."""


class PlainLane:
    """redis-py's generic path: `client.getex(key, ex=ttl)`."""

    __slots__ = ("_client",)

    def __init__(self, client: redis.asyncio.Redis | RedisCluster) -> None:
        self._client = client

    async def getex(self, key: str, ttl: int) -> Any:
        return await self._client.getex(key, ex=ttl)

    async def aclose(self) -> None:
        return None


class PooledLane:
    """`GETEX` on connections the lane keeps checked out of the main pool (so the pool's
    limit, address, TLS, timeouts and health checks all still apply).

    redis-py's generic path costs more than the round trip itself: a blocking pool's
    condition and timeout, a probe read at every checkout, observability hooks and a
    retry wrapper. Here a command is one send and one read on a connection the lane
    already holds; only when it holds no idle one does it check one out of the pool.
    A connection that fails or is interrupted mid-command (a cancelled request) is
    disconnected and handed back to the pool, never reused as it is, so a half-read
    reply can never reach the next request. At most `limit` connections are held.
    """

    __slots__ = ("_idle", "_pool", "_slots", "_timeout")

    def __init__(self, pool: ConnectionPool, *, limit: int, timeout: float | None) -> None:
        self._pool = pool
        self._timeout = timeout
        self._idle: list[AbstractConnection] = []
        self._slots = asyncio.Semaphore(limit)

    async def getex(self, key: str, ttl: int) -> Any:
        slots = self._slots
        if slots.locked():
            try:
                async with asyncio.timeout(self._timeout):
                    await slots.acquire()
            except TimeoutError:
                raise StoreUnavailable("session store failed during load_session (busy)") from None
        else:
            await slots.acquire()  # completes at once: a free slot
        try:
            conn: AbstractConnection = (
                self._idle.pop() if self._idle else await self._pool.get_connection()  # type: ignore[no-untyped-call]
            )
            try:
                await conn.send_command("GETEX", key, "EX", ttl)
                value = await conn.read_response()
            except BaseException:
                await asyncio.shield(self._discard(conn))
                raise
            self._idle.append(conn)
            return value
        finally:
            slots.release()

    async def _discard(self, conn: AbstractConnection) -> None:
        try:
            await conn.disconnect()
        finally:
            await self._pool.release(conn)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._pool.release(conn)


class ClusterLane:
    """`GETEX` sent straight to the node redis-py's own slot map names for `key`, on one
    of that node's pooled connections (`ClusterNode.execute_command`: one send, one
    read), instead of the generic path's per-command routing work: about 1.5x the
    calls per second (measured, see README). What the generic path exists for goes
    back to it: a slot map not loaded yet, and a MOVED / ASK / TRYAGAIN / CLUSTERDOWN
    answer (the node did not run the command, so it is sent once more, there, and
    redis-py follows the redirect and refreshes its map); after a connection error the
    generic path is used for `_DIRECT_PAUSE` s on `monotonic`, so its own error handling
    refreshes the map once the cluster has failed over."""

    __slots__ = ("_cluster", "_direct_after", "_monotonic")

    def __init__(self, cluster: RedisCluster, *, monotonic: Callable[[], float]) -> None:
        self._cluster = cluster
        self._monotonic = monotonic
        self._direct_after = 0.0  # from this time on `monotonic` the GETEX goes direct

    async def getex(self, key: str, ttl: int) -> Any:
        cluster = self._cluster
        if self._monotonic() >= self._direct_after:
            try:
                node = cluster.get_node_from_key(key)
                if node is not None:
                    return await node.execute_command("GETEX", key, "EX", ttl)
            except _REDIRECTS:
                pass
            except BACKEND_ERRORS:
                self._direct_after = self._monotonic() + _DIRECT_PAUSE
                raise
        return await cluster.getex(key, ex=ttl)

    async def aclose(self) -> None:
        return None


def lane_for(
    client: redis.asyncio.Redis | RedisCluster, kind: LaneKind, *, monotonic: Callable[[], float]
) -> Lane:
    """The `kind` lane for `client`; `lean` falls back to the plain one where it has
    nothing to add (a single-connection client, a pool of another kind)."""
    if kind == "plain":
        return PlainLane(client)
    if kind != "lean":
        raise ValueError(f"unknown store lane {kind!r}; use lean or plain")
    if isinstance(client, RedisCluster):
        return ClusterLane(client, monotonic=monotonic)
    pool = client.connection_pool
    if isinstance(pool, ConnectionPool) and not client.single_connection_client:
        # Also on Sentinel: its pool hands out connections to the current primary.
        timeout = pool.connection_kwargs.get("socket_timeout")
        return PooledLane(pool, limit=_HOT_CONNECTIONS, timeout=timeout)
    return PlainLane(client)
