"""Tokens the size and shape Keycloak issues, for the session-scale benchmark.

Keycloak (24-26, a realm with the default client scopes) answers a code grant with:
- an access token: RS256 (2048-bit key, `kid` the key's 43-character thumbprint), `typ`
  "Bearer", `aud` "account", the realm and `account` roles, `allowed-origins`, the
  profile and email claims; UUIDs for `jti`, `sub`, `sid` and `session_state`;
- an ID token: RS256, `typ` "ID", `aud` the client, the login's `nonce`, `at_hash`;
- a refresh token: an HS512 JWT (`kid` the realm's HMAC key id, a UUID), `typ`
  "Refresh", `aud` the realm URL, 30 minutes.

`keycloak_template` signs one such set for real (joserfc); `KeycloakTokens.for_user` then
makes the set another user's login would get: that user's UUIDs, times and names, with
signature bytes of the right length (random: nothing verifies these copies, and a
signature is incompressible either way). The sizes land where Keycloak's do: the access
token ~1.3 KB with these claims (the issue's ~930 B is Keycloak's without the profile and
role claims), the ID token ~1.1 KB, the refresh token ~750 B.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import uuid
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

__all__ = ["KeycloakTokens", "keycloak_claims", "keycloak_template"]

REALM_URL = "https://sso.example.com/realms/example"
CLIENT_ID = "bff"
ORIGIN = "https://app.example.com"
SCOPE = "openid profile email"
ACCESS_LIFETIME, REFRESH_LIFETIME = 300, 1800
_FIRST = ("Jane", "John", "Maria", "Ahmed", "Wei", "Olga", "Lucas", "Aiko", "Noah", "Fatima")
_LAST = ("Doe", "Smith", "Garcia", "Khan", "Zhang", "Ivanova", "Silva", "Tanaka", "Brown", "Ali")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segment(value: dict[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode())


def keycloak_claims(
    user: int, *, now: int, nonce: str, rng: random.Random
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(access, ID, refresh) token claims of user number `user`, in Keycloak's order."""

    def uid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    sub, sid = uid(), uid()
    first, last = _FIRST[user % len(_FIRST)], _LAST[user // len(_FIRST) % len(_LAST)]
    username = f"{first}.{last}{user}".lower()
    person = {
        "email_verified": True,
        "name": f"{first} {last}",
        "preferred_username": username,
        "given_name": first,
        "family_name": last,
        "email": f"{username}@example.com",
    }
    common = {"exp": now + ACCESS_LIFETIME, "iat": now, "auth_time": now - rng.randrange(5)}
    access = {
        **common,
        "jti": uid(),
        "iss": REALM_URL,
        "aud": "account",
        "sub": sub,
        "typ": "Bearer",
        "azp": CLIENT_ID,
        "session_state": sid,
        "acr": "1",
        "allowed-origins": [ORIGIN],
        "realm_access": {"roles": ["offline_access", "default-roles-example", "uma_authorization"]},
        "resource_access": {
            "account": {"roles": ["manage-account", "manage-account-links", "view-profile"]}
        },
        "scope": SCOPE,
        "sid": sid,
        **person,
    }
    id_claims = {
        **common,
        "jti": uid(),
        "iss": REALM_URL,
        "aud": CLIENT_ID,
        "sub": sub,
        "typ": "ID",
        "azp": CLIENT_ID,
        "nonce": nonce,
        "session_state": sid,
        "at_hash": "",  # over the access token, filled in once it is serialised
        "acr": "1",
        "sid": sid,
        **person,
    }
    refresh = {
        "exp": now + REFRESH_LIFETIME,
        "iat": now,
        "jti": uid(),
        "iss": REALM_URL,
        "aud": REALM_URL,
        "sub": sub,
        "typ": "Refresh",
        "azp": CLIENT_ID,
        "session_state": sid,
        "scope": SCOPE,
        "sid": sid,
    }
    return access, id_claims, refresh


def _at_hash(access_token: str) -> str:
    return _b64url(hashlib.sha256(access_token.encode("ascii")).digest()[:16])


@dataclass(frozen=True)
class KeycloakTokens:
    """One realm's keys: the RS256 signing key's `kid` and the HS512 key's."""

    rsa_kid: str
    hmac_kid: str

    @classmethod
    def realm(cls, seed: int = 0) -> KeycloakTokens:
        rng = random.Random(seed)
        return cls(
            rsa_kid=_b64url(rng.randbytes(32)),
            hmac_kid=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        )

    def headers(self) -> tuple[dict[str, str], dict[str, str]]:
        """(RS256 header, HS512 header), as Keycloak writes them."""
        return (
            {"alg": "RS256", "typ": "JWT", "kid": self.rsa_kid},
            {"alg": "HS512", "typ": "JWT", "kid": self.hmac_kid},
        )

    def for_user(self, user: int, *, now: int, seed: int = 0) -> tuple[str, str, str]:
        """(access, ID, refresh) token of user number `user` (deterministic per user and
        seed), signature bytes random of RS256's and HS512's lengths."""
        rng = random.Random(f"{seed}/{user}")
        nonce = _b64url(rng.randbytes(32))  # as bff's `new_nonce`
        access, id_claims, refresh = keycloak_claims(user, now=now, nonce=nonce, rng=rng)
        rs256, hs512 = self.headers()
        access_token = f"{_segment(rs256)}.{_segment(access)}.{_b64url(os.urandom(256))}"
        id_claims["at_hash"] = _at_hash(access_token)
        id_token = f"{_segment(rs256)}.{_segment(id_claims)}.{_b64url(os.urandom(256))}"
        refresh_token = f"{_segment(hs512)}.{_segment(refresh)}.{_b64url(os.urandom(64))}"
        return access_token, id_token, refresh_token


def keycloak_template(now: int, user: int = 0) -> tuple[str, str, str]:
    """One set signed for real with joserfc (a 2048-bit RSA key, a 512-bit HMAC key): the
    same sizes `KeycloakTokens.for_user` produces, and proof that the shapes are JWTs a
    library issues and verifies."""
    realm = KeycloakTokens.realm()
    rsa = RSAKey.generate_key(2048, parameters={"kid": realm.rsa_kid})
    hmac = OctKey.generate_key(512, parameters={"kid": realm.hmac_kid})
    rng = random.Random(user)
    access, id_claims, refresh = keycloak_claims(
        user, now=now, nonce=_b64url(rng.randbytes(32)), rng=rng
    )
    rs256, hs512 = realm.headers()
    access_token = jwt.encode(rs256, access, rsa)
    id_claims["at_hash"] = _at_hash(access_token)
    return (
        access_token,
        jwt.encode(rs256, id_claims, rsa),
        jwt.encode(hs512, refresh, hmac, algorithms=["HS512"]),
    )
