"""The route table and the one canonical path rule (THREATS.md invariant 1). Pure.

A request path is parsed once, from the raw request target (never from the server's
already-decoded `scope["path"]`): the query is split off, percent-escapes are decoded
once, and anything that could change the path's meaning on its way through an HTTP
client or an upstream is refused - dot segments (raw, encoded, any case, also `..;`),
encoded slashes and backslashes, raw backslashes, `#`, control characters, empty
segments. The result carries the decoded segments (what decisions use) and one
canonical encoded form (what is sent): escapes of unreserved characters are decoded,
every other escape is kept (upper-cased), so each segment means upstream exactly what
it meant here.

A `;` in a segment (raw or `%3B`) starts a path parameter, which servlet containers strip
before they route: `/api/admin;x/y` is `/api/admin/y` to them. Routes are therefore
matched on the segments without their parameters (`/api/admin;x/y` is decided by the
`/api/admin` route, never by a shorter one), and the proxy refuses such a path unless
that route sets `path_params = true`.

The outbound target is always `route origin + mapped canonical path (+ raw query)`,
never `urljoin`: nothing in a path or query can pick the host.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bff.config.model import RouteConfig
from bff.errors import ConfigError, PathRejected

__all__ = [
    "CanonicalPath",
    "Route",
    "RouteTable",
    "canonical_path",
    "safe_query",
]

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_RAW_OK = _UNRESERVED | frozenset(b"!$&'()*+,;=:@")  # RFC 3986 pchar, without '%'
_HEX = frozenset(b"0123456789abcdefABCDEF")
# The common case: nothing to decode, nothing to re-encode.
_PLAIN = re.compile(rb"(?:/[A-Za-z0-9\-._~!$&'()*+,;=:@]*)+")
# An escape left after the one decode is an attempt at double decoding: refuse it.
_DOUBLE = re.compile(r"%(?:2e|2f|5c|00|25)", re.IGNORECASE)
# Query bytes sent as received, except those no request line may carry.
_QUERY_OK = re.compile(rb"[\x21-\x22\x24-\x7e]*")


@dataclass(frozen=True, slots=True)
class CanonicalPath:
    encoded: str  # the canonical form of the whole path, e.g. "/api/a%20b"
    segments: tuple[str, ...]  # decoded (latin-1) segments, for decisions
    encoded_segments: tuple[str, ...]  # the same segments in canonical encoded form
    params: bool = False  # a `;` (path parameter) in some decoded segment


def _check_segments(segments: Sequence[str]) -> None:
    last = len(segments) - 1
    for i, segment in enumerate(segments):
        if not segment:
            if i != last:  # only a trailing slash may leave an empty segment
                raise PathRejected("empty path segment")
            continue
        # `..;x` is `..` to servlet containers; `...` / `.. ` are `..` on Windows.
        head = segment.partition(";")[0]
        if "." in head and not head.strip(". "):
            raise PathRejected("dot segment")
        if not head and i != last:  # `/a/;x/b` is `/a//b` once the parameter is stripped
            raise PathRejected("empty path segment")
        if "%" in segment and _DOUBLE.search(segment):
            raise PathRejected("double-encoded path")


def canonical_path(raw: bytes) -> CanonicalPath:
    """Parse a raw request target's path; PathRejected when it is not safe to forward."""
    raw = raw.partition(b"?")[0]
    if _PLAIN.fullmatch(raw):
        text = raw.decode("ascii")
        parts = tuple(text[1:].split("/"))
        _check_segments(parts)
        return CanonicalPath(text, parts, parts, ";" in text)
    if not raw.startswith(b"/"):
        raise PathRejected("not an origin-form path")
    decoded: list[str] = []
    encoded: list[str] = []
    for segment in raw[1:].split(b"/"):
        dec, enc = _decode_segment(segment)
        decoded.append(dec)
        encoded.append(enc)
    _check_segments(decoded)
    params = any(";" in segment for segment in decoded)
    return CanonicalPath("/" + "/".join(encoded), tuple(decoded), tuple(encoded), params)


def _decode_segment(segment: bytes) -> tuple[str, str]:
    dec = bytearray()
    enc = bytearray()
    i, n = 0, len(segment)
    while i < n:
        byte = segment[i]
        if byte == 0x25:  # '%'
            pair = segment[i + 1 : i + 3]
            if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
                raise PathRejected("malformed percent-escape")
            value = int(pair, 16)
            if value in (0x2F, 0x5C):
                raise PathRejected("encoded slash or backslash")
            if value < 0x20 or value == 0x7F:
                raise PathRejected("control character")
            dec.append(value)
            if value in _UNRESERVED:
                enc.append(value)
            else:
                enc += b"%" + pair.upper()
            i += 3
            continue
        if byte == 0x5C:
            raise PathRejected("backslash")
        if byte == 0x23:
            raise PathRejected("fragment in request target")
        if byte <= 0x20 or byte == 0x7F:
            raise PathRejected("control character or space")
        dec.append(byte)
        if byte in _RAW_OK:
            enc.append(byte)
        else:
            enc += b"%%%02X" % byte
        i += 1
    return dec.decode("latin-1"), enc.decode("ascii")


def safe_query(raw: bytes) -> str:
    """The query as received, byte for byte, except that bytes no request line may hold
    (controls, space, `#`, non-ASCII) are percent-encoded. Never used for decisions."""
    if _QUERY_OK.fullmatch(raw):
        return raw.decode("ascii")
    return "".join(chr(b) if 0x21 <= b <= 0x7E and b != 0x23 else f"%{b:02X}" for b in raw)


@dataclass(frozen=True, slots=True)
class Route:
    """A configured route, prepared once: origin, base path, Allow header."""

    config: RouteConfig
    prefix: tuple[str, ...]
    origin: str  # scheme://host[:port], lower-cased: the only place requests go
    base: str  # the upstream's canonical path ("" when it has none), as configured
    allow: bytes = field(repr=False)  # the Allow header of a 405

    def target(self, path: CanonicalPath) -> str:
        """nginx `proxy_pass` mapping: no upstream path keeps the request path; with one,
        the matched prefix is replaced by it (never leaving a `//` behind)."""
        if not self.base:
            return path.encoded
        rest = path.encoded_segments[len(self.prefix) :]
        if not rest:
            return self.base
        return self.base.rstrip("/") + "/" + "/".join(rest)


def _prepare(config: RouteConfig, where: str) -> Route:
    parts = urlsplit(config.upstream)
    origin = f"{parts.scheme.lower()}://{parts.netloc.lower()}"
    base = ""
    if parts.path and parts.path != "/":
        try:
            base = canonical_path(parts.path.encode("utf-8")).encoded
        except PathRejected as exc:
            raise ConfigError([f"{where}.upstream: path not allowed ({exc})"]) from None
    methods = sorted(config.methods) if config.methods is not None else []
    return Route(
        config=config,
        prefix=tuple(config.prefix[1:].split("/")),
        origin=origin,
        base=base,
        allow=", ".join(methods).encode("ascii"),
    )


class RouteTable:
    """Longest prefix wins; a prefix matches only whole segments (`/api` never `/apix`)."""

    __slots__ = ("_by_prefix", "_depths", "routes")

    def __init__(self, configs: Iterable[RouteConfig]) -> None:
        self.routes = tuple(_prepare(c, f"routes[{i}]") for i, c in enumerate(configs))
        self._by_prefix = {r.prefix: r for r in self.routes}
        self._depths = sorted({len(r.prefix) for r in self.routes}, reverse=True)

    @property
    def origins(self) -> frozenset[str]:
        return frozenset(r.origin for r in self.routes)

    def match(self, path: CanonicalPath) -> Route | None:
        segments = path.segments
        if path.params:  # matched as a servlet container routes it: parameters stripped
            segments = tuple(segment.partition(";")[0] for segment in segments)
        for depth in self._depths:
            if len(segments) >= depth:
                route = self._by_prefix.get(segments[:depth])
                if route is not None:
                    return route
        return None
