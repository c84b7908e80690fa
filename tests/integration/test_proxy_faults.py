"""Upstream faults: refused (502), too slow (504), broken mid-body; each a clean answer
and a live process that recovers when the upstream comes back."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bff.store.memory import MemoryStore
from tests.integration.proxy_env import free_port, make_settings, mint_session, serve
from tests.integration.scripted_upstream import Peer, ScriptedUpstream
from tests.integration.upstream_server import UpstreamServer, running_upstream

pytestmark = pytest.mark.anyio


@pytest.fixture
async def cookie_store() -> tuple[MemoryStore, dict[str, str]]:
    store = MemoryStore()
    cookie = await mint_session(store, "alice", "token-alice")
    return store, {"Cookie": f"bff-session={cookie}", "X-CSRF": "1"}


async def test_refused_upstream_is_502_and_recovers(
    cookie_store: tuple[MemoryStore, dict[str, str]],
) -> None:
    store, headers = cookie_store
    port = free_port()  # nothing listens here yet
    settings = make_settings([{"prefix": "/api", "upstream": f"http://127.0.0.1:{port}"}])
    async with serve(settings, store) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.get("/api/x", headers=headers)
        assert r.status_code == 502
        assert r.json() == {
            "error": "upstream_unavailable",
            "error_description": "the upstream is unavailable",
        }
        assert r.headers["retry-after"] == "5"
        assert r.headers["cache-control"] == "no-store"
        assert (await client.get("/healthz")).status_code == 200
        with running_upstream(port) as up:
            r = await client.get("/api/x", headers=headers)
            assert r.status_code == 200
            assert up.last().all("authorization") == ["Bearer token-alice"]
        r = await client.get("/api/x", headers=headers)  # gone again: pooled conn is dead
        assert r.status_code == 502


async def test_slow_upstream_is_504_and_streams_are_not_bounded_as_a_whole(
    cookie_store: tuple[MemoryStore, dict[str, str]],
) -> None:
    store, headers = cookie_store
    with running_upstream() as up:
        settings = make_settings(
            [{"prefix": "/api", "upstream": up.url}], BFF_UPSTREAM_TIMEOUT="0.4"
        )
        async with serve(settings, store) as url, httpx.AsyncClient(base_url=url) as client:
            r = await client.get("/api/slow?_sleep=1.2", headers=headers)
            assert r.status_code == 504
            assert r.json()["error"] == "upstream_timeout"
            assert r.headers["retry-after"] == "5"
            r = await client.get("/api/fast", headers=headers)
            assert r.status_code == 200
            # 6 chunks 0.25 s apart: 1.5 s in all, each gap inside the timeout
            r = await client.get("/api/drip?_drip=6&_gap=0.25", headers=headers)
            assert r.status_code == 200
            assert r.content == b"x" * 600
            # a gap longer than the timeout mid-body ends the response early
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get("/api/drip?_drip=2&_gap=0.8", headers=headers)
            assert (await client.get("/api/after", headers=headers)).status_code == 200


async def test_upstream_broken_mid_body_aborts_the_response_not_the_process(
    cookie_store: tuple[MemoryStore, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    store, headers = cookie_store
    up: UpstreamServer
    with running_upstream() as up:
        settings = make_settings([{"prefix": "/api", "upstream": up.url}])
        async with serve(settings, store) as url, httpx.AsyncClient(base_url=url) as client:
            # the upstream promised 1000 bytes and sent 10: the browser must not see a
            # complete answer
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get("/api/cut?_cut=1", headers=headers)
            r = await client.get("/api/next", headers=headers)
            assert r.status_code == 200
    assert any("response body aborted" in m for m in caplog.messages)


async def test_stalled_or_abandoned_upload_never_holds_the_upstream(
    cookie_store: tuple[MemoryStore, dict[str, str]],
) -> None:
    store, headers = cookie_store
    head = (
        "POST /api/up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n"
        "Connection: close\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    ).encode()
    with running_upstream() as up:
        settings = make_settings(
            [{"prefix": "/api", "upstream": up.url}], BFF_UPSTREAM_TIMEOUT="0.4"
        )
        async with serve(settings, store) as url, httpx.AsyncClient(base_url=url) as client:
            port = int(url.rsplit(":", 1)[1])
            # stalls after 10 bytes: 408 once the next chunk is overdue
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(head + b"0123456789")
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 5)
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            writer.close()
            await writer.wait_closed()
            # leaves after 10 bytes: the upstream exchange is abandoned, not completed
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(head + b"0123456789")
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.close()
            await writer.wait_closed()
            deadline = asyncio.get_running_loop().time() + 3
            while len(up.aborted) < 2 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)
            assert up.aborted == ["/api/up", "/api/up"]
            assert up.received == []  # no body was ever complete upstream
            assert (await client.get("/api/ok", headers=headers)).status_code == 200


@pytest.mark.parametrize(
    "answer",
    [
        b"",  # closed without a word
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    ],
    ids=["closed", "malformed", "upgrade"],
)
async def test_an_upstream_that_closes_or_answers_garbage_is_502(
    cookie_store: tuple[MemoryStore, dict[str, str]], answer: bytes
) -> None:
    store, headers = cookie_store

    async def handler(peer: Peer) -> None:
        await peer.request()
        peer.send(answer)

    async with ScriptedUpstream(handler) as up:
        settings = make_settings([{"prefix": "/api", "upstream": up.origin}])
        async with serve(settings, store) as url, httpx.AsyncClient(base_url=url) as client:
            r = await client.get("/api/x", headers=headers)
            assert r.status_code == 502
            assert r.json()["error"] == "upstream_unavailable"
            assert "upgrade" not in r.headers
    assert len(up.requests) == 1  # a fresh connection's failure is never retried
