"""One exchange on the lean client's connection: what the parser found (status, headers,
body chunks, its end or failure), the caller's side of it (`readany`, `at_eof`) and the
rule that decides whether its connection may carry another request (`release`).

Errors are `bff.errors`' UpstreamUnavailable (502) and UpstreamTimeout (504);
`StaleConnection` (an UpstreamUnavailable) is this module's own.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from bff.errors import UpstreamTimeout, UpstreamUnavailable
from bff.upstream.framing import framed_by_close

__all__ = ["Carrier", "StaleConnection", "UpstreamResponse", "expire_waiter"]


class Carrier(Protocol):
    """What an exchange needs of the connection it runs on (`bff.upstream.connection`)."""

    reading_paused: bool
    broken: bool
    closed: bool

    def resume(self) -> None: ...

    def reuse(self) -> None: ...

    def close(self) -> None: ...


class StaleConnection(UpstreamUnavailable):
    """A reused connection was closed before any byte of the answer arrived."""


def expire_waiter(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class UpstreamResponse:
    """One exchange: status and raw headers once `LeanOrigin.request` returns, then the
    body through `readany` until `at_eof`. The caller must `release()` it."""

    __slots__ = (
        "_conn",
        "_loop",
        "_origin",
        "_timeout",
        "_waiter",
        "buffer",
        "buffered",
        "complete",
        "early",
        "failure",
        "has_body",
        "head_request",
        "headers_done",
        "interim",
        "keep_alive",
        "raw_headers",
        "received",
        "sent",
        "status",
        "writer",
    )

    def __init__(
        self,
        conn: Carrier,
        origin: str,
        *,
        loop: asyncio.AbstractEventLoop,
        timeout: float,
        head_request: bool,
        has_body: bool = False,
    ) -> None:
        self._conn: Carrier | None = conn
        self._loop = loop
        self._origin = origin
        self._timeout = timeout
        self._waiter: asyncio.Future[bool] | None = None
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.buffer: list[bytes] = []
        self.buffered = 0
        self.head_request = head_request
        self.has_body = has_body  # the request carried a body
        self.headers_done = False
        self.interim = False
        self.complete = False
        self.keep_alive = False
        self.received = False  # any byte of the answer
        self.sent = False  # the whole request
        self.early = False  # the answer began before the whole request was sent
        self.failure: UpstreamUnavailable | UpstreamTimeout | None = None
        self.writer: asyncio.Task[None] | None = None

    # from the connection

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def finish(self) -> None:
        self.complete = True
        self.wake()

    def fail(self, exc: UpstreamUnavailable | UpstreamTimeout) -> None:
        if self.complete or self.failure is not None:
            return
        self.failure = exc
        self.wake()
        if self._conn is not None:
            self._conn.close()

    def on_eof(self, *, clean: bool) -> None:
        if self.complete or self.failure is not None:
            return
        if not self.received:
            self.failure = StaleConnection(f"upstream {self._origin} closed the connection")
        elif self.headers_done and clean and framed_by_close(self.raw_headers):
            self.keep_alive = False  # framed by the end of the connection
            self.complete = True
        else:
            what = "body" if self.headers_done else "headers"
            self.failure = UpstreamUnavailable(f"upstream {self._origin} closed mid-{what}")
        self.wake()

    async def wait(self, seconds: float | None) -> None:
        """Until the connection has news for this exchange; UpstreamTimeout after
        `seconds` without any."""
        waiter: asyncio.Future[bool] = self._loop.create_future()
        self._waiter = waiter
        timer = (
            self._loop.call_later(seconds, expire_waiter, waiter) if seconds is not None else None
        )
        try:
            woken = await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        if not woken:
            what = "body" if self.headers_done else "headers"
            raise UpstreamTimeout(f"upstream {self._origin} timed out ({what})")

    # for the caller

    async def readany(self) -> bytes:
        """Whatever body bytes have arrived (waiting up to the timeout for some);
        b"" at the end. Raises UpstreamUnavailable / UpstreamTimeout."""
        while True:
            buffer = self.buffer
            if buffer:
                data = buffer[0] if len(buffer) == 1 else b"".join(buffer)
                self.buffer = []
                self.buffered = 0
                conn = self._conn
                if conn is not None and conn.reading_paused:
                    conn.resume()
                return data
            if self.failure is not None:
                raise self.failure
            if self.complete:
                return b""
            if self._conn is None:
                raise UpstreamUnavailable("upstream response already released")
            await self.wait(self._timeout)

    def at_eof(self) -> bool:
        return self.complete and not self.buffer

    def release(self) -> None:
        """Done with the exchange: the connection goes back to the pool if it ended
        cleanly, else it is closed. Idempotent.

        Clean: the whole request sent before the answer began, the whole answer read,
        nothing unasked on the wire, not a HEAD (whose answer's promised body a sloppy
        upstream may still send), and - when the request had a body - a 2xx or 3xx
        answer. An upstream that refuses a request (401, 413...) may not have read its
        body; the next request on that socket would be glued to the unread rest of it,
        another user's bearer included (the request-smuggling family: CVE-2023-25690 in
        Apache mod_proxy; nginx's `request_body_sent` rule)."""
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        writer = self.writer
        writer_ok = writer is None or (
            writer.done() and not writer.cancelled() and writer.exception() is None
        )
        if writer is not None and not writer.done():
            writer.cancel()
        if (
            self.complete
            and self.keep_alive
            and self.failure is None
            and self.sent
            and not self.early
            and (not self.has_body or 200 <= self.status < 400)
            and writer_ok
            and not conn.broken
            and not conn.closed
            and not self.head_request
        ):
            conn.reuse()
        else:
            conn.close()

    def close(self) -> None:
        """Abandon the exchange: the connection is closed, never reused. Idempotent."""
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        if self.writer is not None and not self.writer.done():
            self.writer.cancel()
        conn.close()
