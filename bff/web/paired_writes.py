"""A response's status line and headers go out in one write with its body.

uvicorn's HTTP/1.1 cycle writes a response's head on `http.response.start` and its body
on `http.response.body`: two write system calls, two TCP segments (the socket has
TCP_NODELAY) and two wake-ups of the client, for the short answers most API calls get.
`PairedWrites` stands between the cycle and the connection's transport: a write waits
until the next one, which takes it along in the same system call (`writelines`), or
until the end of the event loop's current step, whichever comes first. A short answer
(head and body sent in one step, as the proxy does) costs one write; a streamed one
costs what it did, each chunk at most one step later.

The cycle uses only `write`, `close` and `is_closing` of its transport; anything else is
the transport's.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["PairedWrites"]


class PairedWrites:
    """One connection's responses' writes (see the module)."""

    __slots__ = ("_held", "_loop", "_scheduled", "_transport")

    def __init__(self, transport: asyncio.WriteTransport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._scheduled = False

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._held = data
            if not self._scheduled:
                self._scheduled = True
                self._loop.call_soon(self._end_of_step)
            return
        self._held = None
        self._transport.writelines((held, data))

    def _end_of_step(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        """Write what waits (nothing once the connection is closing: it is lost)."""
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
