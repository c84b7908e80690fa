"""The operator's HTTP admin API, on the admin listener only (`BFF_ADMIN_LISTEN`):

    GET    /admin/sessions?sub=SUB | ?sid=SID   live sessions of every frontend, as
                                                `bff sessions list --json` shows them
    DELETE /admin/sessions?sub=SUB | ?sid=SID   revoke them all: {"revoked": N}
    DELETE /admin/sessions/{hash}               revoke one, HASH as the list shows it

Every call needs `Authorization: Bearer <token>`, the token being the content of
`BFF_ADMIN_TOKEN_FILE` (read at start, compared in constant time); without it, or with
another, the answer is 401 with `WWW-Authenticate: Bearer`. Without a token file the
API is not served at all (404). Revoking goes through `SessionService.end`, as the CLI
does: deleted and unindexed, announced on the session-ended channel (the session's live
connections close on every worker), the refresh token revoked at the provider, one
`revoke` audit line. Nothing here logs or returns the token.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bff.answers import Kind, json_answer
from bff.config.load import read_admin_token
from bff.config.model import Frontend, Settings
from bff.errors import ConfigError
from bff.oidc.client import OidcClient
from bff.session.bus import create_bus
from bff.session.crypto import KeyRing
from bff.session.events import EventBus
from bff.session.frontend_sessions import frontend_sessions
from bff.session.inventory import Listed, admin_rows
from bff.session.live import LiveSessions
from bff.session.service import SessionService
from bff.store import SessionStore

__all__ = ["ADMIN_API_METHODS", "AdminApi", "create_admin_api"]

ADMIN_API_METHODS: dict[str, tuple[str, ...]] = {
    "/admin/sessions": ("GET", "DELETE"),
    "/admin/sessions/{id}": ("DELETE",),
}
_REVOKE_TIMEOUT = 10.0  # an operator waits, as with `bff sessions revoke`
_HEX = frozenset("0123456789abcdef")
_HASH_LENGTH = 32  # `bff.session.records.session_hash`
_NO_STORE = {"cache-control": "no-store"}


def _answer(kind: Kind, description: str, **headers: str) -> Response:
    status, raw_headers, body = json_answer(kind, description)
    response = Response(body, status_code=status, headers=headers)
    for name, value in raw_headers:
        if name != b"content-length":  # Response sets it
            response.headers[name.decode()] = value.decode()
    return response


class AdminApi:
    """The handlers, bound to the token and a session service over the admin store."""

    def __init__(
        self,
        *,
        token: str,
        services: Sequence[tuple[Frontend, SessionService]],
        bus: EventBus | None = None,
    ) -> None:
        self._token = token.encode("utf-8")
        # Every frontend's sessions, each opened by its own service (namespaced store keys
        # and records); a revocation goes to that frontend's provider.
        self._services = tuple(services)
        self._bus = bus  # closed by aclose

    async def aclose(self) -> None:
        """Release the session-ended channel this API opened (the admin app's lifespan)."""
        if self._bus is not None:
            await self._bus.aclose()

    def __repr__(self) -> str:
        return "AdminApi(<token>)"

    def handlers(self) -> dict[str, Callable[[Request], Any]]:
        return {"/admin/sessions": self.sessions, "/admin/sessions/{id}": self.session}

    async def sessions(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        query = request.query_params
        given = {k: query.getlist(k) for k in ("sub", "sid") if k in query}
        if len(given) != 1 or any(len(v) != 1 or not v[0] for v in given.values()):
            return _answer(Kind.INVALID_REQUEST, "give exactly one of sub or sid, once")
        name, (value,) = next(iter(given.items()))
        found: list[tuple[Frontend, SessionService, Listed]] = []
        for frontend, service in self._services:  # each frontend's index holds its own
            if name == "sub":
                hashes = await service.find(sub=value)
            else:
                hashes = await service.find(idp_sid=value)
            for h in hashes:
                inspected = await service.inspect(h)
                if inspected is not None:
                    found.append((frontend, service, Listed(h, *inspected)))
        if request.method == "GET":
            return JSONResponse(self._rows(found), headers=_NO_STORE)
        revoked = 0
        for _, service, item in found:
            revoked += await self._end(request, service, item)
        return JSONResponse({"revoked": revoked}, headers=_NO_STORE)

    async def session(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        h = str(request.path_params.get("id", ""))
        if len(h) == _HASH_LENGTH and set(h) <= _HEX:
            for _, service in self._services:  # only its own frontend's service opens it
                inspected = await service.inspect(h)
                if inspected is not None:
                    if await self._end(request, service, Listed(h, *inspected)):
                        return JSONResponse({"revoked": 1}, headers=_NO_STORE)
                    break
        return _answer(Kind.NOT_FOUND, "no live session with this hash")

    def _rows(self, found: list[tuple[Frontend, SessionService, Listed]]) -> list[dict[str, str]]:
        """As `bff sessions list --json`: every frontend's, the most recently seen first."""
        rows: list[dict[str, str]] = []
        for frontend, service, item in found:
            rows += admin_rows(
                [item],
                now=service.now(),
                idle_timeout=frontend.idle_timeout,
                frontend=frontend.name,
            )
        rows.sort(key=lambda row: row["session"])
        rows.sort(key=lambda row: row["last_seen"], reverse=True)  # ISO 8601 UTC: sortable
        return rows

    def _refused(self, request: Request) -> Response | None:
        """None when the request carries the admin token; else the 401 to send."""
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return _answer(
                Kind.NOT_AUTHENTICATED,
                "admin bearer token required",
                **{"www-authenticate": "Bearer"},
            )
        if not hmac.compare_digest(credentials.strip().encode("utf-8", "replace"), self._token):
            return _answer(
                Kind.NOT_AUTHENTICATED,
                "admin bearer token required",
                **{"www-authenticate": 'Bearer error="invalid_token"'},
            )
        return None

    async def _end(self, request: Request, service: SessionService, item: Listed) -> bool:
        return await service.end(
            item.hash,
            item.session,
            "revoke",
            revoke=True,
            client_ip=request.client.host if request.client else None,
            user_agent=request.headers.get("user-agent"),
        )


def create_admin_api(
    settings: Settings,
    *,
    store: SessionStore,
    oidc: OidcClient,
    http: httpx.AsyncClient,
    clock: Callable[[], float],
    bus: EventBus | None = None,
) -> AdminApi | None:
    """The admin API over the admin listener's own store connection and provider client;
    None when no token file is configured (the API is then not served). The token is read
    here, at start; ConfigError when the file went bad since the settings were loaded.
    A revocation is announced on `bus` (default: the store's session-ended channel, which
    `AdminApi.aclose` closes), so the session's live connections close on every worker."""
    if not settings.admin_token_file:
        return None
    try:
        token = read_admin_token(settings.admin_token_file)
    except ValueError as exc:
        raise ConfigError([f"BFF_ADMIN_TOKEN_FILE: {exc}"]) from None
    own_bus = bus is None
    channel = bus or create_bus(settings.session_store, prefix=settings.store_prefix)
    live = LiveSessions(channel, store=store, clock=clock)
    keys = KeyRing(settings.secret_keys)
    services = [
        (
            frontend,
            frontend_sessions(
                frontend,
                store=store,
                keys=keys,
                clock=clock,
                revoke=(
                    oidc
                    if frontend is settings.frontend
                    else OidcClient.for_frontend(frontend, http=http, clock=clock)
                ).revoke,
                revoke_timeout=_REVOKE_TIMEOUT,
                events=live,
            ),
        )
        for frontend in settings.frontends
    ]
    return AdminApi(token=token, services=services, bus=channel if own_bus else None)
