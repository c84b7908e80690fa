"""LiveSessions: the in-process bus between workers, EndScope (cancels its block when
the session ends, never swallows an outside cancellation), the watch at a session's
predicted end, and SessionService.end announcing an ended session once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from bff.session.bus import MemoryBus
from bff.session.events import SessionEnded
from bff.session.live import LiveSessions, listen
from bff.store import IndexEntry
from bff.store.memory import MemoryStore
from bff.tokens.records import TokenSet
from tests.integration.proxy_env import session_service

pytestmark = pytest.mark.anyio
HASH = "0123456789abcdef0123456789abcdef"


class Conn:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def end(self, reason: str) -> None:
        self.reasons.append(reason)


async def make_session(store: MemoryStore, ttl: int = 600) -> None:
    await store.create_session(
        HASH, b"blob", ttl=ttl, index=IndexEntry("alice", None, int(time.time()) + ttl)
    )


@contextlib.asynccontextmanager
async def two_workers() -> AsyncIterator[tuple[LiveSessions, LiveSessions]]:
    """Two workers' hubs on one in-process bus, the second listening; a live session."""
    bus, store = MemoryBus(), MemoryStore()
    await make_session(store)
    here = LiveSessions(bus, store=store, clock=time.time)
    there = LiveSessions(bus, store=store, clock=time.time)
    listening = asyncio.create_task(there.run())
    await asyncio.sleep(0)
    try:
        yield here, there
    finally:
        listening.cancel()
        here.close()
        there.close()
        await bus.aclose()


async def test_publish_reaches_every_worker_on_the_bus() -> None:
    async with two_workers() as (here, there):
        a, b = Conn(), Conn()
        here.attach(HASH, time.time() + 600, a)
        attachment = there.attach(HASH, time.time() + 600, b)
        await here.publish(SessionEnded(HASH, "revoke"))
        assert (a.reasons, b.reasons) == (["revoke"], ["revoke"])
        assert len(here) == len(there) == 0
        attachment.detach()  # after the end: harmless


async def test_end_scope_cancels_its_block_and_says_why() -> None:
    store = MemoryStore()
    await make_session(store)
    live = LiveSessions(MemoryBus(), store=store, clock=time.time)
    reached = False
    async with live.ending(HASH, time.time() + 600) as scope:
        asyncio.get_running_loop().call_later(0.05, live.deliver, SessionEnded(HASH, "logout"))
        await asyncio.sleep(5)
        reached = True
    assert (scope.reason, reached) == ("logout", False)
    assert len(live) == 0
    async with live.ending(HASH, time.time() + 600) as quiet:
        await asyncio.sleep(0)
    assert quiet.reason is None
    live.deliver(SessionEnded(HASH, "logout"))  # after its block: nobody is cancelled
    await asyncio.sleep(0.01)


async def test_an_outside_cancellation_is_never_swallowed() -> None:
    store = MemoryStore()
    await make_session(store)
    live = LiveSessions(MemoryBus(), store=store, clock=time.time)

    async def hold() -> None:
        async with live.ending(HASH, time.time() + 600):
            await asyncio.sleep(5)

    task = asyncio.create_task(hold())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_watch_ends_a_connection_when_the_session_idles_out() -> None:
    store = MemoryStore()
    await make_session(store, ttl=1)
    live = LiveSessions(MemoryBus(), store=store, clock=time.time, window=5)
    conn, expiring = Conn(), []
    started = time.monotonic()
    live.attach(HASH, time.time() + 600, conn, expiring=expiring.append)
    for _ in range(60):
        if conn.reasons:
            break
        await asyncio.sleep(0.05)
    assert conn.reasons == ["expired"]
    assert expiring == [1]  # within the window from the start: told once
    assert time.monotonic() - started < 2.5


async def test_session_service_end_announces_once_with_the_reason() -> None:
    store = MemoryStore()
    bus = MemoryBus()
    live = LiveSessions(bus, store=store, clock=time.time)
    sessions = session_service(store, events=live)
    tokens = TokenSet(access_token="a", expires_at=None, refresh_token="r")
    ref, session = await sessions.create(tokens=tokens, claims={"sub": "alice"}, user_agent="t")
    conn = Conn()
    live.attach(ref.hash, session.expires_at, conn)
    assert await sessions.end(ref.hash, session, "invalid_grant")
    assert not await sessions.end(ref.hash, session, "logout")  # gone: nothing announced
    assert conn.reasons == ["invalid_grant"]
    live.close()


async def test_one_subscription_for_every_frontends_hub() -> None:
    """`listen`: one subscription feeds several hubs (a frontend each); an event ends the
    connections of its session hash only, in whichever hub holds them."""
    bus, store = MemoryBus(), MemoryStore()
    other = "fedcba9876543210fedcba9876543210"  # another frontend's session hash
    await make_session(store)
    await store.create_session(
        other, b"blob", ttl=600, index=IndexEntry("bob", None, int(time.time()) + 600)
    )
    hubs = [LiveSessions(bus, store=store, clock=time.time, window=w) for w in (60, 120)]
    listening = asyncio.create_task(listen(bus, hubs))
    await asyncio.sleep(0)
    assert len(bus._listeners) == 1
    mine, theirs = Conn(), Conn()
    hubs[0].attach(HASH, time.time() + 600, mine)
    hubs[1].attach(other, time.time() + 600, theirs)
    await asyncio.sleep(0.05)  # the watches read the TTLs: both sessions live on
    await bus.publish(SessionEnded(HASH, "logout"))  # as from another worker
    assert (mine.reasons, theirs.reasons) == (["logout"], [])
    assert (len(hubs[0]), len(hubs[1])) == (0, 1)
    await hubs[1].publish(SessionEnded(other, "revoke"))
    assert theirs.reasons == ["revoke"]
    listening.cancel()
    for hub in hubs:
        hub.close()
    await bus.aclose()


async def test_a_released_refresh_lock_wakes_the_waiters_of_every_worker() -> None:
    """`refresh_released` wakes this worker's waiters at once and, through the bus, the
    other workers'; an end wakes them too; neither closes a connection on a release."""
    async with two_workers() as (here, there):
        conn = Conn()
        there.attach(HASH, time.time() + 600, conn)
        with here.refresh_watch(HASH) as mine, there.refresh_watch(HASH) as theirs:
            with there.refresh_watch("f" * 32) as unrelated:
                here.refresh_released(HASH)
                assert mine.is_set()  # at once, before any publish
                async with asyncio.timeout(1):
                    await theirs.wait()  # through the bus
                assert not unrelated.is_set()
            assert conn.reasons == []
            theirs.clear()
            await here.publish(SessionEnded(HASH, "logout"))
            assert theirs.is_set() and conn.reasons == ["logout"]


async def test_sessions_without_an_event_channel_are_never_woken() -> None:
    """A session service without events (tests, tools): its refresh waiters poll."""
    sessions = session_service(MemoryStore())
    with sessions.refresh_watch(HASH) as released:
        sessions.refresh_released(HASH)
        assert not released.is_set()
