"""OidcClient with `private_key_jwt` against a provider shaped by respx: token (code,
refresh, client credentials, token exchange), revocation and PAR carry a fresh client
assertion verified with the client's public key; discovery refuses a provider that does
not offer the method."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from joserfc import jwt
from joserfc.jwk import RSAKey

from bff.errors import IdpUnavailable
from bff.oidc.client import OidcClient
from bff.oidc.client_assertion import ASSERTION_TYPE, ClientKey, parse_client_key
from bff.oidc.grants import TOKEN_EXCHANGE

pytestmark = pytest.mark.anyio

ISSUER = "https://idp.example"
CLIENT_ID = "bff-client"
NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def rsa() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "client-1"}, private=True)


@pytest.fixture
def client_key(rsa: RSAKey) -> ClientKey:
    return parse_client_key(json.dumps(rsa.as_dict(private=True)))


def discovery(**overrides: Any) -> dict[str, Any]:
    doc = {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/auth",
        "token_endpoint": f"{ISSUER}/token",
        "jwks_uri": f"{ISSUER}/jwks",
        "revocation_endpoint": f"{ISSUER}/revoke",
        "pushed_authorization_request_endpoint": f"{ISSUER}/par",
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }
    doc.update(overrides)
    return doc


@pytest.fixture
def router() -> respx.Router:
    router = respx.Router(assert_all_called=False)
    router.get(f"{ISSUER}/.well-known/openid-configuration", name="discovery").respond(
        200, json=discovery()
    )
    token = {"access_token": "at", "token_type": "Bearer", "expires_in": 60}
    router.post(f"{ISSUER}/token", name="token").respond(200, json=token)
    router.post(f"{ISSUER}/revoke", name="revoke").respond(200)
    router.post(f"{ISSUER}/par", name="par").respond(201, json={"request_uri": "urn:r:1"})
    return router


@pytest.fixture
async def client(router: respx.Router, client_key: ClientKey) -> AsyncIterator[OidcClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler)) as http:
        yield OidcClient(
            issuer=ISSUER,
            client_id=CLIENT_ID,
            client_auth="private_key_jwt",
            client_key=client_key,
            redirect_uri="https://app.example/bff/callback",
            scopes="openid",
            resource=None,
            http=http,
            clock=lambda: NOW,
        )


def verified_assertion(request: httpx.Request, rsa: RSAKey) -> dict[str, Any]:
    """The request's client assertion, checked as a provider checks it."""
    assert "authorization" not in request.headers  # no secret travels
    form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
    assert "client_secret" not in form
    assert form["client_id"] == CLIENT_ID
    assert form["client_assertion_type"] == ASSERTION_TYPE
    public = RSAKey.import_key(rsa.as_dict(private=False))
    token = jwt.decode(form["client_assertion"], public, algorithms=["RS256"])
    assert token.header["kid"] == "client-1"
    claims = token.claims
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == ISSUER
    assert claims["iat"] == int(NOW)
    assert 0 < claims["exp"] - NOW <= 60
    return claims


async def test_every_provider_call_carries_a_fresh_assertion(
    client: OidcClient, router: respx.Router, rsa: RSAKey
) -> None:
    await client.exchange_code(code="c", code_verifier="v")
    await client.refresh("rt")
    await client.revoke("rt")
    url = await client.authorization_url(state="s", nonce="n", code_challenge="x")
    assert "request_uri=urn%3Ar%3A1" in url
    requests = [
        *(call.request for call in router.routes["token"].calls),
        router.routes["revoke"].calls.last.request,
        router.routes["par"].calls.last.request,
    ]
    jtis = [verified_assertion(request, rsa)["jti"] for request in requests]
    assert len(set(jtis)) == 4  # one assertion per call, never replayed


async def test_client_credentials_and_token_exchange_carry_an_assertion_too(
    client: OidcClient, router: respx.Router, rsa: RSAKey
) -> None:
    grants = ["refresh_token", "client_credentials", TOKEN_EXCHANGE]
    router.routes["discovery"].respond(200, json=discovery(grant_types_supported=grants))
    await client.client_credentials(scope="reports", resource="urn:example:reports")
    await client.exchange_token("user-at", resource="https://partner.example/")
    requests = [call.request for call in router.routes["token"].calls]
    forms = [parse_qs(request.content.decode()) for request in requests]
    assert [f["grant_type"] for f in forms] == [["client_credentials"], [TOKEN_EXCHANGE]]
    assert forms[0]["resource"] == ["urn:example:reports"]
    assert forms[1]["subject_token"] == ["user-at"]
    jtis = {verified_assertion(request, rsa)["jti"] for request in requests}
    assert len(jtis) == 2


async def test_provider_without_the_method_is_a_clear_discovery_error(
    client: OidcClient, router: respx.Router
) -> None:
    router.routes["discovery"].respond(
        200, json=discovery(token_endpoint_auth_methods_supported=["client_secret_basic"])
    )
    with pytest.raises(IdpUnavailable, match="does not accept client_auth 'private_key_jwt'"):
        await client.exchange_code(code="c", code_verifier="v")
    assert "private_key_jwt" in (client.last_error or "")
    assert not router.routes["token"].called


async def test_metadata_without_the_list_means_basic_only(
    client: OidcClient, router: respx.Router
) -> None:
    doc = discovery()
    del doc["token_endpoint_auth_methods_supported"]
    router.routes["discovery"].respond(200, json=doc)
    with pytest.raises(IdpUnavailable, match="client_secret_basic"):
        await client.metadata()


def test_private_key_jwt_needs_a_key() -> None:
    with pytest.raises(ValueError, match="needs a client key"):
        OidcClient(
            issuer=ISSUER,
            client_id=CLIENT_ID,
            client_auth="private_key_jwt",
            redirect_uri="https://app.example/bff/callback",
            scopes="openid",
            resource=None,
            http=httpx.AsyncClient(),
        )
