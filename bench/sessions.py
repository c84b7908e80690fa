"""Sessions for the benchmark: a real login through the development provider's form,
and a bulk path that writes many sessions as logins of other users would (through
`RedisStore.create_sessions`: the store's own commands and layout, pipelined)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from bff.session.cookies import CookieSigner
from bff.session.crypto import KeyRing
from bff.session.records import Session, new_session_id, session_hash, shown_claims
from bff.session.service import SessionRef, SessionService
from bff.store import IndexEntry
from bff.store.redis import RedisStore

__all__ = ["bulk_create", "expire_access_token", "login", "service"]

IDLE, LIFETIME = 1800, 86400  # bff's defaults, which the benchmark's instances use


def service(store: RedisStore, secret_key: str) -> SessionService:
    keys = KeyRing([secret_key])
    return SessionService(
        store=store,
        keys=keys,
        signer=CookieSigner(keys.signing_keys),
        idle_timeout=IDLE,
        max_lifetime=LIFETIME,
        clock=time.time,
    )


def _cookie(response: httpx.Response, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        key, _, rest = header.partition("=")
        if key.strip() == name:
            return rest.split(";", 1)[0]
    raise RuntimeError(f"no {name} cookie in the answer")


def login(bff_url: str, username: str, cookie_name: str = "bff-session") -> str:
    """Log in through the provider's real form; the `name=value` session cookie."""
    with httpx.Client(timeout=10, follow_redirects=False) as http:
        start = http.get(f"{bff_url}/bff/login", params={"returnUrl": "/"})
        if start.status_code != 302:
            raise RuntimeError(f"/bff/login answered {start.status_code}")
        binding = [h.split(";", 1)[0] for h in start.headers.get_list("set-cookie") if "=" in h]
        authorize = start.headers["location"]
        parts = urlsplit(authorize)
        form = dict(parse_qsl(parts.query))
        form.update(username=username, action="login")
        signed_in = http.post(f"{parts.scheme}://{parts.netloc}{parts.path}", data=form)
        if signed_in.status_code not in (302, 303):
            raise RuntimeError(f"provider login answered {signed_in.status_code}")
        callback = http.get(signed_in.headers["location"], headers={"cookie": "; ".join(binding)})
        if callback.status_code != 302:
            raise RuntimeError(f"/bff/callback answered {callback.status_code}: {callback.text}")
        return f"{cookie_name}={_cookie(callback, cookie_name)}"


async def _load(sessions: SessionService, cookie: str) -> tuple[SessionRef, Session]:
    ref = sessions.ref_from_cookie(cookie.partition("=")[2])
    if ref is None:
        raise RuntimeError("the login cookie does not verify")
    session = await sessions.load(ref)
    if session is None:
        raise RuntimeError("the logged-in session is not in the store")
    return ref, session


async def expire_access_token(sessions: SessionService, cookie: str) -> None:
    """As if the access token had just expired: its recorded expiry moves to the past."""
    ref, session = await _load(sessions, cookie)
    tokens = dataclasses.replace(session.tokens, expires_at=int(time.time()) - 1)
    if not await sessions.save(ref.hash, dataclasses.replace(session, tokens=tokens)):
        raise RuntimeError("could not rewrite the session")


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
    cookies_wanted: int,
    batch: int = 2000,
    into: SessionService | None = None,
) -> list[str]:
    """`count` sessions of distinct users, each what a login of that user would store: the
    logged-in session's record with that user's `sub`, `sid`, tokens and claims, sealed
    under its own id and written with its index entries by `RedisStore.create_sessions`,
    `batch` sessions per round trip. Returns `name=value` cookies for the first
    `cookies_wanted`. `into`: write them there instead (another store), not where the
    template session lives."""
    ref, template = await _load(sessions, template_cookie)
    name = template_cookie.partition("=")[0]
    sessions = into or sessions
    store = sessions.store
    assert isinstance(store, RedisStore)
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
