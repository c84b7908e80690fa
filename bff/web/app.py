"""Composition: settings + injected parts -> the ASGI app. The request path:
DirectPeerMiddleware (with trusted proxies) -> RequestContextMiddleware ->
FrontendDispatch (with several frontends or a path base: host, then path base) -> the
frontend's WebSocketProxy (upgrades on its `websocket` routes) -> its ProxyApp (route
prefixes) -> its Starlette app (bff's own endpoints, `/bff/events`, the SPA's static
files).
Errors become answers in one place (`bff.web.error_pages`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from bff.config.model import Settings
from bff.errors import BffError
from bff.proxy.app import ProxyApp
from bff.proxy.forward_rules import ForwardRules
from bff.proxy.websocket import WebSocketProxy
from bff.session.events import EventBus
from bff.store import SessionStore
from bff.telemetry.access_log import flush_access_logs
from bff.telemetry.request_metrics import RequestMetrics
from bff.telemetry.tracing import Tracing
from bff.upstream.origins import UpstreamPool
from bff.web import health, login_endpoints, session_endpoints, sessions_api
from bff.web.assembly import FrontendServices, Services, assemble
from bff.web.background import discovering, flushing_metrics
from bff.web.error_pages import handle_error, method_not_allowed
from bff.web.events import SessionEvents
from bff.web.frontend_dispatch import FrontendDispatch
from bff.web.lifecycle import Lifecycle
from bff.web.middleware import DirectPeerMiddleware, RequestContextMiddleware
from bff.web.routing import ENDPOINT_METHODS, explicit_route

__all__ = ["create_app"]

_HANDLERS: dict[str, Callable[[Request], Any]] = {
    "/bff/login": login_endpoints.login,
    "/bff/callback": login_endpoints.callback,
    "/bff/user": session_endpoints.user,
    "/bff/logout": session_endpoints.logout,
    "/bff/backchannel-logout": session_endpoints.backchannel,
    "/bff/sessions": sessions_api.list_sessions,
    "/bff/sessions/revoke-others": sessions_api.revoke_others,
    "/bff/sessions/{id}": sessions_api.delete_session,
    "/healthz": health.healthz,
    # Status only: the reason (and /metrics) is on the admin listener (BFF_ADMIN_LISTEN).
    "/readyz": health.readyz,
}


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
    bus: EventBus | None = None,
) -> ASGIApp:
    """Build the app. Tests inject `http` (respx / MockTransport), `store`, `clock`,
    `upstreams` and `bus` (the session-ended channel; then they close them); `tracing`
    (None: off) and `lifecycle` (what /readyz reports while draining) come from `bff
    serve`."""
    services = assemble(
        settings,
        http=http,
        store=store,
        clock=clock,
        upstreams=upstreams,
        tracing=tracing,
        lifecycle=lifecycle,
        bus=bus,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Once per process, whatever the number of frontends: one bus subscription,
        # each frontend's discovery, the metrics flush.
        listening = asyncio.create_task(services.listen(), name="bff-session-ended")
        try:
            async with contextlib.AsyncExitStack() as stack:
                for part in services.frontends:
                    await stack.enter_async_context(
                        discovering(part.runtime.oidc, enabled=discover_on_startup)
                    )
                await stack.enter_async_context(flushing_metrics())
                yield
        finally:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening
            await services.aclose()
            if tracing is not None:
                tracing.shutdown()
            flush_access_logs()  # the buffered access lines of the last requests

    # Route labels (metrics, access log): every frontend's route prefixes and bff's own
    # endpoint paths.
    own_paths = frozenset(ENDPOINT_METHODS)
    prefixes = sorted({r.prefix for f in settings.frontends for r in f.routes})
    request_metrics = RequestMetrics((*prefixes, *sorted(own_paths)))
    apps = [
        _frontend_app(
            services,
            part,
            metrics=request_metrics,
            tracing=tracing,
            lifespan=lifespan if i == 0 else None,  # the first app runs the process's
        )
        for i, part in enumerate(services.frontends)
    ]
    inner: ASGIApp = apps[0]
    only = settings.frontend
    if len(apps) > 1 or only.path_base:
        inner = FrontendDispatch(
            apps, [f.public_url for f in settings.frontends], settings.trusted_proxies
        )
    # Outermost, so request ids, security headers, metrics, the request's span and the
    # access log cover the proxy too.
    outer: ASGIApp = RequestContextMiddleware(
        inner,
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


def _frontend_app(
    services: Services,
    part: FrontendServices,
    *,
    metrics: RequestMetrics,
    tracing: Tracing | None,
    lifespan: Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]] | None,
) -> ASGIApp:
    """One frontend: its WebSocket upgrades and its proxy (route prefixes) in front of its
    Starlette app (bff's own endpoints, its `/bff/events`, its SPA's static files), whose
    handlers reach its runtime."""
    runtime = part.runtime
    frontend, settings = runtime.frontend, runtime.settings
    routes: list[Any] = [
        explicit_route(path, handler, ENDPOINT_METHODS[path]) for path, handler in _HANDLERS.items()
    ]
    events = SessionEvents(
        sessions=runtime.sessions, live=part.live, cookie_name=frontend.cookie_name
    )
    routes.append(explicit_route("/bff/events", events, ENDPOINT_METHODS["/bff/events"]))
    if frontend.static_dir:
        routes.append(Mount("/", app=StaticFiles(directory=frontend.static_dir, html=True)))
    app = Starlette(
        routes=routes,
        exception_handlers={BffError: handle_error, 405: method_not_allowed},
        lifespan=lifespan,
    )
    app.state.bff = runtime
    proxy = ProxyApp(
        table=part.table,
        runtime=runtime,
        token_manager=part.tokens,
        upstreams=services.upstreams,
        fallback=app,
        metrics=metrics,
        tracing=tracing,
        live=part.live,
    )
    return WebSocketProxy(
        proxy,
        table=part.table,
        sessions=runtime.sessions,
        tokens=part.tokens,
        live=part.live,
        rules=ForwardRules.create(
            (frontend.cookie_name, frontend.login_cookie_name),
            settings.trusted_proxies,
            public_host=urlsplit(frontend.public_url).netloc,
        ),
        cookie_name=frontend.cookie_name,
        # The default Origin allow-list: the public URL's origin (without its path base).
        public_url=frontend.origin,
        refresh_skew=frontend.refresh_skew,
        clock=runtime.clock,
        open_timeout=settings.upstream_timeout,
    )
