"""SessionService on a memory store and an injected clock. `end`: every way a session
ends (logout, back-channel logout, admin revoke, invalid_grant) has the same store and
audit effects; revocation is asked for, bounded and best effort; a session already gone is
neither revoked nor audited again. `create` / `load` / `save`: a fresh sealed session per
login, the idle expiry slides on use, the absolute lifetime (and the refresh token's)
ends it, writes are conditional."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging

import pytest

from bff.errors import IdpUnavailable
from bff.session.ids import new_session_id
from bff.session.records import Session, session_hash
from bff.session.service import EndReason, Revoke, SessionRef, SessionService
from bff.store.memory import MemoryStore
from bff.tokens.records import TokenSet
from tests.integration.proxy_env import session_service

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0

# reason -> (audit event, outcome when nothing is revoked)
CASES: list[tuple[EndReason, str, str]] = [
    ("logout", "logout", "success"),
    ("backchannel_logout", "backchannel_logout", "success"),
    ("revoke", "revoke", "deleted"),
    ("invalid_grant", "refresh_failed", "invalid_grant"),
    ("no_refresh_token", "refresh_failed", "no_refresh_token"),
]


class Provider:
    """The revocation endpoint as the service sees it: records, fails or hangs."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.revoked: list[str] = []

    async def revoke(self, token: str) -> None:
        if self.mode == "down":
            raise IdpUnavailable("revocation answered HTTP 503")
        if self.mode == "hang":
            await asyncio.sleep(30)
        self.revoked.append(token)


def service(store: MemoryStore, revoke: Revoke | None) -> SessionService:
    return session_service(store, clock=lambda: NOW, revoke=revoke, revoke_timeout=0.2)


async def started(svc: SessionService, sid: str = "idp-sid-1") -> tuple[str, Session]:
    tokens = TokenSet(access_token="at-1", expires_at=int(NOW) + 300, refresh_token="rt-1")
    ref, session = await svc.create(
        tokens=tokens, claims={"sub": "alice", "sid": sid}, user_agent="ua"
    )
    return ref.hash, session


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "bff.audit"]


@pytest.mark.parametrize(("reason", "event", "outcome"), CASES)
async def test_each_reason_deletes_unindexes_and_audits_once(
    reason: EndReason, event: str, outcome: str, caplog: pytest.LogCaptureFixture
) -> None:
    store, provider = MemoryStore(), Provider()
    svc = service(store, provider.revoke)
    h, session = await started(svc)
    caplog.set_level(logging.INFO, logger="bff.audit")
    assert await svc.end(h, session, reason, client_ip="192.0.2.1")
    assert await svc.load_by_hash(h) is None
    assert await svc.find(sub="alice") == [] and await svc.find(idp_sid="idp-sid-1") == []
    assert provider.revoked == []  # not asked
    [line] = audit_lines(caplog)
    assert (line["event"], line["outcome"], line["sub"]) == (event, outcome, "alice")
    assert line["session"] == h[:12] and line["client_ip"] == "192.0.2.1"
    # Already gone: nothing more to do, nothing audited twice.
    assert not await svc.end(h, session, reason)
    assert len(audit_lines(caplog)) == 1


async def test_other_sessions_are_untouched() -> None:
    svc = service(MemoryStore(), None)
    h1, s1 = await started(svc, "sid-a")
    h2, _ = await started(svc, "sid-b")
    assert await svc.end(h1, s1, "logout")
    assert await svc.find(sub="alice") == [h2]
    assert await svc.load_by_hash(h2) is not None


@pytest.mark.parametrize(
    ("mode", "revoked", "outcome"),
    [
        ("ok", ["rt-1"], "deleted_and_revoked"),
        ("down", [], "deleted_revocation_failed"),
        ("hang", [], "deleted_revocation_failed"),
    ],
)
async def test_revocation_when_asked_is_best_effort_and_bounded(
    mode: str, revoked: list[str], outcome: str, caplog: pytest.LogCaptureFixture
) -> None:
    provider = Provider(mode)
    svc = service(MemoryStore(), provider.revoke)
    h, session = await started(svc)
    caplog.set_level(logging.INFO, logger="bff.audit")
    async with asyncio.timeout(10):  # a hanging provider costs the bound (0.2 s), no more
        assert await svc.end(h, session, "revoke", revoke=True)
    assert provider.revoked == revoked
    assert await svc.load_by_hash(h) is None  # ended whatever the provider did
    [line] = audit_lines(caplog)
    assert line["outcome"] == outcome
    # A logout's audit line does not depend on the provider.
    h, session = await started(svc)
    assert await svc.end(h, session, "logout", revoke=True)
    assert audit_lines(caplog)[-1]["outcome"] == "success"


async def test_gone_session_is_not_revoked() -> None:
    provider = Provider()
    svc = service(MemoryStore(), provider.revoke)
    h, session = await started(svc)
    assert await svc.end(h, session, "backchannel_logout")
    assert not await svc.end(h, session, "logout", revoke=True)
    assert provider.revoked == []


# --- cookie -> session and back, on an injected clock --------------------------------------
IDLE, LIFETIME = 1800, 86400


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def clocked(
    idle: int = IDLE, lifetime: int = LIFETIME
) -> tuple[Clock, MemoryStore, SessionService]:
    clock = Clock()
    store = MemoryStore(clock=clock)
    svc = session_service(store, clock=clock, idle_timeout=idle, max_lifetime=lifetime)
    return clock, store, svc


def tokens(refresh_expires_at: int | None = None) -> TokenSet:
    return TokenSet(
        access_token="at-1",
        expires_at=int(NOW) + 300,
        refresh_token="rt-1",
        refresh_expires_at=refresh_expires_at,
    )


async def test_create_stores_a_sealed_session_under_a_fresh_id_and_its_cookie_finds_it() -> None:
    _, store, svc = clocked()
    ref, session = await svc.create(tokens=tokens(), claims={"sub": "alice"}, user_agent="u" * 300)
    other, _ = await svc.create(tokens=tokens(), claims={"sub": "alice"}, user_agent="ua")
    assert ref.session_id != other.session_id and ref.hash != other.hash
    assert ref.expires_at == session.expires_at == int(NOW) + LIFETIME
    assert session.created_at == int(NOW) and len(session.user_agent) == 256
    assert await store.session_ttl(ref.hash) == IDLE
    blob = await store.load_session(ref.hash, ttl=IDLE)
    assert blob is not None and b"at-1" not in blob and b"rt-1" not in blob  # sealed
    cookie = svc.cookie_value(ref)
    assert ref.session_id not in repr(ref)
    assert svc.ref_from_cookie(cookie) == ref
    assert await svc.load(svc.ref_from_cookie(cookie) or ref) == session
    assert svc.ref_from_cookie(cookie[:-2] + "xx") is None
    assert svc.ref_from_cookie(None) is None and svc.ref_from_cookie("") is None


async def test_a_session_never_outlives_its_refresh_token() -> None:
    _, store, svc = clocked()
    ref, session = await svc.create(
        tokens=tokens(refresh_expires_at=int(NOW) + 600), claims={"sub": "a"}, user_agent=""
    )
    assert ref.expires_at == session.expires_at == int(NOW) + 600
    assert await store.session_ttl(ref.hash) == 600  # min(idle, what is left)


async def test_load_slides_the_idle_expiry_and_an_idle_session_ends() -> None:
    clock, store, svc = clocked()
    ref, session = await svc.create(tokens=tokens(), claims={"sub": "a"}, user_agent="")
    clock.now += IDLE - 10
    assert await svc.load(ref) == session  # used in time: the idle expiry starts again
    assert await store.session_ttl(ref.hash) == IDLE
    clock.now += IDLE - 10
    assert await svc.load(ref) == session
    clock.now += IDLE + 1  # idle too long
    assert await svc.load(ref) is None


async def test_the_absolute_lifetime_ends_a_session_however_busy() -> None:
    clock, store, svc = clocked(idle=IDLE, lifetime=3000)
    ref, session = await svc.create(tokens=tokens(), claims={"sub": "a"}, user_agent="")
    for _ in range(2):  # busy: used every 1000 s
        clock.now += 1000
        assert await svc.load(ref) == session
    assert await store.session_ttl(ref.hash) == 1000  # the slide stops at the lifetime
    clock.now += 999
    assert await svc.load(ref) == session
    clock.now += 1
    assert svc.ref_from_cookie(svc.cookie_value(ref)) is None  # the cookie is over too
    assert await svc.load(ref) is None


async def test_a_shortened_lifetime_that_is_over_deletes_the_session() -> None:
    clock, store, svc = clocked()
    ref, session = await svc.create(tokens=tokens(), claims={"sub": "a", "sid": "s"}, user_agent="")
    shorter = dataclasses.replace(session, expires_at=int(NOW) + 100)
    assert await svc.save(ref.hash, shorter)
    clock.now += 100
    assert await svc.load(ref) is None
    assert await store.session_ttl(ref.hash) is None
    assert await svc.find(sub="a") == [] and await svc.find(idp_sid="s") == []


async def test_a_cookie_is_not_served_a_session_that_outlives_it() -> None:
    _, _, svc = clocked()
    ref, session = await svc.create(tokens=tokens(), claims={"sub": "a"}, user_agent="")
    longer = dataclasses.replace(session, expires_at=ref.expires_at + 1)
    assert await svc.save(ref.hash, longer)
    assert await svc.load(ref) is None


async def test_save_is_conditional_and_writes_what_load_reads() -> None:
    _, _, svc = clocked()
    ref, session = await svc.create(tokens=tokens(), claims={"sub": "a"}, user_agent="")
    refreshed = dataclasses.replace(
        session, tokens=dataclasses.replace(session.tokens, access_token="at-2")
    )
    assert await svc.save(ref.hash, refreshed)
    loaded = await svc.load(ref)
    assert loaded is not None and loaded.tokens.access_token == "at-2"
    assert await svc.end(ref.hash, loaded, "logout")
    assert not await svc.save(ref.hash, session)  # deleted meanwhile: never resurrected
    assert await svc.load(ref) is None and await svc.load_by_hash(ref.hash) is None


async def test_a_blob_sealed_for_another_key_or_corrupted_reads_as_gone() -> None:
    clock, store, svc = clocked()
    ref, _ = await svc.create(tokens=tokens(), claims={"sub": "a"}, user_agent="")
    other = session_service(store, "another-secret-key-0123456789abcdef", clock=clock)
    assert await other.load_by_hash(ref.hash) is None
    blob = await store.load_session(ref.hash, ttl=IDLE)
    assert blob is not None
    await store.update_session(ref.hash, blob[:-1] + bytes([blob[-1] ^ 1]), ttl=IDLE)
    assert await svc.load(ref) is None and await svc.load_by_hash(ref.hash) is None


async def test_load_by_hash_does_not_slide_the_idle_expiry() -> None:
    clock, store, svc = clocked()
    ref, session = await svc.create(tokens=tokens(), claims={"sub": "a"}, user_agent="")
    clock.now += 600
    assert await svc.load_by_hash(ref.hash) == session
    assert await store.session_ttl(ref.hash) == IDLE - 600


# --- the memo tables stay bounded --------------------------------------------------------
async def test_the_memo_tables_stay_bounded_under_many_distinct_sessions() -> None:
    """Cookie verification and record opening are memoised per process; with many more
    distinct sessions than the tables hold, they stop at their bounds (oldest out first),
    and a second wave of new sessions does not grow the process's memory."""
    import tracemalloc

    from bff.session import service as service_module

    svc = service(MemoryStore(clock=lambda: NOW), None)

    def fresh_ref() -> SessionRef:
        session_id = new_session_id()
        return SessionRef(session_id, session_hash(session_id), int(NOW) + 3600)

    opened_bound, refs_bound = service_module._OPEN_CACHE, service_module._REF_CACHE
    tracemalloc.start()  # from the start: what the second wave evicts counts as freed

    async def wave(count: int) -> None:
        for i in range(count):
            tokens = TokenSet(access_token=f"at-{i}", expires_at=int(NOW) + 300)
            ref, _ = await svc.create(
                tokens=tokens, claims={"sub": f"user-{i}", "sid": f"sid-{i}"}, user_agent="ua"
            )
            loaded = svc.ref_from_cookie(svc.cookie_value(ref))
            assert loaded is not None and await svc.load(loaded) is not None

    await wave(opened_bound + 200)
    assert len(svc._opened) == opened_bound
    for _ in range(refs_bound + 500 - len(svc._refs)):  # cookies alone fill the other table
        assert svc.ref_from_cookie(svc.cookie_value(fresh_ref())) is not None
    assert len(svc._refs) == refs_bound
    before = tracemalloc.take_snapshot()
    await wave(opened_bound + 200)
    for _ in range(refs_bound):
        assert svc.ref_from_cookie(svc.cookie_value(fresh_ref())) is not None
    grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    assert (len(svc._opened), len(svc._refs)) == (opened_bound, refs_bound)
    # The store holds 1,224 more sessions (~250 B each here): the tables nothing more.
    assert grown < 1024 * 1024, grown


async def test_records_are_written_in_the_configured_format_and_both_read() -> None:
    """BFF_SESSION_RECORD_FORMAT=2 while a release before format 3 still runs beside
    this one: its instances can read what this one writes; this one reads both."""
    from bff.session.crypto import KeyRing
    from tests.fake_idp import SECRET_KEY

    store = MemoryStore(clock=lambda: NOW)
    old_style = session_service(store, clock=lambda: NOW, record_format=2)
    new_style = session_service(store, clock=lambda: NOW)
    tokens = TokenSet(access_token="at-1", expires_at=int(NOW) + 300)
    for writer, version in ((old_style, b"\x02"), (new_style, b"\x03")):
        ref, session = await writer.create(tokens=tokens, claims={"sub": "u"}, user_agent="ua")
        blob = await store.load_session(ref.hash, ttl=100)
        assert blob is not None
        record = KeyRing([SECRET_KEY]).open(blob, aad=ref.hash.encode())
        assert record[:1] == version
        for reader in (old_style, new_style):
            assert await reader.load(ref) == session


async def test_without_id_token_hint_no_record_ever_holds_the_id_token() -> None:
    """keep_id_token=False (BFF_LOGOUT_ID_TOKEN_HINT=false): neither the record written at
    login nor one saved later (a refresh whose answer carries a new ID token) holds it."""
    store = MemoryStore(clock=lambda: NOW)
    kept = session_service(store, clock=lambda: NOW)
    dropped = session_service(store, clock=lambda: NOW, keep_id_token=False)
    tokens = TokenSet(
        access_token="at-1", expires_at=int(NOW) + 300, refresh_token="rt-1", id_token="h.p.s"
    )
    ref, _ = await kept.create(tokens=tokens, claims={"sub": "u"}, user_agent="ua")
    kept_blob = await store.load_session(ref.hash, ttl=100)
    session = await kept.load(ref)
    assert session is not None and session.tokens.id_token == "h.p.s"

    ref, _ = await dropped.create(tokens=tokens, claims={"sub": "u"}, user_agent="ua")
    dropped_blob = await store.load_session(ref.hash, ttl=100)
    assert kept_blob is not None and dropped_blob is not None
    assert len(dropped_blob) < len(kept_blob)
    session = await dropped.load(ref)
    assert session is not None
    assert session.tokens.id_token is None
    assert (session.tokens.access_token, session.tokens.refresh_token) == ("at-1", "rt-1")
    refreshed = dataclasses.replace(
        tokens, access_token="at-2", refresh_token="rt-2", id_token="h.p2.s2"
    )
    assert await dropped.save(ref.hash, dataclasses.replace(session, tokens=refreshed))
    dropped._opened.clear()  # read the store, not the memo
    session = await dropped.load(ref)
    assert session is not None
    assert (session.tokens.access_token, session.tokens.id_token) == ("at-2", None)
