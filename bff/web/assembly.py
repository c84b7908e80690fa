"""The services of one app, built from the settings and what a caller injects (tests: a
mock HTTP client, a store, a clock, an upstream pool, a session-ended bus): shared by
every frontend, the store, the keys, the providers' HTTP client, the upstream pool and
the session-ended bus (one subscription per worker); per frontend, its provider client,
live connections, sessions, login flow, tokens and route table; and their closing, in
the app's lifespan."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from bff.config.model import Frontend, Settings
from bff.errors import ConfigError
from bff.oidc.client import OidcClient
from bff.oidc.login import LoginFlow
from bff.proxy.routes import RouteTable
from bff.session.bus import MemoryBus, create_bus
from bff.session.crypto import KeyRing
from bff.session.events import EventBus
from bff.session.frontend_sessions import frontend_sessions, frontend_signer
from bff.session.live import LiveSessions, listen
from bff.store import SessionStore
from bff.store.factory import create_store
from bff.store.instrumented import InstrumentedStore
from bff.telemetry.tracing import Tracing
from bff.tokens.manager import TokenManager
from bff.upstream.origins import UpstreamPool
from bff.web.lifecycle import Lifecycle
from bff.web.runtime import Runtime

__all__ = ["FrontendServices", "Services", "assemble"]


@dataclass(slots=True)
class FrontendServices:
    """The parts of one frontend: its provider client, sessions and login flow (in the
    runtime its handlers reach), its token manager, its route table and its live
    connections (its session-expiring window and idle timeout, over the shared bus)."""

    runtime: Runtime
    tokens: TokenManager
    table: RouteTable
    live: LiveSessions


@dataclass(slots=True)
class Services:
    """Every frontend's parts, and what the process shares among them: one store, one
    HTTP client for the providers, one upstream pool, one session-ended bus."""

    frontends: tuple[FrontendServices, ...]
    store: SessionStore
    http: httpx.AsyncClient
    upstreams: UpstreamPool
    bus: EventBus
    own_http: bool  # built here: closed here (an injected one is its owner's)
    own_upstreams: bool
    own_bus: bool

    async def listen(self) -> None:
        """The worker's one subscription to the bus, for every frontend's live
        connections, until cancelled (the app's lifespan runs this)."""
        await listen(self.bus, [part.live for part in self.frontends])

    async def aclose(self) -> None:
        for part in self.frontends:
            part.live.close()
        if self.own_bus:
            await self.bus.aclose()
        if self.own_upstreams:
            await self.upstreams.aclose()
        if self.own_http:
            await self.http.aclose()
        await self.store.aclose()


def assemble(
    settings: Settings,
    *,
    http: httpx.AsyncClient | None,
    store: SessionStore | None,
    clock: Callable[[], float],
    upstreams: UpstreamPool | None,
    tracing: Tracing | None,
    lifecycle: Lifecycle | None,
    bus: EventBus | None = None,
) -> Services:
    http_client = http or httpx.AsyncClient(
        timeout=httpx.Timeout(10.0, connect=5.0),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        follow_redirects=False,
    )
    session_store = InstrumentedStore(store or create_store(settings, clock=clock), tracing=tracing)
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
    keys = KeyRing(settings.secret_keys)
    # One subscription per worker: the live connections of a session end with it. An
    # injected store comes without a channel (tests): in-process unless `bus` is given.
    own_bus = bus is None and store is None
    if bus is None:
        bus = (
            create_bus(settings.session_store, prefix=settings.store_prefix)
            if own_bus
            else MemoryBus()
        )
    shared_lifecycle = lifecycle or Lifecycle()
    parts = tuple(
        _frontend(
            settings,
            frontend,
            keys=keys,
            http=http_client,
            store=session_store,
            bus=bus,
            clock=clock,
            tracing=tracing,
            lifecycle=shared_lifecycle,
        )
        for frontend in settings.frontends
    )
    return Services(
        frontends=parts,
        store=session_store,
        http=http_client,
        upstreams=upstream_pool,
        bus=bus,
        own_http=http is None,
        own_upstreams=upstreams is None,
        own_bus=own_bus,
    )


def _frontend(
    settings: Settings,
    frontend: Frontend,
    *,
    keys: KeyRing,
    http: httpx.AsyncClient,
    store: SessionStore,
    bus: EventBus,
    clock: Callable[[], float],
    tracing: Tracing | None,
    lifecycle: Lifecycle,
) -> FrontendServices:
    # The frontend's namespace binds its sessions to it: cookie salts, store keys,
    # sealed records and index entries (`Frontend.session_namespace`).
    signer = frontend_signer(keys, frontend)
    oidc = OidcClient.for_frontend(frontend, http=http, clock=clock)
    # Its own window and idle timeout; the session hashes it holds are its own
    # (namespaced), so an event from the shared bus only ends its own connections.
    live = LiveSessions(
        bus,
        store=store,
        clock=clock,
        window=frontend.session_expiring_window,
        idle_timeout=frontend.idle_timeout,
    )
    sessions = frontend_sessions(
        frontend,
        store=store,
        keys=keys,
        clock=clock,
        signer=signer,
        revoke=oidc.revoke,
        events=live,
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
    runtime = Runtime(
        settings=settings,
        frontend=frontend,
        oidc=oidc,
        sessions=sessions,
        flow=flow,
        clock=clock,
        lifecycle=lifecycle,
    )
    tokens = TokenManager(
        sessions=sessions,
        oidc=oidc,
        clock=clock,
        refresh_skew=frontend.refresh_skew,
        resource=frontend.resource,
        tracing=tracing,
    )
    # Built once: the route table (upstream sessions open lazily in the running loop).
    return FrontendServices(
        runtime=runtime, tokens=tokens, table=RouteTable(frontend.routes), live=live
    )
