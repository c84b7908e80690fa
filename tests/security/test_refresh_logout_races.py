"""Refresh and logout races through two bff instances sharing the real Redis
(THREATS.md invariant 8): a storm of requests with an expiring token causes exactly one
refresh grant (oauth2-proxy #3456: a refresh token redeemed twice); a logout during a
refresh is never undone (connect-redis #328); the single-flight key is the session,
never the audience (nextjs-auth0 #2382 handed user A's token to user B)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import redis.asyncio as aioredis

from bff.store.redis import RedisStore
from tests.fake_idp import FakeIdp
from tests.integration.upstream_server import UpstreamServer
from tests.security.conftest import Bff, running_bff

pytestmark = pytest.mark.anyio


@dataclass
class Pair:
    """Two instances (own app, own store client, own provider client), one Redis."""

    a: Bff
    b: Bff
    idp: FakeIdp
    upstream: UpstreamServer
    redis_url: str
    prefix: str


@pytest.fixture
async def pair(upstream: UpstreamServer, redis_url: str, redis_prefix: str) -> AsyncIterator[Pair]:
    upstream.received.clear()
    idp = FakeIdp()
    idp.access_ttl = 1  # below BFF_REFRESH_SKEW: the first proxied call refreshes
    routes = [{"prefix": "/api", "upstream": upstream.url}]
    env = {"BFF_SESSION_STORE": redis_url, "BFF_STORE_PREFIX": redis_prefix}
    async with contextlib.AsyncExitStack() as stack:
        bffs = []
        for _ in range(2):
            store = RedisStore.from_url(redis_url, prefix=redis_prefix)
            bffs.append(
                await stack.enter_async_context(running_bff(routes, store=store, idp=idp, **env))
            )
        yield Pair(bffs[0], bffs[1], idp, upstream, redis_url, redis_prefix)


async def api(client: httpx.AsyncClient, url: str, cookie: str, rid: str) -> httpx.Response:
    return await client.get(
        f"{url}/api/who",
        headers={"Cookie": f"bff-session={cookie}", "X-CSRF": "1", "X-Request-ID": rid},
    )


async def until_locked(pair: Pair) -> None:
    raw = aioredis.Redis.from_url(pair.redis_url)
    try:
        for _ in range(500):
            if [k async for k in raw.scan_iter(match=f"{pair.prefix}:*:lock")]:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("no refresh started")
    finally:
        await raw.aclose()


def bearer_of(response: httpx.Response) -> str:
    (value,) = [v for k, v in response.json()["headers"] if k == "Authorization"]
    return str(value)


async def test_a_refresh_storm_over_two_instances_is_one_grant(pair: Pair) -> None:
    cookie = await pair.a.login(pair.a.browser(), sub="alice")
    pair.idp.access_ttl = 3600
    pair.idp.token_delay = 0.3  # a slow provider widens every race window
    async with httpx.AsyncClient(timeout=20) as client:
        answers = await asyncio.gather(
            *(
                api(client, (pair.a if i % 2 else pair.b).url, cookie, f"storm-{i}")
                for i in range(60)
            )
        )
    assert [r.status_code for r in answers] == [200] * 60
    assert pair.idp.refresh_grants == 1
    assert pair.idp.reused_refresh_tokens == []
    assert {bearer_of(r) for r in answers} == {"Bearer access-token-2-XYZ"}


async def test_a_logout_during_a_refresh_is_never_undone(pair: Pair) -> None:
    browser = pair.a.browser()
    cookie = await pair.a.login(browser, sub="alice")
    pair.idp.access_ttl = 3600
    pair.idp.token_delay = 0.6
    async with httpx.AsyncClient(timeout=20) as client:
        refreshing = asyncio.create_task(api(client, pair.b.url, cookie, "during"))
        await until_locked(pair)  # instance b holds the refresh lock: the grant is in flight
        r = await browser.post("/bff/logout", csrf=True)  # on the other instance
        assert r.status_code == 302
        answer = await refreshing
    assert answer.status_code == 401  # the refreshed token is not handed out
    assert pair.idp.refresh_grants == 1  # the refresh did run, and finished after the logout
    for bff in (pair.a, pair.b):
        again = await bff.browser().get(
            "/bff/user", headers={"Cookie": f"bff-session={cookie}", "X-CSRF": "1"}
        )
        assert again.status_code == 401
    assert not any(r.path == "/api/who" for r in pair.upstream.received)
    # the refresh token minted during the race was revoked, not left alive
    assert "refresh-token-2-XYZ" in {f["token"][0] for f in pair.idp.revocations}


async def test_two_users_refreshing_at_once_each_get_their_own_token(pair: Pair) -> None:
    """Same route, same audience, same moment: two grants, and every upstream request
    carries the token minted from its own user's refresh token."""
    alice = await pair.a.login(pair.a.browser(), sub="alice")
    bob = await pair.b.login(pair.b.browser(), sub="bob")
    pair.idp.access_ttl = 3600
    pair.idp.token_delay = 0.3
    users = {"alice": alice, "bob": bob}
    async with httpx.AsyncClient(timeout=20) as client:
        calls = [
            (user, api(client, bff.url, cookie, f"{user}-{i}"))
            for i in range(20)
            for (user, cookie), bff in zip(users.items(), (pair.a, pair.b), strict=True)
        ]
        answers = await asyncio.gather(*(c for _, c in calls))
    assert pair.idp.refresh_grants == 2
    # the token request that redeemed each user's login refresh token minted their token
    login_rt = {"alice": "refresh-token-1-XYZ", "bob": "refresh-token-2-XYZ"}
    minted = {}
    for n, form in enumerate(pair.idp.token_requests, start=1):
        if form.get("grant_type") == ["refresh_token"]:
            minted[form["refresh_token"][0]] = f"Bearer access-token-{n}-XYZ"
    for (user, _), response in zip(calls, answers, strict=True):
        assert response.status_code == 200
        assert bearer_of(response) == minted[login_rt[user]], user
    assert minted[login_rt["alice"]] != minted[login_rt["bob"]]
