"""The ASGI app in front of several frontends: it picks the frontend that serves a
request (`bff.web.frontend_select`: host, then path base), hands the request to that
frontend's app with the path base taken off its path, and answers 404
`unknown_host` for an address no frontend is served at. `/healthz` and `/readyz` answer
at any address (load balancers probe by IP), from the first frontend's app.

The host is the browser's `Host`, or the first `X-Forwarded-Host` of a trusted proxy
(BFF_TRUSTED_PROXIES), the same rule the proxy uses for `X-Forwarded-Host`."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from bff.answers import Kind, json_answer
from bff.proxy.forward_rules import ForwardRules
from bff.proxy.replies import TWO_HOSTS, send_answer
from bff.proxy.request_checks import header_values
from bff.web.frontend_select import FrontendSelector, strip_base

__all__ = ["ANYWHERE", "FrontendDispatch"]

ANYWHERE = frozenset({"/healthz", "/readyz"})  # served at any host, by the first frontend
UNKNOWN_HOST = json_answer(Kind.UNKNOWN_HOST)


class FrontendDispatch:
    """Routes each request to the app of the frontend it addresses (see module doc)."""

    def __init__(
        self,
        apps: Sequence[ASGIApp],
        public_urls: Sequence[str],
        trusted_proxies: Sequence[str] = (),
    ) -> None:
        if len(apps) != len(public_urls) or not apps:
            raise ValueError("one app per public URL, at least one")
        self._apps = tuple(apps)
        self._selector = FrontendSelector(public_urls)
        self._rules = ForwardRules.create((), trusted_proxies)

    def _host(self, scope: Scope) -> str | bool | None:
        """The host the browser addressed; False when the request names two."""
        headers = scope.get("headers") or []
        hosts = header_values(headers, b"host")
        if len(hosts) > 1:
            return False
        state = scope.get("state") or {}
        if self._rules.trusted and self._rules.trusts(state.get("direct_peer")):
            forwarded = header_values(headers, b"x-forwarded-host")
            if forwarded:
                return forwarded[0].split(",")[0].strip() or None
        return hosts[0] if hosts else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._apps[0](scope, receive, send)  # lifespan: the first app runs it
            return
        host = self._host(scope)
        chosen = None
        if not isinstance(host, bool):
            chosen = self._selector.select(host, scope["path"])
        if chosen is None:
            if scope["type"] == "http" and scope["path"] in ANYWHERE:
                await self._apps[0](scope, receive, send)
            elif scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            else:
                await send_answer(send, TWO_HOSTS if host is False else UNKNOWN_HOST)
            return
        index, base = chosen
        if base and not _move_base(scope, base):
            await send_answer(send, UNKNOWN_HOST)
            return
        await self._apps[index](scope, receive, send)


def _move_base(scope: Scope, base: str) -> bool:
    """Take the path base off `path` and `raw_path`, in place (the outer middleware
    reads the same scope: metrics see the frontend's own paths), as a reverse proxy
    that maps `/app/` to `/` would; `root_path` is left alone (Starlette would strip it
    once more from a path that repeats the base). The base goes to `state["path_base"]`.
    False when the raw path does not spell the base literally (`/%61pp` for `/app`)."""
    raw = scope.get("raw_path")
    if raw is not None:
        rest = strip_base(raw.decode("latin-1"), base)
        if rest is None:
            return False
        scope["raw_path"] = rest.encode("latin-1")
    scope["path"] = strip_base(scope["path"], base) or "/"
    scope.setdefault("state", {})["path_base"] = base
    return True
