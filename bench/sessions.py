"""Many sessions for the benchmark: a bulk path that writes sessions as logins of other
users would (through `RedisStore.create_sessions`: the store's own commands and layout,
pipelined), from one real login (`tests.support.sessions`)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import secrets
import time
from typing import Any

from bff.session.ids import new_session_id
from bff.session.records import Session, session_hash, shown_claims
from bff.session.service import SessionRef, SessionService
from bff.store import IndexEntry
from bff.store.redis import RedisStore
from tests.support.sessions import IDLE, load_logged_in

__all__ = ["bulk_create"]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _as_user(token: str, sub: str, sid: str, access_token: str | None = None) -> str:
    """`token` (a JWT) as the provider would have issued it to another user: `sub` and `sid`
    replaced and, for an ID token, `at_hash` recomputed over that user's access token. The
    signature bytes stay (same size; nothing verifies these copies again)."""
    header, payload, signature = token.split(".")
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims.update(sub=sub, sid=sid)
    if access_token is not None and "at_hash" in claims:
        digest = hashlib.sha256(access_token.encode("ascii")).digest()
        claims["at_hash"] = _b64url(digest[: len(digest) // 2])
    body = json.dumps(claims, separators=(",", ":")).encode()
    return f"{header}.{_b64url(body)}.{signature}"


def _user_session(template: Session, sub: str) -> Session:
    """What a login of `sub` stores: its own tokens, claims taken from its ID token."""
    sid = secrets.token_urlsafe(16)  # a provider session id, as the provider makes them
    tokens = template.tokens
    access = _as_user(tokens.access_token, sub, sid)
    id_token = _as_user(tokens.id_token, sub, sid, access) if tokens.id_token else None
    claims = dict(template.claims, sub=sub, sid=sid)
    if id_token is not None:
        payload = id_token.split(".")[1]
        claims = shown_claims(json.loads(base64.urlsafe_b64decode(payload + "==")))
    return dataclasses.replace(
        template,
        sub=sub,
        idp_sid=sid,
        claims=claims,
        tokens=dataclasses.replace(
            tokens, access_token=access, id_token=id_token, refresh_token=secrets.token_urlsafe(32)
        ),
    )


async def bulk_create(
    sessions: SessionService,
    template_cookie: str,
    count: int,
    *,
    store: RedisStore,
    cookies_wanted: int,
    batch: int = 2000,
) -> list[str]:
    """`count` sessions of distinct users, each what a login of that user would store: the
    logged-in session's record with that user's `sub`, `sid`, tokens and claims, sealed
    under its own id and written with its index entries by `RedisStore.create_sessions`,
    `batch` sessions per round trip. Returns `name=value` cookies for the first
    `cookies_wanted`. `store`: where they are written (the template session's store, or
    another one); the session service owns its store, so the caller names it."""
    ref, template = await load_logged_in(sessions, template_cookie)
    name = template_cookie.partition("=")[0]
    cookies: list[str] = []
    expires_at = ref.expires_at
    ttl = max(1, min(IDLE, int(expires_at - time.time())))
    for start in range(0, count, batch):
        writes = []
        for i in range(start, min(count, start + batch)):
            session_id = new_session_id()
            key_hash = session_hash(session_id)
            session = _user_session(template, f"bench-user-{i}")
            index = IndexEntry(sub=session.sub, idp_sid=session.idp_sid, expires_at=expires_at)
            writes.append((key_hash, sessions._seal(key_hash, session), ttl, index))
            if len(cookies) < cookies_wanted:
                signed = sessions.cookie_value(SessionRef(session_id, key_hash, expires_at))
                cookies.append(f"{name}={signed}")
        await store.create_sessions(writes)
    return cookies
