"""The claims of a back-channel logout token (OpenID Connect Back-Channel Logout 1.0)."""

from __future__ import annotations

import uuid
from typing import Any

from tests.fake_idp import CLIENT_ID, ISSUER

__all__ = ["EVENT", "logout_claims"]

EVENT = "http://schemas.openid.net/event/backchannel-logout"


def logout_claims(now: int, **changes: Any) -> dict[str, Any]:
    """A valid logout token's claims for the fake provider, issued at `now` (a fresh `jti`,
    two minutes to live), with `changes` applied: a change to None removes the claim.
    Name the session with `sid=` and / or `sub=`."""
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 120,
        "jti": uuid.uuid4().hex,
        "events": {EVENT: {}},
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}
