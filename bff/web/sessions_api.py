"""The user's own session inventory (SPEC.md, "session inventory"):

    GET    /bff/sessions                 the user's live sessions (same `sub`)
    DELETE /bff/sessions/{id}            end one of them
    POST   /bff/sessions/revoke-others   end all of them but the requesting one

Every call needs `X-CSRF: 1` and a live session (else 403 `csrf`, 401
`not_authenticated`). Sessions are shown under opaque handles (`bff.session.inventory`);
a handle that names no session of this user, another user's included, is 404
`not_found`, so nothing tells whether it exists. Ending goes through
`SessionService.end`: deleted and unindexed on every instance, its live connections
closed everywhere (4401 `revoke`), the refresh token revoked at the provider, one audit
line (`revoke`). Errors are raised and rendered from the
answer table (`bff.web.error_pages`).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bff.errors import NotAuthenticated, NotFound
from bff.session.cookies import expire_cookie
from bff.session.inventory import Listed, is_handle, match_handle, user_entries
from bff.session.records import Session
from bff.session.service import SessionRef
from bff.telemetry.refusals import no_session_reason
from bff.web.inputs import client_ip, require_csrf
from bff.web.runtime import Runtime

__all__ = ["delete_session", "list_sessions", "revoke_others"]

_NO_STORE = {"cache-control": "no-store"}


def _rt(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.bff
    return runtime


async def list_sessions(request: Request) -> Response:
    """GET /bff/sessions: `{"sessions": [...]}`, the requesting session first."""
    rt = _rt(request)
    ref, session = await _current(request)
    now, idle = rt.clock(), rt.frontend.idle_timeout
    listed = await _others(rt, session.sub, current=ref.hash)
    listed.append(Listed(ref.hash, session, session.ttl(now=now, idle_timeout=idle)))
    key = rt.sessions.handle_key
    entries = user_entries(key, listed, current=ref.hash, now=now, idle_timeout=idle)
    return JSONResponse({"sessions": entries}, headers=_NO_STORE)


async def delete_session(request: Request) -> Response:
    """DELETE /bff/sessions/{id}: 204; the cookie expired too when it was this one."""
    rt = _rt(request)
    ref, session = await _current(request)
    handle = str(request.path_params.get("id", ""))
    target = None
    if is_handle(handle):
        hashes = set(await rt.sessions.find(sub=session.sub)) | {ref.hash}
        target = match_handle(rt.sessions.handle_key, handle, sorted(hashes))
    found = None
    if target == ref.hash:
        found = session
    elif target is not None:
        inspected = await rt.sessions.inspect(target)
        if inspected is not None and inspected[0].sub == session.sub:
            found = inspected[0]
    if target is None or found is None or not await _end(request, target, found):
        raise NotFound("no such session", reason="unknown_session")
    response = Response(status_code=204, headers=_NO_STORE)
    if target == ref.hash:  # the user ended the session they are using
        f = rt.frontend
        response.headers.append(
            "set-cookie", expire_cookie(f.cookie_name, secure=f.secure, samesite=f.cookie_samesite)
        )
    return response


async def revoke_others(request: Request) -> Response:
    """POST /bff/sessions/revoke-others: `{"revoked": N}`."""
    rt = _rt(request)
    ref, session = await _current(request)
    revoked = 0
    for item in await _others(rt, session.sub, current=ref.hash):
        if await _end(request, item.hash, item.session):
            revoked += 1
    return JSONResponse({"revoked": revoked}, headers=_NO_STORE)


async def _current(request: Request) -> tuple[SessionRef, Session]:
    """The CSRF check, then the requesting session (sliding its idle expiry, as every
    authenticated request does); 403 / 401 otherwise."""
    require_csrf(request.scope["headers"])
    rt = _rt(request)
    ref, session = await rt.current(request.scope)
    if ref is None or session is None:
        cookie = rt.cookie(request.scope, rt.frontend.cookie_name)
        raise NotAuthenticated("no live session", reason=no_session_reason(cookie, ref))
    return ref, session


async def _others(rt: Runtime, sub: str, *, current: str) -> list[Listed]:
    """The other live sessions of `sub`, read without sliding their expiry. The index
    names them; each record must say `sub` too."""
    listed = []
    for h in await rt.sessions.find(sub=sub):
        if h == current:
            continue
        found = await rt.sessions.inspect(h)
        if found is not None and found[0].sub == sub:
            listed.append(Listed(h, *found))
    return listed


async def _end(request: Request, session_hash: str, session: Session) -> bool:
    return await _rt(request).sessions.end(
        session_hash,
        session,
        "revoke",
        revoke=True,
        client_ip=client_ip(request.scope),
        user_agent=request.headers.get("user-agent"),
    )
