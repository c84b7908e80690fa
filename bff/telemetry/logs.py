"""Log formats: `text` (the default) or `json`, one object per line, for the application
and access logs (the audit log is JSON in both); and the request id every line of a
request carries (the context variable, and a fresh id when the browser sent none).

JSON fields: `time` (ISO 8601 UTC), `level`, `logger`, `message`, and when known
`request_id` (also on application lines written while a request is served), `route`,
`method`, `path` (never a query string), `status`, `duration_ms`, `upstream_ms`,
`session` (a short hash of the session's store key, never the id), `exception`.
Nothing here ever receives a token, a code, a cookie value or a secret: callers pass
only these fields.
"""

from __future__ import annotations

import json
import logging
import os
from contextvars import ContextVar
from datetime import UTC, datetime

__all__ = [
    "ACCESS_FIELDS",
    "REQUEST_ID",
    "TEXT_FORMAT",
    "JsonFormatter",
    "json_line",
    "new_request_id",
]

# The request being served by this task (and by the tasks it starts, such as a refresh).
REQUEST_ID: ContextVar[str | None] = ContextVar("bff_request_id", default=None)
# The text format of application and access lines (the logging module's asctime).
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ACCESS_FIELDS = (
    "route",
    "method",
    "path",
    "status",
    "duration_ms",
    "upstream_ms",
    "session",
)


def new_request_id() -> str:
    """A fresh X-Request-ID, for a request that brought no well-formed one: 32 hex
    digits from the OS random source (as uuid4().hex was, at a quarter of its cost)."""
    return os.urandom(16).hex()


def json_line(
    when: str,
    level: str,
    logger: str,
    message: str,
    request_id: str | None,
    fields: dict[str, object],
    exception: str | None = None,
) -> str:
    """One JSON line: ASCII only, so no control character reaches a terminal; the
    `fields` that are None are left out."""
    out: dict[str, object] = {"time": when, "level": level, "logger": logger, "message": message}
    if request_id:
        out["request_id"] = request_id
    for name, value in fields.items():
        if value is not None:
            out[name] = value
    if exception:
        out["exception"] = exception
    return json.dumps(out, ensure_ascii=True, separators=(",", ":"), default=str)


class JsonFormatter(logging.Formatter):
    """One JSON object per line (`json_line`)."""

    def format(self, record: logging.LogRecord) -> str:
        return json_line(
            datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            record.levelname,
            record.name,
            record.getMessage(),
            getattr(record, "request_id", None) or REQUEST_ID.get(),
            {name: getattr(record, name, None) for name in ACCESS_FIELDS},
            self.formatException(record.exc_info) if record.exc_info else None,
        )
