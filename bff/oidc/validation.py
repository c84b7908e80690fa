"""JWS / JWT rules for ID tokens (OIDC Core 3.1.3.7) and logout tokens (Back-Channel Logout 1.0).

No I/O and no clock: the caller fetches the JWKS and passes the current time. Every
failure is a `TokenValidationError` whose message names the rule, never the token.
Signatures are checked with joserfc (authlib.jose is deprecated).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import math
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import Key, KeySet

from bff.errors import IdpUnavailable, TokenValidationError

log = logging.getLogger("bff.oidc")

__all__ = [
    "BACKCHANNEL_LOGOUT_EVENT",
    "LEEWAY",
    "LOGOUT_TOKEN_MAX_AGE",
    "MAX_JWT_LENGTH",
    "SUPPORTED_ALGS",
    "JwksCache",
    "JwsHeader",
    "check_id_token_claims",
    "check_logout_token_claims",
    "parse_header",
    "parse_jwks",
    "select_key",
    "verify_signature",
]

MAX_JWT_LENGTH = 64 * 1024  # a hostile provider must not make us parse megabytes
LEEWAY = 60  # seconds of clock skew tolerated on exp / iat / nbf
LOGOUT_TOKEN_MAX_AGE = 300  # a logout token older than this is refused (replay window)
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"

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


def _fail(rule: str) -> TokenValidationError:
    return TokenValidationError(rule)


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
        raise _fail("token missing")
    if len(token) > MAX_JWT_LENGTH:
        raise _fail(f"token larger than {MAX_JWT_LENGTH} bytes")
    if not token.isascii():
        raise _fail("token is not a compact JWS")
    parts = token.split(".")
    if len(parts) != 3:
        # Five parts would be JWE: encrypted ID tokens are not supported.
        raise _fail("token is not a compact JWS")
    header = _b64url_json(parts[0])
    if not isinstance(header, dict):
        raise _fail("token header is malformed")
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise _fail("alg missing")
    if alg.lower() == "none" or alg.upper().startswith("HS"):
        raise _fail(f"alg {alg[:16]!r} is never accepted")
    if alg not in allowed_algs or alg not in SUPPORTED_ALGS:
        raise _fail(f"alg {alg[:16]!r} is not one the provider advertises")
    if "crit" in header:
        # We implement no JWS extension, so every critical header is unknown to us.
        raise _fail("crit header names an unsupported extension")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise _fail("kid is malformed")
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
        raise _fail("signature does not verify") from None
    except (JoseError, ValueError, TypeError, RecursionError) as exc:
        raise _fail(f"token is malformed ({type(exc).__name__})") from None
    return dict(decoded.claims)


def _number(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise _fail(f"{name} missing")
        return None
    # bool is an int, and json.loads accepts NaN / Infinity: neither is a time.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(f"{name} is not a number")
    return float(value)


def _check_common(
    claims: Mapping[str, Any], *, issuer: str, client_id: str, now: float, require_exp: bool
) -> None:
    if claims.get("iss") != issuer:
        raise _fail("iss does not match the issuer")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise _fail("aud missing or malformed")
    if client_id not in audiences:
        raise _fail("aud does not include this client")
    azp = claims.get("azp")
    if azp is not None and azp != client_id:
        raise _fail("azp is not this client")
    exp = _number(claims, "exp", required=require_exp)
    if exp is not None and exp + LEEWAY <= now:
        raise _fail("exp has passed")
    iat = _number(claims, "iat", required=True)
    if iat is not None and iat - LEEWAY > now:
        raise _fail("iat is in the future")
    nbf = _number(claims, "nbf", required=False)
    if nbf is not None and nbf - LEEWAY > now:
        raise _fail("nbf is in the future")
    sub = claims.get("sub")
    if sub is not None and (not isinstance(sub, str) or not sub):
        raise _fail("sub is malformed")


def check_id_token_claims(
    claims: Mapping[str, Any], *, issuer: str, client_id: str, nonce: str, now: float
) -> None:
    """OIDC Core 3.1.3.7 steps 2-5, 9-11 for an already signature-checked ID token."""
    _check_common(claims, issuer=issuer, client_id=client_id, now=now, require_exp=True)
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") is None:
        raise _fail("azp is required when aud has several audiences")
    if not isinstance(claims.get("sub"), str):
        raise _fail("sub missing")
    got = claims.get("nonce")
    if not isinstance(got, str) or not got:
        raise _fail("nonce missing")
    if not nonce or not hmac.compare_digest(got.encode(), nonce.encode()):
        raise _fail("nonce does not match")


def check_logout_token_claims(
    claims: Mapping[str, Any], *, issuer: str, client_id: str, now: float
) -> None:
    """Back-Channel Logout 1.0 §2.6 steps 3-8 (the `jti` replay check is the caller's)."""
    _check_common(claims, issuer=issuer, client_id=client_id, now=now, require_exp=True)
    iat = _number(claims, "iat", required=True)
    if iat is not None and now - iat > LOGOUT_TOKEN_MAX_AGE:
        raise _fail("iat is too old")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise _fail("jti missing")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
        raise _fail("events lacks the back-channel logout event")
    sid = claims.get("sid")
    if sid is not None and (not isinstance(sid, str) or not sid):
        raise _fail("sid is malformed")
    if sid is None and claims.get("sub") is None:
        raise _fail("neither sid nor sub present")
    if "nonce" in claims:
        # A nonce marks an ID token: refusing it stops an ID token posing as a logout token.
        raise _fail("nonce must not be present")


class JwksCache:
    """The provider's signing keys: fetched on first use, refetched when older than
    `max_age` (so a key the provider withdrew stops verifying), and refetched on an
    unknown `kid` at most once per `cooldown` seconds (so tokens with random kids cannot
    make us hammer the provider). `fetch` returns the JWKS document or raises IdpError.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[Any]],
        *,
        clock: Callable[[], float],
        cooldown: float,
        max_age: float,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._cooldown = cooldown
        self._max_age = max_age
        self._lock = asyncio.Lock()
        self._keys: tuple[Key, ...] | None = None
        self._loaded_at = 0.0
        self._last_unknown_kid_refetch: float | None = None

    async def verify(self, token: str, *, allowed_algs: Collection[str]) -> dict[str, Any]:
        """Header rules, key lookup and signature; returns the (unchecked) claims."""
        header = parse_header(token, allowed_algs=allowed_algs)
        keys = await self._current()
        key = select_key(keys, header)
        if key is None:
            key = select_key(await self._refetch_for_unknown_kid(seen=keys), header)
        if key is None:
            raise _fail("no JWKS key matches the token's kid and alg")
        return verify_signature(token, key, header)

    def _fresh(self) -> tuple[Key, ...] | None:
        if self._keys is not None and self._clock() - self._loaded_at < self._max_age:
            return self._keys
        return None

    async def _current(self) -> tuple[Key, ...]:
        keys = self._fresh()
        if keys is not None:
            return keys
        async with self._lock:  # one fetch however many logins wait for it
            return self._fresh() or await self._load()

    async def _refetch_for_unknown_kid(self, *, seen: tuple[Key, ...]) -> tuple[Key, ...]:
        async with self._lock:
            if self._keys is not None and self._keys is not seen:
                return self._keys  # another task refetched while we waited
            now = self._clock()
            last = self._last_unknown_kid_refetch
            if last is not None and now - last < self._cooldown:
                return seen
            self._last_unknown_kid_refetch = now
            log.info("token names an unknown kid: refetching the provider's JWKS")
            return await self._load()

    async def _load(self) -> tuple[Key, ...]:
        doc = await self._fetch()
        try:
            keys = parse_jwks(doc)
        except ValueError as exc:  # our own message, naming what is missing
            raise IdpUnavailable(f"JWKS unusable: {exc}") from None
        self._keys, self._loaded_at = keys, self._clock()
        return keys
