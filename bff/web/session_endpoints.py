"""`/bff/user`, `/bff/logout` and `/bff/backchannel-logout`: reading and ending a session.
Errors are raised and rendered from the answer table (`bff.web.error_pages`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from bff.errors import BadRequest, NotAuthenticated
from bff.oidc.backchannel import backchannel_logout
from bff.session.cookies import expire_cookie
from bff.telemetry.refusals import no_session_reason
from bff.web.inputs import client_ip, require_csrf, single
from bff.web.runtime import Runtime

__all__ = ["backchannel", "logout", "user"]

_MAX_LOGOUT_BODY = 65536
_FOUND = 302  # logout's success answer: back to the app (or on to the provider)


def _rt(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.bff
    return runtime


async def user(request: Request) -> Response:
    require_csrf(request.scope["headers"])
    rt = _rt(request)
    ref, session = await rt.current(request.scope)
    if ref is None or session is None:
        cookie = rt.cookie(request.scope, rt.frontend.cookie_name)
        raise NotAuthenticated("no live session", reason=no_session_reason(cookie, ref))
    body: dict[str, Any] = dict(session.claims)
    body["bff:logout_url"] = f"/bff/logout?sid={ref.logout_sid}"
    body["bff:session_expires_in"] = session.ttl(
        now=rt.clock(), idle_timeout=rt.frontend.idle_timeout
    )
    return JSONResponse(body, headers={"cache-control": "no-store"})


async def logout(request: Request) -> Response:
    rt = _rt(request)
    s = rt.frontend
    # Fail closed on the method (THREATS.md 13): a POST needs X-CSRF, anything else the
    # session's sid. The route serves GET and POST only; this holds even if that changed.
    by_post = request.method == "POST"
    if by_post:
        require_csrf(request.scope["headers"])
    ref, session = await rt.current(request.scope)
    if not by_post and session is not None:
        assert ref is not None
        sid = single(request.query_params.getlist("sid"), "sid")
        if sid != ref.logout_sid:
            # A cross-site link must not be able to log the user out.
            raise BadRequest("sid does not match the session", code="invalid_sid")
    if ref is None or session is None:
        # No live session: nothing to end here, and nothing for a cross-site link (which
        # carries no SameSite=Strict cookie) to do - no provider logout, no cookie change
        # unless a dead cookie of ours came with the request.
        response = RedirectResponse(s.post_logout_redirect, status_code=_FOUND)
        if ref is not None:
            response.headers.append(
                "set-cookie",
                expire_cookie(s.cookie_name, secure=s.secure, samesite=s.cookie_samesite),
            )
        return response
    target = await rt.flow.logout(
        ref,
        session,
        client_ip=client_ip(request.scope),
        user_agent=request.headers.get("user-agent"),
    )
    response = RedirectResponse(target, status_code=_FOUND)
    response.headers.append(
        "set-cookie", expire_cookie(s.cookie_name, secure=s.secure, samesite=s.cookie_samesite)
    )
    return response


async def backchannel(request: Request) -> Response:
    """POST /bff/backchannel-logout: server to server, authenticated by the signed token."""
    rt = _rt(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise BadRequest("expected application/x-www-form-urlencoded")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_LOGOUT_BODY:
            raise BadRequest("request body too large")
    try:
        form = parse_qs(body.decode("ascii", "replace"), max_num_fields=8)
    except ValueError:
        raise BadRequest("too many form fields") from None
    tokens = form.get("logout_token", [])
    if len(tokens) != 1 or not tokens[0]:
        raise BadRequest("exactly one logout_token is required")
    await backchannel_logout(
        tokens[0],
        oidc=rt.oidc,
        sessions=rt.sessions,
        clock=rt.clock,
        client_ip=client_ip(request.scope),
    )
    return JSONResponse({}, headers={"cache-control": "no-store"})
