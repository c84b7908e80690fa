"""Shared parts of the adversarial suite: a bff on a real uvicorn socket in front of the
respx-shaped provider (tests/fake_idp.py), a cookie-keeping client that talks to it over
TCP, a login helper, and the prefix cleanup for sessions kept in the shared Redis."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from bff.config.model import Settings
from bff.store import SessionStore
from bff.store.memory import MemoryStore
from bff.store.redis import RedisStore
from tests.browser import Browser
from tests.fake_idp import ISSUER, FakeIdp, query
from tests.integration.proxy_env import make_settings, serve
from tests.integration.upstream_server import UpstreamServer, running_upstream

__all__ = [
    "Bff",
    "CountingStore",
    "raw_exchange",
    "redis_prefix",
    "running_bff",
    "socket_browser",
    "status_of",
    "upstream",
]


def socket_browser(base_url: str) -> Browser:
    """A cookie-keeping browser (tests/browser.py) that talks to a bff over TCP."""
    client = httpx.AsyncClient(base_url=base_url, timeout=15, follow_redirects=False)
    return Browser(None, client=client)


@dataclass
class Bff:
    url: str
    idp: FakeIdp
    store: SessionStore
    settings: Settings
    browsers: list[Browser] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def browser_url(self) -> str:
        """The URL browsers use: by the public URL's host name (localhost), since a login
        on another host is sent there."""
        return self.url.replace("//127.0.0.1:", "//localhost:")

    def browser(self) -> Browser:
        b = socket_browser(self.browser_url)
        self.browsers.append(b)
        return b

    async def start_login(self, browser: Browser, return_url: str = "/app") -> dict[str, str]:
        r = await browser.get("/bff/login", params={"returnUrl": return_url})
        assert r.status_code == 302, r.text
        params = query(r.headers["location"])
        self.idp.next_nonce = params["nonce"]
        return params

    async def login(self, browser: Browser, sub: str = "alice", **claims: Any) -> str:
        """A whole login through /bff/login and /bff/callback; the session cookie value."""
        self.idp.id_claims = {"sub": sub, "sid": f"idp-sid-{sub}", **claims}
        params = await self.start_login(browser)
        r = await browser.get(
            "/bff/callback", params={"code": f"code-{sub}", "state": params["state"], "iss": ISSUER}
        )
        assert r.status_code == 302, r.text
        return browser.cookies[self.settings.frontend.cookie_name]


@contextlib.asynccontextmanager
async def running_bff(
    routes: list[dict[str, Any]] | None = None,
    *,
    store: SessionStore | None = None,
    idp: FakeIdp | None = None,
    **env: str,
) -> AsyncIterator[Bff]:
    """bff on a real socket (uvicorn, httptools, lifespan) with the fake provider."""
    idp = idp or FakeIdp()
    store = store or MemoryStore()
    settings = make_settings(routes or [], **env)
    async with serve(settings, store, idp) as url:
        bff = Bff(url, idp, store, settings)
        try:
            yield bff
        finally:
            for b in bff.browsers:
                await b.aclose()


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own in the shared Redis (db 15), removed afterwards."""
    prefix = f"bffsec-{uuid.uuid4().hex[:12]}"
    yield prefix
    raw = aioredis.Redis.from_url(redis_url)
    try:
        keys = [k async for k in raw.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await raw.delete(*keys)
    finally:
        await raw.aclose()


def redis_store(redis_url: str, prefix: str) -> RedisStore:
    return RedisStore.from_url(redis_url, prefix=prefix)


class CountingStore:
    """A store that records every call it receives (to prove what happens before I/O)."""

    def __init__(self, inner: SessionStore) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return await attr(*args, **kwargs)

        return counted


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    """The recording aiohttp upstream of tests/integration (JSON echo of what it got)."""
    with running_upstream() as server:
        yield server


async def raw_exchange(port: int, request: bytes, timeout: float = 10) -> bytes:
    """Bytes exactly as given on one connection; everything until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])
