"""bff.oidc.jws without a provider: header rules, JWKS parsing, key choice, signatures."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from bff.errors import TokenValidationError
from bff.oidc.jws import (
    JwsHeader,
    parse_header,
    parse_jwks,
    select_key,
    verify_signature,
)

ALGS = ("RS256", "ES256")


@pytest.fixture(scope="module")
def rsa() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "r1"}, private=True)


@pytest.fixture(scope="module")
def ec() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "e1"}, private=True)


def b64json(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def unsigned(header: Any) -> str:
    return f"{b64json(header)}.{b64json({'sub': 'x'})}.c2ln"


# -- header ------------------------------------------------------------------------------


def test_header_ok() -> None:
    assert parse_header(unsigned({"alg": "RS256", "kid": "r1"}), allowed_algs=ALGS) == JwsHeader(
        "RS256", "r1"
    )
    assert parse_header(unsigned({"alg": "ES256"}), allowed_algs=ALGS).kid is None


@pytest.mark.parametrize(
    ("header", "rule"),
    [
        ({"alg": "none"}, "never"),
        ({"alg": "NONE"}, "never"),
        ({"alg": "HS256"}, "never"),
        ({"alg": "HS512"}, "never"),
        ({"alg": "RS512"}, "advertise"),
        ({"alg": "EdDSA"}, "advertise"),
        ({"kid": "r1"}, "alg missing"),
        ({"alg": 256}, "alg missing"),
        ({"alg": "RS256", "kid": 7}, "kid"),
        ({"alg": "RS256", "crit": ["exp"], "exp": 1}, "crit"),
        ({"alg": "RS256", "crit": []}, "crit"),
        (["alg", "RS256"], "header"),
    ],
)
def test_header_rules(header: Any, rule: str) -> None:
    with pytest.raises(TokenValidationError, match=rule):
        parse_header(unsigned(header), allowed_algs=(*ALGS, "HS256", "EdDSA", "none"))


def test_encrypted_token_refused() -> None:
    with pytest.raises(TokenValidationError, match="compact JWS"):
        parse_header("a.b.c.d.e", allowed_algs=ALGS)


# -- JWKS and key choice -----------------------------------------------------------------


def test_parse_jwks_keeps_only_signing_keys(rsa: RSAKey, ec: ECKey) -> None:
    enc = dict(rsa.as_dict(private=False), kid="enc", use="enc")
    oct_key = OctKey.generate_key(256, parameters={"kid": "hmac"}).as_dict()
    broken = {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"}
    doc = {
        "keys": [
            rsa.as_dict(private=False),
            dict(ec.as_dict(private=False), use="sig"),
            enc,
            oct_key,
            broken,
            {"kty": "PQC", "kid": "future"},
            "junk",
        ]
    }
    assert [k.kid for k in parse_jwks(doc)] == ["r1", "e1"]


@pytest.mark.parametrize("doc", [None, [], {"keys": "x"}, {"keys": []}, {"keys": [{"kty": "oct"}]}])
def test_parse_jwks_without_usable_keys(doc: Any) -> None:
    with pytest.raises(ValueError, match="JWKS"):
        parse_jwks(doc)


def test_select_key(rsa: RSAKey, ec: ECKey) -> None:
    keys = parse_jwks({"keys": [rsa.as_dict(private=False), ec.as_dict(private=False)]})
    assert select_key(keys, JwsHeader("RS256", "r1")) is keys[0]
    assert select_key(keys, JwsHeader("ES256", "e1")) is keys[1]
    assert select_key(keys, JwsHeader("ES256", "r1")) is None  # kid right, key type wrong
    assert select_key(keys, JwsHeader("RS256", "nope")) is None
    assert select_key(keys, JwsHeader("RS256", None)) is keys[0]  # the only RSA key


def test_select_key_without_kid_needs_a_single_candidate(rsa: RSAKey) -> None:
    second = RSAKey.generate_key(2048, parameters={"kid": "r2"})
    keys = parse_jwks({"keys": [rsa.as_dict(private=False), second.as_dict(private=False)]})
    assert select_key(keys, JwsHeader("RS256", None)) is None


def test_select_key_honours_the_keys_alg(rsa: RSAKey) -> None:
    keys = parse_jwks({"keys": [dict(rsa.as_dict(private=False), alg="PS256")]})
    assert select_key(keys, JwsHeader("RS256", "r1")) is None
    assert select_key(keys, JwsHeader("PS256", "r1")) is keys[0]


def test_verify_signature_ec(ec: ECKey) -> None:
    token = jwt.encode({"alg": "ES256", "kid": "e1"}, {"sub": "u"}, ec, algorithms=["ES256"])
    header = parse_header(token, allowed_algs=ALGS)
    key = select_key(parse_jwks({"keys": [ec.as_dict(private=False)]}), header)
    assert key is not None
    assert verify_signature(token, key, header) == {"sub": "u"}


def test_verify_signature_rejects_non_object_payload(rsa: RSAKey) -> None:
    from joserfc import jws

    token = jws.serialize_compact({"alg": "RS256", "kid": "r1"}, b"[1, 2]", rsa)
    header = parse_header(token, allowed_algs=ALGS)
    with pytest.raises(TokenValidationError, match="malformed"):
        verify_signature(token, rsa, header)
