"""The admin API's token (`BFF_ADMIN_TOKEN_FILE`, `bff.web.admin_api`): read and checked at
start, reported by check-config, never shown; the bearer check in-process on the memory
store (the flows against the real Redis are in tests/security/test_session_inventory.py)."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bff.config.known import unknown_env_warnings
from bff.config.load import load_settings
from bff.config.report import effective_config, masked_config
from bff.errors import ConfigError
from bff.session.crypto import KeyRing
from bff.session.frontend_sessions import frontend_sessions
from bff.store.memory import MemoryStore
from bff.tokens.records import TokenSet
from bff.web.admin_app import create_admin_app
from tests.fake_idp import CLIENT_ID, CLIENT_SECRET, ISSUER, SECRET_KEY, FakeIdp
from tests.integration.test_login_flow import run_cli

pytestmark = pytest.mark.anyio

BASE = {
    "BFF_ISSUER": ISSUER,
    "BFF_CLIENT_ID": CLIENT_ID,
    "BFF_CLIENT_SECRET": CLIENT_SECRET,
    "BFF_SECRET_KEY": SECRET_KEY,
}
TOKEN = "admin-token-" + "x" * 40


def _token_file(tmp_path: Path, text: str = TOKEN + "\n") -> Path:
    path = tmp_path / "admin-token"
    path.write_text(text)
    return path


def _problems(**env: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, **env})
    return info.value.problems


def test_the_token_file_is_checked_when_the_settings_load(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    (problem,) = _problems(BFF_ADMIN_TOKEN_FILE=missing)
    assert problem.startswith("BFF_ADMIN_TOKEN_FILE: cannot read") and missing in problem
    (problem,) = _problems(BFF_ADMIN_TOKEN_FILE=str(_token_file(tmp_path, "short\n")))
    assert "is 5 characters; at least 32 required" in problem
    for bad in ("two words " + "x" * 40, "x" * 40 + "\u00e9", "x" * 20 + "\x00" + "x" * 20):
        (problem,) = _problems(BFF_ADMIN_TOKEN_FILE=str(_token_file(tmp_path, bad)))
        assert "printable ASCII without spaces" in problem
        assert bad not in problem
    (tmp_path / "binary").write_bytes(b"\xff\xfe" * 20)
    (problem,) = _problems(BFF_ADMIN_TOKEN_FILE=str(tmp_path / "binary"))
    assert "not UTF-8" in problem


def test_the_path_is_shown_and_the_token_never(tmp_path: Path) -> None:
    path = str(_token_file(tmp_path))
    settings = load_settings({**BASE, "BFF_ADMIN_TOKEN_FILE": path})
    assert settings.admin_token_file == path
    assert masked_config(settings)["admin_token_file"] == path
    shown = repr(settings) + repr(effective_config(settings)) + repr(masked_config(settings))
    assert TOKEN not in shown
    assert load_settings(BASE).admin_token_file is None
    toml = load_settings(BASE, {"admin_token_file": path})
    assert toml.admin_token_file == path
    # a token given directly is no setting: only a file holds it
    assert unknown_env_warnings({"BFF_ADMIN_TOKEN": TOKEN, "BFF_ADMIN_TOKEN_FILE": path}) == [
        "BFF_ADMIN_TOKEN is not a bff setting and is ignored (did you mean BFF_ADMIN_TOKEN_FILE?)"
    ]


def test_check_config_reports_a_bad_token_file(tmp_path: Path) -> None:
    env = {**BASE, "BFF_ADMIN_TOKEN_FILE": str(_token_file(tmp_path, "short"))}
    result = run_cli(env, "check-config")
    assert result.returncode == 1
    assert "BFF_ADMIN_TOKEN_FILE: the token in" in result.stderr
    env["BFF_ADMIN_TOKEN_FILE"] = str(_token_file(tmp_path))
    result = run_cli(env, "check-config", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert TOKEN not in result.stdout + result.stderr


@contextlib.asynccontextmanager
async def admin(**env: str) -> AsyncIterator[tuple[httpx.AsyncClient, MemoryStore]]:
    idp = FakeIdp()
    store = MemoryStore()
    http = idp.http()
    app = create_admin_app(
        load_settings({**BASE, **env}),
        metrics_dir=None,
        store=store,
        http=http,
        discover_on_startup=False,
    )
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            yield client, store
    finally:
        await http.aclose()


async def test_the_token_is_read_at_start(tmp_path: Path) -> None:
    path = _token_file(tmp_path)
    settings = load_settings({**BASE, "BFF_ADMIN_TOKEN_FILE": str(path)})
    path.unlink()  # gone between check and start: the start fails, naming the setting
    async with FakeIdp().http() as http:
        with pytest.raises(ConfigError) as info:
            create_admin_app(
                settings,
                metrics_dir=None,
                store=MemoryStore(),
                http=http,
                discover_on_startup=False,
            )
    assert info.value.problems[0].startswith("BFF_ADMIN_TOKEN_FILE: cannot read")
    # once started, the token stays what was read then
    path = _token_file(tmp_path)
    async with admin(BFF_ADMIN_TOKEN_FILE=str(path)) as (client, _):
        path.write_text(secrets.token_urlsafe(32))
        r = await client.get("/admin/sessions?sub=x", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200 and r.json() == []


async def test_the_bearer_check(tmp_path: Path) -> None:
    async with admin(BFF_ADMIN_TOKEN_FILE=str(_token_file(tmp_path))) as (client, _):
        for header, status in (
            (f"Bearer {TOKEN}", 200),
            (f"bearer {TOKEN}", 200),  # the scheme is case-insensitive (RFC 9110)
            (f"Bearer  {TOKEN} ", 200),
            (f"Bearer {TOKEN}x", 401),
            (f"Bearer {TOKEN[:-1]}", 401),
            (f"Bearer {TOKEN.upper()}", 401),
            ("Bearer \u00e9", 401),
            (f"Basic {TOKEN}", 401),
            ("", 401),
        ):
            r = await client.get(
                "/admin/sessions?sub=x", headers={"Authorization": header.encode("utf-8")}
            )
            assert r.status_code == status, header
            if status == 401:
                assert r.headers["www-authenticate"].startswith("Bearer")
                assert r.json()["error"] == "not_authenticated"
                assert r.headers["cache-control"] == "no-store"
        r = await client.get("/admin/sessions?sub=x")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "query",
    ["", "?sub=", "?sub=a&sub=b", "?sub=a&sid=b", "?other=1"],
)
async def test_a_listing_names_exactly_one_sub_or_sid(tmp_path: Path, query: str) -> None:
    async with admin(BFF_ADMIN_TOKEN_FILE=str(_token_file(tmp_path))) as (client, _):
        auth = {"Authorization": f"Bearer {TOKEN}"}
        for method in ("GET", "DELETE"):
            r = await client.request(method, f"/admin/sessions{query}", headers=auth)
            assert r.status_code == 400 and r.json()["error"] == "invalid_request"
        assert (await client.get("/admin/sessions?sid=s", headers=auth)).json() == []


async def test_unknown_hashes_and_other_methods(tmp_path: Path) -> None:
    async with admin(BFF_ADMIN_TOKEN_FILE=str(_token_file(tmp_path))) as (client, _):
        auth = {"Authorization": f"Bearer {TOKEN}"}
        for h in ("0" * 32, "0" * 64, "Z" * 32, "x"):
            r = await client.delete(f"/admin/sessions/{h}", headers=auth)
            assert r.status_code == 404 and r.json()["error"] == "not_found", h
        r = await client.post("/admin/sessions", headers=auth)
        assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == {"GET", "DELETE"}
        r = await client.get(f"/admin/sessions/{'0' * 32}", headers=auth)
        assert r.status_code == 405 and r.headers["allow"] == "DELETE"


async def test_every_frontends_sessions_each_revoked_at_its_own_provider(tmp_path: Path) -> None:
    """With `[[frontends]]`, a listing shows each frontend's sessions under its name (as
    `bff sessions list` does), and a revocation goes to that frontend's provider."""
    idps = {
        name: FakeIdp(issuer=f"https://idp-{name}.test", client_id=f"app-{name}")
        for name in ("a", "b")
    }

    def provider(request: httpx.Request) -> httpx.Response:
        idp = idps[request.url.host.removeprefix("idp-").removesuffix(".test")]
        response: httpx.Response = idp.router.handler(request)
        return response

    toml = {
        "frontends": [
            {
                "name": name,
                "public_url": f"http://{name}.localhost:8000",
                "issuer": f"https://idp-{name}.test",
                "client_id": f"app-{name}",
            }
            for name in ("a", "b")
        ]
    }
    env = {
        "BFF_SECRET_KEY": SECRET_KEY,
        "BFF_FRONTEND_A_CLIENT_SECRET": "secret-of-app-a",
        "BFF_FRONTEND_B_CLIENT_SECRET": "secret-of-app-b",
        "BFF_ADMIN_TOKEN_FILE": str(_token_file(tmp_path)),
    }
    settings = load_settings(env, toml)
    store = MemoryStore()
    hashes = {}
    keys = KeyRing(settings.secret_keys)
    for frontend in settings.frontends:
        service = frontend_sessions(frontend, store=store, keys=keys, clock=time.time)
        tokens = TokenSet(
            access_token="at", expires_at=None, refresh_token=f"refresh-of-{frontend.name}"
        )
        ref, _ = await service.create(tokens=tokens, claims={"sub": "alice"}, user_agent="ua")
        hashes[frontend.name] = ref.hash
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider)) as http:
        app = create_admin_app(
            settings, metrics_dir=None, store=store, http=http, discover_on_startup=False
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as admin:
            auth = {"Authorization": f"Bearer {TOKEN}"}
            rows = (await admin.get("/admin/sessions?sub=alice", headers=auth)).json()
            assert {(r["frontend"], r["session"]) for r in rows} == {
                ("a", hashes["a"]),
                ("b", hashes["b"]),
            }
            r = await admin.delete(f"/admin/sessions/{hashes['b']}", headers=auth)
            assert r.json() == {"revoked": 1}
            assert [rv["token"] for rv in idps["b"].revocations] == [["refresh-of-b"]]
            assert idps["a"].revocations == []
            rows = (await admin.get("/admin/sessions?sub=alice", headers=auth)).json()
            assert [r["frontend"] for r in rows] == ["a"]
            r = await admin.delete("/admin/sessions?sub=alice", headers=auth)
            assert r.json() == {"revoked": 1}
            assert [rv["token"] for rv in idps["a"].revocations] == [["refresh-of-a"]]
