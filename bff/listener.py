"""The inbound HTTP/1.1 listener: uvicorn's httptools protocol with two bounds it lacks.

uvicorn bounds the header block only on its h11 protocol (`h11_max_incomplete_event_size`);
on httptools (bff's, for speed) llhttp and httptools accumulate a header of any size in
memory, and a client may take as long as it likes to send it (issue 11 defect 4: a 48 MiB
header was accepted and a 20 s trickle went through). Here, per request:

- the request line and headers may take at most `max_header_bytes`: past that the answer
  is `431 Request Header Fields Too Large` and the connection closes, before the parser
  has seen (and buffered) more than the bound;
- they must arrive within `header_read_timeout` seconds of the request's first byte (or
  of the connection's opening): else `408 Request Timeout` and the connection closes
  (a slowloris cannot hold a connection open by trickling).

The count is exact: bytes are fed to the parser at most up to the remaining budget, so a
body that arrives with its headers in one read is never counted against them.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bff.config import Settings

__all__ = ["HeaderLimits", "LimitedHttpToolsProtocol", "bounded_http_protocol"]


@dataclass(frozen=True, slots=True)
class HeaderLimits:
    max_header_bytes: int = 32768
    header_read_timeout: float = 10.0


def _refusal(status: bytes) -> bytes:
    return b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


_TOO_LARGE = _refusal(b"431 Request Header Fields Too Large")
_TIMEOUT = _refusal(b"408 Request Timeout")


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's HttpToolsProtocol plus a header-size and a header-read-time bound
    (given to uvicorn by `bounded_http_protocol`)."""

    def __init__(self, *args: Any, limits: HeaderLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._in_headers = True  # reading a request line and headers (or awaiting one)
        self._header_bytes = 0
        self._messages = 0  # requests completed on this connection
        self._header_timer: asyncio.TimerHandle | None = None

    # -- the header-read clock -------------------------------------------------------
    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(
            self._limits.header_read_timeout, self._header_timeout
        )

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport is None or self.transport.is_closing() or not self._in_headers:
            return
        if self._header_bytes:
            self.transport.write(_TIMEOUT)
        self.transport.close()

    # -- asyncio.Protocol ------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()  # a connection that sends nothing is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._in_headers:
            super().data_received(data)
            return
        if self._header_bytes == 0 and self._header_timer is None:
            self._arm_header_timer()  # the first byte of a keep-alive connection's next request
        budget = self._limits.max_header_bytes - self._header_bytes
        if len(data) <= budget:
            self._header_bytes += len(data)
            super().data_received(data)
            return
        # Feed exactly the budget: if the headers end inside it, the rest is body (or the
        # next request) and goes on; if not, they are too large. (A pipelined request
        # that began inside the slice has its first bytes uncounted: at most 2x the bound.)
        self._header_bytes += budget
        messages = self._messages
        super().data_received(data[:budget])
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return
        if self._in_headers and self._messages == messages:
            self._disarm_header_timer()
            self.transport.write(_TOO_LARGE)
            self.transport.close()
            return
        self.data_received(data[budget:])

    # -- parser callbacks ------------------------------------------------------------
    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm_header_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._messages += 1
        # The next request's count and clock start at its first byte (until then, after
        # the answer, uvicorn's keep-alive timeout bounds the idle connection).
        self._in_headers = True
        self._header_bytes = 0


def bounded_http_protocol(settings: Settings) -> Any:
    """uvicorn's `http=` for a listener with the configured bounds: a partial of a
    module-level class, so it pickles into spawned workers (uvicorn calls it with
    `config=..., server_state=..., app_state=..., _loop=...`)."""
    limits = HeaderLimits(
        max_header_bytes=settings.max_header_bytes,
        header_read_timeout=settings.header_read_timeout,
    )
    return functools.partial(LimitedHttpToolsProtocol, limits=limits)
