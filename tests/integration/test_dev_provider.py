"""The development OpenID provider, over real sockets, as the BFF will see it."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import secrets
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.integration.provider_fixture import (
    PROVIDER_SCRIPT,
    RunningProvider,
    start_dev_provider,
)

pytestmark = pytest.mark.anyio

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


class _LogoutReceiver(BaseHTTPRequestHandler):
    received: list[dict[str, list[str]]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.received.append(parse_qs(self.rfile.read(length).decode()))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def backchannel() -> Iterator[tuple[str, list[dict[str, list[str]]]]]:
    """A tiny RP back-channel endpoint that records what the provider POSTs."""
    received: list[dict[str, list[str]]] = []
    handler = type("Receiver", (_LogoutReceiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/backchannel-logout", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def op(backchannel: tuple[str, list[Any]]) -> Iterator[RunningProvider]:
    with start_dev_provider(access_token_ttl=45, backchannel_logout_uri=backchannel[0]) as p:
        yield p


@pytest.fixture
async def browser(op: RunningProvider) -> AsyncIterator[httpx.AsyncClient]:
    """A user agent with its own cookie jar (so its own provider session)."""
    async with httpx.AsyncClient(base_url=op.issuer, timeout=10) as client:
        yield client


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _auth_params(op: RunningProvider, challenge: str, **extra: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": op.client_id,
        "redirect_uri": op.redirect_uri,
        "scope": "openid profile offline_access",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return params | extra


def _query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def _login(
    browser: httpx.AsyncClient, op: RunningProvider, user: str = "alice", **extra: str
) -> tuple[dict[str, str], str, dict[str, str]]:
    """Drive the login form; returns (authorize params, verifier, redirect query)."""
    verifier, challenge = _pkce()
    params = _auth_params(op, challenge, **extra)
    form = await browser.get("/authorize", params=params)
    assert form.status_code == 200
    assert 'name="username"' in form.text
    answer = await browser.post("/authorize", data=params | {"username": user, "action": "login"})
    assert answer.status_code == 302
    assert answer.headers["location"].startswith(op.redirect_uri + "?")
    return params, verifier, _query(answer.headers["location"])


async def _exchange(
    browser: httpx.AsyncClient, op: RunningProvider, code: str, verifier: str, **extra: str
) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": op.redirect_uri}
    auth = (op.client_id, op.client_secret)
    return await browser.post("/token", data=data | {"code_verifier": verifier} | extra, auth=auth)


async def _tokens(browser: httpx.AsyncClient, op: RunningProvider, **extra: str) -> dict[str, Any]:
    params, verifier, redirect = await _login(browser, op, **extra)
    response = await _exchange(browser, op, redirect["code"], verifier)
    assert response.status_code == 200, response.text
    return response.json() | {"nonce": params["nonce"]}  # type: ignore[no-any-return]


async def _refresh(browser: httpx.AsyncClient, op: RunningProvider, token: str) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": token}
    # client_secret_post here, client_secret_basic in _exchange: both must work
    creds = {"client_id": op.client_id, "client_secret": op.client_secret}
    return await browser.post("/token", data=data | creds)


async def _jwks(browser: httpx.AsyncClient) -> KeySet:
    return KeySet.import_key_set((await browser.get("/jwks")).json())


async def test_discovery(browser: httpx.AsyncClient, op: RunningProvider) -> None:
    meta = (await browser.get("/.well-known/openid-configuration")).json()
    assert meta["issuer"] == op.issuer
    for name in ("authorization", "token", "end_session", "revocation"):
        assert meta[f"{name}_endpoint"].startswith(op.issuer + "/")
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["response_types_supported"] == ["code"]
    assert meta["id_token_signing_alg_values_supported"] == ["RS256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["backchannel_logout_session_supported"] is True
    assert set(meta["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    keys = (await browser.get(meta["jwks_uri"])).json()["keys"]
    assert keys[0]["kid"]
    assert keys[0]["kty"] == "RSA"
    assert "d" not in keys[0]


async def test_login_form_code_and_session_cookie(
    browser: httpx.AsyncClient, op: RunningProvider
) -> None:
    params, _, redirect = await _login(browser, op)
    assert redirect["state"] == params["state"]
    assert redirect["iss"] == op.issuer
    assert redirect["code"]
    cookie = next(c for c in browser.cookies.jar if c.name == "devop_session")
    assert cookie.has_nonstandard_attr("HttpOnly")
    # The provider session now skips the form.
    again = await browser.get("/authorize", params=_auth_params(op, _pkce()[1]))
    assert again.status_code == 302
    assert "code" in _query(again.headers["location"])
    # prompt=login forces the form back.
    forced = await browser.get("/authorize", params=_auth_params(op, _pkce()[1], prompt="login"))
    assert forced.status_code == 200


async def test_cancel_returns_access_denied(
    browser: httpx.AsyncClient, op: RunningProvider
) -> None:
    params = _auth_params(op, _pkce()[1])
    answer = await browser.post("/authorize", data=params | {"action": "cancel"})
    assert answer.status_code == 302
    redirect = _query(answer.headers["location"])
    assert redirect["error"] == "access_denied"
    assert redirect["state"] == params["state"]
    assert redirect["iss"] == op.issuer


async def test_bad_authorize_requests(browser: httpx.AsyncClient, op: RunningProvider) -> None:
    # Unregistered redirect URI or client: an error page, never a redirect.
    for bad in ({"redirect_uri": "http://localhost:8000/evil"}, {"client_id": "nobody"}):
        page = await browser.get("/authorize", params=_auth_params(op, _pkce()[1]) | bad)
        assert page.status_code == 400
        assert "location" not in page.headers
    # Missing PKCE, plain PKCE, missing state: RFC 6749 error redirects.
    no_pkce = _auth_params(op, "x")
    del no_pkce["code_challenge"], no_pkce["code_challenge_method"]
    plain = _auth_params(op, _pkce()[1], code_challenge_method="plain")
    no_state = _auth_params(op, _pkce()[1])
    del no_state["state"]
    for params in (no_pkce, plain, no_state):
        answer = await browser.get("/authorize", params=params)
        assert answer.status_code == 302, params
        assert _query(answer.headers["location"])["error"] == "invalid_request"
    # prompt=none without a provider session.
    silent = await browser.get("/authorize", params=_auth_params(op, _pkce()[1], prompt="none"))
    assert _query(silent.headers["location"])["error"] == "login_required"


async def test_token_exchange_pkce_and_id_token(
    browser: httpx.AsyncClient, op: RunningProvider
) -> None:
    params, verifier, redirect = await _login(browser, op, user="bob")
    wrong = await _exchange(browser, op, redirect["code"], _pkce()[0])
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    bad_secret = await browser.post(
        "/token",
        data={"grant_type": "authorization_code", "code": redirect["code"]},
        auth=(op.client_id, "wrong"),
    )
    assert bad_secret.status_code == 401
    assert bad_secret.json()["error"] == "invalid_client"

    response = await _exchange(browser, op, redirect["code"], verifier)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 45
    assert body["refresh_token"]
    keys = await _jwks(browser)
    id_token = jwt.decode(body["id_token"], keys, algorithms=["RS256"])
    claims = id_token.claims
    assert id_token.header["kid"] == keys.keys[0].kid
    assert claims["iss"] == op.issuer
    assert claims["aud"] == op.client_id
    assert claims["azp"] == op.client_id
    assert claims["nonce"] == params["nonce"]
    assert claims["sub"] == "bob"
    assert claims["sid"]
    assert claims["auth_time"]
    assert claims["at_hash"]
    access = jwt.decode(body["access_token"], keys, algorithms=["RS256"]).claims
    assert access["aud"] == op.client_id
    assert access["client_id"] == op.client_id
    assert access["sid"] == claims["sid"]
    assert access["exp"] - access["iat"] == 45
    assert set(access["scope"].split()) == {"openid", "profile", "offline_access"}
    assert access["jti"]

    # Single use: a replayed code fails and revokes what it issued (RFC 6749 §4.1.2).
    replay = await _exchange(browser, op, redirect["code"], verifier)
    assert replay.json()["error"] == "invalid_grant"
    assert not op.refresh_token_active(body["refresh_token"])


async def test_resource_indicator_sets_audience(
    browser: httpx.AsyncClient, op: RunningProvider
) -> None:
    tokens = await _tokens(browser, op, resource="https://api.example.test")
    keys = await _jwks(browser)
    access = jwt.decode(tokens["access_token"], keys, algorithms=["RS256"]).claims
    assert access["aud"] == "https://api.example.test"


async def test_refresh_rotation_and_reuse_kills_family(
    browser: httpx.AsyncClient, op: RunningProvider
) -> None:
    op.reset_stats()
    tokens = await _tokens(browser, op)
    first = tokens["refresh_token"]
    rotated = await _refresh(browser, op, first)
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["refresh_token"]
    assert second != first
    assert rotated.json()["access_token"] != tokens["access_token"]
    keys = await _jwks(browser)
    refreshed_id = jwt.decode(rotated.json()["id_token"], keys, algorithms=["RS256"]).claims
    assert "nonce" not in refreshed_id
    assert not op.refresh_token_active(first)
    assert op.refresh_token_active(second)

    reuse = await _refresh(browser, op, first)
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    assert not op.refresh_token_active(second)  # the whole family is gone
    assert (await _refresh(browser, op, second)).json()["error"] == "invalid_grant"

    stats = op.stats()
    assert stats["authorization_code_grants"] == 1
    assert stats["refresh_grants"] == 1
    assert stats["refresh_reuse_rejected"] == 1
    assert hashlib.sha256(second.encode()).hexdigest()[:16] in stats["revoked_refresh_tokens"]


async def test_revocation(browser: httpx.AsyncClient, op: RunningProvider) -> None:
    op.reset_stats()
    tokens = await _tokens(browser, op)
    auth = (op.client_id, op.client_secret)
    data = {"token": tokens["refresh_token"], "token_type_hint": "refresh_token"}
    assert (await browser.post("/revoke", data=data, auth=auth)).status_code == 200
    assert not op.refresh_token_active(tokens["refresh_token"])
    assert (await _refresh(browser, op, tokens["refresh_token"])).json()["error"] == "invalid_grant"
    # Unknown tokens and access tokens still answer 200 (RFC 7009 §2.2).
    for token in ("not-a-token", tokens["access_token"]):
        assert (await browser.post("/revoke", data={"token": token}, auth=auth)).status_code == 200
    unauthenticated = await browser.post("/revoke", data={"token": "x"}, auth=(op.client_id, "no"))
    assert unauthenticated.status_code == 401
    stats = op.stats()
    assert stats["revocations"] == 3
    assert stats["revoked_refresh_tokens"] == [
        hashlib.sha256(tokens["refresh_token"].encode()).hexdigest()[:16]
    ]


async def test_end_session_logs_out_and_notifies(
    browser: httpx.AsyncClient,
    op: RunningProvider,
    backchannel: tuple[str, list[dict[str, list[str]]]],
) -> None:
    received = backchannel[1]
    received.clear()
    tokens = await _tokens(browser, op, user="carol")
    keys = await _jwks(browser)
    sid = jwt.decode(tokens["id_token"], keys, algorithms=["RS256"]).claims["sid"]
    sessions_before = op.stats()["active_sessions"]
    params = {
        "id_token_hint": tokens["id_token"],
        "client_id": op.client_id,
        "post_logout_redirect_uri": op.post_logout_redirect_uri,
        "state": "bye",
    }
    answer = await browser.get("/end_session", params=params)
    assert answer.status_code == 302
    assert answer.headers["location"] == op.post_logout_redirect_uri + "?state=bye"
    assert not any(c.name == "devop_session" for c in browser.cookies.jar)
    assert op.stats()["active_sessions"] == sessions_before - 1
    # The provider session is gone: the next authorize shows the form again.
    again = await browser.get("/authorize", params=_auth_params(op, _pkce()[1]))
    assert again.status_code == 200
    assert 'name="username"' in again.text

    assert len(received) == 1
    logout_token = jwt.decode(received[0]["logout_token"][0], keys, algorithms=["RS256"])
    assert logout_token.header["typ"] == "logout+jwt"
    claims = logout_token.claims
    assert claims["iss"] == op.issuer
    assert claims["aud"] == op.client_id
    assert claims["sid"] == sid
    assert claims["sub"] == "carol"
    assert claims["events"] == {BACKCHANNEL_EVENT: {}}
    assert "nonce" not in claims
    assert claims["jti"]
    assert claims["iat"]


async def test_end_session_unregistered_redirect_shows_page(
    browser: httpx.AsyncClient, op: RunningProvider
) -> None:
    tokens = await _tokens(browser, op)
    params = {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "https://evil.test/"}
    page = await browser.get("/end_session", params=params)
    assert page.status_code == 200
    assert "location" not in page.headers
    assert "not registered" in page.text
    # Without id_token_hint the user must confirm (a POST) before anything happens.
    await _tokens(browser, op)
    params = {"client_id": op.client_id, "post_logout_redirect_uri": op.post_logout_redirect_uri}
    confirm = await browser.get("/end_session", params=params)
    assert confirm.status_code == 200
    assert '<form method="post"' in confirm.text
    assert any(c.name == "devop_session" for c in browser.cookies.jar)
    confirmed = await browser.post("/end_session", data=params)
    assert confirmed.headers["location"] == op.post_logout_redirect_uri
    assert not any(c.name == "devop_session" for c in browser.cookies.jar)


async def test_dev_backchannel_logout_by_sub(
    browser: httpx.AsyncClient,
    op: RunningProvider,
    backchannel: tuple[str, list[dict[str, list[str]]]],
) -> None:
    received = backchannel[1]
    received.clear()
    await _tokens(browser, op, user="dave")
    result = op.backchannel_logout(sub="dave")
    assert result["ended_sessions"] == 1
    assert result["notified"][0]["status"] == 200
    keys = await _jwks(browser)
    claims = jwt.decode(received[0]["logout_token"][0], keys, algorithms=["RS256"]).claims
    assert claims["sub"] == "dave"
    assert op.backchannel_logout(sub="dave")["ended_sessions"] == 0
    # The browser's provider session went with it.
    again = await browser.get("/authorize", params=_auth_params(op, _pkce()[1]))
    assert again.status_code == 200


async def test_token_endpoint_failure_modes(
    browser: httpx.AsyncClient, op: RunningProvider
) -> None:
    tokens = await _tokens(browser, op)
    try:
        op.fail("token_500")
        assert (await _refresh(browser, op, tokens["refresh_token"])).status_code == 500
        op.fail("token_down")
        with pytest.raises(httpx.TransportError):
            await _refresh(browser, op, tokens["refresh_token"])
    finally:
        op.fail("none")
    # The outage consumed nothing: the refresh token still works afterwards.
    assert (await _refresh(browser, op, tokens["refresh_token"])).status_code == 200


def test_refuses_non_loopback_host() -> None:
    result = subprocess.run(
        [sys.executable, str(PROVIDER_SCRIPT), "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "loopback" in result.stderr


async def test_importable_by_path_as_asgi_app() -> None:
    spec = importlib.util.spec_from_file_location("dev_provider_under_test", PROVIDER_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    client = module.ClientConfig("c", "s", ("http://localhost/cb",))
    app = module.create_provider_app(module.ProviderConfig("http://op.test", (client,)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://op.test") as http:
        meta = (await http.get("/.well-known/openid-configuration")).json()
    assert meta["issuer"] == "http://op.test"
