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
This clock and uvicorn's keep-alive bound share one lazy timer per connection.

The count is exact: bytes are fed to the parser at most up to the remaining budget, so a
body that arrives with its headers in one read is never counted against them. A body is
fed in budget-sized slices too: once its request completes inside a read, the rest of that
read (a pipelined next request) goes through the counted path.

A response's head and body go out in one write (`bff.web.paired_writes`); the
connection's own writes (a refusal, a timeout) and closes come after what a response
left waiting.

And per connection, two bounds on a client that stalls after its headers:

- a request body may pause at most `body_read_timeout` seconds between two reads (while
  bff itself has paused reading, or not yet asked for an `Expect: 100-continue` body, the
  clock stands still): else the connection closes,
  also when the answer was already sent (a trickled body would hold it open forever);
- an answer's bytes must be taken by the client: a write buffer that stays full for
  `send_timeout` seconds (BFF_UPSTREAM_TIMEOUT) aborts the connection, and with it the
  exchange and its upstream connection (a client that never reads would hold both).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bff.config.model import Settings
from bff.web.paired_writes import PairedWrites

__all__ = ["HeaderLimits", "LimitedHttpToolsProtocol", "bounded_http_protocol"]


@dataclass(frozen=True, slots=True)
class HeaderLimits:
    max_header_bytes: int = 32768
    header_read_timeout: float = 10.0
    body_read_timeout: float = 30.0
    send_timeout: float = 30.0


def _refusal(status: bytes) -> bytes:
    return b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


# uvicorn's parse step; httptools takes any bytes-like object (memoryview slices: no copies)
_parse = cast(
    Callable[[HttpToolsProtocol, bytes | memoryview], None], HttpToolsProtocol.data_received
)
_TOO_LARGE = _refusal(b"431 Request Header Fields Too Large")
_TIMEOUT = _refusal(b"408 Request Timeout")
_NEVER = float("inf")
_NONE, _HEADERS, _IDLE = range(3)  # what the connection's deadline bounds


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's HttpToolsProtocol plus a header-size and a header-read-time bound
    (given to uvicorn by `bounded_http_protocol`)."""

    def __init__(self, *args: Any, limits: HeaderLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._in_headers = True  # reading a request line and headers (or awaiting one)
        self._header_bytes = 0
        self._messages = 0  # requests completed on this connection
        self._deadline = _NEVER  # loop time (`_set_deadline`)
        self._deadline_kind = _NONE
        self._clock: asyncio.TimerHandle | None = None
        # Never later than the deadline: any deadline is at least this far ahead.
        self._clock_period = max(
            0.05, min(limits.header_read_timeout, float(self.timeout_keep_alive))
        )
        self._body_timer: asyncio.TimerHandle | None = None
        self._last_read = 0.0  # loop time of the body phase's last read
        self._send_timer: asyncio.TimerHandle | None = None
        self._writes: PairedWrites | None = None  # the responses' (bff.web.paired_writes)

    def _flush_writes(self) -> None:
        """Before the connection writes or closes by itself: what a response left waiting."""
        if self._writes is not None:
            self._writes.flush()

    # -- the connection's clock: the header read and the keep-alive idle --------------
    def _set_deadline(self, seconds: float, kind: int) -> None:
        """The connection ends `seconds` from now unless it moves on. One lazy timer for
        both bounds: armed at most `_clock_period` ahead and re-armed when it fires
        before the deadline, so a request arms and cancels no timer of its own (two per
        request, uvicorn's keep-alive and this header clock, cost ~4 µs)."""
        now = self.loop.time()
        self._deadline = now + seconds
        self._deadline_kind = kind
        if self._clock is None:
            self._clock = self.loop.call_at(now + self._clock_period, self._on_clock)

    def _clear_deadline(self) -> None:
        self._deadline = _NEVER
        self._deadline_kind = _NONE

    def _on_clock(self) -> None:
        self._clock = None
        transport = self.transport
        if (
            self._deadline_kind == _NONE
            or transport is None
            or transport.is_closing()
            or transport.get_protocol() is not self  # upgraded to a WebSocket
        ):
            return
        now = self.loop.time()
        if now < self._deadline:
            when = min(self._deadline, now + self._clock_period)
            self._clock = self.loop.call_at(when, self._on_clock)
            return
        self._flush_writes()
        if self._deadline_kind == _HEADERS and self._header_bytes:
            transport.write(_TIMEOUT)
        transport.close()  # (a keep-alive connection idle too long: closed, as uvicorn does)

    # -- the body-read and send clocks ------------------------------------------------
    def _body_timeout(self) -> None:
        """Lazy idle timer: one timer per period, each read only stamps `_last_read`."""
        self._body_timer = None
        transport = self.transport
        if transport is None or transport.is_closing() or self._in_headers:
            return
        now = self.loop.time()
        cycle = self.cycle
        if (self.flow is not None and self.flow.read_paused) or (
            cycle is not None and cycle.waiting_for_100_continue
        ):
            self._last_read = now  # bff is not reading (yet): not the client's stall
        left = self._last_read + self._limits.body_read_timeout - now
        if left > 0:
            self._body_timer = self.loop.call_later(left, self._body_timeout)
            return
        self._flush_writes()
        transport.close()

    def _disarm_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _send_timeout(self) -> None:
        self._send_timer = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()  # close() would wait for a flush that never comes

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self._limits.send_timeout, self._send_timeout)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    # -- asyncio.Protocol ------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._writes = PairedWrites(transport, self.loop)
        # a connection that sends nothing is closed too
        self._set_deadline(self._limits.header_read_timeout, _HEADERS)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._clock is not None:
            self._clock.cancel()
            self._clock = None
        self._disarm_body_timer()
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        super().connection_lost(exc)

    def shutdown(self) -> None:
        self._flush_writes()
        super().shutdown()

    def on_response_complete(self) -> None:
        """uvicorn's, with the keep-alive bound on the connection's clock instead of a
        timer per response."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()  # (never armed here)
        self.flow.resume_reading()
        if self.pipeline:  # a pipelined request waits: it starts now
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._set_deadline(self.timeout_keep_alive, _IDLE)

    def data_received(self, data: bytes) -> None:
        self._flush_writes()  # a refusal (400, 431) the parser writes comes after it
        self._feed(data)
        if not self._in_headers:  # a body still to come: its idle clock runs (lazily)
            self._last_read = self.loop.time()
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(
                    self._limits.body_read_timeout, self._body_timeout
                )

    def _feed(self, data: bytes | memoryview) -> None:
        if not self._in_headers:
            size = self._limits.max_header_bytes
            if len(data) <= size:
                _parse(self, data)
                return
            # In slices: should the request complete inside this read, the rest (the next
            # request's line and headers) is counted. (Its first bytes inside the slice
            # where the body ended are not: at most 2x the bound, as above.)
            transport, view = self.transport, memoryview(data)  # slices without copies
            for start in range(0, len(data), size):
                _parse(self, view[start : start + size])
                if transport.is_closing() or transport.get_protocol() is not self:
                    return
                if self._in_headers:
                    if start + size < len(data):
                        self._feed(view[start + size :])
                    return
            return
        if self._header_bytes == 0 and self._deadline_kind != _HEADERS:
            # the first byte of a keep-alive connection's next request
            self._set_deadline(self._limits.header_read_timeout, _HEADERS)
        budget = self._limits.max_header_bytes - self._header_bytes
        if len(data) <= budget:
            self._header_bytes += len(data)
            _parse(self, data)
            return
        # Feed exactly the budget: if the headers end inside it, the rest is body (or the
        # next request) and goes on; if not, they are too large. (A pipelined request
        # that began inside the slice has its first bytes uncounted: at most 2x the bound.)
        self._header_bytes += budget
        messages = self._messages
        _parse(self, data[:budget])
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return
        if self._in_headers and self._messages == messages:
            self._clear_deadline()
            self._flush_writes()
            self.transport.write(_TOO_LARGE)
            self.transport.close()
            return
        self._feed(data[budget:])

    # -- parser callbacks ------------------------------------------------------------
    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._clear_deadline()
        cycle = self.cycle
        super().on_headers_complete()
        if self.cycle is not cycle and self._writes is not None:  # a request (no upgrade)
            self.cycle.transport = cast(asyncio.Transport, self._writes)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm_body_timer()
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
        body_read_timeout=settings.body_read_timeout,
        send_timeout=settings.upstream_timeout,
    )
    return functools.partial(LimitedHttpToolsProtocol, limits=limits)
