"""Upstream answers relayed with correct framing (SPEC.md "The proxy"; issue 11 defect 7).

A 1xx, 204 or 304 answer, and any answer to HEAD, has no body whatever framing headers
the upstream sent (RFC 9110 §6.4.1, §8.6; RFC 9112 §6.3). Relaying a 204's or a 304's
`Content-Length` made uvicorn wait for body bytes that never came: it aborted the
response ("Response content shorter than Content-Length") and dropped the browser's
keep-alive connection with every request pipelined behind it. Raw sockets on both sides:
a scripted upstream says exactly these bytes, a raw client pipelines two requests in one
write to a real uvicorn (httptools) serving bff, and reads both answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bff.store.memory import MemoryStore
from tests.fake_idp import CLIENT_ID, CLIENT_SECRET, ISSUER, SECRET_KEY
from tests.integration.proxy_env import BFF_BIN, BffProcess, make_settings, mint_session, serve
from tests.integration.scripted_upstream import OK, Peer, ScriptedUpstream
from tests.security.raw_client import RawClient, request_bytes

pytestmark = pytest.mark.anyio


@dataclass
class Case:
    method: str
    upstream_says: bytes  # the whole answer to the first request
    status: int
    kept: dict[str, str]  # headers the browser must see, as the upstream sent them


CASES = {
    # defect 7 as reproduced: uvicorn waited for 5 bytes and dropped the connection
    "204 with Content-Length": Case(
        "GET", b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-Kind: a\r\n\r\n", 204, {}
    ),
    # RFC 9110 §8.6 lets a 304 carry the 200's Content-Length: still no body follows
    "304 with Content-Length": Case(
        "GET",
        b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 1234\r\n\r\n',
        304,
        {"etag": '"v1"'},
    ),
    "204 with Transfer-Encoding": Case(
        "GET", b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", 204, {}
    ),
    # an interim answer is never relayed as the answer; the final one is
    "103 then 200": Case(
        "GET",
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nContent-Length: 7\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
        200,
        {"content-length": "5"},
    ),
    # a HEAD answer keeps the GET's Content-Length (RFC 9110 §9.3.2) and has no body
    "HEAD with Content-Length": Case(
        "HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", 200, {"content-length": "10"}
    ),
}


@pytest.fixture
async def bff_with(request_case: Case) -> AsyncIterator[tuple[int, dict[str, str]]]:
    case = request_case

    async def upstream(peer: Peer) -> None:
        while (seen := await peer.request()) is not None:
            peer.send(case.upstream_says if b"/api/first" in seen.line else OK)

    store = MemoryStore()
    cookie = await mint_session(store, "alice", "token-alice")
    async with ScriptedUpstream(upstream) as up:
        settings = make_settings([{"prefix": "/api", "upstream": up.origin}])
        async with serve(settings, store) as url:
            yield int(url.rsplit(":", 1)[1]), {"Cookie": f"bff-session={cookie}", "X-CSRF": "1"}


@pytest.fixture(params=list(CASES), ids=list(CASES))
def request_case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


async def test_bodiless_answers_keep_the_browser_connection_and_the_next_request(
    request_case: Case, bff_with: tuple[int, dict[str, str]]
) -> None:
    """Issue 11 defect 7; RFC 9110 §6.4.1 / §8.6 (no Content-Length on a 1xx or 204)."""
    case = request_case
    port, headers = bff_with
    browser = await RawClient.open(port)
    try:
        # two requests in one write: the second waits behind the first on this connection
        await browser.send(
            request_bytes(case.method, "/api/first", headers)
            + request_bytes("GET", "/api/next", headers)
        )
        first = await browser.answer(head_request=case.method == "HEAD")
        assert first.status == case.status
        for name, value in case.kept.items():
            assert first.header(name) == value
        if case.status in (204, 304):
            assert first.header("content-length") is None, first.head
        assert first.header("transfer-encoding") is None, first.head
        if case.method != "HEAD":
            assert first.body == (b"final" if case.status == 200 else b"")
        second = await browser.answer()  # the connection survived, nothing was left on it
        assert (second.status, second.body) == (200, b"ok")
        assert second.header("connection") is None
    finally:
        await browser.close()


async def test_bff_serve_keeps_the_connection_after_a_204_with_content_length(
    tmp_path: Path,
) -> None:
    """The production server (`bff serve`: uvloop, httptools) with the reproduction of
    defect 7, on a public route (no session needed): pipelined, both answered."""

    async def upstream(peer: Peer) -> None:
        while (seen := await peer.request()) is not None:
            first = b"/api/first" in seen.line
            peer.send(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n" if first else OK)

    async with ScriptedUpstream(upstream) as up:
        config = tmp_path / "bff.toml"
        config.write_text(
            f'[[routes]]\nprefix = "/api"\nupstream = "{up.origin}"\ntoken = "none"\ncsrf = false\n'
        )
        env = {
            "BFF_ISSUER": ISSUER,  # never reached: the route needs no token
            "BFF_CLIENT_ID": CLIENT_ID,
            "BFF_CLIENT_SECRET": CLIENT_SECRET,
            "BFF_SECRET_KEY": SECRET_KEY,
            "BFF_ACCESS_LOG": "false",
        }
        process = await asyncio.to_thread(
            BffProcess, env, [str(BFF_BIN), "serve", "--config", str(config)]
        )
        try:
            browser = await RawClient.open(process.port)
            try:
                await browser.send(
                    request_bytes("GET", "/api/first") + request_bytes("GET", "/api/next")
                )
                first = await browser.answer()
                assert (first.status, first.header("content-length")) == (204, None)
                second = await browser.answer()
                assert (second.status, second.body) == (200, b"ok")
            finally:
                await browser.close()
        finally:
            await asyncio.to_thread(process.stop)
