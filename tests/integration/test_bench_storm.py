"""bench/storm_client.py, the refresh storm's lean client, against a loopback server whose
answers come in every framing it must read (Content-Length, chunked with trailers, read
until close, split across packets), and bench/storm.py's per-worker count."""

from __future__ import annotations

import asyncio
import os

import pytest

from bench.storm import connections_per_worker
from bench.storm_client import LeanConnection, fire, open_connections, request_bytes

pytestmark = pytest.mark.anyio

ANSWERS = {
    b"/length": [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"],
    b"/split": [b"HTTP/1.1 201 Created\r\nconTent-length: 6\r", b"\n\r\nhel", b"lo!"],
    b"/chunked": [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhe",
        b"llo\r\n3;x=y\r\n!!!\r\n0\r\n",
        b"X-Trailer: 1\r\n\r\n",
    ],
    b"/empty": [b"HTTP/1.1 204 No Content\r\n\r\n"],
    b"/close": [b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"],
    b"/drop": [b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort"],
}


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1]
            for part in ANSWERS[path]:
                writer.write(part)
                await writer.drain()
                await asyncio.sleep(0.005)
            if path in (b"/close", b"/drop"):
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _close(connections: list[LeanConnection]) -> None:
    for conn in connections:
        assert conn.transport is not None
        conn.transport.close()


@pytest.fixture
async def port() -> object:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


@pytest.mark.parametrize(
    ("path", "status"),
    [("/length", 200), ("/split", 201), ("/chunked", 200), ("/empty", 204), ("/close", 200)],
)
async def test_every_framing_ends_where_the_answer_ends(port: int, path: str, status: int) -> None:
    connections = await open_connections("127.0.0.1", port, 3, at_once=2)
    try:
        request = request_bytes(f"127.0.0.1:{port}", path, {"x-csrf": "1"})
        first = await fire(connections, request, within=5)
        assert first.statuses == [status] * 3
        assert all(0 < t < 5000 for t in first.latencies_ms)
        if path != "/close":  # keep-alive: the same connections answer again
            again = await fire(connections, request, within=5)
            assert again.statuses == [status] * 3
    finally:
        _close(connections)


async def test_a_cut_answer_is_a_failure_and_a_silent_server_times_out(port: int) -> None:
    connections = await open_connections("127.0.0.1", port, 2)
    try:
        cut = await fire(connections, request_bytes("h", "/drop", {}), within=5)
        assert cut.statuses == [0, 0]
        fresh = await open_connections("127.0.0.1", port, 1)
        connections += fresh
        # An incomplete request head: the server waits for more, the client gives up.
        silent = await fire(fresh, b"GET /length HTTP/1.1\r\n", within=0.2)
        assert silent.statuses == [0]
        assert silent.latencies_ms == [200.0]
    finally:
        _close(connections)


async def test_connections_are_counted_by_the_process_that_holds_them(port: int) -> None:
    connections = await open_connections("127.0.0.1", port, 4)
    try:
        # This process holds both ends; only the server's end has the server's port.
        assert connections_per_worker(os.getpid(), port) == [4]
        assert connections_per_worker(os.getpid(), 1) == []
    finally:
        _close(connections)
