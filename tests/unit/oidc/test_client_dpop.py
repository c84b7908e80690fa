"""OidcClient with a DPoP key against a provider shaped by respx: `dpop_jkt` at authorize,
a proof on the code and refresh grants, one retry with the provider's nonce (not two), a
DPoP token_type kept only when a proof was sent."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import respx
from joserfc.jwk import ECKey

from bff.errors import IdpRejected
from bff.oidc.client import OidcClient
from bff.oidc.dpop import thumbprint
from bff.oidc.dpop_keys import new_dpop_key
from tests.dpop_verifier import ProofChecker

pytestmark = pytest.mark.anyio

ISSUER = "https://idp.example"
TOKEN = f"{ISSUER}/token"
NOW = 1_800_000_000.0
DPOP_TOKEN = {"access_token": "at", "token_type": "DPoP", "expires_in": 60}


@pytest.fixture
def router() -> respx.Router:
    router = respx.Router(assert_all_called=False)
    doc = {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/auth",
        "token_endpoint": TOKEN,
        "jwks_uri": f"{ISSUER}/jwks",
    }
    router.get(f"{ISSUER}/.well-known/openid-configuration").respond(200, json=doc)
    return router


@pytest.fixture
async def client(router: respx.Router) -> AsyncIterator[OidcClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler)) as http:
        yield OidcClient(
            issuer=ISSUER,
            client_id="c",
            client_secret="s",
            redirect_uri="https://app.example/bff/callback",
            scopes="openid",
            resource=None,
            http=http,
            clock=lambda: NOW,
        )


@pytest.fixture
def key() -> ECKey:
    return new_dpop_key()


async def test_authorization_url_carries_dpop_jkt(client: OidcClient, key: ECKey) -> None:
    url = httpx.URL(
        await client.authorization_url(state="s", nonce="n", code_challenge="x", dpop=key)
    )
    assert url.params["dpop_jkt"] == thumbprint(key)
    plain = httpx.URL(await client.authorization_url(state="s", nonce="n", code_challenge="x"))
    assert "dpop_jkt" not in plain.params


async def test_grants_carry_a_proof_and_retry_once_with_the_nonce(
    client: OidcClient, router: respx.Router, key: ECKey
) -> None:
    checker = ProofChecker()
    challenge = httpx.Response(400, json={"error": "use_dpop_nonce"}, headers={"DPoP-Nonce": "n1"})
    route = router.post(TOKEN).mock(side_effect=[challenge, httpx.Response(200, json=DPOP_TOKEN)])
    tokens = await client.exchange_code(code="c", code_verifier="v", dpop=key)
    assert tokens.token_type == "DPoP"
    first, second = (call.request.headers["dpop"] for call in route.calls)
    for proof, nonce in ((first, None), (second, "n1")):
        jkt = checker.verify(proof, htm="POST", htu=TOKEN, now=NOW, nonce=nonce)
        assert jkt == thumbprint(key)
    # the nonce is kept: the next grant carries it from the start
    route.mock(side_effect=None).respond(200, json=DPOP_TOKEN)
    await client.refresh("rt", dpop=key)
    checker.verify(
        route.calls.last.request.headers["dpop"], htm="POST", htu=TOKEN, now=NOW, nonce="n1"
    )


async def test_a_second_nonce_challenge_is_the_answer(
    client: OidcClient, router: respx.Router, key: ECKey
) -> None:
    challenge = httpx.Response(400, json={"error": "use_dpop_nonce"}, headers={"DPoP-Nonce": "n"})
    route = router.post(TOKEN).mock(return_value=challenge)
    with pytest.raises(IdpRejected) as info:
        await client.refresh("rt", dpop=key)
    assert info.value.error == "use_dpop_nonce"
    assert route.call_count == 2


async def test_without_a_key_no_proof_and_a_bearer(
    client: OidcClient, router: respx.Router
) -> None:
    route = router.post(TOKEN).respond(200, json=DPOP_TOKEN)
    tokens = await client.refresh("rt")
    assert "dpop" not in route.calls.last.request.headers
    assert tokens.token_type == "Bearer"
