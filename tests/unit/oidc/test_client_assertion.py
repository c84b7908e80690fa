"""private_key_jwt (RFC 7523): the client key as read from its file (JWK with `kid`, PEM),
and the assertion's header and claims, decoded and verified with joserfc."""

from __future__ import annotations

import json

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from bff.oidc.client_assertion import ASSERTION_TYPE, client_assertion, parse_client_key

NOW = 1_800_000_000.0


def rsa_jwk(**extra: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "rsa-1", **extra}, private=True)


def test_assertion_type_is_rfc7523() -> None:
    assert ASSERTION_TYPE == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def test_rsa_jwk_signs_rs256_with_its_kid() -> None:
    key = rsa_jwk()
    parsed = parse_client_key(json.dumps(key.as_dict(private=True)))
    assert (parsed.kid, parsed.alg) == ("rsa-1", "RS256")
    token = client_assertion(
        parsed, client_id="spa", audience="https://idp.example", now=NOW, jti="j-1"
    )
    public = RSAKey.import_key(key.as_dict(private=False))
    decoded = jwt.decode(token, public, algorithms=["RS256"])
    assert decoded.header == {"alg": "RS256", "kid": "rsa-1", "typ": "JWT"}
    assert decoded.claims == {
        "iss": "spa",
        "sub": "spa",
        "aud": "https://idp.example",
        "jti": "j-1",
        "iat": int(NOW),
        "exp": int(NOW) + 60,
    }


def test_rsa_jwk_with_ps256_alg_signs_ps256() -> None:
    parsed = parse_client_key(json.dumps(rsa_jwk(alg="PS256").as_dict(private=True)))
    token = client_assertion(parsed, client_id="c", audience="a", now=NOW, jti="j")
    assert jwt.decode(token, parsed.key, algorithms=["PS256"]).header["alg"] == "PS256"


def test_ec_key_signs_es256() -> None:
    key = ECKey.generate_key("P-256", parameters={"kid": "ec-1"}, private=True)
    parsed = parse_client_key(json.dumps(key.as_dict(private=True)))
    assert parsed.alg == "ES256"
    token = client_assertion(parsed, client_id="c", audience="a", now=NOW, jti="j")
    assert jwt.decode(token, key, algorithms=["ES256"]).claims["iss"] == "c"


def test_pem_key_is_named_by_its_thumbprint() -> None:
    key = rsa_jwk()
    pem = key.as_pem(private=True).decode()
    parsed = parse_client_key(pem)
    assert parsed.kid == key.thumbprint()
    assert parsed.alg == "RS256"
    ec = ECKey.generate_key("P-256", private=True)
    assert parse_client_key(ec.as_pem(private=True).decode()).alg == "ES256"


def test_repr_names_no_key_material() -> None:
    key = rsa_jwk()
    parsed = parse_client_key(json.dumps(key.as_dict(private=True)))
    assert repr(parsed) == "ClientKey(kid='rsa-1', alg='RS256')"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "neither"),
        ("not a key", "neither"),
        ("{not json", "not valid JSON"),
        ("[1]", "neither"),
        ('"x"', "neither"),
        ('{"kty": "RSA"}', "no 'kid'"),
        ('{"kty": "RSA", "kid": "x"}', "unreadable key"),
        (
            '{"kty": "oct", "kid": "x", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI"}',
            "only RSA and EC",
        ),
        ("-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----", "unreadable key"),
    ],
)
def test_unusable_keys_are_refused(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_client_key(text)


def test_jwk_without_kid_and_public_keys_are_refused() -> None:
    key = RSAKey.generate_key(2048, private=True)
    with pytest.raises(ValueError, match="no 'kid'"):
        parse_client_key(json.dumps(key.as_dict(private=True)))
    with pytest.raises(ValueError, match="public key"):
        parse_client_key(json.dumps(rsa_jwk().as_dict(private=False)))
    with pytest.raises(ValueError, match="public key"):
        parse_client_key(rsa_jwk().as_pem(private=False).decode())


def test_alg_that_does_not_fit_the_key_is_refused() -> None:
    ec = ECKey.generate_key("P-256", parameters={"kid": "e", "alg": "ES384"}, private=True)
    with pytest.raises(ValueError, match="does not fit"):
        parse_client_key(json.dumps(ec.as_dict(private=True)))
    with pytest.raises(ValueError, match="not an RSA signature"):
        parse_client_key(json.dumps(rsa_jwk(alg="HS256").as_dict(private=True)))
