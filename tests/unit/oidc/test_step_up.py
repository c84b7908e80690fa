"""Step-up (RFC 9470): the WWW-Authenticate challenge grammar (RFC 9110 §11), what a
step-up challenge asks for, the bounds on acr_values / max_age, the local login URL, and
the login flow that asks the provider for them (PAR or the authorization URL) and checks
the new ID token's acr / auth_time; and login naming every route's resource (RFC 8707)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from bff.config.model import Frontend, RouteConfig
from bff.errors import BadRequest
from bff.oidc.client import OidcClient
from bff.oidc.step_up import (
    MAX_AGE_LIMIT,
    Challenge,
    StepUp,
    check_acr_values,
    check_max_age,
    check_step_up_claims,
    login_url,
    parse_challenges,
    step_up_from,
)
from tests.fake_idp import CLIENT_ID, CLIENT_SECRET, ISSUER, Clock, FakeIdp, query
from tests.unit.oidc.test_login import World, callback, world_with

pytestmark = pytest.mark.anyio

RFC9470 = (
    'Bearer error="insufficient_user_authentication", error_description="A different '
    'authentication level is required", acr_values="myACR"'
)


# --- the challenge grammar ------------------------------------------------------------------
def test_the_rfc_9470_example() -> None:
    (c,) = parse_challenges(RFC9470)
    assert c.scheme == "bearer"
    assert c.params["error"] == "insufficient_user_authentication"
    assert c.params["acr_values"] == "myACR"
    assert c.params["error_description"] == "A different authentication level is required"


def test_several_challenges_commas_in_quotes_escapes_token68_and_case() -> None:
    value = (
        'Basic realm="a, b=c", Newauth realm="apps", type=1, title="Login to \\"apps\\"",'
        " Negotiate abc+/==, BEARER Error=insufficient_user_authentication ,max_age=60"
    )
    assert parse_challenges(value) == (
        Challenge("basic", {"realm": "a, b=c"}),
        Challenge("newauth", {"realm": "apps", "type": "1", "title": 'Login to "apps"'}),
        Challenge("negotiate", token68="abc+/=="),
        Challenge("bearer", {"error": "insufficient_user_authentication", "max_age": "60"}),
    )
    assert parse_challenges(" , Bearer,, ") == (Challenge("bearer"),)


@pytest.mark.parametrize(
    "value",
    [
        '="x"',
        "Bearer a=b c",
        'Bearer error="unterminated',
        'Bearer a="1", a="2"',  # RFC 9110 §11.2: each parameter name only once
        "Bearer " + "x" * 9000,
    ],
)
def test_malformed_challenges_are_refused(value: str) -> None:
    with pytest.raises(ValueError):
        parse_challenges(value)


def test_what_a_step_up_challenge_asks_for() -> None:
    assert step_up_from([RFC9470]) == StepUp(acr_values="myACR")
    both = 'Basic realm="x", Bearer error="insufficient_user_authentication", max_age=5, acr_values="urn:a gold"'
    assert step_up_from([both]) == StepUp(acr_values="urn:a gold", max_age=5)
    # in a second header field, too
    assert step_up_from(['Basic realm="x"', RFC9470]) == StepUp(acr_values="myACR")


@pytest.mark.parametrize(
    "value",
    [
        'Bearer error="invalid_token"',
        'Basic error="insufficient_user_authentication"',
        'Bearer error="insufficient_user_authentication", max_age="-1"',
        'Bearer error="insufficient_user_authentication", acr_values="a\\"b"',
        'Bearer error="insufficient_user_authentication", acr_values="a  b"',
        'Bearer error="insufficient_user_authentication", acr_values="' + "a" * 600 + '"',
        "Bearer error=insufficient_user_authentication junk",
    ],
)
def test_any_other_401_is_not_a_step_up(value: str) -> None:
    assert step_up_from([value]) is None


def test_bounds_of_acr_values_and_max_age() -> None:
    assert (
        check_acr_values("urn:mace:incommon:iap:silver gold") == "urn:mace:incommon:iap:silver gold"
    )
    for bad in ("", " ", "a\tb", "é", "<x>", "a" * 257):
        with pytest.raises(ValueError):
            check_acr_values(bad)
    assert check_max_age("0") == 0 and check_max_age(str(MAX_AGE_LIMIT)) == MAX_AGE_LIMIT
    for wrong in ("-1", "1.5", "", "٣", str(MAX_AGE_LIMIT + 1), "9" * 40):
        with pytest.raises(ValueError):
            check_max_age(wrong)


def test_login_url_is_local_and_asks_for_the_step_up() -> None:
    url = login_url(StepUp(acr_values="urn:a gold", max_age=0), "/orders?id=1")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("", "", "/bff/login")
    assert parse_qs(parts.query) == {
        "returnUrl": ["/orders?id=1"],
        "acr_values": ["urn:a gold"],
        "max_age": ["0"],
    }


def test_the_new_id_token_must_reach_what_was_asked() -> None:
    now = 1_800_000_000
    step = StepUp(acr_values="silver gold", max_age=300)
    check_step_up_claims({"acr": "gold", "auth_time": now - 10}, step, now=now)
    for claims in (
        {"acr": "bronze", "auth_time": now},
        {"auth_time": now},
        {"acr": "gold"},
        {"acr": "gold", "auth_time": now - 1000},
        {"acr": "gold", "auth_time": True},
    ):
        with pytest.raises(ValueError):
            check_step_up_claims(claims, step, now=now)


# --- the login flow ---------------------------------------------------------------------------
async def step_up_login(w: World, **kw: str) -> tuple[str, dict[str, str]]:
    start = await w.flow.start(return_url="/orders", binding_cookie=None, client="192.0.2.1", **kw)
    return start.binding_cookie, query(start.redirect_to)


async def test_login_asks_the_provider_for_acr_values_and_max_age() -> None:
    async for w in world_with(FakeIdp(clock=Clock())):
        _, params = await step_up_login(w, acr_values="gold", max_age="0")
        assert params["acr_values"] == "gold" and params["max_age"] == "0"
    async for w in world_with(FakeIdp(clock=Clock(), par=True)):
        _, params = await step_up_login(w, acr_values="urn:a gold")
        [sent] = w.idp.par_requests
        assert sent["acr_values"] == ["urn:a gold"] and "max_age" not in sent


@pytest.mark.parametrize(("acr", "age"), [('a"b', None), (None, "-5"), (None, "x"), ("", None)])
async def test_login_refuses_malformed_step_up_parameters(acr: str | None, age: str | None) -> None:
    async for w in world_with(FakeIdp(clock=Clock())):
        with pytest.raises(BadRequest) as refused:
            await w.flow.start(
                return_url="/", binding_cookie=None, client="192.0.2.1", acr_values=acr, max_age=age
            )
        assert refused.value.code == "invalid_request"
        assert w.sessions.named("put_login_state") == []


async def test_callback_checks_acr_and_auth_time_of_the_step_up() -> None:
    idp = FakeIdp(clock=Clock())
    async for w in world_with(idp):
        cookie, params = await step_up_login(w, acr_values="gold", max_age="60")
        idp.next_nonce = params["nonce"]
        idp.id_claims = {"acr": "silver", "auth_time": int(idp.clock())}
        with pytest.raises(BadRequest, match="acr"):
            await callback(w, {"state": params["state"], "code": "c"}, cookie)
        cookie, params = await step_up_login(w, acr_values="gold", max_age="60")
        idp.next_nonce = params["nonce"]
        idp.id_claims = {"acr": "gold", "auth_time": int(idp.clock()) - 5}
        result = await callback(w, {"state": params["state"], "code": "c"}, cookie)
        assert result.return_url == "/orders" and result.session.claims["acr"] == "gold"


async def test_login_names_every_routes_resource() -> None:
    idp = FakeIdp(clock=Clock())
    frontend = Frontend(
        issuer=ISSUER,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        resource="https://api.example/",
        routes=(
            RouteConfig(prefix="/a", upstream="http://a", resource="https://a.example/"),
            RouteConfig(prefix="/b", upstream="http://b", resource="https://api.example/"),
            RouteConfig(prefix="/c", upstream="http://c"),
        ),
    )
    async with idp.http() as http:
        oidc = OidcClient.for_frontend(frontend, http=http, clock=idp.clock)
        url = await oidc.authorization_url(state="s", nonce="n", code_challenge="c")
    assert parse_qs(urlsplit(url).query)["resource"] == [
        "https://api.example/",
        "https://a.example/",
    ]


def test_a_dpop_challenge_asks_for_a_step_up_too() -> None:
    """To a DPoP-bound token the upstream answers with the DPoP scheme (RFC 9449 §7.1)."""
    value = 'DPoP error="insufficient_user_authentication", acr_values="gold", max_age=60'
    assert step_up_from([value]) == StepUp(acr_values="gold", max_age=60)
    assert step_up_from(['DPoP error="use_dpop_nonce"']) is None
