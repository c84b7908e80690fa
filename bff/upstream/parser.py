"""The reading half of a lean-client connection: the httptools (llhttp, strict mode)
callbacks that turn an upstream's bytes into the current exchange's status, headers and
body, with the limits and the rules that decide when an answer, or the connection it
came on, can no longer be trusted (`broken`: never reused). `bff.upstream.connection`
builds the socket side on it.
"""

from __future__ import annotations

import asyncio

from httptools import HttpParserError, HttpResponseParser

from bff.errors import UpstreamUnavailable
from bff.upstream.exchange import UpstreamResponse
from bff.upstream.framing import promises_body

__all__ = ["HEAD_LIMIT", "READ_LIMIT", "ResponseReader"]

READ_LIMIT = 1 << 18  # queued body bytes before the upstream socket is paused
# Response head (and chunk trailer) bytes: llhttp does not bound them, httptools buffers a
# header until it ends (nginx refuses upstream heads over 4-8 KiB by default).
HEAD_LIMIT = 1 << 16
_MAX_HEADERS = 128  # aiohttp's limit


class ResponseReader:
    """httptools' callbacks, on the connection itself (one object: no hop per callback)."""

    __slots__ = (
        "_fields",
        "_headers",
        "_parser",
        "_progress",
        "_quiet",
        "broken",
        "exchange",
        "reading_paused",
        "transport",
    )

    def __init__(self) -> None:
        self._parser = HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._fields = 0  # header and trailer bytes of this exchange
        self._quiet = 0  # bytes received since the last body byte
        self._progress = False
        self.transport: asyncio.Transport | None = None
        self.exchange: UpstreamResponse | None = None
        self.broken = False  # its framing can no longer be trusted: never reused
        self.reading_paused = False

    def on_message_begin(self) -> None:
        exchange = self.exchange
        if exchange is None or exchange.complete:
            # A second answer in the same read as a complete one (response splitting,
            # an upstream bug): it would be taken for the next request's answer.
            self.broken = True
            raise HttpParserError("upstream sent an answer nobody asked for")
        self._headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self._headers
        self._fields += len(name) + len(value)
        if len(headers) >= _MAX_HEADERS or self._fields > HEAD_LIMIT:
            raise HttpParserError("upstream response head too large")
        headers.append((name, value))

    def on_headers_complete(self) -> None:
        exchange = self.exchange
        assert exchange is not None
        if exchange.complete:  # never let a later head overwrite a finished answer
            self.broken = True
            return
        status = self._parser.get_status_code()
        if not 100 <= status <= 599:  # llhttp takes any 3 digits; no ASGI server sends them
            exchange.fail(UpstreamUnavailable(f"upstream answered status {status}"))
            return
        if promises_body(status, self._headers):
            # llhttp reads no body for it; should the upstream send one anyway, late, it
            # would be taken for the next request's answer
            self.broken = True
        if status < 200:
            if status == 101:
                exchange.fail(UpstreamUnavailable("upstream switched protocols"))
            else:
                exchange.interim = True  # 100 Continue, 103 Early Hints: not the answer
            return
        exchange.status = status
        # Answered before the whole request body went out (401, 413...): whatever the
        # upstream makes of the rest of the body, this connection can never be trusted
        # with another request (nginx checks request_body_sent the same way).
        exchange.early = not exchange.sent
        exchange.raw_headers = self._headers
        self._headers = []  # chunk trailers, if any, land here and are dropped
        exchange.headers_done = True
        if exchange.head_request:
            # llhttp cannot know the request was HEAD: this answer has no body, whatever
            # its Content-Length says. A sloppy upstream may send that body anyway, late,
            # once the next request is in: a HEAD exchange never returns its connection
            # to the pool (see `UpstreamResponse.release`).
            exchange.finish()
        else:
            exchange.wake()

    def on_body(self, body: bytes) -> None:
        exchange = self.exchange
        assert exchange is not None
        if exchange.complete:  # a body after a HEAD answer
            self.broken = True
            return
        self._progress = True
        exchange.buffer.append(body)
        exchange.buffered += len(body)
        if exchange.buffered > READ_LIMIT and not self.reading_paused and self.transport:
            self.reading_paused = True  # backpressure: the browser is slower than the upstream
            self.transport.pause_reading()
        exchange.wake()

    def on_message_complete(self) -> None:
        exchange = self.exchange
        assert exchange is not None
        if exchange.interim:
            exchange.interim = False
            return
        if exchange.complete or exchange.failure is not None:
            return  # after HEAD or 101: nothing more to say
        exchange.keep_alive = self._parser.should_keep_alive()
        exchange.finish()
