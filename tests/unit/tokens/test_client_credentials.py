"""`token = "client"`: the bff's own client-credentials token, cached per process until
near expiry, one grant for 100 concurrent requests, narrowed by the route's resource and
scopes, a new one when the upstream refuses it, and a failure never cached."""

from __future__ import annotations

import asyncio

import pytest

from bff.answers import Kind
from bff.oidc.client import OidcClient
from bff.tokens.client_credentials import ClientTokens
from bff.tokens.results import Bearer, TokenFailure
from tests.fake_idp import CLIENT_ID, CLIENT_SECRET, ISSUER, Clock, FakeIdp

pytestmark = pytest.mark.anyio


def make(idp: FakeIdp, clock: Clock) -> tuple[ClientTokens, OidcClient]:
    oidc = OidcClient(
        issuer=ISSUER,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uri="http://localhost:8000/bff/callback",
        scopes="openid",
        resource=None,
        http=idp.http(),
        clock=clock,
    )
    return ClientTokens(oidc=oidc, clock=clock, skew=30), oidc


async def test_100_concurrent_requests_one_grant_then_cached() -> None:
    clock = Clock()
    idp = FakeIdp(clock=clock)
    idp.token_delay = 0.05
    clients, _ = make(idp, clock)
    results = await asyncio.gather(
        *(clients.token(resource="urn:reports", scope="reports") for _ in range(100))
    )
    assert {r.token for r in results if isinstance(r, Bearer)} == {"client-urn_reports-1"}
    assert idp.client_grants == 1
    (form,) = idp.token_requests
    assert form == {
        "grant_type": ["client_credentials"],
        "scope": ["reports"],
        "resource": ["urn:reports"],
    }
    clock.now += 200  # 100 s left of 300: still cached
    assert (await clients.token(resource="urn:reports", scope="reports")).token.endswith("-1")
    clock.now += 80  # 20 s left: due
    again = await clients.token(resource="urn:reports", scope="reports")
    assert again.token == "client-urn_reports-2" and idp.client_grants == 2


async def test_each_resource_its_own_token_and_a_refused_one_replaced() -> None:
    clock = Clock()
    idp = FakeIdp(clock=clock)
    clients, _ = make(idp, clock)
    a = await clients.token(resource="urn:a", scope=None)
    b = await clients.token(resource="urn:b", scope=None)
    assert (a.token, b.token) == ("client-urn_a-1", "client-urn_b-2")
    replaced = await clients.token(resource="urn:a", scope=None, stale_token=a.token)
    assert replaced.token == "client-urn_a-3"
    # a 401 for a token already replaced does not ask again
    again = await clients.token(resource="urn:a", scope=None, stale_token=a.token)
    assert again.token == replaced.token
    assert idp.client_grants == 3


async def test_a_failed_grant_is_502_and_not_cached() -> None:
    clock = Clock()
    idp = FakeIdp(clock=clock)
    clients, _ = make(idp, clock)
    idp.token_status, idp.token_body = 400, {"error": "unauthorized_client"}
    failed = await clients.token(resource=None, scope=None)
    assert isinstance(failed, TokenFailure) and failed.kind is Kind.IDP_UNAVAILABLE
    idp.token_status, idp.token_body = 200, None
    assert isinstance(await clients.token(resource=None, scope=None), Bearer)
