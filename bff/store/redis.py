"""The production session store on `redis.asyncio`: standalone Redis (over TCP, TLS or a
socket), a Sentinel-managed primary or a Redis Cluster (clients in `bff.store.ha`).

The layout is the one drawn in `bff.store` and is Cluster-safe: the keys of one session share
a hash tag, and nothing runs a transaction across slots (pipelines here never use MULTI).
Provider strings (`sub`, `sid`), login `state` values and replay keys are SHA-256 digested
before they become key names, so no input can break the key syntax or a SCAN pattern.

Two rules keep the store honest under failure:
- every redis-py or socket error becomes `StoreUnavailable` at this boundary, with a message
  that names the operation only (never a key, a value or the URL);
- a command is never re-sent after an error: the client built by `from_url` has no retries,
  so `GETDEL`, `SET NX` and friends run at most once. A timed-out request fails (503) and
  the caller decides; health checks catch dead idle connections before a command is sent.

On Sentinel and Cluster the writes that start, change or end a session are followed by
`WAIT 1 <ms>` on the connection that made them (on Cluster, one per node written), so
they reach a replica before the answer: a failover right after a login, a refresh token
rotation or a logout does not undo it. Best effort, bounded by `_REPLICA_ACK_MS`: with
no replica in sync the write still counts (the primary has it).

Every key one command touches lies in one hash slot (the single-key commands here) and
pipelines never use MULTI, so on Cluster redis-py splits a pipeline by node. A new
operation must keep that rule: a multi-key command (MGET, DEL k1 k2, a Lua script with
several KEYS) only over keys sharing a hash tag, and no transaction across tags.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection, BlockingConnectionPool, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    RedisClusterException,
    RedisError,
    SlotNotCoveredError,
    TryAgainError,
)

from bff.errors import StoreUnavailable
from bff.store import IndexEntry
from bff.store.ha import HaClient, StandaloneTopology, connect_ha
from bff.store.redis_url import HA_SCHEMES

__all__ = ["RedisStore"]

# OSError covers TimeoutError and raw socket failures; RedisClusterException (not a
# RedisError) is what redis-py raises when no node of a cluster can be reached.
_ERRORS = (RedisError, RedisClusterException, OSError)
_HASH_RE = re.compile(r"[0-9A-Za-z_-]{1,128}")
_HEX_RE = re.compile(r"[0-9a-f]+")
# The index's bucket count is part of the key layout: a store with another count would
# look for existing entries in the wrong buckets. 2,048 buckets keep about 100,000
# sessions (two entries each) in listpack-encoded sets; beyond that, buckets convert to
# skiplists one by one (about 100 B per entry instead of 32), unless Redis is configured
# with a higher zset-max-listpack-entries.
_INDEX_BUCKETS = 2048
_TAG_LEN = 8
_SCHEMES = frozenset({"redis", "rediss", "unix"})
_HEALTH_CHECK_INTERVAL = 30  # seconds a pooled connection may idle before a PING vets it
_SCAN_COUNT = 1000
_HOT_CONNECTIONS = 64  # the GETEX lane's own connections (beyond the main pool)
# Answers of a cluster node that did not run the command: redis-py's full path follows them.
_REDIRECTS = (MovedError, AskError, TryAgainError, ClusterDownError, SlotNotCoveredError)
_DIRECT_PAUSE = 1.0  # seconds the cluster GETEX goes the full way after a connection error
_REPLICA_ACK_MS = 50  # WAIT's bound on Sentinel and Cluster (measured: see README)

# Compare-and-delete: only the owner of the lease may release it.
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

# Bounded pending group (one sorted set; scores are expiry times in ms on Redis's clock).
# ARGV: member, limit, ttl_ms, evict_oldest (1/0). Returns 0 when counted, else seconds
# until the oldest member expires.
_ADD_PENDING_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
    local n = redis.call('ZCARD', KEYS[1])
    if n >= limit then
        if ARGV[4] ~= '1' then
            local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
            return math.max(1, math.ceil((tonumber(oldest[2]) - now) / 1000))
        end
        redis.call('ZPOPMIN', KEYS[1], n - limit + 1)
    end
end
-- Strictly increasing scores keep insertion order (the oldest is evicted first).
local score = now + ttl
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if newest[2] and tonumber(newest[2]) >= score and newest[1] ~= ARGV[1] then
    score = tonumber(newest[2]) + 1
end
redis.call('ZADD', KEYS[1], score, ARGV[1])
redis.call('PEXPIRE', KEYS[1], score - now)
return 0
"""
# ARGV: member. 1 when it was counted and unexpired.
_REMOVE_PENDING_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then
    return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(score) <= now then
    return 0
end
return 1
"""


class _Boundary:
    """`with _Boundary(op):` maps backend failures to `StoreUnavailable` (no generator: cheap)."""

    __slots__ = ("_op",)

    def __init__(self, op: str) -> None:
        self._op = op

    def __enter__(self) -> None:
        return None

    def __exit__(self, _type: object, exc: BaseException | None, _tb: object) -> None:
        if isinstance(exc, _ERRORS):
            # Name the operation and the error type only: redis error texts carry addresses.
            raise StoreUnavailable(
                f"session store failed during {self._op} ({type(exc).__name__})"
            ) from exc


def _check_hash(session_hash: str) -> str:
    if not _HASH_RE.fullmatch(session_hash):
        raise ValueError("session hash must be 1-128 characters of [0-9A-Za-z_-]")
    return session_hash


def _check_ttl(ttl: int, what: str = "ttl") -> None:
    if ttl <= 0:
        raise ValueError(f"{what} must be positive")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class _IndexSlot:
    """Where one `sub` or `sid` value lives in the index: its bucket and its member tag.

    The index is `_INDEX_BUCKETS` sorted sets (Redis keeps each a compact listpack while it
    holds at most `zset-max-listpack-entries`, 128 by default, members of at most 64 bytes).
    A member is the value's 8-byte tag followed by a session hash, 24 bytes for the usual
    32-hex hash; its score is the session's absolute expiry. Tag and bucket come from
    different bits of SHA-256(kind, value): 74 bits tell two values apart (an accidental
    match is about as likely as guessing a 74-bit key; finding one on purpose takes ~2^74
    hashes, and provider-assigned `sub` / `sid` values are not the attacker's to choose).
    """

    __slots__ = ("bucket", "tag")

    def __init__(self, kind: str, value: str) -> None:
        digest = hashlib.sha256(f"{kind}\0{value}".encode("utf-8", "surrogatepass")).digest()
        self.bucket = int.from_bytes(digest[8:10], "big") % _INDEX_BUCKETS
        self.tag = digest[:7] + bytes((digest[7] & 0xFE,))  # the low bit tells the hash form

    def member(self, session_hash: str) -> bytes:
        if len(session_hash) % 2 == 0 and _HEX_RE.fullmatch(session_hash):
            return self.tag + bytes.fromhex(session_hash)  # half the size
        return self.tag[:7] + bytes((self.tag[7] | 1,)) + session_hash.encode("ascii")

    def session_hash(self, member: bytes) -> str | None:
        """The session hash in one of this value's members; None for another value's."""
        if len(member) <= _TAG_LEN or member[:7] != self.tag[:7]:
            return None
        flag = member[7] ^ self.tag[7]
        if flag == 0:
            return member[_TAG_LEN:].hex()
        if flag == 1:
            session_hash = member[_TAG_LEN:].decode("ascii", "replace")
            return session_hash if _HASH_RE.fullmatch(session_hash) else None
        return None


def _glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters (braces are literal in Redis globs)."""
    return re.sub(r"([\\*?\[\]])", r"\\\1", text)


class _HotLane:
    """The hot path's `GETEX` on connections it keeps checked out of the main pool
    (so the pool's limit, address, TLS, timeouts and health checks all still apply).

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


class RedisStore:
    """A `SessionStore` on one `redis.asyncio.Redis` or `RedisCluster` client (created with
    bytes responses). `ha`: the Sentinel or Cluster client `from_url` made (its topology,
    the replica acknowledgement of writes, closing the sentinels' connections)."""

    def __init__(
        self,
        client: redis.asyncio.Redis | RedisCluster,
        *,
        prefix: str = "bff",
        ha: HaClient | None = None,
        replica_ack_ms: int | None = None,
    ) -> None:
        if client.get_encoder().decode_responses:
            raise ValueError("RedisStore needs a client with decode_responses=False")
        if not prefix:
            raise ValueError("prefix must not be empty")
        self._client = client
        self._prefix = prefix
        self._ha = ha
        self._cluster = client if isinstance(client, RedisCluster) else None
        self._direct_after = 0.0  # monotonic time from which the cluster GETEX goes direct
        # WAIT 1 <ms> after writes: by default only where replicas are the point (HA).
        default_ack = _REPLICA_ACK_MS if ha is not None else 0
        self._ack_ms = default_ack if replica_ack_ms is None else replica_ack_ms
        self._session_head = f"{prefix}:{{".encode()
        self._release = client.register_script(_RELEASE_LUA)
        self._add_pending = client.register_script(_ADD_PENDING_LUA)
        self._remove_pending = client.register_script(_REMOVE_PENDING_LUA)
        self._hot: _HotLane | None = None
        self._standalone: StandaloneTopology | None = None
        if isinstance(client, redis.asyncio.Redis):
            pool = client.connection_pool
            if ha is None:
                timeout = pool.connection_kwargs.get("socket_timeout") or 5.0
                self._standalone = StandaloneTopology(client, timeout)
            if isinstance(pool, ConnectionPool) and not client.single_connection_client:
                # Also on Sentinel: its pool hands out connections to the current primary.
                self._hot = _HotLane(
                    pool,
                    limit=_HOT_CONNECTIONS,
                    timeout=pool.connection_kwargs.get("socket_timeout"),
                )

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "bff",
        max_connections: int = 256,
        socket_timeout: float = 5.0,
        replica_ack_ms: int | None = None,
    ) -> RedisStore:
        """A store with its own pool for `redis://`, `rediss://` or `unix://` URLs, or its
        own Sentinel or Cluster client for `redis+sentinel://` and `redis+cluster://` (and
        their `rediss+` forms, see `bff.redis_url`). `replica_ack_ms`: the WAIT bound after
        session writes (default: `_REPLICA_ACK_MS` on Sentinel and Cluster, 0 = none,
        on a standalone Redis).

        The pool blocks up to `socket_timeout` for a free connection rather than failing
        at once under a burst; commands are never retried (see the module docstring).
        """
        scheme = url.partition("://")[0].lower()
        if scheme in HA_SCHEMES:
            ha = connect_ha(url, max_connections=max_connections, socket_timeout=socket_timeout)
            return cls(ha.client, prefix=prefix, ha=ha, replica_ack_ms=replica_ack_ms)
        scheme = urlsplit(url).scheme.lower()
        if scheme not in _SCHEMES:
            # The URL itself is not echoed: it may hold a password.
            raise ValueError(f"unsupported Redis URL scheme {scheme!r}; use redis, rediss or unix")
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=socket_timeout,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            health_check_interval=_HEALTH_CHECK_INTERVAL,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(
            redis.asyncio.Redis.from_pool(pool), prefix=prefix, replica_ack_ms=replica_ack_ms
        )

    # --- keys -----------------------------------------------------------------------
    def _session_key(self, session_hash: str) -> str:
        return f"{self._prefix}:{{{_check_hash(session_hash)}}}:s"

    def _lock_key(self, session_hash: str) -> str:
        return f"{self._prefix}:{{{_check_hash(session_hash)}}}:lock"

    def _index_slots(self, index: IndexEntry) -> list[_IndexSlot]:
        slots = [_IndexSlot("sub", index.sub)]
        if index.idp_sid is not None:
            slots.append(_IndexSlot("sid", index.idp_sid))
        return slots

    def _bucket_key(self, slot: _IndexSlot) -> str:
        return f"{self._prefix}:ix:{{{slot.bucket:03x}}}"

    async def _queue_acks(self, pipe: Any, keys: Sequence[str]) -> int:
        """Queue `WAIT 1 <ms>` behind the writes to `keys` in `pipe`, on the connection
        that made them: once, or once per node written on Cluster. The number queued
        (their replies end the pipeline's results)."""
        if not self._ack_ms:
            return 0
        if self._cluster is None:
            pipe.execute_command("WAIT", 1, self._ack_ms)
            return 1
        await self._cluster.initialize()  # at once when the slot map is known
        nodes = {}
        for key in keys:
            node = self._cluster.get_node_from_key(key)
            if node is not None:
                nodes[node.name] = node
        for node in nodes.values():
            pipe.execute_command("WAIT", 1, self._ack_ms, target_nodes=node)
        return len(nodes)

    # --- sessions -------------------------------------------------------------------
    async def create_session(
        self, session_hash: str, blob: bytes, *, ttl: int, index: IndexEntry
    ) -> None:
        """SET EX, then its index entries; one pipeline, one round trip (see create_sessions)."""
        await self.create_sessions([(session_hash, blob, ttl, index)])

    async def create_sessions(self, sessions: Sequence[tuple[str, bytes, int, IndexEntry]]) -> None:
        """Store new sessions as `create_session` does each, all in one round trip (a bulk
        load writes exactly what logins write).

        Per session: SET EX, then per index entry ZADD to its bucket, ZREMRANGEBYSCORE of
        the bucket's members past their expiry, and the bucket's expiry pushed out to its
        last member's. One pipeline, no MULTI. A session is written before its index
        entries, so an entry whose session is missing is stale and may be pruned.
        """
        writes = []
        for session_hash, blob, ttl, index in sessions:
            _check_ttl(ttl)
            writes.append((self._session_key(session_hash), session_hash, blob, ttl, index))
        now = time.time()
        with _Boundary("create_session"):
            async with self._client.pipeline(transaction=False) as pipe:
                written = []
                for key, session_hash, blob, ttl, index in writes:
                    pipe.set(key, blob, ex=ttl)
                    written.append(key)
                    for slot in self._index_slots(index):
                        bucket = self._bucket_key(slot)
                        pipe.zadd(bucket, {slot.member(session_hash): index.expires_at})
                        pipe.zremrangebyscore(bucket, "-inf", f"({now}")
                        # NX covers a fresh key (GT treats "no expiry" as infinite); GT extends.
                        pipe.expireat(bucket, index.expires_at, nx=True)
                        pipe.expireat(bucket, index.expires_at, gt=True)
                        written.append(bucket)
                await self._queue_acks(pipe, written)
                await pipe.execute()

    async def load_session(self, session_hash: str, *, ttl: int) -> bytes | None:
        """The hot path: one `GETEX key EX ttl`, one round trip."""
        key = self._session_key(session_hash)
        _check_ttl(ttl)
        with _Boundary("load_session"):
            if self._hot is not None:
                value = await self._hot.getex(key, ttl)
            elif self._cluster is not None:
                value = await self._cluster_getex(self._cluster, key, ttl)
            else:
                value = await self._client.getex(key, ex=ttl)
        return value if isinstance(value, bytes) or value is None else value.encode()

    async def _cluster_getex(self, cluster: RedisCluster, key: str, ttl: int) -> Any:
        """`GETEX` sent straight to the node redis-py's own slot map names for `key`, on one
        of that node's pooled connections (`ClusterNode.execute_command`: one send, one
        read), instead of the generic path's per-command routing work: about 1.5x the
        calls per second (measured, see README). What the generic path exists for goes
        back to it: a slot map not loaded yet, and a MOVED / ASK / TRYAGAIN / CLUSTERDOWN
        answer (the node did not run the command, so it is sent once more, there, and
        redis-py follows the redirect and refreshes its map); after a connection error the
        generic path is used for `_DIRECT_PAUSE` s, so its own error handling refreshes the
        map once the cluster has failed over."""
        if time.monotonic() >= self._direct_after:
            try:
                node = cluster.get_node_from_key(key)
                if node is not None:
                    return await node.execute_command("GETEX", key, "EX", ttl)
            except _REDIRECTS:
                pass
            except _ERRORS:
                self._direct_after = time.monotonic() + _DIRECT_PAUSE
                raise
        return await cluster.getex(key, ex=ttl)

    async def update_session(self, session_hash: str, blob: bytes, *, ttl: int) -> bool:
        """`SET key blob EX ttl XX`: a logout that won the race stays a logout."""
        key = self._session_key(session_hash)
        _check_ttl(ttl)
        with _Boundary("update_session"):
            if not self._ack_ms:
                return bool(await self._client.set(key, blob, ex=ttl, xx=True))
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.set(key, blob, ex=ttl, xx=True)
                await self._queue_acks(pipe, [key])
                results: list[Any] = await pipe.execute()
        return bool(results[0])

    async def delete_session(self, session_hash: str, *, index: IndexEntry | None) -> bool:
        """DEL the session and its lock, ZREM its index entries (Redis drops empty sets)."""
        key = self._session_key(session_hash)
        with _Boundary("delete_session"):
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.delete(key)
                pipe.delete(self._lock_key(session_hash))
                written = [key]
                for slot in self._index_slots(index) if index is not None else []:
                    pipe.zrem(self._bucket_key(slot), slot.member(session_hash))
                    written.append(self._bucket_key(slot))
                await self._queue_acks(pipe, written)
                results: list[Any] = await pipe.execute()
        return bool(results[0])

    async def session_ttl(self, session_hash: str) -> int | None:
        """`TTL`: seconds left, None when the key is gone (-2) or, impossibly, has none (-1)."""
        key = self._session_key(session_hash)
        with _Boundary("session_ttl"):
            ttl = await self._client.ttl(key)
        return ttl if ttl >= 0 else None

    async def sessions_by_sub(self, sub: str) -> list[str]:
        """Hashes of the live sessions of one user."""
        return await self._lookup(_IndexSlot("sub", sub))

    async def sessions_by_idp_sid(self, idp_sid: str) -> list[str]:
        """Hashes of the live sessions of one provider session."""
        return await self._lookup(_IndexSlot("sid", idp_sid))

    async def _lookup(self, slot: _IndexSlot) -> list[str]:
        """This value's members not yet past their expiry whose session key still EXISTS;
        prune the bucket's expired members and this value's stale ones.

        The local clock bounds the range (a few seconds of skew only delays pruning: the
        EXISTS check is what decides).
        """
        bucket = self._bucket_key(slot)
        now = time.time()
        with _Boundary("index_lookup"):
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.zremrangebyscore(bucket, "-inf", f"({now}")
                pipe.zrangebyscore(bucket, now, "+inf")
                _, raw_members = await pipe.execute()
            found: dict[str, bytes] = {}
            for member in raw_members:
                raw = member if isinstance(member, bytes) else str(member).encode()
                session_hash = slot.session_hash(raw)
                if session_hash is not None:
                    found[session_hash] = raw
            if not found:
                return []
            async with self._client.pipeline(transaction=False) as pipe:
                for session_hash in found:
                    pipe.exists(self._session_key(session_hash))
                exists: list[Any] = await pipe.execute()
            live = [h for h, alive in zip(found, exists, strict=True) if alive]
            dead = [found[h] for h, alive in zip(found, exists, strict=True) if not alive]
            if dead:
                await self._client.zrem(bucket, *dead)
        return live

    async def all_sessions(self) -> AsyncIterator[str]:
        """SCAN for `{prefix}:{*}:s`, yielding each live session hash once."""
        head = self._session_head
        seen: set[str] = set()  # SCAN may return a key twice
        async for keys in self._scan(f"{_glob_escape(self._prefix)}:{{*}}:s"):
            for key in keys:
                raw = key if isinstance(key, bytes) else str(key).encode()
                if not (raw.startswith(head) and raw.endswith(b"}:s")):
                    continue
                session_hash = raw[len(head) : -3].decode("utf-8", "replace")
                if _HASH_RE.fullmatch(session_hash) and session_hash not in seen:
                    seen.add(session_hash)
                    yield session_hash

    async def _scan(self, pattern: str) -> AsyncIterator[list[Any]]:
        """SCAN batches of string keys matching `pattern`; on Cluster, every primary's
        keyspace in turn (each node has its own cursor)."""
        if self._cluster is not None:
            with _Boundary("all_sessions"):
                await self._cluster.initialize()
                primaries = self._cluster.get_primaries()
            for node in primaries:
                cursor: int = 0
                while True:
                    with _Boundary("all_sessions"):
                        cursors: Any
                        cursors, keys = await self._cluster.scan(
                            cursor,
                            match=pattern,
                            count=_SCAN_COUNT,
                            _type="string",
                            target_nodes=node,
                        )
                    yield keys
                    cursor = cursors[node.name]
                    if cursor == 0:
                        break
            return
        cursor = 0
        while True:
            with _Boundary("all_sessions"):
                cursor, keys = await self._client.scan(
                    cursor, match=pattern, count=_SCAN_COUNT, _type="string"
                )
            yield keys
            if cursor == 0:
                return

    # --- login transactions ---------------------------------------------------------
    async def put_login_state(self, state: str, blob: bytes, *, ttl: int) -> None:
        """`SET EX` under a digest of `state`."""
        _check_ttl(ttl)
        with _Boundary("put_login_state"):
            await self._client.set(f"{self._prefix}:login:{{{_digest(state)}}}", blob, ex=ttl)

    async def take_login_state(self, state: str) -> bytes | None:
        """`GETDEL`: atomic, so a state is redeemed at most once."""
        with _Boundary("take_login_state"):
            value = await self._client.getdel(f"{self._prefix}:login:{{{_digest(state)}}}")
        return value if isinstance(value, bytes) or value is None else value.encode()

    # --- coordination ---------------------------------------------------------------
    async def acquire_lock(self, session_hash: str, *, lease_ms: int) -> str | None:
        """`SET lock token NX PX lease_ms`; the random token proves ownership later."""
        key = self._lock_key(session_hash)
        _check_ttl(lease_ms, "lease_ms")
        token = secrets.token_urlsafe(16)
        with _Boundary("acquire_lock"):
            taken = await self._client.set(key, token, nx=True, px=lease_ms)
        return token if taken else None

    async def release_lock(self, session_hash: str, token: str) -> bool:
        """Lua compare-and-delete; False when the lease expired or someone else holds it."""
        key = self._lock_key(session_hash)
        with _Boundary("release_lock"):
            deleted = await self._release(keys=[key], args=[token])
        return bool(deleted)

    async def remember_once(self, key: str, *, ttl: int) -> bool:
        """`SET NX EX`: True only for the first sighting within `ttl` seconds."""
        _check_ttl(ttl)
        with _Boundary("remember_once"):
            first = await self._client.set(
                f"{self._prefix}:once:{{{_digest(key)}}}", b"1", nx=True, ex=ttl
            )
        return bool(first)

    # --- bounded pending work -------------------------------------------------------
    def _pending_key(self, group: str) -> str:
        return f"{self._prefix}:pend:{{{_digest(group)}}}"

    async def add_pending(
        self, group: str, member: str, *, limit: int, ttl: int, evict_oldest: bool = False
    ) -> int:
        """One Lua script on the group's sorted set (see `_ADD_PENDING_LUA`)."""
        _check_ttl(ttl)
        _check_ttl(limit, "limit")
        args: list[str | int] = [_digest(member)[:32], limit, ttl * 1000, int(evict_oldest)]
        with _Boundary("add_pending"):
            retry = await self._add_pending(keys=[self._pending_key(group)], args=args)
        return int(retry)

    async def remove_pending(self, group: str, member: str) -> bool:
        """`ZREM` (in Lua, so an expired entry does not count as removed)."""
        with _Boundary("remove_pending"):
            found = await self._remove_pending(
                keys=[self._pending_key(group)], args=[_digest(member)[:32]]
            )
        return bool(found)

    # --- lifecycle ------------------------------------------------------------------
    async def ping(self) -> None:
        """`PING`; StoreUnavailable unless Redis answers."""
        with _Boundary("ping"):
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
        with _Boundary("aclose"):
            if self._hot is not None:
                await self._hot.aclose()
            if self._ha is not None:
                await self._ha.aclose()
            else:
                await self._client.aclose()
