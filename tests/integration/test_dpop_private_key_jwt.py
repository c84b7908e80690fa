"""DPoP and private_key_jwt end to end against the fake provider (which verifies every
client assertion and token-request proof) and a real loopback resource server (which
verifies every upstream proof and the token's binding): login with `dpop_jkt` at PAR,
the provider's and the upstream's nonces (one retry each), a refresh with a proof, a
replayed proof refused, revocation at logout with an assertion."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from bff.config.load import load_settings
from bff.store.memory import MemoryStore
from bff.upstream.origins import UpstreamPool
from bff.web.app import create_app
from tests.browser import Browser
from tests.fake_idp import CLIENT_ID, ISSUER, SECRET_KEY, FakeIdp
from tests.integration.dpop_upstream import DpopUpstream

pytestmark = pytest.mark.anyio


@pytest.fixture
def up() -> Iterator[DpopUpstream]:
    server = DpopUpstream().start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class World:
    idp: FakeIdp
    browser: Browser
    up: DpopUpstream


@pytest.fixture
async def world(up: DpopUpstream, tmp_path: Path) -> AsyncIterator[World]:
    client_key = ECKey.generate_key("P-256", parameters={"kid": "bff-1"}, private=True)
    key_file = tmp_path / "client.jwk"
    key_file.write_text(json.dumps(client_key.as_dict(private=True)))
    idp = FakeIdp(par=True, dpop=True, client_jwks={"keys": [client_key.as_dict(private=False)]})
    up.jkt_of = idp.bound.get  # the resource server's introspection
    env = {
        "BFF_ISSUER": ISSUER,
        "BFF_CLIENT_ID": CLIENT_ID,
        "BFF_CLIENT_AUTH": "private_key_jwt",
        "BFF_CLIENT_KEY_FILE": str(key_file),
        "BFF_SECRET_KEY": SECRET_KEY,
        "BFF_DPOP": "true",
    }
    settings = load_settings(env, {"routes": [{"prefix": "/api", "upstream": up.url}]})
    http, pool = idp.http(), UpstreamPool(timeout=5)
    app = create_app(
        settings, http=http, store=MemoryStore(), discover_on_startup=False, upstreams=pool
    )
    browser = Browser(app)
    try:
        yield World(idp, browser, up)
    finally:
        await browser.aclose()
        await pool.aclose()
        await http.aclose()


async def login(w: World) -> httpx.Response:
    r = await w.browser.get("/bff/login")
    assert r.status_code == 302, r.text
    assert httpx.URL(r.headers["location"]).params["request_uri"] == "urn:par:1"
    pushed = {k: v[0] for k, v in w.idp.par_requests[-1].items()}
    w.idp.next_nonce = pushed["nonce"]
    return await w.browser.get(
        "/bff/callback", params={"code": "c", "state": pushed["state"], "iss": ISSUER}
    )


async def test_login_proxy_refresh_and_logout(world: World) -> None:
    idp, up = world.idp, world.up
    idp.dpop_nonce = "provider-nonce-1"  # the first token request is challenged
    r = await login(world)
    assert r.status_code == 302, r.text
    # PAR was challenged once (use_dpop_nonce) and retried with the nonce, which the
    # token request then carried from the start (the nonce is kept per provider origin)
    assert len(idp.par_requests) == 2
    assert [f["grant_type"] for f in idp.token_requests] == [["authorization_code"]]
    # dpop_jkt at PAR names the key the code's tokens are bound to
    jkt = idp.bound["access-token-1-XYZ"]
    assert idp.par_requests[-1]["dpop_jkt"] == [jkt]
    # every provider call carried its own verified assertion (a fresh jti each time)
    assert len(idp.assertions) == 3

    up.nonce = "upstream-nonce-1"  # the first upstream request is challenged too
    r = await world.browser.get("/api/orders?x=1", csrf=True)
    assert r.status_code == 200, up.refusals
    assert up.refusals == ["use_dpop_nonce"] and up.accepted == 1
    assert up.last().header("authorization") == "DPoP access-token-1-XYZ"
    r = await world.browser.get("/api/orders", csrf=True)
    assert r.status_code == 200 and up.refusals == ["use_dpop_nonce"]  # nonce remembered

    # a replayed proof is refused by the upstream
    replay_headers = {"Authorization": "DPoP access-token-1-XYZ", "DPoP": up.last().header("dpop")}
    async with httpx.AsyncClient() as raw:
        replayed = await raw.get(f"{up.url}/api/orders", headers=replay_headers)
    assert replayed.status_code == 401 and up.refusals[-1] == "replayed jti"

    proof = up.last().header("dpop")
    assert proof is not None
    header = jws.extract_compact(proof.encode()).headers()
    assert "d" not in header["jwk"] and ECKey.import_key(header["jwk"]).thumbprint() == jkt

    r = await world.browser.post("/bff/logout", csrf=True)
    assert r.status_code in (200, 302)
    assert idp.revocations and "client_assertion" in idp.revocations[-1]
    assert "client_secret" not in idp.revocations[-1]


async def test_refresh_carries_a_proof_and_the_new_token_stays_bound(world: World) -> None:
    idp, up = world.idp, world.up
    idp.access_ttl = 1  # within the refresh skew: the first proxied call refreshes
    assert (await login(world)).status_code == 302
    jkt = idp.bound["access-token-1-XYZ"]
    r = await world.browser.get("/api/a", csrf=True)
    assert r.status_code == 200, up.refusals
    grants = [f["grant_type"][0] for f in idp.token_requests]
    assert grants == ["authorization_code", "refresh_token"]
    # the provider verified the refresh's proof against the key the refresh token is
    # bound to, and bound the new tokens to the same key
    assert idp.bound["access-token-2-XYZ"] == jkt
    assert up.last().header("authorization") == "DPoP access-token-2-XYZ"
    assert up.refusals == []


async def test_a_proof_by_another_key_is_refused_by_the_upstream(world: World) -> None:
    assert (await login(world)).status_code == 302
    world.up.jkt_of = lambda token: "another-key-thumbprint"
    r = await world.browser.get("/api/a", csrf=True)
    assert r.status_code == 401
    assert world.up.refusals == ["the token is not bound to the proof's key (cnf.jkt)"]
