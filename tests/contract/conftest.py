"""One harness per store implementation, so the same contract runs against each.

The memory store runs on a fake clock that tests advance; the Redis store runs against
the real test server (time really passes, so expiry tests use 1-second TTLs) under a
key prefix of its own, removed afterwards; the Sentinel and Cluster cases against the
private groups the session starts (tests/conftest.py), through `redis+sentinel://` and
`redis+cluster://` URLs. Every Redis case runs twice: once with the store's lean hot-path
lane (the default) and once with plain redis-py (`lane="plain"`, see
`bff.store.redis_lane`), so the lean lane is proven against the reference. An
unreachable Redis fails the Redis cases unless
BFF_TEST_SKIP_REDIS=1 says to skip them.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
import redis.asyncio

from bff.errors import StoreUnavailable
from bff.store import IndexEntry, SessionStore
from bff.store.memory import MemoryStore
from bff.store.redis import RedisStore
from bff.store.redis_lane import LaneKind
from tests.support.redis_ha import PASSWORD, ClusterGroup, SentinelGroup


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Harness:
    """A store under test plus the means to move its time and look inside it."""

    kind: str
    store: SessionStore
    now: Callable[[], float]
    advance: Callable[[float], Awaitable[None]]
    fast_clock: bool  # True when advancing costs nothing (long waits are fine)
    # the Redis cases: a separate client for inspection (a RedisCluster on Cluster)
    raw: Any = None
    prefix: str = ""

    async def raw_keys(self) -> list[str]:
        """Every key under this test's prefix (Redis only)."""
        assert self.raw is not None
        keys = [key async for key in self.raw.scan_iter(match=f"{self.prefix}:*", count=1000)]
        return sorted(key.decode() for key in keys)


def _skip_redis() -> bool:
    return os.environ.get("BFF_TEST_SKIP_REDIS") == "1"


async def _sleep(seconds: float) -> None:
    await anyio.sleep(seconds)


@pytest.fixture
async def redis_harness(redis_url: str) -> AsyncIterator[Harness]:
    """The shared test Redis through the default (lean) lane."""
    async for harness in _redis_harness("redis", redis_url, "lean", _raw("redis", redis_url)):
        yield harness


def _raw(kind: str, url: str, port: int = 0) -> Any:
    """A separate client for looking inside (a RedisCluster on Cluster)."""
    if kind == "redis":
        return redis.asyncio.Redis.from_url(url, socket_timeout=2.0)
    if kind == "sentinel":
        return redis.asyncio.Redis(port=port, password=PASSWORD, socket_timeout=2.0)
    return redis.asyncio.RedisCluster(
        host="127.0.0.1", port=port, password=PASSWORD, socket_timeout=2.0
    )


async def _redis_harness(kind: str, url: str, lane: LaneKind, raw: Any) -> AsyncIterator[Harness]:
    prefix = f"bfftest-{uuid.uuid4().hex}"
    store = RedisStore.from_url(url, prefix=prefix, socket_timeout=2.0, lane=lane)
    try:
        try:
            await store.ping()
        except StoreUnavailable:
            if _skip_redis():
                pytest.skip("Redis unreachable and BFF_TEST_SKIP_REDIS=1")
            pytest.fail(
                "test Redis unreachable (BFF_TEST_REDIS_URL, default redis://127.0.0.1:6379/15);"
                " set BFF_TEST_SKIP_REDIS=1 to skip the Redis cases"
            )
        yield Harness(
            kind=kind,
            store=store,
            now=time.time,
            advance=_sleep,
            fast_clock=False,
            raw=raw,
            prefix=prefix,
        )
    finally:
        try:
            keys = [key async for key in raw.scan_iter(match=f"{prefix}:*", count=1000)]
            if keys:
                await raw.delete(*keys)
        except redis.RedisError:
            pass  # unreachable: there is nothing of ours to clean up
        finally:
            await raw.aclose()
            await store.aclose()


async def _memory_harness() -> AsyncIterator[Harness]:
    clock = FakeClock()

    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    store = MemoryStore(clock=clock)
    yield Harness(kind="memory", store=store, now=clock, advance=advance, fast_clock=True)
    await store.aclose()


_REDIS = pytest.mark.redis


@pytest.fixture(
    params=[
        "memory",
        *(
            pytest.param(f"{kind}-{lane}", marks=_REDIS)
            for kind in ("redis", "sentinel", "cluster")
            for lane in ("lean", "plain")
        ),
    ]
)
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """The contract harness, once per implementation (and per hot-path lane on Redis)."""
    if request.param == "memory":
        async for memory in _memory_harness():
            yield memory
        return
    kind, _, lane = request.param.partition("-")
    lane_kind: LaneKind = "plain" if lane == "plain" else "lean"
    if kind == "redis":
        url = request.getfixturevalue("redis_url")
        raw = _raw(kind, url)
    elif kind == "sentinel":
        group: SentinelGroup = request.getfixturevalue("redis_sentinel")
        url, raw = group.url, _raw(kind, group.url, group.primary_port())
    else:
        cluster: ClusterGroup = request.getfixturevalue("redis_cluster")
        url, raw = cluster.url, _raw(kind, cluster.url, cluster.ports[0])
    async for harness in _redis_harness(kind, url, lane_kind, raw):
        yield harness


# --- helpers the contract tests share ----------------------------------------------------
H1, H2, H3 = "a" * 64, "b" * 64, "c" * 64


def entry(
    h: Harness, sub: str = "user-1", sid: str | None = "idp-sid-1", life: int = 3600
) -> IndexEntry:
    return IndexEntry(sub=sub, idp_sid=sid, expires_at=int(h.now()) + life)


async def listed(store: SessionStore) -> set[str]:
    return {session_hash async for session_hash in store.all_sessions()}


async def keys_of(h: Harness, session_hash: str) -> list[str]:
    return [k for k in await h.raw_keys() if session_hash in k]


def member_hash(member: bytes) -> str:
    """The session hash an index member names: after its 8-byte tag, whose low bit says
    whether the hash is stored as the bytes of its hex or as text."""
    return member[8:].hex() if member[7] & 1 == 0 else member[8:].decode()


async def index_buckets(h: Harness) -> dict[str, list[str]]:
    """Redis only: each index bucket and the session hashes its members name."""
    assert h.raw is not None
    return {
        key: [member_hash(m) for m in await h.raw.zrange(key, 0, -1)]
        for key in await h.raw_keys()
        if ":ix:" in key
    }
