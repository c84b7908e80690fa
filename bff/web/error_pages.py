"""Where a raised error becomes an HTTP answer for the /bff endpoints: status, code and
Retry-After from the answer table (`bff.answers`), as JSON, or as a small HTML page for a
browser on the login, callback and logout pages. Starlette's own 405 is rendered the same
way. Refusals a user or an operator would ask about are logged with their reason."""

from __future__ import annotations

import base64
import hashlib
import html
import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from bff.answers import TABLE, Kind, spec
from bff.errors import BffError, RequestRejected
from bff.telemetry.refusals import log_refusal

__all__ = ["error_response", "handle_error", "method_not_allowed"]

_log = logging.getLogger("bff.app")
_HTML_PATHS = ("/bff/login", "/bff/callback", "/bff/logout")
# Refusals logged wherever they happen: a 401 and a CSRF refusal (every refused callback
# is logged too).
_LOGGED = frozenset({TABLE[Kind.NOT_AUTHENTICATED].status, TABLE[Kind.CSRF].status})
_PAGE_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;color:#1d2433;background:#f4f6fb;margin:0}"
    "main{max-width:40rem;margin:3rem auto;background:#fff;border:1px solid #dfe3ec;"
    "border-radius:12px;padding:1.25rem 1.5rem}h1{font-size:1.35rem;margin:0 0 .75rem}"
    "code{background:#eef1f8;padding:0 .3rem;border-radius:4px}"
)
# The page's own style and nothing else (the rest of /bff/* gets default-src 'none').
_PAGE_CSP = (
    "default-src 'none'; style-src 'sha256-"
    + base64.b64encode(hashlib.sha256(_PAGE_STYLE.encode()).digest()).decode()
    + "'; frame-ancestors 'none'"
)


def _classify(exc: BffError) -> tuple[int, str, str, dict[str, str]]:
    """Status, code, description and extra headers of `exc`'s answer (`bff.answers`)."""
    entry = spec(exc.kind)
    if isinstance(exc, RequestRejected):
        code, description, retry_after = exc.code, exc.description, exc.retry_after
    else:
        code, description, retry_after = entry.code, entry.description, entry.retry_after
    extra = {} if retry_after is None else {"retry-after": str(retry_after)}
    return entry.status, code, description, extra


def _page(description: str, code: str, home: str) -> str:
    return (
        "<!doctype html><meta charset=utf-8><title>Sign-in problem</title>"
        f"<style>{_PAGE_STYLE}</style><main>"
        f"<h1>Sign-in problem</h1><p>{html.escape(description)}</p>"
        f'<p><code>{html.escape(code)}</code></p><p><a href="{html.escape(home)}">'
        "Back to the app</a></p>"
        "</main>"
    )


def error_response(request: Request, exc: BffError) -> Response:
    status, code, description, headers = _classify(exc)
    if isinstance(exc, RequestRejected) and (
        exc.status in _LOGGED or request.url.path == "/bff/callback"
    ):
        log_refusal(request.scope, exc.status, exc.code, exc.reason)
    if status >= 500:  # bff's or a dependency's failure: worth an operator's look
        _log.warning(
            "%s %s -> %s (%s: %s)",
            request.method,
            request.url.path,
            status,
            type(exc).__name__,
            exc,
        )
    headers["cache-control"] = "no-store"
    accept = request.headers.get("accept", "")
    if request.url.path in _HTML_PATHS and "text/html" in accept:
        runtime = getattr(request.app.state, "bff", None)
        home = f"{runtime.frontend.public_url}/" if runtime is not None else "/"
        headers["content-security-policy"] = _PAGE_CSP
        return HTMLResponse(_page(description, code, home), status_code=status, headers=headers)
    return JSONResponse(
        {"error": code, "error_description": description}, status_code=status, headers=headers
    )


async def handle_error(request: Request, exc: Exception) -> Response:
    """Starlette's exception handler for the error tree."""
    assert isinstance(exc, BffError)
    return error_response(request, exc)


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    """Starlette's 405 (raised by a route for a method it does not list), as JSON."""
    assert isinstance(exc, HTTPException)
    entry = spec(Kind.METHOD_NOT_ALLOWED)
    return JSONResponse(
        {"error": entry.code, "error_description": f"{request.method} is not allowed"},
        status_code=entry.status,
        headers={**(exc.headers or {}), "cache-control": "no-store"},
    )
