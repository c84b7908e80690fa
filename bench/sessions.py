"""Sessions for the benchmark: a real login through the development provider's form,
and a bulk path that writes many real sealed sessions straight into Redis (the same
key layout and commands as `RedisStore.create_session`, pipelined)."""

from __future__ import annotations

import dataclasses
import time
from urllib.parse import parse_qsl, urlsplit

import httpx
import redis.asyncio

from bff.cookies import CookieSigner
from bff.crypto import KeyRing
from bff.session import Session, new_session_id, session_hash
from bff.session_service import SessionRef, SessionService
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


async def bulk_create(
    sessions: SessionService,
    client: redis.asyncio.Redis,
    template_cookie: str,
    count: int,
    *,
    cookies_wanted: int,
    prefix: str = "bff",
    batch: int = 2000,
) -> list[str]:
    """`count` sessions of distinct users, each a copy of the logged-in session's record
    (real tokens) with its own sub, sealed under its own key, with both index entries as
    a login writes them. Returns `name=value` cookies for the first `cookies_wanted`."""
    ref, template = await _load(sessions, template_cookie)
    name = template_cookie.partition("=")[0]
    store = sessions.store
    assert isinstance(store, RedisStore)
    cookies: list[str] = []
    expires_at = ref.expires_at
    ttl = max(1, min(IDLE, int(expires_at - time.time())))
    done = 0
    while done < count:
        async with client.pipeline(transaction=False) as pipe:
            for i in range(done, min(count, done + batch)):
                sub = f"bench-user-{i}"
                session_id = new_session_id()
                key_hash = session_hash(session_id)
                session = dataclasses.replace(
                    template,
                    sub=sub,
                    idp_sid=f"bench-sid-{i}",
                    claims={**template.claims, "sub": sub, "sid": f"bench-sid-{i}"},
                )
                blob = sessions._seal(key_hash, session)
                pipe.set(store._session_key(key_hash), blob, ex=ttl)
                index = IndexEntry(sub=sub, idp_sid=session.idp_sid, expires_at=expires_at)
                for index_key in store._index_keys(index):
                    pipe.zadd(index_key, {key_hash: expires_at})
                    pipe.expireat(index_key, expires_at)
                if len(cookies) < cookies_wanted:
                    signed = sessions.cookie_value(SessionRef(session_id, key_hash, expires_at))
                    cookies.append(f"{name}={signed}")
            await pipe.execute()
        done = min(count, done + batch)
    return cookies
