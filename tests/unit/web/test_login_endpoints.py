"""/bff/login and /bff/callback against a respx-shaped provider: the redirect to the
provider (PKCE, state, nonce, PAR), every refused callback, the provider's failures, and
a login on another host than BFF_PUBLIC_URL's, sent there (a callback there gets a page
naming both hosts)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bff.store.memory import MemoryStore
from tests.browser import Browser
from tests.fake_idp import CLIENT_ID, ISSUER, Clock, FakeIdp, query
from tests.unit.web.env import Env, audits, bff_logs, refusals, request_id

pytestmark = pytest.mark.anyio


OTHER = "http://127.0.0.1:8000"  # the demo's classic mistake: the public URL says localhost


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


async def test_step_up_login_passes_acr_values_and_max_age(env: Env) -> None:
    params = {"returnUrl": "/orders", "acr_values": "urn:a gold", "max_age": "0"}
    r = await env.browser.get("/bff/login", params=params)
    assert r.status_code == 302
    q = query(r.headers["location"])
    assert (q["acr_values"], q["max_age"]) == ("urn:a gold", "0")


@pytest.mark.parametrize(
    "params",
    [
        {"acr_values": "<script>"},
        {"acr_values": "a" * 600},
        {"max_age": "-1"},
        {"max_age": "99999999999"},
        {"max_age": "1e3"},
    ],
)
async def test_malformed_step_up_parameters_are_400(env: Env, params: dict[str, str]) -> None:
    r = await env.browser.get("/bff/login", params=params)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert env.idp.par_requests == [] and "location" not in r.headers


async def test_new_login_gets_new_session_id_and_drops_the_old(env: Env) -> None:
    await env.login()
    first = env.browser.cookies["bff-session"]
    await env.login()
    second = env.browser.cookies["bff-session"]
    assert first.split(".")[0] != second.split(".")[0]
    r = await env.browser.get("/bff/user", csrf=True, headers={"Cookie": f"bff-session={first}"})
    assert r.status_code == 401


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
        (
            logging.WARNING,
            "GET /bff/callback: 400 wrong_host reason=wrong_host rid=" + request_id(r),
        )
    ]
    (event,) = audits(caplog)
    assert event["event"] == "login_failed" and event["outcome"] == "wrong_host"
    # The state was not consumed: the same login still finishes on the right host.
    r = await env.browser.get(
        "/bff/callback", params={"code": "the-code", "state": params["state"], "iss": ISSUER}
    )
    assert r.status_code == 302
    assert "the-code" not in bff_logs(caplog)


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
