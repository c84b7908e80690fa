"""The session scale's and the leak check's parts of the benchmark (bench/scale.py,
bench/sessions.py, bench/keycloak_tokens.py, bench/scale_report.py): the target checks
and lines, Keycloak-shaped tokens, and bulk sessions written as logins would write them
(against the test Redis)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bench.scale_report import scale_checks, scale_lines

MEMORY = "Redis memory per session <= 900 B, Keycloak-size tokens (1,000,000 sessions)"
MANY = "req/s cycling many of 1,000,000 sessions >= 0.95x one session"
NO_ID = "... the same, BFF_LOGOUT_ID_TOKEN_HINT=false (the ID token not stored)"
FLAT = "RSS flat after the warm-up (< 2 MiB growth), one session and many"
SCALE: dict[str, Any] = {
    "target": "bff-1w",
    "sessions": 1_000_000,
    "layout": "after",
    "memory": {
        "dev": {
            "sessions": 1_000_000,
            "create_s": 90.0,
            "record_bytes_median": 764,
            "bytes_per_session": 1100,
        },
        "keycloak": {
            "sessions": 1_000_000,
            "create_s": 200.0,
            "record_bytes_median": 898,
            "bytes_per_session": 1250,
            "token_bytes": {"access": 1457, "id": 1216, "refresh": 688},
        },
        "keycloak-no-id-token": {
            "sessions": 1_000_000,
            "create_s": 150.0,
            "record_bytes_median": 605,
            "bytes_per_session": 880,
        },
    },
    "bytes_per_session": 1250,
    "bytes_per_session_dev": 1100,
    "bytes_per_session_no_id_token": 880,
    "create_s": 200.0,
    "distinct": 10_000,
    "cached_distinct": 1000,
    "one_rps": 3000.0,
    "many_rps": 2900.0,
    "cached_rps": 2990.0,
    "many_vs_one": 0.967,
    "cached_vs_one": 0.997,
    "cpu_us_per_request": {"one": 250.0, "cached": 252.0, "many": 330.0},
    "errors": 0,
    "leak_many": {
        "requests": 1_000_000,
        "errors": 0,
        "rss_before_kib": 80_000,
        "rss_after_kib": 83_000,
        "rss_series_kib": [80_000, 81_000, 82_000, 82_500, 83_000],
        "growth_kib_per_100k": 300,
    },
}
LEAK: dict[str, Any] = {
    "target": "bff-1w",
    "requests": 1_000_000,
    "errors": 0,
    "rss_before_kib": 70_000,
    "rss_after_kib": 70_500,
    "rss_series_kib": [70_000, 70_100, 70_300, 70_400, 70_500],
    "growth_kib_per_100k": 50,
}


def test_scale_checks_and_lines() -> None:
    results = {"session_scale": SCALE, "leak": LEAK}
    checks = {label: met for label, met, _ in scale_checks(results)}
    # +3,000 KiB with many sessions
    assert checks == {MEMORY: False, NO_ID: True, MANY: True, FLAT: False}
    fewer = {"session_scale": {**SCALE, "sessions": 20_000}, "leak": LEAK}
    quick = {label: met for label, met, _ in scale_checks(fewer)}
    assert (quick[MEMORY], quick[NO_ID], quick[MANY]) == (None, None, None)
    heavier = {"session_scale": {**SCALE, "bytes_per_session_no_id_token": 901}}
    assert {label: met for label, met, _ in scale_checks(heavier)}[NO_ID] is False
    flat = {"session_scale": {**SCALE, "leak_many": LEAK}, "leak": LEAK}
    assert {label: met for label, met, _ in scale_checks(flat)}[FLAT] is True
    text = "\n".join(scale_lines(results))
    for part in (
        "session scale, keycloak tokens, tokens 1457/1216/688 B",
        "1250 B of Redis memory per session",
        "session scale, keycloak-no-id-token tokens: 1,000,000 sessions written in 150.0 s",
        "req/s cycling 10,000 sessions 2,900",
        "bff CPU µs per request 330.0, 252.0, 250.0",
        "leak check (many sessions): RSS 80,000 KiB after the warm-up -> 83,000 KiB",
        "70,000 -> 70,100 -> 70,300 -> 70,400 -> 70,500",
    ):
        assert part in text


@contextlib.asynccontextmanager
async def _logged_in(redis_url: str, secret: str) -> AsyncIterator[tuple[Any, Any, str, str]]:
    """(store, session service, login cookie, key prefix): a fresh prefix, removed after."""
    import uuid

    import redis.asyncio
    from joserfc.jwk import RSAKey

    from bff.store.redis import RedisStore
    from tests.support.sessions import service
    from tests.unit.session.test_records import dev_tokens, login_session

    prefix = f"bfftest-{uuid.uuid4().hex}"
    store = RedisStore.from_url(redis_url, prefix=prefix)
    raw = redis.asyncio.Redis.from_url(redis_url)
    sessions = service(store, secret)
    try:
        template = login_session(dev_tokens(RSAKey.generate_key(2048, parameters={"kid": "k"})))
        ref, _ = await sessions.create(
            tokens=template.tokens, claims=template.claims, user_agent=template.user_agent
        )
        yield store, sessions, f"bff-session={sessions.cookie_value(ref)}", prefix
    finally:
        keys = [k async for k in raw.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await raw.delete(*keys)
        await raw.aclose()
        await store.aclose()


@pytest.mark.redis
@pytest.mark.anyio
async def test_bulk_sessions_are_what_logins_would_write(redis_url: str) -> None:
    """bench/sessions.py::bulk_create: each bulk session is a login of its own user (own
    sub, sid, tokens; claims derived from its own ID token), written by the store itself,
    and as compact as a real login's record."""
    from bench.sessions import bulk_create

    secret = "bench-secret-" + "x" * 32
    async with _logged_in(redis_url, secret) as (store, sessions, cookie, prefix):
        cookies, made = await bulk_create(
            sessions,
            cookie,
            30,
            urls=[redis_url],
            prefix=prefix,
            cookies_wanted=3,
            secret_key=secret,
            batch=7,
            workers=2,
        )
        assert len(cookies) == 3
        assert made["sessions"] == 30
        seen_sids = set()
        template = await sessions.load(sessions.ref_from_cookie(cookie.partition("=")[2]))
        for i, bulk_cookie in enumerate(cookies):
            bulk_ref = sessions.ref_from_cookie(bulk_cookie.partition("=")[2])
            assert bulk_ref is not None
            session = await sessions.load(bulk_ref)
            assert session is not None
            user = i * 10  # the wanted cookies are spread evenly over all sessions
            assert session.sub == session.claims["sub"] == f"bench-user-{user}"
            assert session.idp_sid == session.claims["sid"]
            assert session.tokens.access_token != template.tokens.access_token
            seen_sids.add(session.idp_sid)
            assert await store.sessions_by_sub(f"bench-user-{user}") == [bulk_ref.hash]
            assert await store.sessions_by_idp_sid(str(session.idp_sid)) == [bulk_ref.hash]
        assert made["record_bytes_max"] <= 762  # claims derived, at_hash derived: a login's
        assert len(seen_sids) == 3
        assert await store.sessions_by_sub("bench-user-29") != []
        assert len([h async for h in store.all_sessions()]) == 31


def test_keycloak_tokens_have_keycloaks_shape_and_size() -> None:
    """bench/keycloak_tokens.py: one set signed for real (RS256 2048-bit, HS512), and the
    per-user copies the bulk path makes: Keycloak's claims, sizes and shared values."""
    import base64

    from bench.keycloak_tokens import KeycloakTokens, keycloak_template

    def claims(token: str) -> dict[str, object]:
        segment = token.split(".")[1]
        return dict(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))))

    signed = keycloak_template(1_795_535_474)
    copies = KeycloakTokens.realm().for_user(42, now=1_795_535_474)
    for access, id_token, refresh in (signed, copies):
        assert 1300 <= len(access) <= 1600  # ~930 B without profile, email and role claims
        assert 1100 <= len(id_token) <= 1350
        assert 600 <= len(refresh) <= 800
        a, i, r = claims(access), claims(id_token), claims(refresh)
        assert (a["typ"], i["typ"], r["typ"]) == ("Bearer", "ID", "Refresh")
        assert a["sub"] == i["sub"] == r["sub"] and a["sid"] == i["sid"] == r["session_state"]
        assert a["aud"] == "account" and "realm_access" in a and "nonce" in i
        assert len(str(a["jti"])) == 36 and a["jti"] != i["jti"] != r["jti"]
    assert list(claims(signed[0])) == list(claims(copies[0]))


@pytest.mark.redis
@pytest.mark.anyio
@pytest.mark.parametrize(("shape", "largest"), [("keycloak", 930), ("keycloak-no-id-token", 640)])
async def test_bulk_keycloak_sessions_load_through_the_service(
    redis_url: str, shape: str, largest: int
) -> None:
    """Both Keycloak shapes; without the ID token (what BFF_LOGOUT_ID_TOKEN_HINT=false
    stores) the record fits Redis' 640-byte class, the claims still those it carried."""
    from bench.sessions import bulk_create

    secret = "bench-secret-" + "y" * 32
    async with _logged_in(redis_url, secret) as (store, sessions, cookie, prefix):
        cookies, made = await bulk_create(
            sessions,
            cookie,
            12,
            urls=[redis_url],
            prefix=prefix,
            cookies_wanted=4,
            secret_key=secret,
            shape=shape,
            batch=5,
            workers=1,
        )
        assert made["record_bytes_max"] < largest
        for bulk_cookie in cookies:
            bulk_ref = sessions.ref_from_cookie(bulk_cookie.partition("=")[2])
            assert bulk_ref is not None
            session = await sessions.load(bulk_ref)
            assert session is not None
            assert (session.tokens.id_token is not None) is (shape == "keycloak")
            assert session.claims["typ"] == "ID" and len(session.sub) == 36
            assert await store.sessions_by_sub(session.sub) == [bulk_ref.hash]
