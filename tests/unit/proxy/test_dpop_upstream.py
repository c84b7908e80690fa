"""Upstream DPoP headers: `Authorization: DPoP` and a proof with htm/htu/ath per request
(a new jti each time), the origin's nonce once learnt, and which answers are challenges."""

from __future__ import annotations

from bff.oidc.dpop import key_to_text, thumbprint
from bff.oidc.dpop_keys import new_dpop_key
from bff.proxy.dpop_upstream import UpstreamProofs
from tests.dpop_verifier import ProofChecker

NOW = 1_800_000_000.0
ORIGIN = "http://127.0.0.1:9000"
CHALLENGE = [(b"WWW-Authenticate", b'DPoP error="use_dpop_nonce"'), (b"DPoP-Nonce", b"n-1")]


def test_headers_and_learnt_nonce() -> None:
    key = new_dpop_key()
    proofs, checker = UpstreamProofs(clock=lambda: NOW), ProofChecker()
    headers = dict(proofs.headers(key_to_text(key), "tok", "PATCH", ORIGIN, "/v1/a?b=1"))
    assert headers["Authorization"] == "DPoP tok"
    jkt = checker.verify(
        headers["DPoP"], htm="PATCH", htu=f"{ORIGIN}/v1/a", now=NOW, access_token="tok"
    )
    assert jkt == thumbprint(key)
    assert proofs.learn(ORIGIN, 401, CHALLENGE)
    again = dict(proofs.headers(key_to_text(key), "tok", "GET", ORIGIN, "/v1/a"))
    checker.verify(
        again["DPoP"], htm="GET", htu=f"{ORIGIN}/v1/a", now=NOW, access_token="tok", nonce="n-1"
    )  # a new jti: the checker refuses replays
    other = dict(proofs.headers(key_to_text(key), "tok", "GET", "http://other:1", "/"))
    checker.verify(other["DPoP"], htm="GET", htu="http://other:1/", now=NOW, access_token="tok")


def test_what_is_a_challenge() -> None:
    proofs = UpstreamProofs(clock=lambda: NOW)
    assert not proofs.learn(ORIGIN, 200, [(b"DPoP-Nonce", b"n-2")])  # kept, no retry
    assert not proofs.learn(ORIGIN, 401, [(b"WWW-Authenticate", b'DPoP error="use_dpop_nonce"')])
    assert not proofs.learn(ORIGIN, 401, [(b"WWW-Authenticate", b"DPoP"), (b"DPoP-Nonce", b"n")])
    assert not proofs.learn(ORIGIN, 401, [*CHALLENGE[:1], (b"DPoP-Nonce", b"bad\x01nonce")])
    assert proofs.learn(ORIGIN, 401, CHALLENGE)
