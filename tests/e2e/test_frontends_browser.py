"""Two frontends in one bff process, in Chromium: the demo SPA on `localhost` (frontend
`a`) and on `b.localhost` (frontend `b`), each logging in at its own oidc-provider with
its own client, sessions in one Redis, the same cookie name on both hosts. Two logins in
one browser; each session cookie is refused by the other frontend; the back-channel
logout of `a` (its provider's end-session page) leaves `b` logged in.

The providers listen on 127.0.0.1 and [::1]: two hosts, so that their own cookies (of
the same names) do not meet in the browser. `a` lives on plain `localhost` because the provider (node) must reach its back-channel
logout endpoint by the frontend's own host name, and node does not resolve `*.localhost`
(Chromium does, to loopback)."""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import redis

from tests.e2e.harness import (
    BFF_COMMAND,
    E2E_DIR,
    INSTALL_HINT,
    STATIC_DIR,
    Provider,
    Service,
    _read_port_file,
    _spawn,
    _wait_for,
    sign_in,
)
from tests.support.procs import free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

pytestmark = pytest.mark.e2e

SECRET_KEY = "e2e-frontends-" + secrets.token_urlsafe(32)


@dataclass
class Frontends:
    port: int
    providers: dict[str, Provider]
    services: list[Service]

    def url(self, name: str) -> str:
        return f"http://{'localhost' if name == 'a' else 'b.localhost'}:{self.port}"


def _provider(log_dir: Path, name: str, bff: str, host: str) -> Provider:
    port_file = log_dir / f"provider-{name}.port"
    node = shutil.which("node")
    if node is None or not (E2E_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail(f"node or tests/e2e/node_modules is missing: {INSTALL_HINT}")
    cmd = [
        node,
        str(E2E_DIR / "provider.mjs"),
        "--port-file",
        str(port_file),
        "--client-id",
        f"client-{name}",
        "--client-secret",
        f"secret-of-client-{name}-0123456789",
        "--redirect-uri",
        f"{bff}/bff/callback",
        "--post-logout-redirect-uri",
        f"{bff}/",
        "--backchannel-logout-uri",
        f"{bff}/bff/backchannel-logout",
        "--access-token-ttl",
        "300",
        "--host",
        host,
    ]
    service = _spawn(f"provider-{name}", cmd, log_dir, cwd=E2E_DIR)
    port = _read_port_file(port_file, service)
    provider = Provider(service, f"http://{'[::1]' if host == '::1' else host}:{port}")
    _wait_for(
        service,
        lambda: httpx.get(f"{provider.issuer}/.well-known/openid-configuration").is_success,
        "discovery",
    )
    return provider


def _config(stack: Frontends, path: Path) -> None:
    tables = [
        "\n".join(
            [
                "[[frontends]]",
                f'name = "{name}"',
                f'public_url = "{stack.url(name)}"',
                f'issuer = "{provider.issuer}"',
                f'client_id = "client-{name}"',
                f'static_dir = "{STATIC_DIR}"',
                'scopes = "openid profile email offline_access"',
            ]
        )
        for name, provider in stack.providers.items()
    ]
    path.write_text("\n\n".join(tables) + "\n")


@pytest.fixture(scope="module")
def frontends(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Frontends]:
    log_dir = tmp_path_factory.mktemp("e2e-frontends")
    stack = Frontends(free_port(), {}, [])
    prefix = f"bfftest-fe-e2e-{uuid.uuid4().hex[:10]}"
    try:
        for name in ("a", "b"):
            # Two hosts: the two providers' own cookies (same names) must not meet.
            host = "127.0.0.1" if name == "a" else "::1"
            stack.providers[name] = _provider(log_dir, name, stack.url(name), host)
            stack.services.append(stack.providers[name].service)
        config = log_dir / "bff.toml"
        _config(stack, config)
        env = {
            "PATH": "/usr/bin:/bin",
            "BFF_SECRET_KEY": SECRET_KEY,
            "BFF_SESSION_STORE": redis_url,
            "BFF_STORE_PREFIX": prefix,
            "BFF_FRONTEND_A_CLIENT_SECRET": "secret-of-client-a-0123456789",
            "BFF_FRONTEND_B_CLIENT_SECRET": "secret-of-client-b-0123456789",
        }
        cmd = [*BFF_COMMAND, "serve", "--config", str(config), "--port", str(stack.port)]
        bff = _spawn("bff", [*cmd, "--host", "127.0.0.1"], log_dir, env=env)
        stack.services.append(bff)
        for name in ("a", "b"):  # each frontend's provider metadata loaded
            host = {"Host": stack.url(name).removeprefix("http://")}
            _wait_for(
                bff,
                lambda h=host: (
                    httpx.get(f"http://127.0.0.1:{stack.port}/readyz", headers=h).is_success
                ),
                f"/readyz of {name}",
            )
        yield stack
    finally:
        for service in reversed(stack.services):
            service.stop()
        with redis.Redis.from_url(redis_url) as client:
            keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
            if keys:
                client.delete(*keys)


def _status(page: Page, pattern: str) -> None:
    from playwright.sync_api import expect

    expect(page.locator("#status")).to_have_text(re.compile(pattern))


def _login(page: Page, stack: Frontends, name: str, user: str) -> None:
    sign_in(page, stack.url(name), stack.providers[name].issuer, user)


def _user_status(page: Page) -> int:
    """The page's own same-origin GET /bff/user, with the browser's cookies for its host
    (Chromium resolves `*.localhost`; Playwright's node-side request client does not)."""
    status: int = page.evaluate(
        "async () => (await fetch('/bff/user', {headers: {'X-CSRF': '1'}})).status"
    )
    return status


def _cookie(context: BrowserContext, url: str) -> dict[str, Any]:
    (cookie,) = [c for c in context.cookies(url) if c["name"] == "bff-session"]
    return dict(cookie)


def test_two_frontends_two_logins_isolated_cookies_and_backchannel(
    frontends: Frontends, browser: Browser
) -> None:
    context = browser.new_context()
    thief = browser.new_context()
    try:
        context.set_default_timeout(15_000)
        user = f"fe-{secrets.token_hex(3)}"
        page_a, page_b = context.new_page(), context.new_page()
        _login(page_a, frontends, "a", user)
        _login(page_b, frontends, "b", user)
        url_a, url_b = frontends.url("a"), frontends.url("b")
        assert _user_status(page_a) == 200 and _user_status(page_b) == 200
        cookie_a, cookie_b = _cookie(context, url_a), _cookie(context, url_b)
        assert cookie_a["value"] != cookie_b["value"]  # same name, one per host

        # Each cookie, carried to the other frontend's host, is no session there.
        thief.add_cookies(
            [
                {"name": "bff-session", "value": cookie_a["value"], "url": url_b},
                {"name": "bff-session", "value": cookie_b["value"], "url": url_a},
            ]
        )
        stolen_a, stolen_b = thief.new_page(), thief.new_page()
        stolen_a.goto(url_a + "/")
        stolen_b.goto(url_b + "/")
        assert _user_status(stolen_a) == 401 and _user_status(stolen_b) == 401

        # The user signs out at a's provider: its back-channel logout ends a's session only.
        end = context.new_page()
        end.goto(f"{frontends.providers['a'].issuer}/session/end")
        end.get_by_role("button", name="Yes, sign me out").click()
        end.get_by_text("Sign-out Success").wait_for()
        stats = frontends.providers["a"].stats(user)
        assert stats["backchannel_sent"] == 1 and stats["backchannel_failed"] == [], stats
        assert _user_status(page_a) == 401
        assert _user_status(page_b) == 200
    finally:
        for ctx in (context, thief):
            with contextlib.suppress(Exception):
                ctx.close()
