"""The tables of session record format 2 (`bff.session.codec`): member names and what the
preset dictionary is made of. Pure data. Part of the format: a change needs a new record
version (a test pins them), or older records would decode differently."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["AT", "KEYS", "RND", "RND32", "SCOPE", "SID", "TEMPLATES", "ZDICT_TEXT", "T"]

# Header parameters and claim names of JOSE, OIDC Core, RFC 9068 and the big providers.
KEYS: tuple[str, ...] = (
    "alg", "kid", "typ", "cty", "crit", "jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256",
    "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "auth_time", "nonce", "acr", "amr",
    "azp", "sid", "at_hash", "c_hash", "s_hash", "scope", "scp", "client_id", "cid", "uid",
    "name", "given_name", "family_name", "middle_name", "nickname", "preferred_username",
    "profile", "picture", "website", "email", "email_verified", "gender", "birthdate",
    "zoneinfo", "locale", "phone_number", "phone_number_verified", "address", "updated_at",
    "roles", "groups", "permissions", "realm_access", "resource_access", "allowed-origins",
    "session_state", "act", "cnf", "events", "org_id", "tid", "oid", "upn", "ver", "idp",
    "uti", "rh", "unique_name", "appid", "appidacr", "ipaddr", "wids", "token_use",
    "username", "event_id", "origin_jti", "hd", "ext", "client_ip", "sub_id", "typ_id",
)  # fmt: skip

# Values that recur in tokens and records (the rest of the preset dictionary is built from
# the record templates at the end of this module).
ZDICT_TEXT = "".join(
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML,"
        " like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Gecko/20100101 Firefox/120.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
        " Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
        " Chrome/120.0.0.0 Mobile Safari/537.36",
        "default-roles-manage-account-links,view-profile,uma_authorization,offline_access",
        "urn:ietf:params:oauth:token-type:jwt,pwd,mfa,otp,hwk,swk,sms,",
        "http://schemas.openid.net/event/backchannel-logout",
        "https://login.microsoftonline.com/v2.0,https://accounts.google.com/",
        "@gmail.com,@example.com,@example.test,",
        "ES256,PS256,EdDSA,DPoP,RS256,at+jwt,application/at+jwt,JWT,Bearer,",
        "openid profile email offline_access,python-httpx/,http://localhost:,http://127.0.0.1:",
    )
).encode()


# --- record templates --------------------------------------------------------------
# Deflate matches what a record shares with the dictionary, so the dictionary holds whole
# record bodies (`Writer` output) of the token layouts that common providers issue, with
# made-up values: a record of the same layout then costs little more than its own values.
# Likeliest last (nearer matches cost fewer bits). Pinned by a test: see the module doc.
T = 1_700_000_000  # a time; records differ from it, but their time differences recur
# Stand-ins, replaced when a template is written: `RND` and `RND32` by a fresh random
# value of 16 or 32 bytes each time, `SID` by one per template (the tokens of one login
# share it), `AT` by the at_hash of the template's access token.
RND, RND32, SID, AT = "<16>", "<32>", "<sid>", "<at_hash>"
KID = "4f9e1c2b7a6d3e5f"
SCOPE = "openid profile email offline_access"
RS256_JWT: Mapping[str, str] = MappingProxyType({"alg": "RS256", "typ": "JWT", "kid": KID})
PERSON: Mapping[str, Any] = MappingProxyType(
    {
        "email_verified": True,
        "name": "Jane Doe",
        "preferred_username": "jane",
        "given_name": "Jane",
        "family_name": "Doe",
        "email": "jane@example.com",
    }
)
TEMPLATES: tuple[tuple[tuple[Mapping[str, Any], Mapping[str, Any]], ...], ...] = (
    (  # Keycloak
        (
            RS256_JWT,
            {
                "exp": T + 300, "iat": T, "auth_time": T, "jti": RND, "iss": "https://",
                "aud": "account", "sub": RND, "typ": "Bearer", "azp": "bff", "sid": SID,
                "acr": "1", "allowed-origins": ["https://"],
                "realm_access": {"roles": ["offline_access", "uma_authorization"]},
                "resource_access": {
                    "account": {"roles": ["manage-account", "manage-account-links"]}
                },
                "scope": SCOPE, **PERSON,
            },
        ),
        (
            RS256_JWT,
            {
                "exp": T + 300, "iat": T, "auth_time": T, "jti": RND, "iss": "https://",
                "aud": "bff", "sub": RND, "typ": "ID", "azp": "bff", "nonce": RND32,
                "sid": SID, "at_hash": AT, "acr": "1", **PERSON,
            },
        ),
    ),
    (  # Microsoft Entra ID v2.0
        (
            {"typ": "JWT", "alg": "RS256", "x5t": RND, "kid": RND},
            {
                "aud": RND, "iss": "https://login.microsoftonline.com/v2.0", "iat": T,
                "nbf": T, "exp": T + 3600, "aio": RND, "azp": RND, "azpacr": "1",
                "name": "Jane Doe", "oid": RND, "preferred_username": "jane@example.com",
                "rh": RND, "scp": "openid profile email", "sid": SID, "sub": RND,
                "tid": RND, "uti": RND, "ver": "2.0",
            },
        ),
        (
            {"typ": "JWT", "alg": "RS256", "kid": RND},
            {
                "aud": RND, "iss": "https://login.microsoftonline.com/v2.0", "iat": T,
                "nbf": T, "exp": T + 3600, "name": "Jane Doe", "nonce": RND32, "oid": RND,
                "preferred_username": "jane@example.com", "rh": RND, "sid": SID,
                "sub": RND, "tid": RND, "uti": RND, "ver": "2.0",
            },
        ),
    ),
    (  # Auth0, Okta, Google (ID token)
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
                "ver": 1, "jti": RND, "iss": "https://", "aud": "api://default", "iat": T,
                "exp": T + 3600, "cid": RND, "uid": RND, "scp": ["openid", "profile"],
                "auth_time": T, "sub": "jane@example.com",
            },
        ),
        (
            {"alg": "RS256", "kid": RND, "typ": "JWT"},
            {
                "iss": "https://accounts.google.com", "azp": RND, "aud": RND, "sub": "1",
                "email": "jane@gmail.com", "email_verified": True, "at_hash": AT,
                "nonce": RND32, "name": "Jane Doe", "picture": "https://", "given_name": "Jane",
                "family_name": "Doe", "iat": T, "exp": T + 3600,
            },
        ),
    ),
    (  # authlib-based servers (also the development provider): RFC 9068 access token
        (
            {"typ": "at+jwt", "alg": "RS256", "kid": KID},
            {
                "iss": "http://127.0.0.1:", "sub": "jane", "aud": "bff", "exp": T + 3600,
                "iat": T, "jti": RND, "scope": SCOPE, "client_id": "bff", "sid": SID,
                "auth_time": T,
            },
        ),
        (
            {"typ": "JWT", "alg": "RS256", "kid": KID},
            {
                "iss": "http://127.0.0.1:", "aud": "bff", "azp": "bff", "exp": T + 300,
                "iat": T, "auth_time": T, "nonce": RND32, "at_hash": AT,
                "sub": "jane", "sid": SID, "name": "Jane", "preferred_username": "jane",
                "email": "jane@example.test", "email_verified": True,
            },
        ),
    ),
)  # fmt: skip
