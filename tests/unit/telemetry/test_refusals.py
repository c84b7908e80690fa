"""Refusals that explain themselves: every refused callback, CSRF refusal and 401 leaves
one `bff.refused` log line with its reason (and never a secret); refused callbacks leave a
`login_failed` audit event."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from bff.store.memory import MemoryStore
from tests.fake_idp import ISSUER, Clock, FakeIdp
from tests.unit.web.env import Env, audits, bff_logs, refusals, request_id

pytestmark = pytest.mark.anyio


OTHER = "http://127.0.0.1:8000"  # the demo's classic mistake: the public URL says localhost


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    clock = Clock()
    e = Env(FakeIdp(clock=clock), clock, MemoryStore(clock=clock), BFF_ROUTES="/api=http://up:9")
    yield e
    await e.aclose()


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
        (logging.WARNING, f"GET {path}: 403 csrf reason={reason} rid={request_id(r)}")
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
        f"GET {path}: 401 not_authenticated reason=no_cookie rid={request_id(r)}",
        f"GET {path}: 401 not_authenticated reason=cookie_invalid rid={request_id(r2)}",
        f"GET {path}: 401 not_authenticated reason=session_not_found rid={request_id(r3)}",
    ]
    assert cookie not in bff_logs(caplog) and "forged.value" not in bff_logs(caplog)


async def test_a_callback_with_a_repeated_parameter_is_audited_too(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    r = await env.browser.get("/bff/callback?state=a&state=b&code=the-code")
    assert r.status_code == 400
    (event,) = audits(caplog)
    assert (event["event"], event["outcome"]) == ("login_failed", "invalid_request")
    assert "the-code" not in bff_logs(caplog)
