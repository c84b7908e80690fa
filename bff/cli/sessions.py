"""`bff sessions list|revoke`: operator tools that work against the configured store,
so they reach the sessions of every instance."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime

import httpx

from bff.config.model import Frontend, Settings
from bff.errors import BffError
from bff.oidc.client import OidcClient
from bff.session.bus import create_bus
from bff.session.cookies import CookieSigner
from bff.session.crypto import KeyRing
from bff.session.live import LiveSessions
from bff.session.service import SessionService
from bff.store.factory import create_store

__all__ = ["run_sessions_command"]

_REVOKE_TIMEOUT = 10.0  # an operator waits: more than a logout would


def _printable(text: str) -> str:
    """No terminal escape sequences from a browser-supplied string."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


async def _hashes(service: SessionService, args: argparse.Namespace) -> list[str]:
    if getattr(args, "session", None):
        return [args.session]
    if args.sub:
        return await service.find(sub=args.sub)
    return [h async for h in service.all_hashes()]


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    store = create_store(settings)
    keys = KeyRing(settings.secret_keys)
    frontend = settings.frontend
    # A revocation closes the session's WebSockets and streams on every instance.
    bus = create_bus(settings.session_store, prefix=settings.store_prefix)
    live = LiveSessions(bus, store=store, clock=time.time)
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0)) as http:
            service = SessionService(
                store=store,
                keys=keys,
                signer=CookieSigner(keys.signing_keys),
                idle_timeout=frontend.idle_timeout,
                max_lifetime=frontend.max_lifetime,
                clock=time.time,
                revoke=OidcClient.for_frontend(frontend, http=http).revoke,
                revoke_timeout=_REVOKE_TIMEOUT,
                events=live,
            )
            hashes = await _hashes(service, args)
            if args.action == "list":
                rows = await _rows(frontend, service, hashes)
                if args.json:
                    print(json.dumps(rows, indent=2))
                else:
                    print("session\tsub\tcreated\tlast_seen\texpires\tuser_agent")
                    for row in rows:
                        print("\t".join(_printable(str(row[k])) for k in _COLUMNS))
                return 0
            return await _revoke(service, hashes)
    except BffError as exc:
        print(f"bff: {exc}", file=sys.stderr)
        return 1
    finally:
        await bus.aclose()
        await store.aclose()


_COLUMNS = ("session", "sub", "created", "last_seen", "expires", "user_agent")


async def _rows(
    frontend: Frontend, service: SessionService, hashes: list[str]
) -> list[dict[str, str]]:
    """One row per live session, the most recently seen first."""
    found: list[tuple[float, dict[str, str]]] = []
    for h in hashes:
        session = await service.load_by_hash(h)
        ttl = await service.ttl(h)
        if session is None or ttl is None:
            continue
        now = service.now()
        # The idle expiry slides on every request: last seen = expiry - idle,
        # unless the absolute cap is what ends it.
        expires = now + ttl
        last_seen = max(min(now, expires - frontend.idle_timeout), session.created_at)
        row = {
            "session": h,
            "sub": session.sub,
            "created": _iso(session.created_at),
            "last_seen": _iso(last_seen),
            "expires": _iso(expires),
            "user_agent": session.user_agent,
        }
        found.append((last_seen, row))
    found.sort(key=lambda item: (-item[0], item[1]["session"]))
    return [row for _, row in found]


async def _revoke(service: SessionService, hashes: list[str]) -> int:
    revoked = 0
    for h in hashes:
        session = await service.load_by_hash(h)
        if await service.end(h, session, "revoke", revoke=True):
            revoked += 1
    print(f"revoked {revoked} session(s)")
    if revoked == 0:
        print("bff: no live session matched; nothing was revoked", file=sys.stderr)
        return 1
    return 0


def run_sessions_command(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_run(settings, args))
