"""OIDC Back-Channel Logout 1.0: a provider-signed logout token ends every matching
session, on every instance, through the store's `sid` / `sub` indexes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from bff.errors import BadRequest, TokenValidationError
from bff.oidc.client import OidcClient
from bff.oidc.validation import LOGOUT_TOKEN_MAX_AGE
from bff.session.service import SessionService

__all__ = ["REPLAY_TTL", "backchannel_logout"]

# A `jti` must be remembered at least as long as its token would still be accepted.
REPLAY_TTL = int(LOGOUT_TOKEN_MAX_AGE) + 120


async def backchannel_logout(
    logout_token: str,
    *,
    oidc: OidcClient,
    sessions: SessionService,
    clock: Callable[[], float],
    client_ip: str | None,
) -> int:
    """Validate (§2.6), refuse a replayed `jti`, delete the sessions; how many ended."""
    try:
        claims = await oidc.validate_logout_token(logout_token)
    except TokenValidationError as exc:
        raise BadRequest(f"invalid logout token: {exc}", code="invalid_request") from None
    # Remembered only once the token is valid, so garbage cannot burn real jti values.
    replay_key = "jti:" + hashlib.sha256(f"{claims['iss']}\0{claims['jti']}".encode()).hexdigest()
    if not await sessions.remember_once(replay_key, ttl=REPLAY_TTL):
        raise BadRequest("logout token already used (jti replayed)", code="invalid_request")
    sid, sub = claims.get("sid"), claims.get("sub")
    if isinstance(sid, str) and sid:
        hashes = await sessions.find(idp_sid=sid)
    else:
        hashes = await sessions.find(sub=str(sub))
    ended = 0
    for session_hash in hashes:
        session = await sessions.load_by_hash(session_hash)
        if session is not None and isinstance(sub, str) and session.sub != sub:
            continue  # both given: both must match
        if session is not None and isinstance(sid, str) and sid and session.idp_sid != sid:
            continue  # the index matches on a hash tag: the session itself must agree
        if await sessions.end(session_hash, session, "backchannel_logout", client_ip=client_ip):
            ended += 1
    return ended
