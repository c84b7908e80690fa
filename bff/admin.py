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

from bff.audit import audit
from bff.config import Settings
from bff.cookies import CookieSigner
from bff.crypto import KeyRing
from bff.errors import BffError, IdpError
from bff.oidc import OidcClient
from bff.session import short_hash
from bff.session_service import SessionService
from bff.store.factory import create_store

__all__ = ["run_sessions_command"]


def _printable(text: str) -> str:
    """No terminal escape sequences from a browser-supplied string."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


async def _hashes(service: SessionService, args: argparse.Namespace) -> list[str]:
    if getattr(args, "session", None):
        return [args.session]
    if args.sub:
        return await service.store.sessions_by_sub(args.sub)
    return [h async for h in service.store.all_sessions()]


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    store = create_store(settings)
    keys = KeyRing(settings.secret_keys)
    service = SessionService(
        store=store,
        keys=keys,
        signer=CookieSigner(keys.signing_keys),
        idle_timeout=settings.idle_timeout,
        max_lifetime=settings.max_lifetime,
        clock=time.time,
    )
    try:
        hashes = await _hashes(service, args)
        if args.action == "list":
            rows = await _rows(settings, service, hashes)
            if args.json:
                print(json.dumps(rows, indent=2))
            else:
                print("session\tsub\tcreated\tlast_seen\texpires\tuser_agent")
                for row in rows:
                    print("\t".join(_printable(str(row[k])) for k in _COLUMNS))
            return 0
        return await _revoke(settings, service, hashes)
    except BffError as exc:
        print(f"bff: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.aclose()


_COLUMNS = ("session", "sub", "created", "last_seen", "expires", "user_agent")


async def _rows(
    settings: Settings, service: SessionService, hashes: list[str]
) -> list[dict[str, str]]:
    """One row per live session, the most recently seen first."""
    found: list[tuple[float, dict[str, str]]] = []
    for h in hashes:
        session = await service.load_by_hash(h)
        ttl = await service.store.session_ttl(h)
        if session is None or ttl is None:
            continue
        now = time.time()
        # The idle expiry slides on every request: last seen = expiry - idle,
        # unless the absolute cap is what ends it.
        expires = now + ttl
        last_seen = max(min(now, expires - settings.idle_timeout), session.created_at)
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


async def _revoke(settings: Settings, service: SessionService, hashes: list[str]) -> int:
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0)) as http:
        oidc = OidcClient.from_settings(settings, http=http)
        revoked = 0
        for h in hashes:
            session = await service.load_by_hash(h)
            existed = await service.delete(h, session)
            if not existed:
                continue
            revoked += 1
            outcome = "deleted"
            if session is not None and session.tokens.refresh_token:
                try:
                    await oidc.revoke(session.tokens.refresh_token)
                    outcome = "deleted_and_revoked"
                except IdpError:
                    outcome = "deleted_revocation_failed"
            audit(
                "revoke",
                outcome=outcome,
                now=time.time(),
                sub=session.sub if session else None,
                session=short_hash(h),
            )
        print(f"revoked {revoked} session(s)")
    if revoked == 0:
        print("bff: no live session matched; nothing was revoked", file=sys.stderr)
        return 1
    return 0


def run_sessions_command(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_run(settings, args))
