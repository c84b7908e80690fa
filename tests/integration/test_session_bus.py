"""The session-ended bus against real Redis: one contract for the in-process bus and
Redis pub/sub (standalone, Sentinel, Cluster through different nodes), and a
subscription that survives a Redis restart and re-checks its sessions afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from bff.session.bus import MemoryBus, RedisBus, create_bus
from bff.session.events import BusEvent, EventBus, RefreshReleased, SessionEnded
from bff.session.live import LiveSessions
from bff.store import IndexEntry
from bff.store.redis import RedisStore
from tests.integration.proxy_env import PrivateRedis
from tests.support.redis_ha import PASSWORD, ClusterGroup, SentinelGroup

pytestmark = pytest.mark.anyio
HASH = "0123456789abcdef0123456789abcdef"


class Inbox:
    def __init__(self) -> None:
        self.events: list[BusEvent] = []
        self.resubscribed = 0
        self.arrived = asyncio.Event()

    def deliver(self, event: BusEvent) -> None:
        self.events.append(event)
        self.arrived.set()

    def again(self) -> None:
        self.resubscribed += 1


@contextlib.asynccontextmanager
async def listening(bus: EventBus, inbox: Inbox) -> AsyncIterator[None]:
    task = asyncio.create_task(bus.listen(inbox.deliver, inbox.again))
    await asyncio.sleep(0.2)  # subscribed
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def check_contract(publisher: EventBus, subscriber: EventBus) -> None:
    inbox = Inbox()
    async with listening(subscriber, inbox):
        started = time.monotonic()
        await publisher.publish(SessionEnded(HASH, "backchannel_logout"))
        async with asyncio.timeout(2):
            await inbox.arrived.wait()
        assert time.monotonic() - started < 1
    assert inbox.events == [SessionEnded(HASH, "backchannel_logout")]


async def test_memory_bus() -> None:
    bus = MemoryBus()
    await check_contract(bus, bus)
    await bus.aclose()


async def test_standalone_redis_carries_events_between_instances_and_ignores_others(
    redis_url: str,
) -> None:
    prefix = f"bffbustest-{uuid.uuid4().hex[:8]}"
    one, two = create_bus(redis_url, prefix=prefix), create_bus(redis_url, prefix=prefix)
    elsewhere = create_bus(redis_url, prefix=prefix + "-other")
    inbox = Inbox()
    raw = redis.asyncio.Redis.from_url(redis_url)
    try:
        await check_contract(one, two)
        async with listening(two, inbox):
            assert isinstance(one, RedisBus)
            await raw.publish(one.channel, b"rm -rf /")  # not an event of ours: ignored
            await elsewhere.publish(SessionEnded(HASH, "logout"))  # another deployment
            await one.publish(SessionEnded(HASH, "revoke"))
            async with asyncio.timeout(2):
                await inbox.arrived.wait()
            await asyncio.sleep(0.1)
        assert inbox.events == [SessionEnded(HASH, "revoke")]
    finally:
        await raw.aclose()
        for bus in (one, two, elsewhere):
            await bus.aclose()


async def test_a_released_refresh_lock_crosses_redis_between_instances(redis_url: str) -> None:
    prefix = f"bffbustest-{uuid.uuid4().hex[:8]}"
    one, two = create_bus(redis_url, prefix=prefix), create_bus(redis_url, prefix=prefix)
    inbox = Inbox()
    try:
        async with listening(two, inbox):
            await one.publish(RefreshReleased(HASH))
            async with asyncio.timeout(2):
                await inbox.arrived.wait()
        assert inbox.events == [RefreshReleased(HASH)]
    finally:
        for bus in (one, two):
            await bus.aclose()


async def test_subscription_survives_a_restart_and_rechecks_its_sessions() -> None:
    server = PrivateRedis().start()
    store = RedisStore.from_url(server.url, prefix="bffbus")
    bus = create_bus(server.url, prefix="bffbus")
    live = LiveSessions(bus, store=store, clock=time.time)
    ended: list[str] = []

    class Conn:
        def end(self, reason: str) -> None:
            ended.append(reason)

    try:
        expires = int(time.time()) + 600
        await store.create_session(HASH, b"x", ttl=600, index=IndexEntry("a", None, expires))
        running = asyncio.create_task(live.run())
        await asyncio.sleep(0.2)
        live.attach(HASH, expires, Conn())
        server.stop()  # the session is lost with it (nothing kept on disk)
        await asyncio.sleep(0.5)
        server.start()
        async with asyncio.timeout(10):
            while not ended:
                await asyncio.sleep(0.05)
        assert ended == ["ended"]  # its end was never announced: found by the re-check
        inbox = Inbox()
        second = create_bus(server.url, prefix="bffbus")
        async with listening(second, inbox):
            await bus.publish(SessionEnded(HASH, "logout"))
            async with asyncio.timeout(2):
                await inbox.arrived.wait()
        await second.aclose()  # (its publishing connection, opened when it subscribed)
        running.cancel()
    finally:
        live.close()
        await bus.aclose()
        await store.aclose()
        server.close()


async def test_sentinel_bus(redis_sentinel: SentinelGroup) -> None:
    prefix = f"bffbustest-{uuid.uuid4().hex[:8]}"
    one, two = (
        create_bus(redis_sentinel.url, prefix=prefix),
        create_bus(redis_sentinel.url, prefix=prefix),
    )
    try:
        await check_contract(one, two)
    finally:
        await one.aclose()
        await two.aclose()


async def test_cluster_bus_reaches_subscribers_on_other_nodes(redis_cluster: ClusterGroup) -> None:
    prefix = f"bffbustest-{uuid.uuid4().hex[:8]}"
    one = create_bus(redis_cluster.url, prefix=prefix)  # publishes through the first seed
    assert isinstance(one, RedisBus)
    last = redis.asyncio.Redis(port=redis_cluster.ports[2], password=PASSWORD)
    two = RedisBus([last], one.channel)  # subscribed on another primary
    try:
        await check_contract(one, two)
    finally:
        await one.aclose()
        await two.aclose()
