"""Request smuggling and desync on the upstream hop, raw sockets on both sides
(THREATS.md invariant 3; issue 11 defect 10).

An upstream connection is reused only after a clean exchange: the whole request sent
before the answer began, the whole answer read, nothing unasked on the wire, and a 2xx or
3xx answer when the request had a body. An upstream that refuses a request (401, 413...)
may never read its body; reusing that socket glues the next request - another user's,
bearer included - to the unread bytes, which the upstream then parses as the start of
a request of the attacker's choosing (CVE-2023-25690, Apache mod_proxy; nginx closes an
upstream connection unless `request_body_sent`). The upstreams here are deliberately
naive servers on raw sockets that count and record every request they parse.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from bff.store.memory import MemoryStore
from tests.integration.proxy_env import make_settings, mint_session, serve
from tests.integration.scripted_upstream import Peer, ScriptedUpstream
from tests.security.raw_client import RawClient, request_bytes

pytestmark = pytest.mark.anyio

# Alice's upload: to an upstream that never reads it, the start of a request whose last
# header swallows the request line of whatever comes next on the socket.
SMUGGLED = b"GET /api/admin/export HTTP/1.1\r\nX-Ignore: "


@dataclass
class Parsed:
    connection: int
    line: bytes
    authorization: bytes | None


def _field(fields: list[bytes], name: bytes) -> bytes | None:
    for raw in fields:
        key, _, value = raw.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


@dataclass
class NaiveUpstream:
    """Parses request heads only, never bodies (as a server that answers an error before
    reading does), keeping unread bytes as the start of the next request."""

    parsed: list[Parsed] = field(default_factory=list)

    async def handle(self, peer: Peer) -> None:
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                data = await peer.reader.read(65536)
                if not data:
                    return
                buffer += data
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            line, *fields = head.split(b"\r\n")
            auth = _field(fields, b"authorization")
            self.parsed.append(Parsed(peer.index, line, auth))
            length = int(_field(fields, b"content-length") or 0)
            if length:
                # refuses the upload without reading it, but only once all of it has
                # arrived: the proxy has finished sending, so the exchange looks clean
                while len(buffer) < length:
                    data = await peer.reader.read(65536)
                    if not data:
                        return
                    buffer += data
                peer.send(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 6\r\n\r\ndenied")
            else:
                who = (auth or b"-").rsplit(b"-", 1)[-1]
                peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(who), who))


@pytest.fixture
async def sessions() -> tuple[MemoryStore, dict[str, dict[str, str]]]:
    store = MemoryStore()
    cookies = {}
    for user in ("alice", "bob"):
        cookie = await mint_session(store, user, f"token-{user}")
        cookies[user] = {"Cookie": f"bff-session={cookie}", "X-CSRF": "1"}
    return store, cookies


@pytest.fixture
async def naive_bff(
    sessions: tuple[MemoryStore, dict[str, dict[str, str]]],
) -> AsyncIterator[tuple[int, NaiveUpstream, ScriptedUpstream]]:
    store, _ = sessions
    naive = NaiveUpstream()
    async with ScriptedUpstream(naive.handle) as up:
        settings = make_settings([{"prefix": "/api", "upstream": up.origin}])
        async with serve(settings, store) as url:
            yield int(url.rsplit(":", 1)[1]), naive, up


async def ask(port: int, data: bytes) -> tuple[int, bytes]:
    browser = await RawClient.open(port)
    try:
        await browser.send(data)
        answer = await browser.answer()
        return answer.status, answer.body
    finally:
        await browser.close()


async def test_unread_body_of_a_refused_upload_never_reaches_the_next_users_request(
    sessions: tuple[MemoryStore, dict[str, dict[str, str]]],
    naive_bff: tuple[int, NaiveUpstream, ScriptedUpstream],
) -> None:
    """Issue 11 defect 10; CVE-2023-25690 (mod_proxy request smuggling); nginx's
    `request_body_sent` rule for upstream keep-alive."""
    _, cookies = sessions
    port, naive, up = naive_bff
    status, _ = await ask(port, request_bytes("POST", "/api/upload", cookies["alice"], SMUGGLED))
    assert status == 401
    for _ in range(3):  # bob's requests, each must be bob's own on the upstream
        status, body = await ask(port, request_bytes("GET", "/api/me", cookies["bob"]))
        assert (status, body) == (200, b"bob")
    lines = [p.line for p in naive.parsed]
    assert lines == [b"POST /api/upload HTTP/1.1"] + [b"GET /api/me HTTP/1.1"] * 3, lines
    assert all(p.authorization == b"Bearer token-bob" for p in naive.parsed[1:])
    # the refused upload's socket was closed; bob's requests share a clean one
    assert {p.connection for p in naive.parsed[1:]} == {1}
    assert len(up.peers) == 2


async def test_an_upload_answered_2xx_keeps_its_connection(
    sessions: tuple[MemoryStore, dict[str, dict[str, str]]],
) -> None:
    """The rule closes only what it must: a body read and answered 2xx is a clean
    exchange, and the pooled connection serves the next request."""
    store, cookies = sessions

    async def reads_bodies(peer: Peer) -> None:
        while (seen := await peer.request()) is not None:
            peer.send(b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n" % len(seen.body))
            peer.send(b"x" * len(seen.body))

    async with ScriptedUpstream(reads_bodies) as up:
        settings = make_settings([{"prefix": "/api", "upstream": up.origin}])
        async with serve(settings, store) as url:
            port = int(url.rsplit(":", 1)[1])
            assert (await ask(port, request_bytes("POST", "/api/a", cookies["alice"], b"abc")))[
                0
            ] == 201
            assert (await ask(port, request_bytes("POST", "/api/b", cookies["bob"], b"de")))[
                0
            ] == 201
    assert len(up.requests) == 2
    assert len(up.peers) == 1


@pytest.mark.parametrize(
    ("method", "head"),
    [
        ("GET", b"HTTP/1.1 204 No Content\r\nContent-Length: %d\r\n\r\n"),
        ("GET", b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ("GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: %d\r\n\r\n"),
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"),
        ("HEAD", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ],
    ids=["204-length", "304-chunked", "304-length", "HEAD-length", "HEAD-chunked"],
)
async def test_late_body_of_a_bodiless_answer_is_never_taken_for_the_next_users_answer(
    sessions: tuple[MemoryStore, dict[str, dict[str, str]]], method: str, head: bytes
) -> None:
    """Response queue poisoning (PortSwigger, "HTTP/2: The Sequel is Always Worse",
    2021): a bodiless answer (204, 304, any answer to HEAD) whose framing promises a body
    and whose upstream sends it late. Had the socket been reused, those bytes would have
    been read as the answer to bob's request: alice's answer delivered to bob. Issue 11
    defect 7; the HEAD and 304 variants from the security review."""
    store, cookies = sessions
    late = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nfor alice: 42"

    async def sloppy(peer: Peer) -> None:
        pending = b""
        while (seen := await peer.request()) is not None:
            if b"/api/ping" in seen.line:
                peer.send(head.replace(b"%d", b"%d" % len(late)))
                pending = late  # sent once the next request is in
                continue
            who = (seen.header(b"authorization") or b"-").rsplit(b"-", 1)[-1]
            peer.send(
                pending + b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(who), who)
            )
            pending = b""

    async with ScriptedUpstream(sloppy) as up:
        settings = make_settings([{"prefix": "/api", "upstream": up.origin}])
        async with serve(settings, store) as url:
            port = int(url.rsplit(":", 1)[1])
            browser = await RawClient.open(port)
            try:
                await browser.send(request_bytes(method, "/api/ping", cookies["alice"]))
                first = await browser.answer(head_request=method == "HEAD")
            finally:
                await browser.close()
            assert first.status in (200, 204, 304)
            await asyncio.sleep(0)
            assert await ask(port, request_bytes("GET", "/api/me", cookies["bob"])) == (200, b"bob")
    assert len(up.peers) == 2
