"""The whole login -> callback -> user -> logout flow against the development provider
over real sockets, sessions in the real Redis; and the operator's `bff sessions` tools."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import redis.asyncio as aioredis

from bff.config.load import load_settings
from bff.store.redis import RedisStore
from bff.web.app import create_app
from tests.browser import Browser
from tests.integration.provider_fixture import RunningProvider, start_dev_provider

pytestmark = pytest.mark.anyio

SECRET_KEY = "integration-secret-key-0123456789-abcdef"
BFF_BIN = Path(sys.executable).parent / "bff"


def q(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@pytest.fixture(scope="module")
def op() -> Iterator[RunningProvider]:
    with start_dev_provider(access_token_ttl=60) as provider:
        yield provider


def bff_env(op: RunningProvider, redis_url: str, prefix: str) -> dict[str, str]:
    return {
        "BFF_ISSUER": op.issuer,
        "BFF_CLIENT_ID": op.client_id,
        "BFF_CLIENT_SECRET": op.client_secret,
        "BFF_SECRET_KEY": SECRET_KEY,
        "BFF_SESSION_STORE": redis_url,
        "BFF_STORE_PREFIX": prefix,
    }


class Instance:
    def __init__(self, env: dict[str, str]) -> None:
        self.settings = load_settings(env)
        self.http = httpx.AsyncClient(timeout=10)
        self.store = RedisStore.from_url(env["BFF_SESSION_STORE"], prefix=env["BFF_STORE_PREFIX"])
        self.app = create_app(
            self.settings, http=self.http, store=self.store, discover_on_startup=False
        )

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.store.aclose()


@pytest.fixture
async def setup(op: RunningProvider, redis_url: str) -> AsyncIterator[tuple[dict[str, str], Any]]:
    prefix = f"bfftest-{uuid.uuid4().hex[:12]}"
    env = bff_env(op, redis_url, prefix)
    raw = aioredis.Redis.from_url(redis_url)
    yield env, (raw, prefix)
    keys = [k async for k in raw.scan_iter(match=f"{prefix}:*")]
    if keys:
        await raw.delete(*keys)
    await raw.aclose()


async def login(browser: Browser, provider: httpx.AsyncClient, user: str) -> httpx.Response:
    """A person's login: BFF -> provider form -> provider redirect -> BFF callback."""
    r = await browser.get("/bff/login", params={"returnUrl": "/after"})
    assert r.status_code == 302
    authorize = r.headers["location"]
    form = await provider.get(authorize)
    assert form.status_code == 200 and 'name="username"' in form.text
    params = q(authorize)
    answer = await provider.post(
        authorize.split("?")[0], data=params | {"username": user, "action": "login"}
    )
    assert answer.status_code in (302, 303), answer.text
    back = answer.headers["location"]
    assert back.startswith("http://localhost:8000/bff/callback?")
    return await browser.get(back.removeprefix("http://localhost:8000"))


async def test_login_user_logout_against_dev_provider(op: RunningProvider, setup: Any) -> None:
    env, (raw, prefix) = setup
    inst = Instance(env)
    browser = Browser(inst.app)
    op.reset_stats()
    async with httpx.AsyncClient(timeout=10) as provider:
        r = await login(browser, provider, "alice")
        assert r.status_code == 302 and r.headers["location"] == "/after"
        r = await browser.get("/bff/user", csrf=True)
        assert r.status_code == 200
        user = r.json()
        assert user["sub"] == "alice"
        assert "eyJ" not in r.text
        assert op.stats()["authorization_code_grants"] == 1
        # Redis holds the session, and no readable token
        dump = b""
        async for key in raw.scan_iter(match=f"{prefix}:*"):
            if (await raw.type(key)) == b"string":
                dump += await raw.get(key)
        assert dump and b"eyJ" not in dump

        r = await browser.get(user["bff:logout_url"])
        assert r.status_code == 302
        end_session = r.headers["location"]
        assert end_session.startswith(op.issuer)
        assert q(end_session)["post_logout_redirect_uri"] == "http://localhost:8000/"
        assert op.stats()["revocations"] == 1
        assert [k async for k in raw.scan_iter(match=f"{prefix}:*")] == []
        assert (await browser.get("/bff/user", csrf=True)).status_code == 401
        # the provider session ends too: following the end-session redirect
        done = await provider.get(end_session)
        assert done.status_code in (302, 303, 200)
    await browser.aclose()
    await inst.aclose()


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BFF_")}
    return subprocess.run(
        [str(BFF_BIN), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_sessions_list_and_revoke_by_sub_across_instances(
    op: RunningProvider, setup: Any
) -> None:
    env, _ = setup
    a, b = Instance(env), Instance(env)
    ba, bb, bc = Browser(a.app), Browser(b.app), Browser(b.app)
    op.reset_stats()
    async with httpx.AsyncClient(timeout=10) as provider:
        await login(ba, provider, "alice")
    async with httpx.AsyncClient(timeout=10) as provider:
        await login(bb, provider, "alice")
    async with httpx.AsyncClient(timeout=10) as provider:
        await login(bc, provider, "bob")

    listing = run_cli(env, "sessions", "list", "--sub", "alice")
    assert listing.returncode == 0, listing.stderr
    rows = listing.stdout.strip().splitlines()[1:]
    assert len(rows) == 2 and all("\talice\t" in row for row in rows)
    assert "eyJ" not in listing.stdout

    revoke = run_cli(env, "sessions", "revoke", "--sub", "alice")
    assert revoke.returncode == 0, revoke.stderr
    assert "revoked 2 session(s)" in revoke.stdout
    assert '"event":"revoke"' in revoke.stderr
    assert "eyJ" not in revoke.stderr + revoke.stdout
    assert op.stats()["revocations"] == 2
    assert (await ba.get("/bff/user", csrf=True)).status_code == 401
    assert (await bb.get("/bff/user", csrf=True)).status_code == 401
    assert (await bc.get("/bff/user", csrf=True)).status_code == 200  # bob untouched

    everyone = run_cli(env, "sessions", "revoke", "--all")
    assert "revoked 1 session(s)" in everyone.stdout
    assert (await bc.get("/bff/user", csrf=True)).status_code == 401
    for browser in (ba, bb, bc):
        await browser.aclose()
    await a.aclose()
    await b.aclose()


def test_check_config_reports_every_problem() -> None:
    result = run_cli(
        {"BFF_ISSUER": "nope", "BFF_SECRET_KEY": "short", "BFF_PUBLIC_URL": "http://example.com"},
        "check-config",
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert len(lines) >= 4
    assert any("BFF_CLIENT_ID" in line for line in lines)
    assert any("BFF_SECRET_KEY" in line for line in lines)


def test_check_config_prints_masked_config() -> None:
    env = {
        "BFF_ISSUER": "https://idp.example",
        "BFF_CLIENT_ID": "c",
        "BFF_CLIENT_SECRET": "very-secret-client-secret",
        "BFF_SECRET_KEY": SECRET_KEY,
    }
    result = run_cli(env, "check-config", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert "very-secret-client-secret" not in result.stdout
    assert SECRET_KEY not in result.stdout
    assert '"issuer": "https://idp.example"' in result.stdout
