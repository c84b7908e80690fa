"""The user's own session inventory (SPEC.md, "session inventory"):

    GET    /bff/sessions                 the user's live sessions (same `sub`)
    DELETE /bff/sessions/{id}            end one of them
    POST   /bff/sessions/revoke-others   end all of them but the requesting one

Every call needs `X-CSRF: 1` and a live session (else 403 `csrf`, 401
`not_authenticated`). Sessions are shown under opaque handles (`bff.session.inventory`);
a handle that names no session of this user, another user's included, is 404
`not_found`, so nothing tells whether it exists. Ending goes through
`SessionService.end`: deleted and unindexed on every instance, the refresh token revoked
at the provider, one audit line (`revoke`). Errors are raised and rendered by app.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bff.config.settings import Settings
from bff.errors import CsrfRejected, NotAuthenticated, NotFound
from bff.proxy.headers import csrf_ok, csrf_refusal, header_values
from bff.session.cookies import expire_cookie, find_cookie
from bff.session.inventory import Listed, is_handle, match_handle, user_entries
from bff.session.records import Session, short_hash
from bff.session.service import SessionRef, SessionService

__all__ = ["SESSIONS_API_METHODS", "SessionsApi"]

# The method table of these endpoints (app.py's ENDPOINT_METHODS lists them too). The
# literal path comes before the templated one: it owns `revoke-others` for every method.
SESSIONS_API_METHODS: dict[str, tuple[str, ...]] = {
    "/bff/sessions": ("GET",),
    "/bff/sessions/revoke-others": ("POST",),
    "/bff/sessions/{id}": ("DELETE",),
}
_NO_STORE = {"cache-control": "no-store"}


class SessionsApi:
    """The handlers, bound to the app's session service and settings."""

    def __init__(self, *, sessions: SessionService, handle_key: bytes, settings: Settings) -> None:
        self._sessions = sessions
        self._key = handle_key
        self._settings = settings

    def handlers(self) -> dict[str, Callable[[Request], Any]]:
        """Path -> handler, in the order of SESSIONS_API_METHODS."""
        return {
            "/bff/sessions": self.list_sessions,
            "/bff/sessions/revoke-others": self.revoke_others,
            "/bff/sessions/{id}": self.delete,
        }

    async def list_sessions(self, request: Request) -> Response:
        ref, session = await self._current(request)
        listed = await self._own(session.sub)
        listed = [item for item in listed if item.hash != ref.hash]
        ttl = session.ttl(now=self._sessions.now(), idle_timeout=self._settings.idle_timeout)
        listed.append(Listed(ref.hash, session, ttl))
        entries = user_entries(
            self._key,
            listed,
            current=ref.hash,
            now=self._sessions.now(),
            idle_timeout=self._settings.idle_timeout,
        )
        return JSONResponse({"sessions": entries}, headers=_NO_STORE)

    async def delete(self, request: Request) -> Response:
        ref, session = await self._current(request)
        handle = str(request.path_params.get("id", ""))
        target = None
        if is_handle(handle):
            hashes = set(await self._sessions.find(sub=session.sub)) | {ref.hash}
            target = match_handle(self._key, handle, sorted(hashes))
        found = None
        if target == ref.hash:
            found = session
        elif target is not None:
            inspected = await self._sessions.inspect(target)
            if inspected is not None and inspected[0].sub == session.sub:
                found = inspected[0]
        if target is None or found is None or not await self._end(request, target, found):
            raise NotFound("no such session", reason="unknown_session")
        response = Response(status_code=204, headers=_NO_STORE)
        if target == ref.hash:  # the user ended the session they are using
            s = self._settings
            response.headers.append(
                "set-cookie",
                expire_cookie(s.cookie_name, secure=s.secure, samesite=s.cookie_samesite),
            )
        return response

    async def revoke_others(self, request: Request) -> Response:
        ref, session = await self._current(request)
        revoked = 0
        for item in await self._own(session.sub):
            if item.hash != ref.hash and await self._end(request, item.hash, item.session):
                revoked += 1
        return JSONResponse({"revoked": revoked}, headers=_NO_STORE)

    # ---- helpers ---------------------------------------------------------------------
    async def _current(self, request: Request) -> tuple[SessionRef, Session]:
        """The CSRF check, then the requesting session (sliding its idle expiry, as every
        authenticated request does); 403 / 401 otherwise."""
        headers = request.scope["headers"]
        if not csrf_ok(headers):
            raise CsrfRejected("X-CSRF: 1 header required", reason=csrf_refusal(headers))
        cookie = find_cookie(header_values(headers, b"cookie"), self._settings.cookie_name)
        ref = self._sessions.ref_from_cookie(cookie)
        if ref is None:
            raise NotAuthenticated(
                "no live session", reason="cookie_invalid" if cookie else "no_cookie"
            )
        request.scope.setdefault("state", {})["session"] = short_hash(ref.hash)  # access log
        session = await self._sessions.load(ref)
        if session is None:
            raise NotAuthenticated("no live session", reason="session_not_found")
        return ref, session

    async def _own(self, sub: str) -> list[Listed]:
        """The live sessions of `sub`, read without sliding their expiry. The index
        names them; each record must say `sub` too."""
        listed = []
        for h in await self._sessions.find(sub=sub):
            found = await self._sessions.inspect(h)
            if found is not None and found[0].sub == sub:
                listed.append(Listed(h, *found))
        return listed

    async def _end(self, request: Request, session_hash: str, session: Session) -> bool:
        return await self._sessions.end(
            session_hash,
            session,
            "revoke",
            revoke=True,
            client_ip=request.client.host if request.client else None,
            user_agent=request.headers.get("user-agent"),
        )
