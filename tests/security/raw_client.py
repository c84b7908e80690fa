"""A raw-socket HTTP/1.1 client for the security tests: requests go out exactly as
written (two Host headers, TRACE, pipelined requests in one write), and answers are read
one at a time with RFC 9112 §6.3's framing, so a test sees whether a keep-alive
connection survived and what each answer said."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["Answer", "RawClient", "request_bytes"]


def request_bytes(
    method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    """One request's bytes: `Host: localhost` unless `headers` names one, then `headers`;
    a body gets its Content-Length."""
    lines = [f"{method} {target} HTTP/1.1"]
    given = headers or {}
    if not any(k.lower() == "host" for k in given):
        lines.append("Host: localhost")
    lines += [f"{k}: {v}" for k, v in given.items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class Answer:
    status: int
    head: bytes
    body: bytes

    def header(self, name: str) -> str | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode():
                return value.strip().decode("latin-1")
        return None

    def json(self) -> Any:
        return json.loads(self.body)


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self, *, head_request: bool = False, timeout: float = 10) -> Answer:
        """The next answer on this connection; asyncio.IncompleteReadError if the server
        closed it first, TimeoutError if nothing complete came within `timeout`."""
        async with asyncio.timeout(timeout):
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            answer = Answer(status, head, b"")
            length = answer.header("content-length")
            chunked = (answer.header("transfer-encoding") or "").lower() == "chunked"
            if head_request or status < 200 or status in (204, 304):
                return answer
            if length is not None:
                answer.body = await self.reader.readexactly(int(length))
            elif chunked:
                answer.body = await self._chunks()
            else:
                answer.body = await self.reader.read()
            return answer

    async def _chunks(self) -> bytes:
        body = b""
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await self.reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailer fields
                return body
            body += (await self.reader.readexactly(size + 2))[:-2]

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
