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
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

__all__ = ["ACCESS_FIELDS", "REQUEST_ID", "JsonFormatter", "new_request_id"]

# The request being served by this task (and by the tasks it starts, such as a refresh).
REQUEST_ID: ContextVar[str | None] = ContextVar("bff_request_id", default=None)
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
    """A fresh X-Request-ID, for a request that brought no well-formed one."""
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ASCII only, so no control character reaches a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            out["request_id"] = request_id
        for name in ACCESS_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=True, separators=(",", ":"), default=str)
