"""The demo API behind the BFF for `make run`: an upstream that trusts nothing but the
bearer token the BFF adds.

    GET /api/whoami   verifies the bearer JWT against the provider's JWKS (signature,
                      RS256 only, `iss`, `aud`, `exp`) and echoes who called: 200
                      {sub, name, scope, client_id, expires_at, expires_in}; 401 with
                      `WWW-Authenticate: Bearer error="invalid_token"` otherwise.

    python deploy/demo/api.py --issuer http://localhost:9000 --audience AUD [--port 9100]

Loopback only, unless `--in-container` (the compose stack of deploy/docker, where the
API listens on the stack's private network and no port of it is published).

The JWKS is found through the issuer's discovery document and fetched again for an
unknown `kid`, at most every 30 s. This is a demo, not a product.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

__all__ = ["JwksCache", "create_api_app", "main"]

REFETCH_COOLDOWN = 30.0


class JwksCache:
    """The provider's signing keys, refetched on an unknown `kid` (bounded)."""

    def __init__(self, issuer: str, http: httpx.AsyncClient) -> None:
        self.issuer = issuer.rstrip("/")
        self._http = http
        self._keys: KeySet | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def _fetch(self) -> KeySet:
        meta = await self._http.get(f"{self.issuer}/.well-known/openid-configuration")
        meta.raise_for_status()
        jwks = await self._http.get(meta.json()["jwks_uri"])
        jwks.raise_for_status()
        self._fetched_at = time.monotonic()
        self._keys = KeySet.import_key_set(jwks.json())
        return self._keys

    async def keys(self, kid: str | None) -> KeySet:
        async with self._lock:
            keys = self._keys
            known = keys is not None and any(k.kid == kid for k in keys.keys)
            if keys is None or (
                not known and time.monotonic() - self._fetched_at > REFETCH_COOLDOWN
            ):
                keys = await self._fetch()
            return keys


def _unauthorized(description: str) -> JSONResponse:
    return JSONResponse(
        {"error": "invalid_token", "error_description": description},
        status_code=401,
        headers={"www-authenticate": 'Bearer error="invalid_token"', "cache-control": "no-store"},
    )


def create_api_app(
    issuer: str, audience: str, *, http: httpx.AsyncClient | None = None
) -> Starlette:
    own_http = http is None
    client = http or httpx.AsyncClient(timeout=5)
    jwks = JwksCache(issuer, client)
    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": jwks.issuer},
        aud={"essential": True, "value": audience},
        exp={"essential": True},
        sub={"essential": True},
    )

    async def whoami(request: Request) -> JSONResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _unauthorized("a bearer token is required")
        try:
            header = jws.extract_compact(token.encode()).protected
            keys = await jwks.keys(header.get("kid"))
            decoded = jwt.decode(token, keys, algorithms=["RS256"])
            registry.validate(decoded.claims)
        except (JoseError, ValueError, KeyError) as exc:
            return _unauthorized(f"token rejected: {type(exc).__name__}")
        except httpx.HTTPError:
            return JSONResponse({"error": "jwks_unavailable"}, status_code=503)
        claims: dict[str, Any] = decoded.claims
        return JSONResponse(
            {
                "sub": claims["sub"],
                "name": claims.get("name") or claims.get("preferred_username") or claims["sub"],
                "scope": claims.get("scope"),
                "client_id": claims.get("client_id"),
                "expires_at": claims["exp"],
                "expires_in": int(claims["exp"] - time.time()),
                "message": "hello from the demo API: your bearer token checked out",
            },
            headers={"cache-control": "no-store"},
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if own_http:
                await client.aclose()

    return Starlette(routes=[Route("/api/whoami", whoami, methods=["GET"])], lifespan=lifespan)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bff demo API (loopback only)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--issuer", required=True, help="the provider's issuer URL")
    parser.add_argument("--audience", required=True, help="the `aud` access tokens must carry")
    parser.add_argument(
        "--in-container",
        action="store_true",
        help="allow a non-loopback --host: inside a container network, never published",
    )
    args = parser.parse_args(argv)
    if not args.in_container and not ipaddress.ip_address(args.host).is_loopback:
        parser.error("--host must be a loopback address (or --in-container)")
    uvicorn.run(
        create_api_app(args.issuer, args.audience),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,  # request lines would be harmless, but stay consistent with bff
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
