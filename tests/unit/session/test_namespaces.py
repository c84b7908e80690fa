"""Sessions of several frontends in one store, under one secret key: a frontend's
namespace is in its cookie signatures, store keys, sealed records and index entries, so
no frontend accepts, finds, opens or ends another's session. The default frontend's
namespace is empty: its cookies and store keys are the ones sessions always had."""

from __future__ import annotations

import hashlib

import pytest
from itsdangerous import Signer

from bff.session.cookies import CookieSigner
from bff.session.crypto import KeyRing
from bff.session.ids import new_session_id
from bff.session.records import session_hash
from bff.session.service import SessionService
from bff.store.memory import MemoryStore
from bff.tokens.records import TokenSet
from tests.fake_idp import SECRET_KEY, Clock

pytestmark = pytest.mark.anyio

KEYS = KeyRing([SECRET_KEY])


def service(store: MemoryStore, clock: Clock, namespace: str) -> SessionService:
    return SessionService(
        store=store,
        keys=KEYS,
        signer=CookieSigner(KEYS.signing_keys, namespace=namespace),
        idle_timeout=1800,
        max_lifetime=86400,
        clock=clock,
        namespace=namespace,
    )


def test_a_cookie_signed_for_one_frontend_does_not_verify_at_another() -> None:
    signers = {ns: CookieSigner(KEYS.signing_keys, namespace=ns) for ns in ("", "a", "b")}
    sid = new_session_id()
    for ns, signer in signers.items():
        value = signer.sign_session(sid, 2_000_000_000)
        binding = signer.sign_binding("login-binding")
        for other_ns, other in signers.items():
            accepted = other.unsign_session(value) is not None
            assert accepted is (ns == other_ns)
            assert (other.unsign_binding(binding) is not None) is (ns == other_ns)


def test_the_default_namespace_keeps_the_keys_and_salts_sessions_always_had() -> None:
    sid = new_session_id()
    assert session_hash(sid) == hashlib.sha256(sid.encode()).hexdigest()[:32]
    assert session_hash(sid, "a") not in (session_hash(sid), session_hash(sid, "b"))
    legacy = Signer(KEYS.signing_keys, salt="bff.session", digest_method=hashlib.sha256)
    value = legacy.sign(f"{sid}.2000000000").decode()
    assert CookieSigner(KEYS.signing_keys).unsign_session(value) == (sid, 2_000_000_000)


async def test_one_store_two_frontends_same_user_and_provider_session() -> None:
    store, clock = MemoryStore(), Clock()
    a, b, default = (
        service(store, clock, "a"),
        service(store, clock, "b"),
        service(store, clock, ""),
    )
    tokens = TokenSet(access_token="at", expires_at=int(clock()) + 600, refresh_token="rt")
    claims = {"sub": "alice", "sid": "idp-sid-1"}
    ref_a, _ = await a.create(tokens=tokens, claims=claims, user_agent="ua")
    ref_b, _ = await b.create(tokens=tokens, claims=claims, user_agent="ua")
    ref_d, _ = await default.create(tokens=tokens, claims=claims, user_agent="ua")
    cookie_a = a.cookie_value(ref_a)
    assert a.ref_from_cookie(cookie_a) == ref_a
    assert b.ref_from_cookie(cookie_a) is None and default.ref_from_cookie(cookie_a) is None
    # Even a forged ref (the other frontend's store key) opens nothing: the record is
    # sealed under its frontend's namespace.
    assert await b.load(ref_a) is None and await b.load_by_hash(ref_a.hash) is None
    assert await a.load(ref_a) is not None
    # Each index holds its own frontend's sessions only.
    assert await a.find(idp_sid="idp-sid-1") == [ref_a.hash]
    assert await b.find(sub="alice") == [ref_b.hash]
    assert await default.find(sub="alice") == [ref_d.hash]
    # Ending A's session leaves B's and the default's.
    session_a = await a.load(ref_a)
    assert await a.end(ref_a.hash, session_a, "backchannel_logout")
    assert await a.find(sub="alice") == []
    assert await b.load(ref_b) is not None and await default.load(ref_d) is not None
    assert await b.find(idp_sid="idp-sid-1") == [ref_b.hash]
