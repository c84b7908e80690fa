"""The demo API (`deploy/demo/api.py`) checks the bearer JWT, and the BFF in front of
it on real sockets gets the session's token through."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import uvicorn
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from bff.store.memory import MemoryStore
from tests.integration.proxy_env import make_settings, mint_session, serve

pytestmark = pytest.mark.anyio

ISSUER = "https://op.demo.test"
AUDIENCE = "http://localhost:9100"
API_FILE = Path(__file__).resolve().parents[2] / "deploy" / "demo" / "api.py"
KEY = RSAKey.generate_key(2048, parameters={"kid": "demo-1"})


def load_api() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_api", API_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def provider(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/.well-known/openid-configuration":
        return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"})
    return httpx.Response(200, json={"keys": [KEY.as_dict(private=False)]})


def token(key: Any = KEY, alg: str = "RS256", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 60, "iat": now}
    body.update(claims)
    return jwt.encode({"alg": alg, "kid": "demo-1", "typ": "at+jwt"}, body, key)


@pytest.fixture
async def api_http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider)) as http:
        yield http


async def test_demo_api_verifies_the_bearer_jwt(api_http: httpx.AsyncClient) -> None:
    app = load_api().create_api_app(ISSUER, AUDIENCE, http=api_http)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as client:

        async def call(value: str | None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {value}"} if value else {}
            return await client.get("/api/whoami", headers=headers)

        r = await call(token(scope="openid profile", name="Alice"))
        assert r.status_code == 200
        assert r.json()["sub"] == "alice" and r.json()["name"] == "Alice"
        assert r.json()["scope"] == "openid profile" and 0 < r.json()["expires_in"] <= 60
        for bad in (
            None,
            "not-a-jwt",
            token(aud="someone-else"),
            token(iss="https://evil.test"),
            token(exp=int(time.time()) - 5),
            token(key=OctKey.generate_key(256), alg="HS256"),
            token(key=RSAKey.generate_key(2048, parameters={"kid": "demo-1"})),
        ):
            r = await call(bad)
            assert r.status_code == 401, bad
            assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'


@contextlib.asynccontextmanager
async def serve_api(app: Any) -> AsyncIterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", access_log=False, ws="none", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_the_bff_calls_the_demo_api_with_the_session_token(
    api_http: httpx.AsyncClient,
) -> None:
    app = load_api().create_api_app(ISSUER, AUDIENCE, http=api_http)
    store = MemoryStore()
    cookie = await mint_session(store, "alice", token(scope="openid"))
    async with serve_api(app) as port:
        settings = make_settings([{"prefix": "/api", "upstream": f"http://127.0.0.1:{port}"}])
        async with serve(settings, store) as url, httpx.AsyncClient(base_url=url) as client:
            r = await client.get(
                "/api/whoami", headers={"Cookie": f"bff-session={cookie}", "X-CSRF": "1"}
            )
            assert r.status_code == 200, r.text
            assert r.json()["sub"] == "alice"
            r = await client.get("/api/whoami", headers={"X-CSRF": "1"})
            assert r.status_code == 401 and r.json()["error"] == "not_authenticated"
