"""DPoP (RFC 9449) rules: the proof JWT (`typ: dpop+jwt`, the public `jwk` in its
header; `htm`, `htu`, `iat`, `jti`, and `nonce` / `ath` when they apply), the key's
thumbprint (`dpop_jkt`, `cnf.jkt`), the `ath` hash of an access token, the `htu` of a
URL, how a session keeps its key (a private JWK as text), and what a `use_dpop_nonce`
answer looks like. Pure: the key, the time and the `jti` are parameters.
"""

from __future__ import annotations

import base64
import hashlib
import json
from urllib.parse import urlsplit, urlunsplit

from joserfc import jwt
from joserfc.jwk import ECKey

__all__ = [
    "DPOP_ALG",
    "access_token_hash",
    "dpop_proof",
    "htu_of",
    "is_nonce_challenge",
    "key_from_text",
    "key_to_text",
    "thumbprint",
]

DPOP_ALG = "ES256"  # the per-session key is EC P-256


def htu_of(url: str) -> str:
    """The `htu` claim: the request URL without query and fragment (RFC 9449 §4.2)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def access_token_hash(access_token: str) -> str:
    """`ath`: base64url(SHA-256(the ASCII access token)), unpadded."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def thumbprint(key: ECKey) -> str:
    """The RFC 7638 SHA-256 thumbprint of the public key (`dpop_jkt`, `cnf.jkt`)."""
    return str(key.thumbprint())


def dpop_proof(
    key: ECKey,
    *,
    htm: str,
    htu: str,
    iat: float,
    jti: str,
    nonce: str | None = None,
    access_token: str | None = None,
) -> str:
    """One proof for one request (RFC 9449 §4.2); `access_token` adds its `ath`."""
    header = {"typ": "dpop+jwt", "alg": DPOP_ALG, "jwk": key.as_dict(private=False)}
    claims: dict[str, object] = {"htm": htm, "htu": htu_of(htu), "iat": int(iat), "jti": jti}
    if nonce is not None:
        claims["nonce"] = nonce
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    return jwt.encode(header, claims, key, algorithms=[DPOP_ALG])


def key_to_text(key: ECKey) -> str:
    """The private key as a compact JWK, the form a session record keeps (encrypted)."""
    return json.dumps(key.as_dict(private=True), separators=(",", ":"), sort_keys=True)


def key_from_text(text: str) -> ECKey:
    """The inverse of `key_to_text`; ValueError when it is not a private P-256 key."""
    try:
        key = ECKey.import_key(json.loads(text))
    except Exception as exc:  # joserfc raises several types for malformed keys
        raise ValueError(f"not a DPoP key ({type(exc).__name__})") from None
    if not key.is_private or key.get("crv") != "P-256":
        raise ValueError("not a private P-256 key")
    return key


def is_nonce_challenge(status: int, www_authenticate: str, error: str | None) -> bool:
    """The provider (400 with `error: use_dpop_nonce`) or a resource server (401 with
    `WWW-Authenticate: DPoP error="use_dpop_nonce"`) asks for a proof with its nonce."""
    if status == 400 and error == "use_dpop_nonce":
        return True
    return status == 401 and "use_dpop_nonce" in www_authenticate
