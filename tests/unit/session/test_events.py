"""The end of a session as an event (pure): its wire form, when a session ends, and the
per-worker registry of live connections."""

from __future__ import annotations

from bff.session.events import (
    LiveRegistry,
    RefreshReleased,
    SessionEnded,
    decode_ended,
    decode_event,
    encode_ended,
    encode_event,
    session_end,
)

HASH = "0123456789abcdef0123456789abcdef"


class Conn:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def end(self, reason: str) -> None:
        self.reasons.append(reason)


def test_wire_form_round_trips_and_refuses_anything_else() -> None:
    event = SessionEnded(HASH, "backchannel_logout")
    assert encode_ended(event) == f"backchannel_logout {HASH}".encode()
    assert decode_ended(encode_ended(event)) == event
    assert decode_ended(f"logout {HASH}") == SessionEnded(HASH, "logout")
    for garbage in (b"", b"logout", f"reboot {HASH}".encode(), b"logout ZZZZZZZZZZ", b"\xff\xfe"):
        assert decode_ended(garbage) is None


def test_a_released_refresh_lock_shares_the_wire_and_is_no_end() -> None:
    event = RefreshReleased(HASH)
    assert encode_event(event) == f"refreshed {HASH}".encode()
    assert decode_event(encode_event(event)) == event
    assert decode_event(encode_event(SessionEnded(HASH, "logout"))) == SessionEnded(HASH, "logout")
    # What an instance that knows only ends reads (and what this one reads of garbage).
    assert decode_ended(encode_event(event)) is None
    for garbage in (b"refreshed", b"refreshed ZZZZZZZZZZ", f"refreshed  {HASH}".encode()):
        assert decode_event(garbage) is None


def test_session_end_is_the_sooner_of_idle_and_absolute_end() -> None:
    assert session_end(now=100, expires_at=200, store_ttl=30) == 130
    assert session_end(now=100, expires_at=110, store_ttl=30) == 110
    assert session_end(now=100, expires_at=200, store_ttl=None) is None
    assert session_end(now=100, expires_at=200, store_ttl=0) is None
    assert session_end(now=100, expires_at=100, store_ttl=30) is None


def test_registry_tells_each_connection_of_the_session_once() -> None:
    registry = LiveRegistry()
    a, b, other = Conn(), Conn(), Conn()
    registry.add(HASH, a)
    registry.add(HASH, b)
    registry.add("f" * 32, other)
    registry.discard(HASH, b)
    registry.discard("e" * 32, b)  # unknown: nothing happens
    assert len(registry) == 2
    assert registry.end(SessionEnded(HASH, "logout")) == 1
    assert registry.end(SessionEnded(HASH, "logout")) == 0  # forgotten after the first
    assert (a.reasons, b.reasons, other.reasons) == (["logout"], [], [])
    assert list(registry.sessions()) == ["f" * 32]
