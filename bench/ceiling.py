"""The issue's "ceiling of this stack": a bare uvicorn ASGI app (uvloop, httptools) that
does one Redis GETEX and one aiohttp hop upstream per request, and nothing else: no
session, crypto or header work. bench/run.py measures it beside bff, so the added-latency
target can be read against what the stack itself costs on the machine at hand.

Run: BENCH_UPSTREAM=http://127.0.0.1:P BENCH_REDIS=redis://127.0.0.1:Q/0 \
     python bench/ceiling.py PORT
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import redis.asyncio
import uvicorn

Message = MutableMapping[str, Any]
_KEY = "bench:ceiling"
_BLOB = b"x" * 1024  # about a sealed session record


class Ceiling:
    def __init__(self, upstream: str, redis_url: str) -> None:
        self.upstream = upstream
        self.redis_url = redis_url
        self.http: aiohttp.ClientSession | None = None
        self.redis: redis.asyncio.Redis | None = None

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        assert self.http is not None
        assert self.redis is not None
        await self.redis.getex(_KEY, ex=1800)
        url = self.upstream + scope["path"]
        async with self.http.get(url, headers={"Authorization": "Bearer x"}) as answer:
            body = await answer.read()
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": answer.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

    async def _lifespan(
        self, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=256, keepalive_timeout=30)
                self.http = aiohttp.ClientSession(
                    connector=connector,
                    cookie_jar=aiohttp.DummyCookieJar(),
                    auto_decompress=False,
                )
                self.redis = redis.asyncio.Redis.from_url(self.redis_url)
                await self.redis.set(_KEY, _BLOB)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.http is not None:
                    await self.http.close()
                if self.redis is not None:
                    await self.redis.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def main() -> None:
    app = Ceiling(os.environ["BENCH_UPSTREAM"], os.environ["BENCH_REDIS"])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        access_log=False,
        server_header=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
