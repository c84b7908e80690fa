"""Claim rules for ID tokens (OIDC Core 3.1.3.7) and logout tokens (Back-Channel Logout
1.0), applied to the claims of a token whose signature `bff.oidc.jws` has checked.

Pure: the caller passes the current time. Every failure is a `TokenValidationError`
whose message names the rule, never the token.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Mapping
from typing import Any

from bff.errors import TokenValidationError

__all__ = [
    "BACKCHANNEL_LOGOUT_EVENT",
    "LEEWAY",
    "LOGOUT_TOKEN_MAX_AGE",
    "check_id_token_claims",
    "check_logout_token_claims",
]

LEEWAY = 60  # seconds of clock skew tolerated on exp / iat / nbf
LOGOUT_TOKEN_MAX_AGE = 300  # a logout token older than this is refused (replay window)
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def _fail(rule: str) -> TokenValidationError:
    return TokenValidationError(rule)


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
