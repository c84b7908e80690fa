"""The proxy against a real upstream on a loopback port, the BFF on a real uvicorn:
methods, path mapping, query, bodies, header hygiene, cookies, CSRF, path safety."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bff.store.memory import MemoryStore
from bff.upstream.origins import UpstreamPool
from bff.web.app import create_app
from tests.browser import Browser
from tests.fake_idp import FakeIdp
from tests.integration.proxy_env import make_settings, mint_session, raw_request, serve
from tests.integration.upstream_server import GZIPPED, UpstreamServer, running_upstream

pytestmark = pytest.mark.anyio

# What reaches the upstream of a minimal POST: nothing ambient of bff's or its client's.
MINIMAL_FORWARD = {
    "host",
    "x-csrf",
    "content-length",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
    "authorization",
}


class CountingStore(MemoryStore):
    """Counts session reads, to show what never looked a token up."""

    loads = 0

    async def load_session(self, session_hash: str, *, ttl: int) -> bytes | None:
        self.loads += 1
        return await super().load_session(session_hash, ttl=ttl)


@pytest.fixture(scope="module")
def up() -> Iterator[UpstreamServer]:
    with running_upstream() as server:
        yield server


@pytest.fixture(scope="module")
def other() -> Iterator[UpstreamServer]:
    with running_upstream() as server:
        yield server


def routes(up: UpstreamServer, other: UpstreamServer) -> list[dict[str, Any]]:
    return [
        {"prefix": "/api", "upstream": up.url + "/v1"},
        {"prefix": "/api/raw", "upstream": up.url},
        {"prefix": "/public", "upstream": up.url, "token": "none", "csrf": False},
        {"prefix": "/opt", "upstream": up.url, "token": "optional"},
        {"prefix": "/ro", "upstream": up.url, "methods": ["GET", "HEAD"]},
        {"prefix": "/jar", "upstream": up.localhost_url},
        {"prefix": "/other", "upstream": other.url + "/secret"},
        {"prefix": "/retry", "upstream": up.url, "retry_on_401": True},
    ]


@dataclass
class Env:
    url: str
    port: int
    store: CountingStore
    client: httpx.AsyncClient
    alice: str
    bob: str
    idp: FakeIdp

    def cookie(self, who: str, extra: str = "") -> dict[str, str]:
        value = self.alice if who == "alice" else self.bob
        return {"Cookie": f"bff-session={value}{extra}", "X-CSRF": "1"}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # module scope: one BFF server for the whole module


@pytest.fixture(scope="module")
async def server(
    up: UpstreamServer, other: UpstreamServer
) -> AsyncIterator[tuple[str, CountingStore, str, str, FakeIdp]]:
    store = CountingStore()
    alice = await mint_session(store, "alice", "token-alice")
    bob = await mint_session(store, "bob", "token-bob")
    idp = FakeIdp()
    async with serve(make_settings(routes(up, other)), store, idp) as url:
        yield url, store, alice, bob, idp


@pytest.fixture
async def env(
    server: tuple[str, CountingStore, str, str, FakeIdp],
    up: UpstreamServer,
    other: UpstreamServer,
) -> AsyncIterator[Env]:
    up.received.clear()
    other.received.clear()
    url, store, alice, bob, idp = server
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield Env(url, int(url.rsplit(":", 1)[1]), store, client, alice, bob, idp)


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_method_path_query_body_and_headers_reach_the_upstream(
    env: Env, up: UpstreamServer, method: str
) -> None:
    body = (method.encode() + b"-payload-") * 300 if method not in ("GET", "HEAD") else b""
    r = await env.client.request(
        method,
        "/api/orders/7?a=1&b=%2F..%2f&c=x%20y&c=2",
        content=body or None,
        headers={**env.cookie("alice"), "X-Custom": "kept", "Content-Type": "text/plain"},
    )
    assert r.status_code == 200
    seen = up.last()
    assert seen.method == method
    assert seen.path == "/v1/orders/7"
    assert seen.query == "a=1&b=%2F..%2f&c=x%20y&c=2"
    assert seen.body_size == len(body)
    assert seen.body_sha256 == hashlib.sha256(body).hexdigest()
    assert seen.all("authorization") == ["Bearer token-alice"]
    assert seen.header("x-custom") == "kept"
    assert seen.header("content-type") == "text/plain"
    assert seen.header("host") == f"127.0.0.1:{up.port}"
    assert str(seen.header("user-agent")).startswith("python-httpx/")  # the browser's own
    if method != "HEAD":
        echo = r.json()
        assert echo["method"] == method and echo["path"] == "/v1/orders/7"
    else:
        assert r.content == b"" and int(r.headers["content-length"]) > 0


async def test_the_bff_adds_no_ambient_headers(env: Env, up: UpstreamServer) -> None:
    request = (
        b"POST /api/min HTTP/1.1\r\nHost: spa.example\r\nX-CSRF: 1\r\n"
        b"Cookie: bff-session=" + env.alice.encode() + b"\r\nContent-Length: 3\r\n"
        b"Connection: close\r\n\r\nabc"
    )
    status, _ = await raw_request(env.port, request)
    assert status == 200
    assert up.last().names() == MINIMAL_FORWARD
    assert up.last().body_size == 3


async def test_the_aiohttp_transport_proxies_the_same_way(
    up: UpstreamServer, other: UpstreamServer
) -> None:
    """BFF_UPSTREAM_TRANSPORT=aiohttp: the same exchange through the reference transport
    (its Protocol behaviour is tests/integration/test_upstream_http.py's)."""
    up.received.clear()
    store = MemoryStore()
    alice = await mint_session(store, "alice", "token-alice")
    settings = make_settings(routes(up, other), BFF_UPSTREAM_TRANSPORT="aiohttp")
    async with serve(settings, store) as url, httpx.AsyncClient(base_url=url) as client:
        headers = {"Cookie": f"bff-session={alice}", "X-CSRF": "1"}
        r = await client.post("/api/orders?a=1", content=b"x" * 70_000, headers=headers)
        assert r.status_code == 200
        seen = up.last()
        assert (seen.path, seen.query, seen.body_size) == ("/v1/orders", "a=1", 70_000)
        assert seen.all("authorization") == ["Bearer token-alice"]
        assert (
            seen.header(
                "user-agent",
            )
            == r.request.headers["user-agent"]
        )
        assert seen.header("accept-encoding") == r.request.headers["accept-encoding"]
        async with client.stream("GET", "/api/z?_gzip=1", headers=headers) as streamed:
            raw = b"".join([chunk async for chunk in streamed.aiter_raw()])
        assert raw == GZIPPED  # never decompressed
        request = (
            b"POST /api/min HTTP/1.1\r\nHost: spa.example\r\nX-CSRF: 1\r\n"
            b"Cookie: bff-session=" + alice.encode() + b"\r\nContent-Length: 3\r\n"
            b"Connection: close\r\n\r\nabc"
        )
        status, _ = await raw_request(int(url.rsplit(":", 1)[1]), request)
        assert status == 200
        assert up.last().names() == MINIMAL_FORWARD  # nothing of aiohttp's own


async def test_bodies_pass_raw_never_decompressed(env: Env) -> None:
    async with env.client.stream("GET", "/api/z?_gzip=1", headers=env.cookie("alice")) as r:
        raw = b"".join([chunk async for chunk in r.aiter_raw()])
    assert r.headers["content-encoding"] == "gzip"
    assert raw == GZIPPED
    assert int(r.headers["content-length"]) == len(GZIPPED)


async def test_path_mapping_follows_proxy_pass(env: Env, up: UpstreamServer) -> None:
    cases = {
        "/api": "/v1",
        "/api/": "/v1/",
        "/api/a/b/c.json": "/v1/a/b/c.json",
        "/api/raw/x": "/api/raw/x",  # longest prefix; no upstream path: unchanged
        "/api/rawx": "/v1/rawx",  # segment boundary
        "/api/caf%C3%A9/a%2Cb/%61": "/v1/caf%C3%A9/a%2Cb/a",  # `;` needs path_params
    }
    for path, expected in cases.items():
        r = await env.client.get(path, headers=env.cookie("alice"))
        assert r.status_code == 200, path
        assert up.last().path == expected, path


async def test_a_real_login_token_reaches_the_upstream(up: UpstreamServer) -> None:
    """The whole chain in-process: login through the fake provider, then /api."""
    idp = FakeIdp()
    http = idp.http()
    pool = UpstreamPool(timeout=5)
    app = create_app(
        make_settings([{"prefix": "/api", "upstream": up.url}]),
        http=http,
        store=MemoryStore(),
        discover_on_startup=False,
        upstreams=pool,
    )
    browser = Browser(app)
    try:
        r = await browser.get("/bff/login")
        state = httpx.URL(r.headers["location"]).params
        idp.next_nonce = state["nonce"]
        r = await browser.get(
            "/bff/callback",
            params={"code": "c", "state": state["state"], "iss": idp.discovery["issuer"]},
        )
        assert r.status_code == 302
        r = await browser.get("/api/me", csrf=True)
        assert r.status_code == 200
        assert up.last().all("authorization") == ["Bearer access-token-1-XYZ"]
        assert "access-token" not in str(dict(r.headers))
    finally:
        await browser.aclose()
        await pool.aclose()
        await http.aclose()


async def test_hop_by_hop_and_connection_named_headers_never_pass(
    env: Env, up: UpstreamServer
) -> None:
    cookie = env.alice.encode()
    request = (
        b"GET /api/h?_header=X-Up:1&_header=Keep-Alive:timeout=9"
        b"&_header=Proxy-Authenticate:Basic&_header=Trailer:X-T HTTP/1.1\r\n"
        b"Host: spa.example\r\nX-CSRF: 1\r\nCookie: bff-session=" + cookie + b"\r\n"
        b"Connection: close, X-Secret, X_Other\r\nX-Secret: s\r\nX-Other: o\r\n"
        b"Keep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-T\r\n"
        b"Proxy-Authorization: Basic Zm9vOmJhcg==\r\nProxy-Connection: keep-alive\r\n\r\n"
    )
    status, _ = await raw_request(env.port, request)
    assert status == 200
    names = up.last().names()
    for name in (
        "x-secret",
        "x-other",
        "keep-alive",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
    ):
        assert name not in names
    r = await env.client.get(
        "/api/h?_header=X-Up:1&_header=Keep-Alive:timeout=9&_header=Proxy-Authenticate:Basic",
        headers=env.cookie("alice"),
    )
    assert r.headers["x-up"] == "1"
    assert "keep-alive" not in r.headers and "proxy-authenticate" not in r.headers


async def test_bff_cookies_are_stripped_other_cookies_pass(env: Env, up: UpstreamServer) -> None:
    r = await env.client.get(
        "/api/c",
        headers={
            "X-CSRF": "1",
            "Cookie": f"theme=dark; bff-session={env.alice}; bff-session-login=L; lang=en",
        },
    )
    assert r.status_code == 200
    assert up.last().all("cookie") == ["theme=dark; lang=en"]
    assert env.alice not in str(up.last().headers)
    await env.client.get("/api/c", headers=env.cookie("alice"))
    assert "cookie" not in up.last().names()


async def test_inbound_authorization_and_spoofed_forwarding_never_reach_the_upstream(
    env: Env, up: UpstreamServer
) -> None:
    r = await env.client.get(
        "/api/s",
        headers={
            **env.cookie("alice"),
            "Authorization": "Bearer forged",
            "X-Forwarded-For": "6.6.6.6",
            "X_Forwarded_For": "7.7.7.7",
            "X-Forwarded-Host": "evil.example",
            "X-Forwarded-Proto": "gopher",
            "Forwarded": "for=6.6.6.6",
            "X-Real-IP": "6.6.6.6",
            "X-Request-ID": "req-123",
        },
    )
    assert r.status_code == 200
    seen = up.last()
    assert seen.all("authorization") == ["Bearer token-alice"]
    assert seen.all("x-forwarded-for") == ["127.0.0.1"]
    assert seen.all("x-forwarded-proto") == ["http"]
    assert seen.all("x-forwarded-host") == ["localhost:8000"]  # BFF_PUBLIC_URL's, never Host
    assert seen.all("x-request-id") == ["req-123"]
    assert r.headers["x-request-id"] == "req-123"
    text = str(seen.headers)
    assert "6.6.6.6" not in text and "7.7.7.7" not in text and "forged" not in text
    assert "evil.example" not in text and "gopher" not in text
    assert not {"forwarded", "x-real-ip", "x_forwarded_for"} & seen.names()


async def test_upstream_cookie_of_user_a_is_never_sent_on_user_b_request(
    env: Env, up: UpstreamServer
) -> None:
    r = await env.client.get(
        "/jar/set?_setcookie=upstream_sid=alice-secret;%20Path=/&_setcookie=bff-session=evil",
        headers=env.cookie("alice"),
    )
    assert r.status_code == 200
    set_cookies = r.headers.get_list("set-cookie")
    assert set_cookies == ["upstream_sid=alice-secret; Path=/"]  # ours can't be overwritten
    r = await env.client.get("/jar/next", headers=env.cookie("bob"))
    assert r.status_code == 200
    assert up.last().all("authorization") == ["Bearer token-bob"]
    assert "alice-secret" not in str(up.last().headers)


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-CSRF": "0"}, {"X-CSRF": "1", "Sec-Fetch-Site": "cross-site"}],
    ids=["missing", "wrong", "cross-site"],
)
async def test_csrf_refusals_send_nothing_upstream(
    env: Env, up: UpstreamServer, headers: dict[str, str]
) -> None:
    loads = env.store.loads
    for method in ("GET", "POST", "DELETE"):
        r = await env.client.request(
            method, "/api/x", headers={"Cookie": f"bff-session={env.alice}", **headers}
        )
        assert r.status_code == 403
        assert r.json()["error"] == "csrf"
        assert r.headers["cache-control"] == "no-store"
    assert up.received == []
    assert env.store.loads == loads  # refused before any token lookup


@pytest.mark.parametrize(
    "target",
    [
        b"/api/../other/x",
        b"/api/%2e%2e/other/x",
        b"/api/%2E%2E/%2e%2E/other",
        b"/api/orders/%2e%2e/%2e%2e/other/x",
        b"/api/.%2e/other",
        b"/api/..%2fother/x",
        b"/api/..%2Fother",
        b"/api/x%2f..%2f..%2fother",
        b"/api/..%5cother",
        b"/api/..\\other",
        b"/api\\..\\other",
        b"/api/..;/other",
        b"//other/x",
        b"/api//127.0.0.1/x",
        b"/api/x%00",
        b"/api/%252e%252e/other",
        b"/other/../api/x",
    ],
)
async def test_path_traversal_is_refused_and_nothing_leaves(
    env: Env, up: UpstreamServer, other: UpstreamServer, target: bytes
) -> None:
    request = (
        b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n"
        b"Cookie: bff-session=" + env.alice.encode() + b"\r\nConnection: close\r\n\r\n"
    )
    status, body = await raw_request(env.port, request)
    assert status == 400, body
    assert b"invalid_path" in body
    assert up.received == [] and other.received == []


async def test_fragments_absolute_targets_and_queries_cannot_pick_the_target(
    env: Env, up: UpstreamServer, other: UpstreamServer
) -> None:
    for target in (
        b"/api/x#/../../other",
        b"http://evil.example/api/x",
        b"/api/x?/../../other/y",
        b"/api/x?u=http://evil.example/&p=%2e%2e%2fother",
    ):
        request = (
            b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n"
            b"Cookie: bff-session=" + env.alice.encode() + b"\r\nConnection: close\r\n\r\n"
        )
        status, _ = await raw_request(env.port, request)
        assert status == 200, target
        assert up.last().path == "/v1/x"
    assert [r.query for r in up.received][2:] == [
        "/../../other/y",
        "u=http://evil.example/&p=%2e%2e%2fother",
    ]
    assert other.received == []


async def test_method_not_allowed_is_405_with_allow(env: Env, up: UpstreamServer) -> None:
    r = await env.client.post("/ro/x", headers=env.cookie("alice"))
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD"
    assert r.json()["error"] == "method_not_allowed"
    assert up.received == []


async def test_token_modes(env: Env, up: UpstreamServer) -> None:
    r = await env.client.get("/api/x", headers={"X-CSRF": "1"})
    assert r.status_code == 401
    assert r.json() == {"error": "not_authenticated", "error_description": "no live session"}
    assert r.headers["cache-control"] == "no-store"
    r = await env.client.get("/api/x", headers={"X-CSRF": "1", "Cookie": "bff-session=forged"})
    assert r.status_code == 401
    assert up.received == []

    r = await env.client.get("/opt/x", headers={"X-CSRF": "1"})
    assert r.status_code == 200 and "authorization" not in up.last().names()
    r = await env.client.get("/opt/x", headers=env.cookie("bob"))
    assert r.status_code == 200 and up.last().all("authorization") == ["Bearer token-bob"]

    loads = env.store.loads
    r = await env.client.get("/public/x", headers=env.cookie("alice"))
    assert r.status_code == 200
    assert "authorization" not in up.last().names()
    assert env.store.loads == loads  # token = "none" never looks a session up


async def test_retry_on_401_refreshes_once_and_resends_idempotent_requests(
    env: Env, up: UpstreamServer
) -> None:
    carol = await mint_session(env.store, "carol", "token-carol")
    env.idp.live_refresh.add("refresh-carol")
    headers = {"Cookie": f"bff-session={carol}", "X-CSRF": "1"}
    r = await env.client.post("/retry/x?_reject=token-carol", headers=headers, content=b"b")
    assert r.status_code == 401  # a request with a body is never sent twice
    r = await env.client.get("/api/x?_reject=token-carol", headers=headers)
    assert r.status_code == 401  # the route does not retry: the upstream's answer stands
    up.received.clear()
    r = await env.client.get("/retry/x?_reject=token-carol", headers=headers)
    assert r.status_code == 200
    (first, second) = up.received
    assert first.all("authorization") == ["Bearer token-carol"]
    assert second.all("authorization") == ["Bearer access-token-1-XYZ"]  # refreshed
    assert env.idp.refresh_grants == 1
    r = await env.client.get("/retry/y", headers=headers)  # the new token is the session's
    assert up.last().all("authorization") == second.all("authorization")


async def test_upstream_redirect_passes_through_unchanged(env: Env, up: UpstreamServer) -> None:
    r = await env.client.get(
        "/api/r?_status=302&_location=https://elsewhere.example/x", headers=env.cookie("alice")
    )
    assert r.status_code == 302
    assert r.headers["location"] == "https://elsewhere.example/x"
    assert len(up.received) == 1  # not followed


async def test_other_paths_fall_through_to_the_app(env: Env, up: UpstreamServer) -> None:
    assert (await env.client.get("/healthz")).status_code == 200
    assert (await env.client.get("/apix", headers=env.cookie("alice"))).status_code == 404
    assert up.received == []
