"""JWS rules: the size, shape and protected header of a compact JWS, the signing keys of
a JWKS document, the key a header names, and the signature check (joserfc; authlib.jose
is deprecated). Pure: the caller fetches the JWKS. Every failure is a
`TokenValidationError` whose message names the rule, never the token.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import Key, KeySet

from bff.errors import TokenValidationError

__all__ = [
    "MAX_JWT_LENGTH",
    "SUPPORTED_ALGS",
    "JwsHeader",
    "parse_header",
    "parse_jwks",
    "select_key",
    "verify_signature",
]

MAX_JWT_LENGTH = 64 * 1024  # a hostile provider must not make us parse megabytes

# Asymmetric algorithms only: "none" and HMAC can never verify a provider's token here
# (HS256 keyed by the provider's public key is authlib CVE-2024-37568). "EdDSA" is left
# out because joserfc flags it deprecated (RFC 9864) and warnings are errors; Ed25519 and
# Ed448 are its fully-specified replacements.
SUPPORTED_ALGS = frozenset(
    {
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
        "ES256", "ES384", "ES512", "ES256K", "Ed25519", "Ed448",
    }
)  # fmt: skip
_ASYMMETRIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})


class _Registry(jws.JWSRegistry):
    # joserfc's default 512-byte header cap refuses legitimate headers carrying x5c;
    # the overall size is already capped by MAX_JWT_LENGTH.
    max_header_length = 8 * 1024
    max_payload_length = MAX_JWT_LENGTH
    max_signature_length = 2048


@dataclass(frozen=True, slots=True)
class JwsHeader:
    alg: str
    kid: str | None


def _b64url_json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.encode("ascii"))
        return json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: deeply nested JSON (`[[[[…`) is malformed input, never a 500.
        return None


def parse_header(token: str, *, allowed_algs: Collection[str]) -> JwsHeader:
    """Check size, shape and the protected header before any key is looked at."""
    if not isinstance(token, str) or not token:
        raise TokenValidationError("token missing")
    if len(token) > MAX_JWT_LENGTH:
        raise TokenValidationError(f"token larger than {MAX_JWT_LENGTH} bytes")
    if not token.isascii():
        raise TokenValidationError("token is not a compact JWS")
    parts = token.split(".")
    if len(parts) != 3:
        # Five parts would be JWE: encrypted ID tokens are not supported.
        raise TokenValidationError("token is not a compact JWS")
    header = _b64url_json(parts[0])
    if not isinstance(header, dict):
        raise TokenValidationError("token header is malformed")
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise TokenValidationError("alg missing")
    if alg.lower() == "none" or alg.upper().startswith("HS"):
        raise TokenValidationError(f"alg {alg[:16]!r} is never accepted")
    if alg not in allowed_algs or alg not in SUPPORTED_ALGS:
        raise TokenValidationError(f"alg {alg[:16]!r} is not one the provider advertises")
    if "crit" in header:
        # We implement no JWS extension, so every critical header is unknown to us.
        raise TokenValidationError("crit header names an unsupported extension")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise TokenValidationError("kid is malformed")
    return JwsHeader(alg=alg, kid=kid)


def parse_jwks(doc: Any) -> tuple[Key, ...]:
    """The signing keys of a JWKS document; raises ValueError when there are none.

    Keys for another `use`, symmetric keys and keys joserfc cannot import are skipped,
    so one odd key does not take the whole set down.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError("JWKS has no keys array")
    keys: list[Key] = []
    for entry in doc["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        if entry.get("kty") not in _ASYMMETRIC_KEY_TYPES:
            continue
        try:
            keys.extend(KeySet.import_key_set({"keys": [entry]}).keys)
        except (JoseError, ValueError, TypeError, KeyError):
            continue
    if not keys:
        raise ValueError("JWKS has no usable signing key")
    return tuple(keys)


def select_key(keys: Iterable[Key], header: JwsHeader) -> Key | None:
    """The key named by `kid` that fits `alg`; without a kid, the only key that fits."""
    key_type = jws.JWSRegistry.algorithms[header.alg].key_type
    fitting = [
        key
        for key in keys
        if key.key_type == key_type
        and key.alg in (None, header.alg)
        and (header.kid is None or key.kid == header.kid)
    ]
    if header.kid is None and len(fitting) != 1:
        return None  # OIDC Core 10.1: a kid is required when several keys could apply
    return fitting[0] if fitting else None


def verify_signature(token: str, key: Key, header: JwsHeader) -> dict[str, Any]:
    """Verify the signature with exactly `key` and `header.alg`; return the claims."""
    registry = _Registry(algorithms=[header.alg], strict_check_header=False)
    try:
        decoded = jwt.decode(token, key, registry=registry)
    except BadSignatureError:
        raise TokenValidationError("signature does not verify") from None
    except (JoseError, ValueError, TypeError, RecursionError) as exc:
        raise TokenValidationError(f"token is malformed ({type(exc).__name__})") from None
    return dict(decoded.claims)
