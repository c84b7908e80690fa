"""The browser's request headers, filtered for forwarding (THREATS.md invariant 2,
"strip"): hop-by-hop and `Connection`-named headers, Authorization, Host, X-Request-ID,
the routing-override headers, `Proxy-*`, untrusted forwarding claims and the BFF's own
cookies never reach an upstream. Pure.

Names are compared lower-cased with `_` read as `-` (CVE-2025-64484: `X_Forwarded_For`
slipped past a filter that compared exact names), and an underscore spelling of any name
handled here is dropped outright: a CGI-style upstream would read it as the real header.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from types import MappingProxyType

from bff.proxy.forward_rules import HOP_BY_HOP, ForwardRules, cookie_key

__all__ = ["Inbound", "filter_request_headers"]

# Never forwarded from the browser: replaced by ours, or answered by this hop.
# `Expect: 100-continue` was already answered by our server.
# `DPoP`: a proof is ours to make (RFC 9449), one per request, never the browser's.
_REQUEST_DROP = HOP_BY_HOP | {b"host", b"authorization", b"dpop", b"x-request-id", b"expect"}
# Headers some upstream frameworks obey to re-route or re-method a request: they could
# take a request above its route's path or around its `methods` (and `Proxy:`, httpoxy).
_REQUEST_DROP |= {
    b"proxy",
    b"x-original-url",
    b"x-rewrite-url",
    b"x-http-method-override",
    b"x-http-method",
    b"x-method-override",
}
_FORWARDING = frozenset({b"forwarded", b"x-real-ip"})  # and every `x-forwarded-*`
# Names whose underscore spelling is dropped even from a trusted proxy.
_MANAGED = _REQUEST_DROP | _FORWARDING | {b"cookie", b"content-length", b"x-csrf"}
_PREFIXES = (b"x-forwarded-", b"proxy-")
_HOP_BY_HOP_TEXT = frozenset(n.decode() for n in HOP_BY_HOP)
_PLAIN_CONNECTION = frozenset({b"keep-alive", b"close", b"Keep-Alive", b"Close"})

# One lookup per request header; names not listed pass unless `_classify` objects.
_KEEP, _DROP, _COOKIE, _LENGTH, _HOST, _CONNECTION, _CHUNKED = range(7)
_FWD, _XFF, _XFP, _XFH = range(7, 11)
_ACTIONS = MappingProxyType(
    {
        **dict.fromkeys(_REQUEST_DROP, _DROP),
        b"connection": _CONNECTION,
        b"transfer-encoding": _CHUNKED,
        b"host": _HOST,
        b"cookie": _COOKIE,
        b"content-length": _LENGTH,
        **dict.fromkeys(_FORWARDING, _FWD),
        b"x-forwarded-for": _XFF,
        b"x-forwarded-proto": _XFP,
        b"x-forwarded-host": _XFH,
    }
)


@dataclass(slots=True)
class Inbound:
    """The browser's request headers, filtered for forwarding, plus what we read from them."""

    # Secrets (the session cookie) live here: never in a repr or an error tracker's dump.
    headers: list[tuple[str, str]] = field(repr=False)  # what may be forwarded as it is
    cookies: list[str] = field(repr=False)  # every Cookie header value (session lookup)
    forward_cookie: str | None = field(repr=False)  # without the BFF's cookies
    hosts: int  # Host header lines: more than one is refused (RFC 9112 §3.2)
    has_body: bool
    forwarded_for: str | None = None  # from a trusted proxy only
    forwarded_proto: str | None = None
    forwarded_host: str | None = None  # a trusted proxy's, else the public URL's host


def _strip_cookies(values: list[str], names: frozenset[str]) -> str | None:
    kept = [
        part.strip()
        for value in values
        for part in value.split(";")
        if part.strip() and cookie_key(part.partition("=")[0]) not in names
    ]
    return "; ".join(kept) or None


def _classify(name: bytes) -> int:
    """The action for a name not in `_ACTIONS`: underscore spellings and prefixes."""
    if b"_" in name:
        norm = name.replace(b"_", b"-")
        managed = norm in _MANAGED or norm.startswith(_PREFIXES)
        return _DROP if managed else _KEEP  # `my_header` passes under its own name
    if name.startswith(b"proxy-"):
        return _DROP
    return _FWD if name.startswith(b"x-forwarded-") else _KEEP


def filter_request_headers(
    raw: Iterable[tuple[bytes, bytes]], rules: ForwardRules, *, trusted: bool
) -> Inbound:
    """Strip everything that must not reach an upstream (ASGI headers in, str pairs out)."""
    kept: list[tuple[str, str]] = []
    cookies: list[str] = []
    connection: set[str] | None = None
    length = None
    hosts = 0
    chunked = False
    xff: list[bytes] = []
    proto = fwd_host = None
    for name, value in raw:
        name = name.lower()
        action = _ACTIONS.get(name)
        if action is None:
            action = _classify(name) if b"_" in name or name.startswith(_PREFIXES) else _KEEP
        if action == _KEEP:
            kept.append((name.decode("latin-1"), value.decode("latin-1")))
        elif action == _COOKIE:
            cookies.append(value.decode("latin-1"))
        elif action == _LENGTH:
            length = value
            kept.append(("content-length", value.decode("latin-1")))
        elif action == _HOST:
            hosts += 1
        elif action == _CONNECTION:
            if value in _PLAIN_CONNECTION:
                continue  # what browsers send: names nothing beyond the hop-by-hop set
            connection = connection or set()
            tokens = value.decode("latin-1").lower().replace("_", "-").split(",")
            connection.update(t.strip() for t in tokens)
        elif action == _CHUNKED:
            chunked = True
        elif not trusted or action == _DROP:
            continue  # hop-by-hop or ours to set; or an untrusted peer's forwarding claim
        elif action == _XFF:
            xff.append(value)
        elif action == _XFP:
            proto = value
        elif action == _XFH:
            fwd_host = value
        else:  # _FWD from a trusted proxy
            kept.append((name.decode("latin-1"), value.decode("latin-1")))
    forward_cookies = bool(cookies)
    if connection is not None and connection - _HOP_BY_HOP_TEXT:
        kept = [h for h in kept if h[0].replace("_", "-") not in connection]
        forward_cookies = forward_cookies and "cookie" not in connection
    if chunked and length is not None:  # Transfer-Encoding wins (RFC 9112 §6.3)
        kept = [h for h in kept if h[0] != "content-length"]
    return Inbound(
        headers=kept,
        cookies=cookies,
        forward_cookie=_strip_cookies(cookies, rules.cookie_names) if forward_cookies else None,
        hosts=hosts,
        has_body=chunked or (length is not None and length.strip() != b"0"),
        forwarded_for=b", ".join(xff).decode("latin-1") if xff else None,
        forwarded_proto=proto.decode("latin-1") if proto is not None else None,
        forwarded_host=fwd_host.decode("latin-1") if fwd_host is not None else rules.public_host,
    )
