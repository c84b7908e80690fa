"""A refresh storm across two bff instances sharing a real Redis (store and pub/sub): a
burst of concurrent requests of one session whose access token is due, half on each
instance, makes exactly one refresh grant and every request reaches the upstream with
the new token, promptly. The polling fallback is slowed to 30 s here, so the instance
that loses the lock only finishes in time when the winner's announcement of the lock's
release (pub/sub) wakes it: the test fails if the cross-instance wait is broken."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest

from bench.storm_client import fire, open_connections, request_bytes
from bff.session.bus import create_bus
from bff.store.redis import RedisStore
from bff.tokens.records import TokenSet
from tests.fake_idp import FakeIdp
from tests.integration.proxy_env import make_settings, serve, session_service
from tests.integration.upstream_server import UpstreamServer, running_upstream

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

PER_INSTANCE = 150


@pytest.fixture(scope="module")
def up() -> Iterator[UpstreamServer]:
    with running_upstream() as server:
        yield server


async def test_a_burst_on_two_instances_makes_one_grant_and_all_succeed(
    up: UpstreamServer, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bff.tokens.refresh as refresh

    monkeypatch.setattr(refresh, "_POLL_START", 30.0)  # only a wake-up ends a wait in time
    prefix = f"bffstorm-{uuid.uuid4().hex[:8]}"
    stores = [RedisStore.from_url(redis_url, prefix=prefix) for _ in range(2)]
    buses = [create_bus(redis_url, prefix=prefix) for _ in range(2)]
    idp = FakeIdp()
    idp.token_delay = 0.2  # every request of the burst arrives during the grant
    idp.live_refresh.add("refresh-token-0-XYZ")
    tokens = TokenSet(
        access_token="access-token-0-XYZ",
        expires_at=int(time.time()) + 5,  # within the refresh skew: due
        refresh_token="refresh-token-0-XYZ",
    )
    sessions = session_service(stores[0])
    ref, _ = await sessions.create(tokens=tokens, claims={"sub": "alice"}, user_agent="t")
    settings = make_settings([{"prefix": "/api", "upstream": up.url}])
    connections = []
    try:
        async with (
            serve(settings, stores[0], idp, bus=buses[0]) as one,
            serve(settings, stores[1], idp, bus=buses[1]) as two,
        ):
            await asyncio.sleep(0.2)  # both subscribed
            requests = []
            for url in (one, two):
                port = int(url.rsplit(":", 1)[1])
                opened = await open_connections("127.0.0.1", port, PER_INSTANCE)
                headers = {"cookie": f"bff-session={sessions.cookie_value(ref)}", "x-csrf": "1"}
                requests.append((opened, request_bytes(f"127.0.0.1:{port}", "/api/x", headers)))
                connections += opened
            up.received.clear()
            began = time.monotonic()
            bursts = await asyncio.gather(*(fire(c, r, within=8) for c, r in requests))
            elapsed = time.monotonic() - began
        statuses = [s for burst in bursts for s in burst.statuses]
        assert statuses == [200] * 2 * PER_INSTANCE, sorted(set(statuses))
        assert elapsed < 5  # the 30 s poll never ran out
        assert idp.refresh_grants == 1
        assert idp.reused_refresh_tokens == []
        assert {r.header("authorization") for r in up.received} == {"Bearer access-token-1-XYZ"}
        stored = await sessions.load(ref)
        assert stored is not None and stored.tokens.refresh_token == "refresh-token-1-XYZ"
    finally:
        for conn in connections:
            if conn.transport is not None:
                conn.transport.close()
        await sessions.delete(ref.hash, None)
        for bus in buses:
            await bus.aclose()
        for store in stores:
            await store.aclose()
