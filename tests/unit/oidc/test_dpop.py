"""DPoP proof rules (RFC 9449): the header (`typ: dpop+jwt`, ES256, the public `jwk`
only), the claims (`htm`, `htu` without query or fragment, `iat`, `jti`, `nonce`, `ath`),
the thumbprint, the session's key text and the nonce challenge."""

from __future__ import annotations

import base64
import hashlib

import pytest
from joserfc import jws, jwt
from joserfc.jwk import ECKey

from bff.oidc.dpop import (
    access_token_hash,
    dpop_proof,
    htu_of,
    is_nonce_challenge,
    key_from_text,
    key_to_text,
    thumbprint,
)
from bff.oidc.dpop_keys import new_dpop_key

NOW = 1_800_000_000.5


@pytest.fixture
def key() -> ECKey:
    return new_dpop_key()


def decoded(proof: str) -> jwt.Token:
    """Verified as a resource server does: with the key the proof's own header carries."""
    public = ECKey.import_key(jws.extract_compact(proof.encode()).headers()["jwk"])
    return jwt.decode(proof, public, algorithms=["ES256"])


def test_proof_header_carries_the_public_key_only(key: ECKey) -> None:
    token = decoded(dpop_proof(key, htm="POST", htu="https://idp/token", iat=NOW, jti="j1"))
    assert token.header["typ"] == "dpop+jwt"
    assert token.header["alg"] == "ES256"
    jwk = token.header["jwk"]
    assert "d" not in jwk
    assert jwk == key.as_dict(private=False)
    assert token.claims == {"htm": "POST", "htu": "https://idp/token", "iat": int(NOW), "jti": "j1"}


def test_proof_for_a_resource_carries_ath_and_nonce(key: ECKey) -> None:
    proof = dpop_proof(
        key,
        htm="GET",
        htu="https://api.example/orders/7?expand=1#frag",
        iat=NOW,
        jti="j2",
        nonce="n-1",
        access_token="at-123",
    )
    claims = decoded(proof).claims
    assert claims["htu"] == "https://api.example/orders/7"
    assert claims["nonce"] == "n-1"
    digest = hashlib.sha256(b"at-123").digest()
    assert claims["ath"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert claims["ath"] == access_token_hash("at-123")


def test_a_proof_signed_by_another_key_does_not_verify(key: ECKey) -> None:
    proof = dpop_proof(key, htm="GET", htu="https://a/b", iat=NOW, jti="j")
    with pytest.raises(Exception):  # noqa: B017 - joserfc's BadSignatureError
        jwt.decode(proof, new_dpop_key(), algorithms=["ES256"])


def test_htu_drops_query_and_fragment_only() -> None:
    assert htu_of("https://h:8443/a/b?x=1#y") == "https://h:8443/a/b"
    assert htu_of("http://127.0.0.1:9/") == "http://127.0.0.1:9/"


def test_thumbprint_is_rfc7638(key: ECKey) -> None:
    assert thumbprint(key) == key.thumbprint()
    assert len(thumbprint(key)) == 43


def test_key_text_round_trip_keeps_the_key(key: ECKey) -> None:
    text = key_to_text(key)
    assert len(text) == 43
    again = key_from_text(text)
    assert thumbprint(again) == thumbprint(key)
    proof = dpop_proof(again, htm="GET", htu="https://a/b", iat=NOW, jti="j")
    assert jwt.decode(proof, key, algorithms=["ES256"]).claims["jti"] == "j"


@pytest.mark.parametrize("text", ["", "!!!", "AAAA", "A" * 44])
def test_key_text_that_is_no_key_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a DPoP key"):
        key_from_text(text)


def test_only_private_p256_keys_are_kept() -> None:
    with pytest.raises(ValueError, match="P-256"):
        key_to_text(ECKey.generate_key("P-384", private=True))


def test_nonce_challenges() -> None:
    assert is_nonce_challenge(400, "", "use_dpop_nonce")
    assert is_nonce_challenge(401, 'DPoP error="use_dpop_nonce"', None)
    assert not is_nonce_challenge(400, "", "invalid_grant")
    assert not is_nonce_challenge(401, 'DPoP error="invalid_token"', None)
    assert not is_nonce_challenge(403, 'DPoP error="use_dpop_nonce"', None)
