"""Real logins through the development provider's form, and the session service over a
Redis store that reads and rewrites what they stored (the HA tests and the benchmark)."""

from __future__ import annotations

import dataclasses
import time
from urllib.parse import parse_qsl, urlsplit

import httpx

from bff.session.cookies import CookieSigner
from bff.session.crypto import KeyRing
from bff.session.records import Session
from bff.session.service import SessionRef, SessionService
from bff.store.redis import RedisStore

__all__ = ["IDLE", "LIFETIME", "expire_access_token", "load_logged_in", "login", "service"]

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


async def load_logged_in(sessions: SessionService, cookie: str) -> tuple[SessionRef, Session]:
    """The session behind a `name=value` login cookie (RuntimeError when there is none)."""
    ref = sessions.ref_from_cookie(cookie.partition("=")[2])
    if ref is None:
        raise RuntimeError("the login cookie does not verify")
    session = await sessions.load(ref)
    if session is None:
        raise RuntimeError("the logged-in session is not in the store")
    return ref, session


async def expire_access_token(sessions: SessionService, cookie: str) -> None:
    """As if the access token had just expired: its recorded expiry moves to the past."""
    ref, session = await load_logged_in(sessions, cookie)
    tokens = dataclasses.replace(session.tokens, expires_at=int(time.time()) - 1)
    if not await sessions.save(ref.hash, dataclasses.replace(session, tokens=tokens)):
        raise RuntimeError("could not rewrite the session")
