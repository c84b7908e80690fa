"""Pure ASGI middleware: request id, security headers, request metrics, the request's
trace span, and an access log that never prints a query string (the callback's carries
the authorization code).

What the inner apps learn about a request reaches the log and the metrics through
`scope["state"]`: `route` (the matched route prefix), `upstream_s` (seconds until the
upstream's headers) and `session` (a short hash of the session's store key)."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bff.proxy.request_checks import inbound_request_id
from bff.telemetry.access_log import log_access
from bff.telemetry.logs import REQUEST_ID, new_request_id
from bff.telemetry.request_metrics import OTHER_ROUTE, RequestMetrics, track_inflight
from bff.telemetry.tracing import Tracing

__all__ = ["DirectPeerMiddleware", "RequestContextMiddleware"]

_COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
_BFF_ONLY = [
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]


class RequestContextMiddleware:
    """Sets `scope["state"]["request_id"]`, echoes it, adds security headers, logs access."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        own_prefixes: tuple[str, ...] = ("/bff/",),
        access_log: bool = True,
        own_paths: frozenset[str] = frozenset(),
        metrics: RequestMetrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.app = app
        self.own_prefixes = own_prefixes
        self.access_log = access_log
        self.own_paths = own_paths  # route labels of the endpoints that are not proxied
        self.metrics = metrics
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = inbound_request_id(scope["headers"]) or new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        context_token = REQUEST_ID.set(request_id)
        path = scope["path"]  # as the browser sent it: a frontend's app sees it without its base
        status = 0
        failed = False
        if self.tracing is not None:
            peer = state.get("direct_peer") or (scope["client"][0] if scope.get("client") else None)
            span, span_token = self.tracing.start_request(scope, peer)

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers: list[Any] = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                own = scope["path"].startswith(self.own_prefixes)  # the frontend's own path
                extra = _COMMON + (_BFF_ONLY if own else [])
                headers.extend((k, v) for k, v in extra if k not in present)
                if b"x-request-id" not in present:
                    headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        track_inflight(1)
        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            failed = True
            raise
        finally:
            elapsed = time.perf_counter() - started
            track_inflight(-1)
            REQUEST_ID.reset(context_token)
            code = status or (500 if failed else 0)
            route = state.get("route") or (
                scope["path"] if scope["path"] in self.own_paths else OTHER_ROUTE
            )
            if self.metrics is not None:
                self.metrics.observe(route, code, elapsed)
            if self.tracing is not None:
                self.tracing.finish_request(
                    span, span_token, method=scope["method"], route=route, status=code
                )
            if self.access_log:
                self._log(scope["method"], path, state, route, code, elapsed, request_id)

    @staticmethod
    def _log(
        method: str,
        raw_path: str,
        state: dict[str, Any],
        route: str,
        status: int,
        elapsed: float,
        rid: str,
    ) -> None:
        log_access(
            method=method,
            path=raw_path[:256].encode("unicode_escape").decode("ascii"),
            status=status,
            elapsed=elapsed,
            request_id=rid,
            route=route,
            upstream=state.get("upstream_s"),
            session=state.get("session"),
        )


class DirectPeerMiddleware:
    """Remembers the socket peer in `scope["state"]["direct_peer"]` before uvicorn's
    ProxyHeadersMiddleware replaces `client` with the address a trusted proxy reports:
    the proxy decides from it whether inbound X-Forwarded-* may be believed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope.get("client"):
            scope.setdefault("state", {})["direct_peer"] = scope["client"][0]
        await self.app(scope, receive, send)
