"""The session inventory in Chromium, on the `make run` demo: two browser contexts signed
in as one user; the first sees both sessions on the demo page and signs the other out
with "Sign out other devices"; the other's very next call is 401, and its page says so."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.e2e.test_demo import Demo, _unexpected, demo

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

pytestmark = pytest.mark.e2e

__all__ = ["demo"]  # the fixture: a demo stack of this module's own


def _signed_in(context: BrowserContext, demo: Demo, console: list[ConsoleMessage]) -> Page:
    from playwright.sync_api import expect

    page = context.new_page()
    page.on("console", lambda msg: console.append(msg))
    page.goto(demo.url + "/")
    expect(page.locator("#status")).to_have_text("Not logged in")
    page.click("#login")
    page.locator("input[name=username]").fill("alice")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#status")).to_have_text("Logged in as Alice")
    return page


def test_one_device_signs_the_other_out(demo: Demo, browser: Browser) -> None:
    from playwright.sync_api import expect

    console: list[ConsoleMessage] = []
    first = browser.new_context(viewport={"width": 1100, "height": 900}, user_agent="Device-A")
    second = browser.new_context(viewport={"width": 1100, "height": 900}, user_agent="Device-B")
    for context in (first, second):
        context.set_default_timeout(20_000)
    try:
        a = _signed_in(first, demo, console)
        b = _signed_in(second, demo, console)
        a.click("#sessions-reload")
        items = a.locator("#sessions li")
        expect(items).to_have_count(2)
        expect(items.filter(has_text="this device")).to_contain_text("Device-A")
        expect(items.filter(has_text="Device-B").get_by_role("button")).to_have_text("Sign out")
        expect(b.locator("#sessions li")).to_have_count(2)  # the other device sees both too

        a.click("#revoke-others")
        expect(a.locator("#output")).to_contain_text("POST /bff/sessions/revoke-others -> 200")
        expect(a.locator("#output")).to_contain_text('"revoked": 1')
        expect(items).to_have_count(1)
        expect(a.locator("#revoke-others")).to_be_disabled()

        # The other device's next call is refused at once: no grace, no cached answer.
        b.click("#whoami")
        expect(b.locator("#output")).to_contain_text("GET /bff/user -> 401")
        expect(b.locator("#status")).to_have_text("Not logged in")
        expect(b.locator("#sessions li")).to_have_count(0)
        response = b.request.get(demo.url + "/bff/sessions", headers={"X-CSRF": "1"})
        assert response.status == 401
        # ... while the device that signed it out goes on
        a.click("#callapi")
        expect(a.locator("#output")).to_contain_text("GET /api/whoami -> 200")
        assert a.evaluate("() => document.cookie") == ""
    finally:
        first.close()
        second.close()
    assert _unexpected(console) == []
