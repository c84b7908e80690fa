"""Back-channel logout: a valid logout token ends the sessions on every instance; each
invalid variant leaves them intact."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from joserfc import jwt
from joserfc.jwk import RSAKey

from bff.store.redis import RedisStore
from tests.browser import Browser
from tests.fake_idp import Clock, FakeIdp
from tests.support.logout import logout_claims
from tests.unit.web.env import Env

pytestmark = pytest.mark.anyio


class Cluster:
    """Two BFF instances (own app, store client, HTTP client) sharing one real Redis."""

    def __init__(self, idp: FakeIdp, clock: Clock, redis_url: str) -> None:
        self.prefix = f"bfftest-{uuid.uuid4().hex[:12]}"
        self.stores = [RedisStore.from_url(redis_url, prefix=self.prefix) for _ in range(2)]
        self.envs = [Env(idp, clock, s, BFF_STORE_PREFIX=self.prefix) for s in self.stores]
        self.idp, self.clock = idp, clock

    async def logged_in_everywhere(self) -> list[Browser]:
        browsers = []
        for env in self.envs:
            r = await env.login()
            assert r.status_code == 302
            browsers.append(env.browser)
        for b in browsers:
            assert (await b.get("/bff/user", csrf=True)).status_code == 200
        return browsers

    def logout_token(self, **changes: Any) -> str:
        claims = logout_claims(int(self.clock()), **{"sid": "idp-sid-1", "sub": "alice", **changes})
        return self.idp.sign(claims, {"alg": "RS256", "kid": "k1", "typ": "logout+jwt"})

    async def post(self, token: str, instance: int = 0) -> Any:
        return await self.envs[instance].browser.post(
            "/bff/backchannel-logout", data={"logout_token": token}, headers={"Cookie": ""}
        )

    async def statuses(self) -> list[int]:
        return [(await e.browser.get("/bff/user", csrf=True)).status_code for e in self.envs]

    async def aclose(self, raw: Any) -> None:
        for env in self.envs:
            await env.aclose()
        for store in self.stores:
            await store.aclose()
        keys = [k async for k in raw.scan_iter(match=f"{self.prefix}:*")]
        if keys:
            await raw.delete(*keys)


@pytest.fixture
async def cluster(redis_url: str) -> AsyncIterator[Cluster]:
    clock = Clock()
    c = Cluster(FakeIdp(clock=clock), clock, redis_url)
    raw = aioredis.Redis.from_url(redis_url)
    yield c
    await c.aclose(raw)
    await raw.aclose()


async def test_valid_logout_token_ends_sessions_on_both_instances(cluster: Cluster) -> None:
    await cluster.logged_in_everywhere()
    r = await cluster.post(cluster.logout_token())
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    assert await cluster.statuses() == [401, 401]


async def test_sub_only_logout_token(cluster: Cluster) -> None:
    await cluster.logged_in_everywhere()
    r = await cluster.post(cluster.logout_token(sid=None), instance=1)
    assert r.status_code == 200
    assert await cluster.statuses() == [401, 401]


def _foreign_key_token(cluster: Cluster) -> str:
    other = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    now = int(cluster.clock())
    claims = logout_claims(now, sid="idp-sid-1", exp=now + 60, jti="j")
    return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, other)


@pytest.mark.parametrize(
    "variant",
    [
        "bad_signature",
        "wrong_aud",
        "nonce_present",
        "missing_events",
        "no_sid_no_sub",
        "stale_iat",
        "missing_exp",
        "expired",
        "wrong_iss",
        "not_a_jwt",
    ],
)
async def test_invalid_logout_tokens_leave_sessions_intact(cluster: Cluster, variant: str) -> None:
    await cluster.logged_in_everywhere()
    now = int(cluster.clock())
    token = {
        "bad_signature": lambda: _foreign_key_token(cluster),
        "wrong_aud": lambda: cluster.logout_token(aud="someone-else"),
        "nonce_present": lambda: cluster.logout_token(nonce="n"),
        "missing_events": lambda: cluster.logout_token(events=None),
        "no_sid_no_sub": lambda: cluster.logout_token(sid=None, sub=None),
        "stale_iat": lambda: cluster.logout_token(iat=now - 3600),
        "wrong_iss": lambda: cluster.logout_token(iss="https://evil.test"),
        "not_a_jwt": lambda: "garbage",
        "missing_exp": lambda: cluster.logout_token(exp=None),
        "expired": lambda: cluster.logout_token(exp=now - 120),
    }[variant]()
    r = await cluster.post(token)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"
    assert r.headers["cache-control"] == "no-store"
    assert await cluster.statuses() == [200, 200]


async def test_replayed_jti_is_refused(cluster: Cluster) -> None:
    token = cluster.logout_token(sid="some-old-sid")
    assert (await cluster.post(token)).status_code == 200
    await cluster.logged_in_everywhere()
    r = await cluster.post(token, instance=1)
    assert r.status_code == 400
    assert "replay" in r.json()["error_description"]
    assert await cluster.statuses() == [200, 200]


async def test_wrong_content_type_and_missing_token(cluster: Cluster) -> None:
    env = cluster.envs[0]
    r = await env.browser.post("/bff/backchannel-logout", json={"logout_token": "x"})
    assert r.status_code == 400
    r = await env.browser.post("/bff/backchannel-logout", data={"other": "x"})
    assert r.status_code == 400
    many = {f"a{i}": "1" for i in range(20)}
    r = await env.browser.post("/bff/backchannel-logout", data=many)
    assert r.status_code == 400
