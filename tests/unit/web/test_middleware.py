"""The request middleware: request ids, security headers, pass-through of other scopes, and
the access log."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bff.store.memory import MemoryStore
from bff.telemetry.logs import REQUEST_ID
from bff.web.middleware import DirectPeerMiddleware, RequestContextMiddleware
from tests.fake_idp import Clock, FakeIdp
from tests.unit.web.env import Env

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(("setting", "lines"), [("true", 1), ("false", 0)])
async def test_access_log_follows_its_setting(
    clock: Clock, caplog: pytest.LogCaptureFixture, setting: str, lines: int
) -> None:
    e = Env(FakeIdp(clock=clock), clock, MemoryStore(clock=clock), BFF_ACCESS_LOG=setting)
    try:
        with caplog.at_level(logging.INFO, logger="bff.access"):
            r = await e.browser.get("/healthz")
        assert r.status_code == 200
        assert len([x for x in caplog.records if x.name == "bff.access"]) == lines
    finally:
        await e.aclose()


# ---- the middleware alone, around a raw ASGI app ----------------------------------------

Message = dict[str, Any]


class Inner:
    """A raw ASGI app that answers `status` with `headers` and remembers what it saw."""

    def __init__(self, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None):
        self.status, self.headers = status, headers or []
        self.scopes: list[dict[str, Any]] = []
        self.request_ids: list[str | None] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        self.request_ids.append(REQUEST_ID.get())
        if scope["type"] != "http":
            await send({"type": f"{scope['type']}.passed"})
            return
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": b"{}", "more_body": False})


async def call(
    app: Any, path: str = "/api/x", headers: tuple[tuple[bytes, bytes], ...] = ()
) -> Any:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": list(headers),
        "client": ("192.0.2.1", 5000),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return scope, sent[0], dict(sent[0]["headers"])


async def test_a_fresh_request_id_is_set_echoed_and_in_the_logging_context() -> None:
    inner = Inner()
    scope, _, headers = await call(RequestContextMiddleware(inner, access_log=False))
    rid = scope["state"]["request_id"]
    assert len(rid) == 32 and int(rid, 16) >= 0  # a uuid4's hex
    assert headers[b"x-request-id"] == rid.encode()
    assert inner.request_ids == [rid]
    assert REQUEST_ID.get() is None  # reset once the request is done
    scope2, _, _ = await call(RequestContextMiddleware(inner, access_log=False))
    assert scope2["state"]["request_id"] != rid


async def test_a_well_formed_inbound_request_id_is_propagated_a_bad_one_replaced() -> None:
    app = RequestContextMiddleware(Inner(), access_log=False)
    scope, _, headers = await call(app, headers=((b"x-request-id", b"edge-42"),))
    assert scope["state"]["request_id"] == "edge-42" and headers[b"x-request-id"] == b"edge-42"
    scope, _, headers = await call(app, headers=((b"x-request-id", b"bad id\x01"),))
    assert scope["state"]["request_id"] != "bad id\x01"
    assert len(headers[b"x-request-id"]) == 32


@pytest.mark.parametrize("status", [200, 302, 401, 404, 500, 503])
async def test_security_headers_on_every_answer_errors_too(status: int) -> None:
    app = RequestContextMiddleware(Inner(status), access_log=False)
    _, start, headers = await call(app, path="/bff/user")
    assert start["status"] == status
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"referrer-policy"] == b"no-referrer"
    assert headers[b"cache-control"] == b"no-store"
    assert headers[b"x-frame-options"] == b"DENY"
    assert headers[b"content-security-policy"] == b"default-src 'none'; frame-ancestors 'none'"
    # under /api (the upstream's answer): the common ones only, the rest is the upstream's
    _, _, headers = await call(app, path="/api/orders")
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"referrer-policy"] == b"no-referrer"
    assert not {b"cache-control", b"x-frame-options", b"content-security-policy"} & set(headers)


async def test_an_answer_keeps_its_own_values_of_those_headers() -> None:
    own = [(b"cache-control", b"max-age=60"), (b"x-request-id", b"upstream-1")]
    app = RequestContextMiddleware(Inner(200, own), access_log=False)
    _, start, _ = await call(app, path="/bff/user")
    names = [k for k, _ in start["headers"]]
    assert names.count(b"cache-control") == 1 and names.count(b"x-request-id") == 1
    assert (b"cache-control", b"max-age=60") in start["headers"]
    assert (b"x-request-id", b"upstream-1") in start["headers"]


@pytest.mark.parametrize("kind", ["lifespan", "websocket"])
async def test_other_scopes_pass_through_untouched(kind: str) -> None:
    inner = Inner()
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": f"{kind}.startup"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {"type": kind, "path": "/bff/user", "headers": []}
    for app in (RequestContextMiddleware(inner), DirectPeerMiddleware(inner)):
        await app(scope, receive, send)
    assert inner.scopes == [scope, scope] and "state" not in scope
    assert inner.request_ids == [None, None]
    assert sent == [{"type": f"{kind}.passed"}] * 2  # no headers added, nothing else sent


async def test_the_socket_peer_is_remembered_before_the_proxy_headers_replace_it() -> None:
    inner = Inner()
    scope, _, _ = await call(DirectPeerMiddleware(inner))
    assert scope["state"]["direct_peer"] == "192.0.2.1"
