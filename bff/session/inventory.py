"""The session inventory: what a user (`GET /bff/sessions`) and an operator (the admin
API, `bff sessions list`) are shown of live sessions. Pure: the records, their remaining
store TTL, the key and the time come in as parameters.

Handles. A user sees each of their sessions under an opaque handle: the HMAC-SHA256 of
the session's store hash under a key derived from BFF_SECRET_KEY (`KeyRing.handle_key`,
purpose `bff/v1/session-handle`), 128 bits in base64url. It is stable while the active
key is (a key rotation gives every session a new handle), cannot be guessed, and is
useless outside the inventory: neither the cookie (the session id) nor the store key
follows from it, and only `match_handle` over the user's own sessions turns it back
into a session. Operators work with the store hash itself, as `bff sessions list` shows it.

Last seen. Every authenticated request slides the store TTL to min(idle timeout,
remaining lifetime) with the read itself (one `GETEX`: no write per request), so the time
of the last request is read back from the TTL: last_seen = now - (idle timeout -
remaining TTL). That is exact to the store's second while the idle timeout bounds the
TTL. In the last idle period before the absolute end, the TTL only says "not before
end - idle timeout": that lower bound is shown then (never earlier than `created`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bff.session.records import Session

__all__ = [
    "HANDLE_LENGTH",
    "Listed",
    "admin_rows",
    "is_handle",
    "iso",
    "last_seen",
    "match_handle",
    "session_handle",
    "user_entries",
]

HANDLE_LENGTH = 22  # base64url characters of a 128-bit handle
_HANDLE_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True, slots=True)
class Listed:
    """A live session as the store holds it: its hash, record and remaining TTL."""

    hash: str
    session: Session
    ttl: int  # seconds


def session_handle(key: bytes, session_hash: str) -> str:
    """The opaque id a user sees for the session stored under `session_hash`."""
    digest = hmac.new(key, b"bff/session-handle\0" + session_hash.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()[:16]).rstrip(b"=").decode("ascii")


def is_handle(text: str) -> bool:
    """Shaped like a handle (checked before any store access)."""
    return len(text) == HANDLE_LENGTH and set(text) <= _HANDLE_ALPHABET


def match_handle(key: bytes, handle: str, hashes: Iterable[str]) -> str | None:
    """The one of `hashes` whose handle is `handle`, or None."""
    wanted = handle.encode("ascii", "replace")
    found = None
    for h in hashes:
        if hmac.compare_digest(session_handle(key, h).encode("ascii"), wanted):
            found = h
    return found


def last_seen(*, now: float, ttl: int, idle_timeout: int, created_at: int) -> float:
    """When the session was last used, read back from its remaining store TTL (see the
    module docstring for the precision)."""
    return max(min(now, now + ttl - idle_timeout), float(created_at))


def iso(epoch: float) -> str:
    """ISO 8601 UTC to the second, as `bff sessions list` prints times."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def user_entries(
    key: bytes,
    listed: Sequence[Listed],
    *,
    current: str,
    now: float,
    idle_timeout: int,
) -> list[dict[str, Any]]:
    """`GET /bff/sessions`: one entry per session, the current one first, then the most
    recently seen. `current` is the store hash of the requesting session, which the
    request itself has just used."""
    rows: list[tuple[bool, float, dict[str, Any]]] = []
    for item in listed:
        s = item.session
        is_current = item.hash == current
        seen = (
            now
            if is_current
            else last_seen(
                now=now, ttl=item.ttl, idle_timeout=idle_timeout, created_at=s.created_at
            )
        )
        entry = {
            "id": session_handle(key, item.hash),
            "created": iso(s.created_at),
            "last_seen": iso(seen),
            "user_agent": s.user_agent,
            "client_ip": s.client_ip or None,
            "current": is_current,
        }
        rows.append((is_current, seen, entry))
    rows.sort(key=lambda row: (not row[0], -row[1], row[2]["id"]))
    return [entry for _, _, entry in rows]


def admin_rows(
    listed: Sequence[Listed], *, now: float, idle_timeout: int, frontend: str
) -> list[dict[str, str]]:
    """The operator's view of one frontend's sessions (the fields of `bff sessions list
    --json`, `GET /admin/sessions`), keyed by the store hash; the most recently seen
    first."""
    rows: list[tuple[float, dict[str, str]]] = []
    for item in listed:
        s = item.session
        seen = last_seen(now=now, ttl=item.ttl, idle_timeout=idle_timeout, created_at=s.created_at)
        row = {
            "session": item.hash,
            "sub": s.sub,
            "created": iso(s.created_at),
            "last_seen": iso(seen),
            "expires": iso(now + item.ttl),
            "user_agent": s.user_agent,
            "frontend": frontend,
        }
        rows.append((seen, row))
    rows.sort(key=lambda row: (-row[0], row[1]["session"]))
    return [row for _, row in rows]
