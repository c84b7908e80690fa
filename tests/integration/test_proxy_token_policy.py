"""The per-route token policy and step-up through the real proxy to the real loopback
upstream: two routes with different `resource`s each get their own token and never the
other's; a `client` route sends the client-credentials token (50 concurrent requests, one
grant); an `exchange` route sends the exchanged token; an upstream's RFC 9470 challenge
reaches the SPA as 401 step_up_required, whose login_url asks the provider (PAR) for the
acr_values, and after that login the request succeeds; under a frontend's path base,
login_url and the default return are under that base."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bff.config.load import load_settings
from bff.session.cookies import CookieSigner
from bff.session.crypto import KeyRing
from bff.session.service import SessionService
from bff.store.memory import MemoryStore
from bff.tokens.records import TokenSet
from bff.upstream.origins import UpstreamPool
from bff.web.app import create_app
from tests.browser import Browser
from tests.fake_idp import (
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUER,
    SECRET_KEY,
    TOKEN_EXCHANGE,
    FakeIdp,
    query,
)
from tests.integration.proxy_env import make_settings, serve, session_service
from tests.integration.upstream_server import UpstreamServer, running_upstream

pytestmark = pytest.mark.anyio

PUBLIC = "http://localhost:8000"  # BFF_PUBLIC_URL's default; the test client sends its Host


@pytest.fixture(scope="module")
def up() -> Iterator[UpstreamServer]:
    with running_upstream() as server:
        yield server


async def session_cookie(store: MemoryStore, idp: FakeIdp, access: str = "session-token") -> str:
    idp.live_refresh.add("refresh-token-0-XYZ")
    sessions = session_service(store)
    tokens = TokenSet(
        access_token=access, expires_at=int(time.time()) + 3600, refresh_token="refresh-token-0-XYZ"
    )
    ref, _ = await sessions.create(tokens=tokens, claims={"sub": "alice"}, user_agent="t")
    return sessions.cookie_value(ref)


def bearers(up: UpstreamServer, path_start: str) -> set[str | None]:
    return {r.header("authorization") for r in up.received if r.path.startswith(path_start)}


async def test_each_route_its_own_token_client_and_exchange(up: UpstreamServer) -> None:
    store, idp = MemoryStore(), FakeIdp()
    idp.token_delay = 0.05  # slow enough for the 50 client requests to meet in flight
    cookie = await session_cookie(store, idp)
    routes = [
        {"prefix": "/a", "upstream": f"{up.url}/a", "resource": "https://a.example/"},
        {
            "prefix": "/b",
            "upstream": f"{up.url}/b",
            "resource": "https://b.example/",
            "scopes": ["b.read"],
        },
        {"prefix": "/c", "upstream": f"{up.url}/c", "token": "client", "resource": "urn:c"},
        {"prefix": "/x", "upstream": f"{up.url}/x", "token": "exchange", "resource": "urn:x"},
        {"prefix": "/api", "upstream": f"{up.url}/main"},
    ]
    headers = {"Cookie": f"bff-session={cookie}", "X-CSRF": "1"}
    up.received.clear()
    async with (
        serve(make_settings(routes), store, idp) as url,
        httpx.AsyncClient(
            base_url=url, timeout=10, limits=httpx.Limits(max_connections=50)
        ) as client,
    ):
        for _ in range(3):
            for prefix in ("/a", "/b", "/api", "/a", "/x"):
                r = await client.get(f"{prefix}/n", headers=headers)
                assert r.status_code == 200, r.text
        answers = await asyncio.gather(*(client.get(f"/c/{i}", headers=headers) for i in range(50)))
        assert [r.status_code for r in answers] == [200] * 50
        # a client route is for logged-in users only
        r = await client.get("/c/anonymous", headers={"X-CSRF": "1"})
        assert r.status_code == 401
    a, b = bearers(up, "/a/"), bearers(up, "/b/")
    assert a == {"Bearer access-a_example-1"}
    assert b == {"Bearer access-b_example-2"}
    assert bearers(up, "/main/") == {"Bearer session-token"}
    assert bearers(up, "/x/") == {"Bearer exchanged-urn_x-3"}
    assert bearers(up, "/c/") == {"Bearer client-urn_c-4"}
    assert idp.client_grants == 1 and idp.exchanges == 1
    narrowing = [f for f in idp.token_requests if f["grant_type"] == ["refresh_token"]]
    assert [f["resource"] for f in narrowing] == [["https://a.example/"], ["https://b.example/"]]
    assert narrowing[1]["scope"] == ["b.read"]
    assert narrowing[1]["refresh_token"] == ["refresh-token-1-XYZ"]  # the rotated one
    (exchange,) = [f for f in idp.token_requests if f["grant_type"] == [TOKEN_EXCHANGE]]
    assert exchange["subject_token"] == ["session-token"]
    assert len(up.received) == 3 * 5 + 50


async def test_exchange_route_without_provider_support_is_502(up: UpstreamServer) -> None:
    store, idp = MemoryStore(), FakeIdp()
    idp.discovery["grant_types_supported"] = ["authorization_code", "refresh_token"]
    cookie = await session_cookie(store, idp)
    routes = [{"prefix": "/x", "upstream": up.url, "token": "exchange"}]
    up.received.clear()
    async with (
        serve(make_settings(routes), store, idp) as url,
        httpx.AsyncClient(base_url=url) as c,
    ):
        r = await c.get("/x/n", headers={"Cookie": f"bff-session={cookie}", "X-CSRF": "1"})
    assert r.status_code == 502 and r.json()["error"] == "token_exchange_unavailable"
    assert up.received == [] and idp.token_requests == []


async def test_step_up_round_trip(up: UpstreamServer) -> None:
    store, idp = MemoryStore(), FakeIdp(par=True)
    cookie = await session_cookie(store, idp, access="weak-token")
    challenge = 'Bearer error="insufficient_user_authentication", acr_values="gold", max_age=300'
    target = (
        "/api/orders?"
        + httpx.QueryParams(
            {"_reject": "weak-token", "_header": f"WWW-Authenticate:{challenge}"}
        ).__str__()
    )
    up.received.clear()
    settings = make_settings([{"prefix": "/api", "upstream": up.url}])
    async with (
        serve(settings, store, idp) as url,
        httpx.AsyncClient(base_url=url, headers={"Host": "localhost:8000"}) as client,
    ):
        spa = {"X-CSRF": "1", "Cookie": f"bff-session={cookie}", "Referer": f"{PUBLIC}/shop?x=1"}
        r = await client.get(target, headers=spa)
        assert r.status_code == 401
        body = r.json()
        assert body["error"] == "step_up_required"
        login_url = body["login_url"]
        parts = urlsplit(login_url)
        assert parts.path == "/bff/login" and not parts.netloc
        assert parse_qs(parts.query) == {
            "returnUrl": ["/shop?x=1"],
            "acr_values": ["gold"],
            "max_age": ["300"],
        }
        # the new login, as a browser navigates it
        browser = Browser(None, client=client)
        r = await browser.get(login_url)
        assert r.status_code == 302 and r.headers["location"].startswith(f"{ISSUER}/authorize?")
        (par,) = idp.par_requests
        assert par["acr_values"] == ["gold"] and par["max_age"] == ["300"]
        idp.next_nonce = par["nonce"][0]
        idp.id_claims = {"acr": "gold", "auth_time": int(time.time())}
        r = await browser.get(
            "/bff/callback", params={"state": par["state"][0], "code": "c-1", "iss": ISSUER}
        )
        assert r.status_code == 302 and r.headers["location"] == "/shop?x=1"
        # the retried request succeeds with the stronger login's token
        r = await browser.get(target, headers={"X-CSRF": "1"})
        assert r.status_code == 200
    assert up.received[-1].header("authorization") == "Bearer access-token-1-XYZ"


async def test_step_up_under_a_path_base(up: UpstreamServer) -> None:
    """A frontend served under a path base (`[[frontends]]`, public URL .../shop): its
    login_url and its default return are under that base, not at the host's root."""
    store, idp = MemoryStore(), FakeIdp()
    keys = KeyRing([SECRET_KEY])
    sessions = SessionService(
        store=store,
        keys=keys,
        signer=CookieSigner(keys.signing_keys, namespace="shop"),
        idle_timeout=1800,
        max_lifetime=86400,
        clock=time.time,
        namespace="shop",
    )
    tokens = TokenSet(access_token="weak-token", expires_at=int(time.time()) + 3600)
    ref, _ = await sessions.create(tokens=tokens, claims={"sub": "alice"}, user_agent="t")
    challenge = 'Bearer error="insufficient_user_authentication", acr_values="gold"'
    target = "/shop/api/orders?" + str(
        httpx.QueryParams({"_reject": "weak-token", "_header": f"WWW-Authenticate:{challenge}"})
    )
    toml = {
        "frontends": [
            {
                "name": "shop",
                "public_url": f"{PUBLIC}/shop",
                "issuer": ISSUER,
                "client_id": CLIENT_ID,
                "routes": [{"prefix": "/api", "upstream": up.url}],
            }
        ]
    }
    env = {"BFF_SECRET_KEY": SECRET_KEY, "BFF_FRONTEND_SHOP_CLIENT_SECRET": CLIENT_SECRET}
    pool = UpstreamPool(timeout=5)  # closed here: the ASGI transport runs no lifespan
    http = idp.http()
    app = create_app(
        load_settings(env, toml), http=http, store=store, discover_on_startup=False, upstreams=pool
    )
    browser = Browser(app)
    try:
        spa = {"X-CSRF": "1", "Cookie": f"bff-session={sessions.cookie_value(ref)}"}
        for referer, back in ((f"{PUBLIC}/shop/cart", "/shop/cart"), (None, "/shop/")):
            headers = {**spa, "Referer": referer} if referer else spa
            r = await browser.get(target, headers=headers)
            assert r.status_code == 401 and r.json()["error"] == "step_up_required"
            parts = urlsplit(r.json()["login_url"])
            assert parts.path == "/shop/bff/login"
            assert parse_qs(parts.query) == {"returnUrl": [back], "acr_values": ["gold"]}
        r = await browser.get(r.json()["login_url"])
        assert r.status_code == 302 and r.headers["location"].startswith(f"{ISSUER}/authorize?")
        assert query(r.headers["location"])["acr_values"] == "gold"
    finally:
        await browser.aclose()
        await http.aclose()
        await pool.aclose()
