"""ID and logout token validation for one client: the signature against the provider's
keys (`bff.oidc.jwks`, fetched through `bff.oidc.provider_http`), then the claims by the
pure rules of `bff.oidc.validation`. `bff.oidc.client` delegates to it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bff.oidc.discovery import Discovery
from bff.oidc.jwks import JwksCache
from bff.oidc.provider_http import ProviderHttp
from bff.oidc.validation import check_id_token_claims, check_logout_token_claims

__all__ = ["IdTokens"]


class IdTokens:
    """The provider's signed tokens for `client_id`, checked."""

    def __init__(
        self,
        http: ProviderHttp,
        discovery: Discovery,
        *,
        client_id: str,
        clock: Callable[[], float],
        jwks_cooldown: float,
        jwks_max_age: float,
    ) -> None:
        self._http = http
        self._discovery = discovery
        self._client_id = client_id
        self._clock = clock
        self._jwks = JwksCache(
            self._fetch_jwks, clock=clock, cooldown=jwks_cooldown, max_age=jwks_max_age
        )

    async def validate_id_token(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        metadata = await self._discovery.metadata()
        claims = await self._jwks.verify(id_token, allowed_algs=metadata.id_token_algs)
        check_id_token_claims(
            claims,
            issuer=metadata.issuer,
            client_id=self._client_id,
            nonce=nonce,
            now=self._clock(),
        )
        return claims

    async def validate_logout_token(self, token: str) -> dict[str, Any]:
        metadata = await self._discovery.metadata()
        claims = await self._jwks.verify(token, allowed_algs=metadata.id_token_algs)
        check_logout_token_claims(
            claims, issuer=metadata.issuer, client_id=self._client_id, now=self._clock()
        )
        return claims

    async def _fetch_jwks(self) -> Any:
        metadata = await self._discovery.metadata()
        return await self._http.get_json(metadata.jwks_uri, what="JWKS")
