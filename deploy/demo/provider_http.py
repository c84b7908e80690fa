"""Starlette side of the development OpenID provider: authlib's request view of a
Starlette request, reply conversion, the HTML pages, and the simulated outage."""

from __future__ import annotations

import html
import logging

from authlib.oauth2 import OAuth2Request
from authlib.oauth2.rfc6749 import OAuth2Payload
from provider_models import Reply
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send

__all__ = [
    "DroppedConnection",
    "OAuthRequest",
    "hidden_fields",
    "hide_simulated_outage",
    "login_form",
    "oauth_request",
    "page",
    "to_response",
]


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._datalist: dict[str, list[str]] = {}
        for key, value in items:
            self._datalist.setdefault(key, []).append(value)
        self._data = {k: v[0] for k, v in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._datalist


class OAuthRequest(OAuth2Request):  # type: ignore[misc]
    """authlib's request view: query parameters for GET, the form body for POST."""

    def __init__(self, request: Request, form: list[tuple[str, str]]) -> None:
        # authlib refuses plain http except on loopback; this provider only listens on
        # loopback (the CLI enforces it), so present the URL as the loopback it is.
        url = request.url.replace(scheme="http", netloc="localhost")
        super().__init__(request.method, str(url), headers=request.headers)
        items = form if request.method == "POST" else request.query_params.multi_items()
        self.payload: _Payload = _Payload(items)
        self._query = dict(request.query_params)
        self.session_sid: str | None = None  # set by the handlers from the cookie

    @property
    def args(self) -> dict[str, str]:
        return self._query

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data


async def oauth_request(request: Request) -> OAuthRequest:
    form: list[tuple[str, str]] = []
    if request.method == "POST":
        async with request.form() as data:
            form = [(k, v) for k, v in data.multi_items() if isinstance(v, str)]
    return OAuthRequest(request, form)


def to_response(reply: Reply) -> Response:
    if isinstance(reply.body, dict):
        return JSONResponse(reply.body, reply.status, headers=dict(reply.headers))
    return Response(reply.body or b"", reply.status, headers=dict(reply.headers))


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:32rem;margin:3rem auto}}
.warn{{background:#b00;color:#fff;padding:.5rem;font-weight:bold}}</style></head>
<body><p class="warn">Development OpenID provider: NOT FOR PRODUCTION</p>
<h1>{title}</h1>{body}</body></html>"""


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    headers = {"Cache-Control": "no-store", "X-Frame-Options": "DENY"}
    return HTMLResponse(_PAGE.format(title=html.escape(title), body=body), status, headers)


def hidden_fields(params: list[tuple[str, str]]) -> str:
    return "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in params
        if k not in ("username", "action")
    )


def login_form(params: list[tuple[str, str]], error: str = "") -> HTMLResponse:
    client = html.escape(dict(params).get("client_id", ""))
    body = (
        f"<p>Client <code>{client}</code> asks you to sign in. Any user name works; "
        "there is no password.</p>"
        + (f'<p style="color:#b00">{html.escape(error)}</p>' if error else "")
        + f'<form method="post" action="/authorize">{hidden_fields(params)}'
        '<label>User name <input name="username" autofocus required maxlength="64" '
        'placeholder="alice"></label> <button name="action" value="login">Sign in</button> '
        '<button name="action" value="cancel" formnovalidate>Cancel</button></form>'
    )
    return page("Sign in", body, 400 if error else 200)


class _SimulatedOutageError(Exception):
    """Raised after the response started, so uvicorn drops the connection."""


class DroppedConnection(Response):
    """`token_down`: the client sees the connection close mid-response (a transport error)."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"100")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        raise _SimulatedOutageError


def hide_simulated_outage(record: logging.LogRecord) -> bool:
    return not (record.exc_info and record.exc_info[0] is _SimulatedOutageError)
