"""Thin Starlette handlers for /bff/*, /healthz and the bare /readyz. Errors are raised, and
rendered in one place by app.py."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import Scope

from bff.answers import Kind, spec
from bff.config.model import Frontend, Settings
from bff.errors import (
    BadRequest,
    BffError,
    CsrfRejected,
    IdpError,
    NotAuthenticated,
    RequestRejected,
)
from bff.oidc.backchannel import backchannel_logout
from bff.oidc.client import OidcClient
from bff.oidc.login import LOGIN_STATE_TTL, CallbackResult, LoginFlow
from bff.oidc.redirects import printable_host, same_host
from bff.proxy.headers import ForwardRules, csrf_ok, csrf_refusal, header_values, navigation_ok
from bff.session.cookies import build_set_cookie, expire_cookie, find_cookie
from bff.session.records import Session, short_hash
from bff.session.service import SessionRef, SessionService
from bff.store import SessionStore
from bff.telemetry.audit import audit
from bff.web.lifecycle import Lifecycle

__all__ = [
    "Runtime",
    "backchannel",
    "healthz",
    "login",
    "callback",
    "logout",
    "log_refusal",
    "no_session_reason",
    "readiness_problems",
    "readiness_response",
    "readyz",
    "user",
]

_log = logging.getLogger("bff.endpoints")
_refusals = logging.getLogger("bff.refused")


def log_refusal(scope: Scope, status: int, code: str, reason: str) -> None:
    """One line per refused callback, CSRF refusal and 401 with its machine-readable
    reason: never a query string, a token, a code, a cookie value or a secret."""
    state = scope.get("state")
    _refusals.log(
        logging.INFO if status == 401 else logging.WARNING,
        "%s %s: %s %s reason=%s rid=%s",
        scope["method"],
        scope["path"][:256].encode("unicode_escape").decode("ascii"),
        status,
        code,
        reason,
        (state.get("request_id") if state else None) or "-",
    )


@dataclass(slots=True)
class Runtime:
    """The composed parts, reachable from handlers as `request.app.state.bff`."""

    settings: Settings
    frontend: Frontend  # the one these handlers serve
    oidc: OidcClient
    sessions: SessionService
    flow: LoginFlow
    clock: Callable[[], float]
    lifecycle: Lifecycle = field(default_factory=Lifecycle)  # draining: /readyz is 503


def _rt(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.bff
    return runtime


def _cookie(request: Request, name: str) -> str | None:
    return find_cookie(header_values(request.scope["headers"], b"cookie"), name)


def _single_param(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise BadRequest(f"parameter {name!r} given more than once")
    return values[0] if values else None


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def no_session_reason(cookie: str | None, ref: SessionRef | None) -> str:
    """Why a request has no live session, for the log line of its 401."""
    if not cookie:
        return "no_cookie"
    return "cookie_invalid" if ref is None else "session_not_found"


def _browser_host(request: Request) -> str | None:
    """The host (and port) the browser addressed, when bff can know it: the Host header
    when the public URL is plain http (bff serves the browser directly, development);
    a trusted proxy's X-Forwarded-Host otherwise. None: unknown, no host check."""
    rt = _rt(request)
    if rt.settings.trusted_proxies:
        state = request.scope.get("state") or {}
        peer = state.get("direct_peer")
        if not ForwardRules.create((), rt.settings.trusted_proxies).trusts(peer):
            return None
        return request.headers.get("x-forwarded-host", "").split(",")[0].strip() or None
    if rt.frontend.secure:
        return None  # behind a TLS-terminating proxy that we were not told about
    return request.headers.get("host")


_HOST_HOP = "-host-redirect"  # marks a login already sent to the public URL once


async def _current(request: Request) -> tuple[SessionRef | None, Session | None]:
    rt = _rt(request)
    ref = rt.sessions.ref_from_cookie(_cookie(request, rt.frontend.cookie_name))
    if ref is None:
        return None, None
    request.scope.setdefault("state", {})["session"] = short_hash(ref.hash)  # access log
    return ref, await rt.sessions.load(ref)


async def login(request: Request) -> Response:
    # A login is a top-level navigation: a hostile page's `<img src=/bff/login>` or
    # `fetch()` would otherwise burn its visitors' pending-login slots (and store state).
    if not navigation_ok(request.scope["headers"]):
        raise CsrfRejected(
            "/bff/login must be opened as a top-level navigation", reason="not_a_navigation"
        )
    rt = _rt(request)
    s = rt.frontend
    host = _browser_host(request)
    hop_cookie = s.login_cookie_name + _HOST_HOP
    if host is not None and not same_host(s.public_url, host):
        if _cookie(request, hop_cookie) is None:
            # The login-binding cookie is host-only: a login started here could never
            # finish at the public URL's callback. Start it there instead, once.
            query = request.url.query
            target = f"{s.public_url}/bff/login" + (f"?{query}" if query else "")
            _log.info(
                "login on host %s redirected to %s (BFF_PUBLIC_URL)",
                printable_host(host) or "(unprintable)",
                urlsplit(s.public_url).netloc,
            )
            response = RedirectResponse(target, status_code=302)
            response.headers.append(
                "set-cookie",
                build_set_cookie(hop_cookie, "1", max_age=30, secure=s.secure, samesite="lax"),
            )
            return response
        # Sent there before and back here again: a proxy in front rewrites the Host
        # header. Go on; the binding cookie lives on the host the browser sees.
        _log.warning(
            "login: the Host header %s is not BFF_PUBLIC_URL's %s even after a redirect; a "
            "proxy rewrites it? list it in BFF_TRUSTED_PROXIES and send X-Forwarded-Host",
            printable_host(host) or "(unprintable)",
            urlsplit(s.public_url).netloc,
        )
    start = await rt.flow.start(
        return_url=_single_param(request, "returnUrl"),
        binding_cookie=_cookie(request, s.login_cookie_name),
        previous=rt.sessions.ref_from_cookie(_cookie(request, s.cookie_name)),
        client=_client_ip(request),  # after BFF_TRUSTED_PROXIES (ProxyHeadersMiddleware)
    )
    response = RedirectResponse(start.redirect_to, status_code=302)
    # Lax, not Strict: the provider's redirect back to us is a cross-site navigation.
    response.headers.append(
        "set-cookie",
        build_set_cookie(
            s.login_cookie_name,
            start.binding_cookie,
            max_age=LOGIN_STATE_TTL,
            secure=s.secure,
            samesite="lax",
        ),
    )
    return response


async def _finish_login(request: Request, user_agent: str) -> CallbackResult:
    s = _rt(request).frontend
    params: dict[str, str] = {}
    for name in ("iss", "state", "code", "error", "error_description"):
        value = _single_param(request, name)
        if value is not None:
            params[name] = value
    previous = _rt(request).sessions.ref_from_cookie(_cookie(request, s.cookie_name))
    binding = _cookie(request, s.login_cookie_name)
    host = _browser_host(request)
    if binding is None and host is not None and not same_host(s.public_url, host):
        raise _wrong_host(host, s.public_url)
    return await _rt(request).flow.finish(
        params, binding_cookie=binding, user_agent=user_agent, previous=previous
    )


async def callback(request: Request) -> Response:
    rt = _rt(request)
    s = rt.frontend
    user_agent = request.headers.get("user-agent", "")
    try:
        result = await _finish_login(request, user_agent)
    except (RequestRejected, IdpError) as exc:
        # Every refused callback is an audit event; its reason is machine-readable.
        reason = exc.reason if isinstance(exc, RequestRejected) else "idp_unavailable"
        audit(
            "login_failed",
            outcome=reason,
            now=rt.clock(),
            client_ip=_client_ip(request),
            user_agent=user_agent,
        )
        raise
    audit(
        "login",
        outcome="success",
        now=rt.clock(),
        sub=result.session.sub,
        session=short_hash(result.ref.hash),
        client_ip=_client_ip(request),
        user_agent=user_agent,
    )
    response = RedirectResponse(result.return_url, status_code=302)
    response.headers.append(
        "set-cookie",
        build_set_cookie(
            s.cookie_name,
            rt.sessions.cookie_value(result.ref),
            max_age=int(result.ref.expires_at - rt.clock()),
            secure=s.secure,
            samesite=s.cookie_samesite,
        ),
    )
    return response


def _wrong_host(host: str, public_url: str) -> BadRequest:
    shown = printable_host(host) or "another address"
    return BadRequest(
        f"This sign-in came back to {shown}, but bff's public URL is {public_url}, and the "
        f"login cookie lives there. Open the app at {public_url} and log in again; or, if "
        f"{shown} is the right address, set BFF_PUBLIC_URL to it (and register its "
        "/bff/callback at the provider).",
        code="wrong_host",
    )


def _csrf_check(request: Request) -> None:
    headers = request.scope["headers"]
    if not csrf_ok(headers):
        raise CsrfRejected("X-CSRF: 1 header required", reason=csrf_refusal(headers))


async def user(request: Request) -> Response:
    _csrf_check(request)
    rt = _rt(request)
    ref, session = await _current(request)
    if ref is None or session is None:
        cookie = _cookie(request, rt.frontend.cookie_name)
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
        _csrf_check(request)
    ref, session = await _current(request)
    if not by_post and session is not None:
        assert ref is not None
        sid = _single_param(request, "sid")
        if sid != ref.logout_sid:
            # A cross-site link must not be able to log the user out.
            raise BadRequest("sid does not match the session", code="invalid_sid")
    if ref is None or session is None:
        # No live session: nothing to end here, and nothing for a cross-site link (which
        # carries no SameSite=Strict cookie) to do - no provider logout, no cookie change
        # unless a dead cookie of ours came with the request.
        response = RedirectResponse(s.post_logout_redirect, status_code=302)
        if ref is not None:
            response.headers.append(
                "set-cookie",
                expire_cookie(s.cookie_name, secure=s.secure, samesite=s.cookie_samesite),
            )
        return response
    target = await rt.flow.logout(
        ref, session, client_ip=_client_ip(request), user_agent=request.headers.get("user-agent")
    )
    response = RedirectResponse(target, status_code=302)
    response.headers.append(
        "set-cookie", expire_cookie(s.cookie_name, secure=s.secure, samesite=s.cookie_samesite)
    )
    return response


_MAX_LOGOUT_BODY = 65536


async def backchannel(request: Request) -> Response:
    """POST /bff/backchannel-logout: server to server, authenticated by the signed token."""
    rt = _rt(request)
    no_store = {"cache-control": "no-store"}
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
        tokens[0], oidc=rt.oidc, sessions=rt.sessions, clock=rt.clock, client_ip=_client_ip(request)
    )
    return JSONResponse({}, status_code=200, headers=no_store)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readiness_problems(
    store: SessionStore | SessionService, oidc: OidcClient, lifecycle: Lifecycle | None = None
) -> list[str]:
    """Why this process is not ready (shutting down, the store does not answer, no
    provider metadata); empty when ready. The reasons are shown only on the admin
    listener."""
    if lifecycle is not None and lifecycle.draining:
        # SIGTERM: out of rotation at once, while connections are still served
        return ["shutting down"]
    problems: list[str] = []
    try:
        await store.ping()
    except BffError as exc:
        problems.append(f"session store: {exc}")
    if oidc.metadata_or_none is None:
        problems.append(f"provider metadata not loaded: {oidc.last_error or 'pending'}")
    return problems


def readiness_response(
    problems: list[str], *, detailed: bool, store: dict[str, Any] | None = None
) -> Response:
    """`store`: the topology the session store sees (`SessionStore.topology()`: addresses
    and reachability, no secret), shown with the detailed answer only."""
    extra = {"store": store} if detailed and store is not None else {}
    if problems:
        entry = spec(Kind.NOT_READY)
        reason = "; ".join(problems) if detailed else entry.description
        return JSONResponse(
            {"error": entry.code, "error_description": reason, **extra},
            status_code=entry.status,
            headers={"retry-after": str(entry.retry_after), "cache-control": "no-store"},
        )
    return JSONResponse({"status": "ready", **extra}, headers={"cache-control": "no-store"})


async def readyz(request: Request) -> Response:
    """The public, bare status: the reason may name internal hosts (issue 11 defect 13)."""
    rt = _rt(request)
    problems = await readiness_problems(rt.sessions, rt.oidc, rt.lifecycle)
    return readiness_response(problems, detailed=False)
