"""Header rules shared by the /bff endpoints and the proxy. Pure."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

__all__ = ["csrf_ok", "header_values", "request_id_from"]

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


def request_id_from(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """Propagate a well-formed inbound X-Request-ID, else create one."""
    for name, value in headers:
        if name == b"x-request-id" and _REQUEST_ID.fullmatch(value):
            return value.decode("ascii")
    return uuid.uuid4().hex
