"""bff.oidc.login without the web framework: the login asks the provider with PKCE, state
and nonce and stores its sealed state through the session service; the callback takes
that state once and refuses a missing, unknown, replayed, expired or foreign one, a
foreign issuer, a wrong nonce and the provider's error answer; logout ends the session
through `SessionService.end`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from bff.config.model import Frontend
from bff.errors import BadRequest, ProviderErrorAnswer
from bff.oidc.client import OidcClient
from bff.oidc.login import LoginFlow, LoginStart
from bff.oidc.login_checks import LOGIN_STATE_TTL, binding_hash, state_aad
from bff.oidc.pkce import code_challenge
from bff.session.cookies import CookieSigner
from bff.session.crypto import KeyRing
from bff.session.login_record import LoginState, decode_login_state
from bff.session.records import Session
from bff.session.service import EndReason, SessionService
from bff.store.memory import MemoryStore
from tests.fake_idp import CLIENT_ID, CLIENT_SECRET, ISSUER, SECRET_KEY, Clock, FakeIdp, query

pytestmark = pytest.mark.anyio

APP = "https://app.example"


class SpyService(SessionService):
    """The session service, noting the calls the login flow makes."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.calls: list[tuple[Any, ...]] = []

    async def put_login_state(self, state: str, blob: bytes, *, ttl: int) -> None:
        self.calls.append(("put_login_state", state, blob, ttl))
        await super().put_login_state(state, blob, ttl=ttl)

    async def take_login_state(self, state: str) -> bytes | None:
        self.calls.append(("take_login_state", state))
        return await super().take_login_state(state)

    async def end(
        self, session_hash_value: str, session: Session | None, reason: EndReason, **kw: Any
    ) -> bool:
        self.calls.append(("end", session_hash_value, reason, kw.get("revoke")))
        return await super().end(session_hash_value, session, reason, **kw)

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [call for call in self.calls if call[0] == name]


@dataclass
class World:
    idp: FakeIdp
    clock: Clock
    keys: KeyRing
    signer: CookieSigner
    sessions: SpyService
    flow: LoginFlow

    def stored_login(self, state: str) -> LoginState:
        [(_, _, blob, _)] = [c for c in self.sessions.named("put_login_state") if c[1] == state]
        return decode_login_state(self.keys.open(blob, aad=state_aad(state)))


async def world_with(idp: FakeIdp, flow_clock: Clock | None = None) -> AsyncIterator[World]:
    """`flow_clock`: the login flow's own clock (default: the one the rest shares)."""
    clock = idp.clock
    keys = KeyRing([SECRET_KEY])
    signer = CookieSigner(keys.signing_keys)
    frontend = Frontend(
        public_url=APP, issuer=ISSUER, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )
    async with idp.http() as http:
        oidc = OidcClient.for_frontend(frontend, http=http, clock=clock)
        sessions = SpyService(
            store=MemoryStore(clock=clock),
            keys=keys,
            signer=signer,
            idle_timeout=1800,
            max_lifetime=86400,
            clock=clock,
            revoke=oidc.revoke,
        )
        flow = LoginFlow(
            frontend=frontend,
            pending_per_client=5,
            pending_total=100,
            oidc=oidc,
            sessions=sessions,
            keys=keys,
            signer=signer,
            clock=flow_clock or clock,
        )
        yield World(idp, clock, keys, signer, sessions, flow)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async for w in world_with(FakeIdp(clock=Clock())):
        yield w


async def login(w: World, binding_cookie: str | None = None) -> tuple[LoginStart, dict[str, str]]:
    start = await w.flow.start(return_url="/app", binding_cookie=binding_cookie, client="192.0.2.1")
    return start, query(start.redirect_to)


async def callback(w: World, params: dict[str, str], binding_cookie: str | None) -> Any:
    return await w.flow.finish(
        {"iss": ISSUER, **params}, binding_cookie=binding_cookie, user_agent="ua", previous=None
    )


# --- /bff/login -----------------------------------------------------------------------------
async def test_login_asks_for_a_code_with_pkce_state_and_nonce_and_stores_its_state(
    world: World,
) -> None:
    start, params = await login(world)
    assert start.redirect_to.startswith(f"{ISSUER}/authorize?")
    assert params["response_type"] == "code" and params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == f"{APP}/bff/callback"
    assert params["code_challenge_method"] == "S256"
    state, nonce = params["state"], params["nonce"]
    assert len(state) >= 43 and len(nonce) >= 43 and state != nonce
    [(_, stored_state, _, ttl)] = world.sessions.named("put_login_state")
    assert (stored_state, ttl) == (state, LOGIN_STATE_TTL)
    stored = world.stored_login(state)
    assert code_challenge(stored.code_verifier) == params["code_challenge"]
    assert stored.code_verifier not in start.redirect_to  # only its challenge travels
    assert stored.nonce == nonce and stored.return_url == "/app" and stored.issuer == ISSUER
    binding = world.signer.unsign_binding(start.binding_cookie)
    assert binding is not None and stored.binding == binding_hash(binding)
    assert stored.client_group == "login:client:192.0.2.1"
    # A second login in the same browser reuses its binding; state and nonce are new.
    again, params2 = await login(world, start.binding_cookie)
    assert world.signer.unsign_binding(again.binding_cookie) == binding
    assert params2["state"] != state and params2["nonce"] != nonce


async def test_login_with_par_sends_the_parameters_server_to_server() -> None:
    async for w in world_with(FakeIdp(clock=Clock(), par=True)):
        _, params = await login(w)
        assert params == {"client_id": CLIENT_ID, "request_uri": "urn:par:1"}
        [par] = [call.request for call in w.idp.router.calls if call.request.url.path == "/par"]
        sent = query("?" + par.content.decode())
        assert sent["code_challenge_method"] == "S256"
        stored = w.stored_login(sent["state"])
        assert code_challenge(stored.code_verifier) == sent["code_challenge"]
        assert stored.nonce == sent["nonce"]
        assert "authorization" in par.headers  # client-authenticated


async def test_a_login_the_provider_cannot_start_stores_nothing(world: World) -> None:
    world.idp.discovery["issuer"] = "https://mix-up.example"  # discovery fails
    with pytest.raises(Exception, match="discovery"):
        await login(world)
    assert world.sessions.named("put_login_state") == []


# --- /bff/callback --------------------------------------------------------------------------
async def test_callback_exchanges_the_code_with_the_verifier_and_creates_a_session(
    world: World,
) -> None:
    start, params = await login(world)
    world.idp.next_nonce = params["nonce"]
    result = await callback(world, {"state": params["state"], "code": "c-1"}, start.binding_cookie)
    [form] = world.idp.token_requests
    stored = world.stored_login(params["state"])
    assert form["code"] == ["c-1"] and form["code_verifier"] == [stored.code_verifier]
    assert result.return_url == "/app" and result.session.sub == "alice"
    assert await world.sessions.load(result.ref) == result.session
    assert world.sessions.named("take_login_state") == [("take_login_state", params["state"])]


async def reason_of(w: World, params: dict[str, str], binding_cookie: str | None) -> str:
    with pytest.raises(BadRequest) as refused:
        await callback(w, params, binding_cookie)
    return refused.value.reason


async def test_callback_refuses_a_missing_unknown_or_replayed_state(world: World) -> None:
    start, params = await login(world)
    world.idp.next_nonce = params["nonce"]
    cookie = start.binding_cookie
    assert await reason_of(world, {"code": "c"}, cookie) == "state_missing"
    assert await reason_of(world, {"state": "forged-state", "code": "c"}, cookie) == "state_unknown"
    await callback(world, {"state": params["state"], "code": "c"}, cookie)
    replayed = await reason_of(world, {"state": params["state"], "code": "c"}, cookie)
    assert replayed == "state_unknown"
    assert len(world.idp.token_requests) == 1  # the replay never reached the provider


async def test_callback_refuses_another_browser_or_none(world: World) -> None:
    start, params = await login(world)
    other, _ = await login(world)  # another browser: its own binding
    state = {"state": params["state"], "code": "c"}
    assert await reason_of(world, state, other.binding_cookie) == "binding_mismatch"
    _, params = await login(world, start.binding_cookie)
    assert await reason_of(world, {"state": params["state"], "code": "c"}, None) == (
        "binding_missing"
    )
    assert world.idp.token_requests == []


async def test_callback_refuses_a_login_that_took_too_long() -> None:
    # The store keeps the state a little longer than the flow allows (its own expiry
    # is coarser): the state's age decides.
    flow_clock = Clock()
    async for w in world_with(FakeIdp(clock=Clock()), flow_clock):
        start, params = await login(w)
        flow_clock.now += LOGIN_STATE_TTL + 1
        state = {"state": params["state"], "code": "c"}
        assert await reason_of(w, state, start.binding_cookie) == "state_expired"
        assert w.idp.token_requests == []


async def test_callback_refuses_a_foreign_issuer(world: World) -> None:
    start, params = await login(world)
    with pytest.raises(BadRequest) as refused:
        await callback(
            world,
            {"state": params["state"], "code": "c", "iss": "https://evil.example"},
            start.binding_cookie,
        )
    assert refused.value.code == "invalid_issuer"
    assert world.sessions.named("take_login_state") == []  # refused before the state


async def test_callback_refuses_an_id_token_with_another_nonce(world: World) -> None:
    start, params = await login(world)
    world.idp.next_nonce = "not-the-nonce-of-this-login"
    with pytest.raises(BadRequest) as refused:
        await callback(world, {"state": params["state"], "code": "c"}, start.binding_cookie)
    assert refused.value.code == "invalid_id_token" and "nonce" in refused.value.description
    assert world.sessions.named("end") == []
    assert await world.sessions.find(sub="alice") == []  # no session


async def test_callback_turns_the_providers_error_into_an_answer(world: World) -> None:
    start, params = await login(world)
    with pytest.raises(ProviderErrorAnswer) as refused:
        await callback(
            world,
            {"state": params["state"], "error": "access_denied", "error_description": "no\x00"},
            start.binding_cookie,
        )
    assert refused.value.code == "access_denied" and refused.value.status == 400
    assert refused.value.description == "no"  # unprintable characters dropped
    assert world.idp.token_requests == []
    # The state was taken: the same answer cannot be replayed.
    again = await reason_of(world, {"state": params["state"], "code": "c"}, start.binding_cookie)
    assert again == "state_unknown"


# --- /bff/logout ----------------------------------------------------------------------------
async def test_logout_ends_the_session_through_the_service(world: World) -> None:
    start, params = await login(world)
    world.idp.next_nonce = params["nonce"]
    result = await callback(world, {"state": params["state"], "code": "c"}, start.binding_cookie)
    target = await world.flow.logout(result.ref, result.session, client_ip="192.0.2.1")
    assert world.sessions.named("end") == [("end", result.ref.hash, "logout", True)]
    assert await world.sessions.load(result.ref) is None
    assert [r["token"] for r in world.idp.revocations] == [[result.session.tokens.refresh_token]]
    sent = query(target)
    assert target.startswith(f"{ISSUER}/end_session?")
    assert sent["id_token_hint"] == result.session.tokens.id_token
    assert sent["post_logout_redirect_uri"] == f"{APP}/"
