"""Token records and expiry arithmetic. Pure: the current time is always a parameter."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["TokenSet", "needs_refresh", "token_set_from_response"]


@dataclass(frozen=True, slots=True)
class TokenSet:
    """The tokens of one session. Token fields never appear in `repr`."""

    access_token: str = field(repr=False)
    expires_at: int | None  # epoch seconds; None when the provider gave no expires_in
    refresh_token: str | None = field(default=None, repr=False)
    id_token: str | None = field(default=None, repr=False)
    token_type: str = "Bearer"
    scope: str | None = None
    refresh_expires_at: int | None = None  # when the provider reports refresh_expires_in

    def merged_with(self, newer: TokenSet) -> TokenSet:
        """The result of a refresh: keep the old refresh token when none is returned, and
        always the ID token validated at login (a refresh's ID token is not validated, and
        is only ever needed as `id_token_hint`)."""
        return replace(
            newer,
            refresh_token=newer.refresh_token or self.refresh_token,
            id_token=self.id_token,
            refresh_expires_at=newer.refresh_expires_at or self.refresh_expires_at,
            scope=newer.scope or self.scope,
        )


def needs_refresh(tokens: TokenSet, *, now: float, skew: int) -> bool:
    """True when the access token expires within `skew` seconds (and can be refreshed)."""
    if tokens.expires_at is None:
        return False
    return tokens.expires_at - skew <= now


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value) or None
    return None


def token_set_from_response(body: dict[str, Any], *, now: float, dpop: bool = False) -> TokenSet:
    """Build a TokenSet from a token endpoint's JSON (RFC 6749 §5.1); with `dpop` (the
    request carried a proof) a `DPoP` token_type is kept, so the token travels upstream
    with proofs (RFC 9449 §5).

    Raises ValueError when the answer is not a usable bearer token response.
    """
    access = body.get("access_token")
    if not isinstance(access, str) or not access or len(access) > 16384:
        raise ValueError("token response has no usable access_token")
    token_type = body.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() not in {"bearer", "dpop"}:
        raise ValueError("token response has an unsupported token_type")
    refresh = body.get("refresh_token")
    if refresh is not None and (not isinstance(refresh, str) or len(refresh) > 16384):
        raise ValueError("token response has a malformed refresh_token")
    id_token = body.get("id_token")
    if id_token is not None and (not isinstance(id_token, str) or len(id_token) > 65536):
        raise ValueError("token response has a malformed id_token")
    scope = body.get("scope")
    expires_in = _positive_int(body.get("expires_in"))
    refresh_in = _positive_int(body.get("refresh_expires_in"))
    return TokenSet(
        access_token=access,
        expires_at=int(now) + expires_in if expires_in else None,
        refresh_token=refresh or None,
        id_token=id_token,
        token_type="DPoP" if dpop and token_type.lower() == "dpop" else "Bearer",
        scope=scope if isinstance(scope, str) else None,
        refresh_expires_at=int(now) + refresh_in if refresh_in else None,
    )
