"""Path traversal through the real proxy with raw request targets (THREATS.md invariant 1;
Duende BFF and Pomerium path advisories, and uvicorn decoding `scope["path"]` while HTTP
clients normalise `..`): a generated corpus of dot-segment spellings (raw, percent- and
double-percent-encoded, any case, overlong UTF-8, `..;`, Windows `...` and `.. `, with
`/`, `\\`, `%2f`, `%5c` separators) placed in front of an admin path. Each one is either
refused with 400 and nothing reaches the upstream, or reaches it under the route's own
mapped base with no dot segment left: never above it."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from urllib.parse import unquote

import pytest

from tests.integration.upstream_server import UpstreamServer
from tests.security.conftest import Bff, raw_exchange, running_bff, status_of

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module scope: one bff (a uvicorn start and stop) serves this whole module."""
    return "asyncio"


DOTS = [
    "..",
    ".%2e",
    "%2e.",
    "%2e%2e",
    "%2E%2E",
    "%2e%2E",
    "%252e%252e",
    "%c0%ae%c0%ae",
    "%u002e%u002e",
    "..;",
    "..;x=1",
    "..%3b",
    "...",
    ".. ",
    "..%20",
    "..%00",
    "..%09",
    ".%00.",
]
SEPARATORS = ["/", "\\", "%2f", "%2F", "%5c", "%252f", "//", "/./", "/%2e/"]


def corpus() -> list[str]:
    targets = []
    for dots, sep in itertools.product(DOTS, SEPARATORS):
        targets.append(f"/api/v1/{dots}{sep}{dots}{sep}admin")
        targets.append(f"/api/{dots}{sep}admin?x=1")
    targets += ["/api/v1/..", "/api/..", "/api/%2e%2e", "/api/v1/%2e%2e/", "/api/;/../admin"]
    return list(dict.fromkeys(targets))


@pytest.fixture(scope="module")
async def bff(upstream: UpstreamServer) -> AsyncIterator[Bff]:
    async with running_bff(
        [{"prefix": "/api", "upstream": upstream.url + "/base", "token": "none"}]
    ) as running:
        yield running


def escapes(path: str) -> bool:
    """Would this path, decoded any number of times, leave /base?"""
    for _ in range(4):
        segments = path.replace("\\", "/").split("/")
        if not path.startswith("/base") or any(
            s.strip(" .;\0\t") == "" and "." in s for s in segments
        ):
            return True
        path = unquote(path)
    return False


async def test_no_dot_segment_spelling_reaches_above_the_route(
    bff: Bff, upstream: UpstreamServer
) -> None:
    targets = corpus()
    assert len(targets) >= 300
    refused = 0
    for target in targets:
        upstream.received.clear()
        answer = await raw_exchange(
            bff.port,
            f"GET {target} HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\nConnection: close\r\n\r\n".encode(
                "latin-1"
            ),
        )
        status = status_of(answer)
        assert status != 500, target
        if status == 400:
            refused += 1
            assert upstream.received == [], target
            continue
        # only overlong UTF-8 passes: opaque bytes to any upstream that is not a 2001 IIS
        assert "%c0%ae" in target, target
        for seen in upstream.received:
            assert not escapes(seen.path), (target, seen.path)
    assert refused >= len(targets) - 2
