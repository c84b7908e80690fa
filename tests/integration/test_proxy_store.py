"""The proxy and its session store, a private redis-server of this test's own: one store
command per proxied request in the steady state; 503 while the store is down, and
recovery without a restart when it is back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
import redis.asyncio as aioredis

from bff.config.model import Settings
from bff.errors import StoreUnavailable
from bff.store.redis import RedisStore
from tests.integration.proxy_env import PrivateRedis, make_settings, mint_session, serve
from tests.integration.upstream_server import UpstreamServer, running_upstream

pytestmark = pytest.mark.anyio
PREFIX = "bffproxytest"


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    server = PrivateRedis().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def up() -> Iterator[UpstreamServer]:
    with running_upstream() as server:
        yield server


def settings_for(up: UpstreamServer, redis_server: PrivateRedis) -> Settings:
    return make_settings(
        [
            {"prefix": "/api", "upstream": up.url},
            {"prefix": "/public", "upstream": up.url, "token": "none", "csrf": False},
        ],
        BFF_SESSION_STORE=redis_server.url,
        BFF_STORE_PREFIX=PREFIX,
    )


async def test_one_store_command_per_proxied_request(
    up: UpstreamServer, redis_server: PrivateRedis
) -> None:
    store = RedisStore.from_url(redis_server.url, prefix=PREFIX)
    cookie = await mint_session(store, "alice", "token-alice")
    headers = {"Cookie": f"bff-session={cookie}", "X-CSRF": "1"}
    async with (
        serve(settings_for(up, redis_server), store) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        for _ in range(10):  # warm up: connections, pools
            assert (await client.get("/api/warm", headers=headers)).status_code == 200
        # one connection of ours, opened (handshake done) before the counters reset
        raw = aioredis.Redis.from_url(redis_server.url, single_connection_client=True)
        try:
            await raw.ping()
            await raw.config_resetstat()
            for i in range(100):
                r = await client.get(f"/api/steady/{i}", headers=headers)
                assert r.status_code == 200
            info = await raw.info("commandstats")
        finally:
            await raw.aclose()
    stats = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()}
    # CONFIG RESETSTAT and INFO are ours; everything else is the BFF's
    bff_commands = {k: v for k, v in stats.items() if k not in ("info", "config|resetstat")}
    assert bff_commands == {"getex": 100}, bff_commands


async def test_store_down_is_503_and_recovers_without_restart(
    up: UpstreamServer, redis_server: PrivateRedis
) -> None:
    store = RedisStore.from_url(redis_server.url, prefix=PREFIX, socket_timeout=1.0)
    cookie = await mint_session(store, "alice", "token-alice")
    headers = {"Cookie": f"bff-session={cookie}", "X-CSRF": "1"}
    async with (
        serve(settings_for(up, redis_server), store) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        assert (await client.get("/api/before", headers=headers)).status_code == 200
        redis_server.stop()
        for _ in range(3):
            r = await client.get("/api/down", headers=headers)
            assert r.status_code == 503
            assert r.json()["error"] == "session_store_unavailable"
            assert r.headers["retry-after"] == "5"
            assert r.headers["cache-control"] == "no-store"
        # routes that need no session keep working meanwhile
        assert (await client.get("/public/x")).status_code == 200
        assert (await client.get("/healthz")).status_code == 200

        redis_server.start()  # same port, empty (no persistence): the old session is gone
        for _ in range(5):  # the pool's connections to the old server fail once each
            try:
                fresh = await mint_session(store, "alice", "token-alice-2")
                break
            except StoreUnavailable:
                await asyncio.sleep(0.1)
        statuses = []
        for _ in range(20):
            r = await client.get(
                "/api/after", headers={"Cookie": f"bff-session={fresh}", "X-CSRF": "1"}
            )
            statuses.append(r.status_code)
            if r.status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert statuses[-1] == 200, statuses
        assert up.last().all("authorization") == ["Bearer token-alice-2"]
        r = await client.get("/api/old", headers=headers)
        assert r.status_code == 401  # lost with the store: a clean 401, never a 5xx
