"""bff.oidc.client against a provider shaped by respx: discovery, PAR, client auth, token
calls, ID / logout token validation with a real RSA key, and the JWKS refetch cooldown."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

import httpx
import pytest
import respx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from joserfc.jwk import RSAKey

from bff.errors import IdpRejected, IdpUnavailable, TokenValidationError
from bff.oidc.client import OidcClient
from bff.oidc.metadata import ProviderMetadata
from bff.oidc.provider_http import MAX_RESPONSE_BYTES
from bff.oidc.validation import BACKCHANNEL_LOGOUT_EVENT

pytestmark = pytest.mark.anyio

ISSUER = "https://idp.example/realms/demo"
DISCOVERY = f"{ISSUER}/.well-known/openid-configuration"
JWKS_URI = f"{ISSUER}/jwks"
TOKEN_URI = f"{ISSUER}/token"
PAR_URI = f"{ISSUER}/par"
REVOKE_URI = f"{ISSUER}/revoke"
CLIENT_ID = "bff-client"
CLIENT_SECRET = "s3cret:with%odd/chars+&="  # exercises RFC 6749 §2.3.1 encoding
REDIRECT_URI = "https://app.example/bff/callback"
CODE = "authcode-SENSITIVE-123"
VERIFIER = "verifier-SENSITIVE-abcdefghijklmnopqrstuvwxyz0123456789"
ACCESS = "access-SENSITIVE-token"
REFRESH = "refresh-SENSITIVE-token"
NOW = 1_700_000_000.0

SECRETS = [CLIENT_SECRET, CODE, VERIFIER, ACCESS, REFRESH]  # sign() adds every token it mints
K2 = {"alg": "RS256", "kid": "k2", "typ": "JWT"}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"}, private=True)


@pytest.fixture(scope="module")
def other_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "k2", "use": "sig"}, private=True)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(claims: dict[str, Any], key: RSAKey | None, header: dict[str, Any] | None = None) -> str:
    """A compact JWS built by hand, so tests can craft headers joserfc would refuse."""
    head = {"alg": "RS256", "kid": "k1", "typ": "JWT"} if header is None else header
    signing_input = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(claims).encode())}"
    if key is None:
        return signing_input + "."
    private = key.get_op_key("sign")
    signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    token = f"{signing_input}.{b64(signature)}"
    SECRETS.append(token)
    return token


def jwks(*keys: RSAKey) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=False) for k in keys]}


def discovery_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/auth",
        "token_endpoint": TOKEN_URI,
        "jwks_uri": JWKS_URI,
        "end_session_endpoint": f"{ISSUER}/logout",
        "revocation_endpoint": REVOKE_URI,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "authorization_response_iss_parameter_supported": True,
        "backchannel_logout_supported": True,
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not None}


@pytest.fixture
def router(key: RSAKey) -> respx.Router:
    router = respx.Router(assert_all_called=False)
    router.get(DISCOVERY, name="discovery").respond(200, json=discovery_doc())
    router.get(JWKS_URI, name="jwks").respond(200, json=jwks(key))
    return router


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def http(router: respx.Router) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler)) as client:
        yield client


def make_client(
    http: httpx.AsyncClient, clock: Clock, *, resource: str | None = None
) -> OidcClient:
    return OidcClient(
        issuer=ISSUER,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uri=REDIRECT_URI,
        scopes="openid profile offline_access",
        resource=resource,
        http=http,
        clock=clock,
    )


@pytest.fixture
def client(http: httpx.AsyncClient, clock: Clock) -> OidcClient:
    return make_client(http, clock)


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Invariant 11: nothing logged while these tests run holds a token or secret."""
    caplog.set_level(logging.DEBUG)
    yield
    formatter = logging.Formatter()
    # At teardown `caplog.records` is the teardown phase's: read setup and call explicitly.
    for record in caplog.get_records("setup") + caplog.get_records("call"):
        text = record.getMessage()
        if record.exc_info:
            text += formatter.formatException(record.exc_info)
        for secret in SECRETS:
            assert secret not in text, f"log record leaks a secret: {record.name}"


def form_of(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def assert_no_secret(exc: BaseException) -> None:
    for secret in SECRETS:
        assert secret not in str(exc)
        assert secret not in repr(exc)


# -- discovery ---------------------------------------------------------------------------


async def test_discovery_parses_and_caches(client: OidcClient, router: respx.Router) -> None:
    metadata = await client.metadata()
    assert metadata.token_endpoint == TOKEN_URI
    assert metadata.jwks_uri == JWKS_URI
    assert metadata.revocation_endpoint == REVOKE_URI
    assert metadata.pushed_authorization_request_endpoint is None
    assert metadata.iss_parameter_supported is True
    assert metadata.backchannel_logout_supported is True
    assert metadata.id_token_algs == ("RS256",)
    assert await client.discover() is metadata
    assert client.metadata_or_none is metadata
    assert client.last_error is None
    assert router.routes["discovery"].call_count == 1


@pytest.mark.parametrize(
    "response",
    [
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.Response(500, json={"error": "server_error"}),
        httpx.Response(404, text="not here"),
        httpx.Response(400, json={"error": "invalid_request"}),
        httpx.Response(200, text="<html>garbage</html>"),
        httpx.Response(200, json=["not", "an", "object"]),
        httpx.Response(200, json=discovery_doc(issuer="https://mixup.example")),
        httpx.Response(200, json=discovery_doc(token_endpoint="http://idp.example/token")),
    ],
)
async def test_discovery_failures(
    client: OidcClient, router: respx.Router, response: Exception | httpx.Response
) -> None:
    router.routes["discovery"].side_effect = [response]
    with pytest.raises(IdpUnavailable):
        await client.discover()
    assert client.metadata_or_none is None
    assert client.last_error


async def test_discover_forever_retries_until_success(
    client: OidcClient, router: respx.Router
) -> None:
    router.routes["discovery"].side_effect = [
        httpx.ConnectError("down"),
        httpx.Response(503),
        httpx.Response(200, json=discovery_doc()),
    ]
    await client.discover_forever(initial_delay=0.001, max_delay=0.002)
    assert client.metadata_or_none is not None
    assert client.last_error is None
    assert router.routes["discovery"].call_count == 3


# -- front channel ---------------------------------------------------------------------


async def test_authorization_url_without_par(http: httpx.AsyncClient, clock: Clock) -> None:
    client = make_client(http, clock, resource="https://api.example")
    url = await client.authorization_url(state="st", nonce="no", code_challenge="ch")
    assert url.startswith(f"{ISSUER}/auth?")
    assert query_of(url) == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile offline_access",
        "state": "st",
        "nonce": "no",
        "code_challenge": "ch",
        "code_challenge_method": "S256",
        "resource": "https://api.example",
    }


async def test_authorization_url_uses_par_when_advertised(
    client: OidcClient, router: respx.Router
) -> None:
    router.routes["discovery"].respond(
        200, json=discovery_doc(pushed_authorization_request_endpoint=PAR_URI)
    )
    par = router.post(PAR_URI).respond(
        201, json={"request_uri": "urn:ietf:params:oauth:request_uri:abc", "expires_in": 60}
    )
    url = await client.authorization_url(state="st", nonce="no", code_challenge="ch")
    assert query_of(url) == {
        "client_id": CLIENT_ID,
        "request_uri": "urn:ietf:params:oauth:request_uri:abc",
    }
    sent = par.calls.last.request
    assert sent.headers["authorization"].startswith("Basic ")
    form = form_of(sent)
    assert form["code_challenge"] == "ch"
    assert form["code_challenge_method"] == "S256"
    assert form["state"] == "st"
    assert form["nonce"] == "no"
    assert form["redirect_uri"] == REDIRECT_URI


async def test_par_answer_without_request_uri(client: OidcClient, router: respx.Router) -> None:
    router.routes["discovery"].respond(
        200, json=discovery_doc(pushed_authorization_request_endpoint=PAR_URI)
    )
    router.post(PAR_URI).respond(201, json={"expires_in": 60})
    with pytest.raises(IdpUnavailable, match="request_uri"):
        await client.authorization_url(state="st", nonce="no", code_challenge="ch")


async def test_par_rejection_is_classified(client: OidcClient, router: respx.Router) -> None:
    router.routes["discovery"].respond(
        200, json=discovery_doc(pushed_authorization_request_endpoint=PAR_URI)
    )
    router.post(PAR_URI).respond(400, json={"error": "invalid_request"})
    with pytest.raises(IdpRejected) as caught:
        await client.authorization_url(state="st", nonce="no", code_challenge="ch")
    assert caught.value.error == "invalid_request"


async def test_end_session_url(client: OidcClient) -> None:
    metadata = await client.metadata()
    url = client.end_session_url(
        metadata, id_token_hint="idt", post_logout_redirect_uri="https://app.example/"
    )
    assert url is not None
    assert url.startswith(f"{ISSUER}/logout?")
    assert query_of(url) == {
        "id_token_hint": "idt",
        "client_id": CLIENT_ID,
        "post_logout_redirect_uri": "https://app.example/",
    }
    bare = ProviderMetadata.parse(discovery_doc(end_session_endpoint=None), expected_issuer=ISSUER)
    assert (
        client.end_session_url(bare, id_token_hint=None, post_logout_redirect_uri="https://a/")
        is None
    )


# -- token endpoint ----------------------------------------------------------------------


def token_answer(**extra: Any) -> dict[str, Any]:
    return {"access_token": ACCESS, "token_type": "Bearer", "expires_in": 300, **extra}


async def test_exchange_code_success_with_basic_auth(
    http: httpx.AsyncClient, clock: Clock, router: respx.Router
) -> None:
    client = make_client(http, clock, resource="https://api.example")
    token = router.post(TOKEN_URI).respond(200, json=token_answer(refresh_token=REFRESH))
    tokens = await client.exchange_code(code=CODE, code_verifier=VERIFIER)
    assert tokens.access_token == ACCESS
    assert tokens.refresh_token == REFRESH
    assert tokens.expires_at == int(NOW) + 300
    sent = token.calls.last.request
    assert form_of(sent) == {
        "grant_type": "authorization_code",
        "code": CODE,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": VERIFIER,
        "resource": "https://api.example",
    }
    scheme, _, encoded = sent.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(encoded).decode().partition(":")
    assert (unquote_plus(user), unquote_plus(password)) == (CLIENT_ID, CLIENT_SECRET)
    assert ":" not in password  # the secret's own ':' was encoded


async def test_client_secret_post_when_only_post_advertised(
    client: OidcClient, router: respx.Router
) -> None:
    router.routes["discovery"].respond(
        200, json=discovery_doc(token_endpoint_auth_methods_supported=["client_secret_post"])
    )
    token = router.post(TOKEN_URI).respond(200, json=token_answer())
    await client.exchange_code(code=CODE, code_verifier=VERIFIER)
    sent = token.calls.last.request
    assert "authorization" not in sent.headers
    form = form_of(sent)
    assert form["client_id"] == CLIENT_ID
    assert form["client_secret"] == CLIENT_SECRET


@pytest.mark.parametrize(("status", "error"), [(400, "invalid_grant"), (401, "invalid_client")])
async def test_exchange_code_oauth_error_is_rejected(
    client: OidcClient, router: respx.Router, status: int, error: str
) -> None:
    router.post(TOKEN_URI).respond(
        status, json={"error": error, "error_description": "code already used"}
    )
    with pytest.raises(IdpRejected) as caught:
        await client.exchange_code(code=CODE, code_verifier=VERIFIER)
    assert caught.value.error == error
    assert caught.value.description == "code already used"
    assert_no_secret(caught.value)


async def _oversized_stream() -> AsyncIterator[bytes]:
    chunk = b" " * 65536
    for _ in range(MAX_RESPONSE_BYTES // len(chunk) + 2):
        yield chunk


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(500, json={"error": "invalid_grant"}),  # a 5xx is never definitive
        httpx.Response(503, text="maintenance"),
        httpx.Response(400, text="<html>bad request</html>"),
        httpx.Response(400, json={"error": 42}),
        httpx.Response(400, json={"error": 'not "an" RFC 6749 code'}),
        httpx.Response(302, headers={"location": "https://elsewhere.example/"}),
        httpx.Response(200, text="not json"),
        httpx.Response(200, json={"token_type": "Bearer"}),  # no access_token
        httpx.Response(200, json={"access_token": ACCESS, "token_type": "mac"}),
        httpx.Response(200, content=b'{"access_token": "' + b"a" * MAX_RESPONSE_BYTES + b'"}'),
        httpx.ReadTimeout("slow"),
        httpx.ConnectError("refused"),
    ],
)
async def test_exchange_code_unusable_answer_is_unavailable(
    client: OidcClient, router: respx.Router, response: Exception | httpx.Response
) -> None:
    router.post(TOKEN_URI).mock(side_effect=[response])
    with pytest.raises(IdpUnavailable) as caught:
        await client.exchange_code(code=CODE, code_verifier=VERIFIER)
    assert_no_secret(caught.value)


async def test_oversized_streamed_answer_is_unavailable(
    client: OidcClient, router: respx.Router
) -> None:
    # No Content-Length: the cap must hold while reading, not only on the header.
    router.post(TOKEN_URI).mock(return_value=httpx.Response(200, content=_oversized_stream()))
    with pytest.raises(IdpUnavailable, match="larger than"):
        await client.exchange_code(code=CODE, code_verifier=VERIFIER)


async def test_refresh(http: httpx.AsyncClient, clock: Clock, router: respx.Router) -> None:
    client = make_client(http, clock, resource="https://api.example")
    token = router.post(TOKEN_URI).respond(200, json=token_answer(refresh_token="rotated"))
    tokens = await client.refresh(REFRESH)
    assert tokens.refresh_token == "rotated"
    assert form_of(token.calls.last.request) == {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH,
        "resource": "https://api.example",
    }
    await client.refresh(REFRESH, scope="orders:read", resource="https://orders.example")
    form = form_of(token.calls.last.request)
    assert form["scope"] == "orders:read"
    assert form["resource"] == "https://orders.example"


async def test_refresh_invalid_grant(client: OidcClient, router: respx.Router) -> None:
    router.post(TOKEN_URI).respond(400, json={"error": "invalid_grant"})
    with pytest.raises(IdpRejected) as caught:
        await client.refresh(REFRESH)
    assert caught.value.error == "invalid_grant"
    assert_no_secret(caught.value)


async def test_revoke(client: OidcClient, router: respx.Router) -> None:
    revoke = router.post(REVOKE_URI).respond(200)
    await client.revoke(REFRESH)
    sent = revoke.calls.last.request
    assert form_of(sent) == {"token": REFRESH, "token_type_hint": "refresh_token"}
    assert sent.headers["authorization"].startswith("Basic ")


async def test_revoke_failures_raise(client: OidcClient, router: respx.Router) -> None:
    router.post(REVOKE_URI).mock(
        side_effect=[
            httpx.Response(503),
            httpx.Response(400, json={"error": "unsupported_token_type"}),
        ]
    )
    with pytest.raises(IdpUnavailable) as unavailable:
        await client.revoke(REFRESH)
    with pytest.raises(IdpRejected) as rejected:
        await client.revoke(REFRESH)
    assert rejected.value.error == "unsupported_token_type"
    assert_no_secret(unavailable.value)
    assert_no_secret(rejected.value)


async def test_revoke_without_endpoint_is_a_no_op(client: OidcClient, router: respx.Router) -> None:
    router.routes["discovery"].respond(200, json=discovery_doc(revocation_endpoint=None))
    revoke = router.post(REVOKE_URI).respond(500)
    await client.revoke(REFRESH)
    assert revoke.call_count == 0


async def test_repr_hides_the_secret(client: OidcClient) -> None:
    assert CLIENT_SECRET not in repr(client)


# -- ID token ----------------------------------------------------------------------------


def id_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "user-1",
        "aud": CLIENT_ID,
        "exp": int(NOW) + 300,
        "iat": int(NOW),
        "nonce": "n-123",
        "sid": "idp-session",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


async def test_id_token_valid(client: OidcClient, key: RSAKey) -> None:
    claims = await client.validate_id_token(sign(id_claims(), key), nonce="n-123")
    assert claims["sub"] == "user-1"
    assert claims["sid"] == "idp-session"


async def test_id_token_valid_with_azp_and_leeway(
    client: OidcClient, clock: Clock, key: RSAKey
) -> None:
    clock.now = NOW + 300 + 30  # expired 30 s ago: within the 60 s leeway
    token = sign(id_claims(aud=[CLIENT_ID, "api"], azp=CLIENT_ID, iat=int(NOW) + 10), key)
    assert (await client.validate_id_token(token, nonce="n-123"))["azp"] == CLIENT_ID


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        ({"iss": "https://evil.example"}, "iss"),
        ({"aud": "someone-else"}, "aud"),
        ({"aud": ["someone-else", "another"]}, "aud"),
        ({"aud": [CLIENT_ID, "api"]}, "azp is required"),
        ({"azp": "someone-else"}, "azp"),
        ({"exp": int(NOW) - 61}, "exp"),
        ({"exp": None}, "exp"),
        ({"iat": int(NOW) + 120}, "iat"),
        ({"nonce": None}, "nonce missing"),
        ({"nonce": "n-456"}, "nonce does not match"),
        ({"sub": ""}, "sub"),
        ({"sub": None}, "sub"),
    ],
)
async def test_id_token_claim_rules(
    client: OidcClient, key: RSAKey, overrides: dict[str, Any], rule: str
) -> None:
    token = sign(id_claims(**overrides), key)
    with pytest.raises(TokenValidationError, match=rule) as caught:
        await client.validate_id_token(token, nonce="n-123")
    assert token not in str(caught.value)


async def test_id_token_bad_signature(client: OidcClient, other_key: RSAKey) -> None:
    token = sign(id_claims(), other_key)  # header still says kid k1
    with pytest.raises(TokenValidationError, match="signature"):
        await client.validate_id_token(token, nonce="n-123")


async def test_id_token_tampered_payload(client: OidcClient, key: RSAKey) -> None:
    head, _, sig = sign(id_claims(), key).split(".")
    forged = f"{head}.{b64(json.dumps(id_claims(sub='admin')).encode())}.{sig}"
    with pytest.raises(TokenValidationError, match="signature"):
        await client.validate_id_token(forged, nonce="n-123")


async def test_id_token_alg_none(client: OidcClient) -> None:
    token = sign(id_claims(), None, {"alg": "none", "kid": "k1"})
    with pytest.raises(TokenValidationError, match="alg"):
        await client.validate_id_token(token, nonce="n-123")


async def test_id_token_hs256_keyed_with_public_key(
    client: OidcClient, router: respx.Router, key: RSAKey
) -> None:
    # authlib CVE-2024-37568: even when the provider lists HS256, the public key is no secret.
    router.routes["discovery"].respond(
        200, json=discovery_doc(id_token_signing_alg_values_supported=["RS256", "HS256"])
    )
    header = {"alg": "HS256", "kid": "k1", "typ": "JWT"}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(id_claims()).encode())}"
    for secret in (key.as_pem(private=False), json.dumps(key.as_dict(private=False)).encode()):
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        with pytest.raises(TokenValidationError, match="alg"):
            await client.validate_id_token(f"{signing_input}.{b64(mac)}", nonce="n-123")


async def test_id_token_alg_not_advertised(client: OidcClient, key: RSAKey) -> None:
    token = sign(id_claims(), key, {"alg": "PS256", "kid": "k1"})
    with pytest.raises(TokenValidationError, match="advertise"):
        await client.validate_id_token(token, nonce="n-123")


async def test_id_token_unknown_crit(client: OidcClient, key: RSAKey) -> None:
    header = {"alg": "RS256", "kid": "k1", "crit": ["urn:example:ext"], "urn:example:ext": 1}
    with pytest.raises(TokenValidationError, match="crit"):
        await client.validate_id_token(sign(id_claims(), key, header), nonce="n-123")


async def test_id_token_oversized(client: OidcClient, router: respx.Router, key: RSAKey) -> None:
    token = sign(id_claims(padding="x" * 70_000), key)
    with pytest.raises(TokenValidationError, match="larger than"):
        await client.validate_id_token(token, nonce="n-123")
    assert router.routes["jwks"].call_count == 0  # refused before any key lookup


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c.d.e", "!!.@@.##", "é.é.é"])
async def test_id_token_malformed(client: OidcClient, token: str) -> None:
    with pytest.raises(TokenValidationError):
        await client.validate_id_token(token, nonce="n-123")


async def test_unknown_kid_refetch_is_rate_limited(
    client: OidcClient, router: respx.Router, clock: Clock, other_key: RSAKey
) -> None:
    jwks_route = router.routes["jwks"]
    with pytest.raises(TokenValidationError, match="kid"):
        await client.validate_id_token(sign(id_claims(), other_key, K2), nonce="n-123")
    # k2 is unknown: one initial fetch plus one refetch, then failure.
    assert jwks_route.call_count == 2
    clock.now += 10
    for kid in ("random-1", "random-2"):
        token = sign(id_claims(), other_key, {"alg": "RS256", "kid": kid})
        with pytest.raises(TokenValidationError, match="kid"):
            await client.validate_id_token(token, nonce="n-123")
    assert jwks_route.call_count == 2  # within the 30 s cooldown: no further fetch
    clock.now += 30
    with pytest.raises(TokenValidationError, match="kid"):
        await client.validate_id_token(sign(id_claims(), other_key, K2), nonce="n-123")
    assert jwks_route.call_count == 3


async def test_concurrent_unknown_kids_share_one_refetch(
    client: OidcClient, router: respx.Router, key: RSAKey, other_key: RSAKey
) -> None:
    assert await client.validate_id_token(sign(id_claims(), key), nonce="n-123")

    async def slow_jwks(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)  # hold the refetch open so the other tasks queue behind it
        return httpx.Response(200, json=jwks(key, other_key))

    router.routes["jwks"].mock(side_effect=slow_jwks)
    tokens = [sign(id_claims(), other_key, K2) for _ in range(5)]
    results = await asyncio.gather(*(client.validate_id_token(t, nonce="n-123") for t in tokens))
    assert all(r["sub"] == "user-1" for r in results)
    assert router.routes["jwks"].call_count == 2  # the initial fetch and one shared refetch


async def test_key_rotation(
    client: OidcClient, router: respx.Router, key: RSAKey, other_key: RSAKey
) -> None:
    assert await client.validate_id_token(sign(id_claims(), key), nonce="n-123")
    router.routes["jwks"].respond(200, json=jwks(other_key))
    token = sign(id_claims(), other_key, K2)
    assert (await client.validate_id_token(token, nonce="n-123"))["sub"] == "user-1"
    assert router.routes["jwks"].call_count == 2


async def test_jwks_outage_is_unavailable(
    client: OidcClient, router: respx.Router, key: RSAKey
) -> None:
    router.routes["jwks"].mock(side_effect=[httpx.ConnectError("down")])
    with pytest.raises(IdpUnavailable):
        await client.validate_id_token(sign(id_claims(), key), nonce="n-123")


@pytest.mark.parametrize(
    "response", [httpx.Response(200, text="<html/>"), httpx.Response(200, json={"keys": 1})]
)
async def test_jwks_garbage_is_unavailable(
    client: OidcClient, router: respx.Router, key: RSAKey, response: httpx.Response
) -> None:
    router.routes["jwks"].mock(side_effect=[response])
    with pytest.raises(IdpUnavailable, match="JWKS"):
        await client.validate_id_token(sign(id_claims(), key), nonce="n-123")


async def test_jwks_ignores_encryption_keys(
    client: OidcClient, router: respx.Router, key: RSAKey
) -> None:
    enc = dict(key.as_dict(private=False), use="enc")
    router.routes["jwks"].respond(200, json={"keys": [enc]})
    with pytest.raises(IdpUnavailable, match="no usable signing key"):
        await client.validate_id_token(sign(id_claims(), key), nonce="n-123")


# -- logout token ------------------------------------------------------------------------


def logout_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "iat": int(NOW) - 5,
        "exp": int(NOW) + 115,
        "jti": "jti-1",
        "sid": "idp-session",
        "sub": "user-1",
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def logout_header() -> dict[str, Any]:
    return {"alg": "RS256", "kid": "k1", "typ": "logout+jwt"}


async def test_logout_token_valid(client: OidcClient, key: RSAKey) -> None:
    claims = await client.validate_logout_token(sign(logout_claims(), key, logout_header()))
    assert claims["sid"] == "idp-session"
    assert claims["jti"] == "jti-1"
    only_sub = await client.validate_logout_token(sign(logout_claims(sid=None), key))
    assert only_sub["sub"] == "user-1"


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        ({"aud": "someone-else"}, "aud"),
        ({"iss": "https://evil.example"}, "iss"),
        ({"nonce": "n-123"}, "nonce"),
        ({"events": None}, "events"),
        ({"events": {BACKCHANNEL_LOGOUT_EVENT: "yes"}}, "events"),
        ({"events": {"http://other/event": {}}}, "events"),
        ({"sid": None, "sub": None}, "neither sid nor sub"),
        ({"iat": int(NOW) - 301}, "iat is too old"),
        ({"iat": int(NOW) + 120}, "iat is in the future"),
        ({"iat": None}, "iat missing"),
        ({"jti": None}, "jti"),
        ({"exp": int(NOW) - 120}, "exp"),
    ],
)
async def test_logout_token_rules(
    client: OidcClient, key: RSAKey, overrides: dict[str, Any], rule: str
) -> None:
    with pytest.raises(TokenValidationError, match=rule):
        await client.validate_logout_token(sign(logout_claims(**overrides), key, logout_header()))


async def test_logout_token_bad_signature(client: OidcClient, other_key: RSAKey) -> None:
    with pytest.raises(TokenValidationError, match="signature"):
        await client.validate_logout_token(sign(logout_claims(), other_key, logout_header()))


async def test_errors_never_leak_into_logs(
    client: OidcClient, router: respx.Router, key: RSAKey, caplog: pytest.LogCaptureFixture
) -> None:
    """Drive success and failure paths with DEBUG logging on; the autouse fixture checks."""
    router.post(TOKEN_URI).mock(
        side_effect=[
            httpx.Response(200, json=token_answer(refresh_token=REFRESH)),
            httpx.Response(400, json={"error": "invalid_grant"}),
            httpx.Response(500),
        ]
    )
    router.post(REVOKE_URI).respond(503)
    await client.exchange_code(code=CODE, code_verifier=VERIFIER)
    with pytest.raises(IdpRejected):
        await client.refresh(REFRESH)
    with pytest.raises(IdpUnavailable):
        await client.refresh(REFRESH)
    with pytest.raises(IdpUnavailable):
        await client.revoke(REFRESH)
    with pytest.raises(TokenValidationError):
        await client.validate_id_token(sign(id_claims(nonce="x"), key), nonce="n-123")
    assert caplog.records  # logging was really captured (httpx logs each request)
