"""The method table of every endpoint bff serves itself, and routes that serve exactly
their methods (THREATS.md invariant 13): any other method is a 405 with `Allow`, never a
fall-through to a later route, and HEAD is served only where it is listed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from starlette.routing import Match, Route
from starlette.types import Scope

__all__ = ["ENDPOINT_METHODS", "explicit_route"]

# The method table of every endpoint bff serves itself; nothing else reaches a handler.
ENDPOINT_METHODS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "/bff/login": ("GET",),
        "/bff/callback": ("GET",),
        "/bff/user": ("GET",),
        "/bff/logout": ("GET", "POST"),
        "/bff/backchannel-logout": ("POST",),
        "/bff/events": ("GET",),
        # the user's session inventory (bff.web.sessions_api); the literal path before the
        # templated one, which would otherwise own `revoke-others` for DELETE
        "/bff/sessions": ("GET",),
        "/bff/sessions/revoke-others": ("POST",),
        "/bff/sessions/{id}": ("DELETE",),
        "/healthz": ("GET", "HEAD"),
        "/readyz": ("GET", "HEAD"),
    }
)


def explicit_route(path: str, endpoint: Callable[..., Any], methods: tuple[str, ...]) -> Route:
    """A route that serves exactly `methods`, answering 405 with `Allow` to the rest
    (`endpoint`: a request handler, or a raw ASGI app such as `/bff/events`).

    Starlette adds HEAD to every GET route; here HEAD is served only where it is listed,
    so a HEAD (CORS-safelisted, sent by `fetch(..., {mode: "no-cors"})`) never reaches a
    GET's or a POST's state change (THREATS.md invariant 13; issue 11 defect 2)."""
    route = _OwnPath(path, endpoint, methods=list(methods))
    route.methods = set(methods)
    return route


class _OwnPath(Route):
    """A route that owns its path for every method: an unlisted method is its 405, never
    a fall-through to a later route (the SPA's static mount at `/` would serve it)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        return (Match.FULL if match is Match.PARTIAL else match), child
