"""The session inventory and the operator's admin API, attacked, on the real Redis
(BFF_TEST_REDIS_URL) through the real app on a socket: two sessions of alice and one of
bob. A user sees and ends only their own sessions, under ids that are neither cookies nor
store keys; an ended session's cookie is refused at once and its refresh token revoked at
the provider; the admin API answers only with the token from BFF_ADMIN_TOKEN_FILE, never
logs it, and audits as the CLI does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bff.session.bus import create_bus
from bff.session.records import session_hash
from bff.store.redis import RedisStore
from bff.web.admin_app import create_admin_app
from tests.browser import Browser
from tests.fake_idp import FakeIdp
from tests.integration.proxy_env import make_settings, mint_session, serve
from tests.security.conftest import Bff, redis_store, running_bff

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

CLI_FIELDS = {"session", "sub", "created", "last_seen", "expires", "user_agent", "frontend"}


def _hash(cookie: str) -> str:
    return session_hash(cookie.split(".")[0])


@dataclass
class World:
    bff: Bff
    alice1: Browser
    alice2: Browser
    bob: Browser
    cookies: dict[str, str]  # alice1, alice2, bob -> cookie value

    async def listing(self, browser: Browser) -> httpx.Response:
        return await browser.get("/bff/sessions", csrf=True)


@pytest.fixture
async def world(redis_url: str, redis_prefix: str) -> AsyncIterator[World]:
    store = redis_store(redis_url, redis_prefix)
    # 127.0.0.1 is a trusted proxy: alice's second browser comes through it from afar
    async with running_bff(store=store, BFF_TRUSTED_PROXIES="127.0.0.1/32") as bff:
        alice1, alice2, bob = bff.browser(), bff.browser(), bff.browser()
        alice1.client.headers["user-agent"] = "Firefox/1"
        alice2.client.headers.update({"user-agent": "Chrome/2", "x-forwarded-for": "203.0.113.9"})
        bob.client.headers["user-agent"] = "Safari/3"
        cookies = {
            "alice1": await bff.login(alice1, "alice"),
            "alice2": await bff.login(alice2, "alice"),
            "bob": await bff.login(bob, "bob"),
        }
        yield World(bff, alice1, alice2, bob, cookies)


async def test_alice_sees_exactly_her_two_sessions_under_opaque_ids(world: World) -> None:
    r = await world.listing(world.alice2)
    assert r.status_code == 200, r.text
    mine = r.json()["sessions"]
    assert [(e["user_agent"], e["client_ip"], e["current"]) for e in mine] == [
        ("Chrome/2", "203.0.113.9", True),  # per BFF_TRUSTED_PROXIES
        ("Firefox/1", "127.0.0.1", False),
    ]
    for name, cookie in world.cookies.items():
        for secret in (cookie, cookie.split(".")[0], _hash(cookie), _hash(cookie)[:12]):
            assert secret not in r.text, name
    assert "Safari" not in r.text  # bob's session is not shown
    r = await world.listing(world.alice1)
    assert [e["current"] for e in r.json()["sessions"]] == [True, False]
    assert {e["id"] for e in r.json()["sessions"]} == {e["id"] for e in mine}
    r = await world.alice1.get("/bff/sessions")  # no X-CSRF
    assert r.status_code == 403 and r.json()["error"] == "csrf"


async def test_alice_cannot_end_bobs_session(world: World) -> None:
    (bobs,) = (await world.listing(world.bob)).json()["sessions"]
    for handle in (bobs["id"], _hash(world.cookies["bob"]), world.cookies["bob"].split(".")[0]):
        r = await world.alice1.request("DELETE", f"/bff/sessions/{handle}", csrf=True)
        assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = await world.alice1.post("/bff/sessions/revoke-others", csrf=True)
    assert r.json() == {"revoked": 1}  # alice's other one, never bob's
    assert (await world.bob.get("/bff/user", csrf=True)).status_code == 200
    assert [rv["token"] for rv in world.bff.idp.revocations] == [["refresh-token-2-XYZ"]]


async def test_deleting_one_session_ends_it_everywhere(world: World) -> None:
    mine = (await world.listing(world.alice1)).json()["sessions"]
    other = next(e for e in mine if not e["current"])
    r = await world.alice1.request("DELETE", f"/bff/sessions/{other['id']}")  # no X-CSRF
    assert r.status_code == 403
    r = await world.alice1.request("DELETE", f"/bff/sessions/{other['id']}", csrf=True)
    assert r.status_code == 204
    r = await world.alice2.get("/bff/user", csrf=True)
    assert r.status_code == 401 and r.json()["error"] == "not_authenticated"
    # gone from the store and its index, its refresh token revoked at the provider
    assert await world.bff.store.session_ttl(_hash(world.cookies["alice2"])) is None
    assert await world.bff.store.sessions_by_sub("alice") == [_hash(world.cookies["alice1"])]
    assert [rv["token"] for rv in world.bff.idp.revocations] == [["refresh-token-2-XYZ"]]


async def test_revoke_others_leaves_only_the_current_session(world: World) -> None:
    r = await world.alice2.post("/bff/sessions/revoke-others")  # no X-CSRF
    assert r.status_code == 403
    r = await world.alice2.post("/bff/sessions/revoke-others", csrf=True)
    assert r.status_code == 200 and r.json() == {"revoked": 1}
    assert (await world.alice1.get("/bff/user", csrf=True)).status_code == 401
    assert (await world.alice2.get("/bff/user", csrf=True)).status_code == 200
    (only,) = (await world.listing(world.alice2)).json()["sessions"]
    assert only["current"] is True
    assert [rv["token"] for rv in world.bff.idp.revocations] == [["refresh-token-1-XYZ"]]


# --- the operator's admin API ---------------------------------------------------------------
@pytest.fixture
def token_file(tmp_path: Path) -> tuple[Path, str]:
    token = secrets.token_urlsafe(32)
    path = tmp_path / "admin-token"
    path.write_text(token + "\n")
    return path, token


@contextlib.asynccontextmanager
async def _admin(
    world: World, redis_url: str, prefix: str, **env: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The admin app on its own store connection and provider client, as `bff serve`
    runs it (ASGITransport runs no lifespan: they are closed here)."""
    settings = make_settings([], BFF_SESSION_STORE=redis_url, BFF_STORE_PREFIX=prefix, **env)
    store = RedisStore.from_url(redis_url, prefix=prefix)
    http = world.bff.idp.http()
    app = create_admin_app(
        settings, metrics_dir=None, store=store, http=http, discover_on_startup=False
    )
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            yield client
    finally:
        await http.aclose()
        await store.aclose()


async def test_admin_api_needs_the_token_and_revokes_by_hash_and_by_sub(
    world: World,
    redis_url: str,
    redis_prefix: str,
    token_file: tuple[Path, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    path, token = token_file
    async with _admin(world, redis_url, redis_prefix, BFF_ADMIN_TOKEN_FILE=str(path)) as admin:
        for headers in (
            {},
            {"Authorization": "Bearer " + token[:-1] + ("A" if token[-1] != "A" else "B")},
            {"Authorization": "Basic " + token},
            {"Authorization": token},
            {"Authorization": "Bearer"},
        ):
            for method, url in (
                ("GET", "/admin/sessions?sub=alice"),
                ("DELETE", "/admin/sessions?sub=alice"),
                ("DELETE", f"/admin/sessions/{_hash(world.cookies['alice1'])}"),
            ):
                r = await admin.request(method, url, headers=headers)
                assert r.status_code == 401, (headers, method, url)
                assert r.headers["www-authenticate"].startswith("Bearer")
                assert token not in r.text
        assert world.bff.idp.revocations == []
        auth = {"Authorization": f"Bearer {token}"}
        r = await admin.get("/admin/sessions", params={"sub": "alice"}, headers=auth)
        assert r.status_code == 200, r.text
        rows = r.json()
        assert [set(row) for row in rows] == [CLI_FIELDS, CLI_FIELDS]
        assert {row["session"] for row in rows} == {
            _hash(world.cookies["alice1"]),
            _hash(world.cookies["alice2"]),
        }
        assert {row["sub"] for row in rows} == {"alice"}
        # one by the hash the CLI shows
        r = await admin.delete(f"/admin/sessions/{_hash(world.cookies['alice1'])}", headers=auth)
        assert r.status_code == 200 and r.json() == {"revoked": 1}
        assert (await world.alice1.get("/bff/user", csrf=True)).status_code == 401
        assert (await world.alice2.get("/bff/user", csrf=True)).status_code == 200
        r = await admin.delete(f"/admin/sessions/{_hash(world.cookies['alice1'])}", headers=auth)
        assert r.status_code == 404
        # the rest of alice's by sub; bob keeps his
        r = await admin.delete("/admin/sessions", params={"sub": "alice"}, headers=auth)
        assert r.status_code == 200 and r.json() == {"revoked": 1}
        assert (await world.alice2.get("/bff/user", csrf=True)).status_code == 401
        assert (await world.bob.get("/bff/user", csrf=True)).status_code == 200
        r = await admin.get("/admin/sessions", params={"sub": "bob"}, headers=auth)
        assert [row["session"] for row in r.json()] == [_hash(world.cookies["bob"])]
        r = await admin.delete("/admin/sessions", headers=auth)  # no filter: never "all"
        assert r.status_code == 400
        assert (await world.bob.get("/bff/user", csrf=True)).status_code == 200
    assert sorted(rv["token"][0] for rv in world.bff.idp.revocations) == [
        "refresh-token-1-XYZ",
        "refresh-token-2-XYZ",
    ]
    audit = [json.loads(r.getMessage()) for r in caplog.records if r.name == "bff.audit"]
    revokes = [a for a in audit if a["event"] == "revoke"]
    assert [(a["sub"], a["outcome"]) for a in revokes] == [("alice", "deleted_and_revoked")] * 2
    assert {a["session"] for a in revokes} == {
        _hash(world.cookies[n])[:12] for n in ("alice1", "alice2")
    }
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert token not in logged and token[:16] not in logged


async def test_without_a_token_file_there_is_no_admin_api(
    world: World, redis_url: str, redis_prefix: str
) -> None:
    async with _admin(world, redis_url, redis_prefix) as admin:
        r = await admin.get("/admin/sessions", params={"sub": "alice"})
        assert r.status_code == 404
        r = await admin.delete(f"/admin/sessions/{_hash(world.cookies['alice1'])}")
        assert r.status_code == 404
        assert (await admin.get("/metrics")).status_code == 200
        assert (await admin.get("/readyz")).status_code in (200, 503)
    assert (await world.alice1.get("/bff/user", csrf=True)).status_code == 200


async def test_the_admin_api_is_not_on_the_public_listener(
    world: World, token_file: tuple[Path, str]
) -> None:
    _, token = token_file
    r = await world.alice1.get(
        "/admin/sessions", params={"sub": "alice"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 404


async def test_a_fake_idp_is_not_needed_for_listing(redis_url: str, redis_prefix: str) -> None:
    """Listing never calls the provider: only revoking does."""
    idp = FakeIdp()
    store = redis_store(redis_url, redis_prefix)
    async with running_bff(store=store, idp=idp) as bff:
        b = bff.browser()
        await bff.login(b, "carol")
        calls = len(idp.router.calls)
        r = await b.get("/bff/sessions", csrf=True)
        assert r.status_code == 200 and len(r.json()["sessions"]) == 1
        assert len(idp.router.calls) == calls


# --- live connections end with the session ----------------------------------------------------
async def test_a_session_ended_from_the_inventory_ends_its_event_stream(world: World) -> None:
    """The other device's `/bff/events` says `session_ended: revoke` within 2 s."""
    other = next(
        e for e in (await world.listing(world.alice1)).json()["sessions"] if not e["current"]
    )
    cookie = {"Cookie": f"{world.bff.settings.frontend.cookie_name}={world.cookies['alice2']}"}
    async with httpx.AsyncClient(base_url=world.bff.url, timeout=10) as client:
        same_origin = {**cookie, "Sec-Fetch-Site": "same-origin"}
        async with client.stream("GET", "/bff/events", headers=same_origin) as events:
            assert events.status_code == 200
            lines = events.aiter_lines()
            assert await anext(lines) == ": open"
            r = await world.alice1.request("DELETE", f"/bff/sessions/{other['id']}", csrf=True)
            assert r.status_code == 204
            started = time.monotonic()
            async with asyncio.timeout(2):
                rest = [line async for line in lines]
    assert time.monotonic() - started < 2
    assert rest[rest.index("event: session_ended") + 1] == "data: revoke"


async def test_an_admin_revocation_ends_the_event_stream_of_another_process(
    redis_url: str, redis_prefix: str, token_file: tuple[Path, str]
) -> None:
    """The admin listener announces on the store's session-ended channel: a bff that
    listens there (another process in production) closes the session's streams."""
    path, token = token_file
    store = redis_store(redis_url, redis_prefix)
    idp = FakeIdp()
    settings = make_settings(
        [],
        BFF_SESSION_STORE=redis_url,
        BFF_STORE_PREFIX=redis_prefix,
        BFF_ADMIN_TOKEN_FILE=str(path),
    )
    bff_bus = create_bus(redis_url, prefix=redis_prefix)
    admin_bus = create_bus(redis_url, prefix=redis_prefix)
    admin_store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    http = idp.http()
    app = create_admin_app(
        settings,
        metrics_dir=None,
        store=admin_store,
        http=http,
        discover_on_startup=False,
        bus=admin_bus,
    )
    try:
        async with (
            serve(settings, store, idp, bus=bff_bus) as url,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as admin,
            httpx.AsyncClient(base_url=url, timeout=10) as client,
        ):
            cookie = await mint_session(store, "alice", "token-alice")
            headers = {"Cookie": f"bff-session={cookie}", "Sec-Fetch-Site": "same-origin"}
            async with client.stream("GET", "/bff/events", headers=headers) as events:
                assert events.status_code == 200
                lines = events.aiter_lines()
                assert await anext(lines) == ": open"
                r = await admin.delete(
                    "/admin/sessions",
                    params={"sub": "alice"},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert r.json() == {"revoked": 1}
                started = time.monotonic()
                async with asyncio.timeout(2):
                    rest = [line async for line in lines]
            assert time.monotonic() - started < 2
            assert rest[rest.index("event: session_ended") + 1] == "data: revoke"
    finally:
        await http.aclose()
        await admin_bus.aclose()
        await bff_bus.aclose()
        await admin_store.aclose()
        await store.aclose()
