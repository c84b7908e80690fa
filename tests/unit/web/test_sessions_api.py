"""The user's session inventory (`bff.web.sessions_api`) in-process: GET /bff/sessions,
DELETE /bff/sessions/{id}, POST /bff/sessions/revoke-others, on the memory store and a
fake clock, against the respx-shaped provider. Two browsers of alice, one of bob."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from bff.session.records import session_hash
from bff.store.memory import MemoryStore
from tests.browser import Browser
from tests.fake_idp import Clock, FakeIdp
from tests.unit.web.env import Env

pytestmark = pytest.mark.anyio

FIELDS = {"id", "created", "last_seen", "user_agent", "client_ip", "current"}


@dataclass
class Users:
    env: Env
    alice1: Browser
    alice2: Browser
    bob: Browser

    async def login(self, browser: Browser, sub: str, agent: str) -> None:
        self.env.idp.id_claims = {"sub": sub, "sid": f"idp-sid-{sub}"}
        browser.client.headers["user-agent"] = agent
        r = await self.env.login(browser)
        assert r.status_code == 302, r.text

    async def listing(self, browser: Browser) -> list[dict[str, object]]:
        r = await browser.get("/bff/sessions", csrf=True)
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
        sessions: list[dict[str, object]] = r.json()["sessions"]
        return sessions


@pytest.fixture
async def users() -> AsyncIterator[Users]:
    clock = Clock()
    env = Env(FakeIdp(clock=clock), clock, MemoryStore(clock=clock))
    u = Users(env, env.browser, Browser(env.app), Browser(env.app))
    await u.login(u.alice1, "alice", "Firefox/1")
    clock.now += 100
    await u.login(u.alice2, "alice", "Chrome/2")
    await u.login(u.bob, "bob", "Safari/3")
    try:
        yield u
    finally:
        await u.alice2.aclose()
        await u.bob.aclose()
        await env.aclose()


def _cookie(browser: Browser) -> str:
    return browser.cookies["bff-session"]


async def test_alice_lists_exactly_her_two_sessions(users: Users) -> None:
    users.env.clock.now += 30
    mine = await users.listing(users.alice2)
    assert [set(e) for e in mine] == [FIELDS, FIELDS]
    assert [(e["user_agent"], e["current"]) for e in mine] == [
        ("Chrome/2", True),
        ("Firefox/1", False),
    ]
    assert {e["client_ip"] for e in mine} == {"127.0.0.1"}  # the ASGI test client's address
    current, other = mine
    assert current["last_seen"] == "2027-01-15T08:02:10+00:00"  # now
    assert other["last_seen"] == "2027-01-15T08:00:00+00:00"  # its login, 130 s ago
    assert other["created"] == "2027-01-15T08:00:00+00:00"
    # from the other browser, the other one is current; the ids are the same
    theirs = await users.listing(users.alice1)
    assert {e["id"]: e["current"] for e in theirs} == {current["id"]: False, other["id"]: True}
    # a request of the other browser slides its expiry: that is its last_seen
    users.env.clock.now += 50
    assert (await users.alice1.get("/bff/user", csrf=True)).status_code == 200
    users.env.clock.now += 20
    mine = await users.listing(users.alice2)
    assert [e["last_seen"] for e in mine] == [
        "2027-01-15T08:03:20+00:00",
        "2027-01-15T08:03:00+00:00",
    ]
    # bob sees only his own
    (bobs,) = await users.listing(users.bob)
    assert bobs["current"] is True and bobs["id"] not in {current["id"], other["id"]}


async def test_ids_are_neither_cookies_nor_store_hashes(users: Users) -> None:
    r = await users.alice1.get("/bff/sessions", csrf=True)
    ids = {e["id"] for e in r.json()["sessions"]}
    for browser in (users.alice1, users.alice2):
        cookie = _cookie(browser)
        session_id = cookie.split(".")[0]
        assert cookie not in r.text and session_id not in r.text
        assert (
            session_hash(session_id) not in r.text and session_hash(session_id)[:12] not in r.text
        )
    assert len(ids) == 2 and all(len(i) == 22 for i in ids)
    assert "access-token" not in r.text and "refresh-token" not in r.text and "eyJ" not in r.text


async def test_csrf_and_session_are_required(users: Users) -> None:
    for method, path in (
        ("GET", "/bff/sessions"),
        ("POST", "/bff/sessions/revoke-others"),
        ("DELETE", "/bff/sessions/" + "A" * 22),
    ):
        r = await users.alice1.request(method, path)
        assert r.status_code == 403 and r.json()["error"] == "csrf", (method, path)
        r = await users.alice1.request(
            method, path, csrf=True, headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert r.status_code == 403, (method, path)
        anonymous = Browser(users.env.app)
        r = await anonymous.request(method, path, csrf=True)
        await anonymous.aclose()
        assert r.status_code == 401 and r.json()["error"] == "not_authenticated", (method, path)
    assert len(await users.listing(users.alice1)) == 2  # nothing ended
    assert users.env.idp.revocations == []


async def test_deleting_another_session_of_alice_ends_it_everywhere(
    users: Users, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bff.audit")
    mine = await users.listing(users.alice2)
    other = next(e for e in mine if not e["current"])
    r = await users.alice2.request("DELETE", f"/bff/sessions/{other['id']}", csrf=True)
    assert r.status_code == 204 and "set-cookie" not in r.headers
    # the ended browser is out at once; the one that ended it is not
    r = await users.alice1.get("/bff/user", csrf=True)
    assert r.status_code == 401 and r.json()["error"] == "not_authenticated"
    assert (await users.alice2.get("/bff/user", csrf=True)).status_code == 200
    assert [e["current"] for e in await users.listing(users.alice2)] == [True]
    # its refresh token was revoked at the provider (alice1 logged in first: token 1)
    assert [rv["token"] for rv in users.env.idp.revocations] == [["refresh-token-1-XYZ"]]
    (line,) = [
        json.loads(r.getMessage())
        for r in caplog.records
        if r.name == "bff.audit" and "revoke" in r.getMessage()
    ]
    assert line["event"] == "revoke" and line["sub"] == "alice"
    assert line["outcome"] == "deleted_and_revoked" and line["user_agent"] == "Chrome/2"
    # once more: gone
    r = await users.alice2.request("DELETE", f"/bff/sessions/{other['id']}", csrf=True)
    assert r.status_code == 404 and r.json()["error"] == "not_found"


async def test_alice_can_neither_see_nor_end_bobs_session(users: Users) -> None:
    (bobs,) = await users.listing(users.bob)
    for handle in (
        bobs["id"],
        "A" * 22,
        "not-a-handle",
        session_hash(_cookie(users.bob).split(".")[0]),
    ):
        r = await users.alice1.request("DELETE", f"/bff/sessions/{handle}", csrf=True)
        assert r.status_code == 404, handle
        assert r.json() == {"error": "not_found", "error_description": "no such session"}
    assert (await users.bob.get("/bff/user", csrf=True)).status_code == 200
    assert users.env.idp.revocations == []
    assert bobs["id"] not in json.dumps(await users.listing(users.alice1))


async def test_deleting_the_current_session_expires_its_cookie(users: Users) -> None:
    (current,) = [e for e in await users.listing(users.alice1) if e["current"]]
    r = await users.alice1.request("DELETE", f"/bff/sessions/{current['id']}", csrf=True)
    assert r.status_code == 204
    assert any(
        h.startswith("bff-session=") and "Max-Age=0" in h for h in r.headers.get_list("set-cookie")
    )
    assert (await users.alice1.get("/bff/user", csrf=True)).status_code == 401
    assert len(await users.listing(users.alice2)) == 1


async def test_revoke_others_keeps_only_the_current_one(users: Users) -> None:
    third = Browser(users.env.app)
    await users.login(third, "alice", "Edge/4")
    r = await users.alice2.post("/bff/sessions/revoke-others", csrf=True)
    assert r.status_code == 200 and r.json() == {"revoked": 2}
    assert r.headers["cache-control"] == "no-store"
    assert [(e["user_agent"], e["current"]) for e in await users.listing(users.alice2)] == [
        ("Chrome/2", True)
    ]
    for gone in (users.alice1, third):
        assert (await gone.get("/bff/user", csrf=True)).status_code == 401
    assert (await users.bob.get("/bff/user", csrf=True)).status_code == 200
    assert len(users.env.idp.revocations) == 2
    r = await users.alice2.post("/bff/sessions/revoke-others", csrf=True)
    assert r.json() == {"revoked": 0}
    await third.aclose()


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/bff/sessions", "GET"),
        ("HEAD", "/bff/sessions", "GET"),
        ("GET", "/bff/sessions/revoke-others", "POST"),
        ("DELETE", "/bff/sessions/revoke-others", "POST"),
        ("GET", "/bff/sessions/" + "A" * 22, "DELETE"),
        ("POST", "/bff/sessions/" + "A" * 22, "DELETE"),
    ],
)
async def test_other_methods_are_405(users: Users, method: str, path: str, allow: str) -> None:
    r = await users.alice1.request(method, path, csrf=True)
    assert r.status_code == 405 and r.headers["allow"] == allow
    assert len(await users.listing(users.alice1)) == 2
