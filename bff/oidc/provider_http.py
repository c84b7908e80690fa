"""HTTP to the provider: one request, its answer read under a size cap, and every httpx
exception or unusable answer translated into the error tree: a 4xx carrying an RFC 6749
`error` code is `IdpRejected`, anything else that went wrong (network, timeout, 5xx,
non-JSON, oversized) is `IdpUnavailable`. Client authentication (RFC 6749 §2.3.1) is
added to the form posts here. No message names a token, code, verifier or secret.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote_plus

import httpx

from bff.errors import IdpRejected, IdpUnavailable
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

    def __init__(self, http: httpx.AsyncClient, *, client_id: str, client_secret: str) -> None:
        self._http = http
        self._client_id = client_id
        self._client_secret = client_secret

    def __repr__(self) -> str:  # the secret must never reach a log through repr
        return f"ProviderHttp(client_id={self._client_id!r})"

    async def post(
        self, metadata: ProviderMetadata, url: str, form: Mapping[str, FormValue], *, what: str
    ) -> bytes:
        """A client-authenticated form post: `client_secret_basic` unless the provider
        advertises only `client_secret_post`."""
        data: dict[str, FormValue] = dict(form)
        headers = {"Accept": "application/json"}
        methods = metadata.token_endpoint_auth_methods
        if "client_secret_post" in methods and "client_secret_basic" not in methods:
            data["client_id"] = self._client_id
            data["client_secret"] = self._client_secret
        else:
            # RFC 6749 §2.3.1: form-encode each part before base64, or ':' and '%' break it.
            pair = f"{_form_encode(self._client_id)}:{_form_encode(self._client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        return await self.send("POST", url, what=what, data=data, headers=headers)

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

    async def get_json(self, url: str, *, what: str) -> Any:
        """A GET whose answer must be JSON (any JSON: the caller checks its shape)."""
        body = await self.send("GET", url, what=what)
        try:
            return json.loads(body)
        except _NOT_JSON:
            raise IdpUnavailable(f"{what} answer is not JSON") from None


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
