"""`/bff/login` and `/bff/callback`: the browser's way into a session (the flow itself is
`bff.oidc.login`). Errors are raised and rendered from the answer table
(`bff.web.error_pages`); every refused callback is an audit event.

bff must know the host the browser addressed: the login-binding cookie is host-only, so
a login started on another host than BFF_PUBLIC_URL's is sent there once, and a callback
that arrives elsewhere gets a page naming both hosts and the fix."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bff.errors import BadRequest, CsrfRejected, IdpError, RequestRejected
from bff.oidc.login import CallbackResult
from bff.oidc.login_checks import LOGIN_STATE_TTL
from bff.oidc.redirects import printable_host, same_host
from bff.proxy.forward_rules import ForwardRules
from bff.proxy.request_checks import navigation_ok
from bff.session.cookies import build_set_cookie
from bff.session.records import short_hash
from bff.telemetry.audit import audit
from bff.web.inputs import client_ip, single
from bff.web.runtime import Runtime

__all__ = ["callback", "login"]

_log = logging.getLogger("bff.endpoints")
_HOST_HOP = "-host-redirect"  # marks a login already sent to the public URL once
_FOUND = 302  # a redirect is the success answer of both


def _rt(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.bff
    return runtime


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


def _param(request: Request, name: str) -> str | None:
    return single(request.query_params.getlist(name), name)


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
        if rt.cookie(request.scope, hop_cookie) is None:
            # The login-binding cookie is host-only: a login started here could never
            # finish at the public URL's callback. Start it there instead, once.
            query = request.url.query
            target = f"{s.public_url}/bff/login" + (f"?{query}" if query else "")
            _log.info(
                "login on host %s redirected to %s (BFF_PUBLIC_URL)",
                printable_host(host) or "(unprintable)",
                urlsplit(s.public_url).netloc,
            )
            response = RedirectResponse(target, status_code=_FOUND)
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
        return_url=_param(request, "returnUrl"),
        binding_cookie=rt.cookie(request.scope, s.login_cookie_name),
        previous=rt.session_ref(request.scope),
        client=client_ip(request.scope),  # after BFF_TRUSTED_PROXIES (ProxyHeadersMiddleware)
        acr_values=_param(request, "acr_values"),  # a step-up (bff.oidc.step_up)
        max_age=_param(request, "max_age"),
    )
    response = RedirectResponse(start.redirect_to, status_code=_FOUND)
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
    rt = _rt(request)
    s = rt.frontend
    params: dict[str, str] = {}
    for name in ("iss", "state", "code", "error", "error_description"):
        value = _param(request, name)
        if value is not None:
            params[name] = value
    previous = rt.session_ref(request.scope)
    binding = rt.cookie(request.scope, s.login_cookie_name)
    host = _browser_host(request)
    if binding is None and host is not None and not same_host(s.public_url, host):
        raise _wrong_host(host, s.public_url)
    return await rt.flow.finish(
        params,
        binding_cookie=binding,
        user_agent=user_agent,
        previous=previous,
        client_ip=client_ip(request.scope) or "",
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
            client_ip=client_ip(request.scope),
            user_agent=user_agent,
        )
        raise
    audit(
        "login",
        outcome="success",
        now=rt.clock(),
        sub=result.session.sub,
        session=short_hash(result.ref.hash),
        client_ip=client_ip(request.scope),
        user_agent=user_agent,
    )
    response = RedirectResponse(result.return_url, status_code=_FOUND)
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
