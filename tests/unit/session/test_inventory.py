"""The session inventory's pure parts (`bff.session.inventory`): opaque handles, last seen
from the store TTL, the user's and the operator's views; and what it needs of the record
(the client address) and the key ring (the handle key)."""

from __future__ import annotations

import dataclasses
import re

import pytest
from joserfc.jwk import RSAKey

from bff.session.crypto import KeyRing
from bff.session.inventory import (
    HANDLE_LENGTH,
    Listed,
    admin_rows,
    is_handle,
    iso,
    last_seen,
    match_handle,
    session_handle,
    user_entries,
)
from bff.session.records import Session, decode_session, encode_session, session_hash
from bff.tokens.records import TokenSet
from tests.unit.session.test_records import dev_tokens, login_session

KEY = KeyRing(["k" * 32]).handle_key
NOW = 1_800_000_000
IDLE = 1800
CLI_FIELDS = {"session", "sub", "created", "last_seen", "expires", "user_agent", "frontend"}
USER_FIELDS = {"id", "created", "last_seen", "user_agent", "client_ip", "current"}


def session(
    sub: str = "alice", *, created: int = NOW - 3600, ua: str = "ua", ip: str = ""
) -> Session:
    return Session(
        sub=sub,
        idp_sid=None,
        claims={"sub": sub},
        tokens=TokenSet(
            access_token="access-token-secret", expires_at=None, refresh_token="refresh-secret"
        ),
        created_at=created,
        expires_at=created + 86400,
        user_agent=ua,
        client_ip=ip,
    )


# --- handles --------------------------------------------------------------------------------
def test_a_handle_is_opaque_stable_and_keyed() -> None:
    h = session_hash("the-session-id")
    handle = session_handle(KEY, h)
    assert handle == session_handle(KEY, h)  # stable
    assert len(handle) == HANDLE_LENGTH and re.fullmatch(r"[A-Za-z0-9_-]{22}", handle)
    assert is_handle(handle)
    # neither the cookie's session id nor the store key, nor a piece of them
    assert handle not in (h, "the-session-id") and handle not in h and h[:12] not in handle
    assert session_handle(KEY, session_hash("another-id")) != handle
    other_key = KeyRing(["o" * 32]).handle_key
    assert session_handle(other_key, h) != handle


def test_the_handle_key_is_its_own_and_follows_the_active_secret() -> None:
    ring = KeyRing(["a" * 32, "b" * 32])
    assert len(ring.handle_key) == 32
    assert ring.handle_key not in ring.signing_keys
    assert ring.handle_key == KeyRing(["a" * 32]).handle_key  # the active (first) key only
    assert ring.handle_key != KeyRing(["b" * 32, "a" * 32]).handle_key  # rotation: new handles
    assert "handle" not in repr(ring) and ring.handle_key.hex() not in repr(ring)


@pytest.mark.parametrize(
    "text",
    ["", "a" * 21, "a" * 23, "a" * 21 + "=", "a" * 21 + "/", "a" * 21 + ".", "é" * 22, "0" * 32],
)
def test_only_handle_shaped_text_is_a_handle(text: str) -> None:
    assert not is_handle(text)


def test_match_handle_finds_only_its_own_session() -> None:
    hashes = [session_hash(f"id-{i}") for i in range(5)]
    for h in hashes:
        assert match_handle(KEY, session_handle(KEY, h), hashes) == h
    assert match_handle(KEY, session_handle(KEY, session_hash("id-9")), hashes) is None
    assert (
        match_handle(KEY, session_handle(KeyRing(["o" * 32]).handle_key, hashes[0]), hashes) is None
    )
    assert match_handle(KEY, hashes[0], hashes) is None  # the store hash is not a handle
    assert match_handle(KEY, "é" * 22, hashes) is None
    assert match_handle(KEY, session_handle(KEY, hashes[0]), []) is None


# --- last seen ------------------------------------------------------------------------------
def test_last_seen_is_read_back_from_the_sliding_ttl() -> None:
    # used 100 s ago: the TTL was set to the idle timeout then, 100 s have run off
    assert last_seen(now=NOW, ttl=IDLE - 100, idle_timeout=IDLE, created_at=NOW - 5000) == NOW - 100
    assert last_seen(now=NOW, ttl=IDLE, idle_timeout=IDLE, created_at=NOW - 5000) == NOW


def test_last_seen_near_the_absolute_end_is_a_lower_bound_never_before_created() -> None:
    # 600 s of lifetime left, used 10 s ago: the TTL says 600 whenever it was used
    seen = last_seen(now=NOW, ttl=600, idle_timeout=IDLE, created_at=NOW - 86400 + 600)
    assert seen == NOW + 600 - IDLE <= NOW - 10
    assert last_seen(now=NOW, ttl=10, idle_timeout=IDLE, created_at=NOW - 60) == NOW - 60
    assert last_seen(now=NOW, ttl=IDLE + 5, idle_timeout=IDLE, created_at=NOW - 60) == NOW


# --- the user's view ------------------------------------------------------------------------
def test_user_entries_show_exactly_the_contract_fields_current_first() -> None:
    current, other, older = (session_hash(f"s{i}") for i in range(3))
    listed = [
        Listed(older, session(ua="Firefox", created=NOW - 7200), IDLE - 900),
        Listed(other, session(ua="Safari", ip="203.0.113.9"), IDLE - 60),
        Listed(current, session(ua="Chrome", ip="198.51.100.4", created=NOW - 100), IDLE - 500),
    ]
    entries = user_entries(KEY, listed, current=current, now=NOW, idle_timeout=IDLE)
    assert [set(e) for e in entries] == [USER_FIELDS] * 3
    assert [e["user_agent"] for e in entries] == ["Chrome", "Safari", "Firefox"]
    assert [e["current"] for e in entries] == [True, False, False]
    assert [e["id"] for e in entries] == [session_handle(KEY, h) for h in (current, other, older)]
    assert entries[0] == {
        "id": session_handle(KEY, current),
        "created": iso(NOW - 100),
        "last_seen": iso(NOW),  # the request that lists is the current session's use
        "user_agent": "Chrome",
        "client_ip": "198.51.100.4",
        "current": True,
    }
    assert entries[1]["last_seen"] == iso(NOW - 60) and entries[1]["client_ip"] == "203.0.113.9"
    assert entries[2]["last_seen"] == iso(NOW - 900) and entries[2]["client_ip"] is None
    text = repr(entries)
    for h in (current, other, older):
        assert h not in text and h[:12] not in text
    assert "secret" not in text and "alice" not in text  # no token, and no need for the sub


def test_iso_is_utc_to_the_second() -> None:
    assert iso(NOW) == "2027-01-15T08:00:00+00:00"
    assert iso(NOW + 0.9) == "2027-01-15T08:00:00+00:00"


# --- the operator's view --------------------------------------------------------------------
def test_admin_rows_are_the_cli_rows_most_recent_first() -> None:
    a, b = session_hash("a"), session_hash("b")
    rows = admin_rows(
        [Listed(a, session("alice", ua="x"), IDLE - 300), Listed(b, session("bob"), IDLE - 5)],
        now=NOW,
        idle_timeout=IDLE,
        frontend="default",
    )
    assert [set(r) for r in rows] == [CLI_FIELDS] * 2
    assert [r["session"] for r in rows] == [b, a]
    assert rows[1] == {
        "session": a,
        "sub": "alice",
        "created": iso(NOW - 3600),
        "last_seen": iso(NOW - 300),
        "expires": iso(NOW + IDLE - 300),
        "user_agent": "x",
        "frontend": "default",
    }
    assert "secret" not in repr(rows)


# --- the record keeps the client address ---------------------------------------------------
@pytest.mark.parametrize("ip", ["", "127.0.0.1", "203.0.113.254", "2001:db8:85a3::8a2e:370:7334"])
def test_the_record_keeps_the_client_address(ip: str) -> None:
    s = session(ip=ip)
    assert decode_session(encode_session(s)) == s
    explicit = dataclasses.replace(s, claims={"sub": "alice", "name": "A"})  # sub/sid/claims stored
    assert decode_session(encode_session(explicit)) == explicit
    # with routes' own tokens (a list in the values) too: told apart from the address
    narrowed = TokenSet(access_token="route-access", expires_at=NOW + 60, scope="orders")
    routes = dataclasses.replace(s, route_tokens={"aud:orders": narrowed})
    assert decode_session(encode_session(routes)) == routes
    for key in ("k" * 43, None):
        dpop = dataclasses.replace(s, dpop_key=key, user_agent="@ua")
        assert decode_session(encode_session(dpop)) == dpop


@pytest.mark.parametrize("ip", ["", "203.0.113.254", "@odd"])
@pytest.mark.parametrize("ua", ["ua", "@ua"])
def test_the_address_and_a_dpop_key_are_told_apart(ip: str, ua: str) -> None:
    """Both are optional trailing strings: the address is the marked one; a user agent
    that starts with the mark is never taken for it."""
    for dpop_key in (None, "k" * 43):
        for s in (session(ip=ip, ua=ua), dataclasses.replace(session(ip=ip, ua=ua), claims={})):
            s = dataclasses.replace(s, dpop_key=dpop_key)
            assert decode_session(encode_session(s)) == s


@pytest.mark.parametrize("ip", ["", "203.0.113.254"])
def test_a_login_record_keeps_the_client_address(ip: str) -> None:
    """sub, sid and claims derived from the ID token (the common record), with and
    without routes' own tokens."""
    rsa = RSAKey.generate_key(2048, parameters={"kid": "k"})
    s = dataclasses.replace(login_session(dev_tokens(rsa)), client_ip=ip)
    assert decode_session(encode_session(s)) == s
    narrowed = TokenSet(access_token="route-access", expires_at=NOW + 60, scope="orders")
    routes = dataclasses.replace(s, route_tokens={"aud:orders": narrowed})
    assert decode_session(encode_session(routes)) == routes
    for key in ("k" * 43, None):
        dpop = dataclasses.replace(s, dpop_key=key, user_agent="@ua")
        assert decode_session(encode_session(dpop)) == dpop


def test_a_record_without_an_address_is_as_small_as_before_and_one_with_it_close() -> None:
    """Without an address a record keeps the dictionary templates' seven values (the
    768-byte class test of test_records holds); an address costs its own bytes plus
    eight for the eighth value, never more than the next Redis size class (896)."""
    rsa = RSAKey.generate_key(2048, parameters={"kid": "9aeed9c97ef3874a"})
    keys = KeyRing(["k" * 32])
    for user in ("bench-user", "someone.with.a.longer.name"):
        s = login_session(dev_tokens(rsa, user))
        bare = len(keys.seal(encode_session(s), aad=b"h"))
        for ip in ("127.0.0.1", "203.0.113.254", "2001:db8:85a3::8a2e:370:7334"):
            sealed = len(keys.seal(encode_session(dataclasses.replace(s, client_ip=ip)), aad=b"h"))
            assert bare < sealed <= bare + 8 + len(ip) + 1, (user, ip)
            assert sealed <= 890
