"""The OpenID provider adapter, one confidential client at one provider: the front-channel
URLs (authorization with PAR, RP-initiated logout), the token grants (code, refresh,
client credentials, RFC 8693 token exchange), revocation, and ID / logout token
validation against the provider's keys.

It composes the parts: `provider_http` (requests, client authentication, the error
translation), `discovery` (the metadata), `id_tokens` (signatures and claims), and the
pure rules of `metadata` and `grants`. No message names a token, code, verifier or secret.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from authlib.common.urls import add_params_to_uri
from joserfc.jwk import ECKey

from bff.config.model import Frontend
from bff.errors import IdpUnavailable, TokenExchangeUnsupported
from bff.oidc import grants
from bff.oidc.client_assertion import ClientKey, parse_client_key
from bff.oidc.discovery import Discovery
from bff.oidc.dpop import thumbprint
from bff.oidc.id_tokens import IdTokens
from bff.oidc.metadata import ProviderMetadata
from bff.oidc.provider_http import FormValue, ProviderHttp, json_object
from bff.tokens.records import TokenSet, token_set_from_response

__all__ = ["OidcClient"]

_log = logging.getLogger("bff.oidc")


class OidcClient:
    """One confidential client at one provider. Holds the metadata and JWKS caches."""

    @classmethod
    def for_frontend(
        cls, frontend: Frontend, *, http: httpx.AsyncClient, clock: Callable[[], float] = time.time
    ) -> OidcClient:
        """The client a frontend logs in with (the app and the admin CLI share it); its
        key file (private_key_jwt) was checked by the configuration and is read here."""
        key = None
        if frontend.client_key_file:
            key = parse_client_key(Path(frontend.client_key_file).read_text(encoding="utf-8"))
        return cls(
            issuer=frontend.issuer,
            client_id=frontend.client_id,
            client_secret=frontend.client_secret,
            client_auth=frontend.client_auth,
            client_key=key,
            redirect_uri=frontend.redirect_uri,
            scopes=frontend.scopes,
            resource=frontend.resource,
            prompt=frontend.prompt,
            route_resources=tuple(r.resource for r in frontend.routes if r.resource),
            exchange_routes=tuple(r.prefix for r in frontend.routes if r.token == "exchange"),
            http=http,
            clock=clock,
        )

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        client_secret: str = "",
        client_auth: str = "",
        client_key: ClientKey | None = None,
        redirect_uri: str,
        scopes: str,
        resource: str | None,
        http: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
        jwks_cooldown: float = 30.0,
        jwks_max_age: float = 3600.0,
        prompt: str | None = None,
        route_resources: tuple[str, ...] = (),
        exchange_routes: tuple[str, ...] = (),
    ) -> None:
        self._issuer = issuer
        self._client_id = client_id
        self._redirect_uri = redirect_uri
        self._scopes = scopes
        self._resource = resource
        # RFC 8707 §2.2: a provider narrows a refresh only to the resources named at the
        # authorization request, so login names every route's resource too.
        self._login_resources = list(
            dict.fromkeys([*([resource] if resource else []), *route_resources])
        )
        self._prompt = prompt
        self._exchange_routes = exchange_routes
        self._clock = clock
        self._http = ProviderHttp(
            http,
            client_id=client_id,
            client_secret=client_secret,
            client_auth=client_auth,
            client_key=client_key,
            clock=clock,
        )
        self._discovery = Discovery(self._http, issuer=issuer)
        self._id_tokens = IdTokens(
            self._http,
            self._discovery,
            client_id=client_id,
            clock=clock,
            jwks_cooldown=jwks_cooldown,
            jwks_max_age=jwks_max_age,
        )

    def __repr__(self) -> str:  # the secret must never reach a log through repr
        return f"OidcClient(issuer={self._issuer!r}, client_id={self._client_id!r})"

    # -- discovery -------------------------------------------------------------------

    @property
    def metadata_or_none(self) -> ProviderMetadata | None:
        return self._discovery.metadata_or_none

    @property
    def last_error(self) -> str | None:
        return self._discovery.last_error

    async def discover(self) -> ProviderMetadata:
        return await self._discovery.discover()

    async def metadata(self) -> ProviderMetadata:
        return await self._discovery.metadata()

    async def discover_forever(
        self, *, initial_delay: float = 0.5, max_delay: float = 30.0
    ) -> None:
        """Retry discovery with capped, jittered exponential backoff until it succeeds."""
        await self._discovery.discover_forever(initial_delay=initial_delay, max_delay=max_delay)
        metadata = self._discovery.metadata_or_none
        exchange = grants.TOKEN_EXCHANGE
        if self._exchange_routes and metadata and exchange not in metadata.grant_types:
            # Checked once the provider is known (check-config cannot know it): those
            # routes answer 502 token_exchange_unavailable until the provider offers it.
            _log.error(
                "routes %s have token = exchange, but the provider does not advertise the "
                "token-exchange grant (grant_types_supported); they answer 502 "
                "token_exchange_unavailable",
                ", ".join(self._exchange_routes),
            )

    # -- front channel ---------------------------------------------------------------

    async def authorization_url(
        self,
        *,
        state: str,
        nonce: str,
        code_challenge: str,
        acr_values: str | None = None,
        max_age: int | None = None,
        dpop: ECKey | None = None,
    ) -> str:
        """The authorization request (through PAR when offered); `acr_values`/`max_age`
        ask for a step-up (RFC 9470, OIDC Core §3.1.2.1); with a DPoP key, its
        thumbprint as `dpop_jkt` binds the code to it (RFC 9449 §10)."""
        metadata = await self.metadata()
        params = grants.authorization_params(
            client_id=self._client_id,
            redirect_uri=self._redirect_uri,
            scope=self._scopes,
            state=state,
            nonce=nonce,
            code_challenge=code_challenge,
            resources=self._login_resources,
            prompt=self._prompt,
            acr_values=acr_values,
            max_age=max_age,
            dpop_jkt=thumbprint(dpop) if dpop is not None else None,
        )
        par = metadata.pushed_authorization_request_endpoint
        if par is None:
            pairs = grants.query_pairs(params)
            return str(add_params_to_uri(metadata.authorization_endpoint, pairs))
        # RFC 9126: the parameters travel server to server; the browser gets a handle.
        pushed = await self._http.post(metadata, par, params, what="PAR", dpop=dpop)
        answer = json_object(pushed, "PAR")
        request_uri = answer.get("request_uri")
        if not isinstance(request_uri, str) or not request_uri:
            raise IdpUnavailable("PAR answer has no request_uri")
        handle = [("client_id", self._client_id), ("request_uri", request_uri)]
        return str(add_params_to_uri(metadata.authorization_endpoint, handle))

    def end_session_url(
        self,
        metadata: ProviderMetadata,
        *,
        id_token_hint: str | None,
        post_logout_redirect_uri: str,
        logout_hint: str | None = None,
    ) -> str | None:
        """RP-Initiated Logout 1.0: the browser carries these parameters to the provider,
        `id_token_hint` (the ID token) included when given."""
        if metadata.end_session_endpoint is None:
            return None
        params = grants.end_session_params(
            client_id=self._client_id,
            post_logout_redirect_uri=post_logout_redirect_uri,
            id_token_hint=id_token_hint,
            logout_hint=logout_hint,
        )
        return str(add_params_to_uri(metadata.end_session_endpoint, params))

    # -- back channel ----------------------------------------------------------------

    async def exchange_code(
        self, *, code: str, code_verifier: str, dpop: ECKey | None = None
    ) -> TokenSet:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self._redirect_uri,
            "code_verifier": code_verifier,
        }
        if self._resource:
            form["resource"] = self._resource
        return await self._token_request(form, dpop)

    async def refresh(
        self,
        refresh_token: str,
        *,
        scope: str | None = None,
        resource: str | None = None,
        dpop: ECKey | None = None,
    ) -> TokenSet:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if scope:
            form["scope"] = scope  # omitted: the scope originally granted (RFC 6749 §6)
        chosen = resource or self._resource  # RFC 8707: a per-route resource narrows the token
        if chosen:
            form["resource"] = chosen
        return await self._token_request(form, dpop)

    async def client_credentials(
        self, *, scope: str | None = None, resource: str | None = None
    ) -> TokenSet:
        """A token for this client itself (RFC 6749 §4.4), narrowed by `resource`/`scope`;
        authenticated as every call is (a secret, or a private_key_jwt assertion)."""
        form = grants.client_credentials_form(scope=scope, resource=resource)
        return await self._token_request(form)

    async def exchange_token(
        self, subject_token: str, *, scope: str | None = None, resource: str | None = None
    ) -> TokenSet:
        """RFC 8693: the user's access token exchanged for one for `resource`/`scope`.
        IdpUnavailable when the provider does not advertise the grant."""
        metadata = await self.metadata()
        if grants.TOKEN_EXCHANGE not in metadata.grant_types:
            raise TokenExchangeUnsupported("the provider does not advertise token exchange")
        form = grants.exchange_form(subject_token, scope=scope, resource=resource)
        return await self._token_request(form)

    async def revoke(
        self,
        token: str,
        *,
        token_type_hint: str = "refresh_token",  # noqa: S107 - a hint's name, not a password
    ) -> None:
        """RFC 7009. No-op without a revocation endpoint; IdpError on failure (caller ignores)."""
        metadata = await self.metadata()
        if metadata.revocation_endpoint is None:
            return
        form = {"token": token, "token_type_hint": token_type_hint}
        await self._http.post(metadata, metadata.revocation_endpoint, form, what="revocation")

    async def _token_request(
        self, form: Mapping[str, FormValue], dpop: ECKey | None = None
    ) -> TokenSet:
        metadata = await self.metadata()
        body = await self._http.post(
            metadata, metadata.token_endpoint, form, what="token endpoint", dpop=dpop
        )
        answer = json_object(body, "token endpoint")
        try:
            return token_set_from_response(answer, now=self._clock(), dpop=dpop is not None)
        except ValueError as exc:  # the message names the field, never its value
            raise IdpUnavailable(f"token endpoint: {exc}") from None

    # -- token validation (`bff.oidc.id_tokens`) ---------------------------------------

    async def validate_id_token(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        return await self._id_tokens.validate_id_token(id_token, nonce=nonce)

    async def validate_logout_token(self, token: str) -> dict[str, Any]:
        return await self._id_tokens.validate_logout_token(token)
