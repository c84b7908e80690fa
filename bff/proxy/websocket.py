"""WebSocket proxying on routes with `websocket = true` (SPEC.md "Live connections").

A browser cannot add a header to a WebSocket upgrade, so `X-CSRF` cannot guard it: the
`Origin` header (set by the browser, never by a page) must be on the route's `origins`
(default: the origin of BFF_PUBLIC_URL), or the answer is 403 `origin`; without a live
session it is 401. Both refusals are HTTP answers before the upgrade (the ASGI
`websocket.http.response` extension; a server without it refuses with its own 403), and
nothing reaches the upstream.

The upstream handshake (the `websockets` client) carries the session's bearer (refreshed
first if due, as for HTTP), the forwarded headers of the HTTP proxy (`X-Forwarded-*`,
`X-Request-ID`) and the browser's subprotocols; never its Cookie header, nor its
`Sec-WebSocket-*` headers (each hop negotiates its own key, version and compression).
Frames are relayed both ways one message at a time (`ws_relay`: back-pressure, at most
`max_queue` read ahead, `max_message` bytes each, close codes mapped). A session holds at
most `LiveSessions.max_per_session` live connections per worker (429 past it).

The socket lives only as long as its session (`LiveSessions.ending`): when the session
ends on any instance, or its absolute or idle end passes, or its access token expires
and no fresh one can be had, the browser gets close code 4401 and the upstream 1001.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import replace

from starlette.types import ASGIApp, Receive, Scope, Send
from websockets.asyncio.client import ClientConnection

from bff.answers import Answer, Kind, json_answer
from bff.config.checks import web_origin
from bff.errors import PathRejected, StoreUnavailable
from bff.proxy.credentials import Credentials, credentials
from bff.proxy.forward_rules import ForwardRules
from bff.proxy.forwarding import outbound_headers
from bff.proxy.replies import BAD_PATH, NOT_AUTHENTICATED, PATH_PARAMS, TWO_HOSTS
from bff.proxy.request_checks import inbound_request_id
from bff.proxy.request_headers import filter_request_headers
from bff.proxy.routes import Route, RouteTable, canonical_path, safe_query
from bff.proxy.ws_relay import (
    MAX_MESSAGE,
    MAX_QUEUE,
    open_upstream,
    relay,
    to_browser,
    to_upstream,
)
from bff.session.events import SESSION_ENDED_CLOSE
from bff.session.live import EndScope, LiveSessions
from bff.session.records import Session, short_hash
from bff.session.service import SessionRef, SessionService
from bff.telemetry.logs import new_request_id
from bff.telemetry.metrics import LIVE_CONNECTIONS
from bff.telemetry.refusals import log_refusal
from bff.tokens.manager import TokenManager
from bff.tokens.results import STORE_DOWN, Bearer

__all__ = ["WebSocketProxy"]

_log = logging.getLogger("bff.proxy")
_TOKEN_RETRY = 5.0  # seconds between refresh attempts while the provider fails
_ORIGIN = json_answer(Kind.CSRF, "Origin not allowed for WebSocket on this route", code="origin")
_CROWDED = json_answer(
    Kind.TOO_MANY_REQUESTS, "too many live connections", code="too_many_connections"
)


def _origin_refusal(headers: Iterable[tuple[bytes, bytes]], allowed: frozenset[str]) -> str | None:
    """Why the upgrade's `Origin` is refused (the log line's reason), or None."""
    values = [v for k, v in headers if k == b"origin"]
    if len(values) != 1:
        return "origin_missing" if not values else "origin_repeated"
    origin = web_origin(values[0].decode("latin-1"))
    return None if origin is not None and origin in allowed else "origin_foreign"


class WebSocketProxy:
    """`websocket` scopes under a route with `websocket = true`; everything else goes on
    to `inner` (which refuses other upgrades, as before)."""

    def __init__(
        self,
        inner: ASGIApp,
        *,
        table: RouteTable,
        sessions: SessionService,
        tokens: TokenManager,
        live: LiveSessions,
        rules: ForwardRules,
        cookie_name: str,
        public_url: str,
        refresh_skew: int,
        clock: Callable[[], float],
        open_timeout: float = 30.0,
        max_message: int = MAX_MESSAGE,
        max_queue: int = MAX_QUEUE,
    ) -> None:
        self._inner = inner
        self._table = table
        self._sessions = sessions
        self._tokens = tokens
        self._live = live
        self._rules = rules
        self._cookie = cookie_name
        self._skew = refresh_skew
        self._clock = clock
        self._open_timeout = open_timeout
        self._max_message = max_message
        self._max_queue = max_queue
        public = web_origin(public_url)
        self._origins: dict[str, frozenset[str]] = {
            route.config.prefix: frozenset(route.config.origins or ((public,) if public else ()))
            for route in table.routes
            if route.config.websocket
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self._inner(scope, receive, send)
            return
        raw = scope.get("raw_path") or scope["path"].encode("utf-8")  # checked as raw bytes
        try:
            path = canonical_path(raw)
        except PathRejected:
            await self._refuse(scope, send, BAD_PATH)
            return
        route = self._table.match(path)
        if route is None or not route.config.websocket:
            await self._inner(scope, receive, send)
            return
        if path.params and not route.config.path_params:
            await self._refuse(scope, send, PATH_PARAMS)
            return
        target = route.target(path)
        query: bytes = scope.get("query_string", b"")
        await self._upgrade(
            scope, receive, send, route, f"{target}?{safe_query(query)}" if query else target
        )

    async def _refuse(self, scope: Scope, send: Send, answer: Answer) -> None:
        """An HTTP answer instead of the upgrade; nothing has left for the upstream."""
        status, headers, body = answer
        if "websocket.http.response" in scope.get("extensions", {}):
            await send(
                {"type": "websocket.http.response.start", "status": status, "headers": headers}
            )
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008})  # the server's own 403

    async def _upgrade(
        self, scope: Scope, receive: Receive, send: Send, route: Route, target: str
    ) -> None:
        connect_message = await receive()
        if connect_message["type"] != "websocket.connect":
            return  # gone before it started
        raw_headers = scope["headers"]
        client = scope.get("client")
        state = scope.get("state") or {}
        peer = state.get("direct_peer") or (client[0] if client else None)
        inbound = filter_request_headers(raw_headers, self._rules, trusted=self._rules.trusts(peer))
        if inbound.hosts > 1:
            await self._refuse(scope, send, TWO_HOSTS)
            return
        origin = _origin_refusal(raw_headers, self._origins[route.config.prefix])
        if origin is not None:
            log_refusal(scope, _ORIGIN[0], "origin", origin)
            await self._refuse(scope, send, _ORIGIN)
            return
        # The Origin check stands in for X-CSRF; a socket always needs a live session.
        config = replace(route.config, csrf=False, token="user")
        creds = await credentials(
            scope,
            config,
            inbound,
            sessions=self._sessions,
            tokens=self._tokens,
            cookie_name=self._cookie,
        )
        if not isinstance(creds, Credentials):
            await self._refuse(scope, send, creds)
            return
        ref, session = creds.ref, creds.session
        if ref is None or session is None:  # (token = "user": a session or a refusal)
            await self._refuse(scope, send, NOT_AUTHENTICATED)
            return
        bearer = creds.bearer if route.config.token != "none" else None
        # What the upstream may see: no cookie at all, none of the browser's handshake.
        inbound.forward_cookie = None
        inbound.headers = [h for h in inbound.headers if not h[0].startswith("sec-websocket-")]
        request_id = state.get("request_id") or inbound_request_id(raw_headers)
        headers = outbound_headers(
            inbound,
            bearer=bearer,
            peer=peer,
            scheme="https" if scope.get("scheme") == "wss" else "http",
            request_id=request_id or new_request_id(),
        )
        if not self._live.admit(ref.hash):  # bounded per session, before the upstream
            await self._refuse(scope, send, _CROWDED)
            return
        try:
            upstream = await open_upstream(
                "ws" + route.origin.removeprefix("http") + target,  # http -> ws, https -> wss
                headers,
                scope.get("subprotocols") or (),
                open_timeout=self._open_timeout,
                max_message=self._max_message,
                max_queue=self._max_queue,
            )
            if not isinstance(upstream, ClientConnection):
                await self._refuse(scope, send, upstream)
                return
            await self._serve(scope, receive, send, upstream, ref, session, bearer is not None)
        finally:
            self._live.leave(ref.hash)

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        upstream: ClientConnection,
        ref: SessionRef,
        session: Session,
        bearer: bool,
    ) -> None:
        LIVE_CONNECTIONS.inc()
        outcome: tuple[str, int, str] | None = None
        try:
            await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
            async with self._live.ending(ref.hash, session.expires_at) as ending:
                keeper = None
                if bearer:  # a route with token = "none" does not depend on the token
                    keeper = asyncio.create_task(self._keep_token(ref, session, ending))
                    keeper.add_done_callback(_retrieve)
                try:
                    outcome = await relay(receive, send, upstream)
                finally:
                    if keeper is not None:
                        keeper.cancel()
            if ending.reason is not None:
                _log.info("WebSocket of session %s closed: %s", short_hash(ref.hash), ending.reason)
                with contextlib.suppress(OSError):
                    await send(
                        {
                            "type": "websocket.close",
                            "code": SESSION_ENDED_CLOSE,
                            "reason": ending.reason,
                        }
                    )
                await upstream.close(1001, "session ended")
            elif outcome is not None and outcome[0] == "browser":
                await upstream.close(to_upstream(outcome[1]), outcome[2])
            elif outcome is not None:
                with contextlib.suppress(OSError):
                    await send(
                        {
                            "type": "websocket.close",
                            "code": to_browser(outcome[1]),
                            "reason": outcome[2],
                        }
                    )
        except OSError:
            pass  # the browser has gone (ASGI 2.4: send raises)
        finally:
            LIVE_CONNECTIONS.dec()
            await upstream.close()

    async def _keep_token(self, ref: SessionRef, session: Session, ending: EndScope) -> None:
        """Refresh as for HTTP when the token is due; end the socket (4401) once no
        fresh token can be had before the current one expires."""
        expires_at = session.tokens.expires_at
        while expires_at is not None:
            await asyncio.sleep(max(expires_at - self._skew - self._clock(), 1.0))
            try:
                current = await self._sessions.load_by_hash(ref.hash)
                result = await self._tokens.access_token_for(ref, current) if current else None
                if isinstance(result, Bearer):
                    current = await self._sessions.load_by_hash(ref.hash)
            except StoreUnavailable:
                current, result = None, STORE_DOWN
            if isinstance(result, Bearer) and current is not None:
                expires_at = current.tokens.expires_at  # refreshed (here or by anyone)
                continue
            gone = result is None or isinstance(result, Bearer) or result.status == 401
            if gone or expires_at <= self._clock():
                ending.end("token_unavailable")
                return
            await asyncio.sleep(_TOKEN_RETRY)  # the provider or the store failed: again


def _retrieve(task: asyncio.Task[None]) -> None:
    """A failed token keeper is logged once, never left as an unretrieved exception."""
    if not task.cancelled() and task.exception() is not None:
        _log.warning("WebSocket token keeper failed: %s", type(task.exception()).__name__)
