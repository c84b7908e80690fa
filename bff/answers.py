"""The one answer table: every kind of refusal or failure bff answers with, and its
HTTP status, JSON `error` code and `Retry-After` (SPEC.md: all JSON errors are
`{"error": CODE, "error_description": TEXT}`, with `Cache-Control: no-store`).

Nothing else chooses a status for an error: an exception names its kind (`BffError.kind`,
see `bff.errors`), a token result names its kind (`bff.tokens.results`), and the raw ASGI
proxy (`bff.proxy.replies`), the Starlette endpoints and their error handler
(`bff.web.error_pages`) render from this table.

A few kinds carry a finer code per instance (`BadRequest(code="invalid_state")`) or a
computed `Retry-After` (429 `too_many_logins`); the status always comes from here.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["Answer", "Kind", "Spec", "TABLE", "json_answer", "spec"]


class Kind(enum.Enum):
    INVALID_REQUEST = "invalid_request"
    INVALID_PATH = "invalid_path"
    CSRF = "csrf"
    NOT_FOUND = "not_found"
    NOT_AUTHENTICATED = "not_authenticated"
    UNKNOWN_HOST = "unknown_host"
    SESSION_EXPIRED = "session_expired"
    STEP_UP_REQUIRED = "step_up_required"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    REQUEST_TIMEOUT = "request_timeout"
    TOO_MANY_REQUESTS = "too_many_requests"
    SERVER_ERROR = "server_error"
    IDP_UNAVAILABLE = "idp_unavailable"
    IDP_INVALID_TOKEN = "idp_invalid_token"
    TOKEN_EXCHANGE_UNAVAILABLE = "token_exchange_unavailable"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    SESSION_STORE_UNAVAILABLE = "session_store_unavailable"
    REFRESH_IN_PROGRESS = "refresh_in_progress"
    REFRESH_TIMEOUT = "refresh_timeout"
    UPSTREAM_BUSY = "upstream_busy"
    NOT_READY = "not_ready"
    UPSTREAM_TIMEOUT = "upstream_timeout"


@dataclass(frozen=True, slots=True)
class Spec:
    status: int
    code: str  # the JSON `error`
    description: str  # the default `error_description`
    retry_after: int | None = None  # seconds; None: no Retry-After (or the error's own)


_RETRY = 5  # seconds: the store, the provider, an upstream may be back by then

TABLE: Mapping[Kind, Spec] = MappingProxyType(
    {
        Kind.INVALID_REQUEST: Spec(400, "invalid_request", "the request is not valid"),
        Kind.INVALID_PATH: Spec(400, "invalid_path", "the request path is not allowed"),
        Kind.NOT_AUTHENTICATED: Spec(401, "not_authenticated", "no live session"),
        Kind.SESSION_EXPIRED: Spec(401, "session_expired", "the session has ended; log in again"),
        Kind.STEP_UP_REQUIRED: Spec(
            401, "step_up_required", "the upstream asks for a stronger login; see login_url"
        ),
        Kind.CSRF: Spec(403, "csrf", "X-CSRF: 1 header required"),
        # Several frontends: a host (and path base) that none of them is served at.
        Kind.UNKNOWN_HOST: Spec(404, "unknown_host", "no frontend is served at this address"),
        Kind.NOT_FOUND: Spec(404, "not_found", "no such session"),
        Kind.METHOD_NOT_ALLOWED: Spec(
            405, "method_not_allowed", "method not allowed on this route"
        ),
        Kind.REQUEST_TIMEOUT: Spec(408, "request_timeout", "the request body stalled"),
        Kind.TOO_MANY_REQUESTS: Spec(429, "too_many_requests", "too many requests; try again"),
        Kind.SERVER_ERROR: Spec(500, "server_error", "internal error"),
        Kind.IDP_UNAVAILABLE: Spec(
            502, "idp_unavailable", "the identity provider is unavailable", _RETRY
        ),
        Kind.IDP_INVALID_TOKEN: Spec(
            502, "idp_unavailable", "the identity provider sent an invalid token"
        ),
        Kind.TOKEN_EXCHANGE_UNAVAILABLE: Spec(
            502,
            "token_exchange_unavailable",
            "the identity provider does not offer token exchange for this route",
        ),
        Kind.UPSTREAM_UNAVAILABLE: Spec(
            502, "upstream_unavailable", "the upstream is unavailable", _RETRY
        ),
        Kind.SESSION_STORE_UNAVAILABLE: Spec(
            503, "session_store_unavailable", "the session store is unavailable", _RETRY
        ),
        Kind.REFRESH_IN_PROGRESS: Spec(
            503, "refresh_in_progress", "a token refresh is still in progress", 1
        ),
        Kind.REFRESH_TIMEOUT: Spec(
            503, "refresh_timeout", "the token refresh took too long", _RETRY
        ),
        Kind.UPSTREAM_BUSY: Spec(
            503, "upstream_busy", "every connection to the upstream is busy; try again", 1
        ),
        Kind.NOT_READY: Spec(503, "not_ready", "not ready", _RETRY),
        Kind.UPSTREAM_TIMEOUT: Spec(
            504, "upstream_timeout", "the upstream did not answer in time", _RETRY
        ),
    }
)


def spec(kind: Kind) -> Spec:
    return TABLE[kind]


# A raw ASGI answer: status, headers, body (the proxy's hot path sends these as is).
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


def json_answer(
    kind: Kind,
    description: str | None = None,
    *,
    code: str | None = None,
    retry_after: int | None = None,
    extra: Mapping[str, str] | None = None,
) -> Answer:
    """`kind`'s JSON answer; `description`, `code` and `retry_after` override the table's
    default text, finer code and Retry-After (the status never changes); `extra` adds
    members (`login_url` of `step_up_required`)."""
    entry = TABLE[kind]
    text = entry.description if description is None else description
    doc = {"error": code or entry.code, "error_description": text}
    if extra:
        doc.update({k: v for k, v in extra.items() if k not in doc})
    body = json.dumps(doc).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    after = entry.retry_after if retry_after is None else retry_after
    if after is not None:
        headers.append((b"retry-after", str(after).encode()))
    return entry.status, headers, body
