"""The upstream transports against scripted loopback upstreams sending exact bytes:
request framing and hygiene, response framing, keep-alive and its limits, the
stale-connection retry, timeouts, cancellation and backpressure. Every test runs on both
transports (BFF_UPSTREAM_TRANSPORT: the lean client, bff.upstream.client, and the aiohttp
reference, bff.upstream.aiohttp_transport), each on asyncio and on uvloop (what
`bff serve` uses)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bff.errors import UpstreamBusy, UpstreamTimeout, UpstreamUnavailable
from bff.upstream import parser as upstream_parser
from bff.upstream.aiohttp_transport import AiohttpOrigin, AiohttpResponse
from bff.upstream.client import LeanOrigin
from bff.upstream.exchange import UpstreamResponse
from bff.upstream.framing import InvalidRequest
from bff.upstream.origins import UpstreamPool
from bff.upstream.protocol import OriginTransport, Transport, UpstreamExchange
from tests.integration.scripted_upstream import OK, Peer, ScriptedUpstream, serve_ok

pytestmark = pytest.mark.anyio


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture(params=["lean", "aiohttp"])
def transport(request: pytest.FixtureRequest) -> Transport:
    """Every test runs on both transports, but for the cases marked `lean_only(reason)`:
    what aiohttp cannot do, said in the reason."""
    kind: Transport = request.param
    marker = request.node.get_closest_marker("lean_only")
    if kind == "aiohttp" and marker is not None:
        pytest.skip(f"lean only: {marker.args[0]}")
    return kind


def new_pool(
    transport: Transport, origin: str, *, timeout: float, limit: int, **options: Any
) -> Any:
    """A transport to `origin`; `options`: keepalive, tls, queue_timeout."""
    kind = LeanOrigin if transport == "lean" else AiohttpOrigin
    return kind(origin, timeout=timeout, limit=limit, **options)


async def read_all(response: UpstreamExchange) -> bytes:
    chunks = [await response.readany()]
    while not response.at_eof():
        chunks.append(await response.readany())
    return b"".join(chunks)


async def fetch(
    pool: OriginTransport,
    target: str = "/x",
    method: str = "GET",
    headers: list[tuple[str, str]] | None = None,
    body: AsyncIterator[bytes] | None = None,
) -> tuple[UpstreamExchange, bytes]:
    response = await pool.request(method, target, headers or [], body)
    try:
        return response, await read_all(response)
    finally:
        response.release()


def queued(response: UpstreamExchange) -> int:
    """Body bytes received and not yet read (each transport keeps its own count)."""
    if isinstance(response, UpstreamResponse):
        return response.buffered
    assert isinstance(response, AiohttpResponse)
    size: int = response._response.content._size
    return size


def idle_sockets(pool: OriginTransport) -> list[socket.socket]:
    if isinstance(pool, LeanOrigin):
        transports = [conn.transport for conn in pool.pool._idle]
    else:
        assert isinstance(pool, AiohttpOrigin)
        connector = pool._session.connector
        assert isinstance(connector, aiohttp.TCPConnector)
        transports = [p.transport for idle in connector._conns.values() for p, _ in idle]
    return [t.get_extra_info("socket") for t in transports if t is not None]


async def parts(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def eventually(condition: Any, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


LENIENT = "aiohttp parses answers leniently (bare LF, obs-fold) and has no strict mode"
HEAD_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"  # to HEAD, as a correct upstream


async def serve_ok_head_aware(peer: Peer) -> None:
    """`serve_ok`, without the body a HEAD answer must not have (aiohttp takes body bytes
    after a HEAD answer for a malformed next answer; the lean client ignores them)."""
    while (request := await peer.request()) is not None:
        peer.send(HEAD_OK if request.line.startswith(b"HEAD ") else OK)


def answering(answer: bytes) -> Any:
    """A keep-alive upstream giving every request the same answer."""

    async def handler(peer: Peer) -> None:
        while await peer.request() is not None:
            peer.send(answer)

    return handler


# --- the request as sent --------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "headers", "added"),
    [
        ("GET", [("x-a", "1"), ("X-B", "two words")], b""),
        ("HEAD", [], b""),
        ("OPTIONS", [], b""),
        ("POST", [("content-type", "text/plain")], b"Content-Length: 0\r\n"),
        ("DELETE", [], b"Content-Length: 0\r\n"),
        ("PATCH", [], b"Content-Length: 0\r\n"),
        ("PUT", [("content-length", "0")], b""),
    ],
)
async def test_the_request_is_sent_exactly_with_host_first_and_nothing_ambient(
    method: str, headers: list[tuple[str, str]], added: bytes, transport: Transport
) -> None:
    # What aiohttp sent for the same call: Host (the upstream's own) first, the caller's
    # headers in order, `Content-Length: 0` for a bodiless method that carries a body.
    async with ScriptedUpstream(serve_ok_head_aware) as up:
        pool = new_pool(transport, up.origin, timeout=2, limit=4)
        await pool.request(method, "/a%2Fb/c?x=1&y=%20&z=/../", headers, None)
        pool.close()
    own = b"".join(f"{k}: {v}\r\n".encode() for k, v in headers)
    line = method.encode() + b" /a%2Fb/c?x=1&y=%20&z=/../ HTTP/1.1\r\n"
    host = f"Host: 127.0.0.1:{up.port}\r\n".encode()
    assert up.requests[0].head == line + host + own + added + b"\r\n"


LEAN_ONLY_BYTES = "aiohttp writes header text as UTF-8: bytes that are not UTF-8 cannot be sent"


@pytest.mark.parametrize(
    "value",
    [
        "caf\xc3\xa9\tb",  # UTF-8 bytes, as the browser sent them
        pytest.param("caf\xc3\xa9\tb\xff", marks=pytest.mark.lean_only(LEAN_ONLY_BYTES)),
    ],
    ids=["utf-8", "latin-1"],
)
async def test_a_callers_host_is_kept_and_header_bytes_pass_as_latin1(
    value: str, transport: Transport
) -> None:
    async with ScriptedUpstream(answering(OK)) as up:
        pool = new_pool(transport, up.origin, timeout=2, limit=4)
        # headers arrive latin-1 decoded from the browser's bytes: the same bytes leave
        headers = [("Host", "api.internal"), ("x-name", value)]
        await fetch(pool, headers=headers)
        pool.close()
    assert up.requests[0].head == (
        b"GET /x HTTP/1.1\r\nHost: api.internal\r\nx-name: " + value.encode("latin-1") + b"\r\n\r\n"
    )


async def test_header_bytes_the_aiohttp_transport_cannot_send_are_refused() -> None:
    async with ScriptedUpstream(serve_ok) as up:
        pool = new_pool("aiohttp", up.origin, timeout=2, limit=4)
        with pytest.raises(InvalidRequest):
            await pool.request("GET", "/x", [("x-name", "b\xff")], None)
        pool.close()
    assert up.peers == []


@pytest.mark.parametrize(
    ("method", "target", "headers"),
    [
        ("GET", "/x", [("x-a", "1\r\nX-Injected: 1")]),
        ("GET", "/x", [("x-a", "1\nX-Injected: 1")]),
        ("GET", "/x", [("x-a", "1\rX-Injected: 1")]),
        ("GET", "/x", [("x-a", "a\x00b")]),
        ("GET", "/x", [("x-a", "a\x7fb")]),
        ("GET", "/x", [("x-a", "\u2028")]),  # not latin-1: no byte to send it as
        ("GET", "/x", [("x-a\r\nx-b", "1")]),
        ("GET", "/x", [("x a", "1")]),
        ("GET", "/x", [("x-a:", "1")]),
        ("GET", "/x", [("", "1")]),
        ("GET", "/x", [("Transfer-Encoding", "chunked")]),  # the client owns framing
        ("GET", "/x", [("content-length", "1, 1")]),
        ("GET", "/x", [("content-length", "-1")]),
        ("GET", "/x", [("content-length", "1")]),  # a length, but no body
        ("GET", "/x", [("content-length", "0"), ("Content-Length", "0")]),
        ("GET", "/x HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /y", []),
        ("GET", "/x\n", []),
        ("GET", "/x y", []),
        ("GET", "http://evil.example/x", []),
        ("GET /y HTTP/1.1\r\n\r\nGET", "/x", []),
    ],
)
async def test_control_characters_and_foreign_framing_are_refused_before_sending(
    method: str, target: str, headers: list[tuple[str, str]], transport: Transport
) -> None:
    async with ScriptedUpstream(serve_ok) as up:
        pool = new_pool(transport, up.origin, timeout=2, limit=4)
        with pytest.raises(InvalidRequest):
            await pool.request(method, target, headers, None)
        pool.close()
    assert up.peers == []  # nothing left, not even a connection


async def test_a_body_without_length_goes_chunked_one_with_length_as_it_is(
    transport: Transport,
) -> None:
    async with ScriptedUpstream(answering(OK)) as up:
        pool = new_pool(transport, up.origin, timeout=2, limit=4)
        await fetch(pool, "/c", "POST", [("x-a", "1")], parts(b"hello", b"", b"world!"))
        headers = [("content-length", "11")]
        await fetch(pool, "/l", "PUT", headers, parts(b"hello", b"world!"))
        pool.close()
    chunked, sized = up.requests
    host = f"Host: 127.0.0.1:{up.port}\r\n".encode()
    assert chunked.head == (
        b"POST /c HTTP/1.1\r\n" + host + b"x-a: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    assert chunked.body == b"5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n"
    assert sized.head == b"PUT /l HTTP/1.1\r\n" + host + b"content-length: 11\r\n\r\n"
    assert sized.body == b"helloworld!"
    assert len(up.peers) == 1  # both on one kept-alive connection


@pytest.mark.parametrize("declared", ["5", "20"])
async def test_a_body_that_does_not_match_its_length_never_completes_upstream(
    declared: str, transport: Transport
) -> None:
    async with ScriptedUpstream(serve_ok) as up:
        pool = new_pool(transport, up.origin, timeout=2, limit=4)
        with pytest.raises(UpstreamUnavailable):
            await fetch(pool, "/l", "POST", [("content-length", declared)], parts(b"0123456789"))
        assert await eventually(lambda: up.peers[0].closed_by_client)
        pool.close()
    assert up.requests == []


async def test_a_failing_request_body_aborts_the_exchange(transport: Transport) -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"first"
        raise ConnectionError("the browser left")

    async with ScriptedUpstream(serve_ok) as up:
        pool = new_pool(transport, up.origin, timeout=2, limit=4)
        with pytest.raises(UpstreamUnavailable):
            await pool.request("POST", "/up", [], failing())
        assert await eventually(lambda: up.peers[0].closed_by_client)
        pool.close()
    assert up.requests == []


async def test_an_answer_before_the_whole_body_is_delivered_and_not_reused(
    transport: Transport,
) -> None:
    # An upstream may refuse a body it has not read (413, 401): its answer is the answer.
    async def handler(peer: Peer) -> None:
        if peer.index == 0:
            await peer.reader.readuntil(b"\r\n\r\n")
            peer.send(b"HTTP/1.1 413 Too Large\r\nContent-Length: 4\r\n\r\nbig!")
            await peer.until_closed()
            return
        await serve_ok(peer)

    async def slow() -> AsyncIterator[bytes]:
        yield b"x" * 1000
        await asyncio.sleep(0.3)
        yield b"y" * 1000

    async with ScriptedUpstream(handler) as up:
        pool = new_pool(transport, up.origin, timeout=2, limit=4)
        started = time.monotonic()
        response, body = await fetch(pool, "/up", "POST", [], slow())
        assert (response.status, body) == (413, b"big!")
        assert time.monotonic() - started < 0.25  # not after the upload
        assert await eventually(lambda: up.peers[0].closed_by_client)
        assert (await fetch(pool))[1] == b"ok"
        pool.close()
    assert len(up.peers) == 2


# --- the answer as read ---------------------------------------------------------------


async def test_chunked_answers_are_decoded_and_the_connection_reused(transport: Transport) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Up: 1\r\n\r\n"
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    async with ScriptedUpstream(answering(answer)) as up:
        pool = new_pool(transport, up.origin, timeout=2, limit=4)
        for _ in range(2):
            response, body = await fetch(pool)
            assert response.status == 200
            assert response.raw_headers == [(b"Transfer-Encoding", b"chunked"), (b"X-Up", b"1")]
            assert body == b"hello world"
        pool.close()
    assert len(up.peers) == 1


async def test_interim_answers_are_skipped(transport: Transport) -> None:
    answer = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-Final: 1\r\n\r\nok"
    )
    async with ScriptedUpstream(answering(answer)) as up:
        pool = new_pool(transport, up.origin, timeout=2, limit=4)
        for _ in range(2):
            response, body = await fetch(pool)
            assert response.status == 201
            assert response.raw_headers == [(b"Content-Length", b"2"), (b"X-Final", b"1")]
            assert body == b"ok"
        pool.close()
    assert len(up.peers) == 1


@pytest.mark.parametrize(
    ("method", "answer", "connections"),
    [
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", 2),
        ("HEAD", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 2),
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n", 1),
        ("GET", b"HTTP/1.1 304 Not Modified\r\n\r\n", 1),
        ("GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\n\r\n", 2),
    ],
)
async def test_head_204_and_304_answers_have_no_body(
    method: str, answer: bytes, connections: int, transport: Transport
) -> None:
    # The next answer must not be taken for this one's body; a HEAD exchange, or a bodiless
    # answer whose framing promises a body, never goes back to the pool (a sloppy upstream
    # may send that body late), a plain 204 or 304 does.
    async def handler(peer: Peer) -> None:
        while (request := await peer.request()) is not None:
            peer.send(answer if b"/first" in request.line else OK)

    async with ScriptedUpstream(handler) as up:
        pool = new_pool(transport, up.origin, timeout=1, limit=4)
        response, body = await fetch(pool, "/first", method)
        assert body == b"" and response.at_eof()
        response, body = await fetch(pool, "/then")
        assert (response.status, body) == (200, b"ok")
        pool.close()
    assert len(up.peers) == connections


async def test_a_body_framed_by_the_end_of_the_connection_is_complete_at_a_clean_eof(
    transport: Transport,
) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        peer.send(b"HTTP/1.1 200 OK\r\n\r\nuntil the")
        await peer.drain()
        await asyncio.sleep(0.05)
        peer.send(b" end")

    async with ScriptedUpstream(handler) as up:
        pool = new_pool(transport, up.origin, timeout=2, limit=4)
        _, body = await fetch(pool)
        assert body == b"until the end"
        await fetch(pool)  # a new connection: that one is gone
        pool.close()
    assert len(up.peers) == 2


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
    ],
)
async def test_an_answer_cut_short_is_an_error_not_a_short_body(
    answer: bytes, transport: Transport
) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        peer.send(answer)

    async with ScriptedUpstream(handler) as up:
        pool = new_pool(transport, up.origin, timeout=2, limit=4)
        response = await pool.request("GET", "/x", [], None)
        try:
            with pytest.raises(UpstreamUnavailable):
                await read_all(response)
        finally:
            response.release()
        pool.close()


@pytest.mark.parametrize(
    ("answer", "then_close"),
    [
        (b"", True),  # closed without a word (a fresh connection: never retried)
        (b"HTTP/1.1 200 OK\r\nContent-Le", True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", False),
        pytest.param(
            b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", False, marks=pytest.mark.lean_only(LENIENT)
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nX-A: a\r\n folded\r\nContent-Length: 0\r\n\r\n",
            False,
            marks=pytest.mark.lean_only(LENIENT),
        ),
        (b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n", False),
        (b"SSH-2.0-OpenSSH_9.6\r\n", False),
        (b"HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nok", False),
        (b"HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nok", False),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * 200 + b"Content-Length: 0\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 100_000 + b"\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nX-Endless: " + b"a" * 300_000, False),
    ],
    ids=[
        "closed",
        "cut-head",
        "two-lengths",
        "length-and-chunked",
        "bare-lf",
        "obs-fold",
        "nul",
        "not-http",
        "status-099",
        "status-600",
        "upgrade",
        "too-many-headers",
        "head-too-large",
        "head-endless",
    ],
)
async def test_no_answer_or_a_malformed_one_is_unavailable(
    answer: bytes, then_close: bool, transport: Transport
) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        peer.send(answer)
        await peer.drain()
        if not then_close:
            await peer.until_closed()

    async with ScriptedUpstream(handler) as up:
        pool = new_pool(transport, up.origin, timeout=2, limit=4)
        with pytest.raises(UpstreamUnavailable):
            await pool.request("GET", "/x", [], None)
        if not then_close:  # the client gave up on it by itself
            assert await eventually(lambda: up.peers[0].closed_by_client)
        pool.close()
    assert len(up.requests) == 1  # never sent twice


# --- keep-alive -----------------------------------------------------------------------


async def test_a_connection_is_reused_after_a_clean_exchange(transport: Transport) -> None:
    async with ScriptedUpstream(serve_ok) as up:
        pool = new_pool(transport, up.origin, timeout=2, limit=4)
        for _ in range(3):
            response, body = await fetch(pool)
            assert (response.status, body) == (200, b"ok")
        pool.close()
    assert (len(up.peers), len(up.requests)) == (1, 3)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ],
    ids=["connection-close", "http-1.0"],
)
async def test_an_answer_that_ends_keep_alive_is_never_reused(
    answer: bytes, transport: Transport
) -> None:
    async with ScriptedUpstream(answering(answer)) as up:  # keeps it open all the same
        pool = new_pool(transport, up.origin, timeout=2, limit=4)
        for _ in range(2):
            _, body = await fetch(pool)
            assert body == b"ok"
        assert await eventually(lambda: up.peers[0].closed_by_client)  # by us
        pool.close()
    assert len(up.peers) == 2


async def test_released_before_the_end_the_connection_is_closed_not_reused(
    transport: Transport,
) -> None:
    async def handler(peer: Peer) -> None:
        request = await peer.request()
        if request is not None and b"/partial" in request.line:
            peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
            await peer.until_closed()
            return
        peer.send(OK)
        await serve_ok(peer)

    async with ScriptedUpstream(handler) as up:
        pool = new_pool(transport, up.origin, timeout=2, limit=4)
        response = await pool.request("GET", "/partial", [], None)
        assert await response.readany() == b"0123456789"
        response.release()
        assert await eventually(lambda: up.peers[0].closed_by_client)
        await fetch(pool)
        pool.close()
    assert len(up.peers) == 2


async def test_unasked_bytes_after_an_answer_close_the_connection(transport: Transport) -> None:
    # A second answer nobody asked for must never become the next request's answer.
    smuggled = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nevil!"

    async def handler(peer: Peer) -> None:
        if peer.index == 0:
            await peer.request()
            peer.send(OK + smuggled)  # in the same packet
            await peer.until_closed()
        elif peer.index == 1:
            await peer.request()
            peer.send(OK)
            await peer.drain()
            await asyncio.sleep(0.1)
            peer.send(smuggled)  # later, while the connection is idle
            await peer.until_closed()
        else:
            await serve_ok(peer)

    async with ScriptedUpstream(handler) as up:
        pool = new_pool(transport, up.origin, timeout=2, limit=4)
        assert (await fetch(pool))[1] == b"ok"
        assert (await fetch(pool))[1] == b"ok"  # not "evil!"
        await asyncio.sleep(0.3)
        assert (await fetch(pool))[1] == b"ok"
        pool.close()
    assert len(up.peers) == 3


async def test_idle_connections_are_closed_after_the_keepalive_period(transport: Transport) -> None:
    async with ScriptedUpstream(serve_ok) as up:
        pool = new_pool(transport, up.origin, timeout=2, limit=4, keepalive=0.2)
        await fetch(pool)
        started = time.monotonic()
        assert await eventually(lambda: up.peers[0].closed_by_client, 3)
        assert 0.1 < time.monotonic() - started < 2
        await fetch(pool)
        pool.close()
    assert len(up.peers) == 2


@pytest.mark.parametrize(
    ("method", "body", "retried"),
    [
        ("GET", None, True),
        ("HEAD", None, True),
        ("DELETE", None, True),
        ("POST", None, False),
        ("PATCH", None, False),
        ("PUT", b"body", False),
    ],
)
async def test_a_stale_pooled_connection_is_retried_once_only_when_that_is_safe(
    method: str, body: bytes | None, retried: bool, transport: Transport
) -> None:
    # The first connection answers once, then takes the next request and closes without
    # a word: what an upstream's keep-alive timeout does when it races our request.
    async def handler(peer: Peer) -> None:
        if peer.index == 0:
            await peer.request()
            peer.send(OK)
            await peer.request()
            return
        await serve_ok_head_aware(peer)

    async with ScriptedUpstream(handler) as up:
        pool = new_pool(transport, up.origin, timeout=2, limit=4)
        await fetch(pool, "/warm")
        content = parts(body) if body is not None else None
        headers = [("content-length", str(len(body)))] if body is not None else []
        if retried:
            response, _ = await fetch(pool, "/again", method, headers, content)
            assert response.status == 200
        else:
            with pytest.raises(UpstreamUnavailable):
                await fetch(pool, "/again", method, headers, content)
        pool.close()
    assert len(up.requests) == (3 if retried else 2)
    assert len(up.peers) == (2 if retried else 1)


async def test_a_stale_connection_is_not_retried_once_the_answer_began(
    transport: Transport,
) -> None:
    async def handler(peer: Peer) -> None:
        if peer.index == 0:
            await peer.request()
            peer.send(OK)
            await peer.request()
            peer.send(b"HTTP/1.1 200 OK\r\nContent-Le")
            return
        await serve_ok(peer)

    async with ScriptedUpstream(handler) as up:
        pool = new_pool(transport, up.origin, timeout=2, limit=4)
        await fetch(pool)
        with pytest.raises(UpstreamUnavailable):
            await fetch(pool)
        pool.close()
    assert len(up.requests) == 2


async def test_the_pool_never_opens_more_than_its_limit(transport: Transport) -> None:
    async def handler(peer: Peer) -> None:
        while await peer.request() is not None:
            await asyncio.sleep(0.05)
            peer.send(OK)

    async with ScriptedUpstream(handler) as up:
        pool = new_pool(transport, up.origin, timeout=5, limit=2)
        results = await asyncio.gather(*(fetch(pool) for _ in range(8)))
        assert [body for _, body in results] == [b"ok"] * 8
        pool.close()
    assert len(up.peers) == 2
    assert len(up.requests) == 8


async def test_waiting_for_a_pool_slot_is_bounded_and_busy_not_a_timeout(
    transport: Transport,
) -> None:
    async def handler(peer: Peer) -> None:  # holds its connection with a slow stream
        await peer.request()
        peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(20):
            peer.send(b"1\r\nx\r\n")
            await asyncio.sleep(0.1)
        peer.send(b"0\r\n\r\n")

    async with ScriptedUpstream(handler) as up:
        pool = new_pool(transport, up.origin, timeout=0.3, limit=1)  # queue_timeout: the timeout
        streaming = await pool.request("GET", "/slow", [], None)
        started = time.monotonic()
        with pytest.raises(UpstreamBusy):
            async with asyncio.timeout(5):
                await pool.request("GET", "/waits", [], None)
        assert 0.25 < time.monotonic() - started < 1.5
        assert await read_all(streaming) == b"x" * 20  # 2 s in all: not bounded as a whole
        streaming.release()
        pool.close()
    assert len(up.peers) == 1


async def test_connecting_to_nothing_is_unavailable(transport: Transport) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        pool = new_pool(transport, f"http://127.0.0.1:{port}", timeout=2, limit=4)
        with pytest.raises(UpstreamUnavailable):
            await pool.request("GET", "/x", [], None)
        pool.close()


# --- timeouts, cancellation, backpressure ---------------------------------------------


async def test_headers_that_never_come_time_out(transport: Transport) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.until_closed()

    async with ScriptedUpstream(handler) as up:
        pool = new_pool(transport, up.origin, timeout=0.3, limit=4)
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            async with asyncio.timeout(5):  # (a TimeoutError of its own is no pass)
                await pool.request("GET", "/x", [], None)
        assert 0.25 < time.monotonic() - started < 1.5
        assert await eventually(lambda: up.peers[0].closed_by_client)
        pool.close()


async def test_each_gap_between_chunks_is_bounded_never_the_whole_body(
    transport: Transport,
) -> None:
    async def handler(peer: Peer) -> None:
        while (request := await peer.request()) is not None:
            gap = 0.6 if b"/stall" in request.line else 0.1
            peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(6):
                peer.send(b"1\r\nx\r\n")
                await peer.drain()
                await asyncio.sleep(gap)
            peer.send(b"0\r\n\r\n")

    async with ScriptedUpstream(handler) as up:
        pool = new_pool(transport, up.origin, timeout=0.3, limit=4)
        _, body = await fetch(pool, "/drip")  # 0.6 s in all, each gap 0.1 s
        assert body == b"x" * 6
        response = await pool.request("GET", "/stall", [], None)
        try:
            assert await response.readany() == b"x"
            with pytest.raises(UpstreamTimeout):
                async with asyncio.timeout(5):
                    await response.readany()
        finally:
            response.release()
        pool.close()


async def test_a_cancelled_exchange_closes_its_connection(transport: Transport) -> None:
    async def handler(peer: Peer) -> None:
        if peer.index == 0:
            await peer.request()
            await peer.until_closed()
            return
        await serve_ok(peer)

    async with ScriptedUpstream(handler) as up:
        pool = new_pool(transport, up.origin, timeout=5, limit=1)
        task = asyncio.create_task(pool.request("GET", "/x", [], None))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await eventually(lambda: up.peers[0].closed_by_client, 2)
        _, body = await fetch(pool)  # its slot (limit=1) is free again
        assert body == b"ok"
        pool.close()
    assert len(up.peers) == 2


async def test_a_reader_slower_than_the_upstream_pauses_it(transport: Transport) -> None:
    size = 32 << 20
    block = b"\xa5" * (64 << 10)
    written: list[int] = [0]

    async def handler(peer: Peer) -> None:
        await peer.request()
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(size // len(block)):
            peer.send(block)
            await peer.drain()
            written[0] += len(block)
        await serve_ok(peer)

    async with ScriptedUpstream(handler) as up:
        pool = new_pool(transport, up.origin, timeout=5, limit=4)
        # aiohttp pauses the socket past twice its read_bufsize (64 KiB), checked after
        # each read of up to 256 KiB: its own bound, within twice the lean client's
        bound = (2 if transport == "lean" else 4) * upstream_parser.READ_LIMIT
        response = await pool.request("GET", "/big", [], None)
        await asyncio.sleep(0.5)  # nobody reads: what piles up?
        assert queued(response) <= bound
        assert written[0] < size  # the upstream is held back (kernel buffers aside)
        total = 0
        while not response.at_eof():
            total += len(await response.readany())
            assert queued(response) <= bound
        assert total == size
        response.release()
        await fetch(pool)  # and the connection was reused
        pool.close()
    assert len(up.peers) == 1


async def test_tcp_nodelay_is_set_on_upstream_sockets(transport: Transport) -> None:
    async with ScriptedUpstream(serve_ok) as up:
        pool = new_pool(transport, up.origin, timeout=2, limit=4)
        await fetch(pool)
        (sock,) = idle_sockets(pool)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        pool.close()


async def test_upstream_pool_keeps_one_pool_per_origin_and_closes_them(
    transport: Transport,
) -> None:
    async with ScriptedUpstream(serve_ok) as a, ScriptedUpstream(serve_ok) as b:
        pool = UpstreamPool(timeout=2, transport=transport)
        for origin in (a.origin, b.origin, a.origin):
            response = await pool.request(origin, "GET", "/x", [], None)
            assert await read_all(response) == b"ok"
            response.release()
        await pool.aclose()
        assert await eventually(lambda: a.peers[0].closed_by_client, 2)
        assert await eventually(lambda: b.peers[0].closed_by_client, 2)
    assert (len(a.peers), len(b.peers)) == (1, 1)


# --- TLS ------------------------------------------------------------------------------


def tls_pair(tmp_path: Any) -> tuple[ssl.SSLContext, bytes]:
    """A server context with a certificate for 127.0.0.1, and that certificate (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bff test upstream")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(pem)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return server, pem


async def test_https_upstreams_are_verified_against_the_system_cas(
    tmp_path: Any, transport: Transport
) -> None:
    server, _ = tls_pair(tmp_path)
    async with ScriptedUpstream(serve_ok, tls=server) as up:
        pool = new_pool(transport, up.origin, timeout=2, limit=4)  # the default: system CAs
        with pytest.raises(UpstreamUnavailable):
            await pool.request("GET", "/x", [], None)
        pool.close()
    assert up.requests == []


async def test_https_exchanges_keep_alive_like_plain_ones(
    tmp_path: Any, transport: Transport
) -> None:
    server, pem = tls_pair(tmp_path)
    trusting = ssl.create_default_context(cadata=pem.decode())
    async with ScriptedUpstream(serve_ok, tls=server) as up:
        pool = new_pool(transport, up.origin, timeout=2, limit=4, tls=trusting)
        for _ in range(2):
            response, body = await fetch(pool)
            assert (response.status, body) == (200, b"ok")
        pool.close()
    assert len(up.peers) == 1
    assert up.requests[0].head == f"GET /x HTTP/1.1\r\nHost: 127.0.0.1:{up.port}\r\n\r\n".encode()


@pytest.mark.parametrize(
    "extra",
    [
        b"HTTP/1.1 302 Found\r\nLocation: https://evil.example/\r\nContent-Length: 0\r\n\r\n",
        pytest.param(  # a head begun
            b"HTTP/1.1 302 Found\r\nLocation: https://evil.example/\r\nX-J: ",
            marks=pytest.mark.lean_only(
                "aiohttp keeps a second head begun in the same read inside its parser, where"
                " nothing shows it; the next answer on that connection is read after it"
            ),
        ),
        b"HTTP/1.1 101 Switching\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
    ],
)
async def test_a_second_answer_in_the_same_read_never_reaches_anyone(
    extra: bytes, transport: Transport
) -> None:
    # Response splitting in the same packet: the first answer stands, the injected one
    # (complete, bodiless, or only begun) neither replaces it nor becomes the next
    # request's answer, and the connection is never reused.
    async def handler(peer: Peer) -> None:
        if peer.index == 0:
            await peer.request()
            peer.send(OK + extra)
            while await peer.request() is not None:
                peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nuser-B")
        else:
            await serve_ok(peer)

    async with ScriptedUpstream(handler) as up:
        pool = new_pool(transport, up.origin, timeout=2, limit=1)
        first, data = await fetch(pool)
        assert (first.status, data) == (200, b"ok")
        second, data = await fetch(pool)
        assert (second.status, data) == (200, b"ok")  # a fresh connection's own answer
        pool.close()
    assert len(up.peers) == 2


async def test_a_connection_answered_before_its_request_body_was_sent_is_not_reused(
    transport: Transport,
) -> None:
    # An early 401 while the body is still on its way: the rest of the body could be
    # read as a request of its own (smuggled), whose answer must never reach the next user.
    smuggled = b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n"

    async def handler(peer: Peer) -> None:
        if peer.index == 0:
            await peer.reader.readuntil(b"\r\n\r\n")
            peer.send(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\nno")
            while data := await peer.reader.read(65536):
                if b"GET /admin" in data:
                    peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nADMIN")
        else:
            await serve_ok(peer)

    async def body() -> AsyncIterator[bytes]:
        yield b"xyz"
        await asyncio.sleep(0.2)  # the rest arrives after the answer
        yield smuggled

    async with ScriptedUpstream(handler) as up:
        pool = new_pool(transport, up.origin, timeout=2, limit=1)
        length = str(3 + len(smuggled))
        answer = await pool.request("POST", "/upload", [("Content-Length", length)], body())
        data = b""
        while not answer.at_eof():
            data += await answer.readany()
        assert (answer.status, data) == (401, b"no")
        await asyncio.sleep(0.4)  # the upload has finished meanwhile
        answer.release()
        after, data = await fetch(pool)
        assert (after.status, data) == (200, b"ok")  # not "ADMIN"
        pool.close()
    assert len(up.peers) == 2
