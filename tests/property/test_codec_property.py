"""Properties of the record codec (`bff.session` record format 2 over `bff.compact`) and
its sealing (THREATS.md invariants 6 and 11): every session round-trips exactly, whatever
its tokens are (compact JWS with any JSON members, or opaque strings) and whatever its
claims; decoding any bytes raises ValueError and nothing else; a sealed record (AES-GCM,
bound to its store key) refuses every single-byte corruption and every other store key,
so a tampered or moved record is never a session."""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bff.errors import BlobError
from bff.session.crypto import KeyRing
from bff.session.login_record import LoginState, decode_login_state, encode_login_state
from bff.session.records import Session, decode_session, encode_session, shown_claims
from bff.tokens.records import TokenSet
from tests.property.conftest import heavy

KEYS = KeyRing(["codec-property-secret-key-0123456789abcdef"])
AAD = b"0123456789abcdef0123456789abcdef"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


texts = st.text(max_size=24)
ints = st.integers(-(2**53), 2**53)
json_values = st.recursive(
    st.none() | st.booleans() | ints | texts | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
claim_names = (
    st.sampled_from(
        ["iss", "sub", "aud", "exp", "iat", "sid", "nonce", "at_hash", "jti", "email", "scope", "x"]
    )
    | texts
)
claims = st.dictionaries(claim_names, json_values, max_size=8)
random_b64 = st.binary(min_size=0, max_size=48).map(b64)


@st.composite
def jws(draw: st.DrawFn, payload: Any = None) -> str:
    header = draw(st.sampled_from([{"alg": "RS256", "kid": "k1"}, {"alg": "ES256", "typ": "JWT"}]))
    body = payload if payload is not None else draw(claims)
    compact_json = draw(st.booleans())
    separators = (",", ":") if compact_json else (", ", ": ")
    parts = [json.dumps(p, separators=separators).encode() for p in (header, body)]
    signature = draw(st.binary(min_size=0, max_size=300))
    return ".".join([b64(parts[0]), b64(parts[1]), b64(signature)])


tokens = jws() | random_b64 | texts.filter(bool)
maybe_int = st.none() | st.integers(0, 2**40)


# A route's own token keeps its access token, expiry and scope (the record drops the rest).
route_tokens = st.builds(
    lambda access, expires_at, scope: TokenSet(
        access_token=access, expires_at=expires_at, scope=scope
    ),
    tokens,
    maybe_int,
    st.none() | texts,
)


@st.composite
def sessions(draw: st.DrawFn) -> Session:
    user_claims = draw(claims)
    sub = draw(texts)
    user_claims["sub"] = sub
    id_token = draw(st.none() | jws(user_claims) | tokens)
    kept = shown_claims(user_claims)
    sid = kept.get("sid")
    return Session(
        sub=sub,
        idp_sid=sid if isinstance(sid, str) and sid else draw(st.none() | texts),
        claims=kept if draw(st.booleans()) else draw(claims),
        tokens=TokenSet(
            access_token=draw(tokens),
            expires_at=draw(maybe_int),
            refresh_token=draw(st.none() | tokens),
            id_token=id_token,
            token_type=draw(st.sampled_from(["Bearer", "DPoP", "bearer"])),
            scope=draw(st.none() | texts),
            refresh_expires_at=draw(maybe_int),
        ),
        created_at=draw(st.integers(0, 2**40)),
        expires_at=draw(st.integers(0, 2**40)),
        user_agent=draw(texts),
        client_ip=draw(texts),
        route_tokens=draw(st.dictionaries(texts, route_tokens, max_size=3)),
    )


def same(a: Session, b: Session) -> bool:
    # JSON text equality: also member order and number types (1 vs 1.0) must survive
    return a == b and json.dumps(a.claims) == json.dumps(b.claims)


@heavy()
@given(sessions())
def test_every_session_round_trips_exactly(session: Session) -> None:
    assert same(decode_session(encode_session(session)), session)


@heavy()
@given(sessions(), st.data())
def test_a_sealed_record_refuses_every_single_byte_corruption(
    session: Session, data: st.DataObject
) -> None:
    blob = KEYS.seal(encode_session(session), aad=AAD)
    assert same(decode_session(KEYS.open(blob, aad=AAD)), session)
    i = data.draw(st.integers(0, len(blob) - 1))
    flip = data.draw(st.integers(1, 255))
    corrupted = blob[:i] + bytes([blob[i] ^ flip]) + blob[i + 1 :]
    with pytest.raises(BlobError):
        KEYS.open(corrupted, aad=AAD)
    with pytest.raises(BlobError):
        KEYS.open(blob, aad=AAD[:-1] + b"0")  # another session's store key
    with pytest.raises(BlobError):
        KEYS.open(blob[:i], aad=AAD)  # truncated


@heavy()
@given(sessions(), st.data())
def test_any_corruption_of_a_plain_record_is_a_value_error_or_a_well_formed_session(
    session: Session, data: st.DataObject
) -> None:
    record = encode_session(session)
    i = data.draw(st.integers(0, len(record) - 1))
    flip = data.draw(st.integers(1, 255))
    corrupted = record[:i] + bytes([record[i] ^ flip]) + record[i + 1 :]
    for candidate in (corrupted, record[:i], record + data.draw(st.binary(max_size=4))):
        try:
            decoded = decode_session(candidate)
        except ValueError:
            continue
        assert isinstance(decoded, Session) and isinstance(decoded.tokens.access_token, str)


@given(
    st.binary(max_size=200)
    | st.binary(max_size=200).map(lambda b: b"\x02" + b)
    | st.binary(max_size=200).map(lambda b: b"z" + zlib.compress(b))
    | json_values.map(lambda v: json.dumps(v).encode())
)
def test_decoding_arbitrary_bytes_is_a_value_error_or_a_session(data: bytes) -> None:
    try:
        decoded = decode_session(data)
    except ValueError:
        return
    assert isinstance(decoded, Session)


@given(texts, texts, texts, texts, texts, st.integers(0, 2**40), st.none() | texts)
def test_login_states_round_trip(
    verifier: str, nonce: str, url: str, binding: str, issuer: str, created: int, prev: str | None
) -> None:
    state = LoginState(verifier, nonce, url, binding, issuer, created, prev)
    assert decode_login_state(encode_login_state(state)) == state
