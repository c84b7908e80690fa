"""A route's own user token (`resource` / `scopes`: a narrowed refresh; `token =
"exchange"`: RFC 8693) against the respx provider: obtained once (one grant under a
storm, in one process and across two sharing Redis), kept in the session record, refreshed
ahead of expiry, never handed to another route; the rotated refresh token becomes the
session's; a provider without token exchange answers 502 token_exchange_unavailable, and
start-up logs an error naming the routes it leaves without a token."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bff.answers import Kind
from bff.config.model import Frontend, RouteConfig
from bff.oidc.client import OidcClient
from bff.session.records import Session, decode_session, encode_session
from bff.session.service import SessionRef
from bff.store.memory import MemoryStore
from bff.tokens.audience import audience_for, route_token
from bff.tokens.records import TokenSet
from bff.tokens.results import Bearer, TokenFailure
from tests.fake_idp import CLIENT_ID, CLIENT_SECRET, ISSUER, TOKEN_EXCHANGE, Clock, FakeIdp
from tests.unit.tokens.test_manager import Instance, new_session, redis_stores  # noqa: F401

pytestmark = pytest.mark.anyio

ORDERS = RouteConfig(
    prefix="/orders", upstream="http://o", resource="https://orders.example/", scopes="orders:read"
)
BILLING = RouteConfig(prefix="/billing", upstream="http://b", resource="https://billing.example/b")
SWAP = RouteConfig(prefix="/swap", upstream="http://s", token="exchange", resource="urn:swap")


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def token(inst: Instance, ref: SessionRef, route: RouteConfig, **kw: Any) -> Any:
    session = await inst.sessions.load(ref)
    assert session is not None
    return await inst.tokens.for_route(ref, session, route, **kw)


async def stored(inst: Instance, ref: SessionRef) -> Session:
    session = await inst.sessions.load(ref)
    assert session is not None
    return session


def test_only_narrowed_and_exchange_routes_have_an_audience() -> None:
    assert audience_for(RouteConfig(prefix="/a", upstream="http://a")) is None
    assert audience_for(RouteConfig(prefix="/a", upstream="http://a", token="client")) is None
    narrowed, swap = audience_for(ORDERS), audience_for(SWAP)
    assert narrowed is not None and narrowed.grant == "refresh_token"
    assert swap is not None and swap.grant == "exchange"
    # Another resource, or the same resource on another route: another key.
    moved = RouteConfig(prefix="/orders", upstream="http://o", resource="https://orders.example/")
    other = RouteConfig(
        prefix="/o2", upstream="http://o", resource=ORDERS.resource, scopes="orders:read"
    )
    keys = {a.key for a in (narrowed, audience_for(moved), audience_for(other)) if a}
    assert len(keys) == 3


async def test_narrowed_token_by_refresh_grant_kept_in_the_session(clock: Clock) -> None:
    idp = FakeIdp(clock=clock)
    inst = Instance(idp, MemoryStore(clock=clock), clock)
    ref = await new_session(inst, idp, clock, expires_in=3600)
    result = await token(inst, ref, ORDERS)
    assert isinstance(result, Bearer) and result.token == "access-orders_example-1"
    (form,) = idp.token_requests
    assert form["grant_type"] == ["refresh_token"]
    assert form["resource"] == ["https://orders.example/"]
    assert form["scope"] == ["orders:read"]
    session = await stored(inst, ref)
    assert session.tokens.access_token == "access-token-0-XYZ"  # the session's own: kept
    assert session.tokens.refresh_token == "refresh-token-1-XYZ"  # rotated: taken over
    audience = audience_for(ORDERS)
    assert audience is not None
    kept = route_token(session, audience)
    assert kept is not None and kept.access_token == "access-orders_example-1"
    assert kept.refresh_token is None
    # Cached: no second grant, and the session's main token still goes to plain routes.
    assert (await token(inst, ref, ORDERS)).token == "access-orders_example-1"
    plain = RouteConfig(prefix="/api", upstream="http://a")
    assert (await token(inst, ref, plain)).token == "access-token-0-XYZ"
    assert len(idp.token_requests) == 1
    await inst.aclose()


async def test_two_routes_two_tokens_never_each_others(clock: Clock) -> None:
    idp = FakeIdp(clock=clock)
    inst = Instance(idp, MemoryStore(clock=clock), clock)
    ref = await new_session(inst, idp, clock, expires_in=3600)
    a = await token(inst, ref, ORDERS)
    b = await token(inst, ref, BILLING)
    assert a.token == "access-orders_example-1" and b.token == "access-b-2"
    for _ in range(3):
        assert (await token(inst, ref, ORDERS)).token == a.token
        assert (await token(inst, ref, BILLING)).token == b.token
    # the second grant used the refresh token the first one rotated in (no reuse)
    assert idp.token_requests[1]["refresh_token"] == ["refresh-token-1-XYZ"]
    assert idp.reused_refresh_tokens == []
    await inst.aclose()


async def test_100_concurrent_requests_one_narrowing_grant(clock: Clock) -> None:
    idp = FakeIdp(clock=clock)
    idp.token_delay = 0.05
    inst = Instance(idp, MemoryStore(clock=clock), clock)
    ref = await new_session(inst, idp, clock, expires_in=3600)
    results = await asyncio.gather(*(token(inst, ref, ORDERS) for _ in range(100)))
    assert {r.token for r in results} == {"access-orders_example-1"}
    assert len(idp.token_requests) == 1
    await inst.aclose()


async def test_two_instances_sharing_redis_one_narrowing_grant(
    clock: Clock,
    redis_stores: Any,  # noqa: F811 - the fixture of test_manager
) -> None:
    store_a, store_b, _ = redis_stores
    idp = FakeIdp(clock=clock)
    idp.token_delay = 0.1
    a, b = Instance(idp, store_a, clock), Instance(idp, store_b, clock)
    ref = await new_session(a, idp, clock, expires_in=3600)
    results = await asyncio.gather(
        *(token(a, ref, ORDERS) for _ in range(20)), *(token(b, ref, ORDERS) for _ in range(20))
    )
    assert {r.token for r in results} == {"access-orders_example-1"}
    assert idp.refresh_grants == 1
    await a.aclose()
    await b.aclose()


async def test_narrowed_token_refreshed_ahead_of_expiry(clock: Clock) -> None:
    idp = FakeIdp(clock=clock)
    idp.access_ttl = 100
    inst = Instance(idp, MemoryStore(clock=clock), clock)
    ref = await new_session(inst, idp, clock, expires_in=3600)
    first = await token(inst, ref, ORDERS)
    clock.now += 60  # 40 s left: more than the 30 s skew
    assert (await token(inst, ref, ORDERS)).token == first.token
    clock.now += 15  # 25 s left: due
    second = await token(inst, ref, ORDERS)
    assert second.token == "access-orders_example-2" and len(idp.token_requests) == 2
    # an upstream's 401 moments after that refresh stands (as for the session's token)
    third = await token(inst, ref, ORDERS, stale_token=second.token)
    assert third.token == second.token and len(idp.token_requests) == 2
    await inst.aclose()


async def test_provider_refusing_the_resource_keeps_the_session(clock: Clock) -> None:
    idp = FakeIdp(clock=clock)
    idp.token_status, idp.token_body = 400, {"error": "invalid_target"}
    inst = Instance(idp, MemoryStore(clock=clock), clock)
    ref = await new_session(inst, idp, clock, expires_in=3600)
    result = await token(inst, ref, ORDERS)
    assert isinstance(result, TokenFailure) and result.kind is Kind.IDP_UNAVAILABLE
    assert (await stored(inst, ref)).tokens.refresh_token == "refresh-token-0-XYZ"
    await inst.aclose()


async def test_exchange_route_gets_the_exchanged_token_and_keeps_no_refresh_token(
    clock: Clock,
) -> None:
    idp = FakeIdp(clock=clock)
    inst = Instance(idp, MemoryStore(clock=clock), clock)
    ref = await new_session(inst, idp, clock, expires_in=3600)
    result = await token(inst, ref, SWAP)
    assert isinstance(result, Bearer) and result.token == "exchanged-urn_swap-1"
    (form,) = idp.token_requests
    assert form["grant_type"] == [TOKEN_EXCHANGE]
    assert form["subject_token"] == ["access-token-0-XYZ"]
    assert form["subject_token_type"] == ["urn:ietf:params:oauth:token-type:access_token"]
    assert form["resource"] == ["urn:swap"]
    session = await stored(inst, ref)
    assert session.tokens.refresh_token == "refresh-token-0-XYZ"  # untouched
    assert (await token(inst, ref, SWAP)).token == result.token  # cached
    assert idp.exchanges == 1
    await inst.aclose()


async def test_exchange_of_a_due_session_token_refreshes_it_first(clock: Clock) -> None:
    idp = FakeIdp(clock=clock)
    inst = Instance(idp, MemoryStore(clock=clock), clock)
    ref = await new_session(inst, idp, clock, expires_in=10)  # due
    result = await token(inst, ref, SWAP)
    assert result.token == "exchanged-urn_swap-2"
    grants = [f["grant_type"][0] for f in idp.token_requests]
    assert grants == ["refresh_token", TOKEN_EXCHANGE]
    assert idp.token_requests[1]["subject_token"] == ["access-token-1-XYZ"]
    await inst.aclose()


async def test_provider_without_token_exchange_answers_502(clock: Clock) -> None:
    idp = FakeIdp(clock=clock)
    idp.discovery["grant_types_supported"] = ["authorization_code", "refresh_token"]
    inst = Instance(idp, MemoryStore(clock=clock), clock)
    ref = await new_session(inst, idp, clock, expires_in=3600)
    result = await token(inst, ref, SWAP)
    assert isinstance(result, TokenFailure)
    assert (result.status, result.code) == (502, "token_exchange_unavailable")
    assert idp.token_requests == []
    assert await inst.sessions.load(ref) is not None
    await inst.aclose()


def test_route_tokens_survive_the_session_record(clock: Clock) -> None:
    audience = audience_for(ORDERS)
    assert audience is not None
    session = Session(
        sub="alice",
        idp_sid=None,
        claims={"sub": "alice"},
        tokens=TokenSet(access_token="a", expires_at=10, refresh_token="r"),
        created_at=1,
        expires_at=100,
        route_tokens={audience.key: TokenSet(access_token="narrow", expires_at=50, scope="s")},
    )
    again = decode_session(encode_session(session))
    assert again == session
    plain = Session("alice", None, {"sub": "alice"}, session.tokens, 1, 100)
    assert decode_session(encode_session(plain)).route_tokens == {}


async def test_start_up_logs_exchange_routes_the_provider_cannot_serve(
    caplog: pytest.LogCaptureFixture,
) -> None:
    frontend = Frontend(
        issuer=ISSUER, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, routes=(SWAP,)
    )
    for grants, logged in ((["refresh_token", TOKEN_EXCHANGE], False), (["refresh_token"], True)):
        idp = FakeIdp()
        idp.discovery["grant_types_supported"] = grants
        caplog.clear()
        async with idp.http() as http:
            await OidcClient.for_frontend(frontend, http=http).discover_forever()
        found = [r for r in caplog.records if "token_exchange_unavailable" in r.getMessage()]
        assert bool(found) is logged
        if logged:
            assert found[0].levelname == "ERROR" and "/swap" in found[0].getMessage()
