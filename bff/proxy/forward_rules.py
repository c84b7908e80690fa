"""What every header filter shares, prepared once at start-up: the hop-by-hop names, the
generous cookie-name comparison, and `ForwardRules` (the BFF's own cookie names, the
trusted proxies, the public host). Pure.

Names are compared lower-cased with `_` read as `-` (CVE-2025-64484: `X_Forwarded_For`
slipped past a filter that compared exact names); see `bff.proxy.request_headers`.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["HOP_BY_HOP", "ForwardRules", "cookie_key"]

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
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"


def cookie_key(name: str) -> str:
    """How a cookie name is compared when stripping: generously (whitespace, invisible
    characters and case), so no look-alike of the BFF's cookies slips through."""
    if not name.isascii():  # header text is latin-1 decoded; browsers send UTF-8
        with contextlib.suppress(UnicodeError):
            name = name.encode("latin-1").decode("utf-8")
    return name.strip().strip(_INVISIBLE).strip().lower()


@dataclass(frozen=True, slots=True)
class ForwardRules:
    """Prepared once at start-up from the settings."""

    cookie_names: frozenset[str]  # the BFF's own cookies, as `cookie_key` gives them
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
        keys = frozenset(cookie_key(n) for n in cookie_names)
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
