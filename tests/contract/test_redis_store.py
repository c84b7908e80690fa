"""The Redis store's own promises, beyond the contract: failures become StoreUnavailable
quickly, a command is never re-sent (on either hot-path lane), loading a session costs
exactly one command, and index entries stay small."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
import redis.asyncio
from redis.asyncio.connection import ConnectionPool

from bff.errors import StoreUnavailable
from bff.store import IndexEntry
from bff.store.redis import RedisStore
from bff.store.redis_keys import IndexSlot
from bff.store.redis_lane import LaneKind
from bff.tokens.records import TokenSet
from tests.fake_idp import SECRET_KEY

from .conftest import H1, H2, Harness, listed

pytestmark = pytest.mark.anyio


# --- Redis only: failure, retries, round trips -----------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed now: nothing listens there


async def test_unreachable_redis_raises_store_unavailable_promptly() -> None:
    store = RedisStore.from_url(f"redis://:s3cret@127.0.0.1:{_free_port()}/0", socket_timeout=1.0)
    ix = IndexEntry(sub="alice", idp_sid="sid", expires_at=int(time.time()) + 100)
    calls: list[Any] = [
        lambda: store.create_session(H1, b"x", ttl=10, index=ix),
        lambda: store.load_session(H1, ttl=10),
        lambda: store.update_session(H1, b"x", ttl=10),
        lambda: store.delete_session(H1, index=ix),
        lambda: store.session_ttl(H1),
        lambda: store.sessions_by_sub("alice"),
        lambda: store.sessions_by_idp_sid("sid"),
        lambda: listed(store),
        lambda: store.put_login_state("state-value", b"x", ttl=10),
        lambda: store.take_login_state("state-value"),
        lambda: store.acquire_lock(H1, lease_ms=1000),
        lambda: store.release_lock(H1, "lock-token"),
        lambda: store.remember_once("jti-value", ttl=10),
        lambda: store.ping(),
    ]
    try:
        for call in calls:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as caught:
                await call()
            assert time.monotonic() - started < 5
            text = str(caught.value)
            for secret in (H1, "alice", "state-value", "lock-token", "jti-value", "s3cret"):
                assert secret not in text
    finally:
        await store.aclose()


async def test_unix_socket_urls_are_accepted_and_failures_mapped(tmp_path: Any) -> None:
    store = RedisStore.from_url(f"unix://{tmp_path}/absent.sock", socket_timeout=1.0)
    try:
        with pytest.raises(StoreUnavailable):
            await store.ping()
    finally:
        await store.aclose()


def test_from_url_refuses_other_schemes() -> None:
    with pytest.raises(ValueError) as caught:
        RedisStore.from_url("http://user:s3cret@localhost:6379")
    assert "s3cret" not in str(caught.value)


def test_refuses_a_decoding_client() -> None:
    with pytest.raises(ValueError):
        RedisStore(redis.asyncio.Redis(decode_responses=True))


async def _silent_server(swallow: set[bytes], seen: list[bytes]) -> asyncio.Server:
    """A fake Redis that answers the handshake and never replies to commands in `swallow`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                args = []
                for _ in range(int(line[1:])):
                    size = int((await reader.readline())[1:])
                    args.append((await reader.readexactly(size + 2))[:-2])
                name = args[0].upper()
                seen.append(name)
                if name in swallow:
                    continue
                reply = {b"HELLO": b"%1\r\n$5\r\nproto\r\n:3\r\n", b"PING": b"+PONG\r\n"}
                writer.write(reply.get(name, b"+OK\r\n"))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.parametrize("lane", ["lean", "plain"])
async def test_a_timed_out_command_is_never_resent(lane: LaneKind) -> None:
    seen: list[bytes] = []
    server = await _silent_server({b"GETEX", b"GETDEL", b"SET"}, seen)
    port = server.sockets[0].getsockname()[1]
    store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=0.5, lane=lane)
    try:
        for call in (
            lambda: store.load_session(H1, ttl=10),
            lambda: store.take_login_state("state"),
            lambda: store.remember_once("jti", ttl=10),
        ):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await call()
            assert time.monotonic() - started < 2
        await anyio.sleep(0.3)
        assert [seen.count(c) for c in (b"GETEX", b"GETDEL", b"SET")] == [1, 1, 1]
    finally:
        await store.aclose()
        server.close()
        await server.wait_closed()


async def _total_calls(raw: redis.asyncio.Redis) -> tuple[int, int]:
    stats: dict[str, Any] = await raw.info("commandstats")
    total = sum(int(v["calls"]) for v in stats.values())
    return total, int(stats.get("cmdstat_getex", {}).get("calls", 0))


@pytest.fixture
async def counting_store(
    redis_harness: Harness, redis_url: str
) -> AsyncIterator[tuple[RedisStore, dict[str, int]]]:
    """A RedisStore whose connections count what they send and read."""
    counts = {"sent": 0, "read": 0}
    pool = ConnectionPool.from_url(redis_url)
    base: Any = pool.connection_class

    class Counting(base):  # type: ignore[misc]
        async def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
            counts["sent"] += 1
            await super().send_packed_command(*args, **kwargs)

        async def read_response(self, *args: Any, **kwargs: Any) -> Any:
            counts["read"] += 1
            return await super().read_response(*args, **kwargs)

    pool.connection_class = Counting
    store = RedisStore(redis.asyncio.Redis.from_pool(pool), prefix=redis_harness.prefix)
    try:
        yield store, counts
    finally:
        await store.aclose()


@pytest.mark.redis
async def test_load_session_is_one_command(
    redis_harness: Harness, counting_store: tuple[RedisStore, dict[str, int]]
) -> None:
    store, counts = counting_store
    raw = redis_harness.raw
    assert raw is not None
    ix = IndexEntry(sub="u", idp_sid=None, expires_at=int(time.time()) + 100)
    await store.create_session(H1, b"x", ttl=100, index=ix)
    await raw.ping()  # both connections are set up before anything is measured
    for session_hash in (H1, H2):  # a hit and a miss
        counts.update(sent=0, read=0)
        await store.load_session(session_hash, ttl=100)
        assert counts == {"sent": 1, "read": 1}  # one round trip, one reply

    # The server's view: between two INFOs, a quiet server counts the first INFO and
    # our GETEX. The Redis is shared, so look for one quiet window among several tries.
    deltas = []
    for _ in range(30):
        total_before, getex_before = await _total_calls(raw)
        await store.load_session(H1, ttl=100)
        total_after, getex_after = await _total_calls(raw)
        deltas.append((total_after - total_before, getex_after - getex_before))
        if deltas[-1] == (2, 1):
            break
    assert deltas[-1] == (2, 1), deltas


@pytest.mark.redis
async def test_create_session_is_one_round_trip(
    redis_harness: Harness, counting_store: tuple[RedisStore, dict[str, int]]
) -> None:
    store, counts = counting_store
    ix = IndexEntry(sub="u", idp_sid="s", expires_at=int(time.time()) + 100)
    await store.create_session(H1, b"warm-up", ttl=100, index=ix)  # connection set up
    counts.update(sent=0, read=0)
    await store.create_session(H2, b"x", ttl=100, index=ix)
    assert counts["sent"] == 1  # one pipeline: the SET and every index command together
    assert await store.sessions_by_idp_sid("s") in ([H1, H2], [H2, H1])


@pytest.mark.redis
async def test_index_entries_are_small_and_sessions_fit_their_size_class(
    redis_harness: Harness, redis_url: str
) -> None:
    """A session of the usual size (a sealed format-2 record of the development provider's
    tokens is at most 762 bytes) plus its two index entries stays well under 1 KiB."""
    raw = redis_harness.raw
    assert raw is not None
    prefix = "t" + uuid.uuid4().hex[:2]  # as long as "bff": key names count too
    store = RedisStore.from_url(redis_url, prefix=prefix)
    target = IndexSlot("sub", "user-0").bucket
    subs = []  # users whose entries share one bucket (1 in 32,768)
    for i in range(4_000_000):
        if IndexSlot("sub", f"user-{i}").bucket == target:
            subs.append(f"user-{i}")
            if len(subs) == 61:  # what a bucket holds on average at 1,000,000 sessions
                break
    expires_at = int(time.time()) + 3600
    hashes = [f"{i + 1:032x}" for i in range(len(subs))]
    try:
        for session_hash, sub in zip(hashes, subs, strict=True):
            ix = IndexEntry(sub=sub, idp_sid=None, expires_at=expires_at)
            await store.create_session(session_hash, b"v" * 762, ttl=100, index=ix)
        bucket = f"{prefix}:ix:{{{target:04x}}}"
        assert await raw.object("encoding", bucket) == b"listpack"
        per_entry = (await raw.memory_usage(bucket, samples=0) or 0) / len(subs)
        assert per_entry < 40  # a 24-byte member and its score, in a shared set
        session = await raw.memory_usage(f"{prefix}:{{{hashes[0]}}}:s", samples=0) or 0
        assert session <= 856  # the 768-byte allocation class, key and object headers
        # + the key's expiry entry and hash-table slots (about 60 bytes, not in MEMORY USAGE)
        assert session + 64 + 2 * per_entry < 1024
    finally:
        await raw.delete(f"{prefix}:ix:{{{target:04x}}}", *(f"{prefix}:{{{h}}}:s" for h in hashes))
        await store.aclose()


@pytest.mark.redis
async def test_entries_of_the_2048_bucket_layout_are_still_found_and_removed(
    redis_harness: Harness,
) -> None:
    """Releases before 32,768 buckets wrote index entries into 2,048: a deploy rolls over
    with those sessions live, so lookups (back-channel logout, admin revoke) still find
    them and ending one removes its entries."""
    raw, prefix, store = redis_harness.raw, redis_harness.prefix, redis_harness.store
    assert raw is not None
    expires_at = int(time.time()) + 3600
    old = IndexEntry(sub="carol", idp_sid="sid-old", expires_at=expires_at)
    await raw.set(f"{prefix}:{{{H1}}}:s", b"sealed", ex=100)  # as the old release did:
    for kind, value in (("sub", "carol"), ("sid", "sid-old")):
        slot = IndexSlot(kind, value)
        legacy = f"{prefix}:ix:{{{slot.bucket % 2048:03x}}}"
        await raw.zadd(legacy, {slot.member(H1): expires_at})
    new = IndexEntry(sub="carol", idp_sid="sid-new", expires_at=expires_at)
    await store.create_session(H2, b"sealed", ttl=100, index=new)
    assert sorted(await store.sessions_by_sub("carol")) == sorted([H1, H2])
    assert await store.sessions_by_idp_sid("sid-old") == [H1]
    assert await store.delete_session(H1, index=old)
    assert await store.sessions_by_sub("carol") == [H2]
    assert [k async for k in raw.scan_iter(match=f"{prefix}:ix:{{???}}")] == []


@pytest.mark.redis
async def test_during_a_rolling_upgrade_earlier_releases_find_the_new_sessions(
    redis_harness: Harness,
) -> None:
    """BFF_SESSION_RECORD_FORMAT=2 (an earlier release still runs): index entries go to
    the 2,048 buckets that release reads, so its back-channel logout and admin revoke find
    sessions this one creates; this one finds and removes them there too."""
    from bff.session.crypto import KeyRing
    from tests.integration.proxy_env import session_service

    raw, prefix, store = redis_harness.raw, redis_harness.prefix, redis_harness.store
    assert raw is not None
    upgrading = session_service(store, record_format=2)
    tokens = TokenSet(access_token="at", expires_at=int(time.time()) + 300)
    claims = {"sub": "dave", "sid": "sid-dave"}
    ref, session = await upgrading.create(tokens=tokens, claims=claims, user_agent="ua")
    for kind, value in (("sub", "dave"), ("sid", "sid-dave")):
        slot = IndexSlot(kind, value)
        # what the earlier release reads: its bucket name, its member form
        legacy = f"{prefix}:ix:{{{slot.bucket % 2048:03x}}}"
        assert await raw.zrange(legacy, 0, -1) == [slot.member(ref.hash)]
        assert not await raw.exists(f"{prefix}:ix:{{{slot.bucket:04x}}}")
    blob = await raw.get(f"{prefix}:{{{ref.hash}}}:s")
    assert KeyRing([SECRET_KEY]).open(blob, aad=ref.hash.encode())[:1] == b"\x02"
    assert await store.sessions_by_sub("dave") == [ref.hash]
    assert await store.sessions_by_idp_sid("sid-dave") == [ref.hash]
    assert await upgrading.delete(ref.hash, session)
    assert [k async for k in raw.scan_iter(match=f"{prefix}:ix:*")] == []
    # without the setting: the 32,768 buckets, which the earlier release never reads
    ref, _ = await session_service(store).create(tokens=tokens, claims=claims, user_agent="u")
    slot = IndexSlot("sub", "dave")
    assert await raw.zrange(f"{prefix}:ix:{{{slot.bucket:04x}}}", 0, -1) == [slot.member(ref.hash)]
    assert not await raw.exists(f"{prefix}:ix:{{{slot.bucket % 2048:03x}}}")
