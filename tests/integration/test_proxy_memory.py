"""Bodies stream in both directions: a 50 MB download and a 20 MB upload pass through
`bff serve` (a subprocess: uvloop + httptools, as in production) while its resident
memory grows by less than 20 MB."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx
import pytest
import redis.asyncio as aioredis

from bff.store.redis import RedisStore
from tests.fake_idp import CLIENT_ID, CLIENT_SECRET, SECRET_KEY
from tests.integration.proxy_env import BffProcess, mint_session
from tests.integration.upstream_server import UpstreamServer, running_upstream

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024
LIMIT_KIB = 20 * 1024


@pytest.fixture
def up() -> Iterator[UpstreamServer]:
    with running_upstream() as server:
        yield server


@pytest.fixture
async def bff(up: UpstreamServer, redis_url: str) -> AsyncIterator[tuple[BffProcess, str]]:
    prefix = f"bffmem-{uuid.uuid4().hex[:12]}"
    store = RedisStore.from_url(redis_url, prefix=prefix)
    cookie = await mint_session(store, "alice", "token-alice")
    await store.aclose()
    env = {
        "BFF_ISSUER": "http://127.0.0.1:9",  # never reached: the proxy needs no provider
        "BFF_CLIENT_ID": CLIENT_ID,
        "BFF_CLIENT_SECRET": CLIENT_SECRET,
        "BFF_SECRET_KEY": SECRET_KEY,
        "BFF_SESSION_STORE": redis_url,
        "BFF_STORE_PREFIX": prefix,
        "BFF_ROUTES": f"/api={up.url}",
    }
    process = await asyncio.to_thread(BffProcess, env)
    try:
        yield process, cookie
    finally:
        process.stop()
        raw = aioredis.Redis.from_url(redis_url)
        keys = [k async for k in raw.scan_iter(match=f"{prefix}:*")]
        if keys:
            await raw.delete(*keys)
        await raw.aclose()


async def peak_growth_kib(process: BffProcess, work: Callable[[], Awaitable[None]]) -> int:
    """Highest resident size seen during `work`, minus the size before it."""
    baseline = process.rss_kib()
    peak = baseline
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, process.rss_kib())
            stop.wait(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        await work()
    finally:
        stop.set()
        sampler.join(5)
    return max(peak, process.rss_kib()) - baseline


async def chunks(count: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    block = bytes(range(256)) * (size // 256)
    for _ in range(count):
        yield block


async def test_50mb_download_and_20mb_upload_stream_in_bounded_memory(
    bff: tuple[BffProcess, str], up: UpstreamServer
) -> None:
    process, cookie = bff
    headers = {"Cookie": f"bff-session={cookie}", "X-CSRF": "1"}
    async with httpx.AsyncClient(base_url=process.url, timeout=60) as client:
        # warm up: pools, buffers and code paths exist before the baseline
        for _ in range(5):
            assert (await client.get("/api/warm", headers=headers)).status_code == 200
        assert len((await client.get("/api/w?_stream_mb=2", headers=headers)).content) == 2 * MIB
        r = await client.post("/api/w", headers=headers, content=chunks(16))
        assert r.json()["body_size"] == 16 * 64 * 1024

        received = 0

        async def download() -> None:
            nonlocal received
            async with client.stream("GET", "/api/big?_stream_mb=50", headers=headers) as r:
                assert r.status_code == 200
                async for chunk in r.aiter_raw():
                    received += len(chunk)

        down_kib = await peak_growth_kib(process, download)
        assert received == 50 * MIB

        echo: dict[str, object] = {}

        async def upload() -> None:
            r = await client.post("/api/upload", headers=headers, content=chunks(320))
            assert r.status_code == 200
            echo.update(r.json())

        up_kib = await peak_growth_kib(process, upload)
        expected = hashlib.sha256(bytes(range(256)) * 256 * 320).hexdigest()
        assert echo["body_size"] == 20 * MIB
        assert echo["body_sha256"] == expected

    print(
        f"\nbff RSS growth: 50 MiB download {down_kib / 1024:.1f} MiB, "
        f"20 MiB upload {up_kib / 1024:.1f} MiB (baseline {process.rss_kib() / 1024:.1f} MiB)"
    )
    assert down_kib < LIMIT_KIB, f"download grew RSS by {down_kib} KiB"
    assert up_kib < LIMIT_KIB, f"upload grew RSS by {up_kib} KiB"
