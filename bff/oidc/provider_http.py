"""HTTP to the provider: one request, its answer read under a size cap, and every httpx
exception or unusable answer translated into the error tree: a 4xx carrying an RFC 6749
`error` code is `IdpRejected`, anything else that went wrong (network, timeout, 5xx,
non-JSON, oversized) is `IdpUnavailable`. Client authentication (RFC 6749 §2.3.1, or a
signed client assertion: RFC 7523) is added to the form posts here, and a DPoP proof
(RFC 9449) when the caller holds a session key, with one retry on `use_dpop_nonce`.
No message names a token, code, verifier or secret.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote_plus, urlsplit

import httpx
from joserfc.jwk import ECKey

from bff.errors import IdpRejected, IdpUnavailable
from bff.oidc.client_assertion import ASSERTION_TYPE, ClientKey, client_assertion
from bff.oidc.dpop import dpop_proof
from bff.oidc.metadata import ProviderMetadata

__all__ = ["MAX_RESPONSE_BYTES", "FormValue", "ProviderHttp", "json_object"]

FormValue = str | list[str]  # a list: the parameter repeated (RFC 8707 `resource`)

MAX_RESPONSE_BYTES = 256 * 1024  # discovery, JWKS, token answers: nothing legitimate is bigger
# What a provider answer that is not JSON raises; RecursionError: deeply nested JSON
# (`[[[[…`), which must be a 502 like any other garbage, never a 500.
_NOT_JSON = (ValueError, UnicodeDecodeError, RecursionError)
_ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,128}")  # RFC 6749 §5.2 charset


def _form_encode(value: str) -> str:
    return quote_plus(value, safe="")


class ProviderHttp:
    """One confidential client's requests to its provider."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        client_id: str,
        client_secret: str = "",
        client_auth: str = "",
        client_key: ClientKey | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if client_auth == "private_key_jwt" and client_key is None:
            raise ValueError("private_key_jwt needs a client key")
        self._http = http
        self._client_id = client_id
        self._client_secret = client_secret
        self._client_auth = client_auth
        self._client_key = client_key
        self._clock = clock
        self._dpop_nonces: dict[str, str] = {}  # provider origin -> its last DPoP-Nonce

    def __repr__(self) -> str:  # the secret must never reach a log through repr
        return f"ProviderHttp(client_id={self._client_id!r})"

    def check_client_auth(self, metadata: ProviderMetadata) -> None:
        """IdpUnavailable when the provider does not offer the configured method."""
        methods = metadata.token_endpoint_auth_methods
        if self._client_auth and self._client_auth not in methods:
            raise IdpUnavailable(
                f"the provider does not accept client_auth {self._client_auth!r} "
                f"(token_endpoint_auth_methods_supported: {', '.join(methods) or 'none'})"
            )

    async def post(
        self,
        metadata: ProviderMetadata,
        url: str,
        form: Mapping[str, FormValue],
        *,
        what: str,
        dpop: ECKey | None = None,
    ) -> bytes:
        """A client-authenticated form post, with a DPoP proof when `dpop` is given; a
        `use_dpop_nonce` answer is retried once with the provider's nonce."""
        origin = _origin(url)
        for attempt in (1, 2):
            data, headers = self._authenticated(metadata, form)
            if dpop is not None:
                headers["DPoP"] = dpop_proof(
                    dpop,
                    htm="POST",
                    htu=url,
                    iat=self._clock(),
                    jti=secrets.token_urlsafe(16),
                    nonce=self._dpop_nonces.get(origin),
                )
            status, nonce, body = await self._exchange("POST", url, what, data, headers)
            if nonce:
                self._dpop_nonces[origin] = nonce
            if (
                attempt == 1
                and dpop is not None
                and nonce
                and status == 400
                and _error_code(body) == "use_dpop_nonce"
            ):
                continue
            return _classified(status, body, what)
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns

    def _authenticated(
        self, metadata: ProviderMetadata, form: Mapping[str, FormValue]
    ) -> tuple[dict[str, FormValue], dict[str, str]]:
        data: dict[str, FormValue] = dict(form)
        headers = {"Accept": "application/json"}
        method = self._client_auth
        if not method:  # basic unless the provider advertises only post
            methods = metadata.token_endpoint_auth_methods
            only_post = "client_secret_post" in methods and "client_secret_basic" not in methods
            method = "client_secret_post" if only_post else "client_secret_basic"
        if method == "private_key_jwt" and self._client_key is not None:
            data["client_id"] = self._client_id
            data["client_assertion_type"] = ASSERTION_TYPE
            data["client_assertion"] = client_assertion(
                self._client_key,
                client_id=self._client_id,
                audience=metadata.issuer,
                now=self._clock(),
                jti=secrets.token_urlsafe(16),
            )
        elif method == "client_secret_post":
            data["client_id"] = self._client_id
            data["client_secret"] = self._client_secret
        else:
            # RFC 6749 §2.3.1: form-encode each part before base64, or ':' and '%' break it.
            pair = f"{_form_encode(self._client_id)}:{_form_encode(self._client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        return data, headers

    async def send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        data: Mapping[str, FormValue] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> bytes:
        """One request; returns a 2xx body or raises the classified IdpError."""
        status, _nonce, body = await self._exchange(method, url, what, data, headers)
        return _classified(status, body, what)

    async def _exchange(
        self,
        method: str,
        url: str,
        what: str,
        data: Mapping[str, FormValue] | None,
        headers: Mapping[str, str] | None,
    ) -> tuple[int, str, bytes]:
        """(status, the DPoP-Nonce header or "", the body read under the cap)."""
        try:
            async with self._http.stream(method, url, data=data, headers=headers) as response:
                status = response.status_code
                nonce = response.headers.get("dpop-nonce", "")
                body = await _read_capped(response, what)
        except httpx.HTTPError as exc:  # transport, timeout, protocol, decoding
            raise IdpUnavailable(f"{what} unreachable ({type(exc).__name__})") from exc
        return status, nonce, body

    async def get_json(self, url: str, *, what: str) -> Any:
        """A GET whose answer must be JSON (any JSON: the caller checks its shape)."""
        body = await self.send("GET", url, what=what)
        try:
            return json.loads(body)
        except _NOT_JSON:
            raise IdpUnavailable(f"{what} answer is not JSON") from None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _error_code(body: bytes) -> str | None:
    try:
        doc = json.loads(body)
    except _NOT_JSON:
        return None
    error = doc.get("error") if isinstance(doc, dict) else None
    return error if isinstance(error, str) else None


def _classified(status: int, body: bytes, what: str) -> bytes:
    """A 2xx body, or the IdpError the answer means."""
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


def json_object(body: bytes, what: str) -> dict[str, Any]:
    """`body` as a JSON object, or IdpUnavailable."""
    try:
        doc = json.loads(body)
    except _NOT_JSON:
        raise IdpUnavailable(f"{what} answer is not JSON") from None
    if not isinstance(doc, dict):
        raise IdpUnavailable(f"{what} answer is not a JSON object")
    return doc
