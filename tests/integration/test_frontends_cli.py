"""The console script with `[[frontends]]`: check-config shows every frontend (table and
JSON, secrets masked); `bff sessions list|revoke` name each session's frontend and reach
the sessions of every frontend in the shared store."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bff.session.cookies import CookieSigner
from bff.session.crypto import KeyRing
from bff.session.service import SessionService
from bff.store.redis import RedisStore
from bff.tokens.records import TokenSet
from tests.integration.test_login_flow import SECRET_KEY, run_cli

CONFIG = """
[[frontends]]
name = "shop"
public_url = "https://shop.example"
issuer = "http://127.0.0.1:9/a"
client_id = "shop-client"
cookie_name = "__Host-shop"
[[frontends.routes]]
prefix = "/api"
upstream = "http://127.0.0.1:9"

[[frontends]]
name = "admin"
public_url = "https://tools.example/admin"
issuer = "http://127.0.0.1:9/b"
client_id = "admin-client"
client_secret_file = "{secret_file}"
session_idle_timeout = 600
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    secret = tmp_path / "admin-secret"
    secret.write_text("admin-client-secret-value\n")
    path = tmp_path / "bff.toml"
    path.write_text(CONFIG.format(secret_file=secret))
    return path


ENV = {"BFF_SECRET_KEY": SECRET_KEY, "BFF_FRONTEND_SHOP_CLIENT_SECRET": "shop-secret-value"}


def test_check_config_shows_every_frontend(config: Path) -> None:
    result = run_cli(ENV, "check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert '[[frontends]] name="shop"' in out and '[[frontends]] name="admin"' in out
    assert '[[frontends.routes]] prefix="/api" upstream="http://127.0.0.1:9"' in out
    lines = [line.split() for line in out.splitlines()]
    assert [
        "client_secret",
        "BFF_FRONTEND_SHOP_CLIENT_SECRET",
        "BFF_FRONTEND_SHOP_CLIENT_SECRET",
        "****",
    ] in lines
    assert ["public_url", "BFF_FRONTEND_ADMIN_PUBLIC_URL"] in [line[:2] for line in lines]
    assert "shop-secret-value" not in out and "admin-client-secret-value" not in out

    result = run_cli(ENV, "check-config", "--config", str(config), "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert "issuer" not in report  # no flat default frontend beside the tables
    shop, admin = report["frontends"]
    assert (shop["name"], shop["cookie_name"], shop["client_secret"]) == (
        "shop",
        "__Host-shop",
        "****",
    )
    assert shop["routes"][0]["prefix"] == "/api"
    assert admin["public_url"] == "https://tools.example/admin"
    assert admin["session_idle_timeout"] == 600 and admin["post_logout_redirect"] == "/admin/"
    assert "admin-client-secret-value" not in result.stdout


def test_check_config_refuses_flat_frontend_settings_beside_tables(config: Path) -> None:
    env = {**ENV, "BFF_ISSUER": "https://idp.example"}
    result = run_cli(env, "check-config", "--config", str(config))
    assert result.returncode == 1
    assert "BFF_ISSUER: describes the single default frontend" in result.stderr


@pytest.fixture
def store_env(redis_url: str) -> Iterator[dict[str, str]]:
    prefix = f"bfftest-{uuid.uuid4().hex[:12]}"
    yield {**ENV, "BFF_SESSION_STORE": redis_url, "BFF_STORE_PREFIX": prefix}
    with redis.Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
        if keys:
            client.delete(*keys)


async def _sessions(env: dict[str, str], namespaces: list[str]) -> dict[str, str]:
    """One session of `alice` per frontend namespace, as a login there leaves it."""
    store = RedisStore.from_url(env["BFF_SESSION_STORE"], prefix=env["BFF_STORE_PREFIX"])
    keys = KeyRing((SECRET_KEY,))
    hashes = {}
    try:
        for namespace in namespaces:
            service = SessionService(
                store=store,
                keys=keys,
                signer=CookieSigner(keys.signing_keys, namespace=namespace),
                idle_timeout=600,
                max_lifetime=86400,
                clock=time.time,
                namespace=namespace,
            )
            tokens = TokenSet(access_token="at", expires_at=int(time.time()) + 600)
            ref, _ = await service.create(tokens=tokens, claims={"sub": "alice"}, user_agent="ua")
            hashes[namespace] = ref.hash
    finally:
        await store.aclose()
    return hashes


def test_sessions_list_and_revoke_name_the_frontend(
    config: Path, store_env: dict[str, str]
) -> None:
    hashes = asyncio.run(_sessions(store_env, ["shop", "admin"]))
    listed = run_cli(store_env, "sessions", "--config", str(config), "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["session"]: r["frontend"] for r in json.loads(listed.stdout)}
    assert rows == {hashes["shop"]: "shop", hashes["admin"]: "admin"}
    by_sub = run_cli(store_env, "sessions", "--config", str(config), "list", "--sub", "alice")
    assert by_sub.stdout.splitlines()[0].split("\t")[-1] == "frontend"
    assert len(by_sub.stdout.splitlines()) == 3
    one = run_cli(
        store_env, "sessions", "--config", str(config), "revoke", "--session", hashes["admin"]
    )
    assert one.returncode == 0 and "revoked 1 session(s)" in one.stdout, one.stderr
    listed = run_cli(store_env, "sessions", "--config", str(config), "list", "--json")
    assert [r["frontend"] for r in json.loads(listed.stdout)] == ["shop"]
    rest = run_cli(store_env, "sessions", "--config", str(config), "revoke", "--sub", "alice")
    assert "revoked 1 session(s)" in rest.stdout, rest.stderr
