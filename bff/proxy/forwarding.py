"""The headers bff adds to a forwarded request (THREATS.md invariant 2, "then inject"):
the Cookie without the BFF's own cookies, X-Forwarded-For/-Proto/-Host, X-Request-ID and
the bearer. Pure."""

from __future__ import annotations

from bff.proxy.request_headers import Inbound

__all__ = ["outbound_headers"]


def outbound_headers(
    inbound: Inbound,
    *,
    bearer: str | None,
    peer: str | None,
    scheme: str,
    request_id: str,
) -> list[tuple[str, str]]:
    """The forwarded headers plus ours: Cookie (stripped), X-Forwarded-*, X-Request-ID and
    the bearer. `Host` is left to the HTTP client: the upstream's own."""
    out = list(inbound.headers)
    if inbound.forward_cookie:
        out.append(("Cookie", inbound.forward_cookie))
    chain = inbound.forwarded_for
    if peer:
        chain = f"{chain}, {peer}" if chain else peer
    if chain:
        out.append(("X-Forwarded-For", chain))
    out.append(("X-Forwarded-Proto", inbound.forwarded_proto or scheme))
    if inbound.forwarded_host:
        out.append(("X-Forwarded-Host", inbound.forwarded_host))
    out.append(("X-Request-ID", request_id))
    if bearer is not None:
        out.append(("Authorization", f"Bearer {bearer}"))
    return out
