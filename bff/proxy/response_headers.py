"""An upstream's answer headers as the browser gets them: hop-by-hop ones (and those
named in `Connection`), Date and Server removed, no Set-Cookie for a BFF cookie name, no
Clear-Site-Data, and no body framing on a bodiless answer. Pure."""

from __future__ import annotations

from collections.abc import Iterable

from bff.proxy.forward_rules import HOP_BY_HOP, ForwardRules, cookie_key

__all__ = ["filter_response_headers"]

# Our server adds its own Date; Server would only advertise the upstream's software
# (nginx's proxy_hide_header defaults).
# Clear-Site-Data: "cookies" would let an upstream wipe the BFF's session cookie.
_RESPONSE_DROP = HOP_BY_HOP | {b"date", b"server", b"clear-site-data"}
# A 1xx, 204 or 304 answer has no body whatever its framing headers say (RFC 9110 §6.4.1);
# a Content-Length kept on one would make our own server wait for bytes that never come
# (uvicorn drops the browser's connection), so it goes too (RFC 9110 §8.6 allows a 304 to
# omit it).
_BODILESS_DROP = _RESPONSE_DROP | {b"content-length"}


def _is_bff_cookie(set_cookie: bytes, names: ForwardRules) -> bool:
    # A Set-Cookie without `=` sets a nameless cookie whose value is the text.
    name = set_cookie.split(b";", 1)[0].split(b"=", 1)[0].strip().lower()
    if not name:
        return True  # `=bff-session=x` sets a nameless cookie browsers send as `bff-session=x`
    if name.isascii():
        return name in names.cookie_names_bytes
    return cookie_key(name.decode("latin-1")) in names.cookie_names


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
