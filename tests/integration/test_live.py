"""Live connections end with their session (SPEC.md "Live connections"): WebSocket
proxying on `websocket = true` routes against a real `websockets` upstream that records
every handshake, the bff on a real uvicorn (websockets-sansio, as `bff serve`), sessions
in the shared test Redis under a key prefix of this module, and `GET /bff/events`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.http11 import Request

from bff.session.bus import create_bus
from bff.session.live import MAX_PER_SESSION
from bff.store.redis import RedisStore
from bff.tokens.records import TokenSet
from tests.fake_idp import CLIENT_ID, CLIENT_SECRET, SECRET_KEY, FakeIdp
from tests.integration.proxy_env import (
    BFF_BIN,
    BffProcess,
    free_port,
    make_settings,
    mint_session,
    serve,
    session_service,
)
from tests.integration.upstream_server import UpstreamServer, running_upstream

pytestmark = pytest.mark.anyio
ORIGIN = "http://localhost:8000"  # BFF_PUBLIC_URL's default: the default allow-list


def _chat_if_offered(connection: ServerConnection, offered: Any) -> Any:
    return "chat.v1" if "chat.v1" in offered else None


class WsUpstream:
    """An echo WebSocket server that records each handshake's headers and each close
    code it received. `close <code>` makes it close with that code."""

    def __init__(self) -> None:
        self.handshakes: list[list[tuple[str, str]]] = []
        self.closes: list[int | None] = []
        self.port = 0

    def _record(self, connection: ServerConnection, request: Request) -> None:
        self.handshakes.append([(k.lower(), v) for k, v in request.headers.raw_items()])

    async def _echo(self, ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                if isinstance(message, str) and message.startswith("close "):
                    await ws.close(int(message.split()[1]), "upstream closes")
                    break
                await ws.send(message)
        await ws.wait_closed()
        self.closes.append(ws.close_code)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[WsUpstream]:
        async with ws_serve(
            self._echo,
            "127.0.0.1",
            0,
            process_request=self._record,
            select_subprotocol=_chat_if_offered,
        ) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            yield self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def header(self, name: str, index: int = -1) -> list[str]:
        return [v for k, v in self.handshakes[index] if k == name]


@pytest.fixture(scope="module")
def http_up() -> Iterator[UpstreamServer]:
    with running_upstream() as server:
        yield server


@pytest.fixture
async def ws_up() -> AsyncIterator[WsUpstream]:
    async with WsUpstream().running() as server:
        yield server


@pytest.fixture
def prefix() -> str:
    return f"bfflivetest-{uuid.uuid4().hex[:8]}"


def live_settings(
    ws_up: WsUpstream, http_up: UpstreamServer, redis_url: str, prefix: str, **env: str
) -> Any:
    return make_settings(
        [
            {"prefix": "/ws", "upstream": ws_up.url, "websocket": True},
            {
                "prefix": "/ws2",
                "upstream": ws_up.url,
                "websocket": True,
                "origins": ["https://app.example"],
            },
            {"prefix": "/anon", "upstream": ws_up.url, "websocket": True, "token": "none"},
            {"prefix": "/plain", "upstream": ws_up.url},
            {"prefix": "/api", "upstream": http_up.url},
        ],
        BFF_SESSION_STORE=redis_url,
        BFF_STORE_PREFIX=prefix,
        **env,
    )


@contextlib.asynccontextmanager
async def bff(
    ws_up: WsUpstream,
    http_up: UpstreamServer,
    redis_url: str,
    prefix: str,
    idp: FakeIdp | None = None,
    **env: str,
) -> AsyncIterator[tuple[str, RedisStore]]:
    store = RedisStore.from_url(redis_url, prefix=prefix)
    settings = live_settings(ws_up, http_up, redis_url, prefix, **env)
    bus = create_bus(redis_url, prefix=prefix)  # the injected store's channel
    try:
        async with serve(settings, store, idp, ws="websockets-sansio", bus=bus) as url:
            yield url, store
    finally:
        await bus.aclose()


async def short_session(
    store: RedisStore, *, token_ttl: int = 3600, lifetime: int = 86400, idp: FakeIdp | None = None
) -> str:
    """A session whose access token expires in `token_ttl` s and which ends in `lifetime` s."""
    if idp is not None:
        idp.live_refresh.add("refresh-token-0-XYZ")
    sessions = session_service(store, max_lifetime=lifetime)
    tokens = TokenSet(
        access_token="access-token-0-XYZ",
        expires_at=int(time.time()) + token_ttl,
        refresh_token="refresh-token-0-XYZ",
    )
    ref, _ = await sessions.create(tokens=tokens, claims={"sub": "alice"}, user_agent="t")
    return sessions.cookie_value(ref)


def ws_url(base: str, path: str) -> str:
    return "ws" + base.removeprefix("http") + path


def open_ws(base: str, path: str, cookie: str | None, origin: str | None = ORIGIN) -> Any:
    headers = {"Cookie": f"bff-session={cookie}"} if cookie else {}
    if origin is not None:
        headers["Origin"] = origin
    return connect(ws_url(base, path), additional_headers=headers, open_timeout=5, proxy=None)


async def refused(base: str, path: str, cookie: str | None, origin: str | None = ORIGIN) -> Any:
    with pytest.raises(InvalidStatus) as caught:
        async with open_ws(base, path, cookie, origin):
            pass
    return caught.value.response


async def closed_code(ws: ClientConnection, within: float) -> tuple[int | None, float]:
    """Wait for the bff to close `ws`; its close code and how long it took."""
    started = time.monotonic()
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(within):
            while True:
                await ws.recv()
    return ws.close_code, time.monotonic() - started


async def drain(chunks: AsyncIterator[bytes], *, within: float) -> None:
    async with asyncio.timeout(within):
        async for _ in chunks:
            pass


async def test_upgrade_relays_both_ways_with_the_bearer_and_no_cookie(
    ws_up: WsUpstream, http_up: UpstreamServer, redis_url: str, prefix: str
) -> None:
    async with bff(ws_up, http_up, redis_url, prefix) as (url, store):
        cookie = await mint_session(store, "alice", "token-alice")
        headers = {"Cookie": f"bff-session={cookie}; theme=dark", "Origin": ORIGIN}
        async with connect(
            ws_url(url, "/ws/echo?room=1"),
            additional_headers=headers,
            subprotocols=["chat.v1"],  # type: ignore[list-item]
            proxy=None,
        ) as ws:
            assert ws.subprotocol == "chat.v1"
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\x01binary\xff")
            assert await ws.recv() == b"\x00\x01binary\xff"
            await ws.close(4000, "done")
        await store.aclose()
    assert len(ws_up.handshakes) == 1
    assert ws_up.header("authorization") == ["Bearer token-alice"]
    assert ws_up.header("cookie") == []
    assert ws_up.header("sec-websocket-protocol") == ["chat.v1"]
    assert ws_up.header("x-forwarded-proto") == ["http"]
    assert ws_up.header("x-forwarded-host") == ["localhost:8000"]
    assert ws_up.header("x-forwarded-for") == ["127.0.0.1"]
    assert len(ws_up.header("x-request-id")) == 1
    for _ in range(50):
        if ws_up.closes:
            break
        await asyncio.sleep(0.02)
    assert ws_up.closes == [4000]  # the browser's close code reached the upstream


async def test_a_token_none_route_needs_a_session_and_sends_no_bearer(
    ws_up: WsUpstream, http_up: UpstreamServer, redis_url: str, prefix: str
) -> None:
    async with bff(ws_up, http_up, redis_url, prefix) as (url, store):
        cookie = await mint_session(store, "alice", "token-alice")
        assert (await refused(url, "/anon/echo", None)).status_code == 401
        async with open_ws(url, "/anon/echo", cookie) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
        await store.aclose()
    assert len(ws_up.handshakes) == 1
    assert ws_up.header("authorization") == []
    assert ws_up.header("cookie") == []


async def test_upstream_close_code_reaches_the_browser(
    ws_up: WsUpstream, http_up: UpstreamServer, redis_url: str, prefix: str
) -> None:
    async with bff(ws_up, http_up, redis_url, prefix) as (url, store):
        cookie = await mint_session(store, "alice", "token-alice")
        async with open_ws(url, "/ws/echo", cookie) as ws:
            await ws.send("close 4321")
            code, _ = await closed_code(ws, 5)
        await store.aclose()
    assert code == 4321


async def test_refusals_happen_before_the_upstream_sees_anything(
    ws_up: WsUpstream, http_up: UpstreamServer, redis_url: str, prefix: str
) -> None:
    async with bff(ws_up, http_up, redis_url, prefix) as (url, store):
        cookie = await mint_session(store, "alice", "token-alice")
        no_session = await refused(url, "/ws/echo", None)
        bad_cookie = await refused(url, "/ws/echo", "forged")
        foreign = await refused(url, "/ws/echo", cookie, origin="https://evil.example")
        missing = await refused(url, "/ws/echo", cookie, origin=None)
        # /ws2 allows https://app.example only: the public origin is not on its list
        other_list = await refused(url, "/ws2/echo", cookie, origin=ORIGIN)
        not_websocket = await refused(url, "/plain/echo", cookie)
        await store.aclose()
    assert ws_up.handshakes == []
    assert no_session.status_code == 401
    assert json.loads(no_session.body)["error"] == "not_authenticated"
    assert bad_cookie.status_code == 401
    for answer in (foreign, missing, other_list):
        assert answer.status_code == 403
        assert json.loads(answer.body)["error"] == "origin"
    assert not_websocket.status_code == 403  # as before: no route takes the upgrade


async def test_an_allow_listed_origin_passes(
    ws_up: WsUpstream, http_up: UpstreamServer, redis_url: str, prefix: str
) -> None:
    async with bff(ws_up, http_up, redis_url, prefix) as (url, store):
        cookie = await mint_session(store, "alice", "token-alice")
        async with open_ws(url, "/ws2/echo", cookie, origin="https://app.example:443") as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
        await store.aclose()


async def test_logout_closes_the_socket_with_4401_and_cuts_the_stream(
    ws_up: WsUpstream, http_up: UpstreamServer, redis_url: str, prefix: str
) -> None:
    async with bff(ws_up, http_up, redis_url, prefix) as (url, store):
        cookie = await mint_session(store, "alice", "token-alice")
        bob = await mint_session(store, "bob", "token-bob")
        headers = {"Cookie": f"bff-session={cookie}", "X-CSRF": "1"}
        async with (
            open_ws(url, "/ws/echo", cookie) as ws,
            open_ws(url, "/ws/echo", bob) as bobs,
            httpx.AsyncClient(base_url=url, timeout=10) as client,
            client.stream("GET", "/api/feed?_drip=1000&_gap=0.05", headers=headers) as feed,
        ):
            assert feed.status_code == 200
            chunks = feed.aiter_bytes()
            await anext(chunks)  # the stream is flowing
            await ws.send("before")
            assert await ws.recv() == "before"
            logout = await client.post("/bff/logout", headers=headers)
            assert logout.status_code == 302
            code, waited = await closed_code(ws, 2)
            assert (code, ws.close_reason) == (4401, "logout")
            assert waited < 2
            started = time.monotonic()
            with pytest.raises(httpx.HTTPError):  # cut: an uncompleted chunked answer
                await drain(chunks, within=2)
            assert time.monotonic() - started < 2
            await bobs.send("still here")  # another session's socket stays open
            assert await bobs.recv() == "still here"
        await store.aclose()


async def test_a_session_ended_on_another_instance_closes_the_socket(
    ws_up: WsUpstream, http_up: UpstreamServer, redis_url: str, prefix: str
) -> None:
    """Two bff servers sharing Redis: the logout on one closes the socket on the other."""
    async with (
        bff(ws_up, http_up, redis_url, prefix) as (first, store),
        bff(ws_up, http_up, redis_url, prefix) as (second, _),
    ):
        cookie = await mint_session(store, "alice", "token-alice")
        headers = {"Cookie": f"bff-session={cookie}", "X-CSRF": "1"}
        async with (
            open_ws(second, "/ws/echo", cookie) as ws,
            httpx.AsyncClient(base_url=first, timeout=10) as client,
        ):
            await ws.send("ping")
            assert await ws.recv() == "ping"
            assert (await client.post("/bff/logout", headers=headers)).status_code == 302
            code, waited = await closed_code(ws, 2)
        await store.aclose()
    assert code == 4401
    assert waited < 2


async def test_bff_serve_closes_the_socket_when_another_process_ends_the_session(
    ws_up: WsUpstream, http_up: UpstreamServer, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    """`bff serve` (its own process: uvloop, the bounded httptools listener, uvicorn's
    websockets-sansio) holds the socket; the logout happens on an in-test uvicorn."""
    config = tmp_path / "bff.toml"
    config.write_text(f'[[routes]]\nprefix = "/ws"\nupstream = "{ws_up.url}"\nwebsocket = true\n')
    env = {
        "BFF_ISSUER": f"http://127.0.0.1:{free_port()}",  # no provider: not needed here
        "BFF_CLIENT_ID": CLIENT_ID,
        "BFF_CLIENT_SECRET": CLIENT_SECRET,
        "BFF_SECRET_KEY": SECRET_KEY,
        "BFF_SESSION_STORE": redis_url,
        "BFF_STORE_PREFIX": prefix,
        "BFF_SHUTDOWN_DRAIN_DELAY": "0",
    }
    process = await asyncio.to_thread(
        BffProcess, env, [str(BFF_BIN), "serve", "--config", str(config)]
    )
    try:
        async with bff(ws_up, http_up, redis_url, prefix) as (url, store):
            cookie = await mint_session(store, "alice", "token-alice")
            headers = {"Cookie": f"bff-session={cookie}", "X-CSRF": "1"}
            async with (
                open_ws(process.url, "/ws/echo", cookie) as ws,
                httpx.AsyncClient(base_url=url, timeout=10) as client,
            ):
                await ws.send(b"\x01" * 1000)
                assert await ws.recv() == b"\x01" * 1000
                assert (await client.post("/bff/logout", headers=headers)).status_code == 302
                code, waited = await closed_code(ws, 2)
            await store.aclose()
    finally:
        await asyncio.to_thread(process.stop)
    assert ws_up.header("authorization", 0) == ["Bearer token-alice"]
    assert (code, ws.close_reason) == (4401, "logout")
    assert waited < 2


async def test_events_stream_sends_session_ended_then_closes(
    ws_up: WsUpstream, http_up: UpstreamServer, redis_url: str, prefix: str
) -> None:
    async with bff(ws_up, http_up, redis_url, prefix) as (url, store):
        cookie = await mint_session(store, "alice", "token-alice")
        jar = {"Cookie": f"bff-session={cookie}"}
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            assert (await client.get("/bff/events")).status_code == 403  # no header at all
            unauthenticated = await client.get("/bff/events", headers={"X-CSRF": "1"})
            assert unauthenticated.status_code == 401
            assert unauthenticated.json()["error"] == "not_authenticated"
            cross = {**jar, "X-CSRF": "1", "Sec-Fetch-Site": "cross-site"}
            assert (await client.get("/bff/events", headers=cross)).status_code == 403
            same_origin = {**jar, "Sec-Fetch-Site": "same-origin"}  # a plain EventSource
            async with client.stream("GET", "/bff/events", headers=same_origin) as events:
                assert events.status_code == 200
                assert events.headers["content-type"].startswith("text/event-stream")
                lines = events.aiter_lines()
                assert await anext(lines) == ": open"
                logout = await client.post("/bff/logout", headers={**jar, "X-CSRF": "1"})
                assert logout.status_code == 302
                started = time.monotonic()
                async with asyncio.timeout(2):
                    rest = [line async for line in lines]  # ends: the stream closes
                waited = time.monotonic() - started
        await store.aclose()
    assert "event: session_ended" in rest
    assert rest[rest.index("event: session_ended") + 1] == "data: logout"
    assert waited < 2


async def test_the_socket_outlives_a_refresh_and_closes_on_invalid_grant(
    ws_up: WsUpstream, http_up: UpstreamServer, redis_url: str, prefix: str
) -> None:
    """The token is refreshed as for HTTP while the socket is open; once the provider
    says invalid_grant the session ends, and the socket with it (4401)."""
    idp = FakeIdp()
    async with bff(ws_up, http_up, redis_url, prefix, idp, BFF_REFRESH_SKEW="2") as (url, store):
        cookie = await short_session(store, token_ttl=3, idp=idp)
        async with open_ws(url, "/ws/echo", cookie) as ws:
            # The token is due after 1 s; on a busy machine the refresh may come later.
            for _ in range(100):
                if idp.refresh_grants:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # and no second grant follows
            assert idp.refresh_grants == 1
            await ws.send("after refresh")
            assert await ws.recv() == "after refresh"
        idp.refresh_error = "invalid_grant"
        cookie = await short_session(store, token_ttl=3, idp=idp)
        async with open_ws(url, "/ws/echo", cookie) as ws:
            code, _ = await closed_code(ws, 5)
            assert (code, ws.close_reason) == (4401, "invalid_grant")
        await store.aclose()
    assert ws_up.header("authorization", 0) == ["Bearer access-token-0-XYZ"]


async def test_a_token_that_cannot_be_refreshed_closes_the_socket_at_its_expiry(
    ws_up: WsUpstream, http_up: UpstreamServer, redis_url: str, prefix: str
) -> None:
    idp = FakeIdp()
    idp.token_status = 503  # the provider fails: the session is kept, the token expires
    idp.token_body = {"error": "temporarily_unavailable"}
    async with bff(ws_up, http_up, redis_url, prefix, idp, BFF_REFRESH_SKEW="2") as (url, store):
        cookie = await short_session(store, token_ttl=3, idp=idp)
        async with open_ws(url, "/ws/echo", cookie) as ws:
            code, waited = await closed_code(ws, 10)
        await store.aclose()
    assert (code, ws.close_reason) == (4401, "token_unavailable")
    assert 2 < waited < 9


async def test_absolute_expiry_closes_socket_and_events(
    ws_up: WsUpstream, http_up: UpstreamServer, redis_url: str, prefix: str
) -> None:
    async with bff(ws_up, http_up, redis_url, prefix) as (url, store):
        # Sessions begin on a whole second, so this one lasts 3 to 4 s: enough on a busy
        # machine to open the socket and the stream before it ends.
        cookie = await short_session(store, lifetime=4)
        jar = {"Cookie": f"bff-session={cookie}", "X-CSRF": "1"}
        async with (
            open_ws(url, "/ws/echo", cookie) as ws,
            httpx.AsyncClient(base_url=url, timeout=10) as client,
            client.stream("GET", "/bff/events", headers=jar) as events,
        ):
            assert events.status_code == 200
            async with asyncio.timeout(8):
                lines = [line async for line in events.aiter_lines()]
            code, _ = await closed_code(ws, 3)
        await store.aclose()
    assert (code, ws.close_reason) == (4401, "expired")
    assert lines[-3:-1] == ["event: session_ended", "data: expired"]


async def test_events_say_session_expiring_once_within_the_window(
    ws_up: WsUpstream, http_up: UpstreamServer, redis_url: str, prefix: str
) -> None:
    async with bff(ws_up, http_up, redis_url, prefix) as (url, store):
        cookie = await short_session(store, lifetime=61)  # the 60 s window opens in 1 s
        jar = {"Cookie": f"bff-session={cookie}", "X-CSRF": "1"}
        async with (
            httpx.AsyncClient(base_url=url, timeout=10) as client,
            client.stream("GET", "/bff/events", headers=jar) as events,
        ):
            lines = events.aiter_lines()
            assert await anext(lines) == ": open"
            async with asyncio.timeout(4):
                assert await anext(lines) == ""
                assert await anext(lines) == "event: session_expiring"
                seconds = int((await anext(lines)).removeprefix("data: "))
        await store.aclose()
    assert 55 <= seconds <= 60


async def test_one_session_holds_a_bounded_number_of_live_connections(
    ws_up: WsUpstream, http_up: UpstreamServer, redis_url: str, prefix: str
) -> None:
    """WebSockets and event streams of one session count together against
    MAX_PER_SESSION (per worker): past it 429, and the upstream sees no further handshake."""
    async with bff(ws_up, http_up, redis_url, prefix) as (url, store):
        cookie = await mint_session(store, "alice", "token-alice")
        jar = {"Cookie": f"bff-session={cookie}", "X-CSRF": "1"}
        async with (
            contextlib.AsyncExitStack() as held,
            httpx.AsyncClient(base_url=url, timeout=10) as client,
        ):
            events = await held.enter_async_context(
                client.stream("GET", "/bff/events", headers=jar)
            )
            assert events.status_code == 200
            for _ in range(MAX_PER_SESSION - 1):
                ws = await held.enter_async_context(open_ws(url, "/ws/echo", cookie))
                await ws.send("x")
                assert await ws.recv() == "x"
            handshakes = len(ws_up.handshakes)
            with pytest.raises(InvalidStatus) as refused:
                async with open_ws(url, "/ws/echo", cookie):
                    pass
            assert refused.value.response.status_code == 429
            assert json.loads(refused.value.response.body)["error"] == "too_many_connections"
            assert len(ws_up.handshakes) == handshakes  # nothing reached the upstream
            more = await client.get("/bff/events", headers=jar)
            assert more.status_code == 429 and more.json()["error"] == "too_many_connections"
        # All closed: the slots are free again.
        async with open_ws(url, "/ws/echo", cookie) as ws:
            await ws.send("again")
            assert await ws.recv() == "again"
        await store.aclose()
