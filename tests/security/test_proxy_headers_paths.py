"""Proxy headers, methods and paths an attacker with raw sockets would try
(SPEC.md "The proxy"; THREATS.md invariants 1, 2 and 13; issue 11 defects 8, 9, 11).

Every request here goes through a real uvicorn (httptools) to a scripted upstream that
records what reached it, so "never forwarded" is counted, not assumed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from bff.store.memory import MemoryStore
from bff.upstream.origins import UpstreamPool
from bff.web.app import create_app
from tests.fake_idp import FakeIdp
from tests.integration.proxy_env import make_settings, mint_session, serve
from tests.integration.scripted_upstream import ScriptedUpstream, serve_ok
from tests.security.raw_client import Answer, RawClient, request_bytes

pytestmark = pytest.mark.anyio

PUBLIC_URL = "http://localhost:8443"
ANY_METHOD = "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"


@dataclass
class Env:
    port: int
    up: ScriptedUpstream
    headers: dict[str, str]  # alice's cookie and X-CSRF

    async def send(self, data: bytes) -> Answer:
        browser = await RawClient.open(self.port)
        try:
            await browser.send(data)
            return await browser.answer()
        finally:
            await browser.close()

    def lines(self) -> list[bytes]:
        return [r.line for r in self.up.requests]


def routes(origin: str) -> list[dict[str, object]]:
    return [
        {"prefix": "/api", "upstream": origin},
        # a narrower policy on a sub-prefix, and its own upstream path to tell them apart
        {"prefix": "/api/admin", "upstream": f"{origin}/ADMIN", "methods": ["GET"]},
    ]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # module scope: one bff and one upstream for the whole module


@pytest.fixture(scope="module")
async def served() -> AsyncIterator[tuple[int, ScriptedUpstream, dict[str, str]]]:
    store = MemoryStore()
    cookie = await mint_session(store, "alice", "token-alice")
    async with ScriptedUpstream(serve_ok) as up:
        settings = make_settings(routes(up.origin), BFF_PUBLIC_URL=PUBLIC_URL)
        async with serve(settings, store) as url:
            yield int(url.rsplit(":", 1)[1]), up, {"Cookie": f"bff-session={cookie}", "X-CSRF": "1"}


@pytest.fixture
def env(served: tuple[int, ScriptedUpstream, dict[str, str]]) -> Env:
    port, up, headers = served
    up.requests.clear()
    return Env(port, up, headers)


# TRACE and CONNECT (defect 8)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("TRACE", "/api/x", ANY_METHOD),  # a route without `methods`: was forwarded
        ("TRACE", "/api/admin/x", "GET"),
        ("CONNECT", "/api/x", ANY_METHOD),
    ],
)
async def test_trace_and_connect_are_refused_on_every_route(
    env: Env, method: str, path: str, allow: str
) -> None:
    """Cross-site tracing: TRACE echoes the request, injected bearer included, to whoever
    reads the answer (XST; CVE-2004-2320). Issue 11 defect 8."""
    answer = await env.send(request_bytes(method, path, env.headers))
    assert answer.status == 405
    assert answer.header("allow") == allow
    assert answer.json()["error"] == "method_not_allowed"
    assert b"token-alice" not in answer.body
    assert env.lines() == []


async def test_track_and_other_spellings_never_reach_an_upstream() -> None:
    """httptools refuses these before bff sees them; other ASGI servers (h11) pass any
    token as the method. TRACK is IIS's TRACE (CVE-2003-1567)."""
    store = MemoryStore()
    cookie = await mint_session(store, "alice", "token-alice")
    async with ScriptedUpstream(serve_ok) as up:
        pool, http = UpstreamPool(timeout=5), FakeIdp().http()
        app = create_app(
            make_settings(routes(up.origin)),
            http=http,
            store=store,
            discover_on_startup=False,
            upstreams=pool,
        )
        transport = httpx.ASGITransport(app=app)
        headers = {"Cookie": f"bff-session={cookie}", "X-CSRF": "1"}
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            for method in ("TRACK", "trace", "Connect"):
                r = await client.request(method, "/api/x", headers=headers)
                assert r.status_code == 405, method
                assert r.headers["allow"] == ANY_METHOD
            # Security review finding 5: a route without `methods` relayed any method
            # llhttp parses (PROPFIND, PURGE, LOCK...) while its 405s listed seven.
            for method in ("PROPFIND", "PURGE", "LOCK", "MKCOL"):
                r = await client.request(method, "/api/x", headers=headers)
                assert r.status_code == 405, method
                assert r.headers["allow"] == ANY_METHOD
            assert (await client.request("GET", "/api/x", headers=headers)).status_code == 200
        await pool.aclose()
        await http.aclose()
    assert [r.line for r in up.requests] == [b"GET /api/x HTTP/1.1"]


# Host and X-Forwarded-Host (defect 9)


async def test_x_forwarded_host_is_the_public_urls_never_the_browsers_host(env: Env) -> None:
    """A browser-chosen Host was forwarded as X-Forwarded-Host, which upstreams use to
    build absolute links and password-reset URLs (Host header poisoning). Issue 11
    defect 9."""
    answer = await env.send(request_bytes("GET", "/api/x", {"Host": "evil.example", **env.headers}))
    assert answer.status == 200
    (seen,) = env.up.requests
    assert seen.header(b"x-forwarded-host") == b"localhost:8443"
    assert b"evil.example" not in seen.head
    assert seen.header(b"host") == f"127.0.0.1:{env.up.port}".encode()


@pytest.mark.parametrize("path", ["/api/x", "/healthz", "/bff/user"])
async def test_two_host_headers_are_refused(env: Env, path: str) -> None:
    """RFC 9112 §3.2: a request with more than one Host line is a 400. Found out: uvicorn
    with httptools (what `bff serve` runs) passes both lines to the app in order, Starlette's
    `Request.headers["host"]` reads the first, and the old proxy forwarded the last as
    X-Forwarded-Host; h11 refuses such a request itself. Issue 11 defect 9."""
    twice = (
        f"GET {path} HTTP/1.1\r\nHost: localhost\r\nhost: evil.example\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in env.headers.items())
        + "\r\n"
    ).encode()
    answer = await env.send(twice)
    assert answer.status == 400
    assert answer.json()["error"] == "invalid_request"
    assert env.lines() == []


# `;` path parameters (defect 11)


@pytest.mark.parametrize(
    "path",
    [
        "/api/admin;x/y",  # servlet containers route it as /api/admin/y
        "/api/admin%3Bx/y",  # the encoded spelling (Shiro CVE-2020-13933)
        "/api/admin;/y",
        "/api;v=1/admin/y",
        "/api/orders;jsessionid=0123",  # no route here lets parameters through
    ],
)
async def test_path_parameters_are_refused_unless_the_route_allows_them(
    env: Env, path: str
) -> None:
    """`/api/admin;x/y` failed to match the `/api/admin` route (methods = GET) and went
    out under `/api`'s policy to a servlet upstream that strips `;x` and serves
    /api/admin/y (the Shiro/Spring and Undertow matrix-parameter bypasses:
    CVE-2020-1957, CVE-2020-1757). Issue 11 defect 11."""
    answer = await env.send(request_bytes("GET", path, env.headers))
    assert answer.status == 400
    assert answer.json()["error"] == "invalid_path"
    if "admin" in path:  # decided by /api/admin's policy (GET only), never by /api's
        answer = await env.send(request_bytes("POST", path, env.headers, b"{}"))
        assert (answer.status, answer.header("allow")) == (405, "GET")
    assert env.lines() == []


async def test_path_parameters_pass_on_a_route_that_sets_path_params() -> None:
    store = MemoryStore()
    cookie = await mint_session(store, "alice", "token-alice")
    async with ScriptedUpstream(serve_ok) as up:
        matrix = {"prefix": "/api/matrix", "upstream": f"{up.origin}/m", "path_params": True}
        settings = make_settings([*routes(up.origin), matrix])
        async with serve(settings, store) as url:
            env = Env(int(url.rsplit(":", 1)[1]), up, {"Cookie": f"bff-session={cookie}"})
            await _matrix_parameters_pass(env)


async def _matrix_parameters_pass(env: Env) -> None:
    env.headers["X-CSRF"] = "1"
    for path, sent in [
        ("/api/matrix/owners/42;q=11/pets/21;q=22", b"/m/owners/42;q=11/pets/21;q=22"),
        ("/api/matrix/a%3Bb", b"/m/a%3Bb"),
        ("/api/matrix;v=2/x", b"/m/x"),  # matched without its parameter; prefix replaced
    ]:
        answer = await env.send(request_bytes("GET", path, env.headers))
        assert answer.status == 200, path
        assert env.up.requests[-1].line == b"GET " + sent + b" HTTP/1.1"
    # a parameter never lets a path escape its route, nor decides which route it is
    for path in ("/api/matrix/..;/admin", "/api/matrix/;x/y"):
        assert (await env.send(request_bytes("GET", path, env.headers))).status == 400, path
    assert len(env.up.requests) == 3
