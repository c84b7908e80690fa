"""`bff sessions list|revoke`: operator tools that work against the configured store,
so they reach the sessions of every instance and every frontend (each row names its
frontend; a revocation goes to that frontend's provider)."""

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
from bff.session.crypto import KeyRing
from bff.session.frontend_sessions import frontend_sessions
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


# (frontend, its session service, a session hash): every row and revocation names the
# frontend whose service opens the session, so a revocation goes to its own provider.
Found = tuple[Frontend, SessionService, str]


async def _targets(
    services: list[tuple[Frontend, SessionService]], args: argparse.Namespace
) -> list[Found]:
    if args.sub:  # each frontend's index holds its own sessions only
        return [(f, s, h) for f, s in services for h in await s.find(sub=args.sub)]
    if getattr(args, "session", None):
        hashes = [args.session]
    else:
        hashes = [h async for h in services[0][1].all_hashes()]  # one store: every frontend's
    found: list[Found] = []
    for h in hashes:
        owner = services[0]  # unreadable (a retired key): the default frontend deletes it
        for frontend, service in services:
            if await service.load_by_hash(h) is not None:
                owner = (frontend, service)
                break
        found.append((*owner, h))
    return found


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    store = create_store(settings)
    keys = KeyRing(settings.secret_keys)
    # A revocation closes the session's WebSockets and streams on every instance.
    bus = create_bus(settings.session_store, prefix=settings.store_prefix)
    live = LiveSessions(bus, store=store, clock=time.time)
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0)) as http:
            services = [
                (
                    frontend,
                    frontend_sessions(
                        frontend,
                        store=store,
                        keys=keys,
                        clock=time.time,
                        revoke=OidcClient.for_frontend(frontend, http=http).revoke,
                        revoke_timeout=_REVOKE_TIMEOUT,
                        events=live,
                    ),
                )
                for frontend in settings.frontends
            ]
            found = await _targets(services, args)
            if args.action == "list":
                rows = await _rows(found)
                if args.json:
                    print(json.dumps(rows, indent=2))
                else:
                    print("\t".join(_COLUMNS))
                    for row in rows:
                        print("\t".join(_printable(str(row[k])) for k in _COLUMNS))
                return 0
            return await _revoke(found)
    except BffError as exc:
        print(f"bff: {exc}", file=sys.stderr)
        return 1
    finally:
        await bus.aclose()
        await store.aclose()


_COLUMNS = ("session", "sub", "created", "last_seen", "expires", "user_agent", "frontend")


async def _rows(found: list[Found]) -> list[dict[str, str]]:
    """One row per live session, the most recently seen first."""
    rows: list[tuple[float, dict[str, str]]] = []
    for frontend, service, h in found:
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
            "frontend": frontend.name,
        }
        rows.append((last_seen, row))
    rows.sort(key=lambda item: (-item[0], item[1]["session"]))
    return [row for _, row in rows]


async def _revoke(found: list[Found]) -> int:
    revoked = 0
    for _frontend, service, h in found:
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
