"""Which frontend serves a request: the one whose public URL names the request's host
and, when several share that host, the longest path base that the path starts with (on
a segment boundary: `/app` serves `/app` and `/app/x`, never `/apps`). Ports do not
matter (cookies are scoped to a host, whatever its port), nor does letter case. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

__all__ = ["FrontendSelector", "host_name", "strip_base"]

_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-:[]_")


def host_name(value: str | None) -> str | None:
    """The lower-case host name of a Host / X-Forwarded-Host value (`name[:port]`,
    `[v6]:port`), without a trailing dot; None when there is none or it is malformed."""
    if not value or len(value) > 255 or not set(value.lower()) <= _HOST_CHARS:
        return None
    try:
        parts = urlsplit(f"//{value}")
        name, _ = parts.hostname, parts.port  # a port that is no number: ValueError
    except ValueError:
        return None
    return name.rstrip(".") or None if name else None


def strip_base(path: str, base: str) -> str | None:
    """`path` without the path base `base` ("/" when nothing is left), or None when it
    does not start with it on a segment boundary."""
    if not base:
        return path
    if path == base:
        return "/"
    if path.startswith(base + "/"):
        return path[len(base) :]
    return None


class FrontendSelector:
    """Maps (host, path) to the index of a frontend among the public URLs it was given."""

    __slots__ = ("_by_host",)

    def __init__(self, public_urls: Sequence[str]) -> None:
        by_host: dict[str, list[tuple[str, int]]] = {}
        for index, url in enumerate(public_urls):
            parts = urlsplit(url)
            host = host_name(parts.netloc)
            if host is None:
                raise ValueError(f"no host in public URL {url!r}")
            by_host.setdefault(host, []).append((parts.path.rstrip("/"), index))
        # Longest path base first: the first that matches wins.
        self._by_host = {h: sorted(v, key=lambda e: -len(e[0])) for h, v in by_host.items()}

    def select(self, host: str | None, path: str) -> tuple[int, str] | None:
        """(frontend index, its path base) for a request to `host` (a Host header value)
        and `path`; None when no frontend is served there."""
        name = host_name(host)
        for base, index in self._by_host.get(name or "", ()):
            if strip_base(path, base) is not None:
                return index, base
        return None
