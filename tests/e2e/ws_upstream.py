"""The WebSocket upstream of the e2e tests: an echo server (the `websockets` library) that
verifies the handshake's bearer JWT exactly as the HTTP test API does (tests/e2e/api_server.py:
signature against the provider's JWKS, RFC 9068 `typ`, `iss`, `aud`, `exp`) and records every
handshake that reached it, verified or not, so a test can say "the upstream saw nothing".

    python -m tests.e2e.ws_upstream --issuer URL --audience URI --port-file FILE

A handshake without a valid bearer is answered 401 (no upgrade). `GET /_test/connections`
(a plain HTTP request on the same port) lists the recorded handshakes as JSON (claims, the
headers the tests ask about, the close code each socket ended with); it is never proxied,
since the bff route is `/live`. Loopback only; it binds port 0 and writes the port it got.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from http import HTTPStatus
from typing import Any

import httpx
from joserfc.errors import JoseError
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.e2e.api_server import Verifier

RECORDED_HEADERS = ("cookie", "origin", "x-forwarded-for", "x-forwarded-host", "x-request-id")


class WsUpstream:
    def __init__(self, verifier: Verifier) -> None:
        self.verifier = verifier
        self.connections: list[dict[str, Any]] = []

    def _json(self, status: int, body: Any) -> Response:
        data = json.dumps(body).encode()
        headers = Headers([("content-type", "application/json"), ("cache-control", "no-store")])
        headers["content-length"] = str(len(data))
        return Response(status, HTTPStatus(status).phrase, headers, data)

    async def process_request(self, connection: ServerConnection, request: Request) -> Any:
        if request.path.startswith("/_test/connections"):
            return self._json(200, {"connections": self.connections})
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        record: dict[str, Any] = {
            "index": len(self.connections),
            "time": time.time(),
            "path": request.path,
            "headers": {h: request.headers[h] for h in RECORDED_HEADERS if h in request.headers},
            "auth_scheme": scheme or None,
            "verified": False,
            "messages": 0,
            "close_code": None,
        }
        self.connections.append(record)
        if scheme.lower() != "bearer" or not token:
            record["error"] = "no bearer token"
            return self._json(401, {"error": "invalid_token"})
        try:
            claims = await self.verifier.verify(token)
        except (ValueError, JoseError, httpx.HTTPError) as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
            return self._json(401, {"error": "invalid_token"})
        record.update(verified=True, claims=claims, sub=claims["sub"])
        connection.record = record  # type: ignore[attr-defined]
        return None  # go on with the upgrade

    async def echo(self, ws: ServerConnection) -> None:
        record: dict[str, Any] = ws.record  # type: ignore[attr-defined]
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                record["messages"] += 1
                await ws.send(message)
        await ws.wait_closed()
        record["close_code"] = ws.close_code


async def run(args: argparse.Namespace) -> None:
    upstream = WsUpstream(Verifier(args.issuer, args.audience))
    async with serve(
        upstream.echo, args.host, 0, process_request=upstream.process_request
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        with open(args.port_file, "w", encoding="ascii") as fh:
            fh.write(f"{port}\n")
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--audience", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        raise SystemExit("the e2e WebSocket upstream binds loopback addresses only")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
