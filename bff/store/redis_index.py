"""The sub / sid index on Redis: 32,768 shared sorted-set buckets (see `IndexSlot`; the
2,048 of earlier releases are still read, `redis_keys.INDEX_BUCKETS`), and the SCAN over
every session key.

An entry is written after its session (in the same pipeline), so an entry whose session is
missing is stale and may be pruned. Lookups bound the range by the store's clock: a few
seconds of skew only delays pruning, the EXISTS check is what decides.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import redis.asyncio
from redis.asyncio.cluster import RedisCluster

from bff.store import IndexEntry
from bff.store.redis_boundary import Boundary
from bff.store.redis_keys import IndexSlot, KeyLayout

__all__ = [
    "index_slots",
    "lookup",
    "queue_index",
    "queue_sessions",
    "queue_unindex",
    "scan_sessions",
]

_SCAN_COUNT = 1000


def index_slots(index: IndexEntry) -> list[IndexSlot]:
    slots = [IndexSlot("sub", index.sub)]
    if index.idp_sid is not None:
        slots.append(IndexSlot("sid", index.idp_sid))
    return slots


def queue_index(
    pipe: Any, keys: KeyLayout, session_hash: str, index: IndexEntry, now: float
) -> list[str]:
    """Per entry: ZADD to its bucket, ZREMRANGEBYSCORE of the bucket's members past their
    expiry, and the bucket's expiry pushed out to its last member's. The buckets written.
    An entry in the earlier layout goes to the 2,048-bucket set earlier releases read
    (this release reads both)."""
    written = []
    for slot in index_slots(index):
        bucket = keys.legacy_bucket(slot) if index.earlier_layout else keys.bucket(slot)
        pipe.zadd(bucket, {slot.member(session_hash): index.expires_at})
        pipe.zremrangebyscore(bucket, "-inf", f"({now}")
        # NX covers a fresh key (GT treats "no expiry" as infinite); GT extends.
        pipe.expireat(bucket, index.expires_at, nx=True)
        pipe.expireat(bucket, index.expires_at, gt=True)
        written.append(bucket)
    return written


def queue_sessions(
    pipe: Any,
    keys: KeyLayout,
    sessions: Sequence[tuple[str, bytes, int, IndexEntry]],
    now: float,
) -> list[str]:
    """Per new session (hash, sealed record, TTL, index entry): SET EX, then its index
    entries (`queue_index`). The keys written. (A bulk load of the benchmark queues the
    very same commands.)"""
    written = []
    for session_hash, blob, ttl, index in sessions:
        key = keys.session(session_hash)
        pipe.set(key, blob, ex=ttl)
        written.append(key)
        written += queue_index(pipe, keys, session_hash, index, now)
    return written


def queue_unindex(pipe: Any, keys: KeyLayout, session_hash: str, index: IndexEntry) -> list[str]:
    """ZREM of the session's entries, in its bucket and, for a session of an earlier
    release, its legacy bucket (Redis drops empty sets). The buckets written."""
    written = []
    for slot in index_slots(index):
        for bucket in (keys.bucket(slot), keys.legacy_bucket(slot)):
            pipe.zrem(bucket, slot.member(session_hash))
            written.append(bucket)
    return written


async def lookup(
    client: redis.asyncio.Redis | RedisCluster, keys: KeyLayout, slot: IndexSlot, now: float
) -> list[str]:
    """This value's members not yet past their expiry whose session key still EXISTS, in
    its bucket and its legacy bucket; prune both buckets' expired members and this
    value's stale ones."""
    buckets = (keys.bucket(slot), keys.legacy_bucket(slot))
    with Boundary("index_lookup"):
        async with client.pipeline(transaction=False) as pipe:
            for bucket in buckets:
                pipe.zremrangebyscore(bucket, "-inf", f"({now}")
                pipe.zrangebyscore(bucket, now, "+inf")
            replies = await pipe.execute()
        found: dict[str, tuple[str, bytes]] = {}
        for bucket, raw_members in zip(buckets, replies[1::2], strict=True):
            for member in raw_members:
                raw = member if isinstance(member, bytes) else str(member).encode()
                session_hash = slot.session_hash(raw)
                if session_hash is not None:
                    found[session_hash] = (bucket, raw)
        if not found:
            return []
        async with client.pipeline(transaction=False) as pipe:
            for session_hash in found:
                pipe.exists(keys.session(session_hash))
            exists: list[Any] = await pipe.execute()
        live = [h for h, alive in zip(found, exists, strict=True) if alive]
        dead = [found[h] for h, alive in zip(found, exists, strict=True) if not alive]
        for bucket in buckets:
            stale = [raw for where, raw in dead if where == bucket]
            if stale:
                await client.zrem(bucket, *stale)
    return live


async def scan_sessions(
    client: redis.asyncio.Redis | RedisCluster, keys: KeyLayout
) -> AsyncIterator[str]:
    """SCAN for `{prefix}:{*}:s`, yielding each live session hash once."""
    seen: set[str] = set()  # SCAN may return a key twice
    async for batch in _scan(client, keys.session_pattern()):
        for key in batch:
            raw = key if isinstance(key, bytes) else str(key).encode()
            session_hash = keys.session_hash_of(raw)
            if session_hash is not None and session_hash not in seen:
                seen.add(session_hash)
                yield session_hash


async def _scan(
    client: redis.asyncio.Redis | RedisCluster, pattern: str
) -> AsyncIterator[list[Any]]:
    """SCAN batches of string keys matching `pattern`; on Cluster, every primary's
    keyspace in turn (each node has its own cursor)."""
    if isinstance(client, RedisCluster):
        with Boundary("all_sessions"):
            await client.initialize()
            primaries = client.get_primaries()
        for node in primaries:
            cursor: int = 0
            while True:
                with Boundary("all_sessions"):
                    cursors: Any
                    cursors, batch = await client.scan(
                        cursor, match=pattern, count=_SCAN_COUNT, _type="string", target_nodes=node
                    )
                yield batch
                cursor = cursors[node.name]
                if cursor == 0:
                    break
        return
    cursor = 0
    while True:
        with Boundary("all_sessions"):
            cursor, batch = await client.scan(
                cursor, match=pattern, count=_SCAN_COUNT, _type="string"
            )
        yield batch
        if cursor == 0:
            return
