"""Header rules shared by the /bff endpoints and the proxy. Pure.

Forwarding follows THREATS.md invariant 2: strip, then inject. Names are compared
lower-cased with `_` read as `-` (CVE-2025-64484: `X_Forwarded_For` slipped past a
filter that compared exact names), and an underscore spelling of any name handled
here is dropped outright: a CGI-style upstream would read it as the real header.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "HOP_BY_HOP",
    "ForwardRules",
    "Inbound",
    "csrf_ok",
    "csrf_refusal",
    "navigation_ok",
    "filter_request_headers",
    "filter_response_headers",
    "header_values",
    "outbound_headers",
    "request_id_from",
]

_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"http2-settings",
    }
)
# Never forwarded from the browser: replaced by ours, or answered by this hop.
# `Expect: 100-continue` was already answered by our server.
_REQUEST_DROP = HOP_BY_HOP | {b"host", b"authorization", b"x-request-id", b"expect"}
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
# Our server adds its own Date; Server would only advertise the upstream's software
# (nginx's proxy_hide_header defaults).
# Clear-Site-Data: "cookies" would let an upstream wipe the BFF's session cookie.
_RESPONSE_DROP = HOP_BY_HOP | {b"date", b"server", b"clear-site-data"}
# A 1xx, 204 or 304 answer has no body whatever its framing headers say (RFC 9110 §6.4.1);
# a Content-Length kept on one would make our own server wait for bytes that never come
# (uvicorn drops the browser's connection), so it goes too (RFC 9110 §8.6 allows a 304 to
# omit it).
_BODILESS_DROP = _RESPONSE_DROP | {b"content-length"}

# One dict lookup per request header; names not listed pass unless `_classify` objects.
_KEEP, _DROP, _COOKIE, _LENGTH, _HOST, _CONNECTION, _CHUNKED = range(7)
_FWD, _XFF, _XFP, _XFH = range(7, 11)
_ACTIONS: dict[bytes, int] = {
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


def csrf_refusal(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """Why `csrf_ok` refused, for the log line (asked only after a refusal)."""
    for name, value in headers:
        if name == b"sec-fetch-site" and value.strip().lower() == b"cross-site":
            return "cross_site"
    for name, value in headers:
        if name == b"x-csrf" and value.strip() != b"1":
            return "csrf_header_invalid"
    return "csrf_header_missing"


def request_id_from(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """Propagate a well-formed inbound X-Request-ID, else create one."""
    for name, value in headers:
        if name == b"x-request-id" and _REQUEST_ID.fullmatch(value):
            return value.decode("ascii")
    return uuid.uuid4().hex


def _cookie_key(name: str) -> str:
    """How a cookie name is compared when stripping: generously (whitespace, invisible
    characters and case), so no look-alike of the BFF's cookies slips through."""
    if not name.isascii():  # header text is latin-1 decoded; browsers send UTF-8
        with contextlib.suppress(UnicodeError):
            name = name.encode("latin-1").decode("utf-8")
    return name.strip().strip(_INVISIBLE).strip().lower()


@dataclass(frozen=True, slots=True)
class ForwardRules:
    """Prepared once at start-up from the settings."""

    cookie_names: frozenset[str]  # the BFF's own cookies, as `_cookie_key` gives them
    cookie_names_bytes: frozenset[bytes] = field(repr=False)
    trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    # X-Forwarded-Host unless a trusted proxy says otherwise: the host[:port] of
    # BFF_PUBLIC_URL, never the browser's unchecked Host (None: no X-Forwarded-Host).
    public_host: str | None = None

    @classmethod
    def create(
        cls,
        cookie_names: Iterable[str],
        trusted_proxies: Iterable[str],
        *,
        public_host: str | None = None,
    ) -> ForwardRules:
        keys = frozenset(_cookie_key(n) for n in cookie_names)
        return cls(
            cookie_names=keys,
            cookie_names_bytes=frozenset(k.encode("utf-8") for k in keys),
            trusted=tuple(ipaddress.ip_network(p, strict=False) for p in trusted_proxies),
            public_host=public_host,
        )

    def trusts(self, peer: str | None) -> bool:
        """Is the connecting peer a trusted proxy (whose X-Forwarded-* we believe)?"""
        if not self.trusted or not peer:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.trusted)


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
        if part.strip() and _cookie_key(part.partition("=")[0]) not in names
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


def _is_bff_cookie(set_cookie: bytes, names: ForwardRules) -> bool:
    # A Set-Cookie without `=` sets a nameless cookie whose value is the text.
    name = set_cookie.split(b";", 1)[0].split(b"=", 1)[0].strip().lower()
    if not name:
        return True  # `=bff-session=x` sets a nameless cookie browsers send as `bff-session=x`
    if name.isascii():
        return name in names.cookie_names_bytes
    return _cookie_key(name.decode("latin-1")) in names.cookie_names


def filter_response_headers(
    raw: Iterable[tuple[bytes, bytes]], rules: ForwardRules, *, bodiless: bool = False
) -> list[tuple[bytes, bytes]]:
    """Upstream response headers for the browser: hop-by-hop ones (and those named in
    `Connection`), Date and Server removed, and no Set-Cookie for a BFF cookie name.
    `bodiless` (a 1xx, 204 or 304 answer): no body framing at all, Content-Length too."""
    out: list[tuple[bytes, bytes]] = []
    connection: set[bytes] | None = None
    drop = _BODILESS_DROP if bodiless else _RESPONSE_DROP
    for name, value in raw:
        name = name.lower()
        if name in drop:
            if name == b"connection":
                connection = connection or set()
                connection.update(t.strip().lower() for t in value.split(b","))
            continue
        if name == b"set-cookie" and _is_bff_cookie(value, rules):
            continue
        out.append((name, value))
    if connection and connection - HOP_BY_HOP:
        out = [h for h in out if h[0] not in connection]
    return out
