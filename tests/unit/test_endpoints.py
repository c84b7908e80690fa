"""The login -> callback -> user -> logout flow against a respx-shaped provider."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bff.config.load import load_settings
from bff.store.memory import MemoryStore
from bff.telemetry.metrics import render as render_metrics
from bff.web.app import create_app
from tests.browser import Browser
from tests.fake_idp import CLIENT_ID, CLIENT_SECRET, ISSUER, SECRET_KEY, Clock, FakeIdp, query

pytestmark = pytest.mark.anyio


def make_settings(**env: str) -> Any:
    base = {
        "BFF_ISSUER": ISSUER,
        "BFF_CLIENT_ID": CLIENT_ID,
        "BFF_CLIENT_SECRET": CLIENT_SECRET,
        "BFF_SECRET_KEY": SECRET_KEY,
    }
    return load_settings({**base, **env})


class Env:
    def __init__(self, idp: FakeIdp, clock: Clock, store: Any, **env: str) -> None:
        self.idp, self.clock, self.store = idp, clock, store
        self.http = idp.http()
        self.app = create_app(
            make_settings(**env),
            http=self.http,
            store=store,
            clock=clock,
            discover_on_startup=False,
        )
        self.browser = Browser(self.app)

    async def start_login(
        self, browser: Browser | None = None, return_url: str = "/app"
    ) -> dict[str, str]:
        b = browser or self.browser
        r = await b.get("/bff/login", params={"returnUrl": return_url})
        assert r.status_code == 302, r.text
        params = query(r.headers["location"])
        self.idp.next_nonce = params["nonce"]
        return params

    async def login(self, browser: Browser | None = None) -> Any:
        b = browser or self.browser
        params = await self.start_login(b)
        return await b.get(
            "/bff/callback", params={"code": "the-code", "state": params["state"], "iss": ISSUER}
        )

    async def aclose(self) -> None:
        await self.browser.aclose()
        await self.http.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def env(clock: Clock) -> AsyncIterator[Env]:
    e = Env(FakeIdp(clock=clock), clock, MemoryStore(clock=clock))
    yield e
    await e.aclose()


async def test_login_redirects_to_provider_with_pkce_state_nonce(env: Env) -> None:
    r = await env.browser.get("/bff/login", params={"returnUrl": "/orders"})
    assert r.status_code == 302
    loc = r.headers["location"]
    assert loc.startswith(f"{ISSUER}/authorize?")
    q = query(loc)
    assert q["response_type"] == "code"
    assert q["client_id"] == CLIENT_ID
    assert q["redirect_uri"] == "http://localhost:8000/bff/callback"
    assert q["code_challenge_method"] == "S256"
    assert len(q["code_challenge"]) == 43
    assert len(q["state"]) >= 32 and len(q["nonce"]) >= 32
    (binding,) = [h for h in r.headers.get_list("set-cookie") if h.startswith("bff-session-login=")]
    assert "HttpOnly" in binding and "SameSite=Lax" in binding and "Path=/" in binding
    assert "Max-Age=600" in binding and "Domain" not in binding


async def test_parallel_logins_share_one_binding_cookie_and_both_complete(env: Env) -> None:
    first = await env.start_login()
    first_nonce = first["nonce"]
    second = await env.start_login()
    assert len({h.split("=")[0] for h in env.browser.set_cookie_headers}) == 1
    # finish the first tab's login after the second started
    env.idp.next_nonce = first_nonce
    r = await env.browser.get(
        "/bff/callback", params={"code": "c", "state": first["state"], "iss": ISSUER}
    )
    assert r.status_code == 302
    env.idp.next_nonce = second["nonce"]
    r = await env.browser.get(
        "/bff/callback", params={"code": "c", "state": second["state"], "iss": ISSUER}
    )
    assert r.status_code == 302


async def test_par_used_when_advertised(clock: Clock) -> None:
    e = Env(FakeIdp(clock=clock, par=True), clock, MemoryStore(clock=clock))
    try:
        r = await e.browser.get("/bff/login")
        q = query(r.headers["location"])
        assert q == {"client_id": CLIENT_ID, "request_uri": "urn:par:1"}
    finally:
        await e.aclose()


@pytest.mark.parametrize(
    "return_url",
    [
        "//evil.example",
        "/\\evil.example",
        "https://evil.example",
        "javascript:alert(1)",
        "/\x01/evil",
        "/%2fevil.example",
        "/%5Cevil.example",
    ],
)
async def test_bad_return_url_is_400_and_no_redirect(env: Env, return_url: str) -> None:
    r = await env.browser.get("/bff/login", params={"returnUrl": return_url})
    assert r.status_code == 400
    assert "location" not in r.headers
    assert r.json()["error"] == "invalid_return_url"


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


async def test_new_login_gets_new_session_id_and_drops_the_old(env: Env) -> None:
    await env.login()
    first = env.browser.cookies["bff-session"]
    await env.login()
    second = env.browser.cookies["bff-session"]
    assert first.split(".")[0] != second.split(".")[0]
    r = await env.browser.get("/bff/user", csrf=True, headers={"Cookie": f"bff-session={first}"})
    assert r.status_code == 401


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


# ---- callback refusals ------------------------------------------------------------------


async def test_callback_without_state(env: Env) -> None:
    await env.start_login()
    r = await env.browser.get("/bff/callback", params={"code": "c", "iss": ISSUER})
    assert r.status_code == 400 and r.json()["error"] == "invalid_state"


async def test_callback_unknown_state(env: Env) -> None:
    await env.start_login()
    r = await env.browser.get(
        "/bff/callback", params={"code": "c", "state": "made-up", "iss": ISSUER}
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_state"


async def test_callback_reused_state(env: Env) -> None:
    params = await env.start_login()
    q = {"code": "c", "state": params["state"], "iss": ISSUER}
    assert (await env.browser.get("/bff/callback", params=q)).status_code == 302
    r = await env.browser.get("/bff/callback", params=q)
    assert r.status_code == 400 and r.json()["error"] == "invalid_state"


async def test_callback_expired_state(env: Env) -> None:
    params = await env.start_login()
    env.clock.now += 601
    r = await env.browser.get(
        "/bff/callback", params={"code": "c", "state": params["state"], "iss": ISSUER}
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_state"
    assert env.idp.token_requests == []


async def test_callback_in_another_browser_is_refused(env: Env) -> None:
    params = await env.start_login()
    other = Browser(env.app)
    try:
        await other.get("/bff/login")  # the attacker has a binding cookie of its own
        r = await other.get(
            "/bff/callback", params={"code": "c", "state": params["state"], "iss": ISSUER}
        )
        assert r.status_code == 400 and r.json()["error"] == "invalid_state"
        bare = Browser(env.app)
        r = await bare.get(
            "/bff/callback", params={"code": "c", "state": params["state"], "iss": ISSUER}
        )
        assert r.status_code == 400
        await bare.aclose()
    finally:
        await other.aclose()
    assert env.idp.token_requests == []


async def test_callback_missing_or_wrong_iss(env: Env) -> None:
    params = await env.start_login()
    r = await env.browser.get("/bff/callback", params={"code": "c", "state": params["state"]})
    assert r.status_code == 400 and r.json()["error"] == "invalid_issuer"
    params = await env.start_login()
    r = await env.browser.get(
        "/bff/callback", params={"code": "c", "state": params["state"], "iss": "https://evil.test"}
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_issuer"
    assert env.idp.token_requests == []


async def test_provider_error_answer_is_a_clear_page(env: Env) -> None:
    params = await env.start_login()
    r = await env.browser.get(
        "/bff/callback",
        params={
            "error": "access_denied",
            "error_description": "<script>x</script>",
            "state": params["state"],
            "iss": ISSUER,
        },
        headers={"Accept": "text/html"},
    )
    assert r.status_code == 400
    assert "access_denied" in r.text and "<script>" not in r.text
    assert "Traceback" not in r.text


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (500, {"error": "server_error"}, 502),
        (200, "this is not json", 502),
        (200, {"token_type": "Bearer"}, 502),
        (200, {"access_token": "x" * 300_000, "token_type": "Bearer"}, 502),
        (400, {"error": "invalid_grant"}, 400),
    ],
)
async def test_token_endpoint_failures(env: Env, status: int, body: Any, expected: int) -> None:
    params = await env.start_login()
    env.idp.token_status, env.idp.token_body = status, body
    r = await env.browser.get(
        "/bff/callback", params={"code": "c", "state": params["state"], "iss": ISSUER}
    )
    assert r.status_code == expected
    assert r.json()["error"] in ("idp_unavailable", "invalid_grant")
    assert "bff-session" not in env.browser.cookies


async def test_wrong_nonce_in_id_token_is_refused(env: Env) -> None:
    params = await env.start_login()
    env.idp.next_nonce = "another-nonce"
    r = await env.browser.get(
        "/bff/callback", params={"code": "c", "state": params["state"], "iss": ISSUER}
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_id_token"
    assert "bff-session" not in env.browser.cookies


async def test_provider_unreachable_at_login_is_502(clock: Clock) -> None:
    idp = FakeIdp(clock=clock)
    idp.discovery["issuer"] = "https://other.test"  # garbage discovery
    e = Env(idp, clock, MemoryStore(clock=clock))
    try:
        r = await e.browser.get("/bff/login")
        assert r.status_code == 502 and r.json()["error"] == "idp_unavailable"
    finally:
        await e.aclose()


# ---- session lifetime ----------------------------------------------------------------


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


async def test_health_and_readiness(env: Env) -> None:
    assert (await env.browser.get("/healthz")).status_code == 200
    r = await env.browser.get("/readyz")
    # The public status carries no reason (issue 11 defect 13): the admin listener does.
    assert r.status_code == 503 and r.json()["error_description"] == "not ready"
    await env.start_login()  # loads metadata
    assert (await env.browser.get("/readyz")).status_code == 200


async def test_no_secret_in_any_log_line(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await env.login()
    cookie = env.browser.cookies["bff-session"]
    await env.browser.get("/bff/user", csrf=True)
    await env.browser.post("/bff/logout", csrf=True)
    # Everything the BFF logged; the test's own browser client logs its request URLs too.
    text = "\n".join(
        r.getMessage() for r in caplog.records if "http://localhost:8000" not in r.getMessage()
    )
    assert '"event":"login"' in text  # the audit line is there
    for secret in (
        "access-token-1-XYZ",
        "refresh-token-1-XYZ",
        "the-code",
        CLIENT_SECRET,
        SECRET_KEY,
        cookie,
        cookie.split(".")[0],
        "eyJ",
    ):
        assert secret not in text


# ---- against the real Redis ------------------------------------------------------------


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


def _counter(text: str, event: str, outcome: str) -> float:
    prefix = f'bff_events_total{{event="{event}",outcome="{outcome}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    return 0.0


async def test_metrics_count_logins_and_logouts(env: Env) -> None:
    # /metrics is served by the admin listener (tests/security/test_admin_listener.py).
    before = render_metrics(None).decode()
    await env.login()
    await env.browser.post("/bff/logout", csrf=True)
    text = render_metrics(None).decode()
    assert _counter(text, "login", "success") == _counter(before, "login", "success") + 1
    assert _counter(text, "logout", "success") == _counter(before, "logout", "success") + 1
    assert "alice" not in text  # no user data in labels


async def test_https_issuer_may_not_advertise_plain_http_endpoints(clock: Clock) -> None:
    idp = FakeIdp(clock=clock)
    idp.discovery["token_endpoint"] = "http://127.0.0.1:9/token"  # a local sidecar
    e = Env(idp, clock, MemoryStore(clock=clock))
    try:
        r = await e.browser.get("/bff/login")
        assert r.status_code == 502
        assert r.json()["error"] == "idp_unavailable"
    finally:
        await e.aclose()


def test_admin_listing_prints_no_terminal_escapes() -> None:
    from bff.cli.sessions import _printable

    assert _printable("Mozilla\x1b]0;pwned\x07 5.0") == "Mozilla?]0;pwned? 5.0"


async def test_relogin_drops_the_old_session_even_without_strict_cookie_on_callback(
    env: Env,
) -> None:
    await env.login()
    first = env.browser.cookies["bff-session"]
    params = await env.start_login()  # same-origin: the Strict cookie is sent here
    binding = env.browser.cookies["bff-session-login"]
    # the provider's cross-site redirect back carries only the Lax binding cookie
    r = await env.browser.get(
        "/bff/callback",
        params={"code": "c", "state": params["state"], "iss": ISSUER},
        headers={"Cookie": f"bff-session-login={binding}"},
    )
    assert r.status_code == 302
    r = await env.browser.get("/bff/user", csrf=True, headers={"Cookie": f"bff-session={first}"})
    assert r.status_code == 401


async def test_configured_prompt_is_sent_to_the_provider(clock: Clock) -> None:
    e = Env(FakeIdp(clock=clock), clock, MemoryStore(clock=clock), BFF_PROMPT="consent")
    try:
        r = await e.browser.get("/bff/login")
        assert query(r.headers["location"])["prompt"] == "consent"
    finally:
        await e.aclose()
    plain = Env(FakeIdp(clock=clock), clock, MemoryStore(clock=clock))
    try:
        r = await plain.browser.get("/bff/login")
        assert "prompt" not in query(r.headers["location"])
    finally:
        await plain.aclose()


@pytest.mark.parametrize(("setting", "lines"), [("true", 1), ("false", 0)])
async def test_access_log_follows_its_setting(
    clock: Clock, caplog: pytest.LogCaptureFixture, setting: str, lines: int
) -> None:
    e = Env(FakeIdp(clock=clock), clock, MemoryStore(clock=clock), BFF_ACCESS_LOG=setting)
    try:
        with caplog.at_level(logging.INFO, logger="bff.access"):
            r = await e.browser.get("/healthz")
        assert r.status_code == 200
        assert len([x for x in caplog.records if x.name == "bff.access"]) == lines
    finally:
        await e.aclose()
