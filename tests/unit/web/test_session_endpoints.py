"""/bff/user and /bff/logout: a session read, slid and ended (by POST with X-CSRF, by GET
with its sid), the idle and absolute limits, a store that is down, and what the session
leaves in a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bff.store.memory import MemoryStore
from tests.fake_idp import CLIENT_ID, ISSUER, SECRET_KEY, Clock, FakeIdp, query
from tests.unit.web.env import Env

pytestmark = pytest.mark.anyio


async def test_full_flow_user_and_logout(env: Env) -> None:
    r = await env.login()
    assert r.status_code == 302
    assert r.headers["location"] == "/app"
    (cookie,) = [h for h in r.headers.get_list("set-cookie") if h.startswith("bff-session=")]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Domain" not in cookie and "Secure" not in cookie
    # token request used PKCE and client_secret_basic
    form = env.idp.token_requests[0]
    assert form["grant_type"] == ["authorization_code"] and "code_verifier" in form
    assert "client_secret" not in form

    r = await env.browser.get("/bff/user")
    assert r.status_code == 403 and r.json()["error"] == "csrf"
    r = await env.browser.get("/bff/user", csrf=True)
    assert r.status_code == 200
    body = r.json()
    assert body["sub"] == "alice" and body["name"] == "Alice"
    assert body["bff:logout_url"].startswith("/bff/logout?sid=")
    assert 0 < body["bff:session_expires_in"] <= 1800
    assert "nonce" not in body
    assert "access-token" not in r.text and "refresh-token" not in r.text
    assert "eyJ" not in r.text  # no JWT of any kind

    # a GET logout without the right sid is refused (cross-site links can't log you out)
    r = await env.browser.get("/bff/logout", params={"sid": "wrong"})
    assert r.status_code == 400
    assert (await env.browser.get("/bff/user", csrf=True)).status_code == 200

    r = await env.browser.get(body["bff:logout_url"])
    assert r.status_code == 302
    loc = r.headers["location"]
    assert loc.startswith(f"{ISSUER}/end_session?")
    q = query(loc)
    assert q["client_id"] == CLIENT_ID
    assert q["post_logout_redirect_uri"] == "http://localhost:8000/"
    assert q["id_token_hint"].count(".") == 2
    assert any(
        "Max-Age=0" in h and h.startswith("bff-session=") for h in r.headers.get_list("set-cookie")
    )
    assert env.idp.revocations[0]["token"] == ["refresh-token-1-XYZ"]
    assert env.idp.revocations[0]["token_type_hint"] == ["refresh_token"]
    # the old cookie is dead even if replayed
    r = await env.browser.get(
        "/bff/user",
        csrf=True,
        headers={"Cookie": f"bff-session={env.browser.cookies.get('bff-session', '')}"},
    )
    assert r.status_code == 401


async def test_replayed_cookie_after_logout_is_no_session(env: Env) -> None:
    await env.login()
    stolen = env.browser.cookies["bff-session"]
    r = await env.browser.post("/bff/logout", csrf=True)
    assert r.status_code == 302
    r = await env.browser.get("/bff/user", csrf=True, headers={"Cookie": f"bff-session={stolen}"})
    assert r.status_code == 401 and r.json()["error"] == "not_authenticated"


async def test_post_logout_needs_csrf(env: Env) -> None:
    await env.login()
    r = await env.browser.post("/bff/logout")
    assert r.status_code == 403
    assert (await env.browser.get("/bff/user", csrf=True)).status_code == 200


async def test_logout_without_session_is_a_redirect_not_an_error(env: Env) -> None:
    r = await env.browser.get("/bff/logout")
    assert r.status_code == 302
    r = await env.browser.post("/bff/logout", csrf=True)
    assert r.status_code == 302


async def test_cross_site_logout_link_changes_nothing(env: Env) -> None:
    """A cross-site top-level GET carries no SameSite=Strict cookie: it must neither
    clear the cookie nor send the browser to the provider's end-session endpoint."""
    await env.login()
    r = await env.browser.get("/bff/logout", headers={"Cookie": ""})
    assert r.status_code == 302
    assert r.headers["location"] == "/"
    assert r.headers.get_list("set-cookie") == []
    assert env.idp.revocations == []
    assert (await env.browser.get("/bff/user", csrf=True)).status_code == 200


async def test_failed_revocation_never_blocks_logout(env: Env) -> None:
    await env.login()
    env.idp.revoke_status = 503
    r = await env.browser.post("/bff/logout", csrf=True)
    assert r.status_code == 302
    assert (await env.browser.get("/bff/user", csrf=True)).status_code == 401


async def test_tampered_or_unsigned_cookie_is_no_session(env: Env) -> None:
    await env.login()
    value = env.browser.cookies["bff-session"]
    sid = value.split(".")[0]
    for bad in (sid, value[:-10] + ("A" if value[-10] != "A" else "B") + value[-9:], "garbage", ""):
        r = await env.browser.get("/bff/user", csrf=True, headers={"Cookie": f"bff-session={bad}"})
        assert r.status_code == 401
    dup = f"bff-session={value}; bff-session={value}"
    assert (
        await env.browser.get("/bff/user", csrf=True, headers={"Cookie": dup})
    ).status_code == 401


async def test_idle_timeout_and_absolute_cap(clock: Clock) -> None:
    e = Env(
        FakeIdp(clock=clock),
        clock,
        MemoryStore(clock=clock),
        BFF_SESSION_IDLE_TIMEOUT="100",
        BFF_SESSION_MAX_LIFETIME="250",
    )
    try:
        await e.login()
        for _ in range(4):  # activity every 60 s slides the idle expiry ...
            clock.now += 60
            assert (await e.browser.get("/bff/user", csrf=True)).status_code == 200
        clock.now += 60  # ... but never past the absolute cap (300 > 250)
        assert (await e.browser.get("/bff/user", csrf=True)).status_code == 401
        await e.login()
        clock.now += 101  # idle too long
        assert (await e.browser.get("/bff/user", csrf=True)).status_code == 401
    finally:
        await e.aclose()


@pytest.fixture
async def redis_env(clock: Clock, redis_url: str) -> AsyncIterator[tuple[Env, Any, str]]:
    import uuid

    import redis.asyncio as aioredis

    from bff.store.redis import RedisStore

    prefix = f"bfftest-{uuid.uuid4().hex[:12]}"
    store = RedisStore.from_url(redis_url, prefix=prefix)
    raw = aioredis.Redis.from_url(redis_url)
    e = Env(FakeIdp(clock=clock), clock, store, BFF_STORE_PREFIX=prefix)
    try:
        yield e, raw, prefix
    finally:
        await e.aclose()
        keys = [k async for k in raw.scan_iter(match=f"{prefix}:*")]
        if keys:
            await raw.delete(*keys)
        await raw.aclose()
        await store.aclose()


async def _dump(raw: Any, prefix: str) -> dict[bytes, bytes]:
    """Every key of this test and its raw value(s), whatever the type."""
    out: dict[bytes, bytes] = {}
    async for key in raw.scan_iter(match=f"{prefix}:*"):
        kind = (await raw.type(key)).decode()
        if kind == "string":
            out[key] = await raw.get(key)
        elif kind == "zset":
            out[key] = b" ".join(await raw.zrange(key, 0, -1))
        else:
            out[key] = kind.encode()
    return out


async def test_tokens_unreadable_in_redis_and_logout_leaves_no_key(redis_env: Any) -> None:
    e, raw, prefix = redis_env
    await e.login()
    cookie = e.browser.cookies["bff-session"]
    session_id = cookie.split(".")[0]
    dump = await _dump(raw, prefix)
    assert dump, "the session should be in Redis"
    blob = b"\n".join(k + b"=" + v for k, v in dump.items())
    id_token = e.idp.id_token(None)  # same header; the real one differs, search its parts
    for secret in (
        b"access-token-1-XYZ",
        b"refresh-token-1-XYZ",
        session_id.encode(),
        cookie.encode(),
        b"eyJ",
        b"alice@example.com",
        id_token.split(".")[0].encode(),
    ):
        assert secret not in blob
    assert (await e.browser.get("/bff/user", csrf=True)).status_code == 200
    r = await e.browser.post("/bff/logout", csrf=True)
    assert r.status_code == 302
    assert await _dump(raw, prefix) == {}


async def test_store_unreachable_is_503_never_logged_out(clock: Clock) -> None:
    from bff.store.redis import RedisStore

    store = RedisStore.from_url("redis://127.0.0.1:1/0", prefix="bfftest-down")
    e = Env(FakeIdp(clock=clock), clock, store)
    try:
        r = await e.browser.get(
            "/bff/user",
            csrf=True,
            headers={"Cookie": "bff-session=" + "A" * 43 + ".1900000000.sig"},
        )
        assert r.status_code == 401  # an unsigned cookie never reaches the store
        # sign a cookie the way the app does, so the store is asked
        from bff.session.cookies import CookieSigner
        from bff.session.crypto import KeyRing

        value = CookieSigner(KeyRing([SECRET_KEY]).signing_keys).sign_session(
            "A" * 43, 1_900_000_000
        )
        r = await e.browser.get("/bff/user", csrf=True, headers={"Cookie": f"bff-session={value}"})
        assert r.status_code == 503
        assert r.json()["error"] == "session_store_unavailable"
        assert r.headers["retry-after"]
        r = await e.browser.get("/bff/login")
        assert r.status_code in (502, 503)
        assert "location" not in r.headers
    finally:
        await e.aclose()
        await store.aclose()


async def test_logout_without_id_token_hint_sends_client_id_and_logout_hint() -> None:
    clock = Clock()
    e = Env(FakeIdp(clock=clock), clock, MemoryStore(clock=clock), BFF_LOGOUT_ID_TOKEN_HINT="false")
    try:
        await e.login()
        r = await e.browser.post("/bff/logout", csrf=True)
        q = query(r.headers["location"])
        assert q == {
            "client_id": CLIENT_ID,
            "logout_hint": "alice",
            "post_logout_redirect_uri": "http://localhost:8000/",
        }
        assert "eyJ" not in r.headers["location"]
    finally:
        await e.aclose()


async def _stored_id_tokens(store: MemoryStore) -> list[str | None]:
    """The ID token in every session record the store holds, opened as bff opens them."""
    from bff.session.crypto import KeyRing
    from bff.session.records import decode_session

    keys = KeyRing([SECRET_KEY])
    found = []
    async for session_hash in store.all_sessions():
        blob = await store.load_session(session_hash, ttl=60)
        assert blob is not None
        found.append(decode_session(keys.open(blob, aad=session_hash.encode())).tokens.id_token)
    return found


@pytest.mark.parametrize(("hint", "kept"), [("true", True), ("false", False)])
async def test_the_id_token_is_stored_only_when_logout_sends_it(hint: str, kept: bool) -> None:
    """Nothing but logout's `id_token_hint` reads the stored ID token: with
    BFF_LOGOUT_ID_TOKEN_HINT=false it is not kept (less to lose, a third of a Keycloak
    session's record); the session itself works as before."""
    clock = Clock()
    store = MemoryStore(clock=clock)
    e = Env(FakeIdp(clock=clock), clock, store, BFF_LOGOUT_ID_TOKEN_HINT=hint)
    try:
        await e.login()
        (stored,) = await _stored_id_tokens(store)
        assert (stored is not None and stored.count(".") == 2) is kept
        assert kept or stored is None
        r = await e.browser.get("/bff/user", csrf=True)
        assert r.status_code == 200 and r.json()["sub"] == "alice"
    finally:
        await e.aclose()
