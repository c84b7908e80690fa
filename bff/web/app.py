"""Composition: settings + injected parts -> the ASGI app. The one place where errors
become HTTP answers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import html
import importlib.util
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Match, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Scope
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from bff.answers import Kind, spec
from bff.config.model import Settings
from bff.errors import BffError, ConfigError, RequestRejected
from bff.oidc.client import OidcClient
from bff.oidc.login import LoginFlow
from bff.proxy.app import ProxyApp
from bff.proxy.routes import RouteTable
from bff.session.cookies import CookieSigner
from bff.session.crypto import KeyRing
from bff.session.service import SessionService
from bff.store import SessionStore
from bff.store.factory import create_store
from bff.store.instrumented import InstrumentedStore
from bff.telemetry.metrics import FLUSH_INTERVAL, RequestMetrics, flush_metrics
from bff.telemetry.tracing import Tracing
from bff.tokens.manager import TokenManager
from bff.upstream.origins import UpstreamPool
from bff.web import endpoints
from bff.web.lifecycle import Lifecycle
from bff.web.middleware import DirectPeerMiddleware, RequestContextMiddleware

__all__ = [
    "ENDPOINT_METHODS",
    "create_app",
    "discovering",
    "error_response",
    "explicit_route",
    "method_not_allowed",
]

_log = logging.getLogger("bff.app")
_HTML_PATHS = ("/bff/login", "/bff/callback", "/bff/logout")
_PAGE_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;color:#1d2433;background:#f4f6fb;margin:0}"
    "main{max-width:40rem;margin:3rem auto;background:#fff;border:1px solid #dfe3ec;"
    "border-radius:12px;padding:1.25rem 1.5rem}h1{font-size:1.35rem;margin:0 0 .75rem}"
    "code{background:#eef1f8;padding:0 .3rem;border-radius:4px}"
)
# The page's own style and nothing else (the rest of /bff/* gets default-src 'none').
_PAGE_CSP = (
    "default-src 'none'; style-src 'sha256-"
    + base64.b64encode(hashlib.sha256(_PAGE_STYLE.encode()).digest()).decode()
    + "'; frame-ancestors 'none'"
)


def _classify(exc: BffError) -> tuple[int, str, str, dict[str, str]]:
    """Status, code, description and extra headers of `exc`'s answer (`bff.answers`)."""
    entry = spec(exc.kind)
    if isinstance(exc, RequestRejected):
        code, description, retry_after = exc.code, exc.description, exc.retry_after
    else:
        code, description, retry_after = entry.code, entry.description, entry.retry_after
    extra = {} if retry_after is None else {"retry-after": str(retry_after)}
    return entry.status, code, description, extra


def error_response(request: Request, exc: BffError) -> Response:
    status, code, description, headers = _classify(exc)
    if isinstance(exc, RequestRejected) and (
        exc.status in (401, 403) or request.url.path == "/bff/callback"
    ):
        endpoints.log_refusal(request.scope, exc.status, exc.code, exc.reason)
    if status >= 500:
        _log.warning(
            "%s %s -> %s (%s: %s)",
            request.method,
            request.url.path,
            status,
            type(exc).__name__,
            exc,
        )
    headers["cache-control"] = "no-store"
    accept = request.headers.get("accept", "")
    if request.url.path in _HTML_PATHS and "text/html" in accept:
        runtime = getattr(request.app.state, "bff", None)
        home = f"{runtime.frontend.public_url}/" if runtime is not None else "/"
        page = (
            "<!doctype html><meta charset=utf-8><title>Sign-in problem</title>"
            f"<style>{_PAGE_STYLE}</style><main>"
            f"<h1>Sign-in problem</h1><p>{html.escape(description)}</p>"
            f'<p><code>{html.escape(code)}</code></p><p><a href="{html.escape(home)}">'
            "Back to the app</a></p>"
            "</main>"
        )
        headers["content-security-policy"] = _PAGE_CSP
        return HTMLResponse(page, status_code=status, headers=headers)
    return JSONResponse(
        {"error": code, "error_description": description}, status_code=status, headers=headers
    )


async def _handle(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BffError)
    return error_response(request, exc)


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    """Starlette's 405 (raised by a route for a method it does not list), as JSON."""
    assert isinstance(exc, HTTPException)
    entry = spec(Kind.METHOD_NOT_ALLOWED)
    return JSONResponse(
        {"error": entry.code, "error_description": f"{request.method} is not allowed"},
        status_code=entry.status,
        headers={**(exc.headers or {}), "cache-control": "no-store"},
    )


def explicit_route(
    path: str, endpoint: Callable[[Request], Any], methods: tuple[str, ...]
) -> Route:
    """A route that serves exactly `methods`, answering 405 with `Allow` to the rest.

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


# The method table of every endpoint bff serves itself; nothing else reaches a handler.
ENDPOINT_METHODS: dict[str, tuple[str, ...]] = {
    "/bff/login": ("GET",),
    "/bff/callback": ("GET",),
    "/bff/user": ("GET",),
    "/bff/logout": ("GET", "POST"),
    "/bff/backchannel-logout": ("POST",),
    "/healthz": ("GET", "HEAD"),
    "/readyz": ("GET", "HEAD"),
}


@contextlib.asynccontextmanager
async def discovering(oidc: OidcClient, *, enabled: bool) -> AsyncIterator[None]:
    """Keep the provider's metadata loaded (in the background) for the block's duration."""
    task = asyncio.create_task(oidc.discover_forever(), name="bff-discovery") if enabled else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def flushing_metrics() -> AsyncIterator[None]:
    """Hand the batched per-request metrics to prometheus_client every second while the
    block runs, and once more at its end (see `bff.metrics`)."""

    async def flush_forever() -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            flush_metrics()

    task = asyncio.create_task(flush_forever(), name="bff-metrics")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        flush_metrics()


def create_app(
    settings: Settings,
    *,
    http: httpx.AsyncClient | None = None,
    store: SessionStore | None = None,
    clock: Callable[[], float] = time.time,
    discover_on_startup: bool = True,
    upstreams: UpstreamPool | None = None,
    tracing: Tracing | None = None,
    lifecycle: Lifecycle | None = None,
) -> ASGIApp:
    """Build the app. Tests inject `http` (respx / MockTransport), `store`, `clock` and
    `upstreams` (then they close it); `tracing` (None: off) and `lifecycle` (what
    /readyz reports while draining) come from `bff serve`. The request path:
    RequestContextMiddleware -> ProxyApp (route prefixes) -> the Starlette app."""
    own_http = http is None
    http_client = http or httpx.AsyncClient(
        timeout=httpx.Timeout(10.0, connect=5.0),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        follow_redirects=False,
    )
    session_store = InstrumentedStore(store or create_store(settings, clock=clock), tracing=tracing)
    keys = KeyRing(settings.secret_keys)
    signer = CookieSigner(keys.signing_keys)
    frontend = settings.frontend
    oidc = OidcClient.for_frontend(frontend, http=http_client, clock=clock)
    sessions = SessionService(
        store=session_store,
        keys=keys,
        signer=signer,
        idle_timeout=frontend.idle_timeout,
        max_lifetime=frontend.max_lifetime,
        clock=clock,
        revoke=oidc.revoke,
    )
    flow = LoginFlow(
        frontend=frontend,
        pending_per_client=settings.login_pending_max,
        pending_total=settings.login_pending_total,
        oidc=oidc,
        sessions=sessions,
        keys=keys,
        signer=signer,
        clock=clock,
    )
    runtime = endpoints.Runtime(
        settings=settings,
        frontend=frontend,
        oidc=oidc,
        sessions=sessions,
        flow=flow,
        clock=clock,
        lifecycle=lifecycle or Lifecycle(),
    )
    # Built once: route table, upstream sessions (opened lazily in the running loop).
    table = RouteTable(frontend.routes)
    own_upstreams = upstreams is None
    if settings.upstream_transport == "aiohttp" and importlib.util.find_spec("aiohttp") is None:
        raise ConfigError(
            ["BFF_UPSTREAM_TRANSPORT: aiohttp needs the extra: pip install 'bff[aiohttp]'"]
        )
    upstream_pool = upstreams or UpstreamPool(
        timeout=settings.upstream_timeout,
        limit_per_host=settings.upstream_max_connections,
        queue_timeout=settings.upstream_queue_timeout,
        transport=settings.upstream_transport,
    )
    token_manager = TokenManager(
        sessions=sessions,
        oidc=oidc,
        clock=clock,
        refresh_skew=frontend.refresh_skew,
        resource=frontend.resource,
        tracing=tracing,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with discovering(oidc, enabled=discover_on_startup), flushing_metrics():
                yield
        finally:
            if own_upstreams:
                await upstream_pool.aclose()
            if own_http:
                await http_client.aclose()
            await session_store.aclose()
            if tracing is not None:
                tracing.shutdown()

    handlers: dict[str, Callable[[Request], Any]] = {
        "/bff/login": endpoints.login,
        "/bff/callback": endpoints.callback,
        "/bff/user": endpoints.user,
        "/bff/logout": endpoints.logout,
        "/bff/backchannel-logout": endpoints.backchannel,
        "/healthz": endpoints.healthz,
        # Status only: the reason (and /metrics) is on the admin listener (BFF_ADMIN_LISTEN).
        "/readyz": endpoints.readyz,
    }
    routes: list[Any] = [
        explicit_route(path, handler, ENDPOINT_METHODS[path]) for path, handler in handlers.items()
    ]
    if frontend.static_dir:
        routes.append(Mount("/", app=StaticFiles(directory=frontend.static_dir, html=True)))
    app = Starlette(
        routes=routes,
        exception_handlers={BffError: _handle, 405: method_not_allowed},
        lifespan=lifespan,
    )
    app.state.bff = runtime
    # Route labels (metrics, access log): the route prefixes and bff's own endpoint paths.
    own_paths = frozenset(ENDPOINT_METHODS)
    request_metrics = RequestMetrics((*(r.prefix for r in frontend.routes), *sorted(own_paths)))
    proxy = ProxyApp(
        table=table,
        runtime=runtime,
        token_manager=token_manager,
        upstreams=upstream_pool,
        fallback=app,
        metrics=request_metrics,
        tracing=tracing,
    )
    # Outermost, so request ids, security headers, metrics, the request's span and the
    # access log cover the proxy too.
    outer: ASGIApp = RequestContextMiddleware(
        proxy,
        access_log=settings.access_log,
        own_paths=own_paths,
        metrics=request_metrics,
        tracing=tracing,
    )
    if settings.trusted_proxies:
        # uvicorn's own parser sets client and scheme from a trusted ingress's headers;
        # the socket peer is remembered first for the proxy's X-Forwarded-* decisions.
        # (uvicorn types its ASGI callables more narrowly than Starlette; same protocol.)
        ingress = ProxyHeadersMiddleware(
            cast(Any, outer), trusted_hosts=list(settings.trusted_proxies)
        )
        outer = DirectPeerMiddleware(cast(ASGIApp, ingress))
    return outer
