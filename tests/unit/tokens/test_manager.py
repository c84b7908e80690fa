"""Refresh exactly once, on one instance and across instances sharing a real Redis."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from bff.answers import Kind
from bff.oidc.client import OidcClient
from bff.session.bus import MemoryBus
from bff.session.cookies import CookieSigner
from bff.session.crypto import KeyRing
from bff.session.events import EndPublisher
from bff.session.live import LiveSessions
from bff.session.service import SessionRef, SessionService
from bff.store import SessionStore
from bff.store.memory import MemoryStore
from bff.store.redis import RedisStore
from bff.tokens.manager import RECENT_MAX, RECENT_SECONDS, TokenManager
from bff.tokens.records import TokenSet
from bff.tokens.results import Bearer, NoToken, TokenFailure
from tests.fake_idp import CLIENT_ID, CLIENT_SECRET, ISSUER, SECRET_KEY, Clock, FakeIdp

pytestmark = pytest.mark.anyio


class Instance:
    """One BFF instance's refresh machinery: its own HTTP client, store client and locks."""

    def __init__(
        self, idp: FakeIdp, store: SessionStore, clock: Clock, events: EndPublisher | None = None
    ) -> None:
        self.http = idp.http()
        self.store = store
        keys = KeyRing([SECRET_KEY])
        self.sessions = SessionService(
            store=store,
            keys=keys,
            signer=CookieSigner(keys.signing_keys),
            idle_timeout=1800,
            max_lifetime=86400,
            clock=clock,
            events=events,
        )
        self.oidc = OidcClient(
            issuer=ISSUER,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            redirect_uri="http://localhost:8000/bff/callback",
            scopes="openid",
            resource=None,
            http=self.http,
            clock=clock,
        )
        self.tokens = TokenManager(
            sessions=self.sessions, oidc=self.oidc, clock=clock, refresh_skew=30
        )

    async def token(self, ref: SessionRef) -> Any:
        session = await self.sessions.load(ref)
        if session is None:
            return NoToken(Kind.NOT_AUTHENTICATED)
        return await self.tokens.access_token_for(ref, session)

    async def aclose(self) -> None:
        await self.http.aclose()


async def new_session(
    inst: Instance, idp: FakeIdp, clock: Clock, *, expires_in: int = 10
) -> SessionRef:
    idp.live_refresh.add("refresh-token-0-XYZ")
    tokens = TokenSet(
        access_token="access-token-0-XYZ",
        expires_at=int(clock.now) + expires_in,
        refresh_token="refresh-token-0-XYZ",
        id_token="id.token.x",
    )
    ref, _ = await inst.sessions.create(
        tokens=tokens, claims={"sub": "alice", "sid": "s1"}, user_agent="test"
    )
    return ref


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def redis_stores(redis_url: str) -> AsyncIterator[tuple[RedisStore, RedisStore, Any]]:
    prefix = f"bfftest-{uuid.uuid4().hex[:12]}"
    a, b = (
        RedisStore.from_url(redis_url, prefix=prefix),
        RedisStore.from_url(redis_url, prefix=prefix),
    )
    raw = aioredis.Redis.from_url(redis_url)
    yield a, b, (raw, prefix)
    keys = [k async for k in raw.scan_iter(match=f"{prefix}:*")]
    if keys:
        await raw.delete(*keys)
    await raw.aclose()
    await a.aclose()
    await b.aclose()


async def test_fresh_token_needs_no_provider(clock: Clock) -> None:
    idp = FakeIdp(clock=clock)
    inst = Instance(idp, MemoryStore(clock=clock), clock)
    ref = await new_session(inst, idp, clock, expires_in=300)
    result = await inst.token(ref)
    assert result == Bearer("access-token-0-XYZ")
    assert idp.refresh_grants == 0
    await inst.aclose()


async def test_50_concurrent_requests_one_refresh(clock: Clock) -> None:
    idp = FakeIdp(clock=clock)
    idp.token_delay = 0.05
    inst = Instance(idp, MemoryStore(clock=clock), clock)
    ref = await new_session(inst, idp, clock, expires_in=5)
    results = await asyncio.gather(*(inst.token(ref) for _ in range(50)))
    assert idp.refresh_grants == 1
    assert {r.token for r in results} == {"access-token-1-XYZ"}
    # later requests see the stored new token without asking the provider
    assert (await inst.token(ref)).token == "access-token-1-XYZ"
    assert idp.refresh_grants == 1
    assert idp.reused_refresh_tokens == []
    await inst.aclose()


async def test_two_instances_sharing_redis_refresh_once(clock: Clock, redis_stores: Any) -> None:
    store_a, store_b, _ = redis_stores
    idp = FakeIdp(clock=clock)
    idp.token_delay = 0.2
    a, b = Instance(idp, store_a, clock), Instance(idp, store_b, clock)
    ref = await new_session(a, idp, clock, expires_in=5)
    results = await asyncio.gather(*(inst.token(ref) for _ in range(25) for inst in (a, b)))
    assert idp.refresh_grants == 1, idp.token_requests
    assert idp.reused_refresh_tokens == []  # nobody presented the rotated token
    assert {getattr(r, "token", r) for r in results} == {"access-token-1-XYZ"}
    await a.aclose()
    await b.aclose()


async def test_the_other_instance_is_woken_by_the_release_not_its_poll(
    clock: Clock, redis_stores: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With polling slowed to 5 s, B's waiters still get A's new token right after A's
    grant: the release announced on the event channel wakes them."""
    import bff.tokens.refresh as tm

    monkeypatch.setattr(tm, "_POLL_START", 5.0)
    store_a, store_b, _ = redis_stores
    bus = MemoryBus()  # the channel between the instances (Redis pub/sub in production)
    live_a, live_b = (LiveSessions(bus, store=s, clock=clock) for s in (store_a, store_b))
    listening = [asyncio.create_task(live.run()) for live in (live_a, live_b)]
    await asyncio.sleep(0)
    idp = FakeIdp(clock=clock)
    idp.token_delay = 0.2
    a, b = Instance(idp, store_a, clock, live_a), Instance(idp, store_b, clock, live_b)
    ref = await new_session(a, idp, clock, expires_in=5)
    first = asyncio.create_task(a.token(ref))
    await asyncio.sleep(0.05)  # A holds the lock, at the provider
    started = asyncio.get_running_loop().time()
    results = await asyncio.gather(*(b.token(ref) for _ in range(20)))
    assert asyncio.get_running_loop().time() - started < 1.0  # not the 5 s poll
    assert {r.token for r in [*results, await first]} == {"access-token-1-XYZ"}
    assert idp.refresh_grants == 1
    for task in listening:
        task.cancel()
    for inst in (a, b):
        await inst.aclose()


async def test_rotated_token_stored_and_used_for_the_next_refresh(clock: Clock) -> None:
    idp = FakeIdp(clock=clock)
    inst = Instance(idp, MemoryStore(clock=clock), clock)
    ref = await new_session(inst, idp, clock, expires_in=5)
    assert (await inst.token(ref)).token == "access-token-1-XYZ"
    clock.now += 400  # the new token (300 s) expired too
    assert (await inst.token(ref)).token == "access-token-2-XYZ"
    assert idp.refresh_grants == 2
    assert idp.token_requests[1]["refresh_token"] == ["refresh-token-1-XYZ"]
    assert idp.reused_refresh_tokens == []
    await inst.aclose()


async def test_invalid_grant_ends_session_and_removes_keys(clock: Clock, redis_stores: Any) -> None:
    store, _, (raw, prefix) = redis_stores
    idp = FakeIdp(clock=clock)
    idp.refresh_error = "invalid_grant"
    inst = Instance(idp, store, clock)
    ref = await new_session(inst, idp, clock)
    results = await asyncio.gather(*(inst.token(ref) for _ in range(10)))
    assert all(isinstance(r, NoToken) for r in results), results  # expired, or already gone
    assert idp.refresh_grants == 1  # the fatal outcome is shared, not re-asked
    assert [k async for k in raw.scan_iter(match=f"{prefix}:*")] == []
    assert await inst.sessions.load(ref) is None
    await inst.aclose()


@pytest.mark.parametrize("error", ["invalid_client", "unauthorized_client", "server_error"])
async def test_non_fatal_provider_errors_keep_the_session(clock: Clock, error: str) -> None:
    idp = FakeIdp(clock=clock)
    idp.refresh_error = error
    inst = Instance(idp, MemoryStore(clock=clock), clock)
    ref = await new_session(inst, idp, clock)
    result = await inst.token(ref)
    assert isinstance(result, TokenFailure) and result.status == 502
    assert result.code == "idp_unavailable"
    assert await inst.sessions.load(ref) is not None
    await inst.aclose()


async def test_provider_down_then_back(clock: Clock) -> None:
    idp = FakeIdp(clock=clock)
    inst = Instance(idp, MemoryStore(clock=clock), clock)
    ref = await new_session(inst, idp, clock)
    idp.token_status, idp.token_body = 503, "down"
    result = await inst.token(ref)
    assert isinstance(result, TokenFailure) and result.status == 502
    assert await inst.sessions.load(ref) is not None
    idp.token_status, idp.token_body = 200, None
    assert (await inst.token(ref)).token.startswith("access-token-")
    await inst.aclose()


async def test_logout_during_refresh_is_never_undone(clock: Clock, redis_stores: Any) -> None:
    store, _, (raw, prefix) = redis_stores
    idp = FakeIdp(clock=clock)
    idp.token_delay = 0.3
    inst = Instance(idp, store, clock)
    ref = await new_session(inst, idp, clock)
    refresh = asyncio.create_task(inst.token(ref))
    await asyncio.sleep(0.1)  # the refresh is at the provider now
    session = await inst.sessions.load(ref)
    await inst.sessions.delete(ref.hash, session)  # logout
    result = await refresh
    assert isinstance(result, NoToken)
    assert await inst.sessions.load(ref) is None
    assert [k async for k in raw.scan_iter(match=f"{prefix}:*")] == []
    # the refresh token minted meanwhile was revoked rather than left alive
    assert idp.revocations and idp.revocations[-1]["token"] == ["refresh-token-1-XYZ"]
    await inst.aclose()


async def test_cancelled_waiters_do_not_cancel_the_refresh(clock: Clock) -> None:
    idp = FakeIdp(clock=clock)
    idp.token_delay = 0.2
    inst = Instance(idp, MemoryStore(clock=clock), clock)
    ref = await new_session(inst, idp, clock)
    waiters = [asyncio.create_task(inst.token(ref)) for _ in range(5)]
    await asyncio.sleep(0.05)
    for w in waiters:
        w.cancel()
    await asyncio.sleep(0.3)
    session = await inst.sessions.load(ref)
    assert session is not None and session.tokens.refresh_token == "refresh-token-1-XYZ"
    assert idp.refresh_grants == 1
    await inst.aclose()


async def test_lock_wait_times_out_with_503_never_a_logout(clock: Clock, monkeypatch: Any) -> None:
    import bff.tokens.refresh as tm

    monkeypatch.setattr(tm, "LOCK_WAIT_SECONDS", 0.2)
    store = MemoryStore(clock=clock)
    idp = FakeIdp(clock=clock)
    inst = Instance(idp, store, clock)
    ref = await new_session(inst, idp, clock)
    assert await store.acquire_lock(ref.hash, lease_ms=60_000)  # another instance, stuck
    result = await inst.token(ref)
    assert isinstance(result, TokenFailure) and result.status == 503 and result.retry_after
    assert await inst.sessions.load(ref) is not None
    assert idp.refresh_grants == 0
    await inst.aclose()


async def test_refresh_never_extends_the_absolute_lifetime(clock: Clock) -> None:
    idp = FakeIdp(clock=clock)
    inst = Instance(idp, MemoryStore(clock=clock), clock)
    ref = await new_session(inst, idp, clock)
    before = (await inst.sessions.load(ref)).expires_at
    await inst.token(ref)
    assert (await inst.sessions.load(ref)).expires_at == before


async def test_session_capped_by_refresh_token_expiry(clock: Clock) -> None:
    idp = FakeIdp(clock=clock)
    inst = Instance(idp, MemoryStore(clock=clock), clock)
    ref = await new_session(inst, idp, clock)
    original = idp._token

    def with_refresh_expiry(request: Any) -> Any:
        response = original(request)
        if response.status_code == 200:
            import json

            body = json.loads(response.content)
            body["refresh_expires_in"] = 600
            return type(response)(200, json=body)
        return response

    idp.router.routes[2].side_effect = with_refresh_expiry
    await inst.token(ref)
    session = await inst.sessions.load(ref)
    assert session is not None and session.expires_at == int(clock.now) + 600
    clock.now += 601
    assert await inst.sessions.load(ref) is None
    await inst.aclose()


async def test_audit_events_and_no_secret(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    idp = FakeIdp(clock=clock)
    inst = Instance(idp, MemoryStore(clock=clock), clock)
    ref = await new_session(inst, idp, clock)
    await inst.token(ref)
    clock.now += 400
    idp.refresh_error = "invalid_grant"
    await inst.token(ref)
    lines = [r.getMessage() for r in caplog.records if r.name == "bff.audit"]
    assert any('"event":"refresh"' in line and '"outcome":"success"' in line for line in lines)
    assert any('"event":"refresh_failed"' in line and "invalid_grant" in line for line in lines)
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in ("access-token-", "refresh-token-", CLIENT_SECRET, SECRET_KEY, ref.session_id):
        assert secret not in text
    await inst.aclose()


async def test_upstream_401_refreshes_at_most_once_in_a_few_seconds(clock: Clock) -> None:
    idp = FakeIdp(clock=clock)
    inst = Instance(idp, MemoryStore(clock=clock), clock)
    ref = await new_session(inst, idp, clock, expires_in=300)  # fresh: no refresh needed
    session = await inst.sessions.load(ref)
    first = await inst.tokens.access_token_for(ref, session, stale_token="access-token-0-XYZ")
    assert first.token == "access-token-1-XYZ"
    assert idp.refresh_grants == 1
    for _ in range(5):  # the upstream keeps answering 401 to the new token
        session = await inst.sessions.load(ref)
        again = await inst.tokens.access_token_for(ref, session, stale_token=first.token)
        assert again.token == first.token
    assert idp.refresh_grants == 1
    await inst.aclose()


async def test_the_shared_outcome_window_reads_the_injected_monotonic_clock(clock: Clock) -> None:
    idp = FakeIdp(clock=clock)
    inst = Instance(idp, MemoryStore(clock=clock), clock)
    ticks = [1000.0]
    inst.tokens = TokenManager(
        sessions=inst.sessions,
        oidc=inst.oidc,
        clock=clock,
        refresh_skew=30,
        monotonic=lambda: ticks[0],
    )
    ref = await new_session(inst, idp, clock, expires_in=300)
    session = await inst.sessions.load(ref)
    first = await inst.tokens.access_token_for(ref, session, stale_token="access-token-0-XYZ")
    ticks[0] += RECENT_SECONDS - 0.1  # still inside the window: the 401 stands
    session = await inst.sessions.load(ref)
    await inst.tokens.access_token_for(ref, session, stale_token=first.token)
    assert idp.refresh_grants == 1
    ticks[0] += 0.2  # past it: a new 401 refreshes again
    session = await inst.sessions.load(ref)
    await inst.tokens.access_token_for(ref, session, stale_token=first.token)
    assert idp.refresh_grants == 2
    await inst.aclose()


async def test_work_under_the_lock_ends_before_its_lease(clock: Clock, monkeypatch: Any) -> None:
    import bff.tokens.refresh as tm

    monkeypatch.setattr(tm, "LOCK_LEASE_MS", 5_400)  # 0.4 s of work allowed (5 s margin)
    monkeypatch.setattr(tm, "REFRESH_TIMEOUT", 30.0)
    idp = FakeIdp(clock=clock)
    idp.token_delay = 1.0  # the provider is slower than the lease allows
    inst = Instance(idp, MemoryStore(clock=clock), clock)
    ref = await new_session(inst, idp, clock)
    result = await inst.token(ref)
    assert isinstance(result, TokenFailure)
    assert result.status == 503
    assert await inst.sessions.load(ref) is not None  # never a logout
    await inst.aclose()


async def test_shared_outcomes_leave_when_they_expire_and_stay_bounded(clock: Clock) -> None:
    """Each finished refresh leaves its outcome for RECENT_SECONDS. A refresh storm across
    many sessions keeps at most RECENT_MAX (oldest out first), and an outcome leaves once
    expired: what the table holds is exactly what is still shared."""
    idp = FakeIdp(clock=clock)
    inst = Instance(idp, MemoryStore(clock=clock), clock)
    ticks = [1000.0]
    manager = TokenManager(
        sessions=inst.sessions,
        oidc=inst.oidc,
        clock=clock,
        refresh_skew=30,
        monotonic=lambda: ticks[0],
    )

    async def finish(key: str) -> None:
        task = asyncio.create_task(asyncio.sleep(0, result=Bearer(f"new-{key}")))
        await task
        manager._finished(key, task, old=f"old-{key}")

    for i in range(RECENT_MAX + 500):  # one storm: all within the window
        await finish(f"s{i}")
    assert len(manager._recent) == RECENT_MAX
    assert next(iter(manager._recent)) == "s500"  # the oldest went first
    await finish("s600")  # again: moved to the end, not kept twice
    assert list(manager._recent)[-1] == "s600" and len(manager._recent) == RECENT_MAX
    ticks[0] += RECENT_SECONDS + 0.1  # all expired: the next outcome sweeps them out
    await finish("late")
    assert list(manager._recent) == ["late"]
    await inst.aclose()
