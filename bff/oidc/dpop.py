"""DPoP (RFC 9449) rules: the proof JWT (`typ: dpop+jwt`, the public `jwk` in its
header; `htm`, `htu`, `iat`, `jti`, and `nonce` / `ath` when they apply), the key's
thumbprint (`dpop_jkt`, `cnf.jkt`), the `ath` hash of an access token, the `htu` of a
URL, how a session keeps its key (a private JWK as text), and what a `use_dpop_nonce`
answer looks like. Pure: the key, the time and the `jti` are parameters.
"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import urlsplit, urlunsplit

from cryptography.hazmat.primitives.asymmetric import ec
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
    return _b64(hashlib.sha256(access_token.encode("ascii")).digest())


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
    """The private scalar `d` (43 characters), the form a session record keeps
    (encrypted): the public half follows from it."""
    if key.get("crv") != "P-256" or not key.is_private:
        raise ValueError("not a private P-256 key")
    return str(key.as_dict(private=True)["d"])


def key_from_text(text: str) -> ECKey:
    """The inverse of `key_to_text`; ValueError when it is not a P-256 private scalar."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        if len(raw) != 32:
            raise ValueError("not 32 bytes")
        private = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
        raise ValueError(f"not a DPoP key ({type(exc).__name__})") from None
    return ECKey.import_key(private)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def is_nonce_challenge(status: int, www_authenticate: str, error: str | None) -> bool:
    """The provider (400 with `error: use_dpop_nonce`) or a resource server (401 with
    `WWW-Authenticate: DPoP error="use_dpop_nonce"`) asks for a proof with its nonce."""
    if status == 400 and error == "use_dpop_nonce":
        return True
    return status == 401 and "use_dpop_nonce" in www_authenticate
