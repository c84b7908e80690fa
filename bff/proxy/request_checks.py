"""What bff reads from a browser's request headers before it acts: the CSRF header and
Fetch Metadata (THREATS.md invariant 7), the header values of a name, and an inbound
X-Request-ID worth propagating. Pure: a fresh request id is the caller's
(`bff.telemetry.logs.new_request_id`)."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["csrf_ok", "csrf_refusal", "header_values", "inbound_request_id", "navigation_ok"]

_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def header_values(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[str]:
    """Every value of header `name` (lowercase) from raw ASGI headers."""
    return [v.decode("latin-1") for k, v in headers if k == name]


def csrf_ok(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """`X-CSRF: 1` present (a header a cross-site form or simple request cannot set
    without a CORS preflight) and the browser does not call it a cross-site request."""
    csrf = False
    for name, value in headers:
        if name == b"x-csrf":
            if value.strip() != b"1":
                return False
            csrf = True
        elif name == b"sec-fetch-site" and value.strip().lower() == b"cross-site":
            return False
    return csrf


def csrf_refusal(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """Why `csrf_ok` refused, for the log line (asked only after a refusal)."""
    for name, value in headers:
        if name == b"sec-fetch-site" and value.strip().lower() == b"cross-site":
            return "cross_site"
    for name, value in headers:
        if name == b"x-csrf" and value.strip() != b"1":
            return "csrf_header_invalid"
    return "csrf_header_missing"


def navigation_ok(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """False when the browser says this is no top-level navigation (Fetch Metadata:
    `Sec-Fetch-Dest` other than `document`, `Sec-Fetch-Mode` other than `navigate`): an
    `<img src>`, a `fetch()`, a frame. Absent headers (older browsers, curl) pass."""
    for name, value in headers:
        if name == b"sec-fetch-dest" and value.strip().lower() != b"document":
            return False
        if name == b"sec-fetch-mode" and value.strip().lower() != b"navigate":
            return False
    return True


def inbound_request_id(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """A well-formed inbound X-Request-ID (propagated as it is), else None."""
    for name, value in headers:
        if name == b"x-request-id" and _REQUEST_ID.fullmatch(value):
            return value.decode("ascii")
    return None
