"""The `/api` hot path as a raw ASGI app (no Starlette request objects, no
BaseHTTPMiddleware): canonical path -> route -> method -> CSRF -> session -> token ->
upstream -> response streamed back.

Order matters (THREATS.md invariant 7): the CSRF check runs before any token is looked
up or anything leaves for an upstream. In the steady state a request costs one store
round trip (`SessionService.load`: GETEX reads and slides the idle expiry), one decrypt
and one pooled upstream request; everything else was prepared at start-up.

`/api` never answers with a redirect of its own; an upstream's 3xx passes through, it is
the upstream's answer. Requests under no route go to `fallback` (the Starlette app).

Refused before anything else (SPEC.md "The proxy"): a request with two `Host` headers
(400, anywhere), `TRACE`, `TRACK` and `CONNECT` (405: cross-site tracing would echo the
injected bearer), a `;` path parameter on a route without `path_params = true` (400).
A session has at most `upstream_max_connections_per_session` requests in flight
upstream; past it, or when its origin's pool stays full for `upstream_queue_timeout`,
the answer is 503 `upstream_busy` at once rather than a 504 after the full timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from bff.answers import Answer, Kind, json_answer
from bff.errors import StoreUnavailable, UpstreamBusy, UpstreamTimeout, UpstreamUnavailable
from bff.proxy.headers import (
    ForwardRules,
    Inbound,
    csrf_ok,
    csrf_refusal,
    filter_request_headers,
    filter_response_headers,
    outbound_headers,
    request_id_from,
)
from bff.proxy.routes import (
    CanonicalPath,
    PathRejected,
    Route,
    RouteTable,
    canonical_path,
    safe_query,
)
from bff.session.cookies import find_cookie
from bff.session.records import Session, short_hash
from bff.session.service import SessionRef
from bff.telemetry.metrics import LIVE_CONNECTIONS, RequestMetrics
from bff.telemetry.tracing import Tracing
from bff.tokens.manager import STORE_DOWN, Bearer, NoToken, TokenFailure, TokenManager
from bff.upstream.origins import (
    BodyStream,
    DisconnectWatch,
    SessionSlots,
    UpstreamExchange,
    UpstreamPool,
)
from bff.web.endpoints import Runtime, log_refusal, no_session_reason

__all__ = ["ProxyApp"]

_log = logging.getLogger("bff.proxy")
_WATCH_DELAY = 1.0  # seconds before a request still waiting for its upstream watches for
# a browser disconnect: fast requests never pay for the extra task
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_ORDINARY = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Only these are ever forwarded (a route's `methods` is a subset of them), compared
# exactly (some servers read methods upper-cased). Never forwarded (THREATS.md invariant
# 13): TRACE echoes the request, bearer included, to whoever can read the answer
# (cross-site tracing); TRACK is IIS's TRACE; CONNECT would make the upstream a tunnel;
# WebDAV and cache methods (PROPFIND, LOCK, PURGE) reach what a route never meant to open.
_ALLOW_ANY = ", ".join(sorted(_ORDINARY)).encode("ascii")  # Allow of a route without `methods`
_BODILESS = frozenset({204, 304})  # never a body (nor 1xx, which is never relayed)
_PATH_SAFE = "/!$&'()*+,;=:@~"

_BAD_PATH = json_answer(Kind.INVALID_PATH)
_PATH_PARAMS = json_answer(Kind.INVALID_PATH, "path parameters (;) are not allowed on this route")
_TWO_HOSTS = json_answer(Kind.INVALID_REQUEST, "more than one Host header")
_NOT_ALLOWED = json_answer(Kind.METHOD_NOT_ALLOWED)
_CSRF = json_answer(Kind.CSRF)
_NOT_AUTHENTICATED = json_answer(Kind.NOT_AUTHENTICATED)
_STORE_DOWN = json_answer(Kind.SESSION_STORE_UNAVAILABLE)
_SESSION_BUSY = json_answer(
    Kind.UPSTREAM_BUSY, "too many requests of this session are in flight upstream"
)
_STALLED = json_answer(Kind.REQUEST_TIMEOUT)
# Each kind's default answer (upstream failures and token results), prepared once.
_BY_KIND: dict[Kind, Answer] = {kind: json_answer(kind) for kind in Kind}


def _token_answer(result: NoToken | TokenFailure) -> Answer:
    return _BY_KIND[result.kind]


async def _send_answer(
    send: Send, answer: Answer, extra: tuple[bytes, bytes] | None = None
) -> None:
    status, headers, body = answer
    out = [*headers, extra] if extra is not None else list(headers)
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body, "more_body": False})


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
    ) -> None:
        settings, frontend = runtime.settings, runtime.frontend
        self._metrics = metrics
        self._tracing = tracing
        self._table = table
        self._sessions = runtime.sessions
        self._tokens = token_manager
        self._upstreams = upstreams
        self._fallback = fallback
        self._cookie = frontend.cookie_name
        self._body_timeout = settings.upstream_timeout
        self._rules = ForwardRules.create(
            (frontend.cookie_name, frontend.login_cookie_name),
            settings.trusted_proxies,
            public_host=urlsplit(frontend.public_url).netloc,
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
            await _send_answer(send, _BAD_PATH)
            return
        route = self._table.match(path)
        if route is None:
            if _host_lines(scope["headers"]) > 1:
                await _send_answer(send, _TWO_HOSTS)
                return
            await self._fallback(scope, receive, send)
            return
        await self._proxy(scope, receive, send, route, path)

    async def _proxy(
        self, scope: Scope, receive: Receive, send: Send, route: Route, path: CanonicalPath
    ) -> None:
        config = route.config
        method: str = scope["method"]
        state = scope.get("state")
        if state is not None:
            state["route"] = config.prefix  # the metrics' and the access log's route label
        if config.methods is not None and method not in config.methods:
            await _send_answer(send, _NOT_ALLOWED, (b"allow", route.allow))
            return
        if method not in _ORDINARY:  # a route without `methods`: no PROPFIND, PURGE, TRACE...
            await _send_answer(send, _NOT_ALLOWED, (b"allow", _ALLOW_ANY))
            return
        if path.params and not config.path_params:
            await _send_answer(send, _PATH_PARAMS)
            return
        raw_headers = scope["headers"]
        client = scope.get("client")
        # The socket peer: a trusted ingress is judged by its own address, not by the
        # client address uvicorn's ProxyHeadersMiddleware put in its place.
        peer = (state.get("direct_peer") if state else None) or (client[0] if client else None)
        inbound = filter_request_headers(raw_headers, self._rules, trusted=self._rules.trusts(peer))
        if inbound.hosts > 1:  # which one did the browser mean? (RFC 9112 §3.2)
            await _send_answer(send, _TWO_HOSTS)
            return
        if config.csrf and not csrf_ok(raw_headers):
            log_refusal(scope, 403, "csrf", csrf_refusal(raw_headers))
            await _send_answer(send, _CSRF)
            return
        ref: SessionRef | None = None
        session: Session | None = None
        bearer: str | None = None
        if config.token != "none":
            try:
                ref = self._sessions.ref_from_cookie(find_cookie(inbound.cookies, self._cookie))
                if ref is not None and state is not None:
                    state["session"] = short_hash(ref.hash)  # for the access log
                session = await self._sessions.load(ref) if ref is not None else None
                result = (
                    await self._tokens.access_token_for(ref, session) if ref and session else None
                )
            except StoreUnavailable:
                _log.warning("%s: session store unavailable", config.prefix)
                await _send_answer(send, _STORE_DOWN)
                return
            if isinstance(result, Bearer):
                bearer = result.token
            elif isinstance(result, TokenFailure) or config.token == "user":
                answer = _token_answer(result) if result else _NOT_AUTHENTICATED
                if answer[0] == 401:
                    cookie = find_cookie(inbound.cookies, self._cookie)
                    code = result.code if result else "not_authenticated"
                    reason = code if result else no_session_reason(cookie, ref)
                    log_refusal(scope, 401, code, reason)
                await _send_answer(send, answer)
                return
            # token = "optional" without a usable session: forwarded without a bearer
        request_id = state.get("request_id") if state else None
        query: bytes = scope["query_string"]
        target = route.target(path)
        exchange = _Exchange(
            app=self,
            route=route,
            method=method,
            target=f"{target}?{safe_query(query)}" if query else target,
            inbound=inbound,
            headers=outbound_headers(
                inbound,
                bearer=bearer,
                peer=peer,
                scheme=scope.get("scheme", "http"),
                request_id=request_id or request_id_from(raw_headers),
            ),
            ref=ref,
            session=session,
            bearer=bearer,
            state=state,
        )
        if ref is None or session is None:  # no session: only its origin's pool bounds it
            await exchange.run(receive, send)
            return
        slots, key = self._slots, ref.hash
        if not slots.take(key):
            try:
                await slots.acquire(key)
            except UpstreamBusy:
                _log.warning("%s: a session's share of upstream requests is in use", config.prefix)
                await _send_answer(send, _SESSION_BUSY)
                return
        try:
            await exchange.run(receive, send)
        finally:
            slots.release(key)


@dataclass(slots=True)
class _Exchange:
    """One request to an upstream and its response streamed back."""

    app: ProxyApp
    route: Route
    method: str
    target: str  # path and query, canonical: sent byte for byte after the route's origin
    inbound: Inbound = field(repr=False)
    headers: list[tuple[str, str]] = field(repr=False)  # holds the bearer
    ref: SessionRef | None
    session: Session | None
    bearer: str | None = field(repr=False)
    state: dict[str, Any] | None = None  # the request's scope state (route, timings)

    async def run(self, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        watch = DisconnectWatch(receive, task, delay=_WATCH_DELAY)
        stream: BodyStream | None = None
        if self.inbound.has_body:
            stream = BodyStream(receive, timeout=self.app._body_timeout, on_done=watch.later)
        else:
            watch.later()
        try:
            await self._run(send, watch, stream)
        except asyncio.CancelledError:
            # Our watcher cancelled us: the browser is gone. Anyone else's cancel stands.
            if watch.gone and task is not None and task.uncancel() == 0:
                return
            raise
        except OSError:
            return  # an ASGI server whose send raises once the browser has gone (ASGI 2.4)
        finally:
            watch.stop()

    async def _send_request(self, stream: BodyStream | None, send: Send) -> UpstreamExchange | None:
        pool, origin = self.app._upstreams, self.route.origin
        started = time.perf_counter()
        try:
            body = stream.chunks() if stream is not None else None
            tracing = self.app._tracing
            if tracing is None:
                return await pool.request(origin, self.method, self.target, self.headers, body)
            # ---- tracing on: the hop's span; our traceparent goes upstream ----
            prefix = self.route.config.prefix
            with tracing.upstream(self.method, prefix, self.headers) as (span, headers):
                response = await pool.request(origin, self.method, self.target, headers, body)
                span.set_attribute("http.response.status_code", response.status)
                return response
        except (UpstreamUnavailable, UpstreamTimeout) as exc:
            if stream is not None and stream.client_gone:
                return None  # nobody left to answer
            if stream is not None and stream.stalled:
                await _send_answer(send, _STALLED)
                return None
            _log.warning("%s: %s", self.route.config.prefix, exc)
            await _send_answer(send, _BY_KIND[exc.kind])
            return None
        finally:
            self._upstream_timing(time.perf_counter() - started)

    def _upstream_timing(self, seconds: float) -> None:
        """bff_upstream_duration_seconds, and `upstream_ms` of the access log."""
        if self.app._metrics is not None:
            self.app._metrics.upstream(self.route.config.prefix, seconds)
        if self.state is not None:
            self.state["upstream_s"] = self.state.get("upstream_s", 0.0) + seconds

    async def _run(self, send: Send, watch: DisconnectWatch, stream: BodyStream | None) -> None:
        response = await self._send_request(stream, send)
        if (
            response is not None
            and response.status == 401
            and self.route.config.retry_on_401
            and stream is None  # a body is gone once sent: only bodiless requests retry
            and self.method in _IDEMPOTENT
        ):
            response = await self._retry(response, send)
        if response is None:
            return
        try:
            await self._stream(response, send, watch, stream)
        except (UpstreamUnavailable, UpstreamTimeout) as exc:
            # Mid-body: the status line is gone, so the only honest signal is to end the
            # connection without completing the response (the server closes it).
            _log.warning("%s: response body aborted: %s", self.route.config.prefix, exc)
            response.close()
        finally:
            response.release()

    async def _retry(self, response: UpstreamExchange, send: Send) -> UpstreamExchange | None:
        """The upstream refused our token: refresh once (unless someone already did) and
        send the request again; only idempotent requests without a body. Releases
        `response` unless it is returned."""
        ref, session, bearer = self.ref, self.session, self.bearer
        if ref is None or session is None or bearer is None:
            return response
        try:
            result = await self.app._tokens.access_token_for(ref, session, stale_token=bearer)
        except StoreUnavailable:
            result = STORE_DOWN
        except BaseException:
            response.release()
            raise
        if isinstance(result, Bearer) and result.token == bearer:
            return response  # nothing newer: the upstream's 401 is the answer
        response.release()
        if not isinstance(result, Bearer):
            await _send_answer(send, _token_answer(result))
            return None
        stale = ("Authorization", f"Bearer {bearer}")
        self.headers = [h for h in self.headers if h != stale]
        self.headers.append(("Authorization", f"Bearer {result.token}"))
        self.bearer = result.token
        return await self._send_request(None, send)

    async def _stream(
        self,
        response: UpstreamExchange,
        send: Send,
        watch: DisconnectWatch,
        stream: BodyStream | None,
    ) -> None:
        status = response.status
        headers = filter_response_headers(
            response.raw_headers, self.app._rules, bodiless=status in _BODILESS
        )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        read, at_eof = response.readany, response.at_eof
        chunk = await read()
        if at_eof():
            watch.stop()  # from here a disconnect cannot cancel the final send
            await send({"type": "http.response.body", "body": chunk, "more_body": False})
            return
        if stream is None or stream.done:
            watch.start()  # a longer body: stop reading it as soon as the browser leaves
        LIVE_CONNECTIONS.inc()  # a streamed response: counted while it stays open
        try:
            while not at_eof():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                chunk = await read()
            watch.stop()  # from here a disconnect cannot cancel the final send
            await send({"type": "http.response.body", "body": chunk, "more_body": False})
        finally:
            LIVE_CONNECTIONS.dec()
