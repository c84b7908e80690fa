"""The OpenID provider adapter: discovery, JWKS, PAR, token, refresh, revocation, validation.

Every httpx exception and every unusable answer is translated here into the error tree:
a 4xx carrying an RFC 6749 `error` code is `IdpRejected`, anything else that went wrong
(network, timeout, 5xx, non-JSON, oversized) is `IdpUnavailable`. No message names a
token, code, verifier or secret. The pure token rules live in `jwt_validation`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlsplit

import httpx
from authlib.common.urls import add_params_to_uri

from bff.config.checks import is_loopback_host
from bff.config.model import Frontend
from bff.errors import IdpRejected, IdpUnavailable
from bff.oidc.validation import (
    SUPPORTED_ALGS,
    JwksCache,
    check_id_token_claims,
    check_logout_token_claims,
)
from bff.tokens.records import TokenSet, token_set_from_response

__all__ = ["MAX_RESPONSE_BYTES", "OidcClient", "ProviderMetadata", "is_allowed_endpoint"]

log = logging.getLogger("bff.oidc")

MAX_RESPONSE_BYTES = 256 * 1024  # discovery, JWKS, token answers: nothing legitimate is bigger
# What a provider answer that is not JSON raises; RecursionError: deeply nested JSON
# (`[[[[…`), which must be a 502 like any other garbage, never a 500.
_NOT_JSON = (ValueError, UnicodeDecodeError, RecursionError)
_ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,128}")  # RFC 6749 §5.2 charset


def is_allowed_endpoint(url: str) -> bool:
    """https, or plain http only on localhost / 127.0.0.0/8 / [::1]; no credentials or fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return False
    if not host or parts.username is not None or parts.fragment:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(host))


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None = None
    revocation_endpoint: str | None = None
    pushed_authorization_request_endpoint: str | None = None
    token_endpoint_auth_methods: tuple[str, ...] = ("client_secret_basic",)
    id_token_algs: tuple[str, ...] = ("RS256",)
    iss_parameter_supported: bool = False
    backchannel_logout_supported: bool = False

    @classmethod
    def parse(cls, doc: dict[str, Any], *, expected_issuer: str) -> ProviderMetadata:
        """Validate a discovery document (OIDC Discovery 1.0 §3, §4.3); IdpUnavailable if bad."""

        def bad(why: str) -> IdpUnavailable:
            return IdpUnavailable(f"discovery document: {why}")

        if not isinstance(doc, dict):
            raise bad("not a JSON object")
        if doc.get("issuer") != expected_issuer:  # exact match: mix-up defence
            raise bad("issuer does not match the configured issuer")

        https_issuer = expected_issuer.startswith("https://")

        def endpoint(name: str, *, required: bool) -> str | None:
            value = doc.get(name)
            if value is None and not required:
                return None
            if not isinstance(value, str) or not is_allowed_endpoint(value):
                raise bad(f"{name} missing or not an https URL")
            if https_issuer and not value.startswith("https://"):
                # Plain http to loopback is for a development provider only: an https
                # provider must not send the client secret or tokens to a local sidecar.
                raise bad(f"{name} is plain http while the issuer is https")
            return value

        def strings(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
            value = doc.get(name)
            if value is None:
                return default
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise bad(f"{name} is not a list of strings")
            return tuple(value)

        def flag(name: str) -> bool:
            value = doc.get(name, False)
            if not isinstance(value, bool):
                raise bad(f"{name} is not a boolean")
            return value

        algs = strings("id_token_signing_alg_values_supported", ("RS256",))
        # Pinned to what the provider advertises, minus none / HMAC whatever it says.
        usable = tuple(a for a in algs if a in SUPPORTED_ALGS)
        if not usable:
            raise bad("no supported asymmetric id_token_signing_alg_values_supported")
        if not is_allowed_endpoint(expected_issuer):
            raise bad("issuer is not an https URL")
        return cls(
            issuer=expected_issuer,
            authorization_endpoint=endpoint("authorization_endpoint", required=True) or "",
            token_endpoint=endpoint("token_endpoint", required=True) or "",
            jwks_uri=endpoint("jwks_uri", required=True) or "",
            end_session_endpoint=endpoint("end_session_endpoint", required=False),
            revocation_endpoint=endpoint("revocation_endpoint", required=False),
            pushed_authorization_request_endpoint=endpoint(
                "pushed_authorization_request_endpoint", required=False
            ),
            token_endpoint_auth_methods=strings(
                "token_endpoint_auth_methods_supported", ("client_secret_basic",)
            ),
            id_token_algs=usable,
            iss_parameter_supported=flag("authorization_response_iss_parameter_supported"),
            backchannel_logout_supported=flag("backchannel_logout_supported"),
        )


def _form_encode(value: str) -> str:
    return quote_plus(value, safe="")


class OidcClient:
    """One confidential client at one provider. Holds the metadata and JWKS caches."""

    @classmethod
    def for_frontend(
        cls, frontend: Frontend, *, http: httpx.AsyncClient, clock: Callable[[], float] = time.time
    ) -> OidcClient:
        """The client a frontend logs in with (the app and the admin CLI share it)."""
        return cls(
            issuer=frontend.issuer,
            client_id=frontend.client_id,
            client_secret=frontend.client_secret,
            redirect_uri=frontend.redirect_uri,
            scopes=frontend.scopes,
            resource=frontend.resource,
            prompt=frontend.prompt,
            http=http,
            clock=clock,
        )

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        scopes: str,
        resource: str | None,
        http: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
        jwks_cooldown: float = 30.0,
        jwks_max_age: float = 3600.0,
        prompt: str | None = None,
    ) -> None:
        self._issuer = issuer
        self._client_id = client_id
        self._client_secret = client_secret
        self._redirect_uri = redirect_uri
        self._scopes = scopes
        self._resource = resource
        self._prompt = prompt
        self._http = http
        self._clock = clock
        self._metadata: ProviderMetadata | None = None
        self._last_error: str | None = None
        self._discovery_lock = asyncio.Lock()
        self._jwks = JwksCache(
            self._fetch_jwks, clock=clock, cooldown=jwks_cooldown, max_age=jwks_max_age
        )

    def __repr__(self) -> str:  # the secret must never reach a log through repr
        return f"OidcClient(issuer={self._issuer!r}, client_id={self._client_id!r})"

    # -- discovery -------------------------------------------------------------------

    @property
    def metadata_or_none(self) -> ProviderMetadata | None:
        return self._metadata

    @property
    def last_error(self) -> str | None:
        return self._last_error

    async def discover(self) -> ProviderMetadata:
        async with self._discovery_lock:
            if self._metadata is not None:
                return self._metadata
            url = self._issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                doc = _json_object(await self._send("GET", url, what="discovery"), "discovery")
                metadata = ProviderMetadata.parse(doc, expected_issuer=self._issuer)
            except IdpRejected as exc:  # an OAuth error body on discovery is still an outage
                self._last_error = f"discovery answered {exc.error}"
                raise IdpUnavailable(self._last_error) from exc
            except IdpUnavailable as exc:
                self._last_error = str(exc)
                raise
            self._metadata, self._last_error = metadata, None
            log.info("provider metadata loaded for %s", self._issuer)
            return metadata

    async def metadata(self) -> ProviderMetadata:
        return self._metadata if self._metadata is not None else await self.discover()

    async def discover_forever(
        self, *, initial_delay: float = 0.5, max_delay: float = 30.0
    ) -> None:
        """Retry discovery with capped, jittered exponential backoff until it succeeds."""
        delay = initial_delay
        while self._metadata is None:
            try:
                await self.discover()
                return
            except IdpUnavailable:
                log.warning("provider discovery failed: %s; retrying", self._last_error)
            except Exception:  # a bug must not silently end the retry loop
                self._last_error = "discovery failed unexpectedly"
                log.exception("provider discovery failed unexpectedly; retrying")
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, max_delay)

    # -- front channel ---------------------------------------------------------------

    async def authorization_url(self, *, state: str, nonce: str, code_challenge: str) -> str:
        metadata = await self.metadata()
        params = {
            "response_type": "code",
            "client_id": self._client_id,
            "redirect_uri": self._redirect_uri,
            "scope": self._scopes,
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        if self._resource:
            params["resource"] = self._resource
        if self._prompt:
            params["prompt"] = self._prompt
        par = metadata.pushed_authorization_request_endpoint
        if par is None:
            return str(add_params_to_uri(metadata.authorization_endpoint, list(params.items())))
        # RFC 9126: the parameters travel server to server; the browser gets a handle.
        answer = _json_object(await self._post(metadata, par, params, what="PAR"), "PAR")
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
        params = [
            ("client_id", self._client_id),
            ("post_logout_redirect_uri", post_logout_redirect_uri),
        ]
        if id_token_hint:
            params.insert(0, ("id_token_hint", id_token_hint))
        elif logout_hint:
            params.insert(1, ("logout_hint", logout_hint))
        return str(add_params_to_uri(metadata.end_session_endpoint, params))

    # -- back channel ----------------------------------------------------------------

    async def exchange_code(self, *, code: str, code_verifier: str) -> TokenSet:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self._redirect_uri,
            "code_verifier": code_verifier,
        }
        if self._resource:
            form["resource"] = self._resource
        return await self._token_request(form)

    async def refresh(
        self, refresh_token: str, *, scope: str | None = None, resource: str | None = None
    ) -> TokenSet:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if scope:
            form["scope"] = scope  # omitted: the scope originally granted (RFC 6749 §6)
        chosen = resource or self._resource  # RFC 8707: a per-route resource narrows the token
        if chosen:
            form["resource"] = chosen
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
        await self._post(metadata, metadata.revocation_endpoint, form, what="revocation")

    async def _token_request(self, form: dict[str, str]) -> TokenSet:
        metadata = await self.metadata()
        body = await self._post(metadata, metadata.token_endpoint, form, what="token endpoint")
        answer = _json_object(body, "token endpoint")
        try:
            return token_set_from_response(answer, now=self._clock())
        except ValueError as exc:  # the message names the field, never its value
            raise IdpUnavailable(f"token endpoint: {exc}") from None

    async def _post(
        self, metadata: ProviderMetadata, url: str, form: Mapping[str, str], *, what: str
    ) -> bytes:
        data = dict(form)
        headers = {"Accept": "application/json"}
        methods = metadata.token_endpoint_auth_methods
        if "client_secret_post" in methods and "client_secret_basic" not in methods:
            data["client_id"] = self._client_id
            data["client_secret"] = self._client_secret
        else:
            # RFC 6749 §2.3.1: form-encode each part before base64, or ':' and '%' break it.
            pair = f"{_form_encode(self._client_id)}:{_form_encode(self._client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        return await self._send("POST", url, what=what, data=data, headers=headers)

    async def _send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> bytes:
        """One request; returns a 2xx body or raises the classified IdpError."""
        try:
            async with self._http.stream(method, url, data=data, headers=headers) as response:
                status = response.status_code
                body = await _read_capped(response, what)
        except httpx.HTTPError as exc:  # transport, timeout, protocol, decoding
            raise IdpUnavailable(f"{what} unreachable ({type(exc).__name__})") from exc
        if 200 <= status < 300:
            return body
        if 400 <= status < 500:
            try:
                doc = json.loads(body)
            except _NOT_JSON:
                doc = None
            error = doc.get("error") if isinstance(doc, dict) else None
            if isinstance(error, str) and _ERROR_CODE.fullmatch(error):
                description = doc.get("error_description") if isinstance(doc, dict) else None
                text = description[:256] if isinstance(description, str) else ""
                raise IdpRejected(error, text)
        raise IdpUnavailable(f"{what} answered HTTP {status}")

    # -- token validation ------------------------------------------------------------

    async def validate_id_token(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        metadata = await self.metadata()
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
        metadata = await self.metadata()
        claims = await self._jwks.verify(token, allowed_algs=metadata.id_token_algs)
        check_logout_token_claims(
            claims, issuer=metadata.issuer, client_id=self._client_id, now=self._clock()
        )
        return claims

    async def _fetch_jwks(self) -> Any:
        metadata = await self.metadata()
        body = await self._send("GET", metadata.jwks_uri, what="JWKS")
        try:
            return json.loads(body)
        except _NOT_JSON:
            raise IdpUnavailable("JWKS answer is not JSON") from None


async def _read_capped(response: httpx.Response, what: str) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raise IdpUnavailable(f"{what} answer larger than {MAX_RESPONSE_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():  # decoded bytes: a gzip bomb hits the cap too
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise IdpUnavailable(f"{what} answer larger than {MAX_RESPONSE_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except _NOT_JSON:
        raise IdpUnavailable(f"{what} answer is not JSON") from None
    if not isinstance(doc, dict):
        raise IdpUnavailable(f"{what} answer is not a JSON object")
    return doc
