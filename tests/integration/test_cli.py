"""The operator's first contact: `bff check-config` in both formats, typos refused or
warned about, `bff sessions list --json` sorted by last seen, `revoke` of nothing exits 1,
and every flag explains itself in --help."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bff.cli.main import _parser
from bff.session.cookies import CookieSigner
from bff.session.crypto import KeyRing
from bff.session.service import SessionService
from bff.store.redis import RedisStore
from bff.tokens.records import TokenSet
from tests.integration.test_login_flow import SECRET_KEY, run_cli

ENV = {
    "BFF_ISSUER": "https://idp.example",
    "BFF_CLIENT_ID": "c",
    "BFF_CLIENT_SECRET": "very-secret-client-secret",
    "BFF_SECRET_KEY": SECRET_KEY,
}


def test_check_config_text_shows_toml_keys_env_names_and_sources(tmp_path: Path) -> None:
    config = tmp_path / "bff.toml"
    config.write_text(
        'session_idle_timeout = 600\n[[routes]]\nprefix = "/api"\nupstream = "http://127.0.0.1:9"\n'
    )
    result = run_cli({**ENV, "BFF_REFRESH_SKEW": "10"}, "check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(
        line.split()
        == ["session_idle_timeout", "BFF_SESSION_IDLE_TIMEOUT", "config", "file", "600"]
        for line in lines
    ), result.stdout
    assert any(
        line.split() == ["refresh_skew", "BFF_REFRESH_SKEW", "BFF_REFRESH_SKEW", "10"]
        for line in lines
    )
    assert any(
        line.split()[:3] == ["secret_key", "BFF_SECRET_KEY", "BFF_SECRET_KEY"] for line in lines
    )
    assert '[[routes]] prefix="/api" upstream="http://127.0.0.1:9"' in result.stdout
    assert "very-secret-client-secret" not in result.stdout and SECRET_KEY not in result.stdout
    assert "idle_timeout " not in result.stdout.replace("session_idle_timeout", "")


def test_check_config_json_for_automation() -> None:
    result = run_cli(ENV, "check-config", "--format", "json")
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["issuer"] == "https://idp.example"
    assert config["session_idle_timeout"] == 1800 and config["secret_key"] == "****"
    assert config["client_secret"] == "****" and config["logout_id_token_hint"] is True
    assert "idle_timeout" not in config and "secret_keys" not in config
    assert "very-secret-client-secret" not in result.stdout


def test_toml_typo_stops_check_config_with_a_suggestion(tmp_path: Path) -> None:
    config = tmp_path / "bff.toml"
    config.write_text('sesion_store = "redis://127.0.0.1:6379/0"\n')
    result = run_cli(ENV, "check-config", "--config", str(config))
    assert result.returncode == 1
    assert "  - sesion_store: unknown setting (did you mean session_store?)" in result.stderr


def test_env_typo_and_port_mismatch_are_warnings() -> None:
    result = run_cli({**ENV, "BFF_SESION_STORE": "redis://x", "BFF_PORT": "8001"}, "check-config")
    assert result.returncode == 0, result.stderr
    assert (
        "bff: warning: BFF_SESION_STORE is not a bff setting and is ignored "
        "(did you mean BFF_SESSION_STORE?)"
    ) in result.stderr
    assert "bff: warning: bff listens on port 8001 but BFF_PUBLIC_URL" in result.stderr


def _actions(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield path, action


def test_every_cli_flag_has_help() -> None:
    missing = [
        f"{path} {'/'.join(action.option_strings)}"
        for path, action in _actions(_parser(), "bff")
        if not action.help
    ]
    assert missing == []


@pytest.fixture
def store_env(redis_url: str) -> Iterator[dict[str, str]]:
    prefix = f"bfftest-{uuid.uuid4().hex[:12]}"
    yield {**ENV, "BFF_SESSION_STORE": redis_url, "BFF_STORE_PREFIX": prefix}
    with redis.Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
        if keys:
            client.delete(*keys)


async def _sessions(env: dict[str, str], age_by_sub: list[tuple[str, int]]) -> list[str]:
    """Sessions created and last seen `age` seconds ago: with the CLI's idle timeout of
    1800 s, a store TTL of 1800 - age means last seen `age` seconds ago."""
    store = RedisStore.from_url(env["BFF_SESSION_STORE"], prefix=env["BFF_STORE_PREFIX"])
    keys = KeyRing((SECRET_KEY,))
    hashes = []
    try:
        for sub, age in age_by_sub:
            service = SessionService(
                store=store,
                keys=keys,
                signer=CookieSigner(keys.signing_keys),
                idle_timeout=1800 - age,
                max_lifetime=86400,
                clock=lambda age=age: time.time() - age,
            )
            tokens = TokenSet(access_token="at-" + sub, expires_at=int(time.time()) + 600)
            ref, _ = await service.create(tokens=tokens, claims={"sub": sub}, user_agent="ua")
            hashes.append(ref.hash)
    finally:
        await store.aclose()
    return hashes


def test_sessions_list_json_and_table_are_sorted_by_last_seen(store_env: dict[str, str]) -> None:
    # Created in an order that is neither by last seen nor by hash.
    hashes = asyncio.run(_sessions(store_env, [("mid", 400), ("old", 800), ("new", 10)]))
    listed = run_cli(store_env, "sessions", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["sub"] for r in rows] == ["new", "mid", "old"]
    assert {r["session"] for r in rows} == set(hashes)
    assert set(rows[0]) == {
        "session",
        "sub",
        "created",
        "last_seen",
        "expires",
        "user_agent",
        "frontend",
    }
    assert {r["frontend"] for r in rows} == {"default"}
    assert rows[0]["last_seen"] >= rows[1]["last_seen"] >= rows[2]["last_seen"]
    assert "at-new" not in listed.stdout
    table = run_cli(store_env, "sessions", "list")
    subs = [line.split("\t")[1] for line in table.stdout.splitlines()[1:]]
    assert subs == ["new", "mid", "old"]


def test_revoking_nothing_exits_1_with_a_message(store_env: dict[str, str]) -> None:
    for target in (["--session", "0" * 64], ["--sub", "nobody"], ["--all"]):
        result = run_cli(store_env, "sessions", "revoke", *target)
        assert result.returncode == 1, (target, result.stdout, result.stderr)
        assert "nothing was revoked" in result.stderr
