"""Two frontends in one instance, on two host names (a.localhost, b.localhost), each with
its own provider (two issuers) and client, one shared session store: two logins; each
session cookie works only on its own host, even under the same cookie name; logout and
back-channel logout of one leave the other; a route of one is not reachable through the
other's host; an unknown host is 404 `unknown_host`."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from bff.config.load import load_settings
from bff.store import SessionStore
from bff.store.memory import MemoryStore
from bff.store.redis import RedisStore
from bff.upstream.origins import UpstreamPool
from bff.web.app import create_app
from tests.browser import Browser
from tests.fake_idp import SECRET_KEY, FakeIdp, query
from tests.integration.upstream_server import UpstreamServer, running_upstream

pytestmark = pytest.mark.anyio

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


@pytest.fixture(scope="module")
def up() -> Iterator[UpstreamServer]:
    with running_upstream() as server:
        yield server


@dataclass
class Site:
    name: str
    idp: FakeIdp
    browser: Browser


def two_frontends_toml(upstream: str) -> dict[str, Any]:
    return {
        "frontends": [
            {
                "name": "a",
                "public_url": "http://a.localhost:8000",
                "issuer": "https://idp-a.test",
                "client_id": "app-a",
                "routes": [{"prefix": "/api", "upstream": upstream}],
            },
            {
                "name": "b",
                "public_url": "http://b.localhost:8000",
                "issuer": "https://idp-b.test",
                "client_id": "app-b",
                "routes": [{"prefix": "/b-api", "upstream": upstream}],
            },
        ]
    }


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[SessionStore]:
    """The one store both frontends share (Redis: under a prefix of this test's own)."""
    if request.param == "memory":
        yield MemoryStore()
        return
    prefix = f"bfftest-fe-{uuid.uuid4().hex[:12]}"
    redis_store = RedisStore.from_url(redis_url, prefix=prefix)
    yield redis_store
    await redis_store.aclose()
    raw = aioredis.Redis.from_url(redis_url)
    keys = [k async for k in raw.scan_iter(match=f"{prefix}:*")]
    if keys:
        await raw.delete(*keys)
    await raw.aclose()


@pytest.fixture
async def sites(up: UpstreamServer, store: SessionStore) -> AsyncIterator[dict[str, Site]]:
    idps = {
        "a": FakeIdp(issuer="https://idp-a.test", client_id="app-a"),
        "b": FakeIdp(issuer="https://idp-b.test", client_id="app-b"),
    }
    by_host = {idp.issuer.removeprefix("https://"): idp for idp in idps.values()}

    def provider(request: httpx.Request) -> httpx.Response:
        response: httpx.Response = by_host[request.url.host].router.handler(request)
        return response

    env = {
        "BFF_SECRET_KEY": SECRET_KEY,
        "BFF_FRONTEND_A_CLIENT_SECRET": "secret-of-app-a",
        "BFF_FRONTEND_B_CLIENT_SECRET": "secret-of-app-b",
    }
    settings = load_settings(env, two_frontends_toml(up.url))
    http = httpx.AsyncClient(transport=httpx.MockTransport(provider))
    pool = UpstreamPool(timeout=5)  # closed here: the ASGI transport runs no lifespan
    app = create_app(settings, http=http, store=store, discover_on_startup=False, upstreams=pool)
    out = {
        name: Site(name, idp, Browser(app, f"http://{name}.localhost:8000"))
        for name, idp in idps.items()
    }
    out["c"] = Site("c", idps["a"], Browser(app, "http://c.localhost:8000"))
    yield out
    for site in out.values():
        await site.browser.aclose()
    await http.aclose()
    await pool.aclose()


async def login(site: Site) -> None:
    r = await site.browser.get("/bff/login", params={"returnUrl": "/home"})
    assert r.status_code == 302, r.text
    authorize = r.headers["location"]
    assert authorize.startswith(f"{site.idp.issuer}/authorize?")
    params = query(authorize)
    assert params["client_id"] == site.idp.client_id
    assert params["redirect_uri"] == f"http://{site.name}.localhost:8000/bff/callback"
    site.idp.next_nonce = params["nonce"]
    r = await site.browser.get(
        "/bff/callback", params={"code": "c", "state": params["state"], "iss": site.idp.issuer}
    )
    assert r.status_code == 302 and r.headers["location"] == "/home", r.text
    assert "bff-session" in site.browser.cookies  # the same name on both hosts


async def user_status(browser: Browser, cookies: dict[str, str] | None = None) -> int:
    headers = {"X-CSRF": "1"}
    if cookies is not None:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return (await browser.get("/bff/user", headers=headers)).status_code


async def test_each_cookie_works_only_on_its_own_host(sites: dict[str, Site]) -> None:
    a, b = sites["a"], sites["b"]
    await login(a)
    await login(b)
    assert await user_status(a.browser) == 200
    assert await user_status(b.browser) == 200
    # A copied cookie, under the very name the other frontend uses, is no session there.
    assert await user_status(b.browser, a.browser.cookies) == 401
    assert await user_status(a.browser, b.browser.cookies) == 401
    r = await a.browser.get("/bff/user", csrf=True)
    assert r.json()["iss"] == "https://idp-a.test" and r.json()["aud"] == "app-a"


async def test_logout_of_one_leaves_the_other(sites: dict[str, Site]) -> None:
    a, b = sites["a"], sites["b"]
    await login(a)
    await login(b)
    r = await a.browser.post("/bff/logout", csrf=True)
    assert r.status_code == 302
    assert r.headers["location"].startswith("https://idp-a.test/end_session?")
    assert query(r.headers["location"])["post_logout_redirect_uri"] == "http://a.localhost:8000/"
    assert a.idp.revocations and not b.idp.revocations  # each frontend's own provider
    assert await user_status(a.browser) == 401
    assert await user_status(b.browser) == 200


def logout_token(idp: FakeIdp, **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": idp.issuer,
        "aud": idp.client_id,
        "iat": now,
        "exp": now + 120,
        "jti": uuid.uuid4().hex,
        "events": {BACKCHANNEL_EVENT: {}},
        **claims,
    }
    return idp.sign(body, {"alg": "RS256", "kid": "k1", "typ": "logout+jwt"})


async def test_backchannel_logout_ends_only_that_frontends_sessions(
    sites: dict[str, Site],
) -> None:
    a, b = sites["a"], sites["b"]
    await login(a)
    await login(b)  # the same sub and provider sid ("alice", "idp-sid-1") at both
    form = {"logout_token": logout_token(a.idp, sub="alice", sid="idp-sid-1")}
    # A's provider's token is refused by B (another issuer, another client) ...
    r = await b.browser.post("/bff/backchannel-logout", data=form)
    assert r.status_code == 400
    assert await user_status(b.browser) == 200 and await user_status(a.browser) == 200
    # ... and at A it ends A's session only, although B's has the same sub and sid.
    r = await a.browser.post("/bff/backchannel-logout", data=form)
    assert r.status_code == 200, r.text
    assert await user_status(a.browser) == 401
    assert await user_status(b.browser) == 200
    # by sub alone, too
    await login(a)
    form = {"logout_token": logout_token(a.idp, sub="alice")}
    assert (await a.browser.post("/bff/backchannel-logout", data=form)).status_code == 200
    assert await user_status(a.browser) == 401
    assert await user_status(b.browser) == 200


async def test_routes_belong_to_their_frontend(sites: dict[str, Site], up: UpstreamServer) -> None:
    a, b = sites["a"], sites["b"]
    await login(a)
    await login(b)
    up.received.clear()
    r = await a.browser.get("/api/orders", csrf=True)
    assert r.status_code == 200
    assert up.last().header("authorization") == "Bearer access-token-1-XYZ"
    assert up.last().header("x-forwarded-host") == "a.localhost:8000"
    r = await b.browser.get("/b-api/orders", csrf=True)
    assert r.status_code == 200
    assert up.last().header("x-forwarded-host") == "b.localhost:8000"
    up.received.clear()
    assert (await b.browser.get("/api/orders", csrf=True)).status_code == 404
    assert (await a.browser.get("/b-api/orders", csrf=True)).status_code == 404
    assert up.received == []


async def test_an_unknown_host_is_404_but_health_answers(sites: dict[str, Site]) -> None:
    c = sites["c"].browser
    for path in ("/bff/login", "/bff/user", "/api/orders", "/"):
        r = await c.get(path, csrf=True)
        assert r.status_code == 404, path
        assert r.json()["error"] == "unknown_host"
        assert r.headers["cache-control"] == "no-store"
    assert (await c.get("/healthz")).status_code == 200


async def test_two_frontends_under_one_host_by_path_base(tmp_path: Path) -> None:
    """One host, two path bases, each frontend with its own cookie name, provider and
    static files; the frontend sees its paths without its base."""
    shop_files = tmp_path / "shop"
    shop_files.mkdir()
    (shop_files / "index.html").write_text("<p>the shop</p>")
    idps = {
        "shop": FakeIdp(issuer="https://idp-a.test", client_id="app-shop"),
        "blog": FakeIdp(issuer="https://idp-b.test", client_id="app-blog"),
    }
    by_host = {idp.issuer.removeprefix("https://"): idp for idp in idps.values()}

    def provider(request: httpx.Request) -> httpx.Response:
        response: httpx.Response = by_host[request.url.host].router.handler(request)
        return response

    toml = {
        "frontends": [
            {
                "name": name,
                "public_url": f"http://localhost:8000/{name}",
                "issuer": idp.issuer,
                "client_id": idp.client_id,
                "cookie_name": f"{name}-session",
                **({"static_dir": str(shop_files)} if name == "shop" else {}),
            }
            for name, idp in idps.items()
        ]
    }
    env = {
        "BFF_SECRET_KEY": SECRET_KEY,
        "BFF_FRONTEND_SHOP_CLIENT_SECRET": "s1",
        "BFF_FRONTEND_BLOG_CLIENT_SECRET": "s2",
    }
    http = httpx.AsyncClient(transport=httpx.MockTransport(provider))
    app = create_app(
        load_settings(env, toml), http=http, store=MemoryStore(), discover_on_startup=False
    )
    browser = Browser(app)
    try:
        for name, idp in idps.items():
            r = await browser.get(f"/{name}/bff/login")
            assert r.status_code == 302, r.text
            params = query(r.headers["location"])
            assert params["redirect_uri"] == f"http://localhost:8000/{name}/bff/callback"
            idp.next_nonce = params["nonce"]
            r = await browser.get(
                f"/{name}/bff/callback",
                params={"code": "c", "state": params["state"], "iss": idp.issuer},
            )
            assert r.status_code == 302 and r.headers["location"] == f"/{name}/", r.text
            assert f"{name}-session" in browser.cookies
        for name in idps:
            r = await browser.get(f"/{name}/bff/user", csrf=True)
            assert r.status_code == 200 and r.json()["aud"] == f"app-{name}"
        # B's cookie presented under A's name is no session at A.
        forged = {"Cookie": f"shop-session={browser.cookies['blog-session']}", "X-CSRF": "1"}
        assert (await browser.get("/shop/bff/user", headers=forged)).status_code == 401
        r = await browser.get("/shop/")
        assert r.status_code == 200 and "the shop" in r.text
        assert (await browser.get("/blog/")).status_code == 404
        r = await browser.get("/elsewhere")
        assert r.status_code == 404 and r.json()["error"] == "unknown_host"
        r = await browser.post("/blog/bff/logout", csrf=True)
        assert r.status_code == 302
        assert query(r.headers["location"])["post_logout_redirect_uri"] == (
            "http://localhost:8000/blog/"
        )
        assert (await browser.get("/blog/bff/user", csrf=True)).status_code == 401
        assert (await browser.get("/shop/bff/user", csrf=True)).status_code == 200
    finally:
        await browser.aclose()
        await http.aclose()
