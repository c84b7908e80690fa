"""CSRF and methods, attacked: every endpoint bff serves itself decides by an explicit
method table (THREATS.md invariant 13). Issue 11 defect 2: Starlette added HEAD to GET
routes and `HEAD /bff/logout` (CORS-safelisted: `fetch(url, {method: "HEAD", mode:
"no-cors", credentials: "include"})` from any same-site page) ended the session with
neither `sid` nor `X-CSRF`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bff.web.routing import ENDPOINT_METHODS
from tests.security.edge_env import Env, edge_env

pytestmark = pytest.mark.anyio


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with edge_env() as e:
        yield e


PROBED = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
EXPECTED = {
    "/bff/login": {"GET"},
    "/bff/callback": {"GET"},
    "/bff/user": {"GET"},
    "/bff/logout": {"GET", "POST"},
    "/bff/backchannel-logout": {"POST"},
    "/bff/events": {"GET"},
    "/bff/sessions": {"GET"},
    "/bff/sessions/revoke-others": {"POST"},
    "/bff/sessions/{id}": {"DELETE"},
    "/healthz": {"GET", "HEAD"},
    "/readyz": {"GET", "HEAD"},
}


def test_the_method_table_is_the_reviewed_one() -> None:
    assert {path: set(methods) for path, methods in ENDPOINT_METHODS.items()} == EXPECTED


async def test_head_logout_without_sid_or_csrf_keeps_the_session(env: Env) -> None:
    """Issue 11 defect 2 itself: the exact request a same-site page can make."""
    await env.login()
    r = await env.browser.request("HEAD", "/bff/logout")
    assert r.status_code == 405
    assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}
    assert "set-cookie" not in r.headers
    assert (await env.browser.get("/bff/user", csrf=True)).status_code == 200
    assert env.idp.revocations == []


async def test_head_login_and_callback_store_and_consume_nothing(env: Env) -> None:
    r = await env.browser.request("HEAD", "/bff/login")
    assert r.status_code == 405 and "set-cookie" not in r.headers
    assert env.store._logins == {}  # nothing stored for a HEAD
    params = await env.start_login()
    r = await env.browser.request(
        "HEAD", "/bff/callback", params={"code": "c", "state": params["state"]}
    )
    assert r.status_code == 405
    # The state was not consumed by the HEAD: the real callback still completes.
    r = await env.login()
    assert r.status_code == 302


UNLISTED = [(path, m) for path in sorted(EXPECTED) for m in PROBED if m not in EXPECTED[path]]


@pytest.mark.parametrize(("path", "method"), UNLISTED)
async def test_every_unlisted_method_is_405_with_allow(env: Env, path: str, method: str) -> None:
    with_session = path in ("/bff/logout", "/bff/user")  # where a session could be touched
    if with_session:
        await env.login()
    r = await env.browser.request(method, path, csrf=True)
    assert r.status_code == 405, (method, path, r.status_code)
    assert set(r.headers["allow"].replace(" ", "").split(",")) == EXPECTED[path]
    if method != "HEAD":
        assert r.json()["error"] == "method_not_allowed"
    if with_session:
        assert (await env.browser.get("/bff/user", csrf=True)).status_code == 200


async def test_unlisted_methods_never_fall_through_to_the_static_mount(tmp_path: Path) -> None:
    """With BFF_STATIC_DIR the SPA is mounted at `/`: an unlisted method on a /bff path
    must still be that endpoint's 405, not a static-file answer (or a handler's)."""
    (tmp_path / "index.html").write_text("<!doctype html><title>spa</title>")
    async with edge_env(BFF_STATIC_DIR=str(tmp_path)) as env:
        await env.login()
        for method, path in (("HEAD", "/bff/logout"), ("PUT", "/bff/login"), ("HEAD", "/bff/user")):
            r = await env.browser.request(method, path)
            assert r.status_code == 405, (method, path, r.status_code)
        assert (await env.browser.get("/bff/user", csrf=True)).status_code == 200
        assert (await env.browser.get("/")).status_code == 200  # the SPA is still served


async def test_post_logout_still_needs_csrf(env: Env) -> None:
    await env.login()
    r = await env.browser.post("/bff/logout")
    assert r.status_code == 403 and r.json()["error"] == "csrf"
    assert (await env.browser.get("/bff/user", csrf=True)).status_code == 200


@pytest.mark.parametrize(
    "fetch_metadata",
    [
        {"Sec-Fetch-Dest": "image", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Dest": "empty", "Sec-Fetch-Mode": "cors"},
        {"Sec-Fetch-Dest": "iframe", "Sec-Fetch-Mode": "navigate"},
        {"Sec-Fetch-Mode": "no-cors"},
    ],
    ids=["img", "fetch", "iframe", "mode-only"],
)
async def test_login_refuses_subresource_requests_before_storing_anything(
    env: Env, fetch_metadata: dict[str, str]
) -> None:
    """Security review finding 4: `<img src=/bff/login>` on a hostile page burned each
    visitor's pending-login slots (and stored a login state) without a click."""
    r = await env.browser.get("/bff/login", headers=fetch_metadata)
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "csrf"
    assert "set-cookie" not in r.headers
    assert env.store._logins == {}


async def test_login_by_navigation_is_served_also_from_another_site(env: Env) -> None:
    """A top-level navigation, even from a link on another site, is a login."""
    navigation = {"Sec-Fetch-Dest": "document", "Sec-Fetch-Mode": "navigate"}
    r = await env.browser.get("/bff/login", headers={**navigation, "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 302
    assert len(env.store._logins) == 1
