"""ID tokens and logout tokens an attacker or a hostile provider would send, through the
real `/bff/callback` and `/bff/backchannel-logout` endpoints (THREATS.md invariants 5
and 9): `alg: none`, HMAC keyed with the provider's public key (authlib CVE-2024-37568),
unknown `crit`, oversize tokens, wrong `iss`/`aud`/`azp`/`nonce`, expiry, a replayed
`jti`, and the JWKS refetch cooldown on unknown `kid`s. Every refusal is a 4xx and
creates or ends no session; none is a 500 (invariant 15)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from joserfc.jwk import RSAKey

from tests.fake_idp import CLIENT_ID, ISSUER
from tests.security.conftest import Bff, running_bff
from tests.support import logout
from tests.unit.oidc.test_client import b64, sign

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module scope: one bff (a uvicorn start and stop) serves this whole module."""
    return "asyncio"


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return sign(claims, None, header)


def hmac_with_public_key(bff: Bff, claims: dict[str, Any], alg: str = "HS256") -> str:
    """authlib CVE-2024-37568: an HMAC 'signed' with the provider's public key as secret."""
    public = bff.idp.key.get_op_key("verify")
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = unsigned({"alg": alg, "kid": "k1", "typ": "JWT"}, claims)[:-1]
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
    return f"{signing_input}.{b64(hmac.new(pem, signing_input.encode(), digest).digest())}"


def changed(claims: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """The claims with `changes` applied; a change to None removes the claim."""
    out = {**claims, **changes}
    return {k: v for k, v in out.items() if v is not None}


def id_claims(expected_nonce: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": CLIENT_ID,
        "exp": now + 300,
        "iat": now,
        "nonce": expected_nonce,
    }
    return changed(claims, changes)


Forge = Callable[[Bff, str], str]  # (bff, nonce) -> ID token

ID_TOKEN_ATTACKS: dict[str, Forge] = {
    "alg-none": lambda b, n: unsigned({"alg": "none"}, id_claims(n)),
    "alg-None-with-kid": lambda b, n: unsigned({"alg": "None", "kid": "k1"}, id_claims(n)),
    "hs256-public-key": lambda b, n: hmac_with_public_key(b, id_claims(n)),
    "hs512-public-key": lambda b, n: hmac_with_public_key(b, id_claims(n), "HS512"),
    "unknown-crit": lambda b, n: sign(
        id_claims(n), b.idp.key, {"alg": "RS256", "kid": "k1", "crit": ["urn:x"], "urn:x": 1}
    ),
    "oversize": lambda b, n: b.idp.sign(id_claims(n, pad="x" * 70_000)),
    "wrong-iss": lambda b, n: b.idp.sign(id_claims(n, iss="https://evil.example")),
    "iss-trailing-slash": lambda b, n: b.idp.sign(id_claims(n, iss=ISSUER + "/")),
    "wrong-aud": lambda b, n: b.idp.sign(id_claims(n, aud="another-client")),
    "aud-list-without-us": lambda b, n: b.idp.sign(id_claims(n, aud=["a", "b"])),
    "azp-other-client": lambda b, n: b.idp.sign(
        id_claims(n, aud=[CLIENT_ID, "other"], azp="other")
    ),
    "wrong-nonce": lambda b, n: b.idp.sign(id_claims(n, nonce="replayed-" + n)),
    "no-nonce": lambda b, n: b.idp.sign(id_claims(n, nonce=None)),
    "expired": lambda b, n: b.idp.sign(id_claims(n, exp=int(time.time()) - 3600)),
    "no-sub": lambda b, n: b.idp.sign(id_claims(n, sub=None)),
    "signed-by-another-key": lambda b, n: (
        b.idp.sign(id_claims(n)).rsplit(".", 1)[0] + "." + b64(b"\0" * 256)
    ),
    "payload-swapped": lambda b, n: ".".join(
        [
            b.idp.sign(id_claims(n)).split(".")[0],
            b64(json.dumps(id_claims(n, sub="admin")).encode()),
            b.idp.sign(id_claims(n)).split(".")[2],
        ]
    ),
    "not-a-jwt": lambda b, n: "not.a.jwt",
}


@pytest.fixture(scope="module")
async def bff() -> AsyncIterator[Bff]:
    async with running_bff() as running:
        yield running


@pytest.fixture(autouse=True)
def _genuine_answers(bff: Bff) -> None:
    bff.idp.token_body = None


def token_answer(id_token: str) -> dict[str, Any]:
    return {
        "access_token": "at-" + uuid.uuid4().hex,
        "token_type": "Bearer",
        "expires_in": 300,
        "refresh_token": "rt-" + uuid.uuid4().hex,
        "id_token": id_token,
    }


@pytest.mark.parametrize("attack", list(ID_TOKEN_ATTACKS))
async def test_a_forged_or_invalid_id_token_creates_no_session(bff: Bff, attack: str) -> None:
    browser = bff.browser()
    params = await bff.start_login(browser)
    bff.idp.token_body = token_answer(ID_TOKEN_ATTACKS[attack](bff, params["nonce"]))
    r = await browser.get(
        "/bff/callback", params={"code": "c", "state": params["state"], "iss": ISSUER}
    )
    # A token too large for the answer's size cap makes the answer garbage: 502.
    expected = 502 if attack == "oversize" else 400
    assert r.status_code == expected, (r.status_code, r.text)
    assert bff.settings.frontend.cookie_name not in browser.cookies
    assert "location" not in r.headers
    assert (await browser.get("/bff/user", csrf=True)).status_code == 401


async def test_the_same_genuine_id_token_is_accepted(bff: Bff) -> None:
    """The control: the harness accepts a well-formed token, so refusals above mean it."""
    browser = bff.browser()
    params = await bff.start_login(browser)
    bff.idp.token_body = token_answer(bff.idp.sign(id_claims(params["nonce"])))
    r = await browser.get(
        "/bff/callback", params={"code": "c", "state": params["state"], "iss": ISSUER}
    )
    assert r.status_code == 302
    assert (await browser.get("/bff/user", csrf=True)).json()["sub"] == "alice"


def jwks_calls(bff: Bff) -> int:
    (route,) = [r for r in bff.idp.router.routes if "jwks" in repr(r.pattern)]
    return int(route.call_count)


async def test_unknown_kids_refetch_the_jwks_at_most_once_per_cooldown(bff: Bff) -> None:
    """SPEC: JWKS refetched on an unknown `kid` at most once every 30 s: a stream of
    tokens with random `kid`s cannot make bff hammer the provider."""
    stranger = RSAKey.generate_key(2048, private=True)
    before = None
    for i in range(6):
        browser = bff.browser()
        params = await bff.start_login(browser)
        token = _sign_with(stranger, id_claims(params["nonce"]), kid=f"rotated-{i}")
        bff.idp.token_body = token_answer(token)
        r = await browser.get(
            "/bff/callback", params={"code": "c", "state": params["state"], "iss": ISSUER}
        )
        assert r.status_code == 400
        if before is None:
            before = jwks_calls(bff)
    assert before is not None and before >= 1
    assert jwks_calls(bff) == before  # the five later kids cost no fetch within 30 s


def _sign_with(key: RSAKey, claims: dict[str, Any], *, kid: str) -> str:
    return sign(claims, key, {"alg": "RS256", "kid": kid})


# --- logout tokens --------------------------------------------------------------------
def logout_claims(**changes: Any) -> dict[str, Any]:
    return logout.logout_claims(int(time.time()), **{"sid": "idp-sid-alice", **changes})


LT_HEADER = {"alg": "RS256", "kid": "k1", "typ": "logout+jwt"}
LOGOUT_ATTACKS: dict[str, Callable[[Bff], str]] = {
    "alg-none": lambda b: unsigned({"alg": "none", "typ": "logout+jwt"}, logout_claims()),
    "hs256-public-key": lambda b: hmac_with_public_key(b, logout_claims()),
    "unknown-crit": lambda b: sign(
        logout_claims(), b.idp.key, {**LT_HEADER, "crit": ["urn:x"], "urn:x": 1}
    ),
    "wrong-iss": lambda b: b.idp.sign(logout_claims(iss="https://evil.example"), LT_HEADER),
    "wrong-aud": lambda b: b.idp.sign(logout_claims(aud="other"), LT_HEADER),
    "with-nonce": lambda b: b.idp.sign(logout_claims(nonce="n"), LT_HEADER),
    "no-events": lambda b: b.idp.sign(logout_claims(events=None), LT_HEADER),
    "wrong-event": lambda b: b.idp.sign(logout_claims(events={"urn:other": {}}), LT_HEADER),
    "no-sid-no-sub": lambda b: b.idp.sign(logout_claims(sid=None), LT_HEADER),
    "no-jti": lambda b: b.idp.sign(logout_claims(jti=None), LT_HEADER),
    "expired": lambda b: b.idp.sign(logout_claims(exp=int(time.time()) - 600), LT_HEADER),
    "an-id-token": lambda b: b.idp.sign(id_claims("n", sid="idp-sid-alice")),
    "oversize": lambda b: b.idp.sign(logout_claims(pad="x" * 70_000), LT_HEADER),
}


async def post_logout_token(bff: Bff, token: str) -> int:
    browser = bff.browser()
    r = await browser.post("/bff/backchannel-logout", data={"logout_token": token})
    assert r.headers.get("cache-control") == "no-store" or r.status_code == 400
    return r.status_code


@pytest.mark.parametrize("attack", list(LOGOUT_ATTACKS))
async def test_an_invalid_logout_token_is_400_and_ends_nothing(bff: Bff, attack: str) -> None:
    victim = bff.browser()
    await bff.login(victim, sub="alice")
    assert await post_logout_token(bff, LOGOUT_ATTACKS[attack](bff)) == 400
    assert (await victim.get("/bff/user", csrf=True)).status_code == 200


async def test_a_replayed_logout_token_ends_nothing_the_second_time(bff: Bff) -> None:
    """Back-Channel Logout 1.0 §2.6 (jti replay cache): the captured token of the first
    logout, replayed against the user's next session, is refused."""
    first = bff.browser()
    await bff.login(first, sub="alice")
    token = bff.idp.sign(logout_claims(), LT_HEADER)
    assert await post_logout_token(bff, token) == 200
    assert (await first.get("/bff/user", csrf=True)).status_code == 401
    second = bff.browser()
    await bff.login(second, sub="alice")
    assert await post_logout_token(bff, token) == 400
    assert (await second.get("/bff/user", csrf=True)).status_code == 200
