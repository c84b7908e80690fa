"""Upstream pool exhaustion (THREATS.md invariant 14; issue 11 defect 12).

Connections are bounded per origin (BFF_UPSTREAM_MAX_CONNECTIONS) and per session
(BFF_UPSTREAM_MAX_CONNECTIONS_PER_SESSION); a request that finds no free connection
within BFF_UPSTREAM_QUEUE_TIMEOUT answers 503 `upstream_busy` at once. Before, one
session's slow uploads and slow readers (the slowloris pattern, CVE-2007-6750, turned on
the upstream hop) could take all 256 connections of an origin, and everyone else's
request queued for the whole upstream timeout. The upstream here is a raw-socket server
that counts the requests it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from bff.errors import UpstreamBusy
from bff.store.memory import MemoryStore
from bff.upstream.session_slots import SessionSlots
from tests.integration.proxy_env import make_settings, mint_session, serve
from tests.integration.scripted_upstream import OK, Peer, ScriptedUpstream
from tests.security.raw_client import Answer, RawClient, request_bytes

pytestmark = pytest.mark.anyio

UPSTREAM_TIMEOUT = 20.0  # what a starved request used to wait for, at least


@dataclass
class Holding:
    """Slow uploads are never read to the end; long polls stream until released."""

    held: int = 0
    lines: list[bytes] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, peer: Peer) -> None:
        try:
            await self._serve(peer)
        except (asyncio.IncompleteReadError, ConnectionError):
            return  # the bff closed the connection: the browser left

    async def _serve(self, peer: Peer) -> None:
        while True:
            head = await peer.reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0]
            self.lines.append(line)
            if b"/api/upload" in line:
                self.held += 1
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await peer.reader.readexactly(length)  # the browser never sends it all
            elif b"/api/poll" in line:
                self.held += 1
                peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n")
                await self.release.wait()
                peer.send(b"0\r\n\r\n")
                self.held -= 1
            elif b"/api/slowish" in line:
                await asyncio.sleep(0.3)
                peer.send(OK)
            else:
                peer.send(OK)


async def until(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(10):  # a bound, not a measurement
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"never happened: {what}") from None


@dataclass
class Env:
    port: int
    holding: Holding
    cookies: dict[str, dict[str, str]]
    browsers: list[RawClient] = field(default_factory=list)

    async def hold(self, who: str, what: str) -> None:
        """A slow upload (10 of 100,000 bytes sent) or a long poll nobody reads."""
        browser = await RawClient.open(self.port)
        self.browsers.append(browser)
        if what == "upload":
            head = request_bytes(
                "POST", "/api/upload", {**self.cookies[who], "Content-Length": "100000"}
            )
            await browser.send(head + b"0123456789")
        else:
            await browser.send(request_bytes("GET", "/api/poll", self.cookies[who]))

    async def until_held(self, count: int, what: str) -> None:
        await until(lambda: self.holding.held == count, what)

    async def ask(self, who: str, path: str = "/api/fast") -> Answer:
        """The answer, which must come well before the upstream timeout (a generous bound:
        a starved request used to wait for all of it)."""
        browser = await RawClient.open(self.port)
        try:
            await browser.send(request_bytes("GET", path, self.cookies[who]))
            return await browser.answer(timeout=UPSTREAM_TIMEOUT / 2)
        finally:
            await browser.close()


@pytest.fixture(params=["lean", "aiohttp"])
def transport(request: pytest.FixtureRequest) -> str:
    """Every test runs on both upstream transports (BFF_UPSTREAM_TRANSPORT)."""
    kind: str = request.param
    return kind


@pytest.fixture
async def env(request: pytest.FixtureRequest, transport: str) -> AsyncIterator[Env]:
    limits: dict[str, str] = request.param
    store = MemoryStore()
    cookies = {}
    for user in ("alice", "bob", "carol", "dave"):
        cookie = await mint_session(store, user, f"token-{user}")
        cookies[user] = {"Cookie": f"bff-session={cookie}", "X-CSRF": "1"}
    holding = Holding()
    async with ScriptedUpstream(holding.handle) as up:
        settings = make_settings(
            [{"prefix": "/api", "upstream": up.origin}],
            BFF_UPSTREAM_TIMEOUT=str(UPSTREAM_TIMEOUT),
            BFF_UPSTREAM_TRANSPORT=transport,
            **limits,
        )
        async with serve(settings, store) as url:
            env = Env(int(url.rsplit(":", 1)[1]), holding, cookies)
            try:
                yield env
            finally:
                holding.release.set()
                for browser in env.browsers:
                    await browser.close()


SMALL_POOL = {
    "BFF_UPSTREAM_MAX_CONNECTIONS": "5",
    "BFF_UPSTREAM_MAX_CONNECTIONS_PER_SESSION": "3",
    "BFF_UPSTREAM_QUEUE_TIMEOUT": "0.3",
}


@pytest.mark.parametrize("env", [SMALL_POOL], indirect=True)
async def test_one_sessions_slow_requests_never_starve_another_session(env: Env) -> None:
    """Issue 11 defect 12; slowloris (CVE-2007-6750) on the upstream hop."""
    for i, what in enumerate(("upload", "poll", "upload"), start=1):
        await env.hold("alice", what)
        await env.until_held(i, f"alice's request {i} upstream")
    # past its share, alice's next slow requests fail fast and never reach the upstream
    for _ in range(2):
        answer = await env.ask("alice", "/api/poll")
        assert answer.status == 503, answer.head
        assert answer.json()["error"] == "upstream_busy"
        assert "session" in answer.json()["error_description"]
        assert answer.header("retry-after") == "1"
    assert env.holding.held == 3
    # bob is not starved by alice
    answer = await env.ask("bob")
    assert (answer.status, answer.body) == (200, b"ok")
    # carol's two long polls fill the origin's 5 connections: dave fails fast, told why
    for i in (4, 5):
        await env.hold("carol", "poll")
        await env.until_held(i, f"carol's poll {i - 3}")
    answer = await env.ask("dave")
    assert answer.status == 503
    assert answer.json()["error"] == "upstream_busy"
    assert "every connection" in answer.json()["error_description"]
    # and once the slow ones end, everyone is served again
    env.holding.release.set()
    for browser in env.browsers:
        await browser.close()
    env.browsers.clear()
    for _ in range(50):  # the freed connections come back within a few loop turns
        answer = await env.ask("dave")
        if answer.status != 503:
            break
        await asyncio.sleep(0.1)
    assert (answer.status, answer.body) == (200, b"ok")
    assert env.holding.lines.count(b"GET /api/poll HTTP/1.1") == 3  # alice's refused 2 never


@pytest.mark.parametrize(
    "env",
    [{"BFF_UPSTREAM_MAX_CONNECTIONS_PER_SESSION": "1", "BFF_UPSTREAM_QUEUE_TIMEOUT": "10"}],
    indirect=True,
)
async def test_a_request_past_its_sessions_share_waits_for_a_free_one(env: Env) -> None:
    """A burst of one session queues briefly instead of failing: its share is handed over
    as each request ends, in order."""
    results = await asyncio.gather(*(env.ask("alice", "/api/slowish") for _ in range(3)))
    assert [(a.status, a.body) for a in results] == [(200, b"ok")] * 3


async def test_session_slots_never_leak_a_slot_to_timeouts_or_cancellation() -> None:
    """A request that gives up waiting (timeout, or a browser gone and the task
    cancelled) must leave the session's share exactly as it found it, also when a slot
    was handed to it in the same instant."""
    slots = SessionSlots(limit=2, wait=0.2)
    assert slots.take("a") and slots.take("a") and not slots.take("a")
    with pytest.raises(UpstreamBusy):
        await slots.acquire("a")
    handed = asyncio.create_task(slots.acquire("a"))
    waiting = asyncio.create_task(slots.acquire("a"))
    await asyncio.sleep(0)
    slots.release("a")  # handed to the first waiter...
    handed.cancel()  # ...which leaves before it runs: the slot goes to the next one
    with contextlib.suppress(asyncio.CancelledError):
        await handed
    await waiting
    slots.release("a")
    slots.release("a")
    assert slots.take("a") and slots.take("a") and not slots.take("a")
    assert slots.take("b")  # another session's share is its own


async def test_a_browser_that_never_reads_cannot_hold_an_upstream_connection(
    transport: str,
) -> None:
    """Security review finding 9: no send bound toward the browser, so a client that
    never read its answer held the upstream connection (and its origin slot) forever.
    Now a write that the browser does not take within BFF_UPSTREAM_TIMEOUT aborts the
    exchange, both sides."""
    store = MemoryStore()
    cookie = await mint_session(store, "alice", "token-alice")
    headers = {"Cookie": f"bff-session={cookie}", "X-CSRF": "1"}
    streamed: list[Peer] = []
    aborted: list[Peer] = []

    async def firehose(peer: Peer) -> None:
        while (seen := await peer.request()) is not None:
            if b"/api/big" not in seen.line:
                peer.send(OK)
                continue
            streamed.append(peer)
            peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (64 << 20))
            try:
                for _ in range(1024):  # 64 MiB at most, stalled by backpressure long before
                    peer.send(b"x" * 65536)
                    await peer.drain()
            except ConnectionError:
                aborted.append(peer)

    async with ScriptedUpstream(firehose) as up:
        settings = make_settings(
            [{"prefix": "/api", "upstream": up.origin}],
            BFF_UPSTREAM_TIMEOUT="1",
            BFF_UPSTREAM_MAX_CONNECTIONS="1",
            BFF_UPSTREAM_QUEUE_TIMEOUT="0.3",
            BFF_UPSTREAM_TRANSPORT=transport,
        )
        async with serve(settings, store, bounded=True) as url:
            port = int(url.rsplit(":", 1)[1])
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.transport.pause_reading()  # a browser that never reads
            writer.write(request_bytes("GET", "/api/big", headers))
            await until(lambda: bool(streamed), "the stream began")
            # its one upstream connection is freed within a bound, not held for good
            await until(lambda: bool(aborted), "the stalled exchange was aborted")
            browser = await RawClient.open(port)
            try:
                await browser.send(request_bytes("GET", "/api/fast", headers))
                answer = await browser.answer(timeout=10)
            finally:
                await browser.close()
            assert (answer.status, answer.body) == (200, b"ok")
            writer.close()
