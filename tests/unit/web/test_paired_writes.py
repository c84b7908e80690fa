"""A response's writes paired into one: on a real loopback connection, what arrives and
in which order; with a transport that records its calls, how many writes it took."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bff.web.paired_writes import PairedWrites

pytestmark = pytest.mark.anyio


class Recording(asyncio.Transport):
    """A transport that keeps what it was given, call by call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[bytes]] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.calls.append([bytes(data)])

    def writelines(self, list_of_data: Any) -> None:
        self.calls.append([bytes(d) for d in list_of_data])

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing


async def test_head_and_body_of_one_step_go_out_in_one_call() -> None:
    transport = Recording()
    writes = PairedWrites(transport, asyncio.get_running_loop())
    writes.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert transport.calls == []  # waits for the body
    writes.write(b"{}")
    assert transport.calls == [[b"HTTP/1.1 200 OK\r\n\r\n", b"{}"]]
    await asyncio.sleep(0)
    assert len(transport.calls) == 1  # nothing left for the end of the step


async def test_a_lone_write_goes_out_at_the_end_of_the_step() -> None:
    transport = Recording()
    writes = PairedWrites(transport, asyncio.get_running_loop())
    writes.write(b"head")  # a streamed answer: its body comes later
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert transport.calls == [[b"head"]]
    writes.write(b"chunk")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert transport.calls == [[b"head"], [b"chunk"]]


async def test_close_writes_first_and_a_closing_connection_gets_nothing() -> None:
    transport = Recording()
    writes = PairedWrites(transport, asyncio.get_running_loop())
    writes.write(b"last")
    writes.close()
    assert transport.calls == [[b"last"]] and writes.is_closing()
    writes.write(b"late")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert transport.calls == [[b"last"]]  # lost with the connection, no error


async def test_on_a_real_connection_every_byte_arrives_in_order() -> None:
    loop = asyncio.get_running_loop()
    received = asyncio.Queue[bytes]()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.put_nowait(await reader.read())
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    writes = PairedWrites(transport, loop)
    writes.write(b"1")
    writes.write(b"2")  # paired with 1
    writes.write(b"3")  # waits for the end of the step
    await asyncio.sleep(0.01)
    writes.write(b"4")
    writes.close()  # 4 first
    try:
        assert await asyncio.wait_for(received.get(), 5) == b"1234"
    finally:
        server.close()
        await server.wait_closed()
