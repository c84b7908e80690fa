"""RedisStore on an injected clock: the index's expiry is judged by the store's `clock`,
not by the machine's, on lookup and on the pruning a new session's write does."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from bff.store import IndexEntry
from bff.store.redis import RedisStore
from bff.store.redis_keys import IndexSlot

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

H1, H2 = "a" * 32, "b" * 32


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url, socket_timeout=2.0)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    return f"bfftest-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def store(
    redis_url: str, prefix: str, raw: redis.asyncio.Redis
) -> AsyncIterator[tuple[RedisStore, FakeClock]]:
    # Near the real time: Redis itself still expires keys (EXPIREAT) on its own clock.
    clock = FakeClock(time.time())
    store = RedisStore.from_url(redis_url, prefix=prefix, clock=clock)
    yield store, clock
    await store.aclose()
    keys = [k async for k in raw.scan_iter(match=f"{prefix}:*")]
    if keys:
        await raw.delete(*keys)


async def test_lookup_expires_index_entries_by_the_injected_clock(
    store: tuple[RedisStore, FakeClock],
) -> None:
    redis_store, clock = store
    ix = IndexEntry(sub="alice", idp_sid="sid-1", expires_at=int(clock()) + 100)
    await redis_store.create_session(H1, b"blob", ttl=1000, index=ix)
    assert await redis_store.sessions_by_sub("alice") == [H1]
    clock.now += 200  # past the entry's absolute expiry on the store's clock only
    assert await redis_store.sessions_by_sub("alice") == []
    assert await redis_store.sessions_by_idp_sid("sid-1") == []
    assert await redis_store.load_session(H1, ttl=1000) == b"blob"  # the key itself lives


async def test_a_write_prunes_its_bucket_by_the_injected_clock(
    store: tuple[RedisStore, FakeClock], raw: redis.asyncio.Redis, prefix: str
) -> None:
    redis_store, clock = store
    ix = IndexEntry(sub="alice", idp_sid=None, expires_at=int(clock()) + 100)
    await redis_store.create_session(H1, b"one", ttl=1000, index=ix)
    bucket = f"{prefix}:ix:{{{IndexSlot('sub', 'alice').bucket:03x}}}"
    assert await raw.zcard(bucket) == 1
    clock.now += 200
    later = IndexEntry(sub="alice", idp_sid=None, expires_at=int(clock()) + 100)
    await redis_store.create_session(H2, b"two", ttl=1000, index=later)
    members = await raw.zrange(bucket, 0, -1)
    assert [IndexSlot("sub", "alice").session_hash(m) for m in members] == [H2]
