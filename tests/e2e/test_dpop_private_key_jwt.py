"""DPoP (RFC 9449) and private_key_jwt (RFC 7523) against panva's oidc-provider: the
client registered with `private_key_jwt` and its public JWKS, `dpop_bound_access_tokens`,
and the provider requiring its DPoP nonce. Login, a proxied call, a refresh and logout
work; the loopback upstream verifies every proof (signature by its header's `jwk`, htm,
htu, ath, a fresh iat, the nonce it hands out) and the JWT access token's `cnf.jkt`, and
refuses a replayed proof. No browser: the provider's login and consent forms are posted."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from bff.config.load import load_settings
from bff.store.memory import MemoryStore
from bff.upstream.origins import UpstreamPool
from bff.web.app import create_app
from tests.browser import Browser
from tests.integration.dpop_upstream import DpopUpstream

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

E2E_DIR = Path(__file__).resolve().parent
CLIENT_ID = "bff-dpop"
RESOURCE = "https://api.e2e.bff.test"
PUBLIC_URL = "http://localhost:8000"


@dataclass
class Provider:
    issuer: str
    process: subprocess.Popen[bytes]
    log: Path

    def stats(self, sub: str) -> dict[str, Any]:
        r = httpx.get(f"{self.issuer}/_test/stats", params={"sub": sub}, timeout=5)
        return r.raise_for_status().json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the private key file bff reads, the public JWKS the provider registers)."""
    folder = tmp_path_factory.mktemp("client-key")
    key = ECKey.generate_key("P-256", parameters={"kid": "bff-dpop-1"}, private=True)
    private, public = folder / "client.jwk", folder / "jwks.json"
    private.write_text(json.dumps(key.as_dict(private=True)))
    public.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    return private, public


@pytest.fixture(scope="module")
def provider(
    tmp_path_factory: pytest.TempPathFactory, client_key: tuple[Path, Path]
) -> Iterator[Provider]:
    node = shutil.which("node")
    if node is None or not (E2E_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("node and tests/e2e/node_modules are needed: bash tests/e2e/install.sh")
    folder = tmp_path_factory.mktemp("provider")
    port_file, log = folder / "port", folder / "provider.log"
    cmd = [
        node, str(E2E_DIR / "provider.mjs"), "--port-file", str(port_file),
        "--client-id", CLIENT_ID, "--client-jwks", str(client_key[1]), "--dpop", "--dpop-nonce",
        "--redirect-uri", f"{PUBLIC_URL}/bff/callback",
        "--post-logout-redirect-uri", f"{PUBLIC_URL}/",
        "--resource", RESOURCE, "--access-token-ttl", "120",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=E2E_DIR)
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().endswith("\n"):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield Provider(f"http://127.0.0.1:{int(port_file.read_text())}", process, log)
    finally:
        process.terminate()  # our own child, by its handle
        process.wait(timeout=10)


def cnf_jkt(issuer: str) -> Any:
    """The resource server's view of a token: a JWT (RFC 9068) signed by the provider,
    for this audience, and its `cnf.jkt` (None when any of it does not hold)."""
    meta = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=5).json()
    keys = KeySet.import_key_set(httpx.get(meta["jwks_uri"], timeout=5).json())

    def jkt_of(token: str) -> str | None:
        try:
            claims = jwt.decode(token, keys, algorithms=["RS256"]).claims
        except Exception:
            return None
        if claims.get("iss") != issuer or claims.get("aud") != RESOURCE:
            return None
        cnf = claims.get("cnf")
        return cnf.get("jkt") if isinstance(cnf, dict) else None

    return jkt_of


@pytest.fixture
def up(provider: Provider) -> Iterator[DpopUpstream]:
    server = DpopUpstream(jkt_of=cnf_jkt(provider.issuer)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def bff(
    provider: Provider, up: DpopUpstream, client_key: tuple[Path, Path]
) -> AsyncIterator[Browser]:
    env = {
        "BFF_ISSUER": provider.issuer,
        "BFF_CLIENT_ID": CLIENT_ID,
        "BFF_CLIENT_AUTH": "private_key_jwt",
        "BFF_CLIENT_KEY_FILE": str(client_key[0]),
        "BFF_DPOP": "true",
        "BFF_RESOURCE": RESOURCE,
        "BFF_SECRET_KEY": "dpop-e2e-secret-key-0123456789abcdef",
    }
    route = {"prefix": "/api", "upstream": up.url, "retry_on_401": True}
    settings = load_settings(env, {"routes": [route]})
    async with httpx.AsyncClient(timeout=10) as http:
        pool = UpstreamPool(timeout=10)
        app = create_app(
            settings, http=http, store=MemoryStore(), discover_on_startup=False, upstreams=pool
        )
        browser = Browser(app, PUBLIC_URL)
        try:
            yield browser
        finally:
            await browser.aclose()
            await pool.aclose()


async def login(browser: Browser, user: str) -> httpx.Response:
    """bff's /bff/login, the provider's login and consent forms, bff's callback."""
    location = (await browser.get("/bff/login")).headers["location"]
    async with httpx.AsyncClient(timeout=10) as person:
        for _ in range(12):
            if location.startswith(f"{PUBLIC_URL}/bff/callback"):
                return await browser.get(location.removeprefix(PUBLIC_URL))
            r = await person.get(location)
            if r.status_code == 200:  # an interaction page: log in, then consent
                action = re.search(r'action="([^"]+)"', r.text)
                prompt = re.search(r'name="prompt" value="([a-z]+)"', r.text)
                assert action is not None and prompt is not None, r.text[:500]
                form = {"prompt": prompt[1]}
                if prompt[1] == "login":
                    form |= {"login": user, "password": "x"}
                r = await person.post(httpx.URL(location).join(action[1]), data=form)
            assert r.is_redirect, (r.status_code, r.text[:500])
            location = str(httpx.URL(location).join(r.headers["location"]))
    raise AssertionError("the login did not come back to bff")


async def test_login_proxy_refresh_replay_and_logout(
    bff: Browser, up: DpopUpstream, provider: Provider
) -> None:
    r = await login(bff, "dpop-alice")
    assert r.status_code == 302, (r.text, provider.log.read_text()[-2000:])
    assert provider.stats("dpop-alice")["authorization_code_grants"] == 1

    up.nonce = "upstream-nonce-1"  # the upstream asks for its nonce once
    r = await bff.get("/api/orders?page=1", csrf=True)
    assert r.status_code == 200, up.refusals
    assert up.refusals == ["use_dpop_nonce"]
    first = up.last()
    authorization, proof = first.header("authorization"), first.header("dpop")
    assert authorization is not None and authorization.startswith("DPoP ")
    assert proof is not None

    # the same proof again, straight to the upstream: refused as a replay
    async with httpx.AsyncClient() as attacker:
        replay = await attacker.get(
            f"{up.url}/api/orders", headers={"Authorization": authorization, "DPoP": proof}
        )
    assert replay.status_code == 401 and up.refusals[-1] == "replayed jti"

    # the upstream refuses the token: bff refreshes (a proof on the refresh grant, which
    # the provider checks against its nonce and the token's key) and retries once
    up.refuse_tokens.add(authorization.removeprefix("DPoP "))
    r = await bff.get("/api/orders", csrf=True)
    assert r.status_code == 200, (up.refusals, provider.log.read_text()[-2000:])
    assert provider.stats("dpop-alice")["refresh_grants"] == 1
    renewed = up.last().header("authorization")
    assert renewed is not None and renewed != authorization and renewed.startswith("DPoP ")

    r = await bff.post("/bff/logout", csrf=True)
    assert r.status_code in (200, 302)
    assert provider.stats("dpop-alice")["revocations"] == 1  # with a client assertion
    errors = [line for line in provider.log.read_text().splitlines() if "server_error" in line]
    assert errors == []
