"""A route's own token: which routes get one (`audience_for`), and where a session keeps
it (`Session.route_tokens`, keyed by `Audience.key`). Pure.

A route with `token = "user"` and a `resource` or `scopes` gets a narrower user token from
a refresh-token grant carrying them (RFC 8707, RFC 6749 §6); a route with `token =
"exchange"` gets one from an RFC 8693 exchange of the session's token. The key names the
route *and* what its token was minted for, so a token is never sent to another route, nor
to the same route once its `resource` or `scopes` change.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from bff.config.model import RouteConfig
from bff.session.records import MAX_ROUTE_TOKENS, Session
from bff.tokens.records import TokenSet

__all__ = ["Audience", "audience_for", "route_token", "with_route_token"]


@dataclass(frozen=True, slots=True)
class Audience:
    """What one route's own token is obtained with."""

    key: str
    grant: Literal["refresh_token", "exchange"]
    resource: str | None
    scope: str | None


def audience_for(route: RouteConfig) -> Audience | None:
    """The route's own token, or None when it is sent the session's token (or none)."""
    if route.token == "exchange":
        grant: Literal["refresh_token", "exchange"] = "exchange"
    elif route.token == "user" and (route.resource or route.scopes):
        grant = "refresh_token"
    else:
        return None
    key = "\x1f".join((route.prefix, grant, route.resource or "", route.scopes or ""))
    return Audience(key=key, grant=grant, resource=route.resource, scope=route.scopes)


def route_token(session: Session, audience: Audience) -> TokenSet | None:
    """The token the session keeps for `audience`, if any."""
    return session.route_tokens.get(audience.key)


def with_route_token(session: Session, audience: Audience, fresh: TokenSet) -> Session:
    """The session after a grant for `audience` answered `fresh`: its access token kept
    for that audience alone (never a refresh token: an exchanged token is obtained again,
    a narrowed one from the session's own refresh token), and a rotated refresh token
    taken over as the session's (the provider has invalidated the old one)."""
    kept = TokenSet(access_token=fresh.access_token, expires_at=fresh.expires_at, scope=fresh.scope)
    others = {k: v for k, v in session.route_tokens.items() if k != audience.key}
    while len(others) >= MAX_ROUTE_TOKENS:  # bounded: the oldest goes (routes renamed)
        del others[next(iter(others))]
    tokens = session.tokens
    if audience.grant == "refresh_token" and fresh.refresh_token:
        tokens = replace(
            tokens,
            refresh_token=fresh.refresh_token,
            refresh_expires_at=fresh.refresh_expires_at or tokens.refresh_expires_at,
        )
    return replace(session, tokens=tokens, route_tokens={**others, audience.key: kept})
