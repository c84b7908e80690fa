"""SessionService.end: every way a session ends (logout, back-channel logout, admin
revoke, invalid_grant) has the same store and audit effects; revocation is asked for,
bounded and best effort; a session already gone is neither revoked nor audited again."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from bff.errors import IdpUnavailable
from bff.session.records import Session
from bff.session.service import EndReason, Revoke, SessionService
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
