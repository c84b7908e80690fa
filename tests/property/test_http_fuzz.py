"""The whole stack, fuzzed over raw sockets (THREATS.md invariants 1, 2 and 15): random
methods, request targets built from the path-trick alphabet, random headers (managed
names in any case and `_` spelling, forged forwarding and auth headers, look-alike
cookies) and bodies go to a real `bff serve` (httptools, uvloop) in front of a recording
upstream, with or without a live session. For every request: the answer is a parseable
HTTP status that is never a 500, the process keeps serving, and whatever reached the
upstream is under the route's base path and carries exactly the bearer of the request's
own session (or none), never one of the client's headers that bff owns."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from hypothesis import event, given, settings
from hypothesis import strategies as st

from bff.store.redis import RedisStore
from tests.fake_idp import CLIENT_ID, CLIENT_SECRET, ISSUER, SECRET_KEY
from tests.integration.proxy_env import BffProcess, mint_session
from tests.integration.upstream_server import UpstreamServer, running_upstream
from tests.property.test_headers_property import MANAGED, spellings
from tests.property.test_routes_property import PIECES


@dataclass
class Stack:
    bff: BffProcess
    upstream: UpstreamServer
    cookie: str  # a live session of user "fuzz", whose access token is "token-of-fuzz"


@pytest.fixture(scope="module")
def stack(redis_url: str) -> Iterator[Stack]:
    prefix = f"bfffuzz-{uuid.uuid4().hex[:12]}"

    async def mint() -> str:
        store = RedisStore.from_url(redis_url, prefix=prefix)
        try:
            return await mint_session(store, "fuzz", "token-of-fuzz")
        finally:
            await store.aclose()

    cookie = asyncio.run(mint())
    with running_upstream() as upstream:
        env = {
            "BFF_ISSUER": ISSUER,
            "BFF_CLIENT_ID": CLIENT_ID,
            "BFF_CLIENT_SECRET": CLIENT_SECRET,
            "BFF_SECRET_KEY": SECRET_KEY,
            "BFF_SESSION_STORE": redis_url,
            "BFF_STORE_PREFIX": prefix,
            "BFF_ROUTES": f"/api={upstream.url}/base",
            "BFF_ACCESS_LOG": "false",
        }
        bff = BffProcess(env)
        try:
            yield Stack(bff, upstream, cookie)
        finally:
            bff.stop()
            client = redis.Redis.from_url(redis_url)
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


methods = st.sampled_from(
    ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "PROPFIND", "get"]
)
segments = st.text(st.sampled_from("abc019-._~!$&'()*+,=:@"), max_size=8) | st.sampled_from(
    ["%41", "%2e", "%C3%A9", "a%20b", "..", "%2e%2e"]
)
plain_targets = st.lists(segments, max_size=4).map(lambda p: "/api/" + "/".join(p))
targets = (
    plain_targets
    | plain_targets
    | st.lists(st.sampled_from(PIECES), max_size=10).map(lambda p: "/api/" + "".join(p))
    | st.lists(st.sampled_from(PIECES), max_size=10).map(lambda p: "/" + "".join(p))
)
header_value = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=24)
hostile = st.tuples(spellings([*MANAGED, "x-csrf", "cookie", "content-type"]), header_value)
benign = st.tuples(st.sampled_from(["accept", "x-custom", "user-agent", "x_app"]), header_value)
# Many requests are plain enough to reach the upstream; the rest are hostile.
plain_headers = st.lists(benign, max_size=3)
headers = plain_headers | plain_headers | st.lists(hostile | benign, max_size=8)
cookie_kinds = st.sampled_from(["live"] * 4 + ["none", "tampered", "twice", "lookalike"])


def cookie_header(kind: str, live: str) -> str | None:
    return {
        "none": None,
        "live": f"bff-session={live}",
        "tampered": f"bff-session={live[:-2]}xx",
        "twice": f"bff-session={live}; bff-session={live}",
        "lookalike": f"bff-session\u00a0=forged; bff-session={live}",
    }[kind]


def exchange(port: int, request: bytes) -> bytes | None:
    """The whole answer (the server closes: `Connection: close`); None when none came in
    3 s, as for a request whose own headers promise more body than it has."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(request)  # no half-close: a server may take it for a browser gone
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        except TimeoutError:
            return None
    return b"".join(chunks)


@settings(max_examples=max(30, settings.default.max_examples // 3))
@given(methods, targets, headers, cookie_kinds, st.integers(0, 3), st.binary(max_size=64))
def test_no_request_is_a_500_or_reaches_the_upstream_out_of_bounds(
    stack: Stack,
    method: str,
    target: str,
    extra: list[tuple[str, str]],
    cookie_kind: str,
    csrf: int,
    body: bytes,
) -> None:
    rid = f"fz-{uuid.uuid4().hex}"  # first, so it is the one bff propagates
    lines = [f"{method} {target} HTTP/1.1", f"X-Request-ID: {rid}", "Host: localhost"]
    lines.append("Connection: close")
    lines += [f"{name}: {value}" for name, value in extra]
    cookie = cookie_header(cookie_kind, stack.cookie)
    if cookie:
        lines.append(f"Cookie: {cookie}")
    if csrf:  # three times in four
        lines.append("X-CSRF: 1")
    lines.append(f"Content-Length: {len(body)}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    answer = exchange(stack.bff.port, request)
    assert stack.bff.process.poll() is None, stack.bff.output()
    if answer is None:
        event("no answer in 3 s (waiting for a promised body)")
    elif answer:  # a request the server's parser refuses may just be closed
        status = int(answer.split(b" ", 2)[1])
        assert status != 500, (request, answer[:300])
        event(f"status {status}")
    else:
        event("closed without an answer")
    # A request that reached the upstream, identified by its id: an earlier example's
    # request may still arrive while this one runs (the browser's answer came first).
    reached = [r for r in list(stack.upstream.received) if r.header("x-request-id") == rid]
    if reached:
        event("reached the upstream")
    for seen in reached:
        assert seen.path == "/base" or seen.path.startswith("/base/"), (request, seen.path)
        assert seen.all("authorization") in ([], ["Bearer token-of-fuzz"]), request
        if seen.all("authorization"):
            assert cookie_kind == "live", request  # only a clean, unambiguous session
        forwarded_for = seen.all("x-forwarded-for")
        assert forwarded_for == ["127.0.0.1"], (request, forwarded_for)
        assert not seen.all("forwarded") and not seen.all("x-real-ip"), request
        assert "bff-session" not in " ".join(seen.all("cookie")).replace("\u00a0", " ")
