"""Redirect rules: what counts as a local return URL, and whether a request's host is
the public URL's. Pure."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

__all__ = ["MAX_RETURN_URL", "is_local_path", "printable_host", "same_host"]

MAX_RETURN_URL = 512  # SPEC: a returnUrl of at most 512 characters (issue 11 defect 3)


def _has_control(text: str) -> bool:
    return any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text)


_MAX_DECODES = 4  # a value still changing after this many decodes is refused


def is_local_path(value: str) -> bool:
    """True only for a path on this origin: `/…`, never `//…`, `/\\…`, a scheme,
    control characters, backslashes, or an encoded slash / backslash / control that a
    browser or a later decode could turn into one of those (`/%2F…`, `/%5C…`, and the
    double-encoded `/%252F…`, `/%2509/…` an app server that decodes once more would)."""
    if not value or len(value) > MAX_RETURN_URL or not value.startswith("/"):
        return False
    if "\\" in value:
        return False
    text = value
    for _ in range(_MAX_DECODES):
        if _has_control(text) or text.startswith(("//", "/\\")):
            return False
        decoded = unquote(text)
        if decoded == text:
            return True
        text = decoded
    return False  # still changing after several decodes: no real return URL does that


def _hostname(netloc: str) -> str | None:
    try:
        name = urlsplit(f"//{netloc.strip()}").hostname
    except ValueError:
        return None
    return name.rstrip(".") if name else None


def same_host(public_url: str, host_header: str) -> bool:
    """Does `host_header` (a Host or X-Forwarded-Host value) name the public URL's host?
    Ports do not matter: cookies are scoped to a host, whatever its port (a port that
    differs is the start-up warning's business). Letter case does not matter either."""
    name = _hostname(host_header)
    return name is not None and name == _hostname(urlsplit(public_url).netloc)


def printable_host(value: str) -> str | None:
    """A Host header value fit for a page or a log line, or None when it is not a plain
    `name[:port]` / `[v6]:port`."""
    if not value or len(value) > 255:
        return None
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789.-:[]_")
    return value if set(value.lower()) <= allowed else None
