"""Pure ASGI middleware: request id, security headers, and an access log that never
prints a query string (the callback's carries the authorization code)."""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bff.headers import request_id_from

__all__ = ["DirectPeerMiddleware", "RequestContextMiddleware"]

_access = logging.getLogger("bff.access")
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
    ) -> None:
        self.app = app
        self.own_prefixes = own_prefixes
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_from(scope["headers"])
        scope.setdefault("state", {})["request_id"] = request_id
        own = scope["path"].startswith(self.own_prefixes)
        status = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers: list[Any] = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                extra = _COMMON + (_BFF_ONLY if own else [])
                headers.extend((k, v) for k, v in extra if k not in present)
                if b"x-request-id" not in present:
                    headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if self.access_log:
                self._log(scope, status, started, request_id)

    @staticmethod
    def _log(scope: Scope, status: int, started: float, request_id: str) -> None:
        _access.info(
            "%s %s %s %.1fms rid=%s",
            scope["method"],
            scope["path"][:256].encode("unicode_escape").decode("ascii"),
            status or "-",
            (time.perf_counter() - started) * 1000,
            request_id,
        )


class DirectPeerMiddleware:
    """Remembers the socket peer in `scope["state"]["direct_peer"]` before uvicorn's
    ProxyHeadersMiddleware replaces `client` with the address a trusted proxy reports:
    the proxy decides from it whether inbound X-Forwarded-* may be believed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("client"):
            scope.setdefault("state", {})["direct_peer"] = scope["client"][0]
        await self.app(scope, receive, send)
