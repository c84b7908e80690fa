"""The hot path's lanes: which one a client gets, and the cluster lane's pause after a
connection error measured on the injected monotonic clock."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MovedError

from bff.store.redis_lane import ClusterLane, PlainLane, PooledLane, lane_for

pytestmark = pytest.mark.anyio


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeNode:
    def __init__(self) -> None:
        self.calls = 0
        self.fail: BaseException | None = None

    async def execute_command(self, *args: Any) -> Any:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        return b"direct"


class FakeCluster:
    """What ClusterLane uses of a RedisCluster: the slot map's node and the generic path."""

    def __init__(self) -> None:
        self.node = FakeNode()
        self.generic = 0

    def get_node_from_key(self, key: str) -> FakeNode:
        return self.node

    async def getex(self, key: str, ex: int) -> Any:
        self.generic += 1
        return b"generic"


async def test_cluster_lane_pauses_the_direct_path_by_the_injected_clock() -> None:
    clock, cluster = FakeClock(), FakeCluster()
    lane = ClusterLane(cluster, monotonic=clock)  # type: ignore[arg-type]
    assert await lane.getex("k", 10) == b"direct"
    cluster.node.fail = RedisConnectionError("down")
    with pytest.raises(RedisConnectionError):
        await lane.getex("k", 10)  # never re-sent: the error is the answer
    cluster.node.fail = None
    clock.now += 0.99  # within the pause: the generic path, which refreshes the map
    assert await lane.getex("k", 10) == b"generic"
    clock.now += 0.01  # the pause is over on the lane's clock
    assert await lane.getex("k", 10) == b"direct"
    assert (cluster.node.calls, cluster.generic) == (3, 1)


async def test_cluster_lane_sends_a_redirect_the_generic_way_at_once() -> None:
    clock, cluster = FakeClock(), FakeCluster()
    lane = ClusterLane(cluster, monotonic=clock)  # type: ignore[arg-type]
    cluster.node.fail = MovedError("3999 127.0.0.1:6381")
    assert await lane.getex("k", 10) == b"generic"  # the node did not run it
    cluster.node.fail = None
    assert await lane.getex("k", 10) == b"direct"  # no pause after a redirect


async def test_lane_for_picks_the_lean_lane_unless_asked_for_plain() -> None:
    client = redis.asyncio.Redis()
    single = redis.asyncio.Redis(single_connection_client=True)
    try:
        assert isinstance(lane_for(client, "lean", monotonic=FakeClock()), PooledLane)
        assert isinstance(lane_for(client, "plain", monotonic=FakeClock()), PlainLane)
        # one connection shared by every command: nothing for a lane of its own to hold
        assert isinstance(lane_for(single, "lean", monotonic=FakeClock()), PlainLane)
        with pytest.raises(ValueError):
            lane_for(client, "fast", monotonic=FakeClock())  # type: ignore[arg-type]
    finally:
        await client.aclose()
        await single.aclose()
