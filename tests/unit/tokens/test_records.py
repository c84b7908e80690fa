"""bff.tokens.records: the token endpoint's answer, expiry arithmetic, merging a refresh."""

from __future__ import annotations

import pytest

from bff.tokens.records import TokenSet, needs_refresh, token_set_from_response


def test_token_response_parsing_and_expiry() -> None:
    t = token_set_from_response(
        {"access_token": "a", "token_type": "Bearer", "expires_in": 60, "refresh_token": "r"},
        now=1000,
    )
    assert t.expires_at == 1060
    assert not needs_refresh(t, now=1000, skew=30)
    assert needs_refresh(t, now=1031, skew=30)
    merged = t.merged_with(
        token_set_from_response({"access_token": "b", "expires_in": 60}, now=2000)
    )
    assert merged.refresh_token == "r"  # kept when the provider returns none
    with_id = TokenSet(access_token="a", expires_at=1, id_token="validated-at-login")
    unvalidated = TokenSet(access_token="b", expires_at=2, id_token="from-a-refresh")
    assert with_id.merged_with(unvalidated).id_token == "validated-at-login"
    with pytest.raises(ValueError):
        token_set_from_response({"token_type": "Bearer"}, now=0)
    with pytest.raises(ValueError):
        token_set_from_response({"access_token": "a", "token_type": "mac"}, now=0)
