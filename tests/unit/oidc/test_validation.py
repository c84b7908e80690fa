"""bff.oidc.validation: the claim rules of ID tokens and logout tokens."""

from __future__ import annotations

from typing import Any

import pytest

from bff.errors import TokenValidationError
from bff.oidc.validation import (
    BACKCHANNEL_LOGOUT_EVENT,
    check_id_token_claims,
    check_logout_token_claims,
)

ISSUER = "https://idp.example"
CLIENT_ID = "bff-client"
NOW = 1_700_000_000.0


# -- claims ------------------------------------------------------------------------------


def id_claims(**overrides: Any) -> dict[str, Any]:
    claims = {
        "iss": ISSUER,
        "sub": "u",
        "aud": CLIENT_ID,
        "exp": NOW + 60,
        "iat": NOW,
        "nonce": "n",
    }
    claims.update(overrides)
    return claims


def check_id(claims: dict[str, Any], nonce: str = "n") -> None:
    check_id_token_claims(claims, issuer=ISSUER, client_id=CLIENT_ID, nonce=nonce, now=NOW)


def test_id_claims_ok() -> None:
    check_id(id_claims())
    check_id(id_claims(aud=[CLIENT_ID]))  # a single-element list needs no azp


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        ({"exp": float("inf")}, "exp is not a number"),
        ({"exp": float("nan")}, "exp is not a number"),
        ({"exp": True}, "exp is not a number"),
        ({"exp": "1700000100"}, "exp is not a number"),
        ({"iat": None}, "iat missing"),
        ({"nbf": NOW + 120}, "nbf"),
        ({"aud": 42}, "aud"),
        ({"aud": [CLIENT_ID, 42]}, "aud"),
        ({"sub": 42}, "sub"),
        ({"nonce": 42}, "nonce missing"),
        ({"iss": ISSUER + "/"}, "iss"),
    ],
)
def test_id_claim_rules(overrides: dict[str, Any], rule: str) -> None:
    with pytest.raises(TokenValidationError, match=rule):
        check_id(id_claims(**overrides))


def test_empty_expected_nonce_never_matches() -> None:
    with pytest.raises(TokenValidationError, match="nonce missing"):
        check_id(id_claims(nonce=""), nonce="")
    with pytest.raises(TokenValidationError, match="nonce does not match"):
        check_id(id_claims(), nonce="")


def logout_claims(**overrides: Any) -> dict[str, Any]:
    claims = {
        "iss": ISSUER,
        "aud": [CLIENT_ID, "other"],
        "iat": NOW,
        "exp": NOW + 120,
        "jti": "j",
        "sid": "s",
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    claims.update(overrides)
    return claims


def check_logout(claims: dict[str, Any]) -> None:
    check_logout_token_claims(claims, issuer=ISSUER, client_id=CLIENT_ID, now=NOW)


def test_logout_claims_ok() -> None:
    check_logout(logout_claims())  # several audiences without azp are fine for logout tokens
    check_logout(logout_claims(exp=NOW + 60, iat=NOW - 299))


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        ({"sid": ""}, "sid"),
        ({"sid": 5}, "sid"),
        ({"sub": ""}, "sub"),
        ({"events": []}, "events"),
        ({"jti": ""}, "jti"),
        ({"nonce": None}, "nonce"),
        ({"azp": "other"}, "azp"),
        ({"exp": None}, "exp"),
    ],
)
def test_logout_claim_rules(overrides: dict[str, Any], rule: str) -> None:
    with pytest.raises(TokenValidationError, match=rule):
        check_logout(logout_claims(**overrides))
