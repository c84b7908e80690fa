"""Session record format 2 (`bff.session.records` over `bff.session.codec`): lossless and
small; the codec's strictness is tests/unit/session/test_codec.py.

Every token must come back byte for byte, whatever it is; a record of the development
provider's tokens must seal into Redis' 768-byte size class; older records must still
read; anything malformed is a ValueError and nothing else."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import random
import zlib
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from bff.session.codec_tables import KEYS
from bff.session.crypto import KeyRing
from bff.session.ids import new_session_id
from bff.session.login_record import LoginState, decode_login_state, encode_login_state
from bff.session.records import (
    Session,
    decode_session,
    encode_session,
    session_hash,
    shown_claims,
)
from bff.tokens.records import TokenSet

NOW = 1_795_535_474
ISSUER = "http://127.0.0.1:41815"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jws(header: Any, payload: Any, signature: bytes = b"\x01" * 256) -> str:
    """A compact JWS from exact segment bytes (or JSON values, serialised compactly)."""

    def seg(part: Any) -> bytes:
        return part if isinstance(part, bytes) else json.dumps(part, separators=(",", ":")).encode()

    return f"{b64(seg(header))}.{b64(seg(payload))}.{b64(signature)}"


@pytest.fixture(scope="module")
def rsa() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "9aeed9c97ef3874a"})


def dev_tokens(key: RSAKey, user: str = "bench-user", seed: str = "") -> dict[str, str]:
    """Tokens shaped as `deploy/demo/provider_core.py` mints them (RS256, RFC 9068)."""
    rng = random.Random(user + seed)

    def rand(n: int) -> str:
        return b64(rng.randbytes(n))

    sid, kid = rand(16), str(key.kid)
    access = jwt.encode(
        {"typ": "at+jwt", "alg": "RS256", "kid": kid},
        {
            "iss": ISSUER, "sub": user, "aud": "bff-demo", "exp": NOW + 86400, "iat": NOW,
            "jti": rand(16), "scope": "openid profile email offline_access",
            "client_id": "bff-demo", "sid": sid, "auth_time": NOW,
        },
        key,
    )  # fmt: skip
    at_hash = b64(hashlib.sha256(access.encode()).digest()[:16])
    id_token = jwt.encode(
        {"typ": "JWT", "alg": "RS256", "kid": kid},
        {
            "iss": ISSUER, "aud": "bff-demo", "azp": "bff-demo", "exp": NOW + 300, "iat": NOW,
            "auth_time": NOW, "nonce": rand(32), "at_hash": at_hash, "sub": user, "sid": sid,
            "name": user.title(), "preferred_username": user, "email": f"{user}@example.test",
            "email_verified": True,
        },
        key,
    )  # fmt: skip
    return {"access": access, "id": id_token, "refresh": rand(32)}


def login_session(tokens: dict[str, str], user_agent: str = "python-httpx/0.28.1") -> Session:
    """What a login stores: claims = the ID token's claims without the hidden ones."""
    payload = tokens["id"].split(".")[1]
    claims = shown_claims(json.loads(base64.urlsafe_b64decode(payload + "==")))
    return Session(
        sub=claims["sub"],
        idp_sid=claims.get("sid"),
        claims=claims,
        tokens=TokenSet(
            access_token=tokens["access"],
            expires_at=NOW + 86400,
            refresh_token=tokens["refresh"],
            id_token=tokens["id"],
            scope="openid profile email offline_access",
        ),
        created_at=NOW,
        expires_at=NOW + 86400,
        user_agent=user_agent,
    )


def v1_record(s: Session) -> bytes:
    t = s.tokens
    doc = {
        "v": 1, "sub": s.sub, "sid": s.idp_sid, "claims": s.claims, "at": t.access_token,
        "exp": t.expires_at, "rt": t.refresh_token, "it": t.id_token, "tt": t.token_type,
        "sc": t.scope, "rexp": t.refresh_expires_at, "ca": s.created_at, "ea": s.expires_at,
        "ua": s.user_agent,
    }  # fmt: skip
    return json.dumps(doc, separators=(",", ":")).encode()


def with_tokens(access: str, id_token: str | None = None, refresh: str | None = None) -> Session:
    return Session(
        sub="alice",
        idp_sid=None,
        claims={"sub": "alice"},
        tokens=TokenSet(
            access_token=access, expires_at=None, refresh_token=refresh, id_token=id_token
        ),
        created_at=NOW,
        expires_at=NOW + 60,
    )


def round_trips(s: Session) -> bytes:
    record = encode_session(s)
    back = decode_session(record)
    assert back == s
    # byte for byte, and the claims in their order
    assert (back.tokens.access_token, back.tokens.id_token, back.tokens.refresh_token) == (
        s.tokens.access_token,
        s.tokens.id_token,
        s.tokens.refresh_token,
    )
    assert list(back.claims.items()) == list(s.claims.items())
    return record


# --- lossless ---------------------------------------------------------------------------
def test_real_jwts_round_trip(rsa: RSAKey) -> None:
    tokens = dev_tokens(rsa)
    round_trips(login_session(tokens))
    ec = ECKey.generate_key("P-256")
    es256 = jwt.encode({"alg": "ES256"}, {"sub": "ü", "n": [1, 2.5, None]}, ec)
    hs256 = jwt.encode({"alg": "HS256", "kid": "k"}, {"sub": "x"}, OctKey.generate_key(256))
    round_trips(with_tokens(es256, hs256, tokens["access"]))


ODD_TOKENS = [
    "opaque-token",
    "",
    ".",
    "..",
    "a..c",
    ".b.c",
    "a.b.",  # empty signature: still a JWS in form
    "a.b",
    "a.b.c.d",
    "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",  # alg none, empty signature
    "eyJhbGciOiJub25lIn0=.eyJzdWIiOiJ4In0.c2ln",  # padding: not canonical
    "eyJhbGciOiJub25lIn1.eyJzdWIiOiJ4In0.c2ln",  # non-zero spare bits
    "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2lnA",  # impossible length (4n+1)
    "eyJhbGci+OiJub25lIn0.eyJzdWIiOiJ4In0.c2ln",  # standard, not url-safe, alphabet
    "e30.e30.e30",  # {} {} {}
    "ünïcödé.tökén.x",
    "\ud800lone.surrogate.x",
    "dots.in.a.jwe.token",
    "QPXD80Vb7yEW05qOhXactw",  # random-looking base64url
    "9aeed9c97ef3874a9aeed9c97ef3874a",  # hex
    "9AEED9C97EF3874A9AEED9C97EF3874A",  # upper-case hex: not what a hex decode gives back
    "QPXD80Vb7yEW05qOhXactx",  # base64url whose spare bits are not zero
    "x" * 20_000,
]


@pytest.mark.parametrize("token", ODD_TOKENS)
def test_any_token_round_trips(token: str) -> None:
    round_trips(with_tokens(token, token, token))
    round_trips(with_tokens("a", None, token))


SEGMENTS: list[Any] = [
    {"alg": "RS256", "kid": "k"},
    b'{"alg": "RS256"}',  # spaces
    b'{"alg":"RS256","alg":"HS256"}',  # duplicate names
    b'{"sub":"caf\\u00e9"}',  # \u escapes, as Python's json writes them
    '{"sub":"café","n":"名前"}'.encode(),  # UTF-8, as JavaScript writes it
    b'{"sub":"caf\\u00E9"}',  # upper-case escape: kept as bytes
    b'{"n":1.0,"m":1e5,"b":-0,"big":123456789012345678901234567890}',
    b'{"exp":1795535474.5,"iat":-1,"nbf":0}',
    b'{"a":{"b":[1,{"c":null}]},"t":true,"f":false,"z":null}',
    b'{"x":"\\ud800"}',  # lone surrogate escape
    b"[1,2,3]",  # JSON, not an object
    b"not json at all",
    b"\xff\xfe binary",
    b"{}",
    {
        "jti": "QPXD80Vb7yEW05qOhXactw",
        "sid": "QPXD80Vb7yEW05qOhXactw",
        "x": "QPXD80Vb7yEW05qOhXactw",
    },
    {"kid": "9aeed9c97ef3874a", "h": "9aeed9c97ef3874a", "H": "9AEED9C97EF3874A"},
    {"custom_claim": "value", "another-one": ["a", "b"], "": "empty name"},
    {"at_hash": "not-the-hash-of-anything", "c_hash": "QPXD80Vb7yEW05qOhXactw"},
]


@pytest.mark.parametrize("segment", SEGMENTS)
def test_jws_segments_round_trip_byte_for_byte(segment: Any) -> None:
    first = jws({"alg": "RS256"}, segment)
    second = jws(segment, {"sub": "x"}, b"")
    round_trips(with_tokens(first, second, jws(segment, segment, b"\x00" * 64)))


def test_at_hash_of_the_access_token_is_derived_not_stored(rsa: RSAKey) -> None:
    tokens = dev_tokens(rsa)
    s = login_session(tokens)
    base = len(round_trips(s))
    # The same ID token next to another access token (as after a refresh): at_hash is
    # stored again, and still comes back exactly.
    other = dev_tokens(rsa, seed="refreshed")["access"]
    refreshed = dataclasses.replace(s, tokens=dataclasses.replace(s.tokens, access_token=other))
    assert len(round_trips(refreshed)) >= base + 16


def test_random_tokens_round_trip() -> None:
    """Property-style: many generated tokens and claim sets, each must come back exactly."""
    rng = random.Random(20_251_124)
    alphabet = 'abcXYZ019-_.~ üé名\u2028"\\/\x00\x7f'

    def text(n: int) -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(n)))

    def value(depth: int = 0) -> Any:
        kind = rng.randrange(9 if depth < 2 else 7)
        if kind == 0:
            return None
        if kind == 1:
            return rng.random() < 0.5
        if kind == 2:  # times near each other, now and then a huge integer
            return (
                rng.randrange(-(2**70), 2**70) if rng.random() < 0.2 else NOW + rng.randrange(999)
            )
        if kind == 3:
            return text(12)
        if kind == 4:
            return b64(rng.randbytes(rng.choice((8, 16, 17, 32))))
        if kind == 5:
            return rng.randbytes(rng.choice((8, 16))).hex()
        if kind == 6:
            return rng.random() * 1e6
        if kind == 7:
            return [value(depth + 1) for _ in range(rng.randrange(3))]
        return {text(6): value(depth + 1) for _ in range(rng.randrange(3))}

    for _ in range(300):
        names = [*KEYS[:30], "custom", "x-y", "名"]
        claims = {rng.choice(names): value() for _ in range(rng.randrange(12))}
        header = {"alg": rng.choice(["RS256", "ES256", "none"]), "kid": text(10)}
        payload: Any = claims
        if rng.random() < 0.3:  # JavaScript-style UTF-8, or raw bytes
            payload = json.dumps(claims, ensure_ascii=False, separators=(",", ":")).encode(
                "utf-8", "surrogatepass"
            )
        elif rng.random() < 0.1:
            payload = rng.randbytes(rng.randrange(1, 40))
        token = jws(header, payload, rng.randbytes(rng.choice((0, 64, 256))))
        if rng.random() < 0.2:
            token = token[: rng.randrange(len(token))]  # whatever is left of it
        sub = claims.get("sub")
        s = Session(
            sub=sub if isinstance(sub, str) else "u",
            idp_sid=rng.choice([None, "sid"]),
            claims=claims,
            tokens=TokenSet(
                access_token=token,
                expires_at=rng.choice([None, NOW + 60]),
                refresh_token=rng.choice([None, text(50), b64(rng.randbytes(32))]),
                id_token=rng.choice([None, token, jws(header, claims)]),
                token_type=rng.choice(["Bearer", "DPoP"]),
                scope=rng.choice([None, "openid", text(20)]),
                refresh_expires_at=rng.choice([None, NOW + 600]),
            ),
            created_at=NOW,
            expires_at=NOW + rng.randrange(1, 86400),
            user_agent=text(40),
        )
        round_trips(s)


# --- claims are stored once -------------------------------------------------------------
def test_claims_are_derived_from_the_id_token_unless_they_differ(rsa: RSAKey) -> None:
    s = login_session(dev_tokens(rsa))
    derived = len(round_trips(s))
    for changed in (
        dataclasses.replace(s, claims={**s.claims, "name": "Someone Else"}),
        dataclasses.replace(s, claims=dict(reversed(s.claims.items()))),  # order counts
        dataclasses.replace(s, claims={**s.claims, "auth_time": float(NOW)}),  # 1.0 is not 1
        dataclasses.replace(s, claims={**s.claims, "nonce": "shown after all"}),
        dataclasses.replace(s, sub="another-sub"),
        dataclasses.replace(s, idp_sid=None),
    ):
        assert len(round_trips(changed)) > derived + 10  # stored explicitly, and exact
    round_trips(dataclasses.replace(s, tokens=dataclasses.replace(s.tokens, id_token=None)))


# --- small --------------------------------------------------------------------------------
def test_dev_provider_session_seals_into_the_768_byte_class(rsa: RSAKey) -> None:
    """Redis keeps a string of up to 762 bytes in a 768-byte allocation (sds header and
    terminator included); the next class is 896. Format 1 needed 1,536. (Format 3 costs
    the development provider's tokens ~8 bytes more than format 2 did: a user name of 26
    characters, four times in the tokens, now reaches the 896-byte class.)"""
    keys = KeyRing(["k" * 32])
    for user in ("bench-user", "bench-user-99999", "someone.with.a.name"):
        s = login_session(dev_tokens(rsa, user))
        record = round_trips(s)
        old = b"z" + zlib.compress(v1_record(s), 6)
        sealed = keys.seal(record, aad=b"h")
        assert len(sealed) <= 762, (user, len(sealed))
        assert len(record) < len(old) // 2 + 40, (len(record), len(old))
    browser = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
    assert len(keys.seal(encode_session(login_session(dev_tokens(rsa), browser)), aad=b"")) <= 762


# --- older records ----------------------------------------------------------------------
def test_format_1_records_are_refused(rsa: RSAKey) -> None:
    """Format 1 (JSON, then zlib'd JSON) was never released: it is no longer read."""
    s = login_session(dev_tokens(rsa))
    plain = v1_record(s)
    for old in (plain, b"z" + zlib.compress(plain), b"z" + b"not zlib", b'{"v": 99}'):
        with pytest.raises(ValueError):
            decode_session(old)


# --- the record ---------------------------------------------------------------------------
def test_session_record_round_trip_and_repr_hides_tokens() -> None:
    tokens = TokenSet(
        access_token="AT-secret", expires_at=100, refresh_token="RT-secret", id_token="IT-secret"
    )
    s = Session(
        sub="alice",
        idp_sid="sid1",
        claims={"sub": "alice"},
        tokens=tokens,
        created_at=1,
        expires_at=2,
        user_agent="ua",
    )
    assert decode_session(encode_session(s)) == s
    for secret in ("AT-secret", "RT-secret", "IT-secret"):
        assert secret not in repr(s)
    assert len(session_hash(new_session_id())) == 32
    with pytest.raises(ValueError):
        decode_session(b'{"v": 99}')


def test_dpop_key_round_trips_with_derived_and_explicit_claims(rsa: RSAKey) -> None:
    """DPoP: the session key is the record's last value, with or without stored claims,
    and never in repr."""
    key = b64(bytes(range(32)))
    s = login_session(dev_tokens(rsa))
    dpop = dataclasses.replace(
        s, dpop_key=key, tokens=dataclasses.replace(s.tokens, token_type="DPoP")
    )
    assert len(round_trips(dpop)) <= len(round_trips(s)) + 60
    assert decode_session(encode_session(dpop)).dpop_key == key
    explicit = dataclasses.replace(dpop, claims={**s.claims, "name": "Someone Else"})
    assert decode_session(encode_session(explicit)).dpop_key == key
    assert decode_session(encode_session(s)).dpop_key is None
    assert key not in repr(dpop)


def test_dpop_key_and_route_tokens_round_trip_together(rsa: RSAKey) -> None:
    """Routes' own tokens (a list) and the DPoP key (a string) both follow the claims:
    the record tells them apart, whichever is there."""
    key = b64(bytes(range(32)))
    s = login_session(dev_tokens(rsa))
    routes = {"/orders\x1frefresh_token\x1fr\x1f": TokenSet(access_token="narrow", expires_at=9)}
    with_routes = dataclasses.replace(s, route_tokens=routes)
    both = dataclasses.replace(with_routes, dpop_key=key)
    for record in (with_routes, both, dataclasses.replace(s, dpop_key=key)):
        assert decode_session(encode_session(record)) == record


def test_login_state_keeps_the_dpop_key() -> None:
    state = LoginState(
        code_verifier="v", nonce="n", return_url="/", binding="b", issuer="i", created_at=1
    )
    assert decode_login_state(encode_login_state(state)).dpop_key is None
    keyed = dataclasses.replace(state, dpop_key="k" * 43)
    assert decode_login_state(encode_login_state(keyed)) == keyed
    assert "k" * 43 not in repr(keyed)
