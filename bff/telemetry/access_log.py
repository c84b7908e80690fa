"""The access log (`bff.access`), one line per request, at a small fraction of what the
logging module costs per line.

The lines are those of `logging` with bff's formats (`bff.telemetry.logs`): text
`<asctime> INFO bff.access: GET /api/x 200 1.2ms rid=<id>` or one JSON object. When
the logger's one destination is an `AccessLogHandler` (as `bff serve` configures it,
`bff.cli.logging_setup`) with one of those formats, `log_access` formats the line
itself (no LogRecord, no caller lookup, no lock per line: 1-2 µs, against 12-17 µs
through `logging` in isolation and some 50 µs per request of a loaded worker's CPU) and
the handler buffers it. Anything else (a handler added by a test, caplog, a filter)
gets an ordinary `logger.info` record with the same fields.

Buffered lines reach the handler's stream (standard error) in one write:
- at most FLUSH_DELAY seconds after the first of them, or once MAX_PENDING wait;
- before any line of bff's other handlers (`StderrHandler`), so lines keep their order;
- when the app's lifespan ends and at exit (`logging.shutdown` flushes every handler):
  a graceful shutdown loses none. A killed process (SIGKILL) loses at most FLUSH_DELAY
  seconds of them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections import deque
from json.encoder import encode_basestring_ascii as _quote  # json.dumps's, for one string
from typing import Any

from bff.telemetry.logs import TEXT_FORMAT, JsonFormatter

__all__ = [
    "FLUSH_DELAY",
    "MAX_PENDING",
    "AccessLogHandler",
    "StderrHandler",
    "flush_access_logs",
    "log_access",
]

FLUSH_DELAY = 0.1  # seconds a buffered line may wait
MAX_PENDING = 1024  # lines: written at once when this many wait
_LOGGER = logging.getLogger("bff.access")
_INFO = logging.INFO
_MESSAGE = "%s %s %s %.1fms rid=%s"
_HANDLERS: weakref.WeakSet[AccessLogHandler] = weakref.WeakSet()


class AccessLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler whose lines wait in a buffer (see the module)."""

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._pending: deque[str] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self._write_lock = threading.Lock()
        self._shape: tuple[logging.Formatter | None, str | None] = (None, None)
        self._second = -1
        self._stamp = ""
        _HANDLERS.add(self)

    # -- what `log_access` writes ---------------------------------------------------
    def shape(self) -> str | None:
        """`text` or `json` when this handler's formatter is one of bff's (the fast path
        writes exactly what it would), else None."""
        formatter = self.formatter
        if formatter is not self._shape[0]:
            kind = None
            if type(formatter) is JsonFormatter:
                kind = "json"
            elif (
                type(formatter) is logging.Formatter
                and formatter._fmt == TEXT_FORMAT
                and formatter.datefmt is None
            ):
                kind = "text"
            self._shape = (formatter, kind)
        return self._shape[1]

    def stamp(self, now_ns: int, shape: str) -> str:
        """The line's time as `shape` writes it: local `2026-01-31 12:00:00,123` (the
        logging module's asctime) or UTC `2026-01-31T12:00:00.123+00:00` (JSON)."""
        second, rest = divmod(now_ns, 1_000_000_000)
        if second != self._second:
            if shape == "json":
                self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            else:
                self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self._second = second
        millis = rest // 1_000_000
        if shape == "json":
            return f"{self._stamp}.{millis:03d}+00:00"
        return f"{self._stamp},{millis:03d}"

    # -- buffering --------------------------------------------------------------------
    def add(self, line: str) -> None:
        """Buffer one line (with its terminator)."""
        pending = self._pending
        pending.append(line)
        if len(pending) >= MAX_PENDING:
            self.flush()
            return
        timer = self._timer
        if timer is not None and not timer.cancelled():
            loop = self._timer_loop
            if loop is not None and not loop.is_closed():
                return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop in this thread: written at once
            self.flush()
            return
        self._timer_loop = loop
        self._timer = loop.call_later(FLUSH_DELAY, self._flush_on_timer)

    def _flush_on_timer(self) -> None:
        self._timer = None
        self.flush()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.add(self.format(record) + self.terminator)
        except Exception:  # as StreamHandler: a line that cannot be written is reported
            self.handleError(record)

    def flush(self) -> None:
        """Write every buffered line now, in one write."""
        pending = self._pending
        if not pending:
            return
        with self._write_lock:
            lines = [pending.popleft() for _ in range(len(pending))]
            if not lines:
                return
            try:
                self.stream.write("".join(lines))
                self.stream.flush()
            except (OSError, ValueError):  # standard error closed: nothing to write to
                pass

    def close(self) -> None:
        self.flush()
        super().close()


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """bff's other log lines (application, audit): written at once, after the access
    lines buffered before them."""

    def emit(self, record: logging.LogRecord) -> None:
        flush_access_logs()
        super().emit(record)


def flush_access_logs() -> None:
    """Write every access log handler's buffered lines (the app's lifespan end calls it)."""
    for handler in list(_HANDLERS):
        handler.flush()


def log_access(
    *,
    method: str,
    path: str,
    status: int,
    elapsed: float,
    request_id: str,
    route: str,
    upstream: float | None,
    session: str | None,
) -> None:
    """One access line. `path` is already escaped (ASCII, no query string); `status` 0:
    no response started (written `-`)."""
    duration_ms = round(elapsed * 1000, 3)
    upstream_ms = None if upstream is None else round(upstream * 1000, 3)
    handler = _fast_handler()
    shape = handler.shape() if handler is not None else None
    if handler is None or shape is None:
        _LOGGER.info(
            _MESSAGE,
            method,
            path,
            status or "-",
            elapsed * 1000,
            request_id,
            extra={
                "request_id": request_id,
                "route": route,
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": duration_ms,
                "upstream_ms": upstream_ms,
                "session": session,
            },
        )
        return
    message = _MESSAGE % (method, path, status or "-", elapsed * 1000, request_id)
    stamp = handler.stamp(time.time_ns(), shape)
    if shape == "text":
        handler.add(f"{stamp} INFO bff.access: {message}{handler.terminator}")
        return
    # JSON as JsonFormatter writes it (json_line), field by field: json.dumps costs more
    # than the rest of the line together.
    parts = [
        f'{{"time":"{stamp}","level":"INFO","logger":"bff.access","message":',
        _quote(message),
        ',"request_id":',
        _quote(request_id),
        ',"route":',
        _quote(route),
        ',"method":',
        _quote(method),
        ',"path":',
        _quote(path),
        f',"status":{status:d},"duration_ms":{duration_ms!r}',
    ]
    if upstream_ms is not None:
        parts.append(f',"upstream_ms":{upstream_ms!r}')
    if session is not None:
        parts += (',"session":', _quote(session))
    parts.append("}" + handler.terminator)
    handler.add("".join(parts))


def _fast_handler() -> AccessLogHandler | None:
    """The logger's one AccessLogHandler, when nothing else would see the record."""
    logger = _LOGGER
    handlers = logger.handlers
    if len(handlers) != 1 or logger.propagate or logger.filters:
        return None
    handler = handlers[0]
    if type(handler) is not AccessLogHandler or handler.filters or handler.level > _INFO:
        return None
    return handler if logger.isEnabledFor(_INFO) else None
