"""Which frontend serves a request (pure: host, then the longest path base on a segment
boundary), and the dispatcher in front of the frontends' apps: the path base taken off,
404 `unknown_host` elsewhere, 400 for two Host headers, a trusted proxy's
X-Forwarded-Host believed, health endpoints at any address."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bff.web.frontend_dispatch import FrontendDispatch
from bff.web.frontend_select import FrontendSelector, host_name, strip_base

pytestmark = pytest.mark.anyio

URLS = [
    "https://a.example",
    "https://shared.example/shop",
    "https://shared.example/shop/admin",
    "https://shared.example",
    "http://localhost:8000",
]


@pytest.mark.parametrize(
    ("host", "path", "expected"),
    [
        ("a.example", "/bff/user", (0, "")),
        ("A.EXAMPLE:443", "/", (0, "")),  # case and port do not matter
        ("a.example.", "/x", (0, "")),
        ("shared.example", "/shop", (1, "/shop")),
        ("shared.example", "/shop/bff/login", (1, "/shop")),
        ("shared.example", "/shop/admin/api", (2, "/shop/admin")),  # longest base wins
        ("shared.example", "/shopping", (3, "")),  # segment boundary
        ("shared.example", "/", (3, "")),
        ("localhost:8000", "/", (4, "")),
        ("b.example", "/", None),
        ("", "/", None),
        (None, "/", None),
        ("a.example:notaport", "/", None),
        ("a.example/evil", "/", None),
        ("a.example\r\nx", "/", None),
    ],
)
def test_select(host: str | None, path: str, expected: tuple[int, str] | None) -> None:
    assert FrontendSelector(URLS).select(host, path) == expected


def test_a_host_without_a_root_frontend_serves_only_its_bases() -> None:
    selector = FrontendSelector(["https://x.example/one", "https://x.example/two"])
    assert selector.select("x.example", "/two/bff/user") == (1, "/two")
    assert selector.select("x.example", "/three") is None
    assert selector.select("x.example", "/") is None


def test_helpers() -> None:
    assert strip_base("/shop", "/shop") == "/"
    assert strip_base("/shop/x", "/shop") == "/x"
    assert strip_base("/shopx", "/shop") is None
    assert strip_base("/x", "") == "/x"
    assert host_name("[::1]:8000") == "::1"
    assert host_name("x" * 300) is None


class Recorder:
    """An app that records the scope it was given and answers 200."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scopes.append(dict(scope))
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": self.name.encode()})


async def call(
    app: Any, host: str | list[str] | None, path: str, **extra: Any
) -> tuple[int, bytes]:
    hosts = [host] if isinstance(host, str) else (host or [])
    headers = [(b"host", h.encode()) for h in hosts] + extra.pop("headers", [])
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": extra.pop("raw_path", path.encode()),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        **extra,
    }
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def dispatch(trusted: tuple[str, ...] = ()) -> tuple[FrontendDispatch, list[Recorder]]:
    apps = [Recorder(str(i)) for i in range(len(URLS))]
    return FrontendDispatch(apps, URLS, trusted), apps


async def test_dispatch_takes_the_path_base_off() -> None:
    app, apps = dispatch()
    assert await call(app, "shared.example", "/shop/bff/user") == (200, b"1")
    scope = apps[1].scopes[-1]
    assert (scope["path"], scope["raw_path"]) == ("/bff/user", b"/bff/user")
    assert scope["state"]["path_base"] == "/shop"
    assert await call(app, "shared.example", "/shop") == (200, b"1")
    assert apps[1].scopes[-1]["path"] == "/"
    assert await call(app, "a.example", "/bff/user") == (200, b"0")
    assert apps[0].scopes[-1]["path"] == "/bff/user"


async def test_an_encoded_path_base_is_not_the_base() -> None:
    app, apps = dispatch()
    status, body = await call(app, "shared.example", "/shop/x", raw_path=b"/%73hop/x")
    assert status == 404 and json.loads(body)["error"] == "unknown_host"
    assert apps[1].scopes == []


async def test_unknown_host_is_404_json_but_health_answers() -> None:
    app, apps = dispatch()
    status, body = await call(app, "other.example", "/bff/user")
    assert status == 404
    assert json.loads(body) == {
        "error": "unknown_host",
        "error_description": "no frontend is served at this address",
    }
    assert await call(app, None, "/bff/user") == (404, body)
    assert await call(app, "10.0.0.7:8000", "/healthz") == (200, b"0")
    assert await call(app, "10.0.0.7:8000", "/readyz") == (200, b"0")
    assert all(not a.scopes for a in apps[1:])


async def test_two_host_headers_are_refused() -> None:
    app, apps = dispatch()
    status, body = await call(app, ["a.example", "shared.example"], "/")
    assert status == 400 and json.loads(body)["error"] == "invalid_request"
    assert all(not a.scopes for a in apps)


async def test_x_forwarded_host_only_from_a_trusted_proxy() -> None:
    forwarded = [(b"x-forwarded-host", b"a.example, evil.example")]
    app, _ = dispatch(("10.0.0.0/8",))
    trusted = {"state": {"direct_peer": "10.1.2.3"}}
    assert await call(app, "shared.example", "/", headers=forwarded, **trusted) == (200, b"0")
    other = {"state": {"direct_peer": "192.0.2.1"}}
    assert await call(app, "shared.example", "/", headers=forwarded, **other) == (200, b"3")
    app, _ = dispatch()  # no trusted proxies: never believed
    assert await call(app, "shared.example", "/", headers=forwarded, **trusted) == (200, b"3")


async def test_lifespan_goes_to_the_first_app_and_a_stray_websocket_is_closed() -> None:
    app, apps = dispatch()
    await app({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert apps[0].scopes == [{"type": "lifespan"}]
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    ws = {"type": "websocket", "path": "/ws", "headers": [(b"host", b"nope.example")]}
    await app(ws, None, send)  # type: ignore[arg-type]
    assert sent == [{"type": "websocket.close", "code": 1008}]
