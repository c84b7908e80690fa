"""What the /bff handlers read from a request beyond its session: a query parameter
given at most once, the client address, the CSRF header. Pure: each takes what the
handler already holds and raises from the error tree (`bff.errors`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bff.errors import BadRequest, CsrfRejected
from bff.proxy.request_checks import csrf_ok, csrf_refusal

__all__ = ["client_ip", "require_csrf", "single"]


def single(values: Sequence[str], name: str) -> str | None:
    """The one value of query parameter `name` (`values`: every value given), or None;
    BadRequest when it came more than once (which one would the provider have meant?)."""
    if len(values) > 1:
        raise BadRequest(f"parameter {name!r} given more than once")
    return values[0] if values else None


def client_ip(scope: Mapping[str, Any]) -> str | None:
    """The client address (after BFF_TRUSTED_PROXIES: uvicorn's ProxyHeadersMiddleware)."""
    client = scope.get("client")
    return client[0] if client else None


def require_csrf(headers: Iterable[tuple[bytes, bytes]]) -> None:
    """CsrfRejected unless `X-CSRF: 1` came and the browser does not say cross-site."""
    headers = list(headers)
    if not csrf_ok(headers):
        raise CsrfRejected("X-CSRF: 1 header required", reason=csrf_refusal(headers))
