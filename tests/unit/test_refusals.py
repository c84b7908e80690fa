"""Mistakes that explain themselves: a login on another host than BFF_PUBLIC_URL's is
sent there, a callback on another host gets a page naming both, and every refused
callback, CSRF refusal and 401 leaves one log line with its reason (and never a secret);
refused callbacks leave a `login_failed` audit event."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import pytest

from bff.store.memory import MemoryStore
from tests.browser import Browser
from tests.fake_idp import CLIENT_ID, ISSUER, Clock, FakeIdp, query
from tests.unit.test_endpoints import Env

pytestmark = pytest.mark.anyio

OTHER = "http://127.0.0.1:8000"  # the demo's classic mistake: the public URL says localhost


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    clock = Clock()
    e = Env(FakeIdp(clock=clock), clock, MemoryStore(clock=clock), BFF_ROUTES="/api=http://up:9")
    yield e
    await e.aclose()


def refusals(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "bff.refused"]


def bff_logs(caplog: pytest.LogCaptureFixture) -> str:
    """What bff logged (the test's own httpx client logs its request URLs)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bff"))


def audits(caplog: pytest.LogCaptureFixture) -> list[dict[str, str]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "bff.audit"]


async def test_login_on_another_host_goes_to_the_public_url_with_the_same_query(
    env: Env,
) -> None:
    r = await env.browser.get(f"{OTHER}/bff/login?returnUrl=%2Forders%3Fa%3D1")
    assert r.status_code == 302
    assert r.headers["location"] == "http://localhost:8000/bff/login?returnUrl=%2Forders%3Fa%3D1"
    # Nothing started: no login binding cookie, nothing stored.
    assert not any(h.startswith("bff-session-login=") for h in r.headers.get_list("set-cookie"))
    r = await env.browser.get(r.headers["location"])
    assert r.status_code == 302 and r.headers["location"].startswith(f"{ISSUER}/authorize?")


async def test_login_redirects_only_once_when_a_proxy_rewrites_the_host(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    # A dev proxy that rewrites Host (public URL = the proxy) would loop forever: the
    # second arrival carries the marker cookie and the login goes on.
    first = await env.browser.get(f"{OTHER}/bff/login")
    assert first.headers["location"] == "http://localhost:8000/bff/login"
    with caplog.at_level(logging.WARNING, logger="bff.endpoints"):
        again = await env.browser.get(f"{OTHER}/bff/login")
    assert again.status_code == 302
    assert again.headers["location"].startswith(f"{ISSUER}/authorize?")
    assert any("BFF_TRUSTED_PROXIES" in r.getMessage() for r in caplog.records)


async def test_callback_on_another_host_names_both_hosts_and_the_fix(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    params = await env.start_login()
    stranger = Browser(env.app, base_url=OTHER)  # no login cookie on this host
    caplog.set_level(logging.INFO)
    try:
        r = await stranger.get(
            "/bff/callback",
            params={"code": "the-code", "state": params["state"], "iss": ISSUER},
            headers={"accept": "text/html"},
        )
    finally:
        await stranger.aclose()
    assert r.status_code == 400
    assert "127.0.0.1:8000" in r.text and "http://localhost:8000" in r.text
    assert "BFF_PUBLIC_URL" in r.text and "wrong_host" in r.text
    assert refusals(caplog) == [
        (logging.WARNING, "GET /bff/callback: 400 wrong_host reason=wrong_host rid=" + _rid(r))
    ]
    (event,) = audits(caplog)
    assert event["event"] == "login_failed" and event["outcome"] == "wrong_host"
    # The state was not consumed: the same login still finishes on the right host.
    r = await env.browser.get(
        "/bff/callback", params={"code": "the-code", "state": params["state"], "iss": ISSUER}
    )
    assert r.status_code == 302
    assert "the-code" not in bff_logs(caplog)


def _rid(response: object) -> str:
    return response.headers["x-request-id"]  # type: ignore[attr-defined,no-any-return]


@pytest.mark.parametrize(
    ("binding", "reason"),
    [(False, "binding_missing"), (True, "state_unknown")],
)
async def test_refused_callback_logs_its_reason_and_an_audit_event(
    env: Env, caplog: pytest.LogCaptureFixture, binding: bool, reason: str
) -> None:
    params = await env.start_login()
    if not binding:
        env.browser.cookies.pop("bff-session-login")
        env.browser.client.cookies.clear()  # httpx keeps its own jar too
    state = params["state"] if not binding else "an-unknown-state-value"
    caplog.set_level(logging.INFO)
    r = await env.browser.get(
        "/bff/callback", params={"code": "the-code", "state": state, "iss": ISSUER}
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_state"
    ((level, line),) = refusals(caplog)
    assert level == logging.WARNING and f"reason={reason}" in line
    (event,) = audits(caplog)
    assert (event["event"], event["outcome"]) == ("login_failed", reason)
    if not binding:  # the message says what probably happened
        assert "another address than http://localhost:8000" in r.json()["error_description"]
    for secret in ("the-code", state, params["nonce"]):
        assert secret not in bff_logs(caplog)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "csrf_header_missing"),
        ({"X-CSRF": "yes"}, "csrf_header_invalid"),
        ({"X-CSRF": "1", "Sec-Fetch-Site": "cross-site"}, "cross_site"),
    ],
)
@pytest.mark.parametrize("path", ["/bff/user", "/api/orders"])
async def test_csrf_refusals_are_logged_with_their_reason(
    env: Env, caplog: pytest.LogCaptureFixture, headers: dict[str, str], reason: str, path: str
) -> None:
    caplog.set_level(logging.INFO)
    r = await env.browser.get(path, headers=headers)
    assert r.status_code == 403
    assert refusals(caplog) == [
        (logging.WARNING, f"GET {path}: 403 csrf reason={reason} rid={_rid(r)}")
    ]


@pytest.mark.parametrize("path", ["/bff/user", "/api/orders"])
async def test_401s_are_logged_with_their_reason_and_no_cookie_value(
    env: Env, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    caplog.set_level(logging.INFO)
    r = await env.browser.get(path, csrf=True)
    assert r.status_code == 401
    forged = "bff-session=forged.value-that-fails-its-signature"
    r2 = await env.browser.get(path, csrf=True, headers={"Cookie": forged})
    assert r2.status_code == 401
    await env.login()
    cookie = env.browser.cookies["bff-session"]
    await env.browser.post("/bff/logout", csrf=True)
    r3 = await env.browser.get(path, csrf=True, headers={"Cookie": f"bff-session={cookie}"})
    assert r3.status_code == 401
    lines = [line for level, line in refusals(caplog) if level == logging.INFO]
    assert lines == [
        f"GET {path}: 401 not_authenticated reason=no_cookie rid={_rid(r)}",
        f"GET {path}: 401 not_authenticated reason=cookie_invalid rid={_rid(r2)}",
        f"GET {path}: 401 not_authenticated reason=session_not_found rid={_rid(r3)}",
    ]
    assert cookie not in bff_logs(caplog) and "forged.value" not in bff_logs(caplog)


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


@pytest.mark.parametrize(
    ("env", "headers", "redirected"),
    [
        # Behind a trusted proxy, its X-Forwarded-Host is the browser's host.
        (
            {"BFF_TRUSTED_PROXIES": "127.0.0.1/32"},
            {"X-Forwarded-Host": "www.example.com"},
            True,
        ),
        ({"BFF_TRUSTED_PROXIES": "127.0.0.1/32"}, {"X-Forwarded-Host": "app.example.com"}, False),
        (
            {"BFF_TRUSTED_PROXIES": "127.0.0.1/32"},
            {"X-Forwarded-Host": "APP.example.com:443"},
            False,
        ),
        # A proxy that says nothing, or one that is not trusted: the host is unknown.
        ({"BFF_TRUSTED_PROXIES": "127.0.0.1/32"}, {}, False),
        ({"BFF_TRUSTED_PROXIES": "10.0.0.0/8"}, {"X-Forwarded-Host": "www.example.com"}, False),
        # https without a trusted proxy: a TLS terminator we were not told about may
        # rewrite Host, so no check (and no redirect loop).
        ({}, {}, False),
    ],
)
async def test_login_host_check_behind_proxies(
    env: dict[str, str], headers: dict[str, str], redirected: bool
) -> None:
    clock = Clock()
    e = Env(
        FakeIdp(clock=clock),
        clock,
        MemoryStore(clock=clock),
        BFF_PUBLIC_URL="https://app.example.com",
        **env,
    )
    try:
        r = await e.browser.get("http://bff-internal:8000/bff/login?returnUrl=/x", headers=headers)
        assert r.status_code == 302
        target = r.headers["location"]
        if redirected:
            assert target == "https://app.example.com/bff/login?returnUrl=/x"
        else:
            assert target.startswith(f"{ISSUER}/authorize?")
    finally:
        await e.aclose()


async def test_a_callback_with_a_repeated_parameter_is_audited_too(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    r = await env.browser.get("/bff/callback?state=a&state=b&code=the-code")
    assert r.status_code == 400
    (event,) = audits(caplog)
    assert (event["event"], event["outcome"]) == ("login_failed", "invalid_request")
    assert "the-code" not in bff_logs(caplog)
