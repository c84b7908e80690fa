"""The upstream API of the e2e tests: verifies the bearer JWT against the provider's JWKS
(RFC 9068 access token: signature, `typ`, `iss`, `aud`, `exp` with no leeway) and records
every call, so a test can say exactly which token and which user reached it.

    python tests/e2e/api_server.py --issuer URL --audience URI --port-file FILE

`/api/...` (any method) answers `{sub, jti, ...}` for a valid token and 401 otherwise; it
never echoes the token. `GET /_test/calls?since=N` lists the recorded calls (test-only,
full token included); it is outside `/api`, so the BFF never forwards to it.
Loopback only; it binds port 0 and writes the port it got to --port-file.
"""

from __future__ import annotations

import argparse
import hashlib
import socket
import time
from typing import Any

import httpx
import uvicorn
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ALGORITHMS = ["RS256", "PS256", "ES256"]
RECORDED_HEADERS = (
    "cookie",
    "x-csrf",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-request-id",
    "sec-fetch-site",
    "origin",
    "host",
)


class Verifier:
    """Fetches the JWKS once, and again on an unknown `kid` (the provider rotated)."""

    def __init__(self, issuer: str, audience: str) -> None:
        self.issuer = issuer
        self.audience = audience
        self.keys: KeySet | None = None

    async def _load(self) -> KeySet:
        async with httpx.AsyncClient(timeout=5) as client:
            meta = (await client.get(f"{self.issuer}/.well-known/openid-configuration")).json()
            jwks = (await client.get(meta["jwks_uri"])).json()
        self.keys = KeySet.import_key_set(jwks)
        return self.keys

    async def verify(self, token: str) -> dict[str, Any]:
        keys = self.keys or await self._load()
        try:
            decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
        except (ValueError, JoseError):
            decoded = jwt.decode(token, await self._load(), algorithms=ALGORITHMS)
        if decoded.header.get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
            raise ValueError(f"not an RFC 9068 access token (typ={decoded.header.get('typ')!r})")
        registry = jwt.JWTClaimsRegistry(
            leeway=0,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            exp={"essential": True},
            sub={"essential": True},
        )
        registry.validate(decoded.claims)
        return dict(decoded.claims)


def create_app(verifier: Verifier) -> Starlette:
    calls: list[dict[str, Any]] = []

    async def api(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        call: dict[str, Any] = {
            "index": len(calls),
            "time": time.time(),
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": {
                h: request.headers.get(h) for h in RECORDED_HEADERS if h in request.headers
            },
            "auth_scheme": scheme or None,
            "verified": False,
        }
        calls.append(call)
        if not (request.url.path == "/api" or request.url.path.startswith("/api/")):
            # Recorded all the same: "the upstream saw nothing" means nothing at all.
            call["error"] = "no such upstream path"
            return JSONResponse({"error": "upstream_no_route"}, status_code=404)
        if scheme.lower() != "bearer" or not token:
            call["error"] = "no bearer token"
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        call["token"] = token
        call["token_sha256"] = hashlib.sha256(token.encode()).hexdigest()[:16]
        try:
            claims = await verifier.verify(token)
        except (ValueError, JoseError, httpx.HTTPError) as exc:
            call["error"] = f"{type(exc).__name__}: {exc}"
            return JSONResponse(
                {"error": "invalid_token"},
                status_code=401,
                headers={"www-authenticate": 'Bearer error="invalid_token"'},
            )
        call.update(verified=True, claims=claims, sub=claims["sub"], jti=claims.get("jti"))
        shown = {k: claims.get(k) for k in ("sub", "jti", "client_id", "scope", "iat", "exp")}
        return JSONResponse({**shown, "path": request.url.path, "call": call["index"]})

    async def recorded(request: Request) -> Response:
        since = int(request.query_params.get("since", "0"))
        return JSONResponse({"count": len(calls), "calls": calls[since:]})

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return Starlette(
        routes=[
            Route("/_test/calls", recorded, methods=["GET"]),
            Route("/{rest:path}", api, methods=methods),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--audience", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        raise SystemExit("the e2e API binds loopback addresses only")
    # Bind first, then report the port: no race for a free port.
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.bind((args.host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(Verifier(args.issuer, args.audience)),
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    with open(args.port_file, "w", encoding="ascii") as fh:
        fh.write(f"{port}\n")
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
