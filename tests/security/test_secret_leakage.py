"""Secrets stay secret (THREATS.md invariant 11): a whole login, refresh, proxied call,
refused callbacks, a provider fault, logout and back-channel logout run over real
sockets at DEBUG log level; then every log line (bff, uvicorn, authlib, httpx: all
loggers), every response header and body the browser saw, and the metrics are scanned
for every token, authorization code, PKCE verifier, cookie value and secret involved.
The only deliberate exceptions: our own Set-Cookie carries the cookie value, and the
provider logout redirect carries `id_token_hint`. (authlib logs the PKCE verifier at
DEBUG; uvicorn's access log prints `/bff/callback?code=…`.)"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bff.telemetry.metrics import render as render_metrics
from tests.fake_idp import CLIENT_SECRET, ISSUER, SECRET_KEY
from tests.integration.upstream_server import UpstreamServer
from tests.security.conftest import Bff, running_bff
from tests.security.test_tokens import LT_HEADER, id_claims, logout_claims

pytestmark = pytest.mark.anyio


class Recorder:
    """Every response the browsers saw, and every ID token the provider issued."""

    def __init__(self) -> None:
        self.responses: list[httpx.Response] = []
        self.id_tokens: list[str] = []

    def texts(self) -> Iterator[tuple[str, str]]:
        for r in self.responses:
            if not r.request.url.path.startswith("/api/"):  # the upstream's echo holds
                yield f"body of {r.request.url.path}", r.text  # the bearer it was sent
            for name, value in r.headers.multi_items():
                if name == "set-cookie" and value.split("=", 1)[0] in OWN_COOKIES:
                    continue  # where the cookie value belongs
                if name == "location" and "/end_session?" in value:
                    continue  # id_token_hint, deliberately
                yield f"header {name} of {r.request.url.path}", value


OWN_COOKIES = {"bff-session", "bff-session-login"}


def _browser_side(record: logging.LogRecord, bff_url: str) -> bool:
    if not record.name.startswith(("httpx", "httpcore")):
        return False
    if record.name == "httpx":
        return bff_url in record.getMessage()
    # httpcore traces carry no URL; bff's provider client is an in-memory MockTransport
    # (no httpcore at all), so every httpcore line is a browser's.
    return True


def secrets_of(bff: Bff, recorder: Recorder, cookies: list[str], codes: list[str]) -> set[str]:
    found = {CLIENT_SECRET, SECRET_KEY, *codes, *recorder.id_tokens}
    found |= {t.rsplit(".", 1)[1] for t in recorder.id_tokens}  # signatures alone
    for form in bff.idp.token_requests:
        found.update(form.get("code_verifier", []))
        found.update(form.get("refresh_token", []))
    n = len(bff.idp.token_requests)
    found |= {f"access-token-{i}-XYZ" for i in range(1, n + 1)}
    found |= {f"refresh-token-{i}-XYZ" for i in range(1, n + 1)}
    for cookie in cookies:
        found.add(cookie)
        found.add(cookie.split(".", 1)[0])  # the session id (or binding value) alone
    return {s for s in found if len(s) >= 8}


async def test_no_secret_in_any_log_line_response_or_metric(
    upstream: UpstreamServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    recorder = Recorder()
    codes: list[str] = []
    cookies: list[str] = []
    async with running_bff([{"prefix": "/api", "upstream": upstream.url}]) as bff:
        issue = bff.idp.id_token

        def recorded_id_token(nonce: str | None, **extra: Any) -> str:
            token = issue(nonce, **extra)
            recorder.id_tokens.append(token)
            return token

        bff.idp.id_token = recorded_id_token  # type: ignore[method-assign]

        async def get(browser: Any, url: str, **kw: Any) -> httpx.Response:
            r = await browser.request(kw.pop("method", "GET"), url, **kw)
            recorder.responses.append(r)
            return r

        async def callback(browser: Any, code: str) -> httpx.Response:
            params = await bff.start_login(browser)
            codes.append(code)
            q = {"code": code, "state": params["state"], "iss": ISSUER}
            return await get(browser, "/bff/callback", params=q)

        # 1. a login, /bff/user, a proxied call that refreshes first
        alice = bff.browser()
        bff.idp.access_ttl = 1
        bff.idp.id_claims = {"sub": "alice", "sid": "idp-sid-alice"}
        assert (await callback(alice, f"authcode-{uuid.uuid4().hex}")).status_code == 302
        bff.idp.access_ttl = 3600
        assert (await get(alice, "/bff/user", csrf=True)).status_code == 200
        assert (await get(alice, "/api/orders?x=1", csrf=True)).status_code == 200
        cookies += alice.cookies.values()

        # 2. refused callbacks: a code the provider rejects, an ID token with a wrong nonce
        mallory = bff.browser()
        bff.idp.token_status, bff.idp.token_body = 400, {"error": "invalid_grant"}
        assert (await callback(mallory, f"authcode-{uuid.uuid4().hex}")).status_code == 400
        bad = bff.idp.sign(id_claims("not-the-nonce"))
        recorder.id_tokens.append(bad)
        bff.idp.token_status = 200
        bff.idp.token_body = {
            "access_token": "access-token-forged-XYZ",
            "token_type": "Bearer",
            "refresh_token": "refresh-token-forged-XYZ",
            "id_token": bad,
        }
        assert (await callback(mallory, f"authcode-{uuid.uuid4().hex}")).status_code == 400
        bff.idp.token_body = None
        cookies += mallory.cookies.values()

        # 3. a provider fault at refresh (invalid_client: logged loudly, without secrets)
        bob = bff.browser()
        bff.idp.access_ttl = 1
        bff.idp.id_claims = {"sub": "bob", "sid": "idp-sid-bob"}
        assert (await callback(bob, f"authcode-{uuid.uuid4().hex}")).status_code == 302
        cookies += bob.cookies.values()
        bff.idp.refresh_error = "invalid_client"
        assert (await get(bob, "/api/orders", csrf=True)).status_code == 502
        bff.idp.refresh_error = None

        # 4. logout, and back-channel logout (one valid token, one forged)
        assert (await get(alice, "/bff/logout", method="POST", csrf=True)).status_code == 302
        logout_token = bff.idp.sign(logout_claims(sid="idp-sid-bob"), LT_HEADER)
        forged = bff.idp.sign(logout_claims(aud="other", sid="idp-sid-bob"), LT_HEADER)
        recorder.id_tokens += [logout_token, forged]
        for token, status in ((forged, 400), (logout_token, 200)):
            r = await get(
                bff.browser(),
                "/bff/backchannel-logout",
                method="POST",
                data={"logout_token": token},
            )
            assert r.status_code == status
        secrets = secrets_of(bff, recorder, cookies, codes)

    assert len(secrets) >= 20
    # The test's own browsers log through httpx/httpcore too (their URLs carry codes,
    # their headers the cookies): those lines are the attacker's side, not bff's.
    records = [r for r in caplog.records if not _browser_side(r, bff.browser_url)]
    haystacks: list[tuple[str, str]] = [(f"log {r.name}", r.getMessage()) for r in records]
    haystacks += [(f"log {r.name} args", repr(r.args)) for r in records]
    haystacks += list(recorder.texts())
    haystacks.append(("metrics", render_metrics(None).decode()))
    assert len(records) > 10  # the scan has something to read
    leaks = [(where, s[:12]) for where, text in haystacks for s in secrets if s in text]
    assert leaks == []
