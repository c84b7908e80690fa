"""Many sessions for the benchmark: a bulk path that writes sessions as logins of other
users would (through `RedisStore.create_sessions`: the store's own commands and layout,
pipelined), from one real login (`tests.support.sessions`).

Two token shapes: `dev`, the development provider's tokens of the real login with each
user's `sub`, `sid` and `at_hash` (signature bytes kept), and `keycloak`, the tokens
Keycloak issues (`bench.keycloak_tokens`: RS256 access and ID token, HS512 refresh token).
Sealing a record is CPU work (~0.1-0.3 ms): batches are made in worker processes (one a
core) while the parent writes the previous ones."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import dataclasses
import hashlib
import json
import multiprocessing
import os
import secrets
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import redis
import redis.connection

from bench.keycloak_tokens import KeycloakTokens
from bff.session.crypto import KeyRing
from bff.session.ids import new_session_id
from bff.session.records import (
    Session,
    encode_session,
    session_hash,
    shown_claims,
)
from bff.session.service import SessionRef, SessionService
from bff.store import IndexEntry
from bff.store.redis_index import queue_sessions
from bff.store.redis_keys import IndexSlot, KeyLayout
from bff.tokens.records import TokenSet
from tests.support.sessions import IDLE, load_logged_in

__all__ = ["SHAPES", "bulk_create", "user_session"]

SHAPES = ("dev", "keycloak")
_REALM = KeycloakTokens.realm()  # one realm's keys for every Keycloak-shaped session


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _payload(token: str) -> dict[str, Any]:
    segment = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return claims


def _as_user(token: str, sub: str, sid: str, access_token: str | None = None) -> str:
    """`token` (a JWT) as the provider would have issued it to another user: `sub` and `sid`
    replaced and, for an ID token, `at_hash` recomputed over that user's access token. The
    signature bytes stay (same size; nothing verifies these copies again)."""
    header, _, signature = token.split(".")
    claims = _payload(token)
    claims.update(sub=sub, sid=sid)
    if access_token is not None and "at_hash" in claims:
        digest = hashlib.sha256(access_token.encode("ascii")).digest()
        claims["at_hash"] = _b64url(digest[: len(digest) // 2])
    body = json.dumps(claims, separators=(",", ":")).encode()
    return f"{header}.{_b64url(body)}.{signature}"


def user_session(template: Session, user: int, shape: str = "dev") -> Session:
    """What a login of user number `user` stores: its own tokens of `shape` (`dev`,
    `keycloak`, or `keycloak-no-id-token`: as stored with BFF_LOGOUT_ID_TOKEN_HINT=false),
    claims taken from its ID token; times, user agent and client address those of
    `template`."""
    if shape == "keycloak-no-id-token":  # what BFF_LOGOUT_ID_TOKEN_HINT=false stores
        session = user_session(template, user, "keycloak")
        return dataclasses.replace(
            session, tokens=dataclasses.replace(session.tokens, id_token=None)
        )
    tokens = template.tokens
    if shape == "keycloak":
        access, id_token, refresh = _REALM.for_user(user, now=template.created_at)
    elif shape == "dev":
        sid = secrets.token_urlsafe(16)  # a provider session id, as the provider makes them
        sub = f"bench-user-{user}"
        access = _as_user(tokens.access_token, sub, sid)
        id_token = _as_user(tokens.id_token, sub, sid, access) if tokens.id_token else None
        refresh = secrets.token_urlsafe(32)
        if id_token is None:
            return dataclasses.replace(
                template,
                sub=sub,
                idp_sid=sid,
                claims=dict(template.claims, sub=sub, sid=sid),
                tokens=dataclasses.replace(tokens, access_token=access, refresh_token=refresh),
            )
    else:
        raise ValueError(f"unknown token shape {shape!r}")
    claims = shown_claims(_payload(id_token))
    sid_claim = claims.get("sid")
    return dataclasses.replace(
        template,
        sub=str(claims["sub"]),
        idp_sid=sid_claim if isinstance(sid_claim, str) else None,
        claims=claims,
        tokens=TokenSet(
            access_token=access,
            expires_at=tokens.expires_at,
            refresh_token=refresh,
            id_token=id_token,
            token_type=tokens.token_type,
            scope="openid profile email" if shape == "keycloak" else tokens.scope,
            refresh_expires_at=tokens.refresh_expires_at,
        ),
    )


@dataclasses.dataclass(frozen=True)
class _Maker:
    """What a worker process needs to make sessions (picklable)."""

    secret_key: str
    template: Session
    shape: str
    before: bool  # as releases before record format 3 wrote them (and their index)
    prefix: str
    ttl: int

    def make(self, start: int, stop: int) -> tuple[bytes, int, list[tuple[str, str, int]]]:
        """Sessions `start`..`stop`: the store's own commands for them (`queue_sessions`,
        as `RedisStore.create_sessions` sends them), packed; how many commands; and
        (hash, session id, sealed size) of each."""
        keys = KeyRing([self.secret_key])  # the service's: HKDF of the same secret
        writes: list[tuple[str, bytes, int, IndexEntry]] = []
        made = []
        for user in range(start, stop):
            session_id = new_session_id()
            key_hash = session_hash(session_id)
            session = user_session(self.template, user, self.shape)
            index = IndexEntry(
                sub=session.sub, idp_sid=session.idp_sid, expires_at=session.expires_at
            )
            record = encode_session(session, 2 if self.before else 3)
            blob = keys.seal(record, aad=key_hash.encode())
            writes.append((key_hash, blob, self.ttl, index))
            made.append((key_hash, session_id, len(blob)))
        pipe = redis.Redis().pipeline(transaction=False)  # only queues: never connects
        layout = (_LegacyLayout if self.before else KeyLayout)(self.prefix)
        queue_sessions(pipe, layout, writes, time.time())
        commands = [args for args, _ in pipe.command_stack]
        return b"".join(redis.connection.Connection().pack_commands(commands)), len(commands), made


class _LegacyLayout(KeyLayout):
    """The key layout of releases before 32,768 index buckets: 2,048 of them."""

    def bucket(self, slot: IndexSlot) -> str:
        return self.legacy_bucket(slot)


class _Sink:
    """A raw connection to one Redis: packed commands out, their one-line replies counted
    (SET, ZADD, ZREMRANGEBYSCORE, EXPIREAT answer `+OK` or an integer)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> _Sink:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 6379)
        sink = cls(reader, writer)
        db = parts.path.strip("/") or "0"
        if db != "0":
            await sink.send(f"*2\r\n$6\r\nSELECT\r\n${len(db)}\r\n{db}\r\n".encode(), 1)
        return sink

    async def send(self, packed: bytes, replies: int) -> None:
        self._writer.write(packed)
        await self._writer.drain()
        seen, last = 0, b"\n"  # the byte before: a reply split between reads, an error
        while seen < replies:
            chunk = await self._reader.read(1 << 16)
            if not chunk:
                raise RuntimeError("Redis closed the connection")
            if b"\n-" in last + chunk:
                raise RuntimeError(f"Redis refused a bulk write: {chunk[:200]!r}")
            seen += (last + chunk).count(b"\r\n")
            last = chunk[-1:]

    async def aclose(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()


async def bulk_create(
    sessions: SessionService,
    template_cookie: str,
    count: int,
    *,
    urls: Sequence[str],
    cookies_wanted: int,
    secret_key: str,
    shape: str = "dev",
    before: bool = False,
    prefix: str = "bff",
    batch: int = 2000,
    workers: int | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """`count` sessions of distinct users, each what a login of that user would store (see
    `user_session`), sealed under its own id, with its index entries, in the store's own
    commands (`queue_sessions`) into the Redis at each of `urls` (key `prefix`), `batch`
    sessions a round trip, made in `workers` processes while the parent writes. Returns
    `name=value` cookies of `cookies_wanted` of them, spread evenly over all, and what was
    made: seconds, the sealed records' sizes. `secret_key`: the service's. `before`: the
    sessions as releases before record format 3 wrote them, in their 2,048 index buckets
    (the before figures; bff reads both)."""
    ref, template = await load_logged_in(sessions, template_cookie)
    if sessions.namespace:
        raise ValueError("bulk sessions are the default frontend's")
    name = template_cookie.partition("=")[0]
    expires_at = ref.expires_at
    ttl = max(1, min(IDLE, int(expires_at - time.time())))
    maker = _Maker(
        secret_key,
        dataclasses.replace(template, expires_at=expires_at),
        shape,
        before,
        prefix,
        ttl,
    )
    step = max(1, count // max(1, cookies_wanted))
    cookies: list[str] = []
    sizes: list[int] = []
    began = time.perf_counter()
    workers = workers or max(1, min(len(os.sched_getaffinity(0)), 4))
    loop = asyncio.get_running_loop()
    context = multiprocessing.get_context("spawn")  # not fork: no copy of the running loop
    sinks = [await _Sink.open(url) for url in urls]
    try:
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:

            def submit(start: int) -> asyncio.Future[tuple[bytes, int, list[tuple[str, str, int]]]]:
                return loop.run_in_executor(pool, maker.make, start, min(count, start + batch))

            starts = iter(range(0, count, batch))
            pending = [submit(start) for _, start in zip(range(workers + 1), starts, strict=False)]
            done = 0
            while pending:
                packed, commands, made = await pending.pop(0)
                following = next(starts, None)
                if following is not None:
                    pending.append(submit(following))
                await asyncio.gather(*(sink.send(packed, commands) for sink in sinks))
                for offset, (key_hash, session_id, size) in enumerate(made):
                    if (done + offset) % step == 0 and len(cookies) < cookies_wanted:
                        signed = sessions.cookie_value(SessionRef(session_id, key_hash, expires_at))
                        cookies.append(f"{name}={signed}")
                    if (done + offset) % 97 == 0:
                        sizes.append(size)
                done += len(made)
    finally:
        for sink in sinks:
            await sink.aclose()
    sizes.sort()
    return cookies, {
        "shape": shape,
        "layout": "before" if before else "after",
        "sessions": count,
        "create_s": round(time.perf_counter() - began, 1),
        "record_bytes_median": sizes[len(sizes) // 2] if sizes else None,
        "record_bytes_max": sizes[-1] if sizes else None,
    }
