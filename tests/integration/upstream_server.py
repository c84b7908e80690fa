"""A real upstream for the proxy tests: aiohttp.web on a loopback port, in a thread with
its own event loop, recording what reached it.

Default answer: a JSON echo of the method, raw path, raw query, headers (as received),
body size and SHA-256. Query parameters starting with `_` shape the answer instead:

    _status=N [&_location=URL]   answer N (with a Location)
    _sleep=S                     wait S seconds before the headers
    _stream_mb=N                 stream N MiB of zeros in 64 KiB chunks
    _drip=N&_gap=S               N small chunks, S seconds apart
    _forever=1                   small chunks every 50 ms until the client leaves
    _cut=1                       promise 1000 bytes, send 10, drop the connection
    _gzip=1                      the echo gzip-compressed, with Content-Encoding: gzip
    _reject=TOKEN                answer 401 to `Authorization: Bearer TOKEN`
    _setcookie=name=value        add a Set-Cookie (repeatable)
    _header=Name:Value           add a response header (repeatable)
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["GZIPPED", "Received", "UpstreamServer", "running_upstream"]

CHUNK = b"\0" * 65536
GZIPPED = gzip.compress(b'{"compressed": true}' * 100, mtime=0)


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body_size: int = 0
    body_sha256: str = ""

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def names(self) -> set[str]:
        return {k.lower() for k, _ in self.headers}


@dataclass
class UpstreamServer:
    host: str = "127.0.0.1"
    port: int = 0
    received: list[Received] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)  # exchanges the client left early
    completed: list[str] = field(default_factory=list)  # streams sent to the end
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _runner: web.AppRunner | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def localhost_url(self) -> str:
        return f"http://localhost:{self.port}"

    def start(self) -> UpstreamServer:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="upstream", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), loop).result(10)
        return self

    async def _start(self) -> None:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        loop, runner = self._loop, self._runner
        if loop is None:
            return
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        assert self._thread is not None
        self._thread.join(10)
        loop.close()
        self._loop = self._runner = self._thread = None

    def last(self) -> Received:
        return self.received[-1]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._answer(request)
        except (ConnectionError, asyncio.CancelledError):
            self.aborted.append(request.path)  # the proxy went away mid-exchange
            raise

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        raw_path, _, raw_query = request.raw_path.partition("?")
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            size += len(chunk)
        seen = Received(
            method=request.method,
            path=raw_path,
            query=raw_query,
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers],
            body_size=size,
            body_sha256=digest.hexdigest(),
        )
        self.received.append(seen)
        q = request.query
        extra = [("Set-Cookie", c) for c in q.getall("_setcookie", [])]
        for header in q.getall("_header", []):
            name, _, value = header.partition(":")
            extra.append((name, value))
        if "_sleep" in q:
            await asyncio.sleep(float(q["_sleep"]))
        if "_stream_mb" in q:
            return await self._stream(request, int(q["_stream_mb"]) * 16, 0.0, CHUNK, extra)
        if "_drip" in q:
            return await self._stream(request, int(q["_drip"]), float(q["_gap"]), b"x" * 100, extra)
        if "_forever" in q:
            return await self._stream(request, 10**9, 0.05, b"y" * 100, extra)
        if "_cut" in q:
            response = web.StreamResponse(headers={"Content-Length": "1000"})
            await response.prepare(request)
            await response.write(b"0123456789")
            assert request.transport is not None
            request.transport.close()
            return response
        status = int(q.get("_status", "200"))
        if "_reject" in q and seen.header("authorization") == f"Bearer {q['_reject']}":
            status = 401
        body: dict[str, Any] = {
            "method": seen.method,
            "path": seen.path,
            "query": seen.query,
            "headers": seen.headers,
            "body_size": size,
            "body_sha256": seen.body_sha256,
        }
        payload = json.dumps(body).encode()
        response = web.Response(status=status, body=payload, content_type="application/json")
        if "_gzip" in q:
            response.body = GZIPPED
            response.headers["Content-Encoding"] = "gzip"
        if "_location" in q:
            response.headers["Location"] = q["_location"]
        for name, value in extra:
            response.headers.add(name, value)
        return response

    async def _stream(
        self,
        request: web.Request,
        count: int,
        gap: float,
        chunk: bytes,
        extra: list[tuple[str, str]],
    ) -> web.StreamResponse:
        response = web.StreamResponse()
        for name, value in extra:
            response.headers.add(name, value)
        if count < 10**9:
            response.content_length = count * len(chunk)
        await response.prepare(request)
        for _ in range(count):
            await response.write(chunk)
            if gap:
                await asyncio.sleep(gap)
        await response.write_eof()
        self.completed.append(request.path)
        return response


@contextmanager
def running_upstream(port: int = 0) -> Iterator[UpstreamServer]:
    server = UpstreamServer(port=port).start()
    try:
        yield server
    finally:
        server.stop()
