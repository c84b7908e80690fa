"""Record format 3 (`bff.session.codec_v3`): lossless, smaller than format 2 for Keycloak's
tokens, strict (anything malformed is a ValueError and nothing else), its dictionary
pinned; and records of format 2, which releases before it wrote, still read."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import random
import zlib

import pytest
from joserfc.jwk import RSAKey

from bench.keycloak_tokens import KeycloakTokens, keycloak_template
from bff.session import codec_v3
from bff.session.codec_primitives import varint
from bff.session.codec_v3_writer import TIME_BASE, Writer3
from bff.session.codec_v3_zdict import ZDICT3
from bff.session.crypto import KeyRing
from bff.session.records import Session, decode_session, encode_session, shown_claims
from bff.tokens.records import TokenSet
from tests.unit.session.test_records import (
    NOW,
    b64,
    dev_tokens,
    jws,
    login_session,
    round_trips,
    with_tokens,
)

KEYS = KeyRing(["k" * 32])


@pytest.fixture(scope="module")
def rsa() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "9aeed9c97ef3874a"})


def keycloak_session(user: int = 7, *, client_ip: str = "203.0.113.9") -> Session:
    """What a login at Keycloak stores (three JWTs of Keycloak's size and claims)."""
    access, id_token, refresh = KeycloakTokens.realm().for_user(user, now=NOW)
    claims = shown_claims(json.loads(b64_decode(id_token.split(".")[1])))
    return Session(
        sub=claims["sub"],
        idp_sid=claims["sid"],
        claims=claims,
        tokens=TokenSet(
            access_token=access,
            expires_at=NOW + 300,
            refresh_token=refresh,
            id_token=id_token,
            scope="openid profile email",
            refresh_expires_at=NOW + 1800,
        ),
        created_at=NOW,
        expires_at=NOW + 1800,
        user_agent="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
        client_ip=client_ip,
    )


def b64_decode(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def test_format_3_dictionary_is_pinned() -> None:
    """The preset dictionary is part of format 3: a record written with another would not
    read back. Changing it (or what builds it: the templates, `Writer3`) needs a new
    record version."""
    assert hashlib.sha256(ZDICT3).hexdigest()[:16] == "0c0fd2bd6d8c02b1"


# --- lossless and small -------------------------------------------------------------------
def test_keycloak_sessions_round_trip_and_are_smaller_than_format_2() -> None:
    """Keycloak's access, ID and HS512 refresh token come back byte for byte, in a record
    ~180 bytes (one Redis size class or more) smaller than format 2's."""
    for user in range(20):
        s = keycloak_session(user)
        record = round_trips(s)
        assert record[:1] == b"\x03"
        old = encode_session(s, 2)
        assert decode_session(old) == s
        assert len(record) < len(old) - 150, (len(record), len(old))
        assert len(KEYS.seal(record, aad=b"h")) <= 930


def test_signed_keycloak_tokens_round_trip() -> None:
    access, id_token, refresh = keycloak_template(NOW)
    round_trips(with_tokens(access, id_token, refresh))


def test_development_provider_sessions_stay_in_the_768_byte_class(rsa: RSAKey) -> None:
    for user in ("bench-user", "bench-user-99999"):
        s = login_session(dev_tokens(rsa, user))
        assert len(KEYS.seal(round_trips(s), aad=b"h")) <= 762


def test_uuids_and_random_values_are_raw_and_repeats_referenced() -> None:
    uuid = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
    payload = {"jti": uuid, "sub": uuid, "sid": uuid, "n": "QPXD80Vb7yEW05qOhXactw"}
    lower = round_trips(with_tokens(jws({"alg": "RS256"}, payload)))
    upper = {**payload, "jti": uuid.upper(), "sub": uuid.upper(), "sid": uuid.upper()}
    assert len(round_trips(with_tokens(jws({"alg": "RS256"}, upper)))) > len(lower)
    many = {f"u{i}": f"{i:08x}-4f89-41d3-9a0c-0305e82c3301" for i in range(100)}
    round_trips(with_tokens(jws({"alg": "RS256"}, many), jws({"alg": "RS256"}, many)))


@pytest.mark.parametrize(
    "segment",
    [
        b'{"a":"\x01\x02\x03 ","b":"\x10\x11"}',  # control bytes (not JSON): kept verbatim
        b'{"a":1,"b":-0,"c":0,"d":-12,"e":1.5,"f":99999999999999999999,"g":[1,-1,0]}',
        b'{"a" : "spaced", "b":["x","y"],"c":{"d":"e"},"":"","\\"":"\\\\"}',
        b'{"a":"unterminated',
        b"[1,2,3]",
        b'"just a string"',
    ],
)
def test_odd_segments_round_trip(segment: bytes) -> None:
    access = jws({"alg": "RS256"}, {"sub": "x", "exp": NOW})
    round_trips(with_tokens(access, jws(segment, segment), jws({"alg": "HS512"}, segment)))


def test_at_hash_is_derived_from_the_access_token(rsa: RSAKey) -> None:
    s = login_session(dev_tokens(rsa))
    base = len(round_trips(s))
    other = dev_tokens(rsa, seed="refreshed")["access"]
    refreshed = dataclasses.replace(s, tokens=dataclasses.replace(s.tokens, access_token=other))
    assert len(round_trips(refreshed)) >= base + 16


# --- format 2 still reads -----------------------------------------------------------------
def test_format_2_records_of_every_shape_still_read(rsa: RSAKey) -> None:
    """A deploy rolls over with live sessions: what the previous release stored (format 2)
    reads as the same session, and the next save writes it as format 3."""
    for s in (
        keycloak_session(),
        login_session(dev_tokens(rsa)),
        with_tokens("opaque", None, "refresh"),
        dataclasses.replace(keycloak_session(), dpop_key='{"kty":"EC"}', client_ip=""),
    ):
        old = encode_session(s, 2)
        assert old[:1] == b"\x02"
        assert decode_session(old) == s
        assert encode_session(decode_session(old))[:1] == b"\x03"


# --- strict -------------------------------------------------------------------------------
# The rest of a record: a marked segment of its own (seven values: no ID token to derive
# sub, sid and claims from, so those three too). Its skeleton goes last in the shape, its
# values last among the values.
REST_SKELETON = b'[\x10,\x10,null,null,"\x10",null,"\x10","\x10",null,{}]\x11'
REST_VALUES = b"\x07@\x00\x07@\x00Bearer\x00\x00u"


def stream3(shape: bytes, values: bytes = b"", texts: bytes = b"", raw: bytes = b"") -> bytes:
    body = varint(len(shape)) + shape + varint(len(values)) + values + texts
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, ZDICT3)
    return b"\x03" + deflate.compress(body) + deflate.flush() + raw


TEXT_A = varint(1) + b"a"  # a text token "a"
GOOD = stream3(bytes([1, 0, 0, 1]) + REST_SKELETON, REST_VALUES, TEXT_A)
JWS_SHAPE = bytes([2, 1, 1, 0, 0, 0, 1]) + b'{"alg":"\x10"}\x11{"sub":"\x10"}\x11' + REST_SKELETON
JWS_VALUES = b"RS256\x00x\x00" + REST_VALUES


def test_crafted_records_read() -> None:
    s = decode_session(GOOD)
    assert (s.sub, s.tokens.access_token, s.tokens.id_token) == ("u", "a", None)
    assert (s.created_at, s.expires_at) == (TIME_BASE, TIME_BASE)
    jwt = decode_session(stream3(JWS_SHAPE, JWS_VALUES))
    assert jwt.tokens.access_token == jws({"alg": "RS256"}, {"sub": "x"}, b"")


@pytest.mark.parametrize(
    "record",
    [
        b"\x03",
        b"\x03" + b"x" * 40,
        GOOD[:-1],
        GOOD + b"raw",  # trailing raw bytes
        stream3(bytes([9, 0, 0, 1]) + REST_SKELETON, REST_VALUES, TEXT_A),  # token kind
        stream3(bytes([2, 7]), REST_VALUES),  # segment kind
        stream3(bytes([1, 0, 0, 1]) + REST_SKELETON, REST_VALUES, TEXT_A + b"x"),  # trailing
        stream3(bytes([1, 0, 0, 1]) + REST_SKELETON, REST_VALUES + b"\x00x", TEXT_A),  # more
        stream3(bytes([1, 0, 0, 1]) + REST_SKELETON, REST_VALUES, varint(9) + b"a"),  # text
        stream3(bytes([1, 0, 0]), REST_VALUES, TEXT_A),  # no rest
        stream3(bytes([1, 0, 0, 0]), texts=TEXT_A + varint(3) + b"{1}"),  # the rest not a list
        stream3(bytes([1, 0, 0, 0]), texts=TEXT_A + varint(3) + b"[[["),  # nor JSON
        stream3(bytes([1, 0, 0, 1]) + REST_SKELETON[:-1], REST_VALUES, TEXT_A),  # no END
        stream3(JWS_SHAPE, JWS_VALUES[6:]),  # a value short
        stream3(JWS_SHAPE, b"x\x00" + JWS_VALUES),  # one too many
        stream3(JWS_SHAPE[:7] + REST_SKELETON, REST_VALUES),  # no segments at all
        stream3(JWS_SHAPE + b"{}\x11", JWS_VALUES),  # one more
        stream3(JWS_SHAPE, b"RS256\x00\x01\x00" + REST_VALUES),  # at_hash in the 1st token
        stream3(JWS_SHAPE, b"RS256\x00\x02\x00" + REST_VALUES),  # UUID without raw
        stream3(JWS_SHAPE, b"RS256\x00\x03" + REST_VALUES),  # marker without its byte
        stream3(JWS_SHAPE, b"RS256\x00\x03 \x00" + REST_VALUES),  # unknown value
        stream3(JWS_SHAPE, b"RS256\x00\x05\x1f\x00" + REST_VALUES),  # length < 0
        stream3(JWS_SHAPE, b"RS256\x00\x05(\x00" + REST_VALUES, raw=b"short"),  # raw
        stream3(JWS_SHAPE, b"RS256\x00\x07\x80\x80\x00" + REST_VALUES),  # a number's end
        stream3(JWS_SHAPE, b"RS256\x00\x07" + b"\x80" * 20 + b"@\x00" + REST_VALUES),
        stream3(bytes([3, 40, 0, 0, 1]) + REST_SKELETON, REST_VALUES, raw=b"short"),
        stream3(bytes([1, 0, 0, 1]) + b"\x10" * 300_000),  # inflates past the cap
    ],
)
def test_malformed_records_are_value_errors(record: bytes) -> None:
    with pytest.raises(ValueError):
        decode_session(record)


def test_truncated_or_flipped_keycloak_records_never_raise_anything_else() -> None:
    record = encode_session(keycloak_session())
    for end in range(len(record)):
        with pytest.raises(ValueError):
            decode_session(record[:end])
    rng = random.Random(11)
    for _ in range(3000):
        broken = bytearray(record)
        broken[rng.randrange(len(broken))] ^= 1 << rng.randrange(8)
        with contextlib.suppress(ValueError):
            decode_session(bytes(broken))


def test_at_hash_is_computed_once_per_record(monkeypatch: pytest.MonkeyPatch) -> None:
    access = jws({"alg": "RS256"}, {"sub": "alice", "pad": "p" * 4000})
    at_hash = b64(hashlib.sha256(access.encode()).digest()[:16])
    id_token = jws({"alg": "RS256"}, {"sub": "alice", **{f"c{i}": at_hash for i in range(500)}})
    record = encode_session(with_tokens(access, id_token))
    calls: list[str] = []
    real = codec_v3.at_hash256
    monkeypatch.setattr(codec_v3, "at_hash256", lambda t: calls.append(t) or real(t))
    assert decode_session(record).tokens.id_token == id_token
    assert len(calls) == 1


def test_a_writer_body_is_what_the_dictionary_is_made_of() -> None:
    writer = Writer3()
    writer.token(jws({"alg": "RS256"}, {"sub": "x"}))
    writer.token(None)
    writer.token(None)
    writer.values([NOW])
    assert writer.body()[1:2] == bytes([2])  # a JWS, first
