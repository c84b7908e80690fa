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
    "FAVICON",
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


_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · development provider</title><link rel="icon" href="/favicon.svg">
<style>
:root{{color-scheme:light;--ink:#1d2433;--muted:#5b6478;--line:#dfe3ec;--accent:#7a3cc2}}
body{{font:16px/1.5 system-ui,sans-serif;color:var(--ink);background:#f3f0f8;margin:0}}
main{{max-width:26rem;margin:3rem auto;background:#fff;border:1px solid var(--line);
border-radius:12px;box-shadow:0 6px 24px rgba(40,20,80,.08);overflow:hidden}}
.warn{{background:#b3261e;color:#fff;margin:0;padding:.5rem 1rem;font-size:.85rem;
font-weight:600;letter-spacing:.02em}}
.body{{padding:1.25rem 1.5rem 1.5rem}}h1{{font-size:1.35rem;margin:.2rem 0 .8rem}}
.brand{{color:var(--accent);font-weight:700;font-size:.85rem;text-transform:uppercase;
letter-spacing:.08em}}
label{{display:block;font-weight:600;margin:.8rem 0 .3rem}}
input[name=username]{{width:100%;box-sizing:border-box;font:inherit;padding:.55rem .7rem;
border:1px solid var(--line);border-radius:8px}}
.actions{{display:flex;gap:.6rem;margin-top:1rem}}
button{{font:inherit;font-weight:600;padding:.5rem 1.1rem;border-radius:8px;cursor:pointer;
border:1px solid var(--accent);background:var(--accent);color:#fff}}
button.secondary{{background:#fff;color:var(--accent)}}
.error{{color:#b3261e}}code{{background:#f1eef6;padding:0 .3rem;border-radius:4px}}
.note{{color:var(--muted);font-size:.9rem}}
</style></head>
<body><main><p class="warn">Development OpenID provider: NOT FOR PRODUCTION</p>
<div class="body"><div class="brand">devop · OpenID provider</div>
<h1>{title}</h1>{body}</div></main></body></html>"""
FAVICON = b"""<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">
<rect width="64" height="64" rx="32" fill="#7a3cc2"/>
<circle cx="32" cy="25" r="10" fill="#fff"/>
<path d="M14 52c2-10 9-15 18-15s16 5 18 15z" fill="#fff"/>
</svg>
"""


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
        f"<p>The application <code>{client}</code> asks you to sign in.</p>"
        '<p class="note">Any user name works; there is no password.</p>'
        + (f'<p class="error">{html.escape(error)}</p>' if error else "")
        + f'<form method="post" action="/authorize">{hidden_fields(params)}'
        '<label for="username">User name</label><input id="username" name="username" '
        'autofocus required maxlength="64" placeholder="alice" autocomplete="username">'
        '<div class="actions"><button name="action" value="login">Sign in</button>'
        '<button class="secondary" name="action" value="cancel" formnovalidate>Cancel'
        "</button></div></form>"
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
