"""The `/api` hot path as a raw ASGI app (no Starlette request objects, no
BaseHTTPMiddleware): canonical path -> route -> method -> CSRF -> session -> token ->
upstream -> response streamed back.

Order matters (THREATS.md invariant 7): the CSRF check runs before any token is looked
up or anything leaves for an upstream (`bff.proxy.credentials`). In the steady state a
request costs one store round trip, one decrypt and one pooled upstream request
(`bff.proxy.exchange`); everything else was prepared at start-up.

`/api` never answers with a redirect of its own; an upstream's 3xx passes through, it is
the upstream's answer. Requests under no route go to `fallback` (the Starlette app).

Refused before anything else (SPEC.md "The proxy"; `bff.proxy.admission`): a request
with two `Host` headers (400, anywhere), `TRACE`, `TRACK` and `CONNECT` (405: cross-site
tracing would echo the injected bearer), a `;` path parameter on a route without
`path_params = true` (400). A session has at most `upstream_max_connections_per_session`
requests in flight upstream; past it, or when its origin's pool stays full for
`upstream_queue_timeout`, the answer is 503 `upstream_busy` at once rather than a 504
after the full timeout. Every refusal is an answer from the table (`bff.answers`).
"""

from __future__ import annotations

import logging
from urllib.parse import quote, urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from bff.errors import PathRejected, UpstreamBusy
from bff.proxy.admission import refusal
from bff.proxy.credentials import Credentials, credentials
from bff.proxy.exchange import Exchange, Hop
from bff.proxy.forward_rules import ForwardRules
from bff.proxy.forwarding import outbound_headers
from bff.proxy.replies import BAD_PATH, SESSION_BUSY, TWO_HOSTS, send_answer
from bff.proxy.request_checks import inbound_request_id
from bff.proxy.request_headers import filter_request_headers
from bff.proxy.routes import CanonicalPath, Route, RouteTable, canonical_path, safe_query
from bff.session.live import LiveSessions
from bff.telemetry.logs import new_request_id
from bff.telemetry.request_metrics import RequestMetrics
from bff.telemetry.tracing import Tracing
from bff.tokens.manager import TokenManager
from bff.upstream.origins import UpstreamPool
from bff.upstream.session_slots import SessionSlots
from bff.web.runtime import Runtime

__all__ = ["ProxyApp"]

_log = logging.getLogger("bff.proxy")
_PATH_SAFE = "/!$&'()*+,;=:@~"


def _host_lines(headers: list[tuple[bytes, bytes]]) -> int:
    return sum(1 for name, _ in headers if name == b"host")


class ProxyApp:
    """Dispatch: a path under a configured route is proxied; anything else goes to
    `fallback`. An unsafe path (THREATS.md invariant 1) is refused with 400 wherever
    it points: no browser sends one."""

    def __init__(
        self,
        *,
        table: RouteTable,
        runtime: Runtime,
        token_manager: TokenManager,
        upstreams: UpstreamPool,
        fallback: ASGIApp,
        metrics: RequestMetrics | None = None,
        tracing: Tracing | None = None,
        live: LiveSessions | None = None,
    ) -> None:
        settings, frontend = runtime.settings, runtime.frontend
        self._table = table
        self._sessions = runtime.sessions
        self._tokens = token_manager
        self._fallback = fallback
        self._cookie = frontend.cookie_name
        self._rules = ForwardRules.create(
            (frontend.cookie_name, frontend.login_cookie_name),
            settings.trusted_proxies,
            public_host=urlsplit(frontend.public_url).netloc,
        )
        self._hop = Hop(
            upstreams=upstreams,
            tokens=token_manager,
            rules=self._rules,
            body_timeout=settings.upstream_timeout,
            metrics=metrics,
            tracing=tracing,
            public_origin="{0.scheme}://{0.netloc}".format(urlsplit(frontend.public_url)),
            path_base=frontend.path_base,
            live=live,
        )
        self._slots = SessionSlots(
            limit=settings.upstream_max_connections_per_session,
            wait=settings.upstream_queue_timeout,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._fallback(scope, receive, send)
            return
        raw = scope.get("raw_path")
        if raw is None:  # a server without raw_path: re-encode what it decoded
            raw = quote(scope["path"], safe=_PATH_SAFE).encode("ascii")
        try:
            path = canonical_path(raw)
        except PathRejected:
            await send_answer(send, BAD_PATH)
            return
        route = self._table.match(path)
        if route is None:
            if _host_lines(scope["headers"]) > 1:
                await send_answer(send, TWO_HOSTS)
                return
            await self._fallback(scope, receive, send)
            return
        await self._proxy(scope, receive, send, route, path)

    async def _proxy(
        self, scope: Scope, receive: Receive, send: Send, route: Route, path: CanonicalPath
    ) -> None:
        method: str = scope["method"]
        state = scope.get("state")
        if state is not None:
            state["route"] = route.config.prefix  # the metrics' and the access log's label
        refused = refusal(route, method, path)
        if refused is not None:
            await send_answer(send, *refused)
            return
        raw_headers = scope["headers"]
        client = scope.get("client")
        # The socket peer: a trusted ingress is judged by its own address, not by the
        # client address uvicorn's ProxyHeadersMiddleware put in its place.
        peer = (state.get("direct_peer") if state else None) or (client[0] if client else None)
        inbound = filter_request_headers(raw_headers, self._rules, trusted=self._rules.trusts(peer))
        if inbound.hosts > 1:  # which one did the browser mean? (RFC 9112 §3.2)
            await send_answer(send, TWO_HOSTS)
            return
        found = await credentials(
            scope,
            route.config,
            inbound,
            sessions=self._sessions,
            tokens=self._tokens,
            cookie_name=self._cookie,
        )
        if not isinstance(found, Credentials):
            await send_answer(send, found)
            return
        request_id = (
            (state.get("request_id") if state else None)
            or inbound_request_id(raw_headers)
            or new_request_id()
        )
        query: bytes = scope["query_string"]
        target = route.target(path)
        exchange = Exchange(
            hop=self._hop,
            route=route,
            method=method,
            target=f"{target}?{safe_query(query)}" if query else target,
            has_body=inbound.has_body,
            headers=outbound_headers(
                inbound,
                bearer=None if found.dpop_key else found.bearer,  # DPoP: per send
                peer=peer,
                scheme=scope.get("scheme", "http"),
                request_id=request_id,
            ),
            ref=found.ref,
            session=found.session,
            bearer=found.bearer,
            dpop_key=found.dpop_key,
            state=state,
        )
        await self._run(exchange, route, receive, send)

    async def _run(self, exchange: Exchange, route: Route, receive: Receive, send: Send) -> None:
        """Run `exchange` within its session's share of the upstream connections."""
        ref = exchange.ref
        if ref is None or exchange.session is None:  # no session: its origin's pool bounds it
            await exchange.run(receive, send)
            return
        slots, key = self._slots, ref.hash
        if not slots.take(key):
            try:
                await slots.acquire(key)
            except UpstreamBusy:
                _log.warning(
                    "%s: a session's share of upstream requests is in use", route.config.prefix
                )
                await send_answer(send, SESSION_BUSY)
                return
        try:
            await exchange.run(receive, send)
        finally:
            slots.release(key)
