"""Development OpenID provider for the demo (`make run`) and the integration tests.

NOT FOR PRODUCTION: any user name logs in without a password, the signing key lives
in memory only, and `/_dev/*` lets anyone inspect and break it. It binds loopback only.

    python deploy/demo/provider.py --host 127.0.0.1 --port 9000

Importable by file path too: `create_provider_app(ProviderConfig(...))` is an ASGI app.
This module is the Starlette edge; the OAuth logic (authlib server classes, joserfc
signing) is in `provider_core.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import logging
import sys
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

# Loaded by path (importlib) or run as a script: make the sibling module importable.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.append(_HERE)  # appended: never shadows anything already importable

from authlib.oauth2.rfc6749 import OAuth2Error  # noqa: E402
from provider_core import DevProvider  # noqa: E402
from provider_http import (  # noqa: E402
    FAVICON,
    DroppedConnection,
    OAuthRequest,
    hidden_fields,
    hide_simulated_outage,
    login_form,
    oauth_request,
    page,
    to_response,
)
from provider_models import ClientConfig, ProviderConfig, Session, User  # noqa: E402

from bff.config.checks import is_loopback_host  # noqa: E402  (the same rule as the BFF's)

__all__ = ["ClientConfig", "ProviderConfig", "create_provider_app", "main"]

COOKIE = "devop_session"
FAIL_MODES = ("none", "token_500", "token_down")
log = logging.getLogger("devop")


def create_provider_app(
    config: ProviderConfig, *, backchannel_transport: httpx.AsyncBaseTransport | None = None
) -> Starlette:
    """The provider as an ASGI app; `backchannel_transport` lets tests route logout POSTs."""
    op = DevProvider(config)
    server = op.server
    issuer = config.issuer

    def authorize_error(oauth: OAuthRequest, error: OAuth2Error) -> Response:
        if error.redirect_uri:  # RFC 6749 §4.1.2.1: redirect only to a verified URI
            reply = server.handle_error_response(oauth, error)
            server.execute_hook("after_create_authorization_response", reply)  # adds iss
            return to_response(reply)
        detail = f"<p><b>{html.escape(error.error)}</b>: {html.escape(error.description or '')}"
        return page("Authorization request refused", detail + "</p>", 400)

    auth_methods = ["client_secret_basic", "client_secret_post"]
    metadata = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks",
        "end_session_endpoint": f"{issuer}/end_session",
        "revocation_endpoint": f"{issuer}/revoke",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": ["sub", "sid", "auth_time", "name", "email"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "id_token_signing_alg_values_supported": ["RS256"],
        "authorization_response_iss_parameter_supported": True,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
    }

    async def discovery(request: Request) -> JSONResponse:
        return JSONResponse(metadata)

    async def jwks(request: Request) -> JSONResponse:
        return JSONResponse(op.public_jwks.as_dict())

    async def authorize(request: Request) -> Response:
        oauth = await oauth_request(request)
        params = list(oauth.payload.data.items())
        session = op.session_for_cookie(request.cookies.get(COOKIE))
        user = User(session.sub, session.sid, session.auth_time) if session else None
        try:
            # A POST is the login form: its user is the one being created, not the cookie's.
            grant = server.get_consent_grant(oauth, None if request.method == "POST" else user)
        except OAuth2Error as error:
            return authorize_error(oauth, error)
        if request.method == "GET":
            if user is None or grant.prompt == "login":
                return login_form(params)
            return to_response(server.create_authorization_response(oauth, user, grant))
        if oauth.payload.data.get("action") == "cancel":  # error=access_denied
            return to_response(server.create_authorization_response(oauth, None, grant))
        username = oauth.payload.data.get("username", "").strip()
        if not username or len(username) > 64:
            return login_form(params, "Enter a user name (1 to 64 characters).")
        if session is not None:
            op.end_session(session.sid)  # a new login replaces the old provider session
        session = op.login(username)
        user = User(session.sub, session.sid, session.auth_time)
        response = to_response(server.create_authorization_response(oauth, user, grant))
        response.set_cookie(COOKIE, session.cookie, httponly=True, samesite="lax", path="/")
        return response

    async def token(request: Request) -> Response:
        if config.token_latency_ms:
            await asyncio.sleep(config.token_latency_ms / 1000)
        if op.fail_mode == "token_500":
            return PlainTextResponse("simulated provider failure", 500)
        if op.fail_mode == "token_down":
            return DroppedConnection()
        return to_response(server.create_token_response(await oauth_request(request)))

    async def revoke(request: Request) -> Response:
        reply = server.create_endpoint_response("revocation", await oauth_request(request))
        if reply.status == 200:
            op.stats["revocations"] += 1
        return to_response(reply)

    async def end_session(request: Request) -> Response:
        oauth = await oauth_request(request)
        session = op.session_for_cookie(request.cookies.get(COOKIE))
        oauth.session_sid = session.sid if session else None
        try:
            validated = server.validate_endpoint_request("end_session", oauth)
        except OAuth2Error as error:
            detail = html.escape(error.description or error.error)
            return page("Logout request refused", f"<p>{detail}</p>", 400)
        if validated.needs_confirmation and request.method == "GET":
            hidden = hidden_fields(list(oauth.payload.data.items()))
            body = "<p>Sign out of the development provider too?</p>"
            body += f'<form method="post" action="/end_session">{hidden}'
            body += '<div class="actions"><button>Sign out</button></div></form>'
            return page("Sign out?", body)
        reply = server.create_endpoint_response("end_session", validated)
        await send_backchannel(getattr(validated, "ended", []))
        if reply is not None:
            response = to_response(reply)
        else:
            unregistered = oauth.payload.data.get("post_logout_redirect_uri")
            note = " (post_logout_redirect_uri is not registered, so no redirect)"
            response = page(
                "Signed out", f"<p>You are signed out{note if unregistered else ''}.</p>"
            )
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
        return response

    async def send_backchannel(sessions: list[Session]) -> list[dict[str, Any]]:
        """OIDC Back-Channel Logout 1.0: best effort, short timeout, before redirecting."""
        results: list[dict[str, Any]] = []
        timeout = httpx.Timeout(config.backchannel_timeout)
        async with httpx.AsyncClient(transport=backchannel_transport, timeout=timeout) as http:
            for session in sessions:
                for client_id in sorted(session.clients):
                    uri = op.clients[client_id].config.backchannel_logout_uri
                    if not uri:
                        continue
                    body = {"logout_token": op.logout_token(session, client_id)}
                    try:
                        status: int | str = (await http.post(uri, data=body)).status_code
                    except httpx.HTTPError as exc:
                        status = type(exc).__name__
                    ok = status == 200
                    op.stats[
                        "backchannel_logouts_sent" if ok else "backchannel_logouts_failed"
                    ] += 1
                    log.info(
                        "back-channel logout to %s for sid %s: %s", client_id, session.sid, status
                    )
                    results.append({"client_id": client_id, "sid": session.sid, "status": status})
        return results

    # -- dev-only observability and fault injection ------------------------------
    async def favicon(request: Request) -> Response:
        return Response(
            FAVICON, media_type="image/svg+xml", headers={"cache-control": "max-age=86400"}
        )

    async def dev_stats(request: Request) -> JSONResponse:
        return JSONResponse(op.stats_snapshot())

    async def dev_reset_stats(request: Request) -> JSONResponse:
        op.reset_stats()
        return JSONResponse(op.stats_snapshot())

    async def dev_fail(request: Request) -> JSONResponse:
        mode = request.query_params.get("mode", "")
        if mode not in FAIL_MODES:
            return JSONResponse({"error": "invalid_request", "modes": FAIL_MODES}, 400)
        op.fail_mode = mode
        return JSONResponse({"mode": mode})

    async def dev_backchannel_logout(request: Request) -> JSONResponse:
        sub, sid = request.query_params.get("sub"), request.query_params.get("sid")
        if not sub and not sid:
            return JSONResponse(
                {"error": "invalid_request", "error_description": "sub or sid"}, 400
            )
        sessions = [op.end_session(s.sid) for s in op.find_sessions(sub, sid)]
        if not sessions:
            return JSONResponse({"error": "no_session", "ended_sessions": 0}, 404)
        sent = await send_backchannel(sessions)
        return JSONResponse({"ended_sessions": len(sessions), "notified": sent})

    async def dev_refresh_token_status(request: Request) -> JSONResponse:
        return JSONResponse(op.refresh_token_status(request.query_params.get("token", "")))

    routes = [
        Route("/.well-known/openid-configuration", discovery),
        Route("/jwks", jwks),
        Route("/authorize", authorize, methods=["GET", "POST"]),
        Route("/token", token, methods=["POST"]),
        Route("/revoke", revoke, methods=["POST"]),
        Route("/end_session", end_session, methods=["GET", "POST"]),
        Route("/favicon.svg", favicon),
        Route("/favicon.ico", favicon),
        Route("/_dev/stats", dev_stats),
        Route("/_dev/reset-stats", dev_reset_stats, methods=["POST"]),
        Route("/_dev/fail", dev_fail, methods=["POST"]),
        Route("/_dev/backchannel-logout", dev_backchannel_logout, methods=["POST"]),
        Route("/_dev/refresh-token-status", dev_refresh_token_status),
    ]
    logging.getLogger("uvicorn.error").addFilter(hide_simulated_outage)
    app = Starlette(routes=routes)
    app.state.provider = op  # for in-process tests
    return app


_BANNER = """
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!!  DEVELOPMENT OPENID PROVIDER - NOT FOR PRODUCTION                  !!
!!  Any user name signs in without a password; keys are throw-away;   !!
!!  /_dev/* lets anyone inspect and break it. Loopback only.          !!
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
  issuer: {issuer}
  client_id: {client_id}
  redirect_uris: {redirect_uris}
"""


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Development OpenID provider (NOT for production)")
    p.add_argument("--host", default="127.0.0.1", help="loopback address only")
    p.add_argument("--port", type=int, default=9000)
    p.add_argument("--issuer", help="default: http://HOST:PORT")
    p.add_argument("--access-token-ttl", type=int, default=60, help="seconds")
    p.add_argument("--id-token-ttl", type=int, default=300, help="seconds")
    p.add_argument("--refresh-token-ttl", type=int, default=8 * 3600, help="seconds")
    p.add_argument("--token-latency-ms", type=int, default=0, help="artificial /token delay")
    p.add_argument("--client-id", default="bff-demo")
    p.add_argument("--client-secret", default="bff-demo-secret-not-for-production")
    p.add_argument("--redirect-uri", action="append", dest="redirect_uris")
    p.add_argument("--post-logout-redirect-uri", action="append", dest="post_logout_uris")
    p.add_argument("--backchannel-logout-uri")
    p.add_argument("--access-log", action="store_true", help="log requests (they hold tokens)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import uvicorn  # only the CLI needs it

    args = _parse_args(argv)
    if not is_loopback_host(args.host):
        print(f"refusing --host {args.host}: the dev provider binds loopback only", file=sys.stderr)
        return 2
    host = f"[{args.host}]" if ":" in args.host else args.host
    issuer = (args.issuer or f"http://{host}:{args.port}").rstrip("/")
    bff = "http://localhost:8000"  # the demo BFF's defaults, when no URIs are given
    client = ClientConfig(
        client_id=args.client_id,
        client_secret=args.client_secret,
        redirect_uris=tuple(args.redirect_uris or [f"{bff}/bff/callback"]),
        post_logout_redirect_uris=tuple(args.post_logout_uris or [f"{bff}/"]),
        backchannel_logout_uri=args.backchannel_logout_uri,
    )
    config = ProviderConfig(
        issuer=issuer,
        clients=(client,),
        access_token_ttl=args.access_token_ttl,
        id_token_ttl=args.id_token_ttl,
        refresh_token_ttl=args.refresh_token_ttl,
        token_latency_ms=args.token_latency_ms,
    )
    banner = _BANNER.format(
        issuer=issuer, client_id=client.client_id, redirect_uris=" ".join(client.redirect_uris)
    )
    print(banner, file=sys.stderr, flush=True)
    logging.basicConfig(level=logging.INFO, format="devop: %(message)s")
    app = create_provider_app(config)
    uvicorn.run(app, host=args.host, port=args.port, access_log=args.access_log, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
