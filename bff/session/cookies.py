"""Cookie rules: signing the session id, parsing Cookie headers unambiguously,
and building Set-Cookie values. Pure."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable
from typing import Literal

from itsdangerous import BadData, BadSignature, Signer
from itsdangerous.encoding import base64_decode, base64_encode

__all__ = [
    "CookieSigner",
    "build_set_cookie",
    "expire_cookie",
    "find_cookie",
    "strip_cookies",
]

SameSite = Literal["strict", "lax"]
_MAX_COOKIE_VALUE = 512  # our values are ~100 bytes; anything longer is not ours
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"  # not str.isspace(), yet invisible


def _canonical_signature(value: str) -> bool:
    """The signature is in its one base64url spelling. base64 decoding ignores the unused
    low bits of the last character, so without this check several cookie strings would
    verify as the same signed value (malleable: found by tests/property)."""
    signature = value.rpartition(".")[2]
    try:
        return base64_encode(base64_decode(signature)).decode("ascii") == signature
    except (BadData, ValueError):
        return False


class CookieSigner:
    """Signs `<session id>.<absolute expiry>` for the session cookie and random values
    for the login-binding cookie, with separate salts so one can't stand for the other."""

    __slots__ = ("_binding", "_session")

    def __init__(self, signing_keys: list[bytes], *, namespace: str = "") -> None:
        # A frontend's namespace goes into both salts, so a cookie that one frontend
        # signed never verifies at another (the default frontend's: the salts it always had).
        suffix = f"/{namespace}" if namespace else ""
        self._session = Signer(
            signing_keys, salt=f"bff.session{suffix}", digest_method=hashlib.sha256
        )
        self._binding = Signer(
            signing_keys, salt=f"bff.login-binding{suffix}", digest_method=hashlib.sha256
        )

    def sign_session(self, session_id: str, expires_at: int) -> str:
        return self._session.sign(f"{session_id}.{expires_at}").decode("ascii")

    def unsign_session(self, value: str) -> tuple[str, int] | None:
        """(session id, absolute expiry) or None for anything not signed by us."""
        if len(value) > _MAX_COOKIE_VALUE or not _canonical_signature(value):
            return None
        try:
            payload = self._session.unsign(value).decode("ascii")
        except (BadSignature, UnicodeError):
            return None
        session_id, sep, expiry = payload.rpartition(".")
        if not sep or len(session_id) != 43 or not expiry.isdigit():
            return None
        return session_id, int(expiry)

    def sign_binding(self, value: str) -> str:
        return self._binding.sign(value).decode("ascii")

    def unsign_binding(self, value: str) -> str | None:
        if len(value) > _MAX_COOKIE_VALUE or not _canonical_signature(value):
            return None
        try:
            return self._binding.unsign(value).decode("ascii")
        except (BadSignature, UnicodeError):
            return None


def _pairs(headers: Iterable[str]) -> Iterable[tuple[str, str]]:
    for header in headers:
        for part in header.split(";"):
            name, sep, value = part.partition("=")
            if sep:
                yield name, value


def _lookalike(cookie_name: str) -> str:
    """The name once Unicode whitespace and invisible characters are stripped; header
    text arrives latin-1 decoded while browsers send UTF-8, so decode that first."""
    if not cookie_name.isascii():
        with contextlib.suppress(UnicodeError):
            cookie_name = cookie_name.encode("latin-1").decode("utf-8")
    return cookie_name.strip().strip(_INVISIBLE).strip()


def find_cookie(headers: Iterable[str], name: str) -> str | None:
    """The value of cookie `name`, or None when absent or ambiguous: a duplicate of
    the name, or another name that equals it once Unicode whitespace is stripped
    (cookie tossing from a sibling domain, parser differentials)."""
    found: str | None = None
    count = 0
    for raw_name, value in _pairs(headers):
        cookie_name = raw_name.strip(" \t")  # the only whitespace RFC 6265 allows here
        if cookie_name == name:
            count += 1
            found = value.strip(" \t")
        elif _lookalike(cookie_name) == name:
            return None
    if count != 1 or found is None:
        return None
    if found.startswith('"') and found.endswith('"') and len(found) >= 2:
        found = found[1:-1]
    return found or None


def strip_cookies(header: str, names: frozenset[str]) -> str | None:
    """The Cookie header without `names` (compared after trimming); None when empty."""
    kept = [
        part.strip()
        for part in header.split(";")
        if part.strip() and part.partition("=")[0].strip() not in names
    ]
    return "; ".join(kept) or None


def build_set_cookie(
    name: str,
    value: str,
    *,
    max_age: int,
    secure: bool,
    samesite: SameSite,
) -> str:
    """HttpOnly, Path=/, host-only (never a Domain attribute)."""
    parts = [f"{name}={value}", "Path=/", f"Max-Age={max(0, max_age)}", "HttpOnly"]
    if secure:
        parts.append("Secure")
    parts.append("SameSite=" + samesite.capitalize())
    return "; ".join(parts)


def expire_cookie(name: str, *, secure: bool, samesite: SameSite) -> str:
    return build_set_cookie(name, "", max_age=0, secure=secure, samesite=samesite) + (
        "; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
    )
