"""The session store contract, sessions and their index, run against every implementation
(see conftest.py); the rest of the contract is in test_store_coordination.py, the Redis
store's own promises in test_redis_store.py."""

from __future__ import annotations

import pytest

from bff.store import SessionStore

from .conftest import H1, H2, H3, Harness, entry, index_buckets, keys_of, listed

pytestmark = pytest.mark.anyio


# --- sessions ---------------------------------------------------------------------------
async def test_conforms_to_protocol(harness: Harness) -> None:
    assert isinstance(harness.store, SessionStore)
    await harness.store.ping()


async def test_create_load_round_trip(harness: Harness) -> None:
    s = harness.store
    await s.create_session(H1, b"\x00blob\xff", ttl=100, index=entry(harness))
    loaded = await s.load_session(H1, ttl=100)
    assert loaded == b"\x00blob\xff"
    assert type(loaded) is bytes
    assert await s.load_session(H2, ttl=100) is None
    assert await s.session_ttl(H2) is None
    assert await listed(s) == {H1}  # a miss creates nothing


async def test_load_slides_the_ttl(harness: Harness) -> None:
    s = harness.store
    await s.create_session(H1, b"x", ttl=5, index=entry(harness))
    assert await s.session_ttl(H1) in (4, 5)
    assert await s.load_session(H1, ttl=50) == b"x"
    assert await s.session_ttl(H1) in (49, 50)
    if harness.raw is not None:  # ask Redis itself, not the store
        assert 49_000 <= await harness.raw.pttl(f"{harness.prefix}:{{{H1}}}:s") <= 50_000
    if harness.fast_clock:
        await harness.advance(40)  # well past the first TTL
        assert await s.load_session(H1, ttl=50) == b"x"
        await harness.advance(50.5)
        assert await s.load_session(H1, ttl=50) is None


async def test_expiry_makes_the_session_absent(harness: Harness) -> None:
    s = harness.store
    await s.create_session(H1, b"x", ttl=1, index=entry(harness))
    await s.create_session(H2, b"y", ttl=100, index=entry(harness))
    await harness.advance(1.2)
    assert await s.load_session(H1, ttl=100) is None
    assert await s.session_ttl(H1) is None
    assert await s.update_session(H1, b"again", ttl=100) is False
    assert await s.load_session(H1, ttl=100) is None
    assert await listed(s) == {H2}
    assert await s.sessions_by_sub("user-1") == [H2]


async def test_update_only_while_the_session_exists(harness: Harness) -> None:
    s = harness.store
    assert await s.update_session(H1, b"never", ttl=100) is False
    assert await s.load_session(H1, ttl=100) is None
    await s.create_session(H1, b"v1", ttl=10, index=entry(harness))
    assert await s.update_session(H1, b"v2", ttl=80) is True
    assert await s.session_ttl(H1) in (79, 80)
    assert await s.load_session(H1, ttl=80) == b"v2"
    assert await s.delete_session(H1, index=entry(harness)) is True
    assert await s.update_session(H1, b"v3", ttl=80) is False  # a logout is never undone
    assert await s.load_session(H1, ttl=80) is None
    if harness.raw is not None:
        assert await keys_of(harness, H1) == []


async def test_delete_removes_every_trace(harness: Harness) -> None:
    s = harness.store
    ix = entry(harness, sub="alice", sid="sid-1")
    await s.create_session(H1, b"x", ttl=100, index=ix)
    await s.create_session(H2, b"y", ttl=100, index=entry(harness, sub="alice", sid="sid-2"))
    assert await s.acquire_lock(H1, lease_ms=60_000) is not None
    assert await s.delete_session(H1, index=ix) is True
    assert await s.delete_session(H1, index=ix) is False
    assert await s.load_session(H1, ttl=100) is None
    assert await s.sessions_by_sub("alice") == [H2]
    assert await s.sessions_by_idp_sid("sid-1") == []
    assert await listed(s) == {H2}
    token = await s.acquire_lock(H1, lease_ms=60_000)  # the lock went with the session
    assert token is not None
    if harness.raw is not None:
        await s.release_lock(H1, token)
        assert await keys_of(harness, H1) == []  # session and lock gone
        buckets = await index_buckets(harness)
        assert buckets  # H2's entries
        assert all(H1 not in hashes for hashes in buckets.values())


async def test_delete_without_index_leaves_no_live_entry(harness: Harness) -> None:
    s = harness.store
    await s.create_session(H1, b"x", ttl=100, index=entry(harness))
    assert await s.delete_session(H1, index=None) is True
    assert await s.sessions_by_sub("user-1") == []
    assert await s.sessions_by_idp_sid("idp-sid-1") == []
    if harness.raw is not None:  # the lookups pruned the stale members
        assert await keys_of(harness, H1) == []
        assert await harness.raw_keys() == []


async def test_indexes_return_only_live_sessions(harness: Harness) -> None:
    s = harness.store
    # H1: its absolute lifetime ends; H2: idles out though its lifetime goes on; H3: lives.
    await s.create_session(H1, b"1", ttl=1, index=entry(harness, life=1))
    await s.create_session(H2, b"2", ttl=1, index=entry(harness, life=1000))
    await s.create_session(H3, b"3", ttl=100, index=entry(harness, life=3000))
    assert sorted(await s.sessions_by_sub("user-1")) == [H1, H2, H3]
    assert sorted(await s.sessions_by_idp_sid("idp-sid-1")) == [H1, H2, H3]
    await harness.advance(1.2)
    assert await s.sessions_by_sub("user-1") == [H3]
    assert await s.sessions_by_idp_sid("idp-sid-1") == [H3]
    assert await s.sessions_by_sub("someone-else") == []
    if harness.raw is not None:
        buckets = await index_buckets(harness)
        assert buckets
        for key, hashes in buckets.items():
            assert set(hashes) == {H3}  # the others were pruned
            # a bucket lives as long as its longest-lived member, no longer
            assert 2990 <= await harness.raw.ttl(key) <= 3000


async def test_index_keys_take_any_provider_string(harness: Harness) -> None:
    s = harness.store
    odd = "a}{b:*?[x]\\ \n\u00fc"
    await s.create_session(H1, b"1", ttl=100, index=entry(harness, sub=odd, sid=odd))
    await s.create_session(H2, b"2", ttl=100, index=entry(harness, sub="A", sid=None))
    await s.create_session(H3, b"3", ttl=100, index=entry(harness, sub="a", sid=""))
    assert await s.sessions_by_sub(odd) == [H1]
    assert await s.sessions_by_idp_sid(odd) == [H1]
    assert await s.sessions_by_sub("A") == [H2]
    assert await s.sessions_by_sub("a") == [H3]
    assert await s.sessions_by_idp_sid("") == [H3]
    assert await s.sessions_by_sub("a*") == []
    if harness.raw is not None:
        for key in await harness.raw_keys():
            assert odd not in key
            assert key.count("{") == key.count("}") == 1  # exactly one hash tag each


async def test_index_keeps_users_and_sessions_apart(harness: Harness) -> None:
    s = harness.store
    hashes = [f"{i:032x}" for i in range(1, 6)]
    await s.create_session(hashes[0], b"a", ttl=100, index=entry(harness, "alice", "sid-a"))
    await s.create_session(hashes[1], b"a", ttl=100, index=entry(harness, "alice", "sid-a"))
    await s.create_session(hashes[2], b"a", ttl=100, index=entry(harness, "alice", None))
    await s.create_session(hashes[3], b"b", ttl=100, index=entry(harness, "bob", "sid-b"))
    await s.create_session(hashes[4], b"b", ttl=100, index=entry(harness, "sid-a", "alice"))
    assert sorted(await s.sessions_by_sub("alice")) == hashes[:3]
    assert sorted(await s.sessions_by_idp_sid("sid-a")) == hashes[:2]
    assert await s.sessions_by_sub("bob") == [hashes[3]]
    assert await s.sessions_by_sub("sid-a") == [hashes[4]]  # a sub is not a sid
    assert await s.sessions_by_idp_sid("alice") == [hashes[4]]
    assert await s.delete_session(hashes[1], index=entry(harness, "alice", "sid-a"))
    assert sorted(await s.sessions_by_sub("alice")) == [hashes[0], hashes[2]]
    assert await s.sessions_by_idp_sid("sid-a") == [hashes[0]]
    for h, sub, sid in (
        (hashes[0], "alice", "sid-a"),
        (hashes[2], "alice", None),
        (hashes[3], "bob", "sid-b"),
        (hashes[4], "sid-a", "alice"),
    ):
        assert await s.delete_session(h, index=entry(harness, sub, sid))
    assert await s.sessions_by_sub("alice") == []
    assert await s.sessions_by_idp_sid("sid-b") == []
    if harness.raw is not None:
        assert await index_buckets(harness) == {}  # every entry went with its session


async def test_index_entry_past_its_absolute_expiry_is_never_returned(harness: Harness) -> None:
    s = harness.store
    # The session key outlives its recorded absolute expiry here: the index must still
    # stop at that expiry (and it goes on pruning expired entries on every write).
    await s.create_session(H1, b"1", ttl=100, index=entry(harness, "carol", "sid-c", life=1))
    await s.create_session(H2, b"2", ttl=100, index=entry(harness, "carol", "sid-c", life=100))
    await harness.advance(1.2)
    assert await s.load_session(H1, ttl=100) == b"1"
    assert await s.sessions_by_sub("carol") == [H2]
    assert await s.sessions_by_idp_sid("sid-c") == [H2]
    if harness.raw is not None:
        assert {h for hs in (await index_buckets(harness)).values() for h in hs} == {H2}
        await s.create_session(H3, b"3", ttl=100, index=entry(harness, "dave", None, life=1))
        await harness.advance(1.2)
        await s.create_session(H1 + "0", b"4", ttl=100, index=entry(harness, "dave", None))
        buckets = await index_buckets(harness)  # the write pruned dave's expired entry
        assert H3 not in {h for hs in buckets.values() for h in hs}
