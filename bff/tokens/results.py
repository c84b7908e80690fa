"""What asking for a session's access token can end with. Expected outcomes are result
values (Duende's access-token management does the same):

    Bearer        a usable access token
    NoToken       no session, or the session has ended        -> 401
    TokenFailure  the provider or the store failed             -> 502 / 503, session kept

A result that is an error answer names its kind; `bff.answers` holds its status, code and
Retry-After. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from bff.answers import TABLE, Kind
from bff.tokens.records import TokenSet

__all__ = [
    "BUSY",
    "EXCHANGE_DOWN",
    "EXPIRED",
    "IDP_DOWN",
    "LEASE_OVER",
    "STORE_DOWN",
    "Answered",
    "Bearer",
    "NoToken",
    "TokenFailure",
    "TokenResult",
    "outcome",
]


@dataclass(frozen=True, slots=True)
class Bearer:
    token: str = field(repr=False)
    refreshed_at: float | None = None  # set when this token came from a refresh
    # A DPoP-bound token (RFC 9449): the session key its upstream proofs are signed with.
    dpop_key: str | None = field(default=None, repr=False)

    @classmethod
    def of(
        cls, tokens: TokenSet, dpop_key: str | None, *, refreshed_at: float | None = None
    ) -> Bearer:
        """The session's access token; with its key when the provider bound it (DPoP)."""
        bound = dpop_key if tokens.token_type == "DPoP" else None
        return cls(tokens.access_token, refreshed_at=refreshed_at, dpop_key=bound)


@dataclass(frozen=True, slots=True)
class Answered:
    """A result that is an error answer; its kind names it (`bff.answers`)."""

    kind: Kind

    @property
    def status(self) -> int:
        return TABLE[self.kind].status

    @property
    def code(self) -> str:
        return TABLE[self.kind].code

    @property
    def description(self) -> str:
        return TABLE[self.kind].description

    @property
    def retry_after(self) -> int | None:
        return TABLE[self.kind].retry_after


@dataclass(frozen=True, slots=True)
class NoToken(Answered):
    """No usable session: 401 `not_authenticated` or `session_expired`."""


@dataclass(frozen=True, slots=True)
class TokenFailure(Answered):
    """The provider or the store failed; the session is kept (502 idp_unavailable or
    token_exchange_unavailable, 503 session_store_unavailable, 503 refresh_in_progress /
    refresh_timeout)."""


TokenResult = Bearer | NoToken | TokenFailure

EXPIRED = NoToken(Kind.SESSION_EXPIRED)
IDP_DOWN = TokenFailure(Kind.IDP_UNAVAILABLE)
STORE_DOWN = TokenFailure(Kind.SESSION_STORE_UNAVAILABLE)
BUSY = TokenFailure(Kind.REFRESH_IN_PROGRESS)
LEASE_OVER = TokenFailure(Kind.REFRESH_TIMEOUT)
EXCHANGE_DOWN = TokenFailure(Kind.TOKEN_EXCHANGE_UNAVAILABLE)
# bff_refresh_total{outcome} of each result a refresh can end with
_OUTCOMES: Mapping[TokenResult, str] = MappingProxyType(
    {
        EXPIRED: "session_ended",
        IDP_DOWN: "idp_unavailable",
        STORE_DOWN: "store_unavailable",
        BUSY: "lock_busy",
        LEASE_OVER: "timeout",
        EXCHANGE_DOWN: "exchange_unavailable",
    }
)


def outcome(result: TokenResult) -> str:
    """The `outcome` label a refresh that ended with `result` is counted and traced with."""
    if isinstance(result, Bearer):
        return "success" if result.refreshed_at is not None else "not_needed"
    return _OUTCOMES.get(result, "other")
