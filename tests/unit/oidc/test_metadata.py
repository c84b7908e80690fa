"""bff.oidc.metadata: what a discovery document may say (endpoints, algorithms, flags)."""

from __future__ import annotations

from typing import Any

import pytest

from bff.errors import IdpUnavailable
from bff.oidc.metadata import ProviderMetadata
from tests.unit.oidc.test_client import ISSUER, discovery_doc


def test_metadata_defaults_and_alg_filtering() -> None:
    doc = discovery_doc(
        token_endpoint_auth_methods_supported=None,
        id_token_signing_alg_values_supported=["none", "HS256", "RS256", "ES256"],
        authorization_response_iss_parameter_supported=None,
    )
    metadata = ProviderMetadata.parse(doc, expected_issuer=ISSUER)
    assert metadata.token_endpoint_auth_methods == ("client_secret_basic",)
    assert metadata.id_token_algs == ("RS256", "ES256")
    assert metadata.iss_parameter_supported is False


@pytest.mark.parametrize(
    "overrides",
    [
        {"issuer": "https://evil.example/realms/demo"},
        {"issuer": ISSUER + "/"},
        {"token_endpoint": "http://idp.example/token"},
        {"jwks_uri": "http://10.0.0.5/jwks"},
        {"revocation_endpoint": "http://idp.example/revoke"},
        {"authorization_endpoint": "https://idp.example/auth#frag"},
        {"authorization_endpoint": None},
        {"token_endpoint": 42},
        {"id_token_signing_alg_values_supported": ["HS256", "none"]},
        {"id_token_signing_alg_values_supported": "RS256"},
        {"backchannel_logout_supported": "yes"},
        {"token_endpoint": "https://user:pw@idp.example/token"},
        {"token_endpoint": "https://idp.example:99999/token"},
        {"token_endpoint": "ftp://idp.example/token"},
    ],
)
def test_metadata_rejects_malformed(overrides: dict[str, Any]) -> None:
    with pytest.raises(IdpUnavailable, match="discovery document"):
        ProviderMetadata.parse(discovery_doc(**overrides), expected_issuer=ISSUER)


def test_metadata_rejects_plain_http_issuer() -> None:
    issuer = "http://idp.example"
    doc = discovery_doc(issuer=issuer)
    with pytest.raises(IdpUnavailable, match="issuer"):
        ProviderMetadata.parse(doc, expected_issuer=issuer)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.2", "[::1]"])
def test_metadata_allows_http_on_loopback(host: str) -> None:
    issuer = f"http://{host}:9000"
    doc = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/auth",
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks",
    }
    assert ProviderMetadata.parse(doc, expected_issuer=issuer).token_endpoint == f"{issuer}/token"
