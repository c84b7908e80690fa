"""Two frontends in one instance (a.localhost, and b.localhost under the path base
/app), each with a WebSocket route, over one Redis store and the worker's one session-ended subscription: the end of
a session of one frontend closes that session's sockets (4401) and no socket of the
other frontend; each frontend's `/bff/events` and Origin allow-list are its own."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from bff.config.load import load_settings
from bff.config.model import Frontend, Settings
from bff.session.bus import create_bus
from bff.session.crypto import KeyRing
from bff.session.frontend_sessions import frontend_sessions
from bff.store.redis import RedisStore
from bff.tokens.records import TokenSet
from bff.web.app import create_app
from tests.fake_idp import SECRET_KEY, FakeIdp
from tests.integration.test_live import WsUpstream, closed_code

pytestmark = pytest.mark.anyio
BASE_B = "/app"  # b's path base: its paths, sockets included, are under it


@pytest.fixture
async def ws_up() -> AsyncIterator[WsUpstream]:
    async with WsUpstream().running() as server:
        yield server


def settings_for(ws_url: str, redis_url: str, prefix: str) -> Settings:
    tables = [
        {
            "name": name,
            "public_url": f"http://{name}.localhost:8000{base}",
            "issuer": f"https://idp-{name}.test",
            "client_id": f"app-{name}",
            "session_expiring_window": window,
            "routes": [{"prefix": f"/{name}-ws", "upstream": ws_url, "websocket": True}],
        }
        for name, base, window in (("a", "", 60), ("b", BASE_B, 120))
    ]
    env = {
        "BFF_SECRET_KEY": SECRET_KEY,
        "BFF_FRONTEND_A_CLIENT_SECRET": "secret-of-app-a",
        "BFF_FRONTEND_B_CLIENT_SECRET": "secret-of-app-b",
        "BFF_SESSION_STORE": redis_url,
        "BFF_STORE_PREFIX": prefix,
    }
    return load_settings(env, {"frontends": tables})


@contextlib.asynccontextmanager
async def serving(settings: Settings, store: RedisStore, redis_url: str) -> AsyncIterator[int]:
    """The app on a real uvicorn (websockets-sansio, as `bff serve`), lifespan included,
    with the Redis bus of the injected store; its port."""
    idps = {f"idp-{n}.test": FakeIdp(issuer=f"https://idp-{n}.test") for n in "ab"}

    def provider(request: httpx.Request) -> httpx.Response:
        response: httpx.Response = idps[request.url.host].router.handler(request)
        return response

    http = httpx.AsyncClient(transport=httpx.MockTransport(provider))
    bus = create_bus(redis_url, prefix=settings.store_prefix)
    app = create_app(settings, http=http, store=store, discover_on_startup=False, bus=bus)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_level="warning",
        access_log=False,
        ws="websockets-sansio",
        proxy_headers=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        await bus.aclose()
        await http.aclose()


async def mint(store: RedisStore, frontend: Frontend, sub: str) -> str:
    """A session of `frontend` (its namespace), as its login makes one; the cookie value."""
    keys = KeyRing([SECRET_KEY])
    sessions = frontend_sessions(frontend, store=store, keys=keys, clock=time.time)
    tokens = TokenSet(
        access_token=f"token-{sub}",
        expires_at=int(time.time()) + 3600,
        refresh_token=f"refresh-{sub}",
    )
    ref, _ = await sessions.create(tokens=tokens, claims={"sub": sub}, user_agent="t")
    return sessions.cookie_value(ref)


def open_ws(port: int, site: str, path: str, cookie: str, origin: str | None = None) -> Any:
    """A socket to the bff at 127.0.0.1:`port`, addressed to `site`.localhost (its Host)."""
    headers = {
        "Cookie": f"bff-session={cookie}",
        "Origin": origin or f"http://{site}.localhost:8000",
    }
    return connect(
        f"ws://{site}.localhost:8000{path}",
        host="127.0.0.1",
        port=port,
        additional_headers=headers,
        open_timeout=5,
        proxy=None,
    )


def client(port: int, site: str, cookie: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={
            "Host": f"{site}.localhost:8000",
            "Cookie": f"bff-session={cookie}",
            "X-CSRF": "1",
        },
        timeout=10,
    )


async def collect(lines: AsyncIterator[str], into: list[str]) -> None:
    async for line in lines:
        into.append(line)


async def test_a_frontends_session_end_closes_only_its_own_sockets(
    ws_up: WsUpstream, redis_url: str
) -> None:
    prefix = f"bfffelive-{uuid.uuid4().hex[:8]}"
    settings = settings_for(ws_up.url, redis_url, prefix)
    a, b = settings.frontends
    store = RedisStore.from_url(redis_url, prefix=prefix)
    try:
        async with serving(
            settings, RedisStore.from_url(redis_url, prefix=prefix), redis_url
        ) as port:
            alice_a = await mint(store, a, "alice")
            alice_b = await mint(store, b, "alice")  # the same user at both frontends
            # A cookie of one frontend opens nothing at the other; nor does its Origin.
            for site, path, cookie, origin in (
                ("b", f"{BASE_B}/b-ws/echo", alice_a, None),
                ("a", "/a-ws/echo", alice_b, None),
                ("a", "/a-ws/echo", alice_a, "http://b.localhost:8000"),
            ):
                with pytest.raises(InvalidStatus) as caught:
                    async with open_ws(port, site, path, cookie, origin):
                        pass
                assert caught.value.response.status_code == (403 if origin else 401)
            # A route of one frontend is not one of the other's.
            with pytest.raises(InvalidStatus):
                async with open_ws(port, "b", f"{BASE_B}/a-ws/echo", alice_b):
                    pass
            async with (
                open_ws(port, "a", "/a-ws/echo", alice_a) as ws_a,
                open_ws(port, "b", f"{BASE_B}/b-ws/echo", alice_b) as ws_b,
                client(port, "a", alice_a) as at_a,
                client(port, "b", alice_b) as at_b,
            ):
                for ws in (ws_a, ws_b):
                    await ws.send("hello")
                    assert await ws.recv() == "hello"
                async with (
                    at_a.stream("GET", "/bff/events") as events_a,
                    at_b.stream("GET", f"{BASE_B}/bff/events") as events_b,
                ):
                    lines_a, lines_b = events_a.aiter_lines(), events_b.aiter_lines()
                    for lines in (lines_a, lines_b):
                        assert (await anext(lines), await anext(lines)) == (": open", "")
                    rest_b: list[str] = []
                    reading_b = asyncio.create_task(collect(lines_b, rest_b))
                    assert (await at_a.post("/bff/logout")).status_code == 302
                    code, waited = await closed_code(ws_a, 2)
                    assert (code, ws_a.close_reason, waited < 2) == (4401, "logout", True)
                    async with asyncio.timeout(2):
                        rest_a = [line async for line in lines_a]  # ends with its session
                    assert rest_a[rest_a.index("event: session_ended") + 1] == "data: logout"
                    # b's socket and event stream live on, with b's session.
                    await ws_b.send("still here")
                    assert await ws_b.recv() == "still here"
                    assert (await at_b.get(f"{BASE_B}/bff/user")).status_code == 200
                    await asyncio.sleep(0.3)
                    assert (rest_b, reading_b.done()) == ([], False)
                    assert (await at_b.post(f"{BASE_B}/bff/logout")).status_code == 302
                    code, _ = await closed_code(ws_b, 2)
                    assert (code, ws_b.close_reason) == (4401, "logout")
                    async with asyncio.timeout(2):
                        await reading_b  # ends with its session
                    assert "event: session_ended" in rest_b
    finally:
        await store.aclose()
