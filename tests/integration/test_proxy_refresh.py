"""Refresh through the proxy: 50 concurrent calls of one session right after its access
token expired cause exactly one refresh grant, and every call reaches the upstream with
the new token; a provider that rejects reuse never sees the old refresh token again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from bff.store.memory import MemoryStore
from bff.tokens.records import TokenSet
from tests.fake_idp import FakeIdp
from tests.integration.proxy_env import make_settings, serve, session_service
from tests.integration.upstream_server import UpstreamServer, running_upstream

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def up() -> Iterator[UpstreamServer]:
    with running_upstream() as server:
        yield server


async def expiring_session(store: MemoryStore, idp: FakeIdp) -> str:
    idp.live_refresh.add("refresh-token-0-XYZ")
    sessions = session_service(store)
    tokens = TokenSet(
        access_token="access-token-0-XYZ",
        expires_at=int(time.time()) + 5,
        refresh_token="refresh-token-0-XYZ",
    )
    ref, _ = await sessions.create(tokens=tokens, claims={"sub": "alice"}, user_agent="t")
    return sessions.cookie_value(ref)


async def test_50_concurrent_proxied_requests_one_refresh(up: UpstreamServer) -> None:
    store, idp = MemoryStore(), FakeIdp()
    idp.token_delay = 0.1  # the provider is slow enough for all 50 to arrive meanwhile
    cookie = await expiring_session(store, idp)
    up.received.clear()
    settings = make_settings([{"prefix": "/api", "upstream": up.url}])
    headers = {"Cookie": f"bff-session={cookie}", "X-CSRF": "1"}
    limits = httpx.Limits(max_connections=50)
    async with (
        serve(settings, store, idp) as url,
        httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as client,
    ):
        answers = await asyncio.gather(
            *(client.get(f"/api/n{i}", headers=headers) for i in range(50))
        )
        assert [r.status_code for r in answers] == [200] * 50
        assert idp.refresh_grants == 1
        assert idp.reused_refresh_tokens == []
        bearers = {r.header("authorization") for r in up.received}
        assert bearers == {"Bearer access-token-1-XYZ"}
        assert len(up.received) == 50
    assert idp.token_requests[-1]["refresh_token"] == ["refresh-token-0-XYZ"]


async def test_invalid_grant_through_the_proxy_is_401_and_session_gone(up: UpstreamServer) -> None:
    store, idp = MemoryStore(), FakeIdp()
    idp.refresh_error = "invalid_grant"
    cookie = await expiring_session(store, idp)
    settings = make_settings([{"prefix": "/api", "upstream": up.url}])
    headers = {"Cookie": f"bff-session={cookie}", "X-CSRF": "1"}
    up.received.clear()
    async with serve(settings, store, idp) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.get("/api/x", headers=headers)
        assert r.status_code == 401 and r.json()["error"] == "session_expired"
        r = await client.get("/api/x", headers=headers)
        assert r.status_code == 401 and r.json()["error"] == "not_authenticated"
    assert up.received == []


async def test_provider_down_is_502_then_recovers(up: UpstreamServer) -> None:
    store, idp = MemoryStore(), FakeIdp()
    cookie = await expiring_session(store, idp)
    settings = make_settings([{"prefix": "/api", "upstream": up.url}])
    headers = {"Cookie": f"bff-session={cookie}", "X-CSRF": "1"}
    idp.token_status, idp.token_body = 503, "down"
    async with serve(settings, store, idp) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.get("/api/x", headers=headers)
        assert r.status_code == 502 and r.json()["error"] == "idp_unavailable"
        assert "retry-after" in r.headers
        idp.token_status, idp.token_body = 200, None
        r = await client.get("/api/x", headers=headers)
        assert r.status_code == 200
