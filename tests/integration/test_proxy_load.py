"""Concurrency and disconnects: many users at once never see each other's token, and a
browser that leaves releases its upstream exchange (sessions in the shared Redis, under
a prefix of this test's own)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis.asyncio as aioredis

from bff.store.redis import RedisStore
from tests.integration.proxy_env import make_settings, mint_session, serve
from tests.integration.upstream_server import UpstreamServer, running_upstream

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def up() -> Iterator[UpstreamServer]:
    with running_upstream() as server:
        yield server


@dataclass
class Env:
    url: str
    cookies: dict[str, str]  # user -> cookie value


@pytest.fixture
async def env(up: UpstreamServer, redis_url: str) -> AsyncIterator[Env]:
    up.received.clear()
    up.aborted.clear()
    prefix = f"bffproxy-{uuid.uuid4().hex[:12]}"
    store = RedisStore.from_url(redis_url, prefix=prefix)
    cookies = {
        f"user{i}": await mint_session(store, f"user{i}", f"token-user{i}") for i in range(20)
    }
    settings = make_settings(
        [{"prefix": "/api", "upstream": up.url}],
        BFF_SESSION_STORE=redis_url,
        BFF_STORE_PREFIX=prefix,
    )
    try:
        async with serve(settings, store) as url:
            yield Env(url, cookies)
    finally:
        raw = aioredis.Redis.from_url(redis_url)
        keys = [k async for k in raw.scan_iter(match=f"{prefix}:*")]
        if keys:
            await raw.delete(*keys)
        await raw.aclose()


async def until(condition: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        await asyncio.sleep(0.02)
    return False


def headers(env: Env, user: str, request_id: str) -> dict[str, str]:
    return {
        "Cookie": f"bff-session={env.cookies[user]}",
        "X-CSRF": "1",
        "X-Request-ID": request_id,
    }


async def test_200_concurrent_requests_across_20_sessions_with_disconnects(
    env: Env, up: UpstreamServer
) -> None:
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
    async with (
        httpx.AsyncClient(base_url=env.url, timeout=20, limits=limits) as client,
        # Impatient while reading the answer only: a connect slowed by a loaded machine must
        # not end the call before its request was sent (a ConnectTimeout, not a ReadTimeout).
        httpx.AsyncClient(
            base_url=env.url, timeout=httpx.Timeout(20, read=0.15), limits=limits
        ) as impatient,
    ):

        async def call(i: int) -> tuple[str, str, httpx.Response]:
            user, rid = f"user{i % 20}", f"rid-{i}"
            r = await client.post(
                f"/api/who/{i}?_sleep=0.05", headers=headers(env, user, rid), content=b"x" * i
            )
            return user, rid, r

        async def leave_waiting(i: int) -> None:
            with pytest.raises(httpx.ReadTimeout):
                await impatient.get(
                    f"/api/leave/{i}?_sleep=0.6", headers=headers(env, "user0", f"w{i}")
                )

        async def leave_streaming(i: int) -> None:
            path = f"/api/stream/{i}?_forever=1"
            async with client.stream("GET", path, headers=headers(env, "user1", f"s{i}")) as r:
                async for _ in r.aiter_raw():
                    break  # one chunk, then the browser goes away

        results = await asyncio.gather(
            *(call(i) for i in range(200)),
            *(leave_waiting(i) for i in range(20)),
            *(leave_streaming(i) for i in range(10)),
        )
        calls = [r for r in results if r is not None]
        assert len(calls) == 200
        by_rid = {seen.header("x-request-id"): seen for seen in up.received}
        for user, rid, response in calls:
            assert response.status_code == 200, response.text
            echo = response.json()
            assert [v for k, v in echo["headers"] if k == "Authorization"] == [
                f"Bearer token-{user}"
            ], rid
            assert by_rid[rid].all("authorization") == [f"Bearer token-{user}"]
            assert by_rid[rid].body_size == int(rid.split("-")[1])

        # every stream the browser left is released upstream, and nothing else broke
        assert await until(lambda: sum(p.startswith("/api/stream/") for p in up.aborted) == 10)
        again = await asyncio.gather(*(call(i) for i in range(20)))
        assert all(r.status_code == 200 for _, _, r in again)


async def test_disconnect_mid_stream_releases_the_upstream(env: Env, up: UpstreamServer) -> None:
    async with httpx.AsyncClient(base_url=env.url, timeout=10) as client:
        started = time.monotonic()
        path = "/api/endless?_forever=1"
        async with client.stream("GET", path, headers=headers(env, "user3", "e1")) as r:
            assert r.status_code == 200
            async for _ in r.aiter_raw():
                break
        assert await until(lambda: "/api/endless" in up.aborted, timeout=3)
        assert time.monotonic() - started < 3


async def test_disconnect_while_waiting_releases_the_upstream(env: Env, up: UpstreamServer) -> None:
    async with httpx.AsyncClient(base_url=env.url, timeout=0.2) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/api/ponder?_sleep=8", headers=headers(env, "user4", "p1"))
    # noticed within the watch delay (1 s), long before the upstream would answer
    assert await until(lambda: "/api/ponder" in up.aborted, timeout=3)
