"""bff.oidc.pkce: the S256 transform and the random login values."""

from __future__ import annotations

from bff.oidc.pkce import code_challenge, new_binding, new_code_verifier, new_nonce, new_state


def test_pkce_s256_rfc7636_vector() -> None:
    assert (
        code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )
    assert len(new_code_verifier()) >= 43


def test_login_values_are_256_random_bits_each() -> None:
    for make in (new_state, new_nonce, new_code_verifier, new_binding):
        values = {make() for _ in range(50)}
        assert len(values) == 50
        assert all(len(v) == 43 and v.isascii() for v in values)
