"""A lean HTTP/1.1 client for the refresh storm: many keep-alive connections, one
prebuilt request fired on each at once, each request timed from its send to its last
byte.

An aiohttp client costs ~100 µs of CPU per request: 1,000 of them on the cores the bff
runs on put ~0.1 s of the client's own work into the storm's p99. Here a request is one
prebuilt `bytes` written to an `asyncio.Protocol`, and a response is parsed only as far
as its end needs: the status line, `Content-Length` or chunked framing (trailers too),
nothing else; a response without either ends when the server closes. The client's own
CPU time is reported beside the figures (`Fired.cpu_us_per_request`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

__all__ = ["Fired", "LeanConnection", "fire", "open_connections", "request_bytes"]


def request_bytes(host: str, path: str, headers: dict[str, str]) -> bytes:
    """A GET of `path` with `headers`, as it goes on the wire (built once)."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class LeanConnection(asyncio.Protocol):
    """One keep-alive connection, one request at a time: `send`, then `done` resolves to
    (status, seconds from the send to the response's last byte)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[tuple[int, float]] | None = None
        self._buf = bytearray()
        self._sent = 0.0
        self._status = 0
        self._body_at = -1  # where the body starts once the head is complete
        self._length = -1  # Content-Length; -1 chunked, -2 until the server closes
        self._scan = 0  # chunked: where the next chunk-size line starts

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self, request: bytes) -> asyncio.Future[tuple[int, float]]:
        assert self.transport is not None
        self.done = asyncio.get_running_loop().create_future()
        self._buf.clear()
        self._body_at = -1
        self._sent = time.perf_counter()
        self.transport.write(request)
        return self.done

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._body_at < 0 and not self._head():
            return
        if self._complete():
            self._finish(self._status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            # Read-until-close bodies end here; anything else is a failure (status 0).
            ok = self._body_at >= 0 and self._length == -2
            self._finish(self._status if ok else 0)

    def _head(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self._buf[:end]).lower()
        self._status = int(head[9:12])
        self._body_at = end + 4
        self._scan = self._body_at
        self._length = -2
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name == b"content-length":
                self._length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value:
                self._length = -1
        if self._status in (204, 304) or 100 <= self._status < 200:
            self._length = 0
        return True

    def _complete(self) -> bool:
        if self._length >= 0:
            return len(self._buf) - self._body_at >= self._length
        if self._length == -2:
            return False
        buf = self._buf
        while True:  # chunked: hop from size line to size line
            eol = buf.find(b"\r\n", self._scan)
            if eol < 0:
                return False
            size = int(bytes(buf[self._scan : eol]).split(b";", 1)[0], 16)
            if size == 0:  # the last chunk, then trailer lines up to an empty one
                return buf.find(b"\r\n\r\n", eol) >= 0
            nxt = eol + 2 + size + 2
            if len(buf) < nxt:
                return False
            self._scan = nxt

    def _finish(self, status: int) -> None:
        elapsed = time.perf_counter() - self._sent
        if self.done is not None and not self.done.done():
            self.done.set_result((status, elapsed))


async def open_connections(
    host: str, port: int, count: int, *, at_once: int = 64
) -> list[LeanConnection]:
    """`count` connections, at most `at_once` being made at a time (so the server's
    accept queue never overflows into SYN retries)."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(at_once)

    async def one() -> LeanConnection:
        async with gate:
            _, conn = await loop.create_connection(LeanConnection, host, port)
            return conn

    return list(await asyncio.gather(*(one() for _ in range(count))))


@dataclass(frozen=True)
class Fired:
    """One request on every connection: statuses and latencies (ms), client CPU."""

    statuses: list[int]
    latencies_ms: list[float] = field(repr=False)
    cpu_us_per_request: float
    send_spread_ms: float  # from the first send to the last


async def fire(connections: list[LeanConnection], request: bytes, *, within: float) -> Fired:
    """Write `request` on every connection back to back, then await every answer."""
    cpu = time.process_time()
    first = time.perf_counter()
    pending = [conn.send(request) for conn in connections]
    spread = time.perf_counter() - first
    try:
        async with asyncio.timeout(within):
            await asyncio.wait(pending)
    except TimeoutError:
        pass
    results = [f.result() if f.done() else (0, within) for f in pending]
    cpu_us = (time.process_time() - cpu) * 1e6 / max(1, len(connections))
    return Fired(
        statuses=[s for s, _ in results],
        latencies_ms=[t * 1000 for _, t in results],
        cpu_us_per_request=cpu_us,
        send_spread_ms=spread * 1000,
    )
