"""Redirect rules: what counts as a local return URL. Pure."""

from __future__ import annotations

from urllib.parse import unquote

__all__ = ["MAX_RETURN_URL", "is_local_path"]

MAX_RETURN_URL = 512  # SPEC: a returnUrl of at most 512 characters (issue 11 defect 3)


def _has_control(text: str) -> bool:
    return any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text)


def is_local_path(value: str) -> bool:
    """True only for a path on this origin: `/…`, never `//…`, `/\\…`, a scheme,
    control characters, backslashes, or an encoded slash / backslash that a browser
    or a later decode could turn into one of those (`/%2F…`, `/%5C…`)."""
    if not value or len(value) > MAX_RETURN_URL or not value.startswith("/"):
        return False
    if "\\" in value or _has_control(value):
        return False
    decoded = unquote(value)
    if _has_control(decoded) or "\\" in decoded[:2]:
        return False
    # `//host` and `/%2Fhost` are protocol-relative once decoded.
    return not (value.startswith("//") or decoded.startswith(("//", "/\\")))
