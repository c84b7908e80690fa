"""The `make run` demo in Chromium, as a new user meets it: logged out, the development
provider's sign-in page, logged in, an API call, a refresh as it happens, the proof that
the page holds no token, logout; then Ctrl-C. A screenshot of every step; no console
error but the browser's own note of the expected 401 from `/bff/user` while logged out;
Ctrl-C prints one line per process and no traceback.

Screenshots go to the test's temporary folder; with UPDATE_SCREENSHOTS=1 to
docs/screenshots/ (committed, shown by the README).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.e2e.harness import ROOT
from tests.support.procs import free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page

pytestmark = pytest.mark.e2e

TOKEN_TTL = 6  # seconds; run.py sets the BFF's refresh skew to a third of it
SCREENSHOTS = ROOT / "docs" / "screenshots"


@dataclass
class Demo:
    process: subprocess.Popen[bytes]
    log: Path
    url: str
    port: int


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    log = tmp_path_factory.mktemp("demo") / "run.log"
    ports = {name: free_port() for name in ("DEMO_BFF_PORT", "DEMO_PROVIDER_PORT", "DEMO_API_PORT")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("BFF_")}
    env.update({k: str(v) for k, v in ports.items()})
    env["DEMO_ACCESS_TOKEN_TTL"] = str(TOKEN_TTL)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "deploy" / "demo" / "run.py")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    port = ports["DEMO_BFF_PORT"]
    demo = Demo(process, log, f"http://localhost:{port}", port)
    try:
        deadline = time.monotonic() + 60
        while "bff demo ready" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the demo did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.2)
        httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).raise_for_status()
        yield demo
    finally:
        if process.poll() is None:  # ours, by its handle
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Shots:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.taken: list[Path] = []

    def take(self, page: Page, name: str) -> None:
        page.wait_for_timeout(300)  # let the second-by-second countdowns settle
        path = self.folder / f"{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)


def _unexpected(messages: list[ConsoleMessage]) -> list[str]:
    """Console errors other than Chromium's own note of the 401 that /bff/user answers
    while nobody is logged in (the page asks on load: that 401 is how it knows)."""
    bad = []
    for msg in messages:
        url = msg.location.get("url", "")
        if msg.type == "error" and "status of 401" in msg.text and url.endswith("/bff/user"):
            continue
        if msg.type in ("error", "warning"):
            bad.append(f"{msg.type}: {msg.text} ({url})")
    return bad


def test_the_demo_shows_the_bff_at_work(demo: Demo, browser: Browser, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    folder = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    shots = Shots(folder)
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    console: list[ConsoleMessage] = []
    errors: list[str] = []
    page.on("console", lambda msg: console.append(msg))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    favicons: list[int] = []
    page.on(
        "response",
        lambda r: favicons.append(r.status) if "/favicon." in r.url else None,
    )
    status = page.locator("#status")
    try:
        # 1. Logged out: only "Log in" (and "Who am I") can be pressed.
        page.goto(demo.url + "/")
        expect(status).to_have_text("Not logged in")
        expect(page.locator("#login")).to_be_enabled()
        for button in ("#callapi", "#logout"):
            expect(page.locator(button)).to_be_disabled()
        shots.take(page, "logged-out")

        # 2. The development provider's sign-in page.
        page.click("#login")
        page.locator("input[name=username]").fill("alice")
        shots.take(page, "provider-sign-in")
        page.get_by_role("button", name="Sign in").click()

        # 3. Back, logged in: the same name as the ID token's and a session countdown.
        expect(status).to_have_text("Logged in as Alice")
        expect(page.locator("#login")).to_be_disabled()
        expect(page.locator("#logout")).to_be_enabled()
        expect(page.locator("#session-countdown")).to_have_text(re.compile(r"^(29|30):\d\d$"))
        shots.take(page, "logged-in")

        # 4. An API call with the token the BFF added; the API says "Alice" too.
        page.click("#callapi")
        expect(page.locator("#output")).to_contain_text("GET /api/whoami -> 200")
        assert '"name": "Alice"' in page.locator("#output").inner_text()
        # (a slow machine may already see it expire: the BFF refreshes it on the next call)
        expect(page.locator("#token-countdown")).to_have_text(re.compile(r"^(0:0\d|expired)"))
        shots.take(page, "api-call")

        # 5. The token nears its end: the next call gets a refreshed one, shown as such.
        page.wait_for_timeout((TOKEN_TTL - 1) * 1000)
        page.click("#callapi")
        expect(page.locator("#refresh-count")).to_have_text("1")
        expect(page.locator("#timeline")).to_contain_text("The BFF refreshed the access token")
        shots.take(page, "refresh")

        # 6. The proof on the page is the truth: nothing readable by a script.
        held = page.evaluate("() => [document.cookie, localStorage.length, sessionStorage.length]")
        assert held == ["", 0, 0]
        assert page.locator("#proof-cookie").inner_text() == '""'
        assert page.locator("#proof-jwts").inner_text() == "0"
        assert page.locator("#proof-card li.fail").count() == 0

        # 7. Logout ends at the app again, logged out; another open tab of the app is told
        # at once (GET /bff/events: session_ended) and shows it.
        other_tab = context.new_page()
        other_tab.on("console", lambda msg: console.append(msg))
        other_tab.on("pageerror", lambda exc: errors.append(str(exc)))
        other_tab.goto(demo.url + "/")
        expect(other_tab.locator("#status")).to_have_text("Logged in as Alice")
        other_tab.wait_for_timeout(500)  # its EventSource is open
        page.bring_to_front()
        page.click("#logout")
        expect(status).to_have_text("Not logged in")
        shots.take(page, "logged-out-again")
        banner = other_tab.locator("#session-banner")
        expect(banner).to_be_visible(timeout=2_000)
        expect(banner).to_contain_text("Your session has ended (logout)")
        expect(other_tab.locator("#status")).to_have_text("Not logged in")
        shots.take(other_tab, "other-tab-told")
    finally:
        context.close()
    assert errors == []
    assert _unexpected(console) == []
    assert favicons and all(code == 200 for code in favicons), favicons

    # A mistake that explains itself (its own context: a 400 page is meant to be one).
    other = browser.new_context(viewport={"width": 1100, "height": 700})
    try:
        wrong = other.new_page()
        notes: list[str] = []
        wrong.on("console", lambda msg: notes.append(f"{msg.type}: {msg.text}"))
        wrong.goto(f"http://127.0.0.1:{demo.port}/bff/callback?state=s&code=c")
        expect(wrong.locator("body")).to_contain_text("BFF_PUBLIC_URL")
        expect(wrong.locator("body")).to_contain_text(f"127.0.0.1:{demo.port}")
        shots.take(wrong, "callback-on-another-host")
        # Its style passes the page's CSP (a blocked style would be a console error).
        assert [n for n in notes if "status of 400" not in n] == [], notes
        # And a login started there is sent to the public URL first, then on.
        requested: list[str] = []
        wrong.on("request", lambda r: requested.append(r.url))
        wrong.goto(f"http://127.0.0.1:{demo.port}/bff/login?returnUrl=/")
        wrong.locator("input[name=username]").wait_for()
        assert f"http://localhost:{demo.port}/bff/login?returnUrl=/" in requested, requested
    finally:
        other.close()

    # 8. Ctrl-C: one line per process, no traceback.
    demo.process.send_signal(signal.SIGINT)
    demo.process.wait(timeout=30)
    output = demo.log.read_text(errors="replace")
    assert "Traceback" not in output and "CancelledError" not in output
    tail = output.rstrip().splitlines()[-3:]
    assert tail == ["demo: bff stopped", "demo: api stopped", "demo: provider stopped"], output
    print("demo screenshots:", *(str(p) for p in shots.taken), sep="\n  ")
