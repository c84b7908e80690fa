"""`private_key_jwt` client authentication (RFC 7523 §2.2, OIDC Core §9): the client's
signing key as read from its file (a PEM private key or a private JWK with its `kid`),
and the signed client assertion that replaces a client secret on every call to the
provider. Pure: the caller reads the file and passes the time and the `jti`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, JWKRegistry, RSAKey

__all__ = [
    "ASSERTION_TYPE",
    "ClientKey",
    "client_assertion",
    "parse_client_key",
]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 60  # seconds: one request's worth, replay is bounded by the jti too
_EC_ALGS = MappingProxyType({"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"})
_RSA_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})


@dataclass(frozen=True, slots=True)
class ClientKey:
    """A private signing key, its `kid` and the algorithm it signs with."""

    key: RSAKey | ECKey
    kid: str
    alg: str

    def __repr__(self) -> str:  # never the private key
        return f"ClientKey(kid={self.kid!r}, alg={self.alg!r})"


def parse_client_key(text: str) -> ClientKey:
    """The key in `text`: a private JWK (JSON, `kid` required) or a PEM private key (its
    `kid` is then its RFC 7638 thumbprint, the name a JWKS made from it carries).
    ValueError says what is wrong, never the key."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
        except ValueError:
            raise ValueError("not valid JSON (a JWK) nor a PEM key") from None
        if not isinstance(doc, dict):
            raise ValueError("a JWK must be a JSON object")
        kid = doc.get("kid")
        if not isinstance(kid, str) or not kid:
            raise ValueError("the JWK has no 'kid'")
        key = _import(doc)
    elif "-----BEGIN" in stripped:
        key = _import(stripped)
        kid = str(key.thumbprint())
    else:
        raise ValueError("neither a JWK (JSON) nor a PEM private key")
    if not key.is_private:
        raise ValueError("a public key: the client signs with its private key")
    return ClientKey(key=key, kid=kid, alg=_alg(key, key.get("alg")))


def _import(value: dict[str, Any] | str) -> RSAKey | ECKey:
    try:
        key = JWKRegistry.import_key(value) if isinstance(value, dict) else _import_pem(value)
    except Exception as exc:  # joserfc / cryptography raise many types for garbage
        raise ValueError(f"unreadable key ({type(exc).__name__})") from None
    if not isinstance(key, (RSAKey, ECKey)):
        raise ValueError("only RSA and EC (P-256/384/521) keys are supported")
    return key


def _import_pem(pem: str) -> RSAKey | ECKey:
    data = pem.encode()
    try:
        return RSAKey.import_key(data)
    except Exception:  # not RSA: try EC below
        return ECKey.import_key(data)


def _alg(key: RSAKey | ECKey, declared: Any) -> str:
    if isinstance(key, ECKey):
        alg = _EC_ALGS.get(str(key.get("crv")))
        if alg is None:
            raise ValueError("EC keys must be on P-256, P-384 or P-521")
        if declared not in (None, alg):
            raise ValueError(f"alg {declared!r} does not fit a {key.get('crv')} key")
        return alg
    if declared is None:
        return "RS256"
    if declared not in _RSA_ALGS:
        raise ValueError(f"alg {declared!r} is not an RSA signature algorithm")
    return str(declared)


def client_assertion(key: ClientKey, *, client_id: str, audience: str, now: float, jti: str) -> str:
    """The signed JWT of RFC 7523 §3: the client is issuer and subject, the provider
    (its issuer identifier) the audience; short-lived and unique."""
    issued = int(now)
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": jti,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME,
    }
    header = {"alg": key.alg, "kid": key.kid, "typ": "JWT"}
    return jwt.encode(header, claims, key.key, algorithms=[key.alg])
