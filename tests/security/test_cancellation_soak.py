"""Cancellation soak (THREATS.md invariant 12; redis-py CVE-2023-28858/28859, the 2023
cross-user data leak from a command cancelled between send and reply; also invariant 3's
connection reuse): thousands of proxied requests by many users over `bff serve` with two
workers and the real Redis, a quarter of them abandoned by the client at a random moment
(before the answer, while the session is being read, while the upstream thinks, during a
streamed body). A real upstream counts which user's bearer each request carried against
the user its path names; every answer the clients read is checked against its own user.
Zero cross-user requests, zero cross-user answers, and the service answers correctly
afterwards. Bounded: a fixed number of requests (SOAK_REQUESTS), concurrency 48."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from bff.store.redis import RedisStore
from tests.fake_idp import CLIENT_ID, CLIENT_SECRET, ISSUER, SECRET_KEY
from tests.integration.proxy_env import BFF_BIN, BffProcess, mint_session
from tests.integration.upstream_server import UpstreamServer, running_upstream

pytestmark = pytest.mark.anyio

REQUESTS = int(os.environ.get("SOAK_REQUESTS", "5000"))
USERS = 24
CONCURRENCY = 48


@pytest.fixture(scope="module")
def soak_upstream() -> Iterator[UpstreamServer]:
    with running_upstream() as server:
        yield server


@pytest.fixture
async def service(
    soak_upstream: UpstreamServer, redis_url: str, redis_prefix: str
) -> AsyncIterator[tuple[BffProcess, dict[str, str]]]:
    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    try:
        cookies = {
            f"u{i}": await mint_session(store, f"u{i}", f"token-of-u{i}") for i in range(USERS)
        }
    finally:
        await store.aclose()
    env = {
        "BFF_ISSUER": ISSUER,
        "BFF_CLIENT_ID": CLIENT_ID,
        "BFF_CLIENT_SECRET": CLIENT_SECRET,
        "BFF_SECRET_KEY": SECRET_KEY,
        "BFF_SESSION_STORE": redis_url,
        "BFF_STORE_PREFIX": redis_prefix,
        "BFF_ROUTES": f"/api={soak_upstream.url}",
        "BFF_ACCESS_LOG": "false",
    }
    bff = await asyncio.to_thread(BffProcess, env, [str(BFF_BIN), "serve", "--workers", "2"])
    try:
        yield bff, cookies
    finally:
        await asyncio.to_thread(bff.stop)


def request_bytes(user: str, cookie: str, i: int, query: str) -> bytes:
    return (
        f"GET /api/{user}/{i}?{query} HTTP/1.1\r\nHost: localhost\r\n"
        f"Cookie: bff-session={cookie}\r\nX-CSRF: 1\r\nConnection: close\r\n\r\n"
    ).encode()


async def one(
    port: int, user: str, cookie: str, i: int, rng: random.Random, *, may_leave: bool = True
) -> str:
    """'ok', 'left' (the client disconnected on purpose) or a description of a wrong answer."""
    kind = rng.random()
    query = "q=1"
    if kind < 0.1:
        query = f"_sleep={rng.uniform(0.005, 0.05):.3f}"
    elif kind < 0.15:
        query = "_drip=5&_gap=0.01"
    leave_after = rng.uniform(0, 0.02) if may_leave and rng.random() < 0.25 else None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request_bytes(user, cookie, i, query))
        if leave_after is not None:
            await asyncio.sleep(leave_after)
            writer.transport.abort()  # RST: the handler is cancelled wherever it is
            return "left"
        data = await asyncio.wait_for(reader.read(), 20)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        return f"{user}/{i}: {head[:40]!r}"
    if "_drip" in query:
        return "ok" if len(body) >= 500 else f"{user}/{i}: short stream"
    echo = json.loads(body)
    bearers = [v for k, v in echo["headers"] if k == "Authorization"]
    if echo["path"] != f"/api/{user}/{i}" or bearers != [f"Bearer token-of-{user}"]:
        return f"{user}/{i}: CROSS-USER answer {echo['path']} {bearers}"
    return "ok"


def cross_user_requests(upstream: UpstreamServer) -> list[str]:
    wrong = []
    for seen in upstream.received:
        user = seen.path.split("/")[2]
        if seen.all("authorization") != [f"Bearer token-of-{user}"]:
            wrong.append(f"{seen.path}: {seen.all('authorization')}")
    return wrong


async def test_thousands_of_requests_with_random_disconnects_never_cross_users(
    service: tuple[BffProcess, dict[str, str]], soak_upstream: UpstreamServer
) -> None:
    bff, cookies = service
    soak_upstream.received.clear()
    rng = random.Random(12)  # a fixed seed: the same soak every run
    users = sorted(cookies)
    slots = asyncio.Semaphore(CONCURRENCY)

    async def bounded(i: int) -> str:
        async with slots:
            user = users[i % USERS]
            return await one(bff.port, user, cookies[user], i, rng)

    started = time.monotonic()
    outcomes = await asyncio.gather(*(bounded(i) for i in range(REQUESTS)))
    elapsed = time.monotonic() - started
    wrong = [o for o in outcomes if o not in ("ok", "left")]
    left = outcomes.count("left")
    print(
        f"soak: {REQUESTS} requests, {left} abandoned, {elapsed:.1f} s, bff pid {bff.process.pid}"
    )
    assert wrong == []
    assert left > REQUESTS // 6
    assert cross_user_requests(soak_upstream) == []
    assert len(soak_upstream.received) >= REQUESTS - left

    # afterwards every user is still served, correctly, by both workers
    after = await asyncio.gather(
        *(
            one(
                bff.port,
                users[k % USERS],
                cookies[users[k % USERS]],
                10**6 + k,
                rng,
                may_leave=False,
            )
            for k in range(96)
        )
    )
    assert [o for o in after if o != "ok"] == []
    assert cross_user_requests(soak_upstream) == []
