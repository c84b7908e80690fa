"""BFF_TRUSTED_PROXIES: an ingress's X-Forwarded-* headers are believed and extended
only when the socket peer is a trusted proxy; everyone else's are dropped."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from bff.store.memory import MemoryStore
from tests.integration.proxy_env import make_settings, mint_session, serve
from tests.integration.upstream_server import UpstreamServer, running_upstream

pytestmark = pytest.mark.anyio

SPOOF = {
    "X-Forwarded-For": "203.0.113.9",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "app.example",
}


@pytest.fixture(scope="module")
def up() -> Iterator[UpstreamServer]:
    with running_upstream() as server:
        yield server


async def call(up: UpstreamServer, trusted: str) -> dict[str, str | None]:
    store = MemoryStore()
    cookie = await mint_session(store, "alice", "token-alice")
    settings = make_settings([{"prefix": "/api", "upstream": up.url}], BFF_TRUSTED_PROXIES=trusted)
    async with serve(settings, store) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.get(
            "/api/x", headers={"Cookie": f"bff-session={cookie}", "X-CSRF": "1", **SPOOF}
        )
        assert r.status_code == 200
    seen = up.last()
    return {
        name: seen.header(name)
        for name in ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host")
    }


async def test_trusted_ingress_headers_are_kept_and_the_chain_extended(up: UpstreamServer) -> None:
    got = await call(up, "127.0.0.0/8")
    assert got["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert got["x-forwarded-proto"] == "https"
    assert got["x-forwarded-host"] == "app.example"


async def test_untrusted_peer_cannot_spoof_forwarding_headers(up: UpstreamServer) -> None:
    got = await call(up, "10.0.0.0/8")
    assert got["x-forwarded-for"] == "127.0.0.1"
    assert got["x-forwarded-proto"] == "http"
    assert got["x-forwarded-host"] != "app.example"
