"""A hostile or compromised upstream's answer, through the real proxy (THREATS.md: "a
broken or hostile provider or upstream answer"; invariants 2, 3 and 6): it cannot set,
overwrite or clear the BFF's own cookies (any case, a nameless `=name=value` cookie, the
login-binding cookie, `Clear-Site-Data`), cannot steer the browser's connection with
hop-by-hop headers. (That a compressed body is relayed raw, never inflated, is proven by
tests/integration/test_proxy.py::test_bodies_pass_raw_never_decompressed.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlencode

import pytest

from tests.integration.upstream_server import UpstreamServer
from tests.security.conftest import Bff, running_bff

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module scope: one bff (a uvicorn start and stop) serves this whole module."""
    return "asyncio"


NAME = "bff-session"


@pytest.fixture(scope="module")
async def bff(upstream: UpstreamServer) -> AsyncIterator[Bff]:
    async with running_bff([{"prefix": "/api", "upstream": upstream.url}]) as running:
        yield running


async def test_an_upstream_cannot_set_or_clear_the_bff_cookies(bff: Bff) -> None:
    browser = bff.browser()
    cookie = await bff.login(browser)
    hostile = [
        f"{NAME}=attacker; Path=/",
        f"{NAME.upper()}=attacker",
        f"={NAME}=attacker",
        f"{NAME}-login=attacker; Max-Age=600",
        f" {NAME} =attacker",
        f"{NAME}=; Max-Age=0",
        f"{NAME}=x; Domain=.example",
    ]
    query = [("_setcookie", c) for c in hostile] + [("_setcookie", "theme=dark")]
    query += [
        ("_header", 'Clear-Site-Data:"cookies", "storage"'),
        ("_header", "Connection:close, X-Secret-Hop"),
        ("_header", "X-Secret-Hop:1"),
        ("_header", "Keep-Alive:timeout=1"),
        ("_header", "Upgrade:h2c"),
    ]
    r = await browser.get(f"/api/x?{urlencode(query)}", csrf=True)
    assert r.status_code == 200
    set_cookies = r.headers.get_list("set-cookie")
    assert set_cookies == ["theme=dark"], set_cookies
    for name in ("clear-site-data", "x-secret-hop", "keep-alive", "upgrade"):
        assert name not in r.headers, name
    assert r.headers.get("connection", "keep-alive").lower() != "close"
    # the session is untouched
    assert browser.cookies[NAME] == cookie
    assert (await browser.get("/bff/user", csrf=True)).status_code == 200
