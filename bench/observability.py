"""What observability costs on the proxy hot path (issue 13), in µs per request.

The whole bff ASGI stack (middleware, proxy, session lookup, token, upstream exchange)
is driven in-process: a memory store and an in-memory upstream, no sockets, the access
log off (as `make bench` runs it). What differs between the variants is bff's own
per-request work:

    off   metrics on, tracing off (the default)
    on    tracing on: server, store and upstream spans to a batching exporter that
          discards them (the OTLP exporter's cost on the wire is not bff's)

Run it against another checkout to compare (the code before a change, say):

    .venv/bin/python bench/observability.py                    # this checkout
    PYTHONPATH=/path/to/other .venv/bin/python bench/observability.py

Rounds interleave the variants; each is timed in CPU seconds of this process (the
exporter's thread included), which a busy machine disturbs less than wall time; the
median and the best round are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import statistics
import time
from collections.abc import Sequence
from typing import Any

import bff
from bff.config.load import load_settings
from bff.session.cookies import CookieSigner
from bff.session.crypto import KeyRing
from bff.session.service import SessionService
from bff.store.memory import MemoryStore
from bff.tokens.records import TokenSet
from bff.web.app import create_app

KEY = "bench-secret-key-0123456789-abcdefghijkl"
BODY = b'{"ok": true}'


class _Response:
    status = 200
    raw_headers = ((b"content-type", b"application/json"), (b"content-length", b"12"))

    def __init__(self) -> None:
        self._done = False

    async def readany(self) -> bytes:
        self._done = True
        return BODY

    def at_eof(self) -> bool:
        return self._done

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Pool:
    """An upstream that answers at once, from memory."""

    async def request(self, *args: Any) -> _Response:
        return _Response()

    async def aclose(self) -> None:
        pass


def _tracing() -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from bff.telemetry.tracing import Tracing

    class Discard(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    return Tracing(provider)


def in_process_stack() -> tuple[Any, MemoryStore, KeyRing, SessionService]:
    """(settings, memory store, key ring, session service) of one in-process bff with a
    route `/api` to an upstream that `_Pool` answers; shared with bench/session_cost.py."""
    env = {
        "BFF_ISSUER": "https://idp.example.com",
        "BFF_CLIENT_ID": "c",
        "BFF_CLIENT_SECRET": "s",
        "BFF_SECRET_KEY": KEY,
        "BFF_ACCESS_LOG": "false",
    }
    settings = load_settings(env, {"routes": [{"prefix": "/api", "upstream": "http://up:1"}]})
    store = MemoryStore()
    keys = KeyRing([KEY])
    sessions = SessionService(
        store=store,
        keys=keys,
        signer=CookieSigner(keys.signing_keys),
        idle_timeout=1800,
        max_lifetime=86400,
        clock=time.time,
    )
    return settings, store, keys, sessions


async def _app(tracing: bool) -> tuple[Any, bytes]:
    settings, store, _keys, sessions = in_process_stack()
    tokens = TokenSet(access_token="a" * 800, expires_at=int(time.time()) + 3600)
    ref, _ = await sessions.create(tokens=tokens, claims={"sub": "bench"}, user_agent="b")
    options: dict[str, Any] = {"store": store, "upstreams": _Pool(), "discover_on_startup": False}
    if tracing:
        options["tracing"] = _tracing()
    app = create_app(settings, **options)
    return app, f"bff-session={sessions.cookie_value(ref)}".encode()


async def _round(app: Any, cookie: bytes, n: int) -> float:
    headers = [
        (b"host", b"app.example"),
        (b"cookie", cookie),
        (b"x-csrf", b"1"),
        (b"accept", b"application/json"),
    ]
    request = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> dict[str, Any]:
        return request

    async def send(message: dict[str, Any]) -> None:
        pass

    started = time.process_time()
    for _ in range(n):
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/api/items",
            "raw_path": b"/api/items",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        await app(scope, receive, send)
    return (time.process_time() - started) / n * 1e6


async def main(requests: int, rounds: int, only: str | None) -> None:
    tracing_supported = "tracing" in inspect.signature(create_app).parameters
    variants: dict[str, tuple[Any, bytes]] = {}
    if only in (None, "off"):
        variants["off"] = await _app(False)
    if tracing_supported and only in (None, "on"):
        variants["on"] = await _app(True)
    results: dict[str, list[float]] = {name: [] for name in variants}
    for app, cookie in variants.values():
        await _round(app, cookie, requests // 10)  # warm-up
    for _ in range(rounds):
        for name, (app, cookie) in variants.items():
            results[name].append(await _round(app, cookie, requests))
    print(f"bff from {bff.__file__}")
    for name, values in results.items():
        print(
            f"tracing {name:3}: median {statistics.median(values):6.1f} µs/request, "
            f"best {min(values):6.1f} (rounds: {', '.join(f'{v:.1f}' for v in values)})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--only",
        choices=["off", "on"],
        help="one variant (the exporter thread of `on` "
        "otherwise spends CPU time during the rounds of `off`)",
    )
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds, args.only))
