"""The proxy's own answers, prepared once from the answer table (`bff.answers`: the only
place a status is chosen), and how the raw ASGI hot path sends one. Pure: `send` is the
caller's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from types import MappingProxyType
from typing import Any

from bff.answers import Answer, Kind, json_answer

__all__ = [
    "BAD_PATH",
    "BY_KIND",
    "CSRF",
    "NOT_ALLOWED",
    "NOT_AUTHENTICATED",
    "PATH_PARAMS",
    "SESSION_BUSY",
    "STALLED",
    "STORE_DOWN",
    "TWO_HOSTS",
    "Send",
    "send_answer",
]

# ASGI's `send` (structurally the same as starlette.types.Send).
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

BAD_PATH = json_answer(Kind.INVALID_PATH)
PATH_PARAMS = json_answer(Kind.INVALID_PATH, "path parameters (;) are not allowed on this route")
TWO_HOSTS = json_answer(Kind.INVALID_REQUEST, "more than one Host header")
NOT_ALLOWED = json_answer(Kind.METHOD_NOT_ALLOWED)
CSRF = json_answer(Kind.CSRF)
NOT_AUTHENTICATED = json_answer(Kind.NOT_AUTHENTICATED)
STORE_DOWN = json_answer(Kind.SESSION_STORE_UNAVAILABLE)
SESSION_BUSY = json_answer(
    Kind.UPSTREAM_BUSY, "too many requests of this session are in flight upstream"
)
STALLED = json_answer(Kind.REQUEST_TIMEOUT)
# Each kind's default answer (upstream failures and token results), prepared once.
BY_KIND = MappingProxyType({kind: json_answer(kind) for kind in Kind})


async def send_answer(send: Send, answer: Answer, extra: tuple[bytes, bytes] | None = None) -> None:
    status, headers, body = answer
    out = [*headers, extra] if extra is not None else list(headers)
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body, "more_body": False})
