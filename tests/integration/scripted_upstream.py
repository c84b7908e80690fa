"""A loopback upstream that says exactly the bytes a test scripts: for the upstream
client's framing, keep-alive, retry, timeout and backpressure rules, which a
well-behaved server (upstream_server.py) never exercises. Runs in the test's own loop.

Each accepted connection runs `handler(peer)`; the connection closes when it returns.
What reached the server is recorded: every connection (`peers`) and every request with
its head and its body exactly as framed on the wire (`requests`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType

__all__ = ["OK", "Peer", "Request", "ScriptedUpstream", "serve_ok"]

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Request:
    head: bytes  # request line and headers, up to and including the blank line
    body: bytes  # as framed on the wire (chunked framing kept)

    @property
    def line(self) -> bytes:
        return self.head.split(b"\r\n", 1)[0]

    def header(self, name: bytes) -> bytes | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.lower() == name.lower():
                return value.strip()
        return None


@dataclass
class Peer:
    """One accepted connection, as the upstream sees it."""

    index: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    server: ScriptedUpstream
    closed_by_client: bool = False

    async def request(self) -> Request | None:
        """The next request on this connection; None once the client has closed it."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
            request = Request(head, b"")
            length = request.header(b"content-length")
            if length is not None:
                request.body = await self.reader.readexactly(int(length))
            elif (request.header(b"transfer-encoding") or b"").lower() == b"chunked":
                request.body = await self._chunked()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed_by_client = True
            return None
        self.server.requests.append(request)
        return request

    async def _chunked(self) -> bytes:
        raw = b""
        while True:
            size_line = await self.reader.readuntil(b"\r\n")
            raw += size_line
            size = int(size_line.split(b";")[0], 16)
            raw += await self.reader.readexactly(size + 2)
            if size == 0:
                return raw

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def drain(self) -> None:
        await self.writer.drain()

    async def until_closed(self, timeout: float = 5.0) -> bool:
        """Wait for the client to close (or reset) the connection; True if it did."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                try:
                    while await self.reader.read(65536):
                        pass
                except ConnectionError:
                    pass
                self.closed_by_client = True
        return self.closed_by_client


Handler = Callable[[Peer], Awaitable[None]]


async def serve_ok(peer: Peer) -> None:
    """Keep-alive: answer every request with 200 `ok`."""
    while await peer.request() is not None:
        peer.send(OK)


@dataclass
class ScriptedUpstream:
    handler: Handler
    tls: ssl.SSLContext | None = None  # serve https with this server context
    peers: list[Peer] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = field(default=None, repr=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, repr=False)

    @property
    def origin(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def __aenter__(self) -> ScriptedUpstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = Peer(len(self.peers), reader, writer, self)
        self.peers.append(peer)
        try:
            await self.handler(peer)
        except ConnectionError:
            peer.closed_by_client = True
        except asyncio.CancelledError:
            pass  # the test is over (a cancelled task here would only be logged)
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
