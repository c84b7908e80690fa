"""The admin listener (`BFF_ADMIN_LISTEN`): operators' endpoints, kept off the public one.

One admin listener serves the whole `bff serve`, however many workers: it runs in the
supervising process (see `bff.cli.admin_listener`), merges the workers' metrics from the
Prometheus multiprocess directory, and checks readiness with its own store connection and
provider discovery (same configuration as the workers), showing the reason.

    GET /metrics    Prometheus text, merged across workers
    GET /readyz     200 / 503 with the reason (the public /readyz has the status only)
    /admin/sessions the bearer-token admin API (`bff.web.admin_api`), with BFF_ADMIN_TOKEN_FILE

Adding an admin endpoint (admin API, store topology, ...): write a handler that reads
`admin_context(request)` and add it to `admin_routes()` with its method table, or pass
routes as `extra_routes` to `create_admin_app`. Methods not listed answer 405 with
`Allow`, as on the public listener. /metrics and /readyz have no authentication: the
listener must only be reachable by operators (bind it to loopback or a private network);
the admin API checks its bearer token on top of that.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from bff.config.model import Settings
from bff.oidc.client import OidcClient
from bff.session.bus import MemoryBus
from bff.session.events import EventBus
from bff.store import SessionStore
from bff.store.factory import create_store
from bff.telemetry.metrics import CONTENT_TYPE_LATEST, render
from bff.web.admin_api import ADMIN_API_METHODS, create_admin_api
from bff.web.background import discovering
from bff.web.error_pages import method_not_allowed
from bff.web.health import readiness_problems, readiness_response
from bff.web.lifecycle import Lifecycle
from bff.web.routing import explicit_route

__all__ = ["AdminContext", "admin_context", "admin_routes", "create_admin_app"]


@dataclass(slots=True)
class AdminContext:
    """What admin handlers reach as `admin_context(request)`."""

    settings: Settings
    store: SessionStore
    oidc: OidcClient
    http: httpx.AsyncClient
    clock: Callable[[], float]
    metrics_dir: str | None  # the workers' Prometheus multiprocess directory
    lifecycle: Lifecycle | None = None  # this process's: draining (SIGTERM) is not ready


def admin_context(request: Request) -> AdminContext:
    context: AdminContext = request.app.state.admin
    return context


async def metrics(request: Request) -> Response:
    body = render(admin_context(request).metrics_dir)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"cache-control": "no-store"})


async def readyz(request: Request) -> Response:
    context = admin_context(request)
    problems = await readiness_problems(context.store, context.oidc, context.lifecycle)
    topology = await context.store.topology()  # no secret; never raises
    return readiness_response(problems, detailed=True, store=topology)


def admin_routes() -> list[BaseRoute]:
    """The admin listener's routes: add new admin endpoints here."""
    return [
        explicit_route("/metrics", metrics, ("GET",)),
        explicit_route("/readyz", readyz, ("GET", "HEAD")),
    ]


def create_admin_app(
    settings: Settings,
    *,
    metrics_dir: str | None,
    store: SessionStore | None = None,
    http: httpx.AsyncClient | None = None,
    clock: Callable[[], float] = time.time,
    discover_on_startup: bool = True,
    extra_routes: Sequence[BaseRoute] = (),
    lifecycle: Lifecycle | None = None,
    bus: EventBus | None = None,
) -> Starlette:
    own_http = http is None
    http_client = http or httpx.AsyncClient(
        timeout=httpx.Timeout(10.0, connect=5.0), follow_redirects=False
    )
    context = AdminContext(
        settings=settings,
        store=store or create_store(settings, clock=clock),
        oidc=OidcClient.for_frontend(settings.frontend, http=http_client, clock=clock),
        http=http_client,
        clock=clock,
        metrics_dir=metrics_dir,
        lifecycle=lifecycle,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with discovering(context.oidc, enabled=discover_on_startup):
                yield
        finally:
            if api is not None:
                await api.aclose()
            if own_http:
                await http_client.aclose()
            await context.store.aclose()

    # The admin API announces revocations on `bus`; by default the store's session-ended
    # channel, in-process for an injected store (tests) unless `bus` is given.
    api = create_admin_api(
        settings,
        store=context.store,
        oidc=context.oidc,
        http=http_client,
        clock=clock,
        bus=bus if bus is not None or store is None else MemoryBus(),
    )
    api_routes = [
        explicit_route(path, handler, ADMIN_API_METHODS[path])
        for path, handler in (api.handlers().items() if api is not None else ())
    ]
    app = Starlette(
        routes=[*admin_routes(), *api_routes, *extra_routes],
        exception_handlers={405: method_not_allowed},
        lifespan=lifespan,
    )
    app.state.admin = context
    return app
