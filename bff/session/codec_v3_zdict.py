"""The preset dictionary of record format 3 (`bff.session.codec_v3`). Deflate matches what a
record shares with it, so it holds common strings (format 2's `ZDICT_TEXT`) and whole record
bodies of the token layouts common providers issue, made up from the templates below (the
member names, their order, the values every login repeats), likeliest last. Deterministic
and pinned by a test: a change needs a new record version. Pure."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from bff.session.codec_tables import ZDICT_TEXT
from bff.session.codec_v3_writer import Writer3

__all__ = ["TEMPLATES3", "ZDICT3", "template_tokens"]

T = 1_700_000_000  # a time; records differ from it, but their digits and differences recur
# Stand-ins, replaced when a template is written: RND / RND32 by a fresh base64url value of
# 16 / 32 bytes, UUID by a fresh UUID, SUB and SID by one per template (the tokens of one
# login share them), AT by the at_hash of the template's first token.
RND, RND32, UUID, SUB, SID, AT = "<16>", "<32>", "<uuid>", "<sub>", "<sid>", "<at_hash>"
SCOPE = "openid profile email"
PERSON: Mapping[str, Any] = MappingProxyType(
    {
        "email_verified": True,
        "name": "Jane Doe",
        "preferred_username": "jane.doe",
        "given_name": "Jane",
        "family_name": "Doe",
        "email": "jane.doe@example.com",
    }
)
_REALM = "https://keycloak.example.com/realms/example"
_RS256 = MappingProxyType({"alg": "RS256", "typ": "JWT", "kid": RND32})
_KEYCLOAK_COMMON = MappingProxyType(
    {"exp": T + 300, "iat": T, "auth_time": T, "jti": UUID, "iss": _REALM}
)
# One template: (header, payload) per JWT, then the refresh token (a JWT or None: opaque).
Template = tuple[tuple[tuple[Mapping[str, Any], Mapping[str, Any]], ...], Any]
TEMPLATES3: tuple[Template, ...] = (
    (  # Microsoft Entra ID v2.0
        (
            (
                {"typ": "JWT", "alg": "RS256", "x5t": RND, "kid": RND},
                {
                    "aud": UUID, "iss": "https://login.microsoftonline.com/" + UUID + "/v2.0",
                    "iat": T, "nbf": T, "exp": T + 3600, "aio": RND, "azp": UUID,
                    "azpacr": "1", "name": "Jane Doe", "oid": UUID,
                    "preferred_username": "jane@example.com", "rh": RND,
                    "scp": "openid profile email", "sid": SID, "sub": SUB, "tid": UUID,
                    "uti": RND, "ver": "2.0",
                },
            ),
            (
                {"typ": "JWT", "alg": "RS256", "kid": RND},
                {
                    "aud": UUID, "iss": "https://login.microsoftonline.com/" + UUID + "/v2.0",
                    "iat": T, "nbf": T, "exp": T + 3600, "name": "Jane Doe", "nonce": RND32,
                    "oid": UUID, "preferred_username": "jane@example.com", "rh": RND,
                    "sid": SID, "sub": SUB, "tid": UUID, "uti": RND, "ver": "2.0",
                },
            ),
        ),
        None,
    ),
    (  # Auth0 (access), Okta (access), Google (ID token)
        (
            (
                {"alg": "RS256", "typ": "JWT", "kid": RND},
                {
                    "iss": "https://", "sub": "auth0|", "aud": ["https://", "https://"],
                    "iat": T, "exp": T + 86400, "scope": SCOPE, "azp": RND,
                },
            ),
            (
                {"kid": RND, "alg": "RS256"},
                {
                    "ver": 1, "jti": RND, "iss": "https://", "aud": "api://default",
                    "iat": T, "exp": T + 3600, "cid": RND, "uid": RND,
                    "scp": ["openid", "profile"], "auth_time": T, "sub": "jane@example.com",
                },
            ),
            (
                {"alg": "RS256", "kid": RND, "typ": "JWT"},
                {
                    "iss": "https://accounts.google.com", "azp": RND, "aud": RND, "sub": "1",
                    "email": "jane@gmail.com", "email_verified": True, "at_hash": AT,
                    "nonce": RND32, "name": "Jane Doe", "picture": "https://",
                    "given_name": "Jane", "family_name": "Doe", "iat": T, "exp": T + 3600,
                },
            ),
        ),
        None,
    ),
    (  # Keycloak 21-26, default client scopes: access, ID and (HS512) refresh token
        (
            (
                _RS256,
                {
                    **_KEYCLOAK_COMMON, "aud": "account", "sub": SUB, "typ": "Bearer",
                    "azp": "bff", "session_state": SID, "acr": "1",
                    "allowed-origins": ["https://"],
                    "realm_access": {
                        "roles": ["offline_access", "default-roles-example", "uma_authorization"]
                    },
                    "resource_access": {
                        "account": {
                            "roles": ["manage-account", "manage-account-links", "view-profile"]
                        }
                    },
                    "scope": SCOPE, "sid": SID, **PERSON,
                },
            ),
            (
                _RS256,
                {
                    **_KEYCLOAK_COMMON, "aud": "bff", "sub": SUB, "typ": "ID", "azp": "bff",
                    "nonce": RND32, "session_state": SID, "at_hash": AT, "acr": "1",
                    "sid": SID, **PERSON,
                },
            ),
        ),
        (
            {"alg": "HS512", "typ": "JWT", "kid": UUID},
            {
                "exp": T + 1800, "iat": T, "jti": UUID, "iss": _REALM, "aud": _REALM,
                "sub": SUB, "typ": "Refresh", "azp": "bff", "session_state": SID,
                "scope": SCOPE, "sid": SID,
            },
        ),
    ),
    (  # authlib-based servers: the development provider's RFC 9068 access token (with the
        # ID token's name, for the demo API) and ID token
        (
            (
                {"typ": "at+jwt", "alg": "RS256", "kid": "4f9e1c2b7a6d3e5f"},
                {
                    "iss": "http://127.0.0.1:", "sub": "jane", "aud": "bff-demo", "exp": T + 3600,
                    "iat": T, "jti": RND, "scope": SCOPE + " offline_access",
                    "client_id": "bff-demo", "sid": SID, "auth_time": T, "name": "Jane",
                    "preferred_username": "jane",
                },
            ),
            (
                {"typ": "JWT", "alg": "RS256", "kid": "4f9e1c2b7a6d3e5f"},
                {
                    "iss": "http://127.0.0.1:", "aud": "bff-demo", "azp": "bff-demo",
                    "exp": T + 300, "iat": T, "auth_time": T, "nonce": RND32, "at_hash": AT,
                    "sub": "jane",
                    "sid": SID, "name": "Jane", "preferred_username": "jane",
                    "email": "jane@example.test", "email_verified": True,
                },
            ),
        ),
        None,
    ),
)  # fmt: skip


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _segment(value: Mapping[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode())


def template_tokens(template: Template) -> tuple[list[str], str]:
    """The template's tokens (made-up values, deterministic) and its refresh token."""
    made = itertools.count(1)

    def fresh() -> bytes:
        return hashlib.sha256(b"bff/zdict3\0%d" % next(made)).digest()

    def uuid() -> str:
        h = fresh()[:16].hex()
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"

    per_login = {SUB: uuid(), SID: uuid()}
    first = ""

    def fill(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        if not isinstance(value, str):
            return value
        if value == AT:
            return _b64url(hashlib.sha256(first.encode()).digest()[:16])
        if value in per_login:
            return per_login[value]
        value = value.replace(UUID, uuid()) if UUID in value else value
        if value in (RND, RND32):
            return _b64url(fresh()[: 16 if value == RND else 32])
        return value

    def token(header: Mapping[str, Any], payload: Mapping[str, Any], size: int) -> str:
        return f"{_segment(fill(header))}.{_segment(fill(payload))}.{_b64url(bytes(size))}"

    tokens, refresh = template
    out = []
    for header, payload in tokens:
        out.append(token(header, payload, 256))
        first = first or out[0]
    if refresh is None:
        return out, _b64url(fresh())
    return out, token(refresh[0], refresh[1], 64)


def _template_body(template: Template) -> bytes:
    """A record body as `bff.session.records` writes it: access and ID token, refresh
    token, the rest."""
    tokens, refresh = template_tokens(template)
    out = Writer3()
    for token in tokens[-2:]:  # a record holds two of them: access and ID token
        out.token(token)
    out.token(refresh)
    out.values([T, T + 86400, T + 300, T + 1800, "Bearer", SCOPE, "Mozilla/5.0", "@10.0.0.1"])
    return out.body()


ZDICT3 = ZDICT_TEXT + b"".join(_template_body(t) for t in TEMPLATES3)
