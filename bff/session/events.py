"""The end of a session as an event, and the live connections it closes. Pure.

A live connection (a proxied WebSocket, a streamed proxy answer, a `/bff/events` stream)
lives only as long as its session. `SessionService.end` publishes `SessionEnded` on an
`EventBus` (Redis pub/sub across instances, an in-process bus for `memory://`); every
worker subscribes once and hands each event to its `LiveRegistry`, which tells the
session's connections (`Live.end`). What a connection does then is its own business: a
WebSocket closes with `SESSION_ENDED_CLOSE`, a stream is cut, `/bff/events` sends
`session_ended`.

The same channel carries `RefreshReleased`: a session's refresh lock was released (its
new tokens, if any, are stored), so the instances waiting for that refresh look again at
once instead of at their next poll (`bff.tokens.refresh`). Instances that do not know it
ignore it (`decode_ended` refuses it).

The wire form of an event is `<reason> <session hash>` in ASCII (`refreshed <hash>` for
a released refresh lock): no session id, no token, nothing a subscriber could use (the
hash is the store key, which a subscriber to the store's Redis can read anyway).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "END_REASONS",
    "EXPIRING_WINDOW",
    "SESSION_ENDED_CLOSE",
    "BusEvent",
    "EndPublisher",
    "EventBus",
    "Live",
    "LiveRegistry",
    "RefreshReleased",
    "SessionEnded",
    "decode_ended",
    "decode_event",
    "encode_ended",
    "encode_event",
    "session_end",
]

SESSION_ENDED_CLOSE = 4401  # the WebSocket close code of a connection whose session ended
EXPIRING_WINDOW = 60  # seconds before its end a session counts as expiring (/bff/events)
# Why a session ended: `SessionService.end`'s reasons, `expired` (idle or absolute end,
# seen by a connection's own timer) and `ended` (it is gone, the reason was lost while
# the bus was down).
END_REASONS = frozenset(
    {
        "logout",
        "backchannel_logout",
        "revoke",
        "invalid_grant",
        "no_refresh_token",
        "expired",
        "ended",
    }
)
_HASH = re.compile(r"[0-9a-f]{8,128}")
_REFRESHED = "refreshed"  # the wire word of `RefreshReleased`


@dataclass(frozen=True, slots=True)
class SessionEnded:
    session_hash: str
    reason: str


@dataclass(frozen=True, slots=True)
class RefreshReleased:
    """A session's refresh lock was released: its waiters elsewhere look again."""

    session_hash: str


BusEvent = SessionEnded | RefreshReleased


def encode_event(event: BusEvent) -> bytes:
    word = _REFRESHED if isinstance(event, RefreshReleased) else event.reason
    return f"{word} {event.session_hash}".encode("ascii")


def encode_ended(event: SessionEnded) -> bytes:
    return encode_event(event)


def decode_event(data: bytes | str) -> BusEvent | None:
    """The event of a bus message; None for anything that is not one of ours."""
    text = data.decode("ascii", "replace") if isinstance(data, bytes) else data
    word, _, session_hash = text.partition(" ")
    if not _HASH.fullmatch(session_hash):
        return None
    if word == _REFRESHED:
        return RefreshReleased(session_hash)
    return SessionEnded(session_hash, word) if word in END_REASONS else None


def decode_ended(data: bytes | str) -> SessionEnded | None:
    """The `SessionEnded` of a bus message; None for anything else."""
    event = decode_event(data)
    return event if isinstance(event, SessionEnded) else None


def session_end(*, now: float, expires_at: float, store_ttl: int | None) -> float | None:
    """When the session ends if nothing slides it: its absolute end, or sooner its idle
    end (`store_ttl` seconds from `now`: the store's TTL is min(idle, lifetime left)).
    None when it has ended already."""
    if store_ttl is None or store_ttl <= 0 or expires_at <= now:
        return None
    return min(expires_at, now + store_ttl)


class Live(Protocol):
    """A live connection of one session: told once, when the session ends."""

    def end(self, reason: str) -> None: ...


class RefreshWatch(Protocol):
    """Woken (`set`) when a watched session's refresh lock is released or the session
    ends; `clear` before waiting again."""

    def set(self) -> None: ...

    def clear(self) -> None: ...

    async def wait(self) -> object: ...


class EndPublisher(Protocol):
    """Where `SessionService.end` announces an ended session, and the refresh lock's
    holder the lock's release (`bff.session.live.LiveSessions`)."""

    async def publish(self, event: SessionEnded) -> None:
        """Tell every instance; never raises (a failure is logged: the connections
        elsewhere still end at their own TTL check)."""

    def refresh_released(self, session_hash: str) -> None:
        """Wake the session's refresh waiters here at once, and tell every instance (in
        the background; never raises: the waiters elsewhere still poll)."""

    def refresh_watch(self, session_hash: str) -> AbstractContextManager[RefreshWatch]:
        """Watch the session for its refresh lock's release (any instance) or its end,
        for the duration of the block."""


class EventBus(Protocol):
    """One channel of events (`SessionEnded`, `RefreshReleased`) shared by every instance
    of a deployment."""

    async def publish(self, event: BusEvent) -> None:
        """Raises `StoreUnavailable` when the channel cannot be reached."""

    async def listen(
        self, deliver: Callable[[BusEvent], None], resubscribed: Callable[[], None]
    ) -> None:
        """Deliver every event published from now on, until cancelled. A lost
        subscription is made again; `resubscribed` is called after each new one but the
        first (events of the gap may be lost: the caller re-checks its sessions)."""

    async def aclose(self) -> None:
        """Release connections."""


class LiveRegistry:
    """Session hash -> its live connections, in one worker."""

    __slots__ = ("_by_session",)

    def __init__(self) -> None:
        self._by_session: dict[str, set[Live]] = {}

    def add(self, session_hash: str, connection: Live) -> None:
        self._by_session.setdefault(session_hash, set()).add(connection)

    def discard(self, session_hash: str, connection: Live) -> None:
        connections = self._by_session.get(session_hash)
        if connections is None:
            return
        connections.discard(connection)
        if not connections:
            del self._by_session[session_hash]

    def end(self, event: SessionEnded) -> int:
        """Tell every connection of the event's session, and forget them; how many."""
        connections = self._by_session.pop(event.session_hash, set())
        for connection in connections:
            connection.end(event.reason)
        return len(connections)

    def sessions(self) -> Iterator[str]:
        """The hashes of the sessions with live connections (a snapshot)."""
        return iter(list(self._by_session))

    def __len__(self) -> int:
        return sum(len(c) for c in self._by_session.values())
