"""A provider shaped with respx for unit tests of the flows: discovery, JWKS, token,
revocation and end-session answers, plus an RSA key to sign ID tokens. Optionally it
authenticates the client by `private_key_jwt` (`client_jwks`) and issues DPoP-bound
tokens (`dpop`), verifying assertions and proofs as a provider does.

The token endpoint answers the code, refresh-token, client-credentials and RFC 8693
token-exchange grants (each client-authenticated); an access token names what it was
minted for (`resource`, or `client` / `exchanged`), so a test can tell which one reached
an upstream."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import respx
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.dpop_verifier import ProofChecker, verify_client_assertion

ISSUER = "https://idp.test"
CLIENT_ID = "spa-bff"
CLIENT_SECRET = "client-secret-value-123"
SECRET_KEY = "test-secret-key-that-is-long-enough-0123456789"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


class Clock:
    """An injected clock that tests move forward instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class FakeIdp:
    """respx routes for one provider. `tokens` decides what the token endpoint answers."""

    def __init__(
        self,
        *,
        iss_param: bool = True,
        revocation: bool = True,
        par: bool = False,
        clock: Any = time.time,
        issuer: str = ISSUER,  # another: a second provider beside the first
        client_id: str = CLIENT_ID,
        client_jwks: dict[str, Any] | None = None,
        dpop: bool = False,
    ) -> None:
        self.issuer, self.client_id = issuer, client_id
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})
        self.clock = clock
        self.router = respx.Router(assert_all_called=False)
        self.discovery: dict[str, Any] = {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "jwks_uri": f"{issuer}/jwks",
            "end_session_endpoint": f"{issuer}/end_session",
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "authorization_response_iss_parameter_supported": iss_param,
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "grant_types_supported": [
                "authorization_code",
                "refresh_token",
                "client_credentials",
                TOKEN_EXCHANGE,
            ],
        }
        if revocation:
            self.discovery["revocation_endpoint"] = f"{issuer}/revoke"
        if par:
            self.discovery["pushed_authorization_request_endpoint"] = f"{issuer}/par"
        self.token_requests: list[dict[str, list[str]]] = []
        self.par_requests: list[dict[str, list[str]]] = []
        self.revocations: list[dict[str, list[str]]] = []
        self.next_nonce: str | None = None
        self.token_status = 200
        self.token_body: Any = None  # override the answer
        self.id_claims: dict[str, Any] = {}
        self.revoke_status = 200
        self.token_delay = 0.0  # seconds the token endpoint takes
        self.refresh_grants = 0
        self.reused_refresh_tokens: list[str] = []
        self.live_refresh: set[str] = set()
        self.refresh_error: str | None = None  # answer refresh grants with this OAuth error
        self.access_ttl = 300
        self.client_grants = 0  # client_credentials grants answered
        self.exchanges = 0  # token-exchange grants answered
        # private_key_jwt: the client's public keys; every call must carry an assertion.
        self.client_jwks = client_jwks
        self.assertions: list[dict[str, Any]] = []
        self._assertion_jtis: set[str] = set()
        # DPoP: proofs verified on the token endpoint; tokens bound to the proof's key.
        self.dpop = dpop
        self.dpop_nonce: str | None = None  # when set, proofs must carry it
        self.proofs = ProofChecker()
        self.bound: dict[str, str] = {}  # access or refresh token -> jkt
        if client_jwks is not None:
            self.discovery["token_endpoint_auth_methods_supported"] = ["private_key_jwt"]
        if dpop:
            self.discovery["dpop_signing_alg_values_supported"] = ["ES256"]
        self.router.get(f"{issuer}/.well-known/openid-configuration").mock(
            side_effect=lambda r: httpx.Response(200, json=self.discovery)
        )
        self.router.get(f"{issuer}/jwks").mock(
            side_effect=lambda r: httpx.Response(
                200, json={"keys": [self.key.as_dict(private=False)]}
            )
        )
        self.router.post(f"{issuer}/token").mock(side_effect=self._token)
        self.router.post(f"{issuer}/revoke").mock(side_effect=self._revoke)
        self.router.post(f"{issuer}/par").mock(side_effect=self._par)

    def http(self) -> httpx.AsyncClient:
        async def handler(request: httpx.Request) -> httpx.Response:
            if request.url.path == "/token" and self.token_delay:
                await asyncio.sleep(self.token_delay)
            return self.router.handler(request)

        return httpx.AsyncClient(transport=httpx.MockTransport(handler))

    def sign(self, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        return jwt.encode(header or {"alg": "RS256", "kid": "k1"}, claims, self.key)

    def id_token(self, nonce: str | None, **extra: Any) -> str:
        now = int(self.clock())
        claims = {
            "iss": self.issuer,
            "sub": "alice",
            "aud": self.client_id,
            "exp": now + 300,
            "iat": now,
            "sid": "idp-sid-1",
            "name": "Alice",
            "email": "alice@example.com",
        }
        if nonce is not None:
            claims["nonce"] = nonce
        claims.update(extra)
        return self.sign(claims)

    def _client_refused(self, form: dict[str, list[str]]) -> httpx.Response | None:
        if self.client_jwks is None:
            return None
        try:
            claims = verify_client_assertion(
                form,
                jwks=self.client_jwks,
                client_id=self.client_id,
                audience=self.issuer,
                now=self.clock(),
                seen=self._assertion_jtis,
            )
        except (ValueError, KeyError) as exc:
            return httpx.Response(
                401, json={"error": "invalid_client", "error_description": str(exc)}
            )
        self.assertions.append(claims)
        return None

    def _proof_refused(self, request: httpx.Request) -> tuple[str | None, httpx.Response | None]:
        """(the proof's jkt, or the answer refusing it) for a token request."""
        proof = request.headers.get("dpop")
        if not self.dpop or proof is None:
            return None, None
        nonce = {"DPoP-Nonce": self.dpop_nonce} if self.dpop_nonce else {}
        try:
            jkt = self.proofs.verify(
                proof, htm="POST", htu=str(request.url), now=self.clock(), nonce=self.dpop_nonce
            )
        except ValueError as exc:
            error = "use_dpop_nonce" if str(exc) == "use_dpop_nonce" else "invalid_dpop_proof"
            return None, httpx.Response(400, json={"error": error}, headers=nonce)
        return jkt, None

    def _par(self, request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode())
        self.par_requests.append(form)
        refused = self._client_refused(form) or self._proof_refused(request)[1]
        if refused is not None:
            return refused
        return httpx.Response(201, json={"request_uri": "urn:par:1", "expires_in": 60})

    def _token(self, request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode())
        self.token_requests.append(form)
        refused = self._client_refused(form)
        if refused is not None:
            return refused
        jkt, refused = self._proof_refused(request)
        if refused is not None:
            return refused
        presented = form.get("refresh_token", [""])[0]
        if presented in self.bound and self.bound[presented] != jkt:
            return httpx.Response(400, json={"error": "invalid_grant"})  # bound elsewhere
        if self.token_body is not None:
            body = self.token_body
            if isinstance(body, (bytes, str)):
                return httpx.Response(self.token_status, content=body)
            return httpx.Response(self.token_status, json=body)
        n = len(self.token_requests)
        grant = form.get("grant_type", [""])[0]
        if grant in ("client_credentials", TOKEN_EXCHANGE):
            return self._other_grant(grant, form, n)
        resource = form.get("resource", [None])[-1]
        body = {
            "access_token": f"access-token-{n}-XYZ" if resource is None else _named(resource, n),
            "token_type": "Bearer",
            "expires_in": self.access_ttl,
            "refresh_token": f"refresh-token-{n}-XYZ",
            "scope": "openid profile email offline_access",
        }
        if form.get("grant_type") == ["refresh_token"]:
            self.refresh_grants += 1
            if self.refresh_error:
                return httpx.Response(400, json={"error": self.refresh_error})
            presented = form.get("refresh_token", [""])[0]
            if presented not in self.live_refresh:  # rotated away: reuse detected
                self.reused_refresh_tokens.append(presented)
                self.live_refresh.clear()  # like real providers: the whole family dies
                return httpx.Response(400, json={"error": "invalid_grant"})
            self.live_refresh.discard(presented)
        else:
            body["id_token"] = self.id_token(self.next_nonce, **self.id_claims)
        self.live_refresh.add(body["refresh_token"])
        if jkt is not None:
            body["token_type"] = "DPoP"
            self.bound[body["access_token"]] = self.bound[body["refresh_token"]] = jkt
        return httpx.Response(200, json=body)

    def _other_grant(self, grant: str, form: dict[str, list[str]], n: int) -> httpx.Response:
        if grant == "client_credentials":
            self.client_grants += 1
            kind = "client"
        else:
            self.exchanges += 1
            if form.get("subject_token_type") != ["urn:ietf:params:oauth:token-type:access_token"]:
                return httpx.Response(400, json={"error": "invalid_request"})
            kind = "exchanged"
        resource = form.get("resource", ["any"])[-1]
        body = {
            "access_token": f"{kind}-{_slug(resource)}-{n}",
            "token_type": "Bearer",
            "expires_in": self.access_ttl,
        }
        if grant == TOKEN_EXCHANGE:
            body["issued_token_type"] = "urn:ietf:params:oauth:token-type:access_token"
        return httpx.Response(200, json=body)

    def _revoke(self, request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode())
        self.revocations.append(form)
        refused = self._client_refused(form)
        if refused is not None:
            return refused
        return httpx.Response(self.revoke_status)


def _slug(resource: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in resource.rstrip("/").rpartition("/")[2])


def _named(resource: str, n: int) -> str:
    """An access token narrowed to `resource` by a refresh grant."""
    return f"access-{_slug(resource)}-{n}"


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def dumps(value: Any) -> str:
    return json.dumps(value)
