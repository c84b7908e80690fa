"""Fail closed on identity, soft on availability (THREATS.md invariant 10): a Redis that
is down or hangs, and a provider that is down or refuses our client, answer 502/503 with
`Retry-After` and never end a session (oauth2-proxy #1630 and #1945, membrane #3293
logged everyone out during a provider blip); only `invalid_grant` ends one. `/api`
never answers with a redirect. A private redis-server, stopped and paused by its PID."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from bff.store.redis import RedisStore
from tests.integration.proxy_env import PrivateRedis, private_redis
from tests.integration.upstream_server import UpstreamServer
from tests.security.conftest import Bff, running_bff

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def redis_server() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


@pytest.fixture
async def bff(upstream: UpstreamServer, redis_server: PrivateRedis) -> AsyncIterator[Bff]:
    upstream.received.clear()
    if redis_server.process is None:
        redis_server.start()
    store = RedisStore.from_url(redis_server.url, prefix="faults", socket_timeout=1.0)
    routes = [{"prefix": "/api", "upstream": upstream.url}]
    async with running_bff(routes, store=store, BFF_SESSION_STORE=redis_server.url) as b:
        yield b


def assert_unavailable(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"] == code
    assert int(r.headers["retry-after"]) > 0
    assert "location" not in r.headers
    assert "set-cookie" not in r.headers  # no cookie is cleared: the session stands


async def test_a_hung_redis_is_503_with_retry_after_and_the_session_survives(
    bff: Bff, redis_server: PrivateRedis, upstream: UpstreamServer
) -> None:
    browser = bff.browser()
    await bff.login(browser)
    assert redis_server.process is not None
    pid = redis_server.process.pid
    os.kill(pid, signal.SIGSTOP)  # slow to the point of silence
    try:
        assert_unavailable(
            await browser.get("/bff/user", csrf=True), 503, "session_store_unavailable"
        )
        assert_unavailable(await browser.get("/api/x", csrf=True), 503, "session_store_unavailable")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert (await browser.get("/bff/user", csrf=True)).status_code == 200
    assert (await browser.get("/api/x", csrf=True)).status_code == 200
    assert [r.path for r in upstream.received] == ["/api/x"]


async def test_a_stopped_redis_is_503_everywhere_and_bff_recovers_without_a_restart(
    bff: Bff, redis_server: PrivateRedis, upstream: UpstreamServer
) -> None:
    browser = bff.browser()
    await bff.login(browser)
    redis_server.stop()
    try:
        for r in (
            await browser.get("/bff/user", csrf=True),
            await browser.get("/api/x", csrf=True),
            await browser.post("/api/x", csrf=True, content=b"body"),
        ):
            assert_unavailable(r, 503, "session_store_unavailable")
        r = await browser.get("/bff/login")
        assert r.status_code == 503 and "location" not in r.headers
        assert upstream.received == []
    finally:
        redis_server.start()  # an empty one (no persistence): the old session is gone
    assert (await browser.get("/bff/user", csrf=True)).status_code == 401
    await bff.login(bff.browser())  # and the same process serves new logins again


def token_route(bff: Bff) -> object:
    (route,) = [r for r in bff.idp.router.routes if r.pattern and "/token" in repr(r.pattern)]
    return route


@pytest.mark.parametrize(
    "fault", ["connect_error", "http_503", "garbage", "invalid_client", "unauthorized_client"]
)
async def test_provider_faults_at_refresh_are_502_and_keep_the_session(
    bff: Bff, fault: str, upstream: UpstreamServer
) -> None:
    browser = bff.browser()
    bff.idp.access_ttl = 1  # below the refresh skew: the next proxied call refreshes
    await bff.login(browser)
    route = token_route(bff)
    original = route.side_effect  # type: ignore[attr-defined]
    if fault == "connect_error":
        route.side_effect = httpx.ConnectError("provider down")  # type: ignore[attr-defined]
    elif fault == "http_503":
        bff.idp.token_status, bff.idp.token_body = 503, {"error": "temporarily_unavailable"}
    elif fault == "garbage":
        bff.idp.token_body = b"<html>maintenance</html>"
    else:  # our own misconfiguration: alert loudly, keep every session
        bff.idp.refresh_error = fault
    try:
        r = await browser.get("/api/x", csrf=True)
        assert_unavailable(r, 502, "idp_unavailable")
        assert (await browser.get("/bff/user", csrf=True)).status_code == 200
    finally:
        route.side_effect = original  # type: ignore[attr-defined]
        bff.idp.token_status, bff.idp.token_body, bff.idp.refresh_error = 200, None, None
        bff.idp.access_ttl = 3600
    assert upstream.received == []
    r = await browser.get("/api/x", csrf=True)  # the provider is back: same session
    assert r.status_code == 200


async def test_only_invalid_grant_ends_the_session_and_api_never_redirects(bff: Bff) -> None:
    browser = bff.browser()
    bff.idp.access_ttl = 1
    await bff.login(browser)
    bff.idp.refresh_error = "invalid_grant"
    r = await browser.get("/api/x", csrf=True)
    assert r.status_code == 401 and r.json()["error"] == "session_expired"
    assert "location" not in r.headers
    assert (await browser.get("/bff/user", csrf=True)).status_code == 401


async def test_a_provider_down_at_login_is_502_and_stores_nothing(bff: Bff) -> None:
    (route,) = [r for r in bff.idp.router.routes if "openid-configuration" in repr(r.pattern)]
    route.side_effect = httpx.ConnectError("provider down")
    browser = bff.browser()
    r = await browser.get("/bff/login", params={"returnUrl": "/app"})
    assert_unavailable(r, 502, "idp_unavailable")
    assert not browser.cookies
