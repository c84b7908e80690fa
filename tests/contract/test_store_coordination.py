"""The session store contract, continued: login transactions, locks, the replay cache,
bounded pending groups, copies of bytes, listing and argument checks (every implementation,
see conftest.py)."""

from __future__ import annotations

import uuid

import pytest

from .conftest import H1, H2, Harness, entry, listed

pytestmark = pytest.mark.anyio


# --- login transactions -----------------------------------------------------------------
async def test_login_state_is_single_use(harness: Harness) -> None:
    s = harness.store
    state = "st-" + uuid.uuid4().hex + "}{*"
    await s.put_login_state(state, b"pkce+nonce", ttl=600)
    await s.put_login_state("other", b"other", ttl=600)
    assert await s.take_login_state(state) == b"pkce+nonce"
    assert await s.take_login_state(state) is None
    assert await s.take_login_state("never-put") is None
    assert await s.take_login_state("other") == b"other"
    if harness.raw is not None:
        assert await harness.raw_keys() == []


async def test_login_state_expires(harness: Harness) -> None:
    s = harness.store
    await s.put_login_state("s1", b"x", ttl=1)
    await harness.advance(1.2)
    assert await s.take_login_state("s1") is None


# --- coordination -----------------------------------------------------------------------
async def test_lock_is_exclusive_and_released_only_by_its_owner(harness: Harness) -> None:
    s = harness.store
    token = await s.acquire_lock(H1, lease_ms=60_000)
    assert token
    assert await s.acquire_lock(H1, lease_ms=60_000) is None
    other = await s.acquire_lock(H2, lease_ms=60_000)  # locks are per session
    assert other
    assert other != token
    assert await s.release_lock(H1, "not-the-token") is False
    assert await s.release_lock(H1, other) is False
    assert await s.acquire_lock(H1, lease_ms=60_000) is None  # still held
    assert await s.release_lock(H1, token) is True
    assert await s.release_lock(H1, token) is False
    assert await s.acquire_lock(H1, lease_ms=60_000) is not None


async def test_lock_lease_expires(harness: Harness) -> None:
    s = harness.store
    first = await s.acquire_lock(H1, lease_ms=200)
    assert first
    await harness.advance(0.3)
    second = await s.acquire_lock(H1, lease_ms=60_000)
    assert second
    assert await s.release_lock(H1, first) is False  # a lapsed owner frees nobody's lock
    assert await s.acquire_lock(H1, lease_ms=60_000) is None
    assert await s.release_lock(H1, second) is True


async def test_remember_once(harness: Harness) -> None:
    s = harness.store
    assert await s.remember_once("jti-1", ttl=1) is True
    assert await s.remember_once("jti-1", ttl=1) is False
    assert await s.remember_once("jti-2}*", ttl=100) is True
    await harness.advance(1.2)
    assert await s.remember_once("jti-1", ttl=100) is True
    assert await s.remember_once("jti-2}*", ttl=100) is False


# --- bytes, listing, arguments ----------------------------------------------------------
async def test_pending_group_is_bounded_and_says_when_to_retry(harness: Harness) -> None:
    """Issue 11 defect 3: pending logins per client address / in all are bounded."""
    s = harness.store
    for i in range(3):
        assert await s.add_pending("client:203.0.113.7", f"state-{i}", limit=3, ttl=60) == 0
    retry = await s.add_pending("client:203.0.113.7", "state-3", limit=3, ttl=60)
    assert 1 <= retry <= 60
    assert await s.add_pending("client:198.51.100.1}*", "state-3", limit=3, ttl=60) == 0
    assert await s.add_pending("client:203.0.113.7", "state-0", limit=3, ttl=60) == 0  # again
    assert await s.remove_pending("client:203.0.113.7", "state-1") is True
    assert await s.remove_pending("client:203.0.113.7", "state-1") is False
    assert await s.add_pending("client:203.0.113.7", "state-3", limit=3, ttl=60) == 0


async def test_pending_entries_expire(harness: Harness) -> None:
    s = harness.store
    assert await s.add_pending("g", "a", limit=1, ttl=1) == 0
    assert await s.add_pending("g", "b", limit=1, ttl=1) >= 1
    await harness.advance(1.2)
    assert await s.remove_pending("g", "a") is False  # expired: no longer counted
    assert await s.add_pending("g", "b", limit=1, ttl=1) == 0


async def test_pending_evicting_keeps_the_newest(harness: Harness) -> None:
    s = harness.store
    for i in range(5):
        assert await s.add_pending("browser", f"s{i}", limit=3, ttl=60, evict_oldest=True) == 0
    assert [await s.remove_pending("browser", f"s{i}") for i in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]


async def test_bytes_are_copied_never_shared(harness: Harness) -> None:
    s = harness.store
    blob = bytearray(b"original")
    await s.create_session(H1, blob, ttl=100, index=entry(harness))  # type: ignore[arg-type]
    blob[:] = b"mutated!"
    first = await s.load_session(H1, ttl=100)
    second = await s.load_session(H1, ttl=100)
    assert first == second == b"original"
    assert type(first) is bytes
    assert first is not second
    new = bytearray(b"updated")
    assert await s.update_session(H1, new, ttl=100)  # type: ignore[arg-type]
    new[:] = b"changed"
    assert await s.load_session(H1, ttl=100) == b"updated"
    state_blob = bytearray(b"login")
    await s.put_login_state("st", state_blob, ttl=100)  # type: ignore[arg-type]
    state_blob[:] = b"xxxxx"
    assert await s.take_login_state("st") == b"login"


async def test_all_sessions_lists_exactly_the_live_ones(harness: Harness) -> None:
    s = harness.store
    hashes = [f"{i:064x}" for i in range(5)]
    for h in hashes:
        await s.create_session(h, b"x", ttl=100, index=entry(harness))
    await s.create_session(H1, b"x", ttl=1, index=entry(harness))
    await s.delete_session(hashes[0], index=None)
    await s.acquire_lock(hashes[1], lease_ms=60_000)
    await s.acquire_lock(H2, lease_ms=60_000)  # a lock without a session is no session
    await s.put_login_state("state", b"x", ttl=100)
    await s.remember_once("jti", ttl=100)
    await harness.advance(1.2)
    assert await listed(s) == set(hashes[1:])


async def test_invalid_arguments_are_refused(harness: Harness) -> None:
    s = harness.store
    for bad in ("", "a}b", "a*", "a:b", "x" * 129):
        with pytest.raises(ValueError):
            await s.load_session(bad, ttl=10)
    with pytest.raises(ValueError):
        await s.create_session(H1, b"x", ttl=0, index=entry(harness))
    with pytest.raises(ValueError):
        await s.load_session(H1, ttl=-1)
    with pytest.raises(ValueError):
        await s.acquire_lock(H1, lease_ms=0)
